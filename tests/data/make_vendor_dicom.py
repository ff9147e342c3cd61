"""Rebuild vendor_dicom.tar.xz from local clones of dcm2niix's public QA repositories.

    python tests/data/make_vendor_dicom.py CLONES_DIR

CLONES_DIR holds one working copy per repository, named as on GitHub (dcm_qa_fmap, dcm_qa_xa30,
...), at the commits README.md names. The archive holds VENDOR/<subject>/<session>/<series>/<file>;
the sandbox serves each <series> folder as one scan (see sandbox/vendor_data.py). Subsets keep the
test suite fast and the repository small: the first volumes of a long BOLD run, the middle slices
of a DTI (every volume of them, so that dcm2niix still finds the ADC volume).
"""

from __future__ import annotations

import io
import lzma
import sys
import tarfile
from pathlib import Path

import pydicom

# (subject, session, repository, folder in the repository, which files: "all" or a rule)
SELECTION = (
    ("siemens", "siemens_xa30", "dcm_qa_xa30", "In/7_func-bold_task-fa_run-1", "first_volumes:6"),
    ("siemens", "siemens_xa30", "dcm_qa_xa30", "In/8_gre_field_mapping", "all"),
    ("siemens", "siemens_xa30", "dcm_qa_xa30", "In/9_gre_field_mapping", "all"),
    ("siemens", "siemens_xa30", "dcm_qa_xa30", "In/11_DWI_dir80_PA", "all"),
    ("siemens", "siemens_gre", "dcm_qa_fmap", "In/Siemens/2_gre_field_magph", "all"),
    ("siemens", "siemens_gre", "dcm_qa_fmap", "In/Siemens/3_gre_field_magph", "all"),
    ("siemens", "siemens_epi", "dcm_qa_nih", "In/20180918Si/mr_0003", "all"),
    ("siemens", "siemens_epi", "dcm_qa_nih", "In/20180918Si/mr_0004", "all"),
    ("siemens", "siemens_epi", "dcm_qa_nih", "In/20180918Si/mr_0005", "all"),
    ("siemens", "siemens_epi", "dcm_qa_nih", "In/20180918Si/mr_0006", "all"),
    ("ge", "ge_1", "dcm_qa_ge", "In/01_Ax_DWI_TENSOR_R2", "all"),
    ("ge", "ge_1", "dcm_qa_fmap", "In/GE/6_CV_Neuro", "all"),
    ("philips", "philips_1", "dcm_qa_philips", "In/Magdeburg_2014/fmri", "all"),
    ("philips", "philips_1", "dcm_qa_philips", "In/Vanderbilt_2018/601_WIP_dti_ax", "middle_slices:12"),
    ("philips", "philips_1", "dcm_qa_fmap", "In/Philips/fmap", "all"),
)


def dicom_files(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    found = []
    for path in sorted(folder.iterdir()):
        try:
            found.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except pydicom.errors.InvalidDicomError:
            continue  # the repositories' README-Series.txt and the like
    return found


def chosen(files: list[tuple[Path, pydicom.Dataset]], rule: str) -> list[Path]:
    if rule == "all":
        return [path for path, _ in files]
    kind, count = rule.split(":")
    if kind == "first_volumes":  # one file per volume (enhanced DICOM)
        ordered = sorted(files, key=lambda item: int(item[1].InstanceNumber))
        return sorted(path for path, _ in ordered[:int(count)])
    # middle_slices: one file per slice per volume; keep every file of the middle slice positions
    def position(dataset: pydicom.Dataset) -> float:
        return round(float(dataset.ImagePositionPatient[2]), 2)
    positions = sorted({position(dataset) for _, dataset in files})
    start = (len(positions) - int(count)) // 2
    kept = set(positions[start:start + int(count)])
    return [path for path, dataset in files if position(dataset) in kept]


def main(clones: Path, archive: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for subject, session, repository, folder, rule in SELECTION:
            source = clones / repository / folder
            for path in chosen(dicom_files(source), rule):
                data = path.read_bytes()
                info = tarfile.TarInfo(f"VENDOR/{subject}/{session}/{source.name}/{path.name}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent / "vendor_dicom.tar.xz")
