"""What a download takes: the session (or sessions, or this shard's share of them) and the scans
the options ask for, each with the folder the layout gives it, and what is skipped and why,
returned with each session's job. Scripts 3 and 4 only say what they want (`Wanted`) and where
scans land (`Layout`, from common.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from xnat_download.catalog import (RemoteFile, Scan, Session, Subject, describe_scans,
    filter_scans, find_subject, list_session_files, natural_key, passes_filters, pick_session,
    scans_with_files, shard, some)
from xnat_download.connection import XnatClient
from xnat_download.errors import XnatError
from xnat_download.output import note
from xnat_download.plan import SessionJob, Skipped

# Where a scan of a session lands: common.single_scan_folder or common.session_scan_folder,
# bound to the output folder.
Layout = Callable[[Session, Scan], Path]


@dataclass
class Wanted:
    """What the command line asks for; None and empty mean the default (the first, or all)."""
    project: str
    resource: str
    subject: str | None = None
    session: str | None = None
    scan: str | None = None                                   # one scan (script 3)
    scan_types: Sequence[str] = field(default_factory=list)   # --scan-types
    scan_ids: Sequence[str] = field(default_factory=list)     # --scans
    shard: tuple[int, int] | None = None                      # --shard K/N

    def describe_filters(self) -> str:
        parts = []
        if self.scan_types:
            parts.append("--scan-types " + " ".join(self.scan_types))
        if self.scan_ids:
            parts.append("--scans " + " ".join(self.scan_ids))
        return f" ({'; '.join(parts)})" if parts else ""


def one_scan(client: XnatClient, subjects: list[Subject], wanted: Wanted, layout: Layout) -> SessionJob:
    """The scan asked for (or the session's first with the resource) of the session asked for."""
    session, files = _session(client, subjects, wanted, others="--session picks another")
    scan = pick_scan(session, files, wanted.scan, wanted.resource)
    return _job(session, [scan], files, layout)


def one_session(client: XnatClient, subjects: list[Subject], wanted: Wanted, layout: Layout) -> SessionJob:
    """The session asked for (or the first with the resource) and its scans that pass the filters."""
    session, files = _session(client, subjects, wanted,
                              others="--session picks another, --all-sessions takes them all")
    scans = scans_with_files(session, files)
    if not scans:
        raise XnatError(f"session {session.label} has no scan with a {wanted.resource} "
                        f"resource; scans there: {describe_scans(session.scans)}")
    chosen = filter_scans(session, scans, wanted.scan_types, wanted.scan_ids, strict=True)
    if not chosen:
        raise XnatError(f"nothing to download in session {session.label}: the scans "
                        f"chosen have no {wanted.resource} resource")
    job = _job(session, chosen, files, layout)
    job.skipped = without_resource(session, scans, wanted)
    return job


def all_sessions(client: XnatClient, subjects: list[Subject], wanted: Wanted,
                 layout: Layout) -> Iterator[SessionJob]:
    """A job per session of the subject or project (this shard's share), each listed only when its
    turn comes, so that the first files arrive without waiting for every listing. A session where
    nothing passes the filters comes as a job with no scans and the reason it was skipped; nothing
    anywhere is an error."""
    if wanted.subject:
        subject = find_subject(subjects, wanted.subject, wanted.project)
        sessions = subject.sessions
        where = f"subject {subject.label} in project {wanted.project}"
    else:
        sessions = [session for subject in subjects for session in subject.sessions]
        where = f"project {wanted.project}"
    if not sessions:
        raise XnatError(f"{where} has no session to download")
    sessions = shard(sessions, wanted.shard)
    if not sessions:
        note(f"shard {wanted.shard[0]}/{wanted.shard[1]} has no session to download")
        return
    found_any = False
    for session in sessions:
        files = list_session_files(client, session, wanted.resource)
        with_files = scans_with_files(session, files)
        skipped = without_resource(session, with_files, wanted)
        scans = filter_scans(session, with_files, wanted.scan_types, wanted.scan_ids, strict=False)
        if scans:
            found_any = True
        else:
            skipped.append(Skipped(f"session {session.label}", f"no scan with a {wanted.resource} "
                                                               f"resource passes the filters"))
        job = _job(session, scans, files, layout)
        job.skipped = skipped
        yield job
    if not found_any:
        types = sorted({scan.type for session in sessions for scan in session.scans if scan.type},
                       key=natural_key)
        raise XnatError(f"no scan in {len(sessions)} session(s) has a {wanted.resource} "
                        f"resource and passes the filters{wanted.describe_filters()}; types "
                        f"there: {some(types)}")


def without_resource(session: Session, scans: list[Scan], wanted: Wanted) -> list[Skipped]:
    """Scans the filters chose that lack the resource: skipped, not errors."""
    having = {scan.id for scan in scans}
    return [Skipped(f"scan {scan.id} ({scan.type}) of {session.label}",
                    f"no {wanted.resource} resource")
            for scan in session.scans
            if scan.id not in having and passes_filters(scan, wanted.scan_types, wanted.scan_ids)]


def pick_scan(session: Session, files: dict, wanted: str | None, resource: str) -> Scan:
    """The scan asked for, or the first (natural order) with the resource."""
    with_files = scans_with_files(session, files)
    if wanted is None:
        if not with_files:
            raise XnatError(f"no scan of session {session.label} has a {resource} resource; "
                            f"scans there: {describe_scans(session.scans)}")
        return with_files[0]
    for scan in with_files:
        if scan.id == wanted:
            return scan
    if any(scan.id == wanted for scan in session.scans):
        raise XnatError(f"scan {wanted} of session {session.label} has no {resource} "
                        f"resource; scans with one: {describe_scans(with_files)}")
    raise XnatError(f"scan {wanted} not found in session {session.label}; scans there: "
                    f"{describe_scans(session.scans)}")


def _session(client: XnatClient, subjects: list[Subject], wanted: Wanted, others: str
             ) -> tuple[Session, dict[str, list[RemoteFile]]]:
    # Without --subject, a session is looked up (or the first one taken) across the project.
    subject = find_subject(subjects, wanted.subject, wanted.project) if wanted.subject else None
    session, files = pick_session(client, subjects, subject, wanted.session, wanted.resource,
                                  wanted.project)
    if subject and not wanted.session and len(subject.sessions) > 1:
        # The user named a subject, not a session: say which of its sessions this is.
        note(f"subject {subject.label} has {len(subject.sessions)} sessions: took {session.label}, "
             f"the first with a {wanted.resource} resource ({others})")
    return session, files


def _job(session: Session, scans: list[Scan], files: dict[str, list[RemoteFile]],
         layout: Layout) -> SessionJob:
    return SessionJob(session, scans, files, lambda scan: layout(session, scan))
