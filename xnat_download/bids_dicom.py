"""What --bids reads from a scan's DICOM files themselves (with pydicom), and from the files
dcm2niix wrote, beyond the sidecar: why a series of valid DICOM gives no image (dcm2niix answers
that and a broken series alike, exit 2 "No valid DICOM images were found"), the acquisition date
and time for scans.tsv, the participant's age and sex, and each image's volumes and b-values."""
from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

from xnat_download.bids_identify import MAX_B, VOLUMES

# SOP classes that hold no image dcm2niix converts (DICOM PS3.4, annex B).
NO_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data Storage",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR Spectroscopy Storage",
    "1.2.840.10008.5.1.4.1.1.104.1": "an encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.11.1": "a presentation state",
    "1.2.840.10008.5.1.4.1.1.481.3": "a structure set",
}
REPORT_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."   # structured reports
PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MOST_FILES_READ = 200   # a no-image series is judged on this many of its files
ACQ_TIME = "_acq_time"  # each image's acq_time for scans.tsv, kept in the record with its sidecar


def dicom_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))


def read_header(path: Path):
    """The DICOM header of one file (pixel data not loaded), or None if it is not DICOM."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:   # pydicom is a requirement; without it no series counts as imageless
        return None
    try:
        return pydicom.dcmread(str(path), defer_size=1024)
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error, AttributeError, KeyError,
            TypeError, IndexError):
        return None


def why_no_image(folder: Path) -> str:
    """Why this series of valid DICOM holds nothing dcm2niix makes an image of; "" when it may
    (some file is not DICOM, or holds pixel data): then dcm2niix's failure is a failure."""
    files = dicom_files(folder)
    if not files:
        return ""
    kinds = set()
    for path in files[:MOST_FILES_READ]:
        header = read_header(path)
        if header is None or not hasattr(header, "SOPClassUID"):
            return ""
        sop_class = str(header.SOPClassUID)
        if sop_class in NO_IMAGE_CLASSES:
            kinds.add(NO_IMAGE_CLASSES[sop_class])
        elif sop_class.startswith(REPORT_CLASS_PREFIX):
            kinds.add("a structured report")
        elif any(tag in header for tag in PIXEL_TAGS):
            return ""
        else:
            kinds.add("no pixel data")
    return f"valid DICOM that holds no image ({', '.join(sorted(kinds))})"


def session_facts(folder: Path) -> dict:
    """From one DICOM file of a scan: its acquisition date (YYYY-MM-DD), and the participant's
    age (years) and sex, where the file holds them."""
    header = next((found for found in map(read_header, dicom_files(folder)[:3]) if found is not None), None)
    if header is None:
        return {}
    facts: dict = {}
    for key in ("AcquisitionDate", "SeriesDate", "StudyDate", "ContentDate"):
        value = str(header.get(key, "") or "")
        if re.fullmatch(r"\d{8}", value):
            facts["date"] = f"{value[:4]}-{value[4:6]}-{value[6:]}"
            break
    age = age_in_years(str(header.get("PatientAge", "") or ""))
    if age is not None:
        facts["age"] = age
    sex = str(header.get("PatientSex", "") or "").upper()
    if sex in ("M", "F", "O"):
        facts["sex"] = sex
    return facts


def age_in_years(text: str) -> float | int | None:
    """DICOM's age string (045Y, 018M, 003W, 010D) in years."""
    match = re.fullmatch(r"(\d{1,3})([YMWD])", text.strip().upper())
    if not match:
        return None
    count, unit = int(match.group(1)), match.group(2)
    if count == 0:
        return None   # 000Y: how anonymised exports blank the age
    if unit == "Y":
        return count
    return round(count / {"M": 12, "W": 52.1775, "D": 365.25}[unit], 2)


def acq_time(date: str | None, time: object) -> str:
    """BIDS's acq_time (YYYY-MM-DDThh:mm:ss[.ffffff]) from the date and dcm2niix's
    AcquisitionTime; n/a when either is unknown."""
    match = re.fullmatch(r"(\d{2}):?(\d{2}):?(\d{2})(\.\d+)?", str(time or "").strip())
    if not date or not match:
        return "n/a"
    fraction = (match.group(4) or "")[:7]
    return f"{date}T{match.group(1)}:{match.group(2)}:{match.group(3)}{fraction}"


def volumes_of(nifti: Path) -> int | None:
    """The number of volumes of a NIfTI image (1 for 3D), from its header."""
    try:
        opener = gzip.open if nifti.name.endswith(".gz") else open
        with opener(nifti, "rb") as handle:
            header = handle.read(348)
        order = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
        dims = struct.unpack(f"{order}8h", header[40:56])
    except (OSError, struct.error, EOFError):
        return None
    return max(dims[4], 1) if dims[0] >= 4 else 1


def largest_b_value(bval: Path) -> float | None:
    try:
        return max(float(value) for value in bval.read_text(encoding="utf-8").split())
    except (OSError, ValueError):
        return None


def add_image_facts(sidecar: dict, files: dict[str, Path], facts: dict) -> None:
    """What the default rules read beside the sidecar (never written into it): the image's
    volumes, its largest b-value, and its acq_time for scans.tsv."""
    volumes = volumes_of(files[".nii.gz"])
    if volumes is not None:
        sidecar[VOLUMES] = volumes
    if ".bval" in files:
        largest = largest_b_value(files[".bval"])
        if largest is not None:
            sidecar[MAX_B] = largest
    when = sidecar.get("AcquisitionDateTime")
    sidecar[ACQ_TIME] = (acq_time(str(when)[:10], str(when)[11:]) if isinstance(when, str) and len(when) > 11
                         else acq_time(facts.get("date"), sidecar.get("AcquisitionTime")))
