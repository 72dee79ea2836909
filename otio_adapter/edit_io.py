"""Reading an edit in any format Moodsic or OTIO reads, and writing a timeline atomically.

Which code reads and writes which format is listed once, in ``otio_adapter.formats``."""

from __future__ import annotations

import os
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError
from moodsic_engine.fileio import atomic_path

from .formats import ReadOptions, all_suffixes, check_of, format_for, reader_of, writer_of


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


MAX_EDIT_BYTES = 256 * 2**20  # an edit this large is an attack, not a timeline


def ensure_small(p: Path) -> None:
    """Refuse a file too large to be an edit before reading it."""
    size = p.stat().st_size
    if size > MAX_EDIT_BYTES:
        raise InputError(f"{p.name}: too large to be an edit ({size} bytes)")


def _otio_json(p: Path, adapter: str) -> bytes:
    """The JSON an .otio, .otiod or .otioz holds (size-capped: an .otioz may be a zip bomb)."""
    import zipfile

    if adapter == "otioz":
        with zipfile.ZipFile(p) as z:
            info = z.getinfo("content.otio")
            if info.file_size > MAX_EDIT_BYTES:
                raise InputError(f"{p.name}: its timeline is too large ({info.file_size} bytes)")
            return z.read(info)
    f = p / "content.otio" if adapter == "otiod" else p
    if f.stat().st_size > MAX_EDIT_BYTES:
        raise InputError(f"{p.name}: too large to be an edit ({f.stat().st_size} bytes)")
    return f.read_bytes()


def _check_nesting(p: Path, adapter: str) -> None:
    """OTIO's C++ JSON reader overflows its stack (segfault) on input nested some 10^4 deep;
    Python's parser stops at its recursion limit instead, so let it look first."""
    import json
    import zipfile

    try:
        json.loads(_otio_json(p, adapter))
    except RecursionError:
        raise InputError(f"{p.name}: JSON nested too deeply to be an edit") from None
    except (ValueError, OSError, KeyError, zipfile.BadZipFile):
        pass  # OTIO's own reader reports malformed files


BUNDLE_ATTR = "_moodsic_bundle"  # set on a Timeline read from an .otioz/.otiod: its path


def bundle_of(timeline: otio.schema.Timeline) -> Path | None:
    """The .otioz file or .otiod folder `timeline` was read from by `read_edit`, if any:
    its media references are relative to the bundle (``media/clip.mov``)."""
    found = getattr(timeline, BUNDLE_ATTR, None)
    return Path(found) if found is not None else None


def _read_newer_otio(p: Path, adapter: str) -> otio.core.SerializableObject:
    """OTIO JSON from a newer OpenTimelineIO, its newer schemas taken back (otio_schema)."""
    import json

    from .otio_schema import downgrade

    data = downgrade(json.loads(_otio_json(p, adapter)), p.name)
    return otio.adapters.read_from_string(json.dumps(data), adapter_name="otio_json")


def read_otio(p: Path, options: ReadOptions) -> otio.core.SerializableObject:
    """OTIO JSON, bundles and cue sheets, the nesting checked before OTIO's C++ reader runs;
    a timeline read from an .otioz/.otiod remembers its bundle (`bundle_of`)."""
    adapter = otio.adapters.from_filepath(str(p))
    _check_nesting(p, adapter.name)  # moodsic: a .json file may hold OTIO JSON
    try:
        result = adapter.read_from_file(str(p))
    except Exception as exc:
        if "unsupported schema version" not in str(exc) or adapter.name == "moodsic":
            raise
        result = _read_newer_otio(p, adapter.name)
    from .kdenlive import fix_zero_rates

    fix_zero_rates(result)  # Kdenlive's OTIO export: media ranges at rate 0.0
    if adapter.name in ("otioz", "otiod") and isinstance(result, otio.schema.Timeline):
        setattr(result, BUNDLE_ATTR, str(p.resolve()))
    return result


def _read_with_adapter(p: Path, options: ReadOptions) -> otio.core.SerializableObject:
    """A format no registry entry names: whatever OTIO adapter claims the suffix."""
    try:
        adapter = otio.adapters.from_filepath(str(p))
    except Exception as exc:
        raise InputError(
            f"{p.name}: no OTIO adapter reads this format ({one_line(exc)}); Moodsic reads "
            f"{', '.join(all_suffixes())}"
        ) from None
    return adapter.read_from_file(str(p))


def read_edit(
    path: str | os.PathLike[str],
    *,
    rate: float | None = None,
    project: str | None = None,
    media_dir: str | os.PathLike[str] | None = None,
) -> otio.schema.Timeline:
    """Read an edit (.otio, .otioz, .otiod, .fcpxml, .fcpxmld, .edl, .moodsic.json, ...) as
    one Timeline.

    `rate` is passed to readers that need it (CMX 3600 EDLs carry no frame rate); `project`
    picks one project of an FCPXML library; `media_dir` is where readers relink media by
    name. A timeline read from an .otioz/.otiod remembers the bundle (`bundle_of`), so
    scoring finds the media inside it. Raises InputError with one line when the file cannot
    be read. The formats and their readers are listed in ``otio_adapter.formats``.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"edit not found: {p}")
    fmt = format_for(p)
    if p.is_dir() and p.suffix.lower() not in (".otiod", ".fcpxmld"):
        raise InputError(f"edit path is a folder: {p}")
    if not p.is_dir() and not p.is_file():
        raise InputError(f"{p.name}: not a regular file (a FIFO, device or socket)")
    options = ReadOptions(
        rate=rate, project=project, media_dir=Path(media_dir) if media_dir is not None else None
    )
    read = reader_of(fmt) if fmt is not None else _read_with_adapter
    if read is None:
        raise InputError(f"{p.name}: Moodsic writes {fmt.name} but cannot read it")
    try:
        result = read(p, options)
    except InputError:
        raise
    except Exception as exc:  # adapters raise anything from ValueError to OTIOError
        kind = fmt.name if fmt is not None else p.suffix
        raise InputError(f"{p.name}: cannot be read as {kind}: {one_line(exc)}") from None
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise InputError(f"{p.name} holds {len(timelines)} timelines; expected one")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise InputError(f"{p.name} is not a timeline (found {type(result).__name__})")
    if options.media_dir is not None:
        from .relink import relink_media

        relink_media(result, options.media_dir, base_dir=p.resolve().parent)
    return result


def check_writable(path: str | os.PathLike[str]) -> None:
    """Refuse, before any analysis, a target whose format Moodsic cannot write a scored edit
    in (unknown suffix, a read-only format, or a format-specific check)."""
    target = Path(path)
    fmt = format_for(target)
    if fmt is None:
        try:
            otio.adapters.from_filepath(str(target))
        except Exception:
            raise InputError(
                f"{target.name}: Moodsic cannot write this format; use one of "
                f"{', '.join(all_suffixes(writing=True))}"
            ) from None
        return
    if fmt.writer is None:
        raise InputError(
            f"{target.name}: Moodsic reads {fmt.name} but cannot write it; use one of "
            f"{', '.join(all_suffixes(writing=True))}"
        )
    check = check_of(fmt)
    if check is not None:
        check(target)


def write_with_adapter(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """The OTIO adapter that claims the suffix, as it is."""
    otio.adapters.from_filepath(str(tmp)).write_to_file(timeline, str(tmp))


def write_timeline(timeline: otio.schema.Timeline, path: str | os.PathLike[str]) -> Path:
    """Write in the format the suffix names; complete or absent, never half-written."""
    target = Path(path)
    fmt = format_for(target)
    if fmt is None:
        try:
            otio.adapters.from_filepath(str(target))
        except Exception as exc:
            raise InputError(
                f"{target.name}: no OTIO adapter writes this format ({one_line(exc)})"
            ) from None
        write = write_with_adapter
    else:
        check_writable(target)
        write = writer_of(fmt)
    with atomic_path(target) as tmp:
        tmp.unlink()  # bundle writers (otioz) refuse to overwrite the placeholder
        try:
            write(timeline, tmp)
        except InputError as exc:
            raise InputError(str(exc).replace(tmp.name, target.name)) from None
        except Exception as exc:
            kind = fmt.name if fmt is not None else target.suffix
            raise InputError(
                f"{target.name}: cannot be written as {kind}: {one_line(exc)}"
            ) from None
    return target


def _bundler_url(path: Path) -> str:
    """A file URL OTIO's bundler maps back to `path`: it percent-decodes a URL twice
    (unquote, then url2pathname), so a name holding '%' needs its URL encoded twice."""
    from urllib.parse import quote

    from opentimelineio import url_utils

    uri = path.as_uri()
    twice = "file://" + quote(uri[len("file://") :], safe="/")
    for url in (uri, twice):
        if url_utils.filepath_from_url(url) == str(path):
            return url
    return uri


def write_bundle(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """An .otioz/.otiod holding the media: every reference that names a local file (a plain
    path with '%' in it, a file:// URL, a path inside the bundle the timeline was read from)
    is bundled; a clip whose media is missing keeps a MissingReference (its URL in metadata),
    as scoring went on without it, instead of failing the whole write."""
    import copy

    from .media import bundle_media, media_path

    adapter = otio.adapters.from_filepath(str(tmp))
    bundled = copy.deepcopy(timeline)
    with bundle_media(bundle_of(timeline), bundled) as bundle_dir:
        for clip in bundled.find_clips():
            ref = clip.media_reference
            if not isinstance(ref, otio.schema.ExternalReference):
                continue
            path = media_path(ref, None, bundle_dir)
            if path is not None and path.is_file():
                ref.target_url = _bundler_url(path.resolve())
                continue
            # OTIO's own stand-in drops the available range (and with it the timing of a
            # clip without a source range): make one that keeps it
            meta = copy.deepcopy(ref.metadata)
            meta["missing_reference_because"] = "target_url target is not a file or does not exist"
            meta["original_target_url"] = ref.target_url
            clip.media_reference = otio.schema.MissingReference(
                name=ref.name, available_range=ref.available_range, metadata=meta
            )
        adapter.write_to_file(bundled, str(tmp), media_policy="MissingIfNotFile")
