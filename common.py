"""Site defaults and the layout of downloaded_data: the file to edit for your site.

The constants below are the first thing to change (each can also come from the command line or
the environment; see README.md). The functions below them decide where files land:

    OUTPUT_DIR/scan-<ID>_<type>/                      one scan (3_download_single_scan.py)
    OUTPUT_DIR/session-<label>/scan-<ID>_<type>/      a session (4_download_session.py)

Names from the server are untrusted, so every folder and file name is cleaned here first.
The machinery (login, listing, downloading) lives in the package xnat_download/ beside this file.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

# --- Site defaults: edit these --------------------------------------------------------------
XNAT_SERVER = "https://xnat.abudhabi.nyu.edu"
PROJECT_ID = "rokerslab_ari-clean"
TOKEN_USER = ""      # alias token ("Manage Alias Tokens" in XNAT); prefer XNAT_USER
TOKEN_SECRET = ""    # never commit a real secret; prefer XNAT_PASS or ~/.netrc
OUTPUT_DIR = "downloaded_data"
RESOURCE = "DICOM"
WORKERS = 8
RETRIES = 5          # extra attempts per file or listing after the first one fails
TIMEOUT = 60         # seconds without a byte from the server before an attempt is abandoned
RETRY_WAIT = 1.0     # seconds before the first retry; doubles each time (XNAT_RETRY_WAIT overrides)
BIDS_DIR = "bids"    # where --bids writes the BIDS dataset

# How --bids names what dcm2niix makes of a scan. Rows (patterns, datatype, suffix): the first row
# whose patterns match the scan's type or series description wins (case-insensitive, wildcards as
# in --scan-types); datatype None skips the scan. Each image dcm2niix makes of the scan is then
# named on its own sidecar:
#   - a derived image (ImageType DERIVED, ADC, TRACE, FA) is left out, and named in the note;
#   - func: the task from task-<x> in the type or description, else func_<x>, else "rest" if the
#     word rest appears, else "task"; multi-echo series get echo-<N>; in any series that holds
#     magnitude and phase (or real/imaginary) images, each gets part-mag, part-phase, ...;
#   - ("fmap", "fieldmap"): a field map of any vendor: the phase image -> phasediff (phase1,
#     phase2 when each echo has its own), an image in Hz -> fieldmap and its magnitude ->
#     magnitude, else magnitude images -> magnitude1 / magnitude2 by EchoNumber;
#   - ("fmap", "epi"): a spin-echo EPI field map, dir-<AP|PA|LR|RL> from a word of the type or
#     description, else from PhaseEncodingDirection.
# Field maps' sidecars get IntendedFor: the session's func and dwi images. --bids-config takes a
# dcm2bids configuration file instead.
BIDS_MAP = [
    (["*localizer*", "*localiser*", "*scout*", "*aahead*"], None, None),
    (["*sbref*"], "func", "sbref"),
    (["*se_epi*", "*sefm*", "*spinecho*", "*spin_echo*", "*topup*", "*epi*fmap*", "*fmap*epi*"],
     "fmap", "epi"),
    (["*field*map*", "*fieldmap*", "*fmap*", "*b0*map*", "gre_field*"], "fmap", "fieldmap"),
    (["*t1*", "*mprage*"], "anat", "T1w"),
    (["*flair*"], "anat", "FLAIR"),
    (["*t2*"], "anat", "T2w"),
    (["*dwi*", "*dti*", "*diff*"], "dwi", "dwi"),
    (["*bold*", "*fmri*", "func*"], "func", "bold"),
    (["*b0*"], "fmap", "fieldmap"),   # after dwi: a DWI's b0 series is no field map
]
# ----------------------------------------------------------------------------------------------


# --- Where a download lands ---------------------------------------------------------------------

def single_scan_folder(output_dir: Path, scan) -> Path:
    """OUTPUT_DIR/scan-<ID>_<type>/, for one scan. `scan` has .id and .type."""
    return output_dir / scan_folder_name(scan)


def session_scan_folder(output_dir: Path, session, scan) -> Path:
    """OUTPUT_DIR/session-<label>/scan-<ID>_<type>/, for a scan of a session (which has .label)."""
    return output_dir / session_folder_name(session) / scan_folder_name(scan)


def scan_folder_name(scan) -> str:
    # Cleaned as one name, so that a long type is cut like a long file name, not refused by the disk.
    return safe_component(f"scan-{scan.id}" + (f"_{scan.type}" if scan.type else ""))


def session_folder_name(session) -> str:
    return safe_component(f"session-{session.label}")


# --- Names on disk -----------------------------------------------------------------------------

UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME_BYTES = 200


class UnsafeName(ValueError):
    """A server name that cannot be made safe (.., absolute, empty): that file is refused."""


def safe_component(name: str) -> str:
    """One path component with only [A-Za-z0-9._-]; long names cut, with a digest to stay unique."""
    cleaned = UNSAFE_CHARACTERS.sub("_", name)
    if cleaned in ("", ".", ".."):
        raise UnsafeName(f"refused the name {name!r}")
    if len(cleaned) > MAX_NAME_BYTES:
        stem, dot, suffix = cleaned.rpartition(".")
        suffix = dot + suffix if dot and len(suffix) <= 16 else ""
        digest = hashlib.md5(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        cleaned = cleaned[:MAX_NAME_BYTES - len(suffix) - 13] + "-" + digest + suffix
    # Our own bookkeeping names are reserved.
    if cleaned.startswith(".xnat-"):
        cleaned = "_" + cleaned
    if cleaned.endswith(".part"):
        cleaned += "_"
    return cleaned


def safe_relative_path(name: str) -> str:
    """A server file name made safe to join below a scan folder; UnsafeName if it cannot be."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeName(f"refused the absolute path {name!r}")
    parts = name.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeName(f"refused the path {name!r}")
    return "/".join(safe_component(part) for part in parts)


def inside(folder: Path, path: Path) -> bool:
    """True if path, links resolved, stays within folder."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
