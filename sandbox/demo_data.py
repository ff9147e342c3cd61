"""The sandbox's content: the demo projects, the hostile project and the scaled BIG project.

Demo files are real DICOMs made with pydicom. Making them takes a noticeable fraction of a second,
so their bytes are made once per process and shared by every catalog built afterwards; a new
Sandbox only builds the (cheap) dataclass tree around them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog, File, Keys, Project, Resource, Scan, Session, Subject
from .dicom_maker import DicomSpec, derived_uid, make_dicom, xnat_dicom_name
from .vendor_data import build_tree_projects, build_vendor_project

DEMO_USER = "demo"
OUTSIDER_USER = "outsider"

SCALE_SCAN_TYPES = ("T1", "T2", "func_rest", "dwi", "fmap", "flair", "swi", "asl", "t2star", "func_task")
_SERIES_DESCRIPTIONS = {
    "T1": "t1_mprage_sag",
    "T2": "t2_space",
    "func_rest": "bold_rest_ap",
    "func_task": "bold_task_ap",
    "dwi": "dwi_64dir",
    "fmap": "gre_field_mapping",
    "flair": "t2_flair_tra",
    "swi": "swi_tra",
    "asl": "pcasl",
    "t2star": "t2star_gre",
    "localizer": "localizer_3plane",
}


@dataclass(frozen=True)
class Scale:
    """Shape of the extra BIG project: every scan has one DICOM resource of generated files."""

    subjects: int = 200
    sessions_per_subject: int = 2
    scans_per_session: int = 10
    files_per_scan: int = 1
    file_size: int = 1024
    first_scan_files: int | None = None  # the first scan of a session holds this many (uneven shapes)
    dicom_matrix: int = 0  # > 0: every file is a real DICOM slice of this many pixels a side


# A tiny, valid 1x1 GIF: what a SNAPSHOTS resource holds, minus the picture.
_SNAPSHOT_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
                 b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


# --- the demo tree --------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanPlan:
    id: str
    type: str
    files: int  # DICOM files; 0 means the scan has no DICOM resource
    quality: str = "usable"
    snapshots: bool = False
    sub_folder: str = ""  # put the last two DICOMs in this folder of the resource
    slices: int = 0  # a scan of several volumes: this many slices each
    bvalues: tuple[int, ...] = ()  # a diffusion scan: each volume's b-value
    trace: bool = False  # a diffusion scan whose last volume is its derived trace image, as one series
    # A GRE field map's echo times (ms): its magnitude holds every echo's slices, numbered from 1
    # again for each echo, as Siemens writes them; with phase, the phase difference instead.
    echo_times: tuple[float, ...] = ()
    phase: bool = False


@dataclass(frozen=True)
class SessionPlan:
    label: str
    date: str
    scans: tuple[ScanPlan, ...]


@dataclass(frozen=True)
class SubjectPlan:
    label: str
    sessions: tuple[SessionPlan, ...]


@dataclass(frozen=True)
class ProjectPlan:
    id: str
    name: str
    description: str
    accessibility: str
    members: frozenset[str]
    subjects: tuple[SubjectPlan, ...]
    pi: tuple[str, str] = ("Ada", "Lovelace")
    secondary_id: str = ""


# Repetition and echo time (ms) of each type's sequence, as a 3T protocol might have them.
_TIMINGS = {"T1": (2300.0, 2.98), "T2": (3200.0, 409.0), "func_rest": (2000.0, 30.0), "dwi": (3500.0, 68.0),
            "fmap": (600.0, 4.92)}
_FIELD_MAP_ECHO_TIMES = (4.92, 7.38)


def _standard_scans(*, t1_folder: str = "", extra: tuple[ScanPlan, ...] = ()) -> tuple[ScanPlan, ...]:
    """The protocol most demo sessions share: T1 (with snapshots), T2 and a resting-state run."""
    return (ScanPlan("1", "T1", 5, snapshots=True, sub_folder=t1_folder),
            ScanPlan("2", "T2", 4),
            ScanPlan("3", "func_rest", 8, quality="questionable", slices=4)) + extra


# Subjects are stored in the order they were "uploaded": sub-10 first, so a client that trusts
# listing order (or sorts labels as plain strings) picks a different first subject than a natural
# sort would. Scan 11 sits before 2 for the same reason.
DEMO_PROJECTS: tuple[ProjectPlan, ...] = (
    ProjectPlan(
        id="DEMO", name="Demo project",
        description="Synthetic MR sessions served by the local XNAT sandbox for demos and tests.",
        accessibility="protected", members=frozenset({DEMO_USER}), secondary_id="Demo",
        subjects=(
            SubjectPlan("sub-10", (
                SessionPlan("sub-10_ses-1", "2024-01-17", (
                    ScanPlan("1", "T1", 5, snapshots=True),
                    ScanPlan("11", "func_rest", 3, slices=1),
                    ScanPlan("2", "T2", 4),
                    ScanPlan("3", "func_rest", 6, quality="questionable", slices=3),
                )),
                SessionPlan("sub-10_ses-2", "2024-03-02", (
                    ScanPlan("1", "T1", 5, snapshots=True),
                    ScanPlan("2", "T2", 3),
                )),
            )),
            SubjectPlan("sub-2", (
                # The session the demo downloads holds what a real one does: a second
                # resting-state run (--bids numbers runs), a diffusion scan with its trace image
                # (.bval/.bvec, a derived image left out) and a GRE field map (IntendedFor).
                SessionPlan("sub-2_ses-1", "2024-01-15", _standard_scans(
                    extra=(ScanPlan("4", "localizer", 0, snapshots=True),
                           ScanPlan("5", "func_rest", 8, slices=4),
                           ScanPlan("6", "dwi", 16, slices=4, bvalues=(0, 1000, 1000), trace=True),
                           ScanPlan("7", "fmap", 6, slices=3, echo_times=_FIELD_MAP_ECHO_TIMES),
                           ScanPlan("8", "fmap", 3, slices=3, echo_times=_FIELD_MAP_ECHO_TIMES, phase=True)))),
            )),
            SubjectPlan("sub-3", (
                SessionPlan("sub-3_ses-1", "2024-01-16", _standard_scans(t1_folder="secondary")),
            )),
        )),
    ProjectPlan(
        id="PRIVATE", name="Private project", description="Visible to its members only.",
        accessibility="private", members=frozenset({DEMO_USER}), pi=("Grace", "Hopper"),
        subjects=(SubjectPlan("p-1", (SessionPlan("p-1_ses-1", "2024-02-01", (ScanPlan("1", "T1", 3),)),)),)),
    ProjectPlan(
        id="OPEN", name="Open project", description="Public data every user can read.",
        accessibility="public", members=frozenset({DEMO_USER, OUTSIDER_USER}), pi=("Alan", "Turing"),
        subjects=(SubjectPlan("o-1", (SessionPlan("o-1_ses-1", "2024-02-10", (ScanPlan("1", "T1", 3),)),)),)),
)

_demo_files: dict[tuple[str, str, str], list[tuple[str, bytes, str]]] = {}
_demo_files_lock = threading.Lock()


def _dicom_spec(project: ProjectPlan, subject: SubjectPlan, session: SessionPlan, scan: ScanPlan,
                number: int) -> DicomSpec:
    """What the number-th file (from 1) of a demo scan says about itself."""
    repetition_time, echo_time = _TIMINGS.get(scan.type, (0.0, 0.0))
    instance, echo, image_type = number, 0, ("ORIGINAL", "PRIMARY", "M", "ND")
    if scan.echo_times and scan.phase:
        echo, image_type = len(scan.echo_times), ("ORIGINAL", "PRIMARY", "P", "ND")
    elif scan.echo_times:
        echo_index, slice_index = divmod(number - 1, scan.files // len(scan.echo_times))
        echo, instance = echo_index + 1, slice_index + 1
    if echo:
        echo_time = scan.echo_times[echo - 1]
    if scan.trace and number > scan.files - scan.slices:
        image_type = ("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW")
    return DicomSpec(project=project.id, subject_label=subject.label, session_label=session.label,
                     date=session.date, scan_id=scan.id,
                     series_description=_SERIES_DESCRIPTIONS.get(scan.type, scan.type), instance=instance,
                     matrix=64 if scan.type == "T1" else 32, slices=scan.slices, bvalues=scan.bvalues,
                     repetition_time=repetition_time, echo_time=echo_time, echo=echo, image_type=image_type,
                     protocol_echo_times=scan.echo_times)


def _demo_dicoms(project: ProjectPlan, subject: SubjectPlan, session: SessionPlan,
                 scan: ScanPlan) -> list[tuple[str, bytes, str]]:
    """(name, bytes, md5) of a demo scan's DICOMs; made once per process."""
    key = (project.id, session.label, scan.id)
    with _demo_files_lock:
        cached = _demo_files.get(key)
        if cached is None:
            cached = []
            study_uid = derived_uid(project.id, session.label)
            for number in range(1, scan.files + 1):
                spec = _dicom_spec(project, subject, session, scan, number)
                payload = make_dicom(spec)
                name = xnat_dicom_name(study_uid, scan.id, spec.instance, spec.echo)
                if scan.sub_folder and number > scan.files - 2:
                    name = f"{scan.sub_folder}/{name}"
                cached.append((name, payload, hashlib.md5(payload).hexdigest()))
            _demo_files[key] = cached
    return cached


def _build_demo_project(plan: ProjectPlan, keys: Keys) -> Project:
    project = Project(id=plan.id, name=plan.name, description=plan.description,
                      secondary_id=plan.secondary_id, pi_firstname=plan.pi[0], pi_lastname=plan.pi[1],
                      accessibility=plan.accessibility, members=set(plan.members))
    for subject_plan in plan.subjects:
        subject = Subject(id=keys.subject_id(), label=subject_plan.label)
        for session_plan in subject_plan.sessions:
            session = Session(id=keys.session_id(), label=session_plan.label, date=session_plan.date)
            for scan_plan in session_plan.scans:
                scan = Scan(id=scan_plan.id, type=scan_plan.type,
                            series_description=_SERIES_DESCRIPTIONS.get(scan_plan.type, scan_plan.type),
                            quality=scan_plan.quality, key=keys.scan_key())
                if scan_plan.files:
                    files = [File(name=name, size=len(payload), payload=payload, _md5=md5)
                             for name, payload, md5 in _demo_dicoms(plan, subject_plan, session_plan, scan_plan)]
                    scan.resources.append(Resource(label="DICOM", cat_id=keys.cat_id(), files=files))
                if scan_plan.snapshots:
                    snapshot = File.from_bytes(f"{scan_plan.id}_qc.gif", _SNAPSHOT_GIF)
                    scan.resources.append(Resource(label="SNAPSHOTS", cat_id=keys.cat_id(), files=[snapshot],
                                                   format="GIF", content="SNAPSHOTS"))
                session.scans.append(scan)
            subject.sessions.append(session)
        project.subjects.append(subject)
    return project


# --- the hostile project --------------------------------------------------------------------

HOSTILE_FILE_NAMES: tuple[str, ...] = (
    "../evil.dcm",
    "/tmp/abs.dcm",
    "sub/../../x.dcm",
    "a b.dcm",
    "a_b.dcm",  # collides with "a b.dcm" once unsafe characters become "_"
    "a?b.dcm",
    "résumé_ü.dcm",
    "L" * 296 + ".dcm",  # 300 characters: longer than most file systems allow
    "deep/dir/ok.dcm",
    "good-1.dcm",
    "good-2.dcm",
)


def _build_hostile_project(keys: Keys) -> Project:
    project = Project(id="HOSTILE", name="Hostile names", secondary_id="Hostile",
                      description="Labels, types and file names that a careless client would write anywhere.",
                      accessibility="protected", members={DEMO_USER}, pi_firstname="Eve", pi_lastname="Mallory")
    subject = Subject(id=keys.subject_id(), label="sub 1")
    session = Session(id=keys.session_id(), label="ses 1/x", date="2024-04-01")

    def generated_resource(names: tuple[str, ...], size: int) -> Resource:
        files = [File.generated(name, size, keys.file_number()) for name in names]
        return Resource(label="DICOM", cat_id=keys.cat_id(), files=files)

    session.scans = [
        Scan(id="1", type="T1/../../evil", series_description="t1 / ../ evil", key=keys.scan_key(),
             resources=[generated_resource(HOSTILE_FILE_NAMES, 2048)]),
        Scan(id="2", type="", series_description="", quality="unusable", key=keys.scan_key(),
             resources=[generated_resource(("good-1.dcm", "good-2.dcm"), 1024)]),
        Scan(id="3", type="T2", series_description="t2_space", key=keys.scan_key(),
             resources=[generated_resource(("good-1.dcm", "good-2.dcm", "good-3.dcm"), 1536)]),
    ]
    subject.sessions.append(session)
    project.subjects.append(subject)
    return project


# --- the scaled project ---------------------------------------------------------------------

def _build_big_project(scale: Scale, keys: Keys) -> Project:
    project = Project(id="BIG", name="Big project", secondary_id="Big",
                      description=(f"{scale.subjects} subjects x {scale.sessions_per_subject} sessions x "
                                   f"{scale.scans_per_session} scans x {scale.files_per_scan} files of "
                                   f"{scale.file_size} bytes"),
                      accessibility="protected", members={DEMO_USER}, pi_firstname="Big", pi_lastname="Data")
    for subject_number in range(1, scale.subjects + 1):
        subject = Subject(id=keys.subject_id(), label=f"sub-{subject_number}")
        for session_number in range(1, scale.sessions_per_subject + 1):
            label = f"sub-{subject_number}_ses-{session_number}"
            session = Session(id=keys.session_id(), label=label,
                              date=f"2023-{1 + session_number % 12:02d}-{1 + subject_number % 28:02d}")
            study_uid = derived_uid("BIG", label)
            for scan_number in range(1, scale.scans_per_session + 1):
                scan_type = SCALE_SCAN_TYPES[(scan_number - 1) % len(SCALE_SCAN_TYPES)]
                file_count = scale.files_per_scan
                if scan_number == 1 and scale.first_scan_files is not None:
                    file_count = scale.first_scan_files
                if scale.dicom_matrix:
                    files = [File.from_bytes(xnat_dicom_name(study_uid, str(scan_number), instance), make_dicom(
                        DicomSpec(project="BIG", subject_label=subject.label, session_label=label,
                                  date=session.date, scan_id=str(scan_number),
                                  series_description=_SERIES_DESCRIPTIONS[scan_type], instance=instance,
                                  matrix=scale.dicom_matrix, noise=True)))
                             for instance in range(1, file_count + 1)]
                else:
                    files = [File.generated(xnat_dicom_name(study_uid, str(scan_number), instance),
                                            scale.file_size, keys.file_number())
                             for instance in range(1, file_count + 1)]
                session.scans.append(Scan(
                    id=str(scan_number), type=scan_type, series_description=_SERIES_DESCRIPTIONS[scan_type],
                    key=keys.scan_key(), resources=[Resource(label="DICOM", cat_id=keys.cat_id(), files=files)]))
            subject.sessions.append(session)
        project.subjects.append(subject)
    return project


def build_catalog(scale: Scale | None = None, hostile: bool = False, vendor: bool = False,
                  dicom_tree: Path | None = None) -> Catalog:
    """The demo projects, plus HOSTILE, BIG, VENDOR and a DICOM tree's projects when asked. Demo IDs
    never depend on the options."""
    keys = Keys()
    catalog = Catalog()
    for plan in DEMO_PROJECTS:
        catalog.projects[plan.id] = _build_demo_project(plan, keys)
    if hostile:
        catalog.projects["HOSTILE"] = _build_hostile_project(keys)
    if scale is not None:
        catalog.projects["BIG"] = _build_big_project(scale, keys)
    if vendor:
        catalog.projects["VENDOR"] = build_vendor_project(keys, {DEMO_USER})
    if dicom_tree is not None:
        for project in build_tree_projects(dicom_tree, keys, {DEMO_USER}):
            catalog.projects[project.id] = project
    catalog.reindex()
    return catalog
