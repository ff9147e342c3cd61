"""dcm2bids 3.x configuration files (--bids-config), read and checked before anything is fetched.

A configuration's strings become folder and file names, so every one of them is checked here:
a datatype is one of BIDS's, a suffix and each entity ASCII letters and digits, every criterion
of a type dcm2bids compares, every IntendedFor id one that a description declares. An option
that would change dcm2bids's output and that these scripts do not implement is refused rather
than ignored, so a configuration never quietly gives a tree other than dcm2bids's.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# The folders BIDS allows below a session (the BIDS schema's datatypes, without `phenotype`,
# which sits at the dataset root).
BIDS_DATATYPES = ("anat", "beh", "dwi", "eeg", "emg", "fmap", "func", "ieeg", "meg", "micr",
                  "motion", "mrs", "nirs", "perf", "pet")
SEARCH_METHODS = ("fnmatch", "re")
DUP_METHODS = ("run", "dup")
BIDS_URI_STYLES = ("URI", "relative")
# The one-key objects dcm2bids 3.3 compares a sidecar value with (sidecar.py, isLink).
NUMBER_COMPARISONS = ("lt", "gt", "le", "ge", "btw", "btwe")
RANGE_COMPARISONS = ("btw", "btwe")
# dcm2bids 3 stops on descriptions written for dcm2bids 2; what each key became.
RENAMED_KEYS = {"dataType": "datatype", "modalityLabel": "suffix", "customLabels": "custom_entities",
                "sidecarChanges": "sidecar_changes", "intendedFor": "sidecar_changes.IntendedFor"}
# Sidecar fields whose values dcm2bids reads as description ids and replaces by those images.
ID_FIELDS = ("IntendedFor", "Sources")
# Options whose defaults are what these scripts do; anything else would change the output.
DEFAULT_DCM2NIIX_OPTIONS = "-b y -ba y -z y -f '%3s_%f_%p_%t'"
DEFAULT_COMP_KEYS = ["AcquisitionTime", "SeriesNumber", "SidecarFilename"]
LETTERS_AND_DIGITS = re.compile(r"[A-Za-z0-9]+")
# sub- and ses- come from XNAT's labels, never from a description.
RESERVED_ENTITIES = ("sub", "ses")
SCALAR = (str, int, float, bool)


class ConfigError(ValueError):
    """A --bids-config file that cannot be used; the message names the file, the description
    (number, and id if any) and the field."""


@dataclass(frozen=True)
class Description:
    """One entry of a configuration's `descriptions`, checked."""
    datatype: str
    suffix: str
    criteria: dict
    # "key-value" strings as dcm2bids joins them into the name; a bare key (no value) is kept as
    # written: dcm2bids fills it only from extractors, which are refused, and otherwise drops it.
    custom_entities: tuple[str, ...] = ()
    sidecar_changes: dict = field(default_factory=dict)   # "IntendedFor": an id or a list of ids
    id: str | None = None


@dataclass(frozen=True)
class BidsConfig:
    """A dcm2bids 3.x configuration: its descriptions and the top-level options that matter."""
    descriptions: tuple[Description, ...]
    search_method: str = "fnmatch"   # criteria strings are shell wildcards, or "re": regexes
    case_sensitive: bool = True      # for fnmatch only, as in dcm2bids
    dup_method: str = "run"          # images that take one name: run-01, run-02 ... or dup-01 ...
    bids_uri: str = "URI"            # IntendedFor as bids::sub-..., or "relative" to the subject


def shown(value: object) -> str:
    """A value as the configuration file spells it, cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def load_config(path: Path) -> BidsConfig:
    """The checked configuration; ConfigError naming the file, the description and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: could not be read: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: is not JSON: {error}") from None
    if not isinstance(data, dict) or "descriptions" not in data:
        raise ConfigError(f"{path}: has no \"descriptions\" list (a dcm2bids configuration is a "
                          f"JSON object with one)")
    return read_config(data, str(path))


def read_config(data: dict, where: str) -> BidsConfig:
    """A configuration from its parsed JSON; `where` (the file) starts every message."""
    options = read_options(data, where)
    entries = data["descriptions"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: \"descriptions\" must be a list of at least one description, "
                          f"not {shown(entries)}")
    descriptions = tuple(read_description(entry, f"{where}: description {number}",
                                          options["search_method"])
                         for number, entry in enumerate(entries, 1))
    check_ids(descriptions, where)
    return BidsConfig(descriptions, **options)


def read_options(data: dict, where: str) -> dict:
    """The top-level options dcm2bids 3.3 reads from a configuration, checked."""
    options = {"search_method": data.get("search_method", "fnmatch"),
               "case_sensitive": data.get("case_sensitive", True),
               "dup_method": data.get("dup_method", "run"),
               "bids_uri": data.get("bids_uri", "URI")}
    for name, allowed in (("search_method", SEARCH_METHODS), ("dup_method", DUP_METHODS),
                          ("bids_uri", BIDS_URI_STYLES)):
        if options[name] not in allowed:
            raise ConfigError(f"{where}: {name} {shown(options[name])} is not one of "
                              f"{', '.join(allowed)}")
    if not isinstance(options["case_sensitive"], bool):
        raise ConfigError(f"{where}: case_sensitive {shown(options['case_sensitive'])} is not "
                          f"true or false")
    if data.get("post_op"):
        raise ConfigError(f"{where}: post_op (commands run on the converted images) is not "
                          f"supported: remove it and run those commands on the dataset afterwards")
    if data.get("extractors"):
        raise ConfigError(f"{where}: extractors (entities taken from sidecar fields) are not "
                          f"supported: write each entity out in custom_entities")
    if "dcm2niixOptions" in data and not same_dcm2niix_options(data["dcm2niixOptions"]):
        raise ConfigError(f"{where}: dcm2niixOptions {shown(data['dcm2niixOptions'])} is not "
                          f"supported: these scripts run dcm2niix as dcm2bids does by default "
                          f"({DEFAULT_DCM2NIIX_OPTIONS}); remove the option")
    if "compKeys" in data and data["compKeys"] != DEFAULT_COMP_KEYS:
        raise ConfigError(f"{where}: compKeys {shown(data['compKeys'])} is not supported: runs "
                          f"are numbered in dcm2bids's default order ({', '.join(DEFAULT_COMP_KEYS)}); "
                          f"remove the option")
    return options


def same_dcm2niix_options(options: object) -> bool:
    """dcm2bids's default dcm2niix options, in any order. The -f name pattern counts too: it makes
    the SidecarFilename that criteria may match and that orders runs."""
    switches = dcm2niix_switches(options) if isinstance(options, str) else None
    return switches is not None and switches == dcm2niix_switches(DEFAULT_DCM2NIIX_OPTIONS)


def dcm2niix_switches(options: str) -> list[tuple[str, str]] | None:
    try:
        words = shlex.split(options)
    except ValueError:   # unbalanced quotes
        return None
    return sorted(zip(words[::2], words[1::2])) if len(words) % 2 == 0 else None


def read_description(entry: object, where: str, search_method: str) -> Description:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: is {shown(entry)}, not an object with datatype, suffix and "
                          f"criteria")
    identifier = entry.get("id")
    if identifier is not None and (not isinstance(identifier, str) or not identifier):
        raise ConfigError(f"{where}: id {shown(identifier)} is not a string")
    if identifier is not None:
        where += f" (id {shown(identifier)})"
    old = [key for key in RENAMED_KEYS if key in entry]
    if old:
        raise ConfigError(f"{where}: {old[0]} is a dcm2bids 2 key; dcm2bids 3 calls it "
                          f"{RENAMED_KEYS[old[0]]}")
    missing = [key for key in ("datatype", "suffix", "criteria") if key not in entry]
    if missing:
        raise ConfigError(f"{where} needs \"datatype\", \"suffix\" and \"criteria\" (it has no "
                          f"{' and no '.join(missing)})")
    datatype, suffix = entry["datatype"], entry["suffix"]
    if datatype not in BIDS_DATATYPES:
        raise ConfigError(f"{where}: datatype {shown(datatype)} is not a BIDS datatype (one of "
                          f"{', '.join(BIDS_DATATYPES)})")
    if not isinstance(suffix, str) or not LETTERS_AND_DIGITS.fullmatch(suffix):
        raise ConfigError(f"{where}: suffix {shown(suffix)} is not ASCII letters and digits "
                          f"(such as T1w or bold)")
    return Description(datatype=datatype, suffix=suffix,
                       criteria=read_criteria(entry["criteria"], where, search_method),
                       custom_entities=read_entities(entry.get("custom_entities", ()), where),
                       sidecar_changes=read_sidecar_changes(entry.get("sidecar_changes", {}), where),
                       id=identifier)


def read_criteria(criteria: object, where: str, search_method: str) -> dict:
    if not isinstance(criteria, dict) or not criteria:
        raise ConfigError(f"{where}: criteria {shown(criteria)} is not an object of sidecar fields "
                          f"and the values they must match")
    for key, wanted in criteria.items():
        problem = criterion_problem(wanted, search_method)
        if problem:
            raise ConfigError(f"{where}: criteria {shown(key)}: {shown(wanted)} {problem}")
    return criteria


def criterion_problem(wanted: object, search_method: str) -> str:
    """Why dcm2bids cannot compare a sidecar value with `wanted` ("" when it can)."""
    if isinstance(wanted, list):
        return next(filter(None, (pattern_problem(item, search_method) for item in wanted)), "")
    if not isinstance(wanted, dict):
        return pattern_problem(wanted, search_method)
    if len(wanted) != 1:
        return "has more than one key (dcm2bids takes one: any, lt, gt, le, ge, btw or btwe)"
    (comparison, value), = wanted.items()
    if comparison == "any":
        if not isinstance(value, list) or not value:
            return "needs a list of values, any of which may match"
        for option in value:
            problem = criterion_problem(option, search_method) if isinstance(option, list) \
                else pattern_problem(option, search_method)
            if problem:
                return problem
        return ""
    if comparison in NUMBER_COMPARISONS:
        numbers = value if isinstance(value, list) else [value]
        count = 2 if comparison in RANGE_COMPARISONS else 1
        if len(numbers) != count or not all(is_number(number) for number in numbers):
            return (f"needs {'a list of two numbers' if count == 2 else 'a number'} to compare with")
        return ""
    return (f"uses {shown(comparison)}, which dcm2bids 3.3 does not know (it knows any, lt, gt, "
            f"le, ge, btw and btwe)")


def pattern_problem(pattern: object, search_method: str) -> str:
    if not isinstance(pattern, SCALAR):
        return "is not a string, number, true/false or a list of them"
    if search_method == "re" and isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as error:
            return f"is not a regular expression ({error})"
    return ""


def is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)   # dcm2bids takes numbers written as strings too
    except (TypeError, ValueError):
        return False
    return True


def read_entities(entities: object, where: str) -> tuple[str, ...]:
    """custom_entities as "key-value" strings; dcm2bids joins a list with _ and splits the name
    on _, so "acq-hi_dir-AP" is two entities."""
    if isinstance(entities, str):
        entities = [entities]
    if not isinstance(entities, (list, tuple)) or not all(isinstance(e, str) for e in entities):
        raise ConfigError(f"{where}: custom_entities {shown(entities)} is not a string or a list "
                          f"of strings such as \"task-rest\"")
    parts = [part for entity in entities for part in entity.split("_") if part]
    for part in parts:
        key, dash, value = part.partition("-")
        if not LETTERS_AND_DIGITS.fullmatch(key) or (dash and not LETTERS_AND_DIGITS.fullmatch(value)):
            raise ConfigError(f"{where}: custom_entities {shown(part)} is not key-value with ASCII "
                              f"letters and digits on each side (such as \"task-rest\")")
        if key.lower() in RESERVED_ENTITIES:
            raise ConfigError(f"{where}: custom_entities {shown(part)}: sub and ses come from "
                              f"XNAT's labels, not from a description")
    return tuple(parts)


def read_sidecar_changes(changes: object, where: str) -> dict:
    if not isinstance(changes, dict):
        raise ConfigError(f"{where}: sidecar_changes {shown(changes)} is not an object of "
                          f"sidecar fields and their new values")
    for key, value in changes.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, SCALAR) for item in values):
            raise ConfigError(f"{where}: sidecar_changes {shown(key)}: {shown(value)} is not a "
                              f"string, number, true/false or a list of them (dcm2bids drops it)")
        if key in ID_FIELDS and not all(isinstance(item, str) for item in values):
            raise ConfigError(f"{where}: sidecar_changes {shown(key)}: {shown(value)} is not an "
                              f"id or a list of ids of other descriptions")
    return changes


def check_ids(descriptions: tuple[Description, ...], where: str) -> None:
    """Every IntendedFor (or Sources) id names a description's id."""
    known = {description.id for description in descriptions if description.id is not None}
    for number, description in enumerate(descriptions, 1):
        for key in ID_FIELDS:
            value = description.sidecar_changes.get(key, [])
            for wanted in value if isinstance(value, list) else [value]:
                if wanted not in known:
                    named = f" (id {shown(description.id)})" if description.id is not None else ""
                    raise ConfigError(
                        f"{where}: description {number}{named}: sidecar_changes {shown(key)}: "
                        f"{shown(wanted)} is not the id of any description"
                        + (f" (ids: {', '.join(sorted(known))})" if known else " (none has an id)"))
