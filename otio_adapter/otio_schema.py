"""OTIO JSON written by a newer OpenTimelineIO than the one installed.

OpenTimelineIO's own sample files and newer tools write schema versions this OTIO (0.18)
does not know (``Marker.3``, whose colour is an RGBA object with a name instead of a name).
OTIO refuses the whole file for one marker. `downgrade` rewrites the versions we know how
to take back, as OTIO's own downgrade functions do, and names the first it cannot.
"""

from __future__ import annotations

from typing import Any

import opentimelineio as otio

from moodsic_engine.errors import InputError

_KNOWN_COLOURS = {
    "RED", "GREEN", "BLUE", "YELLOW", "CYAN", "MAGENTA", "PINK", "ORANGE", "PURPLE",
    "BLACK", "WHITE", "TRANSPARENT",
}  # fmt: skip


def _marker_3_to_2(d: dict[str, Any]) -> None:
    colour = d.get("color")
    if isinstance(colour, dict):
        name = str(colour.get("name") or "")
        d["color"] = name.upper() if name.upper() in _KNOWN_COLOURS else (name or "RED")
    comment = d.pop("comment", "")
    if comment:  # Marker.2 has no comment: keep it where editors' adapters put theirs
        meta = d.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta.setdefault("comment", comment)


# (schema name, version written) -> rewrite to version - 1
_DOWNGRADES = {("Marker", 3): _marker_3_to_2}

_MAX_NODES = 5_000_000  # a timeline this large is not an edit (the size cap comes first)


def downgrade(data: Any, source: str) -> Any:
    """`data` (parsed OTIO JSON) with every schema newer than the installed OTIO's taken
    back to a version it reads. Raises InputError naming a schema it cannot take back."""
    known = otio.core.type_version_map()
    stack = [data]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            raise InputError(f"{source}: too many objects to be an edit")
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        schema = node.get("OTIO_SCHEMA")
        if isinstance(schema, str) and "." in schema:
            name, _, version = schema.rpartition(".")
            try:
                number = int(version)
            except ValueError:
                number = 0
            newest = known.get(name)
            while newest is not None and number > newest:
                step = _DOWNGRADES.get((name, number))
                if step is None:
                    raise InputError(
                        f"{source}: written by a newer OpenTimelineIO ({name}.{number}; this "
                        f"one reads {name}.{newest}); export it again with OpenTimelineIO 0.18"
                    )
                step(node)
                number -= 1
                node["OTIO_SCHEMA"] = f"{name}.{number}"
        stack.extend(node.values())
    return data
