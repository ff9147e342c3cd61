"""How each scan's files travel: as one zip stream of the scan's resource, or one request per
file, chosen per scan so that the session finishes soonest with the connections at hand.

A real XNAT pays a catalog read for every single-file request, so many small files cost far more
one by one than in one zip; but a zip is one stream on one connection, so a scan that dominates
the session is better spread across all of them, and a zip always carries the whole resource, so
a scan that is mostly present is better completed file by file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from xnat_download.manifest import Manifest
from xnat_download.meter import NetworkReading
from xnat_download.plan import PlannedFile, ScanPlan

# Until the run has measured them (meter.py): one connection to an XNAT behind a proxy carries
# 10-50 MiB/s, and a request costs the client and server a few milliseconds even where the
# network adds nothing.
ASSUMED_BYTES_PER_SECOND = 10 * 1024 * 1024
MIN_REQUEST_SECONDS = 0.003

log = logging.getLogger("xnat_download")


@dataclass
class Route:
    """One scan's files still to fetch, and how."""
    plan: ScanPlan
    manifest: Manifest
    files: list[PlannedFile]
    by_zip: bool
    zip_seconds: float     # one connection busy this long with the zip
    files_seconds: float   # connection-seconds for the files one by one, spread over any number

    @property
    def seconds(self) -> float:
        return self.zip_seconds if self.by_zip else self.files_seconds


def route(plan: ScanPlan, manifest: Manifest, files: list[PlannedFile], network: NetworkReading,
          transfer: str = "auto") -> Route:
    """Zip or files for one scan on its own, at the request time and throughput measured (or, until
    measured, assumed). A zip only where it would fetch at most twice what is missing (it always
    brings the whole resource) and, in auto, where it is cheaper."""
    request_seconds = max(network.request_seconds or 0.0, MIN_REQUEST_SECONDS)
    bytes_per_second = network.bytes_per_second or ASSUMED_BYTES_PER_SECOND
    missing_bytes = sum(max(f.remote.size, 0) for f in files)
    zip_seconds = request_seconds + plan.total_bytes / bytes_per_second
    files_seconds = len(files) * request_seconds + missing_bytes / bytes_per_second
    by_zip = transfer != "files" and len(files) > 1 and 2 * missing_bytes > plan.total_bytes
    if transfer == "auto":
        by_zip = by_zip and zip_seconds < files_seconds
    return Route(plan, manifest, files, by_zip, zip_seconds, files_seconds)


def choose_routes(routes: list[Route], workers: int, network: NetworkReading,
                  transfer: str = "auto") -> list[Route]:
    """In auto, spread the scans whose zip would outlast the whole session's work shared out over
    the connections that shorten it (NetworkReading.useful_connections: on a fast network with no
    latency, requests are this process's computing, and more connections only take turns). Then
    put the zips first, longest first, so that no long stream starts last (each file on its own is
    a short task that fills the gaps)."""
    workers = network.useful_connections(workers)
    log.debug("network so far: requests %.1f ms (%.1f ms of it computing here), %s MiB/s a "
              "connection; %d connection(s) shorten the run", 1000 * (network.request_seconds or 0),
              1000 * (network.cpu_seconds or 0),
              f"{network.bytes_per_second / 2 ** 20:.0f}" if network.bytes_per_second else
              f"{ASSUMED_BYTES_PER_SECOND / 2 ** 20:.0f} (assumed)", workers)
    while transfer == "auto":
        zips = sorted((r for r in routes if r.by_zip), key=lambda r: r.zip_seconds, reverse=True)
        if not zips:
            break
        longest = zips[0]
        total = sum(r.seconds for r in routes)
        as_is = max(total / workers, longest.zip_seconds)
        next_zip = zips[1].zip_seconds if len(zips) > 1 else 0.0
        spread = max((total - longest.zip_seconds + longest.files_seconds) / workers, next_zip)
        if spread >= as_is:
            break
        longest.by_zip = False
    return sorted(routes, key=lambda r: (r.by_zip, r.zip_seconds), reverse=True)
