"""What an image is, from what dcm2niix wrote of it (its sidecar) and its NIfTI header (the number
of volumes), with the series description only as a hint: the identification --bids uses for a
series that neither a ReproIn name nor a row of the default map names.

Each rule names a datatype and suffix and the sidecar fields it reads; the record of a converted
scan keeps every field some rule reads (NAMING_FIELDS), so that a rerun names it again, without
converting, exactly as the first run did."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# Facts about an image that are not in its sidecar; bids.py adds them to the sidecar it reads
# (never to the file), from the NIfTI header and the .bval file.
VOLUMES = "_volumes"   # the NIfTI's 4th dimension (1 for a 3D image)
MAX_B = "_max_bval"    # the largest b-value of a diffusion series
# More volumes than this and an EPI series is a run (BOLD), not a spin-echo field map.
MOST_FIELD_MAP_VOLUMES = 10
DIFFUSION_B = 50       # s/mm²: below this a volume counts as b = 0

WORDS = re.compile(r"[A-Za-z]+|\d+")
FIELD_MAP_HINTS = {"fm", "fmap", "fieldmap", "field", "topup", "sefm", "pepolar", "blip", "revpe",
                   "distortion", "dist", "b0map", "spinecho"}
SBREF_HINTS = {"sbref"}
ASL_HINTS = {"asl", "pcasl", "pasl", "casl", "perfusion", "cbf", "relcbf", "m0"}
LOCALIZER_HINTS = {"localizer", "localiser", "locator", "scout", "aahead", "aascout", "autoalign", "survey",
                   "tripilot", "3plane", "calibration", "asset", "refscan"}


def words(text: str | None) -> set[str]:
    """The lower-case words of a name, split at non-letters and between letters and digits."""
    return {word.lower() for word in WORDS.findall(text or "")}


def hint_words(sidecar: dict, *names: str | None) -> set[str]:
    found: set[str] = set()
    for text in (sidecar.get("SeriesDescription"), sidecar.get("ProtocolName"), *names):
        found |= words(text)
        found |= {word.lower() for word in re.findall(r"[A-Za-z0-9]+", text or "")}
    return found


def image_types(sidecar: dict) -> set[str]:
    raw = sidecar.get("ImageType", [])
    return {str(item).upper() for item in raw} if isinstance(raw, list) else set()


def sequence_of(sidecar: dict) -> str:
    """ScanningSequence, SequenceName and PulseSequenceName in one upper-case string."""
    return " ".join(str(sidecar.get(key, "")) for key in
                    ("ScanningSequence", "SequenceVariant", "SequenceName", "PulseSequenceName")).upper()


def is_epi(sidecar: dict) -> bool:
    scanning = str(sidecar.get("ScanningSequence", "")).upper()
    names = " ".join(str(sidecar.get(key, "")) for key in ("SequenceName", "PulseSequenceName")).upper()
    return "EP" in re.split(r"[\\ ,]+", scanning) or bool(re.search(r"EPI|^\*?EP|EPSE|EPFID|FEEPI|SEEPI", names))


def is_spin_echo(sidecar: dict) -> bool:
    scanning = set(re.split(r"[\\ ,]+", str(sidecar.get("ScanningSequence", "")).upper()))
    names = " ".join(str(sidecar.get(key, "")) for key in ("SequenceName", "PulseSequenceName")).upper()
    return ("SE" in scanning and "GR" not in scanning) or bool(re.search(r"EPSE|SEEPI|SE_EPI|SPINECHO", names))


def number(sidecar: dict, key: str) -> float | None:
    value = sidecar.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- the rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One kind of image: (datatype, suffix), the sidecar fields its test reads, and the test."""
    datatype: str
    suffix: str
    reads: tuple[str, ...]
    test: Callable[[dict, set[str]], bool]


def _diffusion(sidecar: dict, hints: set[str]) -> bool:
    top = number(sidecar, MAX_B)
    return top is not None and top >= DIFFUSION_B


def _spin_echo_field_map(sidecar: dict, hints: set[str]) -> bool:
    volumes = number(sidecar, VOLUMES) or 1
    if not is_epi(sidecar) or volumes > MOST_FIELD_MAP_VOLUMES:
        return False
    return bool(hints & FIELD_MAP_HINTS) or (is_spin_echo(sidecar) and not hints & SBREF_HINTS)


def _sbref(sidecar: dict, hints: set[str]) -> bool:
    return is_epi(sidecar) and (number(sidecar, VOLUMES) or 1) == 1 and bool(hints & SBREF_HINTS)


def _bold(sidecar: dict, hints: set[str]) -> bool:
    return is_epi(sidecar) and not is_spin_echo(sidecar) or "FMRI" in image_types(sidecar)


def _gre_field_map(sidecar: dict, hints: set[str]) -> bool:
    types = image_types(sidecar)
    if sidecar.get("Units") == "Hz" or "FIELDMAPHZ" in types or "EchoTime1" in sidecar:
        return True
    sequence = sequence_of(sidecar)
    return bool(re.search(r"FM2D|FM3D|FIELD_?MAP|B0RF|B0MAP", sequence)) or \
        bool(hints & FIELD_MAP_HINTS and not is_epi(sidecar))


def _flair(sidecar: dict, hints: set[str]) -> bool:
    inversion, echo = number(sidecar, "InversionTime"), number(sidecar, "EchoTime")
    return (inversion is not None and inversion >= 1.4 and echo is not None and echo >= 0.06) or \
        "flair" in hints


def _t1w(sidecar: dict, hints: set[str]) -> bool:
    inversion, echo = number(sidecar, "InversionTime"), number(sidecar, "EchoTime")
    repetition = number(sidecar, "RepetitionTime")
    if inversion is not None and 0.3 <= inversion < 1.4 and echo is not None and echo < 0.02:
        return True   # MPRAGE, IR-SPGR, TFE with an inversion
    three_d = str(sidecar.get("MRAcquisitionType", "")).upper() == "3D"
    return bool(three_d and repetition is not None and repetition < 0.05 and echo is not None
                and echo < 0.01 and "GR" in sequence_of(sidecar)
                and not hints & {"tof", "angio", "swi", "t2", "pd", "mt", "qsm"})


def _t2w(sidecar: dict, hints: set[str]) -> bool:
    echo, repetition = number(sidecar, "EchoTime"), number(sidecar, "RepetitionTime")
    inversion = number(sidecar, "InversionTime")
    return bool(echo is not None and echo >= 0.06 and repetition is not None and repetition >= 1.5
                and (inversion is None or inversion < 0.3) and "SE" in sequence_of(sidecar)
                and not is_epi(sidecar) and not hints & {"pd", "star", "swi"})


RULES = (
    Rule("dwi", "dwi", (MAX_B,), _diffusion),
    Rule("fmap", "epi", ("ScanningSequence", "SequenceName", "PulseSequenceName", VOLUMES),
         _spin_echo_field_map),
    Rule("func", "sbref", ("ScanningSequence", "SequenceName", VOLUMES), _sbref),
    Rule("func", "bold", ("ScanningSequence", "SequenceName", "ImageType", VOLUMES), _bold),
    Rule("fmap", "fieldmap", ("Units", "ImageType", "EchoTime1", "SequenceName", "ScanningSequence"),
         _gre_field_map),
    Rule("anat", "FLAIR", ("InversionTime", "EchoTime"), _flair),
    Rule("anat", "T1w", ("InversionTime", "EchoTime", "RepetitionTime", "MRAcquisitionType",
                         "ScanningSequence", "SequenceVariant"), _t1w),
    Rule("anat", "T2w", ("EchoTime", "RepetitionTime", "InversionTime", "ScanningSequence"), _t2w),
)
# Fields every naming step reads besides the rules': the image's kind, its echo, its direction,
# the task a sidecar may carry, the ReproIn name, the description hints, what BIDS requires of a
# spin-echo field map, the volumes and b-values, and the scans.tsv time.
COMMON_FIELDS = ("ImageType", "EchoNumber", "Units", "PhaseEncodingDirection", "EchoTime1", "TaskName",
                 "SeriesDescription", "ProtocolName", "AcquisitionTime", "TotalReadoutTime", VOLUMES,
                 "_acq_time")
NAMING_FIELDS = tuple(sorted({*COMMON_FIELDS, *(field for rule in RULES for field in rule.reads)}))


def identify(sidecar: dict, *names: str | None) -> tuple[str, str] | str:
    """(datatype, suffix) of the first rule the image meets, or why it meets none. `names` are
    XNAT's type and description, read as hints beside the sidecar's own."""
    hints = hint_words(sidecar, *names)
    if hints & LOCALIZER_HINTS:
        return "a localizer"
    if image_types(sidecar) & {"ASL", "PERFUSION"} or hints & ASL_HINTS:
        return ("arterial spin labelling: BIDS's perf needs its labelling scheme (aslcontext.tsv), "
                "which a sidecar does not tell; name it by a rule")
    if not sidecar:
        return "dcm2niix wrote no sidecar for it"
    for rule in RULES:
        if rule.test(sidecar, hints):
            return rule.datatype, rule.suffix
    return "not an image BIDS names without a rule (T1w, T2w, FLAIR, BOLD, DWI or a field map)"
