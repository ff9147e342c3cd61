"""Rebuild realworld_dicom.tar.xz from local clones of dcm2niix's public QA repositories.

    python tests/data/make_realworld_dicom.py CLONES_DIR

CLONES_DIR holds one working copy per repository, named as on GitHub (dcm_qa_xa30i, dcm_qa_uih,
...), at the commits README.md names. The archive holds REALWORLD/<subject>/<session>/<series>/<file>
(plain DICOM: the repositories' .dcm.gz files are unpacked, as XNAT holds them); the sandbox serves
each <series> folder as one scan (see sandbox/vendor_data.py). Subsets keep the archive small and
dcm2niix's answer the same: the middle slices of a series (every volume, echo and polarity of
them), the first volumes of a BOLD run, the first files (volumes) of a UIH DTI. Two kinds of change
to the files, both named in README.md: the reproin session's copies get a ReproIn SeriesDescription
and ProtocolName (and, where two sources share one, a new SeriesNumber); the XA30 tensor series'
5 MB private tensor block is cut short (it stays Raw Data Storage, which dcm2niix makes no image of).
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
import tarfile
from pathlib import Path

import pydicom

# (subject, session, repository, folder, which files, changes)
# which files: "all", or rules joined by "+": middle_slices:N, first_volumes:N, first_files:N
# changes: {} or {"description": ReproIn name[, "series_number": N]} or {"cut_private": True}
SELECTION = (
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/5001_anat-T1w_acq-tfl", "middle_slices:12", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/7001_func-bold_task-fa_run-1", "all", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/7002_func-bold_task-fa_run-1", "all", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/7003_func-bold_task-fa_run-1", "all", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/7004_func-bold_task-fa_run-1", "all", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/9001_gre_field_mapping", "middle_slices:12", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/9002_gre_field_mapping", "middle_slices:12", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/10001_gre_field_mapping", "middle_slices:12", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/16_DWI_dir80_AP", "all", {"cut_private": True}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/2001_AAHead_Scout", "all", {}),
    ("xa30i", "xa30i_interop", "dcm_qa_xa30i", "In/99_Phoenix_Document", "all", {}),
    ("uih", "uih_dti134434", "dcm_qa_uih", "In/DTI_134434/dti_tra_dir16_PA_SaveBySlc__135612", "first_files:5", {}),
    ("uih", "uih_dti134434", "dcm_qa_uih", "In/DTI_134434/dti_tra_dir16_AP_SaveBySlc__140028", "first_files:5", {}),
    ("uhp", "uhp_pepolar", "dcm_qa_polar", "In/6_FM_cv12_2_3mm", "middle_slices:4", {}),
    ("uhp", "uhp_pepolar", "dcm_qa_polar", "In/9_FM_cv12_0_3mm", "middle_slices:4", {}),
    ("elition", "elition_1", "dcm_qa_philips_enh", "In/cl:1301", "middle_slices:6", {}),
    ("elition", "elition_1", "dcm_qa_philips_enh", "In/cl:2001", "middle_slices:10", {}),
    ("elition", "elition_1", "dcm_qa_philips_enh", "In/cl:2101", "middle_slices:10+first_volumes:3", {}),
    ("reproin", "reproin_1", "dcm_qa_polar", "In/7_FM_cv12_1_3mm", "middle_slices:4",
     {"description": "fmap-epi_dir-AP"}),
    ("reproin", "reproin_1", "dcm_qa_polar", "In/9_FM_cv12_0_3mm", "middle_slices:4",
     {"description": "fmap-epi_dir-PA"}),
    ("reproin", "reproin_1", "dcm_qa_uih", "In/DTI_134434/dti_tra_dir16_AP_SaveBySlc__140028", "first_files:5",
     {"description": "dwi_dir-AP", "series_number": 19}),
    ("reproin", "reproin_1", "dcm_qa_uih", "In/DTI_134434/dti_tra_dir16_PA_SaveBySlc__135612", "first_files:5",
     {"description": "dwi_dir-PA", "series_number": 16}),
)
CUT_PRIVATE = (0x7FE1, 0x1010)  # Siemens' private block holding the tensor itself
CUT_TO = 4096


def dicom_files(clones: Path, folder: str) -> list[tuple[str, bytes, pydicom.Dataset]]:
    """(name, bytes, header) of each DICOM file of a folder; "folder:N" takes series N of a flat folder."""
    folder, _, series = folder.partition(":")
    found = []
    for path in sorted((clones / folder).iterdir()):
        data = path.read_bytes()
        name = path.name
        if name.endswith(".gz"):
            data, name = gzip.decompress(data), name[:-3]
        try:
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue  # the repositories' notes and the like
        if series and str(header.SeriesNumber) != series:
            continue
        found.append((name, data, header))
    return found


def chosen(files: list[tuple[str, bytes, pydicom.Dataset]], rules: str) -> list[tuple[str, bytes, pydicom.Dataset]]:
    for rule in rules.split("+"):
        if rule == "all":
            continue
        kind, count = rule.split(":")
        if kind == "first_files":  # a file per volume (UIH mosaics)
            files = sorted(files, key=lambda item: int(item[2].InstanceNumber))[:int(count)]
        elif kind == "middle_slices":  # every file at the middle slice positions
            positions = sorted({position(header) for _, _, header in files})
            start = (len(positions) - int(count)) // 2
            kept = set(positions[start:start + int(count)])
            files = [item for item in files if position(item[2]) in kept]
        elif kind == "first_volumes":  # at each slice position, the first N in time
            by_position: dict[float, list] = {}
            for item in files:
                by_position.setdefault(position(item[2]), []).append(item)
            files = [item for group in by_position.values()
                     for item in sorted(group, key=acquired)[:int(count)]]
        else:
            raise ValueError(rule)
    return sorted(files, key=lambda item: item[0])


def position(header: pydicom.Dataset) -> float:
    """Where a slice lies along the slice normal (so sagittal and axial series sort alike)."""
    row, column = [float(v) for v in header.ImageOrientationPatient[:3]], \
                  [float(v) for v in header.ImageOrientationPatient[3:]]
    normal = (row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2],
              row[0] * column[1] - row[1] * column[0])
    return round(sum(n * float(p) for n, p in zip(normal, header.ImagePositionPatient)), 2)


def acquired(item: tuple[str, bytes, pydicom.Dataset]) -> tuple:
    header = item[2]
    return (int(header.get("TemporalPositionIdentifier", 0) or 0), str(header.get("AcquisitionTime", "")),
            int(header.InstanceNumber))


def changed(data: bytes, changes: dict) -> bytes:
    if not changes:
        return data
    dataset = pydicom.dcmread(io.BytesIO(data))
    if "description" in changes:
        dataset.SeriesDescription = dataset.ProtocolName = changes["description"]
    if "series_number" in changes:
        dataset.SeriesNumber = changes["series_number"]
    if changes.get("cut_private") and CUT_PRIVATE in dataset:
        dataset[CUT_PRIVATE].value = dataset[CUT_PRIVATE].value[:CUT_TO]
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def series_folder(files: list[tuple[str, bytes, pydicom.Dataset]], changes: dict) -> str:
    header = files[0][2]
    number = changes.get("series_number", header.SeriesNumber)
    description = changes.get("description", str(header.SeriesDescription).strip())
    return f"{number}_{''.join(c if c.isalnum() or c in '-_' else '_' for c in description)}"


def main(clones: Path, archive: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for subject, session, repository, folder, rules, changes in SELECTION:
            files = chosen(dicom_files(clones / repository, folder), rules)
            target = series_folder(files, changes)
            for name, data, _ in files:
                data = changed(data, changes)
                info = tarfile.TarInfo(f"REALWORLD/{subject}/{session}/{target}/{name}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent / "realworld_dicom.tar.xz")
