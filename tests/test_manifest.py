"""xnat_download.manifest: which source a scan folder holds."""
from __future__ import annotations

from xnat_download import manifest


def test_same_source_ignores_scheme_and_port_but_not_host_or_scan():
    source = {"server": "http://127.0.0.1:5000", "project": "P", "session": "S", "scan": "1",
              "resource": "DICOM"}
    assert manifest.same_source(dict(source, server="https://127.0.0.1:6000/"), source)
    assert not manifest.same_source(dict(source, server="https://other.host"), source)
    assert not manifest.same_source(dict(source, server="http://127.0.0.1:5000/xnat"), source)
    assert not manifest.same_source(dict(source, scan="2"), source)
