"""xnat_download.routing and meter: the route chooser reads the network the run has measured."""
from __future__ import annotations

from pathlib import Path

from xnat_download.catalog import RemoteFile, Scan, Session
from xnat_download.manifest import Manifest
from xnat_download.meter import BodyClock, NetworkMeter, NetworkReading
from xnat_download.plan import PlannedFile, ScanPlan
from xnat_download.routing import choose_routes, route

KiB = 1024


def uneven_session(tmp_path: Path) -> list[ScanPlan]:
    """The bench's uneven shape: one scan of 302 files of 256 KiB beside seven of 14."""
    session = Session(id="E1", label="s", subject_label="sub")
    plans = []
    for number, count in enumerate([302] + [14] * 7, start=1):
        scan = Scan(id=str(number), type="T")
        plan = ScanPlan(session, scan, tmp_path / scan.id, {})
        plan.files = [PlannedFile(RemoteFile(scan.id, f"{i}.dcm", 256 * KiB, "", f"/f/{scan.id}/{i}"),
                                  f"{i}.dcm", tmp_path / scan.id / f"{i}.dcm") for i in range(count)]
        plans.append(plan)
    return plans


def zipped_scans(plans: list[ScanPlan], meter: NetworkMeter) -> list[str]:
    network = meter.reading()
    routes = [route(plan, Manifest(plan.folder, {}), plan.files, network) for plan in plans]
    return [r.plan.scan.id for r in choose_routes(routes, 8, network) if r.by_zip]


def test_with_latency_the_dominant_scan_is_spread_over_the_connections(tmp_path):
    meter = NetworkMeter()
    meter.record_request(0.022, cpu_seconds=0.002)   # 20 ms of waiting: requests overlap
    assert meter.reading().useful_connections(8) == 8
    assert zipped_scans(uneven_session(tmp_path), meter) == ["2", "3", "4", "5", "6", "7", "8"]


def test_where_requests_are_computing_the_dominant_scan_comes_as_one_zip(tmp_path):
    meter = NetworkMeter()
    meter.record_request(0.004, cpu_seconds=0.003)   # no latency: more connections take turns
    meter.record_request(0.003, cpu_seconds=0.0035)
    assert meter.reading().useful_connections(8) == 1
    assert sorted(zipped_scans(uneven_session(tmp_path), meter)) == [str(n) for n in range(1, 9)]


def test_a_measured_throughput_replaces_the_assumed_one(tmp_path):
    # With latency, at the assumed 10 MiB/s the dominant scan's bytes are the long wait and are
    # spread; a connection measured at 1 GiB/s carries them in a moment, and its 302 requests
    # would cost more than the one zip.
    meter = NetworkMeter()
    meter.record_request(0.022, cpu_seconds=0.002)
    assert "1" not in zipped_scans(uneven_session(tmp_path), meter)
    meter.record_bytes(1024 * 1024 * KiB, 1.0)
    assert sorted(zipped_scans(uneven_session(tmp_path), meter)) == [str(n) for n in range(1, 9)]


def test_the_meter_keeps_the_quickest_request_and_the_throughput_of_long_bodies():
    meter = NetworkMeter()
    assert meter.reading() == NetworkReading() and NetworkReading().useful_connections(4) == 4
    meter.record_request(0.05, 0.01)
    meter.record_request(0.02, 0.004)
    meter.record_request(0.03, None)
    taken = meter.reading()
    assert (taken.request_seconds, taken.cpu_seconds) == (0.02, 0.004)
    meter.record_bytes(1000, 0.001)                  # too short to say anything
    meter.record_bytes(4 * 1024 * KiB, 0.25)
    meter.record_bytes(4 * 1024 * KiB, 0.75)
    assert meter.reading().bytes_per_second == 8 * 1024 * KiB
    assert taken.bytes_per_second is None            # a reading stays as it was taken


def test_a_body_is_timed_over_its_first_mebibyte_and_a_short_one_not_at_all():
    meter = NetworkMeter()
    short = BodyClock(meter)
    short.arrived(100 * KiB)
    short.ended()
    assert meter.reading().bytes_per_second is None
    long = BodyClock(meter)
    long.arrived(512 * KiB)
    assert meter.reading().bytes_per_second is None
    long.arrived(512 * KiB)                          # the first MiB: timed, and no further
    measured = meter.reading().bytes_per_second
    assert measured is not None and measured > 0
    long.arrived(64 * 1024 * KiB)
    long.ended()
    assert meter.reading().bytes_per_second == measured
