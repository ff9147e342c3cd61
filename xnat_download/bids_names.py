"""BIDS names for the images dcm2niix makes of a session's scans: by the default map in common.py
(each scan matched on XNAT's type and series description, then each of its images named on its
own sidecar), or by a dcm2bids configuration (each image matched on its sidecar, with dcm2bids's
semantics: bids_match); subject and session labels cleaned, runs numbered, and the sidecar fields
each image's sidecar takes (TaskName, IntendedFor, a configuration's sidecar_changes)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from xnat_download.bids_config import BidsConfig
from xnat_download.bids_match import (dcm2bids_stem, in_acquisition_order, kept_entities,
                                      matching_descriptions, numbered_duplicates, resolved_changes)
from xnat_download.catalog import Scan, Session, natural_key, scan_matches

NOT_LETTERS_OR_DIGITS = re.compile(r"[^A-Za-z0-9]")
# The order BIDS puts entities in, between ses- and the suffix.
ENTITY_ORDER = ("task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod", "echo", "flip",
                "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk")
# Images that are computed from others, not acquired: left out unless a configuration names them.
DERIVED_IMAGE_TYPES = {"DERIVED", "ADC", "TRACE", "TRACEW", "FA"}
DERIVED_FILE_ENDINGS = re.compile(r"_(ADC|TRACE|TRACEW|FA|ColFA)$", re.I)
# PhaseEncodingDirection as a dir- label, as dcm2bids reads it (for axial images).
DIRECTION_LABELS = {"j-": "AP", "j": "PA", "i-": "LR", "i": "RL"}
PARTS = {"magnitude": "mag", "phase": "phase", "real": "real", "imaginary": "imag"}
# BIDS has echo- for anat and func images only (dwi and field maps have none).
ECHO_DATATYPES = ("anat", "func")
DIFFUSION_PATTERNS = ("*dwi*", "*dti*", "*diff*")


@dataclass(frozen=True)
class BidsName:
    """Where one image goes: DIR/sub-S/ses-E/<datatype>/sub-S_ses-E[_entities]_<suffix>."""
    subject: str
    session: str
    datatype: str
    suffix: str
    entities: tuple[tuple[str, str], ...] = ()   # (key, value), in the order they are written

    def stem(self) -> str:
        parts = [f"sub-{self.subject}", f"ses-{self.session}"]
        return "_".join(parts + [f"{key}-{value}" for key, value in self.entities] + [self.suffix])

    def folder(self) -> str:
        return f"sub-{self.subject}/ses-{self.session}/{self.datatype}"

    def path(self) -> str:
        """Relative to the dataset, without an extension."""
        return f"{self.folder()}/{self.stem()}"

    def task(self) -> str | None:
        return dict(self.entities).get("task")

    def with_entity(self, key: str, value: str) -> BidsName:
        """This name with one more entity, in the place BIDS gives it."""
        pairs = [pair for pair in self.entities if pair[0] != key] + [(key, value)]
        pairs.sort(key=lambda pair: ENTITY_ORDER.index(pair[0]) if pair[0] in ENTITY_ORDER
                   else len(ENTITY_ORDER))
        return replace(self, entities=tuple(pairs))


@dataclass
class Image:
    """One image dcm2niix made of a scan."""
    scan: Scan
    stem: str       # dcm2niix's file name without .nii.gz
    sidecar: dict   # its sidecar, with SidecarFilename as dcm2bids adds it; {} if it has none


@dataclass
class NamedImage:
    image: Image
    name: BidsName | None
    why: str = ""                                  # why it has no name
    changes: dict = field(default_factory=dict)    # sidecar fields to set (None: to remove)


def letters_and_digits(text: str) -> str:
    return NOT_LETTERS_OR_DIGITS.sub("", text)


def subject_label(session: Session) -> str:
    """sub-01 -> 01: the subject label without a leading sub-, cut to ASCII letters and digits."""
    label = re.sub(r"^sub-", "", session.subject_label, flags=re.I)
    return letters_and_digits(label) or letters_and_digits(session.subject_label) or "unknown"


def session_label(session: Session) -> str:
    """sub-2_ses-1 -> 1: without the subject label before it and a leading ses-, letters and digits."""
    label = session.label
    if session.subject_label and label.lower().startswith(session.subject_label.lower()):
        label = label[len(session.subject_label):].lstrip("_-")
    label = re.sub(r"^ses-", "", label, flags=re.I)
    return letters_and_digits(label) or letters_and_digits(session.label) or "1"


def task_of(scan: Scan) -> str:
    """task-<x> in the type or description, else func_<x>, else rest if a word starts with it,
    else task."""
    texts = [scan.type, scan.series_description]
    for pattern in (r"task-([A-Za-z0-9]+)", r"func_([A-Za-z0-9]+)"):
        for text in texts:
            match = re.search(pattern, text or "", re.I)
            if match:
                return match.group(1).lower()
    # A word that starts with rest (rest, resting, rest_ap), not one that ends in it (interest).
    if any(re.search(r"(?<![a-z])rest", (text or "").lower()) for text in texts):
        return "rest"
    return "task"


def direction_of(scan: Scan, sidecar: dict) -> str | None:
    """AP, PA, LR or RL as a word of the type or description, else from PhaseEncodingDirection."""
    for text in (scan.series_description, scan.type):
        match = re.search(r"(?<![A-Za-z])(AP|PA|LR|RL)(?![A-Za-z])", text or "", re.I)
        if match:
            return match.group(1).upper()
    return DIRECTION_LABELS.get(str(sidecar.get("PhaseEncodingDirection", "")))


def image_kind(image: Image) -> str:
    """derived, hz (a field map in Hz), phase, real, imaginary or magnitude, from the sidecar's
    ImageType and Units (and the file name dcm2niix gave an image it wrote no sidecar for)."""
    raw = image.sidecar.get("ImageType", [])
    types = {str(item).upper() for item in raw} if isinstance(raw, list) else set()
    if types & DERIVED_IMAGE_TYPES or DERIVED_FILE_ENDINGS.search(image.stem):
        return "derived"
    if image.sidecar.get("Units") == "Hz" or "FIELDMAPHZ" in types or image.stem.endswith("_fieldmaphz"):
        return "hz"
    if types & {"P", "PHASE"} or image.stem.endswith("_ph"):
        return "phase"
    if types & {"REAL", "IMAGINARY"}:
        return "real" if "REAL" in types else "imaginary"
    return "magnitude"


# --- the default map ----------------------------------------------------------------------------

def map_by_type(scan: Scan, bids_map: list) -> tuple[str, str] | None:
    """(datatype, suffix) of the first rule whose patterns match; None when none does or the
    rule skips the scan."""
    for patterns, datatype, suffix in bids_map:
        if scan_matches(scan, patterns):
            return (datatype, suffix) if datatype else None
    return None


def default_image_name(session: Session, image: Image, rule: tuple[str, str],
                       siblings: list[Image]) -> tuple[BidsName | None, str]:
    """The name of one image of a scan the rule matched; `siblings` are all the scan's images."""
    kind = image_kind(image)
    if kind == "derived":
        return None, "a derived image"
    datatype, suffix = rule
    name = BidsName(subject_label(session), session_label(session), datatype, suffix)
    kinds = [image_kind(sibling) for sibling in siblings]
    echo = image.sidecar.get("EchoNumber")
    if datatype == "fmap" and suffix == "fieldmap":
        if kind == "hz":
            return replace(name, suffix="fieldmap"), ""
        if kind == "phase":
            two_phases = kinds.count("phase") > 1 and "EchoTime1" not in image.sidecar
            return replace(name, suffix=f"phase{echo or 1}" if two_phases else "phasediff"), ""
        if kind == "magnitude":
            return replace(name, suffix="magnitude" if "hz" in kinds else f"magnitude{echo or 1}"), ""
        return None, f"a {kind} field map image, which BIDS has no name for"
    if datatype == "fmap" and suffix == "epi":
        direction = direction_of(image.scan, image.sidecar)
        if kind != "magnitude" or direction is None:
            return None, ("no phase-encoding direction" if kind == "magnitude"
                          else f"a {kind} image of a spin-echo field map")
        return name.with_entity("dir", direction), ""
    if suffix == "sbref" and scan_matches(image.scan, DIFFUSION_PATTERNS):
        name = replace(name, datatype="dwi")   # a DWI's single-band reference
    elif datatype == "func":
        name = name.with_entity("task", task_of(image.scan))
    echoes = {sibling.sidecar.get("EchoNumber") for sibling, sibling_kind in zip(siblings, kinds)
              if sibling_kind == kind}
    if len(echoes) > 1 and echo is not None and name.datatype in ECHO_DATATYPES:
        name = name.with_entity("echo", str(echo))
    if len({k for k in kinds if k in PARTS}) > 1 and kind in PARTS:
        name = name.with_entity("part", PARTS[kind])
    return name, ""


def name_by_map(session: Session, images: list[Image], bids_map: list) -> list[NamedImage]:
    """Each image named by the default map; images of one name get run-1, run-2, ... in natural
    scan-ID order; field maps' sidecars list the session's func and dwi images in IntendedFor."""
    by_scan: dict[str, list[Image]] = {}
    for image in images:
        by_scan.setdefault(image.scan.id, []).append(image)
    named = []
    for image in images:
        rule = map_by_type(image.scan, bids_map)
        if rule is None:
            named.append(NamedImage(image, None, "no rule of the map"))
            continue
        name, why = default_image_name(session, image, rule, by_scan[image.scan.id])
        named.append(NamedImage(image, name, why))
    number_runs(named)
    targets = sorted(f"bids::{n.name.path()}.nii.gz" for n in named
                     if n.name and n.name.datatype in ("func", "dwi"))
    for item in named:
        if item.name is None:
            continue
        if item.name.datatype == "fmap" and targets:
            item.changes["IntendedFor"] = targets
        add_task_name(item)
    return named


def number_runs(named: list[NamedImage]) -> None:
    """Images of a session that take one name get run-1, run-2, ... in natural scan-ID order."""
    groups: dict[str, list[NamedImage]] = {}
    for item in sorted((n for n in named if n.name), key=lambda n: (natural_key(n.image.scan.id),
                                                                      n.image.stem)):
        groups.setdefault(item.name.stem(), []).append(item)
    for members in groups.values():
        if len(members) > 1:
            for run, item in enumerate(members, 1):
                item.name = item.name.with_entity("run", str(run))


def add_task_name(item: NamedImage) -> None:
    """BIDS requires TaskName in a func sidecar: the task entity's value, when it has none."""
    task = item.name.task()
    if item.name.datatype == "func" and task and "TaskName" not in item.image.sidecar \
            and "TaskName" not in item.changes:
        item.changes["TaskName"] = task


# --- dcm2bids configurations --------------------------------------------------------------------

def name_by_config(session: Session, images: list[Image], config: BidsConfig) -> list[NamedImage]:
    """Each image named as dcm2bids 3.3 names it: matched on its sidecar (an image that no
    description, or several, match is left out), images of described ids first, runs numbered
    in dcm2bids's acquisition order, ids in sidecar_changes resolved to those images."""
    subject, ses = subject_label(session), session_label(session)
    prefix = f"sub-{subject}_ses-{ses}"
    named = {id(image): NamedImage(image, None, "dcm2niix wrote no sidecar for it")
             for image in images}
    with_sidecar = [image for image in images if image.sidecar]
    acquisitions = []   # (image, description, entities)
    for index in in_acquisition_order([image.sidecar for image in with_sidecar]):
        image = with_sidecar[index]
        matched = matching_descriptions(image.sidecar, config)
        if len(matched) != 1:
            named[id(image)].why = ("no description matches" if not matched
                                    else f"{len(matched)} descriptions match")
            continue
        acquisitions.append((image, matched[0], kept_entities(matched[0])))
    acquisitions = ([a for a in acquisitions if a[1].id is not None]
                    + [a for a in acquisitions if a[1].id is None])
    stems = [f"{d.datatype}/{dcm2bids_stem(prefix, e, d.suffix)}" for _, d, e in acquisitions]
    ids: dict[str, list[str]] = {}
    added_entities = numbered_duplicates(stems, config.dup_method)
    for (image, description, entities), added in zip(acquisitions, added_entities):
        stem = dcm2bids_stem(prefix, entities + ([added] if added else []), description.suffix)
        name = name_from_stem(subject, ses, description.datatype, stem)
        if description.id is not None:
            ids.setdefault(description.id, []).append(f"{name.path()}.nii.gz")
        item = named[id(image)]
        item.name, item.why = name, ""
        item.changes = resolved_changes(description.sidecar_changes, ids, f"sub-{subject}", config.bids_uri)
        add_task_name(item)
    return [named[id(image)] for image in images]


def name_from_stem(subject: str, ses: str, datatype: str, stem: str) -> BidsName:
    parts = stem.split("_")
    entities = tuple(tuple(part.split("-", 1)) for part in parts if "-" in part
                     and part.split("-", 1)[0] not in ("sub", "ses"))
    suffix = "_".join(part for part in parts if "-" not in part)
    return BidsName(subject, ses, datatype, suffix, entities)


def name_images(session: Session, images: list[Image], rules: list | BidsConfig) -> list[NamedImage]:
    """The session's images named by the default map (a list) or a dcm2bids configuration."""
    if isinstance(rules, BidsConfig):
        return name_by_config(session, images, rules)
    return name_by_map(session, images, rules)


def stand_in_sidecar(scan: Scan) -> dict:
    """What --dry-run can know of a sidecar without converting: XNAT's own fields."""
    sidecar = {"SeriesDescription": scan.series_description or scan.type, "ProtocolName": scan.type}
    if scan.id.isdigit():
        sidecar["SeriesNumber"] = int(scan.id)
    return sidecar
