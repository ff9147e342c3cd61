"""The files of a BIDS dataset that belong to no one scan, shared by every run converting into it
at once (the --shard jobs of a cluster array, say): the record of what was converted
(`.xnat-bids.json`), which XNAT subject and session each BIDS label came from, participants.tsv
and participants.json, dataset_description.json and the README.

They are read, merged and written only under a lock on the dataset, and the record is read again
under it, so that no run loses another's entries; conversions themselves stay parallel. A run
with nothing to change writes nothing, so an up-to-date dataset on a read-only disk is fine."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path
from typing import Iterator

from xnat_download.disk import remove_quietly, write_json
from xnat_download.manifest import folder_lock

RECORD_NAME = ".xnat-bids.json"
BIDS_VERSION = "1.9.0"
PARTICIPANTS = "participants.tsv"
# Columns of participants.tsv filled from the DICOM (PatientAge, PatientSex), and their description.
PARTICIPANT_COLUMNS = {"age": {"Description": "Age of the participant at the scan (DICOM PatientAge)",
                               "Units": "year"},
                       "sex": {"Description": "Sex of the participant (DICOM PatientSex)",
                               "Levels": {"M": "male", "F": "female", "O": "other"}}}


class BidsDataset:
    """A BIDS folder's shared files. `record["scans"]` holds one entry per converted scan, in a
    shape bids.py owns; `record["subjects"]` and `record["sessions"]` the XNAT labels each BIDS
    label came from."""

    def __init__(self, folder: Path, project: str, record_format: int) -> None:
        self.folder = folder
        self.project = project
        self.record_format = record_format
        self.record = self.read_record()   # a snapshot: the record is replaced whole, never half
        self.participants: set[str] = set()
        self.facts: dict[str, dict] = {}   # sub-<S> -> {"age": ..., "sex": ...} from the DICOM

    def read_record(self) -> dict:
        """The record on disk. Scans recorded in another format count as not converted (they are
        converted again); the labels are kept whatever the format."""
        record: dict = {"format": self.record_format, "scans": {}, "subjects": {}, "sessions": {}}
        try:
            data = json.loads((self.folder / RECORD_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return record
        if not isinstance(data, dict):
            return record
        if data.get("format") == self.record_format and isinstance(data.get("scans"), dict):
            record["scans"] = data["scans"]
        for labels in ("subjects", "sessions"):
            if isinstance(data.get(labels), dict):
                record[labels] = data[labels]
        return record

    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        """Hold the dataset while one session's images are put in place: the record is read
        again, and what changed in it is written when done (also when placing stopped half-way,
        so that the files already moved stay ours)."""
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
        # A folder where no lock file can be made is read-only: no other run can write there
        # either, and a run with nothing to change needs no lock.
        with folder_lock(self.folder, say_when_waiting=False):
            self.record = self.read_record()
            before = json.dumps(self.record, sort_keys=True)
            self.participants = set()
            self.facts = {}
            try:
                yield
            except BaseException:
                with contextlib.suppress(OSError):
                    self.save(before)
                raise
            self.save(before)

    def save(self, before: str) -> None:
        """Write what changed since `before` (the record as read): the record, and for the
        participants added, their rows and the dataset files that are missing."""
        if json.dumps(self.record, sort_keys=True) != before:
            write_json(self.folder / RECORD_NAME, self.record, indent=1, sort_keys=True)
        if self.participants:
            self.write_participants()
            self.write_if_absent("dataset_description.json", json.dumps({
                "Name": self.project, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
                "GeneratedBy": [{"Name": "xnat-download",
                                 "Description": "XNAT scans converted with dcm2niix"}]}, indent=2) + "\n")
            self.write_participants_json()
            self.write_if_absent("README", (
                f"# {self.project}\n\nThe scans of the XNAT project {self.project}, downloaded and "
                f"converted to BIDS (NIfTI and JSON sidecars, with dcm2niix) by xnat-download.\n"
                f"Each sub-<label> is an XNAT subject and each ses-<label> one of its sessions; "
                f"the hidden {RECORD_NAME} records which XNAT scan each file came from.\n"))

    # --- labels ---

    def label_clash(self, bids_subject: str, bids_session: str, xnat_subject: str,
                    xnat_session: str) -> str:
        """Why this XNAT session may not become sub-<S>/ses-<E>, "" if it may: another XNAT
        subject (or session) already took that BIDS label, in this run or another."""
        subject, session = f"sub-{bids_subject}", f"sub-{bids_subject}/ses-{bids_session}"
        claimed = self.record["subjects"].get(subject)
        if claimed and claimed != self.subject_claim(xnat_subject):
            return (f"{self.folder / subject}: label clash: XNAT subjects {self.named(claimed, 'subject')} "
                    f"and {json.dumps(xnat_subject)} both become {subject}; session {xnat_session} "
                    f"was not converted: rename one of them in XNAT, or convert it into another "
                    f"folder (--bids DIR)")
        claimed = self.record["sessions"].get(session)
        if claimed and claimed != self.session_claim(xnat_subject, xnat_session):
            return (f"{self.folder / session}: label clash: XNAT sessions {self.named(claimed, 'session')} "
                    f"and {json.dumps(xnat_session)} both become {session}; session {xnat_session} "
                    f"was not converted: rename one of them in XNAT, or convert it into another "
                    f"folder (--bids DIR)")
        return ""

    def add_participant_facts(self, participant: str, facts: dict) -> None:
        """Age and sex of a participant (sub-<S>) for participants.tsv, where the DICOM has them."""
        if facts:
            self.facts[participant] = facts
            self.participants.add(participant)

    def add_session(self, bids_subject: str, bids_session: str, xnat_subject: str,
                    xnat_session: str) -> None:
        """This XNAT session has images in the dataset: its labels are claimed, and its subject
        gets a row in participants.tsv."""
        self.record["subjects"][f"sub-{bids_subject}"] = self.subject_claim(xnat_subject)
        self.record["sessions"][f"sub-{bids_subject}/ses-{bids_session}"] = \
            self.session_claim(xnat_subject, xnat_session)
        self.participants.add(f"sub-{bids_subject}")

    def subject_claim(self, xnat_subject: str) -> dict:
        return {"project": self.project, "subject": xnat_subject}

    def session_claim(self, xnat_subject: str, xnat_session: str) -> dict:
        return {"project": self.project, "subject": xnat_subject, "session": xnat_session}

    def named(self, claim: dict, what: str) -> str:
        """An earlier claim's XNAT label, with its project when that is another one."""
        label = json.dumps(str(claim.get(what, "?")))
        return label if claim.get("project") == self.project else f"{label} (project {claim.get('project')})"

    # --- dataset files ---

    def write_participants(self) -> None:
        """Add the missing rows to participants.tsv, keeping every other row and column."""
        table = self.folder / PARTICIPANTS
        rows: list[list[str]] = []
        with contextlib.suppress(FileNotFoundError):
            with open(table, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.reader(handle, delimiter="\t") if row]
        has_header = bool(rows) and rows[0][:1] == ["participant_id"]
        header, body = (rows[0], rows[1:]) if has_header else (["participant_id"], rows)
        missing = self.participants - {row[0] for row in body}
        wanted = [column for column in PARTICIPANT_COLUMNS if column not in header
                  and any(column in facts for facts in self.facts.values())]
        if has_header and not missing and not wanted and not self.facts_change(header, body):
            return
        header = header + wanted
        body = [row + ["n/a"] * (len(header) - len(row)) for row in body]
        body += [[label] + ["n/a"] * (len(header) - 1) for label in sorted(missing)]
        for row in body:
            for column, value in self.facts.get(row[0], {}).items():
                if column in header and row[header.index(column)] == "n/a":
                    row[header.index(column)] = str(value)
        body.sort(key=lambda row: row[0])
        text = io.StringIO()
        csv.writer(text, delimiter="\t", lineterminator="\n").writerows([header] + body)
        self.write_whole(table, text.getvalue())

    def facts_change(self, header: list[str], body: list[list[str]]) -> bool:
        """Whether some age or sex from the DICOM would fill a cell that is n/a."""
        cells = {row[0]: row for row in body}
        return any(column in header and row_of is not None and len(row_of) > header.index(column)
                   and row_of[header.index(column)] == "n/a"
                   for label, facts in self.facts.items() for column in facts
                   for row_of in [cells.get(label)])

    def write_participants_json(self) -> None:
        """participants.json: the description of each column; age and sex added once they exist."""
        path = self.folder / "participants.json"
        try:
            described = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            described = None
        if os.path.lexists(path) and not isinstance(described, dict):
            return   # not ours to rewrite
        described = described or {"participant_id": {
            "Description": "The XNAT subject label, without a leading sub-, cut to ASCII letters and digits"}}
        before = dict(described)
        for column, description in PARTICIPANT_COLUMNS.items():
            if any(column in facts for facts in self.facts.values()):
                described.setdefault(column, description)
        if described != before or not os.path.lexists(path):
            self.write_whole(path, json.dumps(described, indent=2) + "\n")

    def write_if_absent(self, name: str, text: str) -> None:
        if not os.path.lexists(self.folder / name):
            self.write_whole(self.folder / name, text)

    @staticmethod
    def write_whole(path: Path, text: str) -> None:
        """Written beside its name first, so that no reader ever sees half of it."""
        temporary = path.with_name(path.name + ".part")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            remove_quietly(temporary)
            raise
