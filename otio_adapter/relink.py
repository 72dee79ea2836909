"""Relinking an edit's media by name inside a folder (``--media-dir``): most EDLs carry no
paths, and editors' exports often point at another machine's disks."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio


def relink_media(timeline: otio.schema.Timeline, media_dir: Path) -> None:
    """Point every clip whose media is missing at the file in `media_dir` its name, source
    file or reel names (placeholder: the EDL work fills this in)."""
    return None
