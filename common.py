"""Site defaults and the layout of downloaded_data: the file to edit for your site.

The constants below are the first thing to change (each can also come from the command line or
the environment; see README.md). The functions below them decide where files land:

    OUTPUT_DIR/scan-<ID>_<type>/                      one scan (3_download_single_scan.py)
    OUTPUT_DIR/session-<label>/scan-<ID>_<type>/      a session (4_download_session.py)

Names from the server are untrusted, so every folder and file name is cleaned first (by
xnat_download/names.py: characters other than letters, digits, `.`, `_` and `-` become `_`).
The machinery (login, listing, downloading) lives in the package xnat_download/ beside this file.
"""
from __future__ import annotations

from pathlib import Path

# The cleaning itself; these names stay importable from here too, as they were before.
from xnat_download.names import (MAX_NAME_BYTES, UnsafeName, distinct_component, inside,  # noqa: F401
                                 safe_component, safe_relative_path, scan_component)

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

# How --bids names what dcm2niix makes of a scan (docs/bids-naming.md). A ReproIn name
# (func-bold_task-rest, anat-T1w_acq-tfl, ...) comes first; then these rows (patterns, datatype,
# suffix): the first row whose patterns match the scan's type or series description wins
# (case-insensitive, wildcards as in --scan-types); datatype None skips the scan. A series no row
# names is identified by what its images are (sidecar and NIfTI header). Each image dcm2niix
# makes of the scan is then named on its own sidecar:
#   - a derived image (ImageType DERIVED, ADC, TRACE, FA) is left out, and named in the note;
#   - func: the task from task-<x> in the type or description, else func_<x>, else "rest" for
#     rest/resting/rs/fcMRI..., else made from the description's words; multi-echo series get
#     echo-<N>; in any series that holds magnitude and phase (or real/imaginary) images, each
#     gets part-mag, part-phase, ...;
#   - ("fmap", "fieldmap"): a field map of any vendor: the phase image -> phasediff (phase1,
#     phase2 when each echo has its own), an image in Hz -> fieldmap and its magnitude ->
#     magnitude, else magnitude images -> magnitude1 / magnitude2 by EchoNumber;
#   - ("fmap", "epi"): a spin-echo EPI field map, dir-<AP|PA|LR|RL> from a word of the type or
#     description, else from PhaseEncodingDirection.
# dir- goes on DWI and BOLD images when the session holds more than one direction; repeats of one
# name become run-1, run-2, ... Field maps' sidecars get IntendedFor: the session's func and dwi
# images. --bids-config takes a dcm2bids configuration file instead.
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
    """scan-<ID>_<type> (scan-3_EPI_PE_AP for type `EPI PE=AP`), or scan-<ID> without a type.

    Cleaned as one name, so that a long type is cut like a long file name, not refused by the
    disk. Scan IDs are unique in a session, so only an ID that cleaning changes, or that holds the
    `_` parting ID from type, gets a tag of the raw ID and type (scan 1 of type T1 and scan 1_T1
    would otherwise share scan-1_T1). Folders older versions tagged are renamed on the next run.
    """
    return scan_component(scan.id, scan.type)


def session_folder_name(session) -> str:
    """session-<label>; a label that cleaning changes ends in a tag made from it, so that
    `S1 MR1` (session-S1_MR1_<tag>) never shares a folder with `S1_MR1` (session-S1_MR1)."""
    return distinct_component(f"session-{session.label}")
