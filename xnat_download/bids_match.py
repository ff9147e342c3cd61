"""dcm2bids 3.3's rules, as it applies them to the images of one session: which description an
image's sidecar matches, the order it sorts images in (which decides run numbers), how it puts
entities in order, and the run (or dup) numbers it gives images that take one name. Written from
dcm2bids's documented behaviour and its sidecar.py / acquisition.py, not copied from them."""
from __future__ import annotations

import datetime
import fnmatch
import functools
import re
from typing import Callable, Sequence

from xnat_download.bids_config import BidsConfig, Description

# The order dcm2bids 3.3 writes entities in (BIDS 1.9's entity table, as dcm2bids reads it);
# entities it does not know follow in the order they were written.
DCM2BIDS_ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "mod", "echo",
                         "flip", "inv", "mt", "part", "recording", "chunk")
# dcm2bids sorts a session's sidecars by these, the first that both have and that differ deciding.
ORDER_KEYS = ("AcquisitionTime", "SeriesNumber", "SidecarFilename")
NUMBER_COMPARISONS = {"lt": lambda value, bound: value < bound, "gt": lambda value, bound: value > bound,
                      "le": lambda value, bound: value <= bound, "ge": lambda value, bound: value >= bound}
TIME_FORMATS = ("%H:%M:%S.%f", "%H:%M:%S", "%H%M%S.%f", "%H%M%S")


# --- criteria -----------------------------------------------------------------------------------

def criteria_match(criteria: dict, sidecar: dict, search_method: str = "fnmatch",
                   case_sensitive: bool = True) -> bool:
    """True when every criterion holds for the sidecar, compared as dcm2bids 3.3 compares:
    a field the sidecar lacks reads as ""; a list field matches a list of patterns of the same
    length, item by item; {"any": [...]} matches if one pattern does; {"lt"|"gt"|"le"|"ge": n},
    {"btw"|"btwe": [a, b]} compare numbers; other values compare as strings, by shell wildcards
    (fnmatch, optionally without case) or by a regex matched at the start (re, always with case).
    An empty criteria object matches nothing, as dcm2bids skips a description without criteria."""
    if not criteria:
        return False
    compare = functools.partial(_compare, search_method=search_method, case_sensitive=case_sensitive)
    return all(_criterion_holds(sidecar.get(key, ""), wanted, compare) for key, wanted in criteria.items())


def _criterion_holds(value: object, wanted: object, compare: Callable[[object, object], bool]) -> bool:
    if isinstance(wanted, dict):
        (kind, patterns), = wanted.items()
        if kind == "any":
            return any(_compare_list(value, option, compare) if isinstance(value, list)
                       else compare(value, option) for option in patterns)
        return _compare_number(value, kind, patterns)
    if isinstance(value, list):
        return _compare_list(value, wanted, compare)
    if not value and not wanted:
        return True   # dcm2bids: an empty pattern matches a field that is absent or empty
    return bool(value) and bool(wanted) and compare(value, wanted)


def _compare(value: object, pattern: object, search_method: str, case_sensitive: bool) -> bool:
    text, pattern = str(value), str(pattern)
    if search_method == "re":
        return re.match(pattern, text) is not None
    if not case_sensitive:
        text, pattern = text.lower(), pattern.lower()
    return fnmatch.fnmatchcase(text, pattern)


def _compare_list(values: list, patterns: object, compare: Callable[[object, object], bool]) -> bool:
    return (isinstance(patterns, list) and len(values) == len(patterns)
            and all(compare(value, pattern) for value, pattern in zip(values, patterns)))


def _compare_number(value: object, kind: str, bounds: object) -> bool:
    try:
        number = float(value)
        bounds = [float(bound) for bound in (bounds if isinstance(bounds, list) else [bounds])]
    except (TypeError, ValueError):
        return False
    if kind in ("btw", "btwe") and len(bounds) != 2 or kind not in ("btw", "btwe") and len(bounds) != 1:
        return False   # dcm2bids: a malformed bound matches nothing
    if kind == "btw":
        return bounds[0] < number < bounds[1]
    if kind == "btwe":
        return bounds[0] <= number <= bounds[1]
    return NUMBER_COMPARISONS[kind](number, bounds[0])


def matching_descriptions(sidecar: dict, config: BidsConfig) -> list[Description]:
    return [description for description in config.descriptions
            if criteria_match(description.criteria, sidecar, config.search_method, config.case_sensitive)]


# --- the order of a session's images ------------------------------------------------------------

def acquisition_time(value: object) -> object:
    """HH:MM:SS.ffffff or HHMMSS.ffffff as a comparable tuple; anything else as it is."""
    if not isinstance(value, str):
        return value
    for form in TIME_FORMATS:
        try:
            moment = datetime.datetime.strptime(value.strip(), form)
            return moment.hour, moment.minute, moment.second, moment.microsecond
        except ValueError:
            continue
    return value


def _earlier(first: dict, second: dict) -> bool:
    for key in ORDER_KEYS:
        if key not in first or key not in second:
            continue
        mine, theirs = first[key], second[key]
        if key == "AcquisitionTime":
            mine, theirs = acquisition_time(mine), acquisition_time(theirs)
        try:
            if mine != theirs:
                return mine < theirs
        except TypeError:   # values that do not compare: dcm2bids goes on to the next key
            continue
    return False


def in_acquisition_order(sidecars: Sequence[dict]) -> list[int]:
    """Indexes of the sidecars (each with its SidecarFilename) in the order dcm2bids sorts them."""
    def compare(first: int, second: int) -> int:
        return -1 if _earlier(sidecars[first], sidecars[second]) else 0
    return sorted(range(len(sidecars)), key=functools.cmp_to_key(compare))


# --- names --------------------------------------------------------------------------------------

def dcm2bids_stem(prefix: str, entities: Sequence[str], suffix: str) -> str:
    """The file name dcm2bids builds: the prefix (sub-S_ses-E), the custom entities and the
    suffix, its key-value parts reordered by the entity table, the others kept as the suffix."""
    parts = "_".join([prefix, *entities, suffix]).split("_")
    pairs: dict[str, str] = {}
    for part in parts:
        pieces = part.split("-")
        if len(pieces) == 2:
            pairs[pieces[0]] = pieces[1]
    known = [f"{key}-{pairs[key]}" for key in DCM2BIDS_ENTITY_ORDER if key in pairs]
    unknown = [f"{key}-{value}" for key, value in pairs.items() if key not in DCM2BIDS_ENTITY_ORDER]
    bare = [part for part in parts if "-" not in part]
    return "_".join(known + unknown + bare)


def kept_entities(description: Description) -> list[str]:
    """custom_entities as dcm2bids uses them without extractors: a bare key has no value to take,
    and dcm2bids drops it, as it drops an entity holding a dot."""
    return [entity for entity in description.custom_entities if "-" in entity and "." not in entity]


def numbered_duplicates(stems: Sequence[str], dup_method: str) -> list[str | None]:
    """For each stem (in dcm2bids's order: images of described ids first), the entity dcm2bids
    adds when several take it: run-01, run-02, ... for each, or with dup_method "dup" dup-01, ...
    for all but the last, which keeps the plain name."""
    added: list[str | None] = [None] * len(stems)
    places: dict[str, list[int]] = {}
    for place, stem in enumerate(stems):
        places.setdefault(stem, []).append(place)
    for same in places.values():
        if len(same) < 2:
            continue
        if dup_method == "dup":
            same = same[:-1]
        for number, place in enumerate(same, 1):
            added[place] = f"{dup_method}-{number:02d}"
    return added


def resolved_changes(changes: dict, ids: dict[str, list[str]], subject_folder: str, bids_uri: str) -> dict:
    """sidecar_changes with every description id replaced, as dcm2bids 3.3 does, by the images of
    that id named so far (paths from the subject's folder's parent): `bids::sub-S/ses-E/...` (URI)
    or `ses-E/...` (relative). An IntendedFor/Sources id with no image is left out; "" removes
    the field (the value None here)."""
    resolved: dict = {}
    for key, value in changes.items():
        values: list = []
        for item in value if isinstance(value, list) else [value]:
            if item not in ids and key in ("IntendedFor", "Sources"):
                continue
            if isinstance(item, str) and not item:
                resolved[key] = None
                continue
            if item in ids:
                values += [f"bids::{path}" if bids_uri == "URI" else path.replace(subject_folder + "/", "", 1)
                           for path in ids[item]]
            else:
                values.append(item)
        if len(values) == 1:
            resolved[key] = values[0]
        elif values:
            resolved[key] = values
    return resolved
