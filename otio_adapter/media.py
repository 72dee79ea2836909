"""Where an edit's media lives: URLs and paths as editors write them, bundles, and the start
timecode a media file carries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from moodsic_engine.errors import InputError


def url_candidates(url: str) -> list[str]:
    """Local paths a target URL may mean, most likely first.

    A file:// URL is percent-decoded (RFC 8089), but editors also write unencoded paths
    after file:// (a literal '%', '#' or '?' in a file name); a plain path is taken as it
    is, then percent-decoded (OTIO's own bundle code decodes plain paths too).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        raw = url[len("file:") :]
        if raw.startswith("//"):
            raw = raw[2:]
            host, slash, rest = raw.partition("/")
            raw = slash + rest if host in ("", "localhost") else "//" + raw
        path = unquote(parsed.path)
        if parsed.netloc not in ("", "localhost"):
            path = "//" + parsed.netloc + path  # a UNC share
        return [path, raw]
    if parsed.scheme and len(parsed.scheme) > 1:
        return [url]  # http:// and friends, or a plain name holding a colon
    return [url, unquote(url)]


def media_path(ref: Any, base_dir: Path | None, bundle_dir: Path | None = None) -> Path | None:
    """The local file a media reference points at (file:// URL or plain path), if any.

    Relative paths resolve against `bundle_dir` (the media of an .otiod/.otioz bundle)
    first, then `base_dir`; of several readings of the URL, the first that exists wins.
    """
    url = getattr(ref, "target_url", None)
    if not url:
        return None
    parsed = urlparse(url)
    local = parsed.scheme in ("", "file") or len(parsed.scheme) == 1
    found: list[Path] = []
    for text in dict.fromkeys(url_candidates(url)):
        path = Path(text)
        if path.is_absolute():
            found.append(path)
            continue
        found.extend(d / path for d in (bundle_dir, base_dir) if d is not None)
        found.append(path)
    for path in found:
        if path.is_file():
            return path
    if not local:
        return None  # not a local file (and no file of that name either)
    return found[0]


@contextmanager
def bundle_media(bundle: Path | None, timeline: otio.schema.Timeline) -> Iterator[Path | None]:
    """The folder a bundle's relative media paths resolve against: an .otiod itself; for an
    .otioz, a temporary folder holding the media its clips reference, extracted for the
    duration of the block (the archive is only read)."""
    if bundle is None:
        yield None
        return
    if bundle.is_dir():
        yield bundle
        return
    import shutil
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="moodsic-otioz-") as tmp:
        root = Path(tmp).resolve()
        try:
            with zipfile.ZipFile(bundle) as z:
                names = set(z.namelist())
                for clip in timeline.find_clips():
                    url = getattr(clip.media_reference, "target_url", None)
                    for rel in url_candidates(url) if url else ():
                        rel = rel.removeprefix("./")
                        target = (root / rel).resolve()
                        if rel not in names or target.exists() or not target.is_relative_to(root):
                            continue
                        size = z.getinfo(rel).file_size
                        if size > shutil.disk_usage(root).free:
                            raise InputError(
                                f"{bundle.name}: no room to extract {rel} ({size} bytes) "
                                f"in {root.parent}"
                            )
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with z.open(rel) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, 2**20)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise InputError(f"{bundle.name}: cannot extract its media ({exc})") from None
        yield root


def media_timecode(path: Path) -> tuple[int, Fraction] | None:
    """The start timecode a media file carries (tmcd track or tag) as a frame count on its
    own timecode clock (drop-frame counted as such), with the file's exact frame rate; None
    when it carries none (or an unreadable one)."""
    import re

    try:
        import av

        with av.open(str(path)) as container:
            tags = [dict(container.metadata)] + [dict(s.metadata) for s in container.streams]
            video = container.streams.video[0] if container.streams.video else None
            rate = video.average_rate if video is not None else None
    except Exception:  # unreadable files are reported when they are analysed
        return None
    if not rate or rate <= 0:
        return None
    fps = Fraction(rate.numerator, rate.denominator)
    for tag in tags:
        found = re.fullmatch(r"(\d+):(\d\d):(\d\d)([:;.,])(\d+)", str(tag.get("timecode", "")))
        if found is None:
            continue
        h, m, s, sep, f = found.groups()
        nominal = round(fps)
        if sep in ";," and nominal in (30, 60):  # drop-frame labels skip frame numbers
            try:
                return int(otio.opentime.from_timecode(found.group(0), float(fps)).value), fps
            except Exception:  # a malformed drop-frame label: treat as no timecode
                return None
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * nominal + int(f), fps
    return None


def media_timecode_s(path: Path) -> float:
    """The start timecode a media file carries, in seconds on its own clock; 0 if none."""
    found = media_timecode(path)
    return float(Fraction(found[0]) / found[1]) if found else 0.0
