"""Series named by the ReproIn convention, read as heudiconv's reproin heuristic reads them:

    [PREFIX:]<datatype>[-<suffix>][_ses-<S>][_task-<T>][_acq-<A>][_run-<R>][_dir-<D>][_<key>-<value>...][__<comment>]

The protocol name is tried first, then the series description (as heudiconv does). Written from
the heuristic's documented rules, not from its code."""
from __future__ import annotations

import re
from dataclasses import dataclass

# The datatypes heudiconv's reproin heuristic reads from a name (perf: ASL).
REPROIN_DATATYPES = ("anat", "func", "dwi", "fmap", "perf")
# The suffix a datatype takes when the name gives none (fmap: decided by each image).
DEFAULT_SUFFIXES = {"func": "bold", "dwi": "dwi", "perf": "asl"}
# The suffixes BIDS allows in each datatype that a ReproIn name may give (others are not kept:
# the series is then identified by what its images are, keeping the name's entities).
BIDS_SUFFIXES = {
    "anat": {"T1w", "T2w", "FLAIR", "T2starw", "PDw", "PDT2", "inplaneT1", "inplaneT2", "angio", "T1map",
             "T2map", "T2starmap", "R1map", "R2map", "UNIT1", "MP2RAGE", "MEGRE", "MESE", "VFA", "IRT1",
             "scout"},
    "func": {"bold", "cbv", "phase", "sbref"},
    "dwi": {"dwi", "sbref"},
    "fmap": {"epi", "fieldmap", "magnitude", "magnitude1", "magnitude2", "phasediff", "phase1", "phase2"},
    "perf": {"asl", "m0scan"},
}
# Characters heudiconv deletes from the values of task, acq, run and ses.
UNSAFE_IN_VALUES = re.compile(r"[#!@$%^&.,:;_\-+=\s]")
SCANNER_PREFIX = re.compile(r"^[A-Z]*:")   # "PU:" and the like, added by some scanners
# BIDS entities a ReproIn name may carry (the rest of the name's key-value parts are ignored).
KNOWN_KEYS = ("ses", "task", "acq", "ce", "trc", "rec", "dir", "run", "mod", "echo", "flip", "inv",
              "mt", "part", "chunk")


@dataclass(frozen=True)
class ReproinName:
    datatype: str
    suffix: str | None                   # None: the name gives none (a field map: per image)
    entities: tuple[tuple[str, str], ...]   # (key, value) as the name gives them
    run_marker: str = ""                 # "+" (next run) or "=" (the same run), heudiconv's markers

    def entity(self, key: str) -> str | None:
        return dict(self.entities).get(key)


def parse_reproin(text: str | None) -> ReproinName | None:
    """The ReproIn reading of one name; None when it does not follow the convention."""
    spec = (text or "").strip()
    spec = SCANNER_PREFIX.sub("", spec)
    spec = spec.split("__", 1)[0]
    if spec.startswith("WIP "):   # Philips marks protocols in progress so
        spec = spec[4:]
    spec = spec.replace("anat_T1w", "anat-T1w")   # a spelling heudiconv reads too
    parts = [part for part in spec.split("_") if part]
    if not parts:
        return None
    if parts[0] == "scout":
        parts[0] = "anat-scout"
    datatype, _, suffix = parts[0].partition("-")
    if datatype not in REPROIN_DATATYPES:
        return None
    if suffix not in BIDS_SUFFIXES[datatype]:
        suffix = ""
    entities: list[tuple[str, str]] = []
    marker = ""
    for part in parts[1:]:
        key, dash, value = part.partition("-")
        if not dash and key[-1:] in ("+", "="):
            key, value = key[:-1], key[-1]
        if key not in KNOWN_KEYS or not value:
            continue   # a comment word or a flag: heudiconv carries these over, BIDS has no place
        if key == "run" and value in ("+", "="):
            marker = value
            continue
        value = UNSAFE_IN_VALUES.sub("", value)
        if not value:
            continue
        entities.append((key, value))
    return ReproinName(datatype, suffix or DEFAULT_SUFFIXES.get(datatype),
                       tuple((k, v) for k, v in entities if k != "ses"), marker)


def reproin_of(*names: str | None) -> ReproinName | None:
    """The first of the names (protocol name, then series description) that follows ReproIn."""
    for name in names:
        found = parse_reproin(name)
        if found is not None:
            return found
    return None
