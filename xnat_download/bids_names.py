"""BIDS names for the images dcm2niix makes of a session's scans: what every naming shares (the
name, labels, directions, image kinds), and naming by a dcm2bids configuration (each image matched on its sidecar, with dcm2bids's
semantics: bids_match); subject and session labels cleaned, runs numbered, and the sidecar fields
each image's sidecar takes (TaskName, IntendedFor, a configuration's sidecar_changes)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from xnat_download.bids_config import BidsConfig
from xnat_download.bids_match import (dcm2bids_stem, in_acquisition_order, kept_entities,
                                      matching_descriptions, numbered_duplicates, resolved_changes)
from xnat_download.catalog import Scan, Session

NOT_LETTERS_OR_DIGITS = re.compile(r"[^A-Za-z0-9]")
# The order BIDS puts entities in, between ses- and the suffix.
ENTITY_ORDER = ("task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod", "echo", "flip",
                "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk")
# Images that are computed from others, not acquired: left out unless a configuration names them.
DERIVED_IMAGE_TYPES = {"DERIVED", "ADC", "TRACE", "TRACEW", "FA"}
DERIVED_FILE_ENDINGS = re.compile(r"_(ADC|TRACE|TRACEW|FA|ColFA)$", re.I)
# PhaseEncodingDirection as a dir- label, as dcm2bids reads it (for axial images).
DIRECTION_LABELS = {"j-": "AP", "j": "PA", "i-": "LR", "i": "RL"}


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


# Words of a description that say how a run was acquired, not which task it was.
ACQUISITION_WORDS = {"bold", "fmri", "tfmri", "func", "functional", "epi", "ep", "d", "cmrr", "mb", "sms",
                     "mbep", "task", "run", "sbref", "ap", "pa", "lr", "rl", "moco", "pace", "mosaic",
                     "se", "gre", "ge", "fe", "feepi", "wip", "clear", "sense", "asset", "hyperband", "hb",
                     "iso", "mm", "ms", "tr", "te", "acq", "dir", "x", "s", "p", "mux", "arc", "pe",
                     "multiband", "mbepi", "epd", "mbepd", "ax", "sag", "cor", "tra", "axial", "bld", "ipat", "grappa", "sl", "slices", "vol", "vols", "dyn",
                     "fov", "nopf", "pf", "new", "old", "copy", "repeat", "bis", "ter", "echo", "me", "pha",
                     "phase", "mag", "magnitude", "physiolog", "physio"}
# Tokens of a description that are settings: 2mm, 1p5mm, 2x2x2, mb4, p2, e2, 64ch, 1000tr.
ACQUISITION_TOKEN = re.compile(r"\d+(p\d+)?(mm|ms|s|ch|tr|te|sl|dir|dirs|vol|vols)?|(\d+x)+\d+(mm)?|"
                               r"[A-Za-z]{1,2}\d+", re.I)
# How a resting-state run is named, as a word of the description.
REST_WORDS = {"rs", "rsfmri", "rsfcmri", "fcmri", "rfmri", "rsbold", "rsfc", "restingstate"}


def task_of(scan: Scan, sidecar: dict | None = None) -> str:
    """task-<x> in a name, else func_<x>, else rest (rest, resting, rs, fcMRI ...), else the
    words of the description that are not about the acquisition (faces_run1_AP -> faces)."""
    sidecar = sidecar or {}
    texts = [scan.type, scan.series_description, sidecar.get("SeriesDescription"), sidecar.get("ProtocolName")]
    texts = [str(text) for text in texts if text]
    for text in texts:
        match = re.search(r"task-([A-Za-z0-9]+)", text, re.I)
        if match:
            return match.group(1).lower()
    for text in texts:
        match = re.search(r"func_([A-Za-z0-9]+)", text, re.I)
        if match and match.group(1).lower() not in ACQUISITION_WORDS:
            return match.group(1).lower()
    for text in texts:
        tokens = {token.lower() for token in re.findall(r"[A-Za-z0-9]+", text)}
        # a word that starts with rest (rest, resting, rest_ap), not one that ends in it (interest)
        if re.search(r"(?<![a-z])rest", text.lower()) or tokens & REST_WORDS \
                or {word.lower() for word in re.findall(r"[A-Za-z]+", text)} & REST_WORDS:
            return "rest"
    for text in texts:
        kept = [token.lower() for token in re.findall(r"[A-Za-z0-9]+", text)
                if token.lower() not in ACQUISITION_WORDS and not ACQUISITION_TOKEN.fullmatch(token)
                and re.sub(r"\d+", "", token.lower()) not in ACQUISITION_WORDS | {""}]
        if kept:
            return "".join(kept)[:24]
    # only acquisition words: then the description itself, without its direction and run, so
    # that two protocols never take one label (cmrr_mbep2d_bold_mb4_AP -> cmrrmbep2dboldmb4), and a
    # run's SBRef and phase series take its label
    tokens = [token for token in re.findall(r"[A-Za-z0-9]+", texts[0] if texts else "")
              if not re.fullmatch(r"AP|PA|LR|RL|run\d*|\d+|sbref|pha|phase|mag", token, re.I)]
    return "".join(tokens).lower()[:32] or "unknown"


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


def stand_in_sidecar(scan: Scan) -> dict:
    """What --dry-run can know of a sidecar without converting: XNAT's own fields."""
    sidecar = {"SeriesDescription": scan.series_description or scan.type, "ProtocolName": scan.type}
    if scan.id.isdigit():
        sidecar["SeriesNumber"] = int(scan.id)
    return sidecar
