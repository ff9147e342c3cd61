"""The BIDS dataset that --bids writes: dcm2niix run on each complete, verified scan (a few at
once, while other scans still download) into a work folder inside the dataset; every image it
makes named when the session's scans are all converted, then moved into place; a record of what
was converted from which files, so that a rerun converts only what changed and never overwrites
a file these scripts did not write."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from xnat_download.bids_config import BidsConfig
from xnat_download.bids_dataset import BidsDataset
from xnat_download.bids_dicom import add_image_facts, session_facts, why_no_image
from xnat_download.bids_identify import NAMING_FIELDS as IDENTIFYING_FIELDS
from xnat_download.bids_match import ORDER_KEYS
from xnat_download.bids_names import Image, NamedImage, session_label, subject_label
from xnat_download.bids_rules import is_skipped, name_images
from xnat_download.bids_tables import participant_facts, scans_table
from xnat_download.catalog import Scan, Session, natural_key
from xnat_download.disk import describe_disk_error, write_json
from xnat_download.errors import DiskProblem, XnatError
from xnat_download.manifest import Manifest
from xnat_download.plan import ScanPlan

# dcm2niix is CPU-bound; downloads need little CPU, so two conversions at once keep both busy.
CONVERSIONS_AT_ONCE = 2
RECORD_FORMAT = 2
WORK_FOLDER = ".xnat-bids-work"
OUTPUT_EXTENSIONS = (".nii.gz", ".json", ".bval", ".bvec")
# dcm2bids's default dcm2niix options (sidecars as dcm2bids gets them), with the fastest gzip
# level. Its file names, which a configuration may match as SidecarFilename, are %3s_%f_%p_%t,
# where %f is the folder dcm2bids was given: as if given the session's download folder.
DCM2NIIX_OPTIONS = ["-b", "y", "-ba", "y", "-z", "y", "-1"]
DCM2BIDS_FILE_NAME = "%3s_{folder}_%p_%t"
# The sidecar fields the record keeps of each image, so that a rerun names it again unconverted:
# those the default rules read (bids_identify), and those dcm2bids orders runs by.
NAMING_FIELDS = tuple(sorted({*IDENTIFYING_FIELDS, *ORDER_KEYS}))
# Changes whenever the default rules name images differently: a rerun then names them again.
DEFAULT_RULES_VERSION = "identify-1"


@dataclass
class BidsOptions:
    folder: Path
    bids_map: list
    config: BidsConfig | None = None   # a dcm2bids configuration
    dcm2niix: str = "dcm2niix"

    @property
    def rules(self) -> list | BidsConfig:
        return self.config if self.config is not None else self.bids_map

    def fingerprint(self) -> str:
        """Changes when the naming rules change (a rerun then converts again)."""
        rules = repr(self.rules) + ("" if self.config is not None else DEFAULT_RULES_VERSION)
        return hashlib.md5(rules.encode("utf-8", "surrogateescape")).hexdigest()

    def kept_fields(self) -> set[str]:
        fields = set(NAMING_FIELDS)
        for description in self.config.descriptions if self.config else ():
            fields |= set(description.criteria)
        return fields


def find_dcm2niix(setting: str | None = None) -> str:
    """The dcm2niix the user set (config.dcm2niix_setting: $DCM2NIIX), else the one on the PATH,
    else the one pip installed beside this Python."""
    beside_python = Path(sys.executable).parent / "dcm2niix"
    return (setting or shutil.which("dcm2niix")
            or (str(beside_python) if beside_python.is_file() else "dcm2niix"))


def check_dcm2niix(setting: str | None = None) -> str:
    """Before anything is downloaded: dcm2niix must be there and run. Returns its path."""
    dcm2niix = find_dcm2niix(setting)
    try:
        result = subprocess.run([dcm2niix, "-v"], capture_output=True, text=True, timeout=30)
        # dcm2niix -v prints its version and exits 3 (0 in some builds).
        works = result.returncode in (0, 3) and "dcm2niix" in (result.stdout + result.stderr).lower()
    except (OSError, subprocess.SubprocessError):
        works = False
    if not works and setting:
        raise XnatError(f"--bids needs dcm2niix: $DCM2NIIX names {setting}, which was not found or "
                        f"does not run: point $DCM2NIIX at a working dcm2niix, or unset it to use "
                        f"the one pip installs (pip install dcm2niix)")
    if not works:
        raise XnatError("--bids needs dcm2niix, which was not found or does not run: "
                        "pip install dcm2niix (or pip install -r requirements.txt)")
    return dcm2niix


def inputs_digest(plan: ScanPlan, manifest: Manifest) -> str:
    """One digest of every verified input file's name and MD5."""
    lines = sorted(f"{f.relative} {manifest.files.get(f.relative, {}).get('md5', '')}" for f in plan.files)
    return hashlib.md5("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def record_key(source: dict) -> str:
    return "/".join(str(source[key]) for key in ("project", "session", "scan", "resource"))


# An image of a scan converted before, moved aside to take a new name: its files, their targets.
Staged = tuple[dict[str, Path], dict[str, str], NamedImage]


@dataclass
class Conversion:
    """One scan of a session on its way into the dataset (or, future None, converted before)."""
    scan: Scan
    key: str
    digest: str = ""
    where: str = ""                # its download folder, for messages
    future: Future | None = None
    work: Path | None = None       # dcm2niix's output folder
    images: list[Image] = field(default_factory=list)
    files: dict[str, dict[str, Path]] = field(default_factory=dict)   # image stem -> ext -> file
    problem: str = ""
    no_image: str = ""             # why valid DICOM gave no image (not a failure)
    facts: dict = field(default_factory=dict)   # bids_dicom.session_facts of its DICOM


class BidsWriter:
    def __init__(self, options: BidsOptions, project: str, output_dir: Path) -> None:
        self.options = options
        self.folder = options.folder
        self.project = project
        self.output_dir = output_dir
        self.dataset = BidsDataset(self.folder, project, RECORD_FORMAT)
        self.executor = ThreadPoolExecutor(CONVERSIONS_AT_ONCE, thread_name_prefix="dcm2niix")
        self.pending: list[tuple[Session, Conversion]] = []
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.converted = 0
        self.unchanged = 0
        self.failed: list[str] = []
        self.unnamed: list[tuple[list, list, str]] = []   # (session key, scan key, note)

    @property
    def record(self) -> dict:
        """What was converted: as read at the start, and read again while a session is placed."""
        return self.dataset.record

    # --- while the session downloads ---

    def scan_ready(self, plan: ScanPlan, manifest: Manifest) -> None:
        """Every file of the scan is verified: convert it now, unless it was converted before
        from the same files by the same rules, or the default rules skip it (a localizer)."""
        if self.options.config is None and is_skipped(plan.scan, self.options.bids_map):
            self._note(plan.session, plan.scan, "")
            return
        key, digest = record_key(plan.source), inputs_digest(plan, manifest)
        conversion = Conversion(plan.scan, key, digest, str(plan.folder.relative_to(self.output_dir)))
        if not self._still_converted(key, digest):
            conversion.future = self.executor.submit(self._convert, plan)
        self.pending.append((plan.session, conversion))

    def _still_converted(self, key: str, digest: str) -> bool:
        entry = self.record["scans"].get(key)
        return bool(entry and entry.get("inputs") == digest
                    and entry.get("rules") == self.options.fingerprint()
                    and all((self.folder / name).is_file() for name in recorded_files(entry)))

    def _convert(self, plan: ScanPlan) -> tuple[Path, list[tuple[str, dict[str, Path], dict]], str, dict]:
        """dcm2niix on the scan folder, into a fresh work folder inside the dataset: each image's
        files and sidecar, or why there are none; and what its DICOM says of the session."""
        work = make_work_folder(self.folder / WORK_FOLDER, f"scan-{plan.scan.id}-")
        file_name = DCM2BIDS_FILE_NAME.format(folder=plan.folder.parent.name.replace("%", "_"))
        command = [self.options.dcm2niix, *DCM2NIIX_OPTIONS, "-f", file_name, "-o", str(work), str(plan.folder)]
        with self.lock:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, text=True, errors="replace")
            self.running.add(process)
        try:
            output, _ = process.communicate()
        finally:
            with self.lock:
                self.running.discard(process)
        stems = sorted(path.name[:-len(".nii.gz")] for path in work.glob("*.nii.gz"))
        facts = session_facts(plan.folder)
        if process.returncode != 0 or not stems:
            no_image = why_no_image(plan.folder)
            if no_image:
                return work, [], "", {**facts, "no_image": no_image}
            last = [line for line in output.splitlines() if line.strip()][-1:] or [""]
            return work, [], (f"dcm2niix could not convert it (exit {process.returncode}: "
                              f"{last[0].strip()[:160]})"), facts
        images = []
        for stem in stems:
            files = {ext: work / (stem + ext) for ext in OUTPUT_EXTENSIONS if (work / (stem + ext)).is_file()}
            sidecar = json.loads(files[".json"].read_text(encoding="utf-8")) if ".json" in files else {}
            if ".json" in files:
                sidecar["SidecarFilename"] = stem + ".json"
            add_image_facts(sidecar, files, facts)
            images.append((stem, files, sidecar))
        return work, images, "", facts

    # --- when the session's downloads are done ---

    def finish_session(self, session: Session) -> None:
        """Name the images of this session's scans, number their runs, and move them into place."""
        conversions = [c for s, c in self.pending if s is session]
        self.pending = [(s, c) for s, c in self.pending if s is not session]
        for conversion in conversions:
            self._collect(conversion)
            if conversion.no_image:
                self._note(session, conversion.scan, f": {conversion.no_image}")
        ready = [c for c in conversions if not c.problem and not c.no_image]
        if not ready and not self.folder.is_dir():
            return   # nothing to place, and no dataset to keep up to date
        labels = (subject_label(session), session_label(session), session.subject_label, session.label)
        try:
            with self.dataset.updating():   # other runs into this dataset wait; conversions do not
                clash = self.dataset.label_clash(*labels) if ready else ""
                if clash:
                    self.failed.append(clash)
                    return
                ready += self._recorded_elsewhere(session, {c.key for c in conversions})
                named = name_images(session, [image for c in ready for image in c.images], self.options.rules)
                if self._place_session(session, ready, named):
                    self.dataset.add_session(*labels)
                    self.dataset.add_participant_facts(f"sub-{labels[0]}", participant_facts(c.facts for c in ready))
                    if self.options.config is None:   # dcm2bids writes none: parity
                        self._write_scans_table(session, labels[0], labels[1])
        except OSError as error:
            raise DiskProblem(describe_disk_error(error, self.folder)) from None
        finally:
            for conversion in conversions:
                if conversion.work is not None:
                    shutil.rmtree(conversion.work, ignore_errors=True)

    def _collect(self, conversion: Conversion) -> None:
        """The conversion's images: dcm2niix's (when it ran), else those the record keeps."""
        if conversion.future is None:
            entry = self.record["scans"][conversion.key]
            conversion.images = [Image(conversion.scan, item["stem"], item["sidecar"])
                                 for item in entry["images"]]
            conversion.facts = dict(entry.get("participant", {}))
            return
        try:
            conversion.work, images, conversion.problem, conversion.facts = conversion.future.result()
            conversion.no_image = conversion.facts.pop("no_image", "")
        except OSError as error:
            conversion.problem = f"dcm2niix could not run: {error.strerror or error}"
        except ValueError:   # a sidecar that is not JSON
            conversion.problem = "dcm2niix wrote a sidecar that does not parse"
        else:
            conversion.images = [Image(conversion.scan, stem, sidecar) for stem, _, sidecar in images]
            conversion.files = {stem: files for stem, files, _ in images}
        if conversion.problem:
            self.failed.append(f"{conversion.where}: {conversion.problem}; the download is kept")

    def _recorded_elsewhere(self, session: Session, keys: set[str]) -> list[Conversion]:
        """Scans of this session converted by an earlier run but not part of this one: they keep
        their place in the run numbers and in IntendedFor."""
        found = []
        for key, entry in self.record["scans"].items():
            if key in keys or entry.get("session") != session.label or entry.get("project") != self.project \
                    or not self._still_converted(key, entry.get("inputs")):
                continue   # not this session's, or named by other rules, or its files are gone
            scan = Scan(**entry["scan"])
            found.append(Conversion(scan, key, entry["inputs"]))
        for conversion in found:
            self._collect(conversion)
        return found

    def _place_session(self, session: Session, conversions: list[Conversion], named: list[NamedImage]) -> int:
        """Move each scan's named images to their names (a scan whole, or listed as failed);
        returns how many images of the session are in place. Files of scans converted before
        move only when their names changed, through a staging folder, so that runs renumbered
        in a rerun never overwrite one another."""
        by_image = {id(item.image): item for item in named}
        items_of = {c.key: [by_image[id(image)] for image in c.images] for c in conversions}
        ours = {name for entry in self.record["scans"].values() for name in recorded_files(entry)}
        old_files = {c.key: set(recorded_files(self.record["scans"].get(c.key, {}))) for c in conversions}
        staged: list[Staged] = []
        in_place: set[str] = set()
        for conversion in conversions:
            self._note_unnamed(session, conversion, items_of[conversion.key])
            if conversion.future is None:
                targets = self._stage_recorded(conversion, items_of[conversion.key], staged)
                in_place |= {t for files in targets.values() for t in files.values()}
        for conversion in conversions:
            if conversion.future is not None:
                in_place |= self._place_converted(session, conversion, items_of[conversion.key], ours)
        for sources, targets, item in staged:
            self._move_image(sources, targets, item, {})
        shutil.rmtree(self.folder / WORK_FOLDER / "renamed", ignore_errors=True)
        for conversion in conversions:   # what an earlier conversion wrote that no image takes now
            if conversion.future is not None and conversion.key in self.record["scans"]:
                for name in old_files[conversion.key] - in_place:
                    with contextlib.suppress(OSError):
                        (self.folder / name).unlink()
        return len([name for name in in_place if name.endswith(".nii.gz")])

    def _place_converted(self, session: Session, conversion: Conversion, items: list[NamedImage],
                         ours: set[str]) -> set[str]:
        targets = {item.image.stem: {ext: f"{item.name.path()}{ext}"
                                     for ext in conversion.files[item.image.stem]}
                   for item in items if item.name}
        taken = [t for files in targets.values() for t in files.values()
                 if t not in ours and os.path.lexists(self.folder / t)]
        if taken:
            self.failed.append(f"{self.folder / taken[0]}: a file these scripts did not write is "
                               f"there; it was left untouched: move it away to convert scan "
                               f"{conversion.scan.id} of {session.label}")
            return set()
        try:
            for item in items:
                if item.name:
                    self._move_image(conversion.files[item.image.stem], targets[item.image.stem], item, {})
        except OSError as error:   # a full disk, say: this scan is not whole, the others may be
            self.failed.append(f"{conversion.where}: could not be written into {self.folder} "
                               f"({error.strerror or error}); running again converts it")
            self.record["scans"].pop(conversion.key, None)
            return set()
        self.record["scans"][conversion.key] = self._entry(session.label, conversion, items, targets)
        self.converted += 1
        return {t for files in targets.values() for t in files.values()}

    def _note_unnamed(self, session: Session, conversion: Conversion, items: list[NamedImage]) -> None:
        for item in items:
            if item.name is None and conversion.future is not None:
                image = f", image {item.image.stem}.nii.gz" if len(items) > 1 else ""
                self._note(session, conversion.scan, f"{image}: {item.why}")

    def _note(self, session: Session, scan: Scan, why: str) -> None:
        self.unnamed.append((natural_key(session.label), natural_key(scan.id),
                             f"scan {scan.id} ({scan.type}) of {session.label}{why}"))

    def _write_scans_table(self, session: Session, subject: str, ses: str) -> None:
        folder = f"sub-{subject}/ses-{ses}"
        table = self.folder / folder / f"sub-{subject}_ses-{ses}_scans.tsv"
        text = scans_table(self.record["scans"].values(), self.project, session.label, folder)
        with contextlib.suppress(OSError):
            if table.read_text(encoding="utf-8") == text:
                return   # a rerun with nothing new touches nothing
        if text:
            self.dataset.write_whole(table, text)

    @property
    def skipped(self) -> list[str]:
        """What has no BIDS name, in session and scan order (conversions end in any order)."""
        return [note for *_, note in sorted(self.unnamed)]

    def _move_image(self, sources: dict[str, Path], targets: dict[str, str], item: NamedImage,
                    undone: dict) -> None:
        if ".json" in sources and (item.changes or undone):
            change_sidecar(sources[".json"], item.changes, undone)
        (self.folder / item.name.folder()).mkdir(parents=True, exist_ok=True)
        for ext, source in sources.items():
            os.replace(source, self.folder / targets[ext])

    def _stage_recorded(self, conversion: Conversion, items: list[NamedImage],
                        staged: list[Staged]) -> dict[str, dict[str, str]]:
        """A scan converted before: the files of an image whose name changed (runs renumbered)
        move to a staging folder, to be placed once every other file has moved; a sidecar whose
        fields of ours changed (IntendedFor, say) is rewritten; nothing else is touched."""
        entry = self.record["scans"][conversion.key]
        recorded = {image["stem"]: image for image in entry["images"]}
        targets: dict[str, dict[str, str]] = {}
        for item in items:
            old = recorded[item.image.stem]
            files = {ext: name for name in old.get("files", []) for ext in OUTPUT_EXTENSIONS
                     if name.endswith(ext)}
            if not files:
                continue
            if item.name is None:   # kept where it is
                targets[item.image.stem] = files
                continue
            targets[item.image.stem] = {ext: f"{item.name.path()}{ext}" for ext in files}
            if targets[item.image.stem] != files:
                folder = self.folder / WORK_FOLDER / "renamed" / item.image.stem
                folder.mkdir(parents=True, exist_ok=True)
                sources = {ext: folder / Path(name).name for ext, name in files.items()}
                for ext, name in files.items():
                    os.replace(self.folder / name, sources[ext])
                if ".json" in sources:
                    change_sidecar(sources[".json"], item.changes, old.get("changes", {}))
                staged.append((sources, targets[item.image.stem], NamedImage(item.image, item.name)))
            elif item.changes != old.get("changes", {}) and ".json" in files:
                change_sidecar(self.folder / files[".json"], item.changes, old.get("changes", {}))
        self.record["scans"][conversion.key] = self._entry(entry["session"], conversion, items, targets)
        if conversion.where:   # a scan of this run, not one only kept in the record
            self.unchanged += 1
        return targets

    def _entry(self, session_label: str, conversion: Conversion, items: list[NamedImage],
               targets: dict[str, dict[str, str]]) -> dict:
        """What the record keeps of a scan: enough to name its images again without converting."""
        kept = self.options.kept_fields()
        return {"inputs": conversion.digest, "rules": self.options.fingerprint(),
                "project": self.project, "session": session_label,
                "participant": {key: value for key, value in conversion.facts.items() if key in ("age", "sex")},
                "scan": {"id": conversion.scan.id, "type": conversion.scan.type,
                         "series_description": conversion.scan.series_description},
                "images": [{"stem": item.image.stem,
                            "sidecar": {k: v for k, v in item.image.sidecar.items() if k in kept},
                            "files": sorted(targets.get(item.image.stem, {}).values()),
                            "changes": item.changes if item.image.stem in targets else {}}
                           for item in items]}

    def close(self) -> None:
        """Stop: conversions still running are ended (a rerun converts those scans again)."""
        with self.lock:
            for process in self.running:
                with contextlib.suppress(OSError):
                    process.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        for _, leftover in self.pending:
            future = leftover.future
            if future is not None and future.done() and not future.cancelled() and not future.exception():
                shutil.rmtree(future.result()[0], ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.folder / WORK_FOLDER).rmdir()


def make_work_folder(work_root: Path, prefix: str) -> Path:
    """A fresh folder in the work folder, which another run into the dataset may remove (when it
    ends and finds it empty) between making it and making ours in it: then make it again."""
    for _ in range(10):
        work_root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            return Path(tempfile.mkdtemp(prefix=prefix, dir=work_root))
    raise FileNotFoundError(errno.ENOENT, "the work folder keeps disappearing", str(work_root))


def recorded_files(entry: dict) -> list[str]:
    return [name for image in entry.get("images", []) for name in image.get("files", [])]


def change_sidecar(path: Path, changes: dict, undone: dict) -> None:
    """Set the fields we set (a None value removes its field); fields set before and no longer
    wanted go."""
    sidecar = json.loads(path.read_text(encoding="utf-8"))
    for key in undone:
        if key not in changes:
            sidecar.pop(key, None)
    for key, value in changes.items():
        if value is None:
            sidecar.pop(key, None)
        else:
            sidecar[key] = value
    write_json(path, sidecar, indent=2)
