"""OTIO hook script ``moodsic_fcpxml_writer`` (``pre_adapter_write``).

Any OTIO write to a ``.fcpxml`` file (``otioconvert -i scored.otio -o scored.fcpxml``, or
``otio.adapters.write_to_file``) goes through Moodsic's FCPXML writer
(``otio_adapter.fcpxml_write``) instead of otio-fcpx-xml-adapter's own, which cannot write
24000/1001 or 30000/1001 timelines and drops every transition. OTIO runs this hook for
every adapter's write; it changes nothing for other suffixes and returns the timeline as
it came (``pre_adapter_write`` hands the caller's own object, so it must not be altered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Absolute import: OTIO loads this file by path, outside the otio_adapter package.
from otio_adapter.fcpxml import install_fcpxml_writer


def hook_function(in_timeline: Any, argument_map: dict[str, Any] | None = None) -> Any:
    """Route a ``.fcpxml`` write to Moodsic's writer; return `in_timeline` unchanged."""
    target = (argument_map or {}).get("_filepath")
    if target and str(target).lower().endswith(".fcpxml"):
        install_fcpxml_writer(Path(str(target)))
    return in_timeline
