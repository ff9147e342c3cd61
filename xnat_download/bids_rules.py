"""The default naming of --bids (no dcm2bids configuration): one set of rules, keyed by datatype
and suffix, that every image of a session goes through.

For each scan, its (datatype, suffix) comes from the first of:
  1. its ReproIn name (bids_reproin), with every entity the name gives;
  2. the first row of the default map (common.BIDS_MAP) whose patterns match its type or series
     description: the readable place to override;
  3. identification of each image by what it is (bids_identify: sidecar and NIfTI header).
Then each image is named on its own sidecar (derived images left out, field map parts, echoes,
magnitude/phase parts), labels are added where a person would add them (task-, dir-, acq-),
repeats of one name are numbered as runs, and field maps list the session's func and dwi images
in IntendedFor. --dry-run previews names through the same functions (name_images, rule_source)."""
from __future__ import annotations

import re
from dataclasses import replace

from xnat_download.bids_identify import MAX_B, VOLUMES, identify
from xnat_download.bids_config import BidsConfig
from xnat_download.bids_names import (BidsName, Image, NamedImage, add_task_name, direction_of, image_kind,
                                      name_by_config, session_label, subject_label, task_of)
from xnat_download.bids_reproin import ReproinName, reproin_of
from xnat_download.catalog import Scan, Session, natural_key, scan_matches

PARTS = {"magnitude": "mag", "phase": "phase", "real": "real", "imaginary": "imag"}
# BIDS has echo- for anat and func images only (dwi and field maps have none).
ECHO_DATATYPES = ("anat", "func")
DIFFUSION_PATTERNS = ("*dwi*", "*dti*", "*diff*")
# The field map suffixes that are parts of one GRE (or direct) field map, each image deciding its own.
FIELD_MAP_PARTS = ("fieldmap", "magnitude", "magnitude1", "magnitude2", "phasediff", "phase1", "phase2")
# The entities BIDS allows in each datatype (for field maps: spin-echo EPI, and GRE/direct ones).
ALLOWED_ENTITIES = {
    "anat": {"acq", "ce", "rec", "run", "echo", "flip", "inv", "mt", "part", "chunk"},
    "func": {"task", "acq", "ce", "rec", "dir", "run", "echo", "part", "chunk"},
    "dwi": {"acq", "rec", "dir", "run", "part", "chunk"},
    "perf": {"acq", "rec", "dir", "run", "chunk"},
    "epi": {"acq", "ce", "dir", "run", "chunk"},
    "fmap": {"acq", "ce", "run", "chunk"},
}
# Sidecar fields BIDS requires of a spin-echo EPI field map (the validator's error otherwise).
EPI_REQUIRED = ("PhaseEncodingDirection", "TotalReadoutTime")
# Where more than one phase-encoding direction in a session calls for dir- on each image.
DIRECTED = {("dwi", "dwi"), ("dwi", "sbref"), ("func", "bold"), ("func", "sbref")}


def name_images(session: Session, images: list[Image], rules: list | BidsConfig) -> list[NamedImage]:
    """The session's images named by the default rules (the map a list) or a dcm2bids
    configuration."""
    if isinstance(rules, BidsConfig):
        return name_by_config(session, images, rules)
    return name_by_rules(session, images, rules)


def map_row(scan: Scan, bids_map: list) -> tuple[str, str] | bool:
    """The first matching row's (datatype, suffix); False when it skips the scan (datatype
    None); True when no row matches (identification decides)."""
    for patterns, datatype, suffix in bids_map:
        if scan_matches(scan, patterns):
            return (datatype, suffix) if datatype else False
    return True


def is_skipped(scan: Scan, bids_map: list) -> bool:
    """A scan not worth converting: a row of the map skips it (localizers, scouts)."""
    reproin = reproin_of(scan.type, scan.series_description)
    if reproin is not None:
        return reproin.suffix == "scout"
    return map_row(scan, bids_map) is False


def reproin_of_image(image: Image) -> ReproinName | None:
    return reproin_of(image.sidecar.get("ProtocolName"), image.sidecar.get("SeriesDescription"),
                      image.scan.type, image.scan.series_description)


def scan_rule(images: list[Image], bids_map: list) -> list[tuple[str, str] | str]:
    """For each image of one scan: (datatype, suffix), or why it has none."""
    reproin = reproin_of_image(images[0])
    if reproin is not None:
        if reproin.suffix == "scout":
            return ["a localizer (ReproIn anat-scout)"] * len(images)
        suffix = reproin.suffix
        if reproin.datatype == "fmap" and suffix is None:
            suffix = field_map_kind(images, "fieldmap")[1]
        if reproin.datatype == "fmap" and suffix in FIELD_MAP_PARTS:
            suffix = "fieldmap"   # its images decide: magnitude1/2, phasediff, fieldmap
        if suffix in ("bold", "dwi") and is_sbref(images[0]):
            suffix = "sbref"      # the single-band reference a multiband run comes with
        if suffix is not None:
            return [(reproin.datatype, suffix)] * len(images)
        # a datatype without a suffix BIDS knows: what the images are decides, in that datatype
        return [rule if isinstance(rule, tuple) and rule[0] == reproin.datatype
                else f"a ReproIn name ({reproin.datatype}) without a suffix, and its images are no "
                     f"{reproin.datatype} image these rules know" for rule in identified(images, bids_map)]
    return identified(images, bids_map)


def field_map_kind(images: list[Image], named: str) -> tuple[str, str]:
    """A name says field map, not which kind: spin-echo EPI ("epi") or GRE / direct
    ("fieldmap"), as the images tell; else the kind the name gave."""
    kinds = {rule for rule in (identify(image.sidecar) for image in images)
             if rule in (("fmap", "epi"), ("fmap", "fieldmap"))}
    return kinds.pop() if len(kinds) == 1 else ("fmap", named)


def is_sbref(image: Image) -> bool:
    return any(re.search(r"sbref", str(text or ""), re.I) for text in
               (image.scan.series_description, image.scan.type, image.sidecar.get("SeriesDescription")))


def identified(images: list[Image], bids_map: list) -> list[tuple[str, str] | str]:
    """The map's row for the scan, else what each image is."""
    scan = images[0].scan
    row = map_row(scan, bids_map)
    if row is False:
        return ["skipped by the default map"] * len(images)
    if row is not True and row[0] == "fmap":
        return [field_map_kind(images, row[1])] * len(images)
    if row is not True:
        return [row] * len(images)
    found = [identify(image.sidecar, scan.type, scan.series_description) for image in images]
    if ("fmap", "fieldmap") in found:   # a field map's magnitude is one because its phase is
        return [("fmap", "fieldmap")] * len(images)
    return found


def image_name(session: Session, image: Image, rule: tuple[str, str],
               siblings: list[Image]) -> tuple[BidsName | None, str]:
    """The name of one image of a scan the rule matched; `siblings` are all the scan's images."""
    kind = image_kind(image)
    if kind == "derived":
        return None, "a derived image"
    datatype, suffix = rule
    name = BidsName(subject_label(session), session_label(session), datatype, suffix)
    kinds = [image_kind(sibling) for sibling in siblings]
    echo = image.sidecar.get("EchoNumber")
    if datatype == "fmap" and suffix == "fieldmap":
        if kind == "hz":
            return replace(name, suffix="fieldmap"), ""
        if kind == "phase":
            two_phases = kinds.count("phase") > 1 and "EchoTime1" not in image.sidecar
            return replace(name, suffix=f"phase{echo or 1}" if two_phases else "phasediff"), ""
        if kind == "magnitude":
            return replace(name, suffix="magnitude" if "hz" in kinds else f"magnitude{echo or 1}"), ""
        return None, f"a {kind} field map image, which BIDS has no name for"
    if datatype == "fmap" and suffix == "epi":
        direction = direction_of(image.scan, image.sidecar)
        if kind != "magnitude" or direction is None:
            return None, ("no phase-encoding direction" if kind == "magnitude"
                          else f"a {kind} image of a spin-echo field map")
        missing = [key for key in EPI_REQUIRED if key not in image.sidecar]
        if missing and VOLUMES in image.sidecar:   # (a converted image's sidecar, not a preview)
            return None, (f"a spin-echo field map without {' and '.join(missing)} in its sidecar, "
                          f"which BIDS requires of one")
        return name.with_entity("dir", direction), ""
    if suffix == "bold" and image.sidecar.get(VOLUMES) == 1:
        return None, ("one volume (3D) of a BOLD series: BIDS takes a BOLD run as one 4D image, "
                      "so a run exported one series per volume is left out")
    if (datatype, suffix) == ("dwi", "dwi") and VOLUMES in image.sidecar and MAX_B not in image.sidecar:
        return None, "a diffusion image without b-values (dcm2niix wrote no .bval), which BIDS requires"
    if suffix == "sbref" and scan_matches(image.scan, DIFFUSION_PATTERNS):
        name = replace(name, datatype="dwi")   # a DWI's single-band reference
    elif datatype == "func":
        name = name.with_entity("task", task_of(image.scan, image.sidecar))
    echoes = {sibling.sidecar.get("EchoNumber") for sibling, sibling_kind in zip(siblings, kinds)
              if sibling_kind == kind}
    if len(echoes) > 1 and echo is not None and name.datatype in ECHO_DATATYPES:
        name = name.with_entity("echo", str(echo))
    if kind in PARTS and (len({k for k in kinds if k in PARTS}) > 1 or kind != "magnitude"):
        # magnitude and phase of one series, or a series of phase (real, imaginary) images only,
        # which must not take its magnitude series' name
        name = name.with_entity("part", PARTS[kind])
    acquisition = re.search(r"(?:^|_)acq-([A-Za-z0-9]+)", image.scan.series_description or image.scan.type or "")
    if acquisition:
        name = name.with_entity("acq", acquisition.group(1))
    return name, ""


def with_reproin_entities(name: BidsName, reproin: ReproinName) -> BidsName:
    """The name with every entity its ReproIn name gives that BIDS allows in its datatype."""
    allowed = ALLOWED_ENTITIES.get("epi" if name.suffix == "epi" else name.datatype, set())
    for key, value in reproin.entities:
        if key in allowed:
            name = name.with_entity(key, value)
    return name


def name_by_rules(session: Session, images: list[Image], bids_map: list) -> list[NamedImage]:
    """Each image of the session named by the default rules (see the module's description)."""
    by_scan: dict[str, list[Image]] = {}
    for image in images:
        by_scan.setdefault(image.scan.id, []).append(image)
    rules = {id(image): rule for members in by_scan.values()
             for image, rule in zip(members, scan_rule(members, bids_map))}
    named, reproin_named = [], set()
    for image in images:
        rule = rules[id(image)]
        if isinstance(rule, str):
            named.append(NamedImage(image, None, rule))
            continue
        name, why = image_name(session, image, rule, by_scan[image.scan.id])
        reproin = reproin_of_image(image)
        if name is not None and reproin is not None:
            name = with_reproin_entities(name, reproin)
            reproin_named.add(id(image))
        named.append(NamedImage(image, name, why))
    add_directions([item for item in named if id(item.image) not in reproin_named])
    number_reproin_runs([item for item in named if id(item.image) in reproin_named])
    number_runs(named)
    targets = sorted(f"bids::{n.name.path()}.nii.gz" for n in named
                     if n.name and n.name.datatype in ("func", "dwi"))
    for item in named:
        if item.name is None:
            continue
        if item.name.datatype == "fmap" and targets:
            item.changes["IntendedFor"] = targets
        add_task_name(item)
    return named


def add_directions(named: list[NamedImage]) -> None:
    """dir- on each DWI (or BOLD) image when the session holds them in more than one direction."""
    for datatype in ("dwi", "func"):
        members = [item for item in named if item.name and (item.name.datatype, item.name.suffix) in DIRECTED
                   and item.name.datatype == datatype and "dir" not in dict(item.name.entities)]
        directions = {id(item): direction_of(item.image.scan, item.image.sidecar) for item in members}
        if len(set(directions.values()) - {None}) > 1:
            for item in members:
                if directions[id(item)]:
                    item.name = item.name.with_entity("dir", directions[id(item)])


def number_reproin_runs(named: list[NamedImage]) -> None:
    """heudiconv's run markers, scan by scan in natural scan-ID order: _run+ is the next run of
    the session (a phase series right after a magnitude series keeps its run), _run= the
    current one, _run-<N> sets it."""
    by_scan: dict[str, list[NamedImage]] = {}
    for item in named:
        by_scan.setdefault(item.image.scan.id, []).append(item)
    current, previous_kind = 0, ""
    for scan_id in sorted(by_scan, key=natural_key):
        members = by_scan[scan_id]
        reproin = reproin_of_image(members[0].image)
        kind = "phase" if any(image_kind(m.image) == "phase" for m in members) else "magnitude"
        explicit = reproin.entity("run") if reproin else None
        if explicit and explicit.isdigit():
            current = int(explicit)
        elif reproin and reproin.run_marker:
            if reproin.run_marker == "+" and not (kind == "phase" and previous_kind == "magnitude"):
                current += 1
            for item in members:
                if item.name:
                    item.name = item.name.with_entity("run", str(max(current, 1)))
        previous_kind = kind


def number_runs(named: list[NamedImage]) -> None:
    """Images of a session that take one name get run-1, run-2, ... in natural scan-ID order."""
    groups: dict[str, list[NamedImage]] = {}
    for item in sorted((n for n in named if n.name), key=lambda n: (natural_key(n.image.scan.id),
                                                                      n.image.stem)):
        groups.setdefault(item.name.stem(), []).append(item)
    for members in groups.values():
        if len(members) > 1:
            for run, item in enumerate(members, 1):
                item.name = item.name.with_entity("run", str(run))


def rule_source(scan: Scan, bids_map: list) -> str:
    """Which rule names the scan: "reproin", "map", "skip" (a row of the map skips it) or
    "identify" (only its images can tell: --dry-run says so)."""
    if reproin_of(scan.type, scan.series_description) is not None:
        return "reproin"
    row = map_row(scan, bids_map)
    return "identify" if row is True else "map" if row else "skip"
