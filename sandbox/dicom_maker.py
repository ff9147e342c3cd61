"""Small, real MR DICOM files made with pydicom, whose tags say where they belong.

The demo and scaled projects are built of them; `make_dicom` writes one file from a `DicomSpec`.
"""

from __future__ import annotations

import array
import hashlib
import io
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def derived_uid(*parts: str) -> str:
    """A UID that is always the same for the same parts (2.25 form, from a hash)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _short_hash(text: str) -> str:
    """The 7-character base-36 tail XNAT puts in the names of the DICOMs it receives."""
    number = int.from_bytes(hashlib.md5(text.encode()).digest()[:5], "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    tail = ""
    for _ in range(7):
        number, remainder = divmod(number, 36)
        tail = digits[remainder] + tail
    return tail


def xnat_dicom_name(study_uid: str, series_number: str, instance: int, echo: int = 0) -> str:
    """The name XNAT gives a received DICOM; its hash tells apart echoes that share an instance number."""
    hashed = f"{study_uid}/{series_number}/{instance}" + (f"/{echo}" if echo else "")
    return f"{study_uid}-{series_number}-{instance}-{_short_hash(hashed)}.dcm"


@dataclass(frozen=True)
class DicomSpec:
    """What one demo DICOM says about itself."""

    project: str
    subject_label: str
    session_label: str
    date: str
    scan_id: str
    series_description: str
    instance: int
    matrix: int
    slices: int = 0          # > 0: instances go round the slices, one volume after another
    bvalues: tuple[int, ...] = ()   # diffusion: the b-value of each volume
    noise: bool = False      # pixels from a seeded generator: fast for big series, and as hard to
                             # compress as a real image's noise floor
    repetition_time: float = 0.0   # ms
    echo_time: float = 0.0         # ms
    echo: int = 0            # > 0: EchoNumbers; a series' echoes share instance numbers, as on Siemens
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    # Echo times (ms) of the protocol, written where dcm2niix reads a Siemens phase difference's
    # EchoTime1 and EchoTime2: the ASCII protocol of the CSA series header.
    protocol_echo_times: tuple[float, ...] = ()


_TWELVE_BITS_HIGH_BYTE = bytes(value & 0x0F for value in range(256))
# Gradient directions of a diffusion scan's volumes (after b=0, one per volume).
_DIRECTIONS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _ascii_protocol(echo_times: tuple[float, ...]) -> bytes:
    """A Siemens ASCII protocol block naming the echo times (in microseconds, as Siemens writes them)."""
    lines = ["", "### ASCCONV BEGIN ###"]   # dcm2niix reads a non-binary header from its second byte
    lines += [f"alTE[{index}]\t = {round(time * 1000)}" for index, time in enumerate(echo_times)]
    lines += ["### ASCCONV END ###", ""]
    text = "\n".join(lines).encode()
    return text + b"\0" * (len(text) % 2)


def make_dicom(spec: DicomSpec) -> bytes:
    """A small, valid MR image whose tags tell where it belongs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    study_uid = derived_uid(spec.project, spec.session_label)
    series_uid = derived_uid(spec.project, spec.session_label, spec.scan_id)
    instance_uid = derived_uid(spec.project, spec.session_label, spec.scan_id, str(spec.instance),
                               *((f"echo-{spec.echo}",) if spec.echo else ()))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = derived_uid(spec.project, spec.session_label, "frame")
    ds.PatientID = spec.subject_label
    ds.PatientName = spec.subject_label
    ds.StudyID = spec.session_label
    ds.AccessionNumber = spec.session_label
    ds.StudyDescription = f"{spec.project}^sandbox"
    ds.SeriesDescription = spec.series_description
    ds.StudyDate = ds.SeriesDate = spec.date.replace("-", "")
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ImageType = list(spec.image_type)
    if spec.repetition_time:
        ds.RepetitionTime = spec.repetition_time
    if spec.echo_time:
        ds.EchoTime = spec.echo_time
    if spec.echo:
        ds.EchoNumbers = spec.echo
    if spec.protocol_echo_times:
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(
            0x20, "OB", _ascii_protocol(spec.protocol_echo_times))
    ds.SeriesNumber = int(spec.scan_id)
    ds.InstanceNumber = spec.instance
    slice_number, volume = spec.instance, 0
    if spec.slices:
        volume, slice_number = divmod(spec.instance - 1, spec.slices)
        slice_number += 1
        ds.AcquisitionNumber = volume + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(slice_number)]
    ds.PatientPosition = "HFS"
    if spec.bvalues and "DERIVED" in spec.image_type:
        ds.DiffusionBValue = float(max(spec.bvalues))   # a trace image: the mean over directions
        ds.DiffusionDirectionality = "ISOTROPIC"
    elif spec.bvalues:
        bvalue = spec.bvalues[volume % len(spec.bvalues)]
        ds.DiffusionBValue = float(bvalue)
        ds.DiffusionDirectionality = "DIRECTIONAL" if bvalue else "NONE"
        ds.DiffusionGradientOrientation = list(_DIRECTIONS[(volume - 1) % 3]) if bvalue else [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = 1.0
    ds.PixelSpacing = [1.0, 1.0]
    ds.Rows = ds.Columns = spec.matrix
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    seed = int(spec.scan_id) * 31 + spec.instance * 7 + spec.echo * 13
    if spec.noise:
        noise = random.Random(seed).randbytes(2 * spec.matrix ** 2)
        pixels = bytearray(noise)
        pixels[1::2] = noise[1::2].translate(_TWELVE_BITS_HIGH_BYTE)   # 12-bit values, little-endian
        ds.PixelData = bytes(pixels)
    else:
        pixels = array.array("H", (((x * y) // 4 + x * seed + y) % 4096
                                   for y in range(spec.matrix) for x in range(spec.matrix)))
        ds.PixelData = pixels.tobytes()

    return dicom_bytes(ds)


def dicom_bytes(dataset: Dataset) -> bytes:
    """The dataset as a DICOM file (preamble, file meta, the transfer syntax it names), on pydicom 2.4 or 3.

    pydicom 3 needs Python 3.10, so on Python 3.9 pip installs pydicom 2.4, where the same request is spelt
    write_like_original=False (pydicom 3 deprecates that spelling in favour of enforce_file_format).
    """
    import pydicom

    buffer = io.BytesIO()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        dataset.save_as(buffer, enforce_file_format=True)
    else:
        dataset.save_as(buffer, write_like_original=False)
    return buffer.getvalue()
