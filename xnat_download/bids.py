"""The BIDS dataset that --bids writes: dcm2niix run on each complete, verified scan (a few at
once, while other scans still download) into a work folder inside the dataset; results moved
into place only when complete; a record of what was converted from which files, so that a rerun
converts only what changed and never overwrites a file these scripts did not write."""
from __future__ import annotations

import contextlib
import csv
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
from xnat_download.bids_names import (BidsName, config_name, default_name, map_by_config,
                                      number_runs, stand_in_sidecar, subject_label)
from xnat_download.catalog import Scan, Session
from xnat_download.disk import describe_disk_error, write_json
from xnat_download.errors import DiskProblem, XnatError
from xnat_download.manifest import Manifest
from xnat_download.plan import ScanPlan

# dcm2niix is CPU-bound; downloads need little CPU, so two conversions at once keep both busy.
CONVERSIONS_AT_ONCE = 2
RECORD_NAME = ".xnat-bids.json"
WORK_FOLDER = ".xnat-bids-work"
OUTPUT_EXTENSIONS = (".nii.gz", ".json", ".bval", ".bvec")
BIDS_VERSION = "1.9.0"


@dataclass
class BidsOptions:
    folder: Path
    bids_map: list
    config: BidsConfig | None = None   # a dcm2bids configuration, checked
    dcm2niix: str = "dcm2niix"


def find_dcm2niix() -> str:
    """$DCM2NIIX, else dcm2niix on the PATH, else the one pip installed beside this Python."""
    beside_python = Path(sys.executable).parent / "dcm2niix"
    return (os.environ.get("DCM2NIIX") or shutil.which("dcm2niix")
            or (str(beside_python) if beside_python.is_file() else "dcm2niix"))


def check_dcm2niix() -> str:
    """Before anything is downloaded: dcm2niix must be there and run. Returns its path."""
    dcm2niix = find_dcm2niix()
    try:
        result = subprocess.run([dcm2niix, "-v"], capture_output=True, text=True, timeout=30)
        # dcm2niix -v prints its version and exits 3 (0 in some builds).
        works = result.returncode in (0, 3) and "dcm2niix" in (result.stdout + result.stderr).lower()
    except (OSError, subprocess.SubprocessError):
        works = False
    if not works:
        raise XnatError("--bids needs dcm2niix, which was not found or does not run: "
                        "pip install dcm2niix (or pip install -r requirements.txt)")
    return dcm2niix


def bids_name(session: Session, scan: Scan, sidecar: dict, options: BidsOptions) -> tuple[BidsName | None, str]:
    """The scan's BIDS name (None, and why, when it has none): by the default map from XNAT's
    type and description, or by the configuration from the dcm2niix sidecar."""
    if options.config is None:
        return default_name(session, scan, options.bids_map), ""
    description, why = map_by_config(sidecar, list(options.config.descriptions))
    return (config_name(session, description) if description else None), why


def planned_name(session: Session, plan: ScanPlan, options: BidsOptions) -> BidsName | None:
    """The name a scan is expected to take, from what XNAT says of it (for --dry-run)."""
    return bids_name(session, plan.scan, stand_in_sidecar(plan.scan), options)[0]


def inputs_digest(plan: ScanPlan, manifest: Manifest) -> str:
    """One digest of every verified input file's name and MD5."""
    lines = sorted(f"{f.relative} {manifest.files.get(f.relative, {}).get('md5', '')}" for f in plan.files)
    return hashlib.md5("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def record_key(source: dict) -> str:
    return "/".join(str(source[key]) for key in ("project", "session", "scan", "resource"))


@dataclass
class Conversion:
    """One scan on its way into the dataset."""
    plan: ScanPlan
    key: str
    digest: str
    future: Future | None          # None: converted before from the same files
    work: Path | None = None       # dcm2niix's output folder
    outputs: dict[str, Path] = field(default_factory=dict)   # extension -> file in `work`
    sidecar: dict = field(default_factory=dict)
    problem: str = ""


class BidsWriter:
    def __init__(self, options: BidsOptions, project: str, output_dir: Path) -> None:
        self.options = options
        self.folder = options.folder
        self.project = project
        self.output_dir = output_dir
        self.record_path = self.folder / RECORD_NAME
        self.record = self._load_record()
        self.executor = ThreadPoolExecutor(CONVERSIONS_AT_ONCE, thread_name_prefix="dcm2niix")
        self.pending: list[Conversion] = []
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.converted = 0
        self.unchanged = 0
        self.failed: list[str] = []
        self.skipped: list[str] = []

    def _load_record(self) -> dict:
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
            if isinstance(data.get("scans"), dict):
                return data
        except (OSError, ValueError, AttributeError):
            pass
        return {"format": 1, "scans": {}}

    # --- while the session downloads ---

    def scan_ready(self, plan: ScanPlan, manifest: Manifest) -> None:
        """Every file of the scan is verified: convert it now, unless it was converted before
        from the same files or maps to no BIDS name at all."""
        if self.options.config is None and default_name(plan.session, plan.scan, self.options.bids_map) is None:
            self.skipped.append(f"scan {plan.scan.id} ({plan.scan.type}) of {plan.session.label}")
            return
        key, digest = record_key(plan.source), inputs_digest(plan, manifest)
        entry = self.record["scans"].get(key)
        if entry and entry.get("inputs") == digest and all(
                (self.folder / name).is_file() for name in entry.get("outputs", [])):
            self.pending.append(Conversion(plan, key, digest, None))
        else:
            self.pending.append(Conversion(plan, key, digest, self.executor.submit(self._convert, plan)))

    def _convert(self, plan: ScanPlan) -> tuple[Path, dict[str, Path], dict, str]:
        """dcm2niix on the scan folder, into a fresh work folder inside the dataset."""
        work_root = self.folder / WORK_FOLDER
        work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"scan-{plan.scan.id}-", dir=work_root))
        command = [self.options.dcm2niix, "-b", "y", "-z", "y", "-1", "-f", "scan", "-o", str(work), str(plan.folder)]
        with self.lock:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, text=True, errors="replace")
            self.running.add(process)
        try:
            output, _ = process.communicate()
        finally:
            with self.lock:
                self.running.discard(process)
        images = sorted(work.glob("*.nii.gz"))
        if process.returncode != 0 or len(images) != 1:
            last = [line for line in output.splitlines() if line.strip()][-1:] or [""]
            why = (f"dcm2niix made {len(images)} images from one scan" if process.returncode == 0
                   and images else f"dcm2niix could not convert it (exit {process.returncode}: "
                                   f"{last[0].strip()[:160]})")
            return work, {}, {}, why
        stem = images[0].name[:-len(".nii.gz")]
        outputs = {ext: work / (stem + ext) for ext in OUTPUT_EXTENSIONS if (work / (stem + ext)).is_file()}
        sidecar = json.loads(outputs[".json"].read_text()) if ".json" in outputs else {}
        return work, outputs, sidecar, ""

    # --- when the session's downloads are done ---

    def finish_session(self, session: Session) -> None:
        """Name this session's converted scans, number their runs, and move them into place."""
        conversions = [c for c in self.pending if c.plan.session is session]
        self.pending = [c for c in self.pending if c.plan.session is not session]
        names: dict[str, BidsName] = {}
        by_scan: dict[str, Conversion] = {}
        for conversion in conversions:
            if conversion.future is not None:
                try:
                    conversion.work, conversion.outputs, conversion.sidecar, conversion.problem = \
                        conversion.future.result()
                except OSError as error:
                    conversion.problem = f"dcm2niix could not run: {error.strerror or error}"
                except ValueError:   # a sidecar that is not JSON
                    conversion.problem = "dcm2niix wrote a sidecar that does not parse"
            else:
                conversion.sidecar = self._recorded_sidecar(conversion.key)
            scan = conversion.plan.scan
            where = f"{conversion.plan.folder.relative_to(self.output_dir)}"
            if conversion.problem:
                self.failed.append(f"{where}: {conversion.problem}; the download is kept")
                continue
            name, why = bids_name(session, scan, conversion.sidecar, self.options)
            if name is None:
                self.skipped.append(f"scan {scan.id} ({scan.type}) of {session.label}"
                                    + (f": {why}" if why else ""))
                continue
            names[scan.id] = name
            by_scan[scan.id] = conversion
        for scan_id, name in number_runs(names).items():
            try:
                self._place(by_scan[scan_id], name)
            except OSError as error:   # a full disk, say: this scan is not in place, the others may be
                self.failed.append(f"{self.folder / name.path()}: could not be written "
                                   f"({error.strerror or error}); running again converts it")
        for conversion in conversions:
            if conversion.work is not None:
                shutil.rmtree(conversion.work, ignore_errors=True)
        try:
            if names:
                self._write_dataset_files(session)
            self._save_record()
        except OSError as error:
            raise DiskProblem(describe_disk_error(error, self.folder)) from None

    def _recorded_sidecar(self, key: str) -> dict:
        for name in self.record["scans"].get(key, {}).get("outputs", []):
            if name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError):
                    return json.loads((self.folder / name).read_text(encoding="utf-8"))
        return {}

    def _place(self, conversion: Conversion, name: BidsName) -> None:
        """Move the scan's files to their BIDS names; a file we did not write is never replaced."""
        entry = self.record["scans"].get(conversion.key, {})
        ours = set(entry.get("outputs", []))
        if conversion.future is None:   # converted before: only a changed name moves its files
            if entry.get("name") == name.path():
                self.unchanged += 1
                return
            sources = {ext: self.folder / old for old in ours for ext in OUTPUT_EXTENSIONS
                       if old.endswith(ext)}
        else:
            sources = dict(conversion.outputs)
        targets = {ext: f"{name.path()}{ext}" for ext in sources}
        taken = [t for t in targets.values() if t not in ours and os.path.lexists(self.folder / t)]
        if taken:
            self.failed.append(f"{self.folder / taken[0]}: a file these scripts did not write is "
                               f"there; it was left untouched: move it away to convert scan "
                               f"{conversion.plan.scan.id} of {conversion.plan.session.label}")
            return
        if ".json" in sources:
            self._adjust_sidecar(sources[".json"], name)
        (self.folder / name.folder()).mkdir(parents=True, exist_ok=True)
        for ext, source in sources.items():
            os.replace(source, self.folder / targets[ext])
        for old in ours - set(targets.values()):
            with contextlib.suppress(OSError):
                (self.folder / old).unlink()
        self.record["scans"][conversion.key] = {"inputs": conversion.digest, "name": name.path(),
                                                "outputs": sorted(targets.values())}
        if conversion.future is not None:
            self.converted += 1

    @staticmethod
    def _adjust_sidecar(path: Path, name: BidsName) -> None:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
        changed = dict(name.sidecar_changes)
        if name.suffix == "bold" and name.task():
            changed.setdefault("TaskName", name.task())
        if changed:
            sidecar.update(changed)
            path.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    def _write_dataset_files(self, session: Session) -> None:
        """dataset_description.json if there is none; the subject's row in participants.tsv."""
        description = self.folder / "dataset_description.json"
        if not description.exists():
            description.write_text(json.dumps({
                "Name": self.project, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
                "GeneratedBy": [{"Name": "xnat-download", "Description": "XNAT scans converted "
                                 "with dcm2niix"}]}, indent=2) + "\n", encoding="utf-8")
        participant = f"sub-{subject_label(session)}"
        table = self.folder / "participants.tsv"
        rows: list[list[str]] = []
        if table.exists():
            with open(table, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.reader(handle, delimiter="\t") if row]
        if not rows or rows[0][:1] != ["participant_id"]:
            rows = [["participant_id"]] + rows[1:] if rows else [["participant_id"]]
        if any(row[:1] == [participant] for row in rows[1:]):
            return
        rows.append([participant] + ["n/a"] * (len(rows[0]) - 1))
        rows[1:] = sorted(rows[1:], key=lambda row: row[0])
        with open(table, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)

    def _save_record(self) -> None:
        write_json(self.record_path, self.record, indent=1, sort_keys=True)

    def close(self) -> None:
        """Stop: conversions still running are ended (a rerun converts those scans again)."""
        with self.lock:
            for process in self.running:
                with contextlib.suppress(OSError):
                    process.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        work_root = self.folder / WORK_FOLDER
        for leftover in self.pending:
            if leftover.future is not None and leftover.future.done() and not leftover.future.exception():
                shutil.rmtree(leftover.future.result()[0], ignore_errors=True)
        with contextlib.suppress(OSError):
            work_root.rmdir()

