"""The one list of edit formats Moodsic reads and writes, and which code does it.

Every format is an `EditFormat`: its suffixes, the editors that write or read it, and the
functions (``"module:function"``, imported on first use) that read it into an OTIO Timeline,
write a Timeline out, and check a target before any analysis starts. `read_edit` and
`write_timeline` (``otio_adapter.edit_io``), the CLI's early refusal and the README's
"Bringing your edit" table all come from this list; a suffix that is not here falls back
to whatever OTIO adapter claims it.

Reader signature: ``read(path: Path, options: ReadOptions) -> otio.schema.Timeline`` (or a
SerializableCollection holding exactly one Timeline). Raise `InputError` with one line.

Writer signature: ``write(timeline: otio.schema.Timeline, tmp: Path) -> None``: write the
whole file at `tmp` (a path that does not exist yet and has the target's suffix); the caller
renames it over the target only when the writer returns.

Check signature: ``check(target: Path) -> None``: raise `InputError` when this target can
never hold a scored edit (called before any analysis, so a refusal costs nothing).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may need beyond the file itself."""

    rate: float | None = None  # frame rate for formats that carry none (EDL)
    project: str | None = None  # which project of an FCPXML library (several projects)
    media_dir: Path | None = None  # relink media by clip name / reel inside this folder


@dataclass(frozen=True)
class EditFormat:
    """One edit format: where it comes from and which functions handle it."""

    name: str  # short name used in messages ("FCPXML", "CMX 3600 EDL", ...)
    adapter: str  # the OTIO adapter name behind it (what otio.adapters.from_filepath gives)
    suffixes: tuple[str, ...]  # lower case, with the dot
    editors: str  # who writes/reads it, for docs and messages
    reader: str | None = None  # "module:function" or None when Moodsic cannot read it
    writer: str | None = None  # "module:function" or None when Moodsic cannot write it
    check: str | None = None  # "module:function" run on a target before analysis


def _fn(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


FORMATS: tuple[EditFormat, ...] = (
    EditFormat(
        "OTIO JSON",
        "otio_json",
        (".otio",),
        "OpenTimelineIO, Kdenlive (File > Export > OTIO), Resolve, Hiero, RV",
        reader="otio_adapter.edit_io:read_otio",
        writer="otio_adapter.edit_io:write_with_adapter",
    ),
    EditFormat(
        "OTIO zip bundle",
        "otioz",
        (".otioz",),
        "OpenTimelineIO (timeline plus media in one file)",
        reader="otio_adapter.edit_io:read_otio",
        writer="otio_adapter.edit_io:write_bundle",
    ),
    EditFormat(
        "OTIO folder bundle",
        "otiod",
        (".otiod",),
        "OpenTimelineIO (timeline plus media in one folder)",
        reader="otio_adapter.edit_io:read_otio",
        writer="otio_adapter.edit_io:write_bundle",
    ),
    EditFormat(
        "Moodsic cue sheet",
        "moodsic",
        (".json",),
        "Moodsic (moodsic score)",
        reader="otio_adapter.edit_io:read_otio",
        writer="otio_adapter.edit_io:write_with_adapter",
    ),
    EditFormat(
        "FCPXML",
        "fcpx_xml",
        (".fcpxml", ".fcpxmld"),
        "Final Cut Pro (File > Export XML)",
        reader="otio_adapter.fcpxml_read:read_fcpxml",
        writer="otio_adapter.fcpxml_write:write_fcpxml",
        check="otio_adapter.fcpxml_write:check_fcpxml",
    ),
    EditFormat(
        "CMX 3600 EDL",
        "cmx_3600",
        (".edl",),
        "Avid Media Composer, Pro Tools, Premiere, Resolve, any NLE",
        reader="otio_adapter.edl:read_edl",
        writer="otio_adapter.edl:write_edl",
    ),
    EditFormat(
        "FCP7 XML",
        "fcp_xml",
        (".xml",),
        "Premiere Pro (File > Export > Final Cut Pro XML), DaVinci Resolve (File > Export "
        "Timeline > FCP 7 XML)",
        reader="otio_adapter.fcp7:read_fcp7",
        writer="otio_adapter.fcp7:write_fcp7",
    ),
    EditFormat(
        "Kdenlive project",
        "kdenlive",
        (".kdenlive",),
        "Kdenlive (File > Save: the project file itself)",
        reader="otio_adapter.kdenlive:read_kdenlive",
    ),
    EditFormat(
        "MLT XML",
        "mlt_xml",
        (".mlt",),
        "melt, Shotcut (File > Open), Kdenlive (add it to the bin as a clip)",
        writer="otio_adapter.mlt:write_mlt",
    ),
)


def all_suffixes(*, writing: bool = False) -> list[str]:
    """Suffixes Moodsic reads (or writes, with `writing`), in registry order."""
    return [
        s for f in FORMATS for s in f.suffixes if (f.writer if writing else f.reader) is not None
    ]


def format_for(path: str | Path) -> EditFormat | None:
    """The registered format of `path` by its suffix (None: not one of ours)."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS:
        if suffix in fmt.suffixes:
            return fmt
    return None


def reader_of(fmt: EditFormat) -> Callable[..., Any] | None:
    return _fn(fmt.reader) if fmt.reader else None


def writer_of(fmt: EditFormat) -> Callable[..., Any] | None:
    return _fn(fmt.writer) if fmt.writer else None


def check_of(fmt: EditFormat) -> Callable[..., Any] | None:
    return _fn(fmt.check) if fmt.check else None
