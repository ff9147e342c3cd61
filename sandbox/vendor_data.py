"""Projects of real scanners' DICOM as XNAT holds them: VENDOR (public QA series from GE, Siemens and
Philips), and any folder tree of DICOM laid out the same way.

VENDOR's series come from tests/data/vendor_dicom.tar.xz (see tests/data/README.md for what each one
is and where it came from). The archive holds VENDOR/<subject>/<session>/<series folder>/<file>; a
DICOM tree (`Sandbox(dicom_tree=DIR)`, `python -m sandbox --dicom-tree DIR`; DIR a folder or a
.tar.xz archive of one, as tests/data/realworld_dicom.tar.xz) holds
<PROJECT>/<subject>/<session>/<series folder>/<file> and serves each top folder as a project. Each
series folder becomes one scan whose ID is the DICOM's SeriesNumber and whose type and series
description are its SeriesDescription, with the files in a DICOM resource, as XNAT's importer
would file them. The archive is unpacked once per process, on first use, and shared by every
catalog built afterwards (so is any archive served as a tree); a folder is read whenever a
catalog is built from it.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .catalog import File, Keys, Project, Resource, Scan, Session, Subject

VENDOR_ARCHIVE = Path(__file__).resolve().parent.parent / "tests" / "data" / "vendor_dicom.tar.xz"


@dataclass(frozen=True)
class VendorSeries:
    """One series of the archive: what its first DICOM says, and its files (name, bytes, md5)."""

    folder: str
    series_number: str
    description: str
    study_date: str  # YYYY-MM-DD
    files: tuple[tuple[str, bytes, str], ...]


@dataclass(frozen=True)
class VendorSession:
    subject: str
    label: str
    series: tuple[VendorSeries, ...]


_archives: dict[Path, dict[str, tuple[VendorSession, ...]]] = {}
_archives_lock = threading.Lock()


def vendor_sessions() -> tuple[VendorSession, ...]:
    """The archive's sessions in archive order, series ordered by series number; read once."""
    return archived_projects(VENDOR_ARCHIVE)["VENDOR"]


def archived_projects(path: Path) -> dict[str, tuple[VendorSession, ...]]:
    """An archive's <PROJECT>/<subject>/<session>/<series folder>/<file>, per project; read once."""
    with _archives_lock:
        if path not in _archives:
            _archives[path] = _read_archive(path)
        return _archives[path]


def _read_archive(path: Path) -> dict[str, tuple[VendorSession, ...]]:
    files: dict[str, dict[tuple[str, str, str], list[tuple[str, bytes, str]]]] = {}
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(path.read_bytes()))) as archive:
        for member in archive:
            if not member.isfile():
                continue
            project, subject, session, folder, name = member.name.split("/")
            reader = archive.extractfile(member)
            assert reader is not None  # a regular file always has a reader
            payload = reader.read()
            files.setdefault(project, {}).setdefault((subject, session, folder), []).append(
                (name, payload, hashlib.md5(payload).hexdigest()))
    return {project: _sessions_of(project_files) for project, project_files in files.items()}


def _read_tree(project_folder: Path) -> tuple[VendorSession, ...]:
    """A project folder's <subject>/<session>/<series folder>/<file>, in sorted order."""
    files: dict[tuple[str, str, str], list[tuple[str, bytes, str]]] = {}
    for path in sorted(project_folder.glob("*/*/*/*")):
        if not path.is_file():
            continue
        subject, session, folder = path.relative_to(project_folder).parts[:3]
        payload = path.read_bytes()
        files.setdefault((subject, session, folder), []).append(
            (path.name, payload, hashlib.md5(payload).hexdigest()))
    return _sessions_of(files)


def _sessions_of(files: dict[tuple[str, str, str], list[tuple[str, bytes, str]]]) -> tuple[VendorSession, ...]:
    sessions: dict[tuple[str, str], list[VendorSeries]] = {}
    for (subject, session, folder), series_files in files.items():
        sessions.setdefault((subject, session), []).append(_describe(folder, series_files))
    return tuple(VendorSession(subject, label, tuple(sorted(series, key=lambda s: int(s.series_number))))
                 for (subject, label), series in sessions.items())


def _describe(folder: str, files: list[tuple[str, bytes, str]]) -> VendorSeries:
    from pydicom import dcmread

    header = dcmread(io.BytesIO(files[0][1]), stop_before_pixels=True)
    date = str(header.get("StudyDate", ""))
    # anonymised exports hold "***" or nothing; XNAT then lists the session with no date
    study_date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else ""
    return VendorSeries(folder=folder, series_number=str(header.SeriesNumber),
                        description=str(header.get("SeriesDescription", "")).strip(),
                        study_date=study_date, files=tuple(sorted(files)))


def build_vendor_project(keys: Keys, members: set[str]) -> Project:
    """Project VENDOR: a subject per vendor, a session per source study, a scan per series."""
    project = Project(id="VENDOR", name="Vendor QA DICOM", secondary_id="Vendor",
                      description="Public QA series from GE, Siemens and Philips scanners (BSD-2-Clause, "
                                  "by Chris Rorden and co-authors; see tests/data/README.md).",
                      accessibility="protected", members=set(members), pi_firstname="Chris",
                      pi_lastname="Rorden")
    return _fill_project(project, vendor_sessions(), keys)


def build_tree_projects(root: Path, keys: Keys, members: set[str]) -> list[Project]:
    """A project per top folder of a DICOM tree (<PROJECT>/<subject>/<session>/<series>/<file>),
    which is a folder or a .tar.xz archive of one (as tests/data holds them)."""
    if root.is_file():
        found = sorted(archived_projects(root.resolve()).items())
    else:
        found = [(folder.name, _read_tree(folder)) for folder in sorted(root.iterdir()) if folder.is_dir()]
    projects = []
    for name, sessions in found:
        project = Project(id=name, name=name, secondary_id=name, description=f"DICOM served from {root.name}",
                          accessibility="protected", members=set(members), pi_firstname="", pi_lastname="")
        projects.append(_fill_project(project, sessions, keys))
    return projects


def _fill_project(project: Project, sessions: tuple[VendorSession, ...], keys: Keys) -> Project:
    subjects: dict[str, Subject] = {}
    for vendor_session in sessions:
        subject = subjects.get(vendor_session.subject)
        if subject is None:
            subject = subjects[vendor_session.subject] = Subject(id=keys.subject_id(),
                                                                 label=vendor_session.subject)
            project.subjects.append(subject)
        session = Session(id=keys.session_id(), label=vendor_session.label,
                          date=vendor_session.series[0].study_date)
        for series in vendor_session.series:
            files = [File(name=name, size=len(payload), payload=payload, _md5=md5)
                     for name, payload, md5 in series.files]
            session.scans.append(Scan(id=series.series_number, type=series.description,
                                      series_description=series.description, key=keys.scan_key(),
                                      resources=[Resource(label="DICOM", cat_id=keys.cat_id(), files=files)]))
        subject.sessions.append(session)
    return project
