"""BIDS names: which scan becomes which file of a BIDS dataset, by the default map in common.py
(matched on XNAT's scan type and series description) or by a dcm2bids configuration file
(matched on the dcm2niix sidecar), with subject and session labels cleaned and runs numbered."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from xnat_download.catalog import Scan, Session, natural_key, scan_matches

NOT_LETTERS_OR_DIGITS = re.compile(r"[^A-Za-z0-9]")
# The order BIDS puts entities in, between ses- and the suffix.
ENTITY_ORDER = ("task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod", "echo", "flip",
                "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk")


@dataclass(frozen=True)
class BidsName:
    """Where one scan goes: DIR/sub-S/ses-E/<datatype>/sub-S_ses-E[_entities][_run-N]_<suffix>."""
    subject: str
    session: str
    datatype: str
    suffix: str
    entities: tuple[tuple[str, str], ...] = ()   # (key, value) in the order BIDS wants them
    run: int | None = None
    sidecar_changes: tuple[tuple[str, object], ...] = ()

    def stem(self) -> str:
        entities = list(self.entities) + ([("run", str(self.run))] if self.run is not None else [])
        entities.sort(key=lambda pair: ENTITY_ORDER.index(pair[0]) if pair[0] in ENTITY_ORDER
                      else len(ENTITY_ORDER))
        parts = [f"sub-{self.subject}", f"ses-{self.session}"]
        parts += [f"{key}-{value}" for key, value in entities]
        return "_".join(parts + [self.suffix])

    def folder(self) -> str:
        return f"sub-{self.subject}/ses-{self.session}/{self.datatype}"

    def path(self) -> str:
        """Relative to the dataset, without an extension."""
        return f"{self.folder()}/{self.stem()}"

    def task(self) -> str | None:
        return dict(self.entities).get("task")


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


# --- the default map ---------------------------------------------------------------------------

def map_by_type(scan: Scan, bids_map: list) -> tuple[str, str] | None:
    """(datatype, suffix) of the first rule whose patterns match; None when none does or the
    rule skips the scan."""
    for patterns, datatype, suffix in bids_map:
        if scan_matches(scan, patterns):
            return (datatype, suffix) if datatype else None
    return None


# --- dcm2bids configuration files --------------------------------------------------------------

@dataclass
class Description:
    """One entry of a dcm2bids configuration's `descriptions`."""
    datatype: str
    suffix: str
    criteria: dict
    entities: tuple[tuple[str, str], ...] = ()
    sidecar_changes: dict = field(default_factory=dict)


def criteria_match(criteria: dict, sidecar: dict) -> bool:
    """dcm2bids's matching: every criterion must hold; strings are shell wildcards (case-sensitive),
    lists match element by element, {"any": [...]} matches if one of them does."""
    return all(key in sidecar and _value_matches(sidecar[key], wanted) for key, wanted in criteria.items())


def _value_matches(value, wanted) -> bool:
    if isinstance(wanted, dict):
        if "any" in wanted:
            return any(_value_matches(value, option) for option in wanted["any"])
        if "all" in wanted:
            return all(_value_matches(value, option) for option in wanted["all"])
        return False
    if isinstance(wanted, list):
        return (isinstance(value, list) and len(value) == len(wanted)
                and all(_value_matches(v, w) for v, w in zip(value, wanted)))
    return fnmatch.fnmatchcase(str(value), str(wanted))


def map_by_config(sidecar: dict, descriptions: list[Description]) -> tuple[Description | None, str]:
    """The one description the sidecar matches, else None and why (none, or several: dcm2bids
    skips an acquisition that more than one description matches)."""
    matched = [d for d in descriptions if criteria_match(d.criteria, sidecar)]
    if len(matched) == 1:
        return matched[0], ""
    return None, "no description matches" if not matched else f"{len(matched)} descriptions match"


# --- names for a session's scans ----------------------------------------------------------------

def number_runs(names: dict[str, BidsName]) -> dict[str, BidsName]:
    """Scans of a session that map to one name get run-1, run-2, ... in natural scan-ID order."""
    groups: dict[str, list[str]] = {}
    for scan_id in sorted(names, key=natural_key):
        groups.setdefault(names[scan_id].stem(), []).append(scan_id)
    numbered = dict(names)
    for members in groups.values():
        if len(members) > 1:
            for run, scan_id in enumerate(members, 1):
                old = names[scan_id]
                numbered[scan_id] = BidsName(old.subject, old.session, old.datatype, old.suffix,
                                             old.entities, run, old.sidecar_changes)
    return numbered


def default_name(session: Session, scan: Scan, bids_map: list) -> BidsName | None:
    mapped = map_by_type(scan, bids_map)
    if mapped is None:
        return None
    datatype, suffix = mapped
    entities = (("task", task_of(scan)),) if suffix == "bold" else ()
    return BidsName(subject_label(session), session_label(session), datatype, suffix, entities)


def config_name(session: Session, description: Description) -> BidsName:
    # bids_config checked each "key-value"; a bare key is dropped, as dcm2bids does without extractors.
    entities = tuple(tuple(entity.split("-", 1)) for entity in description.custom_entities
                     if "-" in entity)
    return BidsName(subject_label(session), session_label(session), description.datatype,
                    description.suffix, entities, None, tuple(description.sidecar_changes.items()))


def stand_in_sidecar(scan: Scan) -> dict:
    """What --dry-run can know of a sidecar without converting: XNAT's own fields."""
    sidecar = {"SeriesDescription": scan.series_description or scan.type, "ProtocolName": scan.type}
    if scan.id.isdigit():
        sidecar["SeriesNumber"] = int(scan.id)
    return sidecar
