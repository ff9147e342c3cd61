"""The catalog: a project's subjects, sessions and scans, a session's files, and the choices made
among them (defaults in natural order, filters, shards)."""
from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence
from urllib.parse import unquote

from xnat_download.connection import XnatClient
from xnat_download.errors import NotFound, XnatError

log = logging.getLogger("xnat_download")

@dataclass
class Scan:
    id: str
    type: str
    series_description: str = ""
    quality: str = ""
    files: int | None = None     # of the resource asked for; None = not counted
    bytes: int | None = None


@dataclass
class Session:
    id: str
    label: str
    subject_label: str
    date: str = ""
    modality: str = ""
    scans: list[Scan] = field(default_factory=list)


@dataclass
class Subject:
    id: str
    label: str
    sessions: list[Session] = field(default_factory=list)


def natural_key(text: str) -> list:
    """Sort key that puts sub-2 before sub-10: digit runs compare as numbers."""
    return [int(part) if index % 2 else part.casefold()
            for index, part in enumerate(re.split(r"(\d+)", text))]


def modality_of(xsi_type: str) -> str:
    """xnat:mrSessionData -> MR: the modality is spelled out in the session's data type."""
    match = re.match(r"(?:\w+:)?(\w+?)SessionData$", xsi_type or "")
    return match.group(1).upper() if match else ""


def list_projects(client: XnatClient) -> list[dict]:
    rows = client.get_listing("/data/projects")
    return sorted(rows, key=lambda row: natural_key(row.get("ID", "")))


def similar_project(client: XnatClient, project: str) -> str | None:
    """'did you mean DEMO?' where a project of the same ID in other case exists (IDs are case-
    sensitive in the REST paths)."""
    try:
        ids = [row.get("ID", "") for row in list_projects(client)]
    except XnatError:   # the hint is a courtesy: the error it decorates stands without it
        return None
    alike = [other for other in ids if other.lower() == project.lower() and other != project]
    return f"did you mean {' or '.join(alike)}?" if alike else None


SCAN_COLUMNS = ("xnat:imagescandata/id", "xnat:imagescandata/type",
                "xnat:imagescandata/series_description", "xnat:imagescandata/quality")


def list_project(client: XnatClient, project: str) -> list[Subject]:
    """Every subject, session and scan of a project, in two requests however big it is."""
    try:
        subject_rows = client.get_listing(f"/data/projects/{project}/subjects")
    except NotFound as error:
        # A protected project is listed to everyone but answers 403 to non-members; a private
        # one answers 404, as if it did not exist.
        why = ("this user may not read its data (403): ask one of its owners for access"
               if error.status == 403 else similar_project(client, project)
               or "1_list_projects.py shows the projects you can access")
        raise XnatError(f"project {project} not found or not accessible at {client.host} "
                        f"({why})") from None
    subjects = {row.get("ID", ""): Subject(id=row.get("ID", ""), label=row.get("label", ""))
                for row in subject_rows}
    columns = ("ID", "label", "subject_ID", "subject_label", "date", "xsiType") + SCAN_COLUMNS
    rows = client.get_listing("/data/experiments", {
        "project": project, "xsiType": "xnat:imageSessionData", "columns": ",".join(columns)})
    rows = [{key.lower(): value for key, value in row.items()} for row in rows]
    has_scan_columns = not rows or SCAN_COLUMNS[0] in rows[0]
    if not has_scan_columns:
        log.debug("the server ignored columns= on /data/experiments: asking each session for its scans")
    sessions: dict[str, Session] = {}
    for row in rows:
        session_id = row.get("id", "")
        session = sessions.get(session_id)
        if session is None:
            subject = subjects.get(row.get("subject_id", ""))
            if subject is None:  # shared in from elsewhere, or a subject listing that lags
                subject = subjects.setdefault(row.get("subject_id", ""), Subject(
                    id=row.get("subject_id", ""), label=row.get("subject_label", "")))
            session = Session(id=session_id, label=row.get("label", ""), subject_label=subject.label,
                              date=row.get("date", ""), modality=modality_of(row.get("xsitype", "")))
            sessions[session_id] = session
            subject.sessions.append(session)
        if has_scan_columns and row.get(SCAN_COLUMNS[0]):
            session.scans.append(Scan(id=row[SCAN_COLUMNS[0]], type=row.get(SCAN_COLUMNS[1], ""),
                                      series_description=row.get(SCAN_COLUMNS[2], ""),
                                      quality=row.get(SCAN_COLUMNS[3], "")))
    if not has_scan_columns:
        for session in sessions.values():
            session.scans = [Scan(id=r.get("ID", ""), type=r.get("type", ""),
                                  series_description=r.get("series_description", ""),
                                  quality=r.get("quality", ""))
                             for r in client.get_listing(f"/data/experiments/{session.id}/scans")]
    for subject in subjects.values():
        subject.sessions.sort(key=lambda s: natural_key(s.label))
        for session in subject.sessions:
            session.scans.sort(key=lambda s: natural_key(s.id))
    return sorted(subjects.values(), key=lambda s: natural_key(s.label))


def find_subject(subjects: list[Subject], wanted: str | None, project: str) -> Subject:
    """The subject with this label or ID, or the first (natural order) that has a session."""
    if wanted is None:
        for subject in subjects:
            if subject.sessions:
                return subject
        raise XnatError(f"project {project} has no subject with a session")
    for subject in subjects:
        if wanted in (subject.label, subject.id):
            return subject
    raise XnatError(f"subject {wanted} not found in project {project}; subjects there: "
                    f"{some(s.label for s in subjects)}")


def find_session(subjects: list[Subject], subject: Subject | None, wanted: str, project: str) -> Session:
    """The session with this label or ID, within the subject if one is given."""
    pool = subject.sessions if subject else [s for subj in subjects for s in subj.sessions]
    for session in pool:
        if wanted in (session.label, session.id):
            return session
    where = f"subject {subject.label} in project {project}" if subject else f"project {project}"
    raise XnatError(f"session {wanted} not found for {where}; sessions there: "
                    f"{some(s.label for s in pool)}")


def pick_session(client: XnatClient, subjects: list[Subject], subject: Subject | None,
                 wanted: str | None, resource: str, project: str
                 ) -> tuple[Session, dict[str, list[RemoteFile]]]:
    """The session asked for (within the subject, if one is given); else the first session, in
    natural order of subject and session, that has the resource. With its files of the resource."""
    if wanted:
        session = find_session(subjects, subject, wanted, project)
        return session, list_session_files(client, session, resource)
    candidates = subject.sessions if subject else [s for subj in subjects for s in subj.sessions]
    for session in candidates:
        files = list_session_files(client, session, resource)
        if files:
            return session, files
    where = f"subject {subject.label} in project {project}" if subject else f"project {project}"
    raise XnatError(f"no session of {where} has a {resource} resource; sessions there: "
                    f"{some(s.label for s in candidates)}")


def some(names: Iterable[str], limit: int = 12) -> str:
    """A readable, bounded list of what exists, for error messages."""
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- Files of a session ----------------------------------------------------------------------

@dataclass
class RemoteFile:
    scan_id: str
    path: str            # relative path inside the resource, as the server names it
    size: int
    md5: str             # lower-case hex, or "" when the server keeps none
    url: str             # server-relative URI to GET


def list_session_files(client: XnatClient, session: Session, resource: str) -> dict[str, list[RemoteFile]]:
    """All files of one resource across a session's scans, in one request, grouped by scan ID."""
    path = f"/data/experiments/{session.id}/scans/ALL/resources/{resource}/files"
    try:
        rows = client.get_listing(path)
    except NotFound:
        return {}  # no scan of this session has the resource
    files: dict[str, list[RemoteFile]] = {}
    for row in rows:
        uri = row.get("URI", "")
        # Only scan files: a listing can fall back to a subject's or project's own resources.
        match = re.search(r"/scans/([^/]+)/resources/[^/]+/files/(.+)$", uri)
        if not match:
            continue
        scan_id, name = unquote(match.group(1)), unquote(match.group(2))
        try:
            size = int(row.get("Size", ""))
        except ValueError:
            size = -1  # unknown: verified by digest alone
        files.setdefault(scan_id, []).append(RemoteFile(
            scan_id=scan_id, path=name or row.get("Name", ""), size=size,
            md5=row.get("digest", "").strip().lower(), url=uri))
    return files


def count_files(client: XnatClient, session: Session, resource: str) -> None:
    """Fill each scan's file count and size for the resource: one request for the whole session."""
    files = list_session_files(client, session, resource)
    for scan in session.scans:
        scan_files = files.get(scan.id, [])
        scan.files = len(scan_files)
        scan.bytes = sum(max(f.size, 0) for f in scan_files)


def scan_matches(scan: Scan, patterns: Sequence[str]) -> bool:
    """Type or series description matches a word or shell wildcard, ignoring case."""
    values = [scan.type.casefold(), scan.series_description.casefold()]
    return any(fnmatch.fnmatchcase(value, pattern.casefold())
               for pattern in patterns for value in values if value)


def scans_with_files(session: Session, files: dict[str, list[RemoteFile]]) -> list[Scan]:
    """The session's scans that have files in the resource; scans the listing alone knows added."""
    known = {scan.id for scan in session.scans}
    extra = [Scan(id=scan_id, type="") for scan_id in files if scan_id not in known]
    return [scan for scan in session.scans + extra if files.get(scan.id)]


def passes_filters(scan: Scan, scan_types: Sequence[str], scan_ids: Sequence[str]) -> bool:
    """--scans and --scan-types together: a scan must pass both (an empty filter passes all)."""
    return ((not scan_ids or scan.id in scan_ids)
            and (not scan_types or scan_matches(scan, scan_types)))


def filter_scans(session: Session, scans: list[Scan], scan_types: Sequence[str],
                 scan_ids: Sequence[str], strict: bool) -> list[Scan]:
    """The scans passing --scans and --scan-types. With strict (one session), an ID the session
    does not have, or filters that no scan of the session passes, is an error naming what is there."""
    if strict:
        known = {s.id for s in session.scans + scans}
        missing = [i for i in scan_ids if i not in known]
        if missing:
            raise XnatError(f"scan {', '.join(missing)} not found in session {session.label}; "
                            f"scans there: {describe_scans(session.scans or scans)}")
        if scan_types and not any(passes_filters(s, scan_types, scan_ids) for s in session.scans + scans):
            if scan_ids:
                raise XnatError(f"no scan in session {session.label} passes both --scans "
                                f"{' '.join(scan_ids)} and --scan-types {' '.join(scan_types)}; "
                                f"scans there: {describe_scans(session.scans)}")
            types = sorted({s.type for s in session.scans if s.type}, key=natural_key)
            raise XnatError(f"no scan in session {session.label} matches --scan-types "
                            f"{' '.join(scan_types)}; types there: {some(types)}")
    return [scan for scan in scans if passes_filters(scan, scan_types, scan_ids)]


def describe_scans(scans: Iterable[Scan]) -> str:
    return some(f"{scan.id} ({scan.type})" if scan.type else scan.id for scan in scans)


def shard(sessions: list[Session], spec: tuple[int, int] | None) -> list[Session]:
    """The K-th of N round-robin slices, in natural (subject, session) order."""
    ordered = sorted(sessions, key=lambda s: (natural_key(s.subject_label), natural_key(s.label)))
    if spec is None:
        return ordered
    k, n = spec
    return [session for index, session in enumerate(ordered) if index % n == k - 1]
