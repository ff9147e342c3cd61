"""The per-session tables --bids writes beside the images: `sub-<S>_ses-<E>_scans.tsv` (each image
with its acq_time), built from the record so that reruns and concurrent shards write the same
rows, and the participant's age and sex for participants.tsv."""
from __future__ import annotations

from typing import Iterable

from xnat_download.bids_dicom import ACQ_TIME

PARTICIPANT_FACTS = ("age", "sex")


def scans_table(entries: Iterable[dict], project: str, session: str, folder: str) -> str:
    """The scans.tsv of one session folder (sub-S/ses-E) from the record's entries of that XNAT
    session: every NIfTI image, with its acq_time; "" when the session has none."""
    rows = sorted((name[len(folder) + 1:], str(image.get("sidecar", {}).get(ACQ_TIME, "n/a")))
                  for entry in entries if entry.get("session") == session and entry.get("project") == project
                  for image in entry.get("images", []) for name in image.get("files", [])
                  if name.endswith(".nii.gz") and name.startswith(folder + "/"))
    if not rows:
        return ""
    return "".join(f"{name}\t{when}\n" for name, when in [("filename", "acq_time"), *rows])


def participant_facts(facts: Iterable[dict]) -> dict:
    """The participant's age and sex, the first each scan's DICOM gives."""
    found: dict = {}
    for scan_facts in facts:
        for key in PARTICIPANT_FACTS:
            if key in scan_facts:
                found.setdefault(key, scan_facts[key])
    return found
