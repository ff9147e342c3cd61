"""Names from the server made safe for the disk: one component of [A-Za-z0-9._-], a relative path
that stays below its folder, and the short tag that keeps apart names that clean up alike."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

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


def name_tag(server_name: str) -> str:
    """Eight hex digits of the server's own name: stable from run to run, and different for
    names that clean up alike."""
    return hashlib.md5(server_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def distinct_component(name: str, identity: str | None = None, ambiguous: bool = False) -> str:
    """safe_component(name), tagged with name_tag(identity or name) when cleaning changed the name
    or the caller knows its parts are ambiguous. The tag is decided by the name alone, not by the
    other names a run happens to meet, so a folder keeps its name whatever a run selects; a name
    of safe characters only, as XNAT's IDs and types usually are, stays as it is."""
    cleaned = safe_component(name)
    if cleaned == name and not ambiguous:
        return cleaned
    return safe_component(f"{cleaned}_{name_tag(name if identity is None else identity)}")


def scan_component(scan_id: str, scan_type: str) -> str:
    """scan-<ID>_<type> (scan-<ID> without a type), cleaned as one name. Scan IDs are unique in a
    session, so a folder needs a tag (of the raw ID and type) only where the ID itself could be
    confused: an ID that cleaning changes, or one holding the `_` that parts ID from type (scan 1
    of type T1 beside scan 1_T1 of none). `EPI PE=AP` of scan 3 is simply scan-3_EPI_PE_AP."""
    name = f"scan-{scan_id}" + (f"_{scan_type}" if scan_type else "")
    if scan_id and not UNSAFE_CHARACTERS.search(scan_id) and "_" not in scan_id:
        return safe_component(name)
    return safe_component(f"{safe_component(name)}_{name_tag(repr((scan_id, scan_type)))}")


def former_scan_component(scan_id: str, scan_type: str) -> str:
    """The name versions before scan_component gave a scan folder: tagged whenever cleaning
    changed any of it (type included). Kept to find and rename those folders."""
    name = f"scan-{scan_id}" + (f"_{scan_type}" if scan_type else "")
    return distinct_component(name, identity=repr((scan_id, scan_type)), ambiguous="_" in scan_id)


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
