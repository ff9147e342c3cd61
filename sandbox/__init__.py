"""A local stand-in for an XNAT 1.8 server: demo data, XNAT's REST answers, and injectable faults.

    from sandbox import Sandbox, Faults
    with Sandbox() as sb:
        sb.faults.reset_count = 2      # the next two file downloads are cut by a TCP reset
        print(sb.url, sb.user, sb.password)

`Sandbox(vendor=True)` adds project VENDOR, real scanners' QA DICOM (see tests/data/README.md);
`Sandbox(dicom_tree=DIR)` serves each folder of DIR (<PROJECT>/<subject>/<session>/<series>/<file>)
as a project.
`python -m sandbox --help` serves one from the command line.
"""

from .catalog import Catalog, File, Project, Resource, Scan, Session, Subject
from .demo_data import Scale
from .faults import Faults
from .server import LogEntry, Sandbox

__all__ = ["Catalog", "Faults", "File", "LogEntry", "Project", "Resource", "Sandbox", "Scale", "Scan",
           "Session", "Subject"]
