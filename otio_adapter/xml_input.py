"""Reading an editor's XML file safely: size, entity, depth and element limits, and the root
element it must have, each refused in one line before anything is built from it."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from moodsic_engine.errors import InputError

MAX_DEPTH = 200  # editors nest a few dozen deep at most
MAX_ELEMENTS = 1_000_000  # a large library export holds ~10^5


def read_xml(path: Path, root_tag: str, what: str, hint: str = "") -> tuple[str, ET.Element]:
    """The file's text (UTF-8) and root element, which must be `root_tag`.

    Refused: files over the edit size cap, entity declarations (no editor writes them:
    billion laughs, external files), nesting deeper than MAX_DEPTH, more than MAX_ELEMENTS
    elements, malformed XML, and another root (`what` names the expected kind of file,
    `hint` says how to get one).
    """
    from .edit_io import ensure_small, one_line

    ensure_small(path)
    data = path.read_bytes()
    name = path.name
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 hides the declaration from a byte scan
        data = data.decode("utf-16", errors="replace").encode("utf-8")
    if b"<!ENTITY" in data:
        raise InputError(f"{name}: declares XML entities (<!ENTITY>), which no editor writes")
    root: ET.Element | None = None
    depth = count = 0
    try:
        for event, element in ET.iterparse(io.BytesIO(data), events=("start", "end")):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            count += 1
            if root is None:
                root = element
            if depth > MAX_DEPTH:
                raise InputError(f"{name}: XML nested more than {MAX_DEPTH} deep")
            if count > MAX_ELEMENTS:
                raise InputError(f"{name}: more than {MAX_ELEMENTS} XML elements")
    except ET.ParseError as exc:
        raise InputError(f"{name}: not well-formed XML ({one_line(exc)})") from None
    if root is None or root.tag != root_tag:
        found = root.tag if root is not None else "nothing"
        tail = f"; {hint}" if hint else ""
        raise InputError(f"{name}: not {what} (root <{found}>, expected <{root_tag}>){tail}")
    return data.decode("utf-8", errors="replace"), root
