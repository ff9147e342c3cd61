"""Plans: which files of a scan to fetch, and the safe path below the scan folder each one takes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xnat_download.catalog import RemoteFile, Scan, Session
from xnat_download.connection import XnatClient, on_server
from xnat_download.names import (UnsafeName, former_scan_component, inside, name_tag,
                                 safe_relative_path, scan_component)

@dataclass
class PlannedFile:
    remote: RemoteFile
    relative: str        # path below the scan folder
    target: Path


@dataclass
class ScanPlan:
    session: Session
    scan: Scan
    folder: Path
    source: dict
    files: list[PlannedFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)   # (server name, why)
    listed: list[RemoteFile] = field(default_factory=list)   # every file the listing names
    former: Path | None = None   # the folder's name by earlier versions, where it differs

    @property
    def total_bytes(self) -> int:
        return sum(max(f.remote.size, 0) for f in self.files)


def plan_scan(client: XnatClient, project: str, session: Session, scan: Scan, resource: str,
              files: list[RemoteFile], folder: Path, output_dir: Path) -> ScanPlan:
    """Map a scan's server files to safe paths in its folder; refuse what would escape it."""
    source = {"server": client.server, "project": project, "subject": session.subject_label,
              "session": session.label, "session_id": session.id, "scan": scan.id,
              "type": scan.type, "resource": resource}
    plan = ScanPlan(session=session, scan=scan, folder=folder, source=source, listed=list(files),
                    former=former_folder(folder, scan))
    cleaned: list[tuple[RemoteFile, str]] = []
    # Sorted so that, when two names clean up to the same one, the same file keeps the plain name
    # on every run.
    for remote in sorted(files, key=lambda f: f.path):
        try:
            cleaned.append((remote, safe_relative_path(remote.path)))
        except UnsafeName as error:
            plan.refused.append((remote.path, str(error)))
    # Every sub-folder is taken from the start: a file named like a folder ('a' beside 'a/b.dcm')
    # would otherwise stop the whole download when the folder cannot be made.
    taken: set[str] = set()
    for _, relative in cleaned:
        parts = relative.split("/")
        taken.update("/".join(parts[:end]).casefold() for end in range(1, len(parts)))
    for remote, relative in cleaned:
        relative = unique_name(relative, remote.path, taken)
        taken.add(relative.casefold())
        target = folder / relative
        if not inside(output_dir, target):
            plan.refused.append((remote.path, "refused: it would land outside the output folder"))
            continue
        if not on_server(client.server, remote.url):
            plan.refused.append((remote.path, "refused: the listing links it to another server"))
            continue
        plan.files.append(PlannedFile(remote=remote, relative=relative, target=target))
    return plan


def former_folder(folder: Path, scan: Scan) -> Path | None:
    """Where earlier versions put this scan, if the layout is ours (common.py's) and that differs."""
    if folder.name != scan_component(scan.id, scan.type):
        return None   # a layout of the user's own: none of its names were ever ours to rename
    former = former_scan_component(scan.id, scan.type)
    return folder.with_name(former) if former != folder.name else None


def unique_name(relative: str, server_name: str, taken: set[str]) -> str:
    """The relative path, tagged with a digest of the server's name if a file or folder has it
    already (case-insensitively: 'a b.dcm' and 'a_b.dcm' clean up to one name)."""
    candidate, attempt = relative, 0
    while candidate.casefold() in taken:
        attempt += 1
        salted = server_name if attempt == 1 else f"{server_name}\n{attempt}"
        tag = name_tag(salted)
        stem, dot, suffix = relative.rpartition(".")
        candidate = f"{stem}_{tag}.{suffix}" if dot and "/" not in suffix else f"{relative}_{tag}"
    return candidate


@dataclass
class Skipped:
    """A scan or session the options chose but that is not downloaded, and why (noted)."""
    what: str    # "scan 4 (localizer) of sub-2_ses-1", "session sub-3_ses-1"
    why: str


@dataclass
class SessionJob:
    """One session to download: which of its scans, the folder each goes to, and what of it was
    skipped (a job may hold no scan at all, only what was skipped)."""
    session: Session
    scans: list[Scan]
    files: dict[str, list[RemoteFile]]
    folder_of: Callable[[Scan], Path]
    skipped: list[Skipped] = field(default_factory=list)

