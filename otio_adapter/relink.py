"""Relinking an edit's media by name inside a folder (``--media-dir``): most EDLs carry no
paths, and editors' exports often point at another machine's disks."""

from __future__ import annotations

import copy
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio

MAX_DEPTH = 8  # folders below media_dir searched
MAX_FILES = 50_000  # files indexed; a larger folder is searched only this far
# files that are never an edit's media (sidecars, edits, notes)
_NOT_MEDIA = {
    ".edl", ".otio", ".otioz", ".xml", ".fcpxml", ".json", ".txt", ".md", ".csv", ".py",
    ".ale", ".aaf", ".kdenlive", ".mlt", ".log", ".ini", ".cdl", ".cc", ".ccc", ".lut",
    ".cube", ".srt", ".pdf", ".zip",
}  # fmt: skip
_UNSAFE = re.compile(r"[\\/:*?\"<>|\x00-\x1f\s]+")


def _loose(name: str) -> str:
    """A name as file systems and NLEs mangle it: case, characters a file name cannot hold
    and blanks all folded (clip "92A-2B*" is saved as "92A-2B_.mov")."""
    return _UNSAFE.sub("_", name.strip().casefold())


def _stem(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and ext and " " not in ext and len(ext) <= 5 else name


@dataclass
class _Index:
    """The files under media_dir by full name and by stem, each folded as `_loose`."""

    by_name: dict[str, list[Path]] = field(default_factory=dict)
    by_stem: dict[str, list[Path]] = field(default_factory=dict)
    truncated: bool = False

    def add(self, path: Path) -> None:
        self.by_name.setdefault(_loose(path.name), []).append(path)
        self.by_stem.setdefault(_loose(_stem(path.name)), []).append(path)


def _index(root: Path) -> _Index:
    index = _Index()
    count = 0
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        depth = len(Path(folder).parts) - base_depth
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() in _NOT_MEDIA:
                continue
            path = Path(folder) / name
            if not path.is_file():
                continue
            index.add(path)
            count += 1
            if count >= MAX_FILES:
                index.truncated = True
                return index
    return index


def _basename(url: str) -> str:
    """The file name a URL or path ends in, percent-decoded, on any OS's separators."""
    path = unquote(urlparse(url).path) if "://" in url else url
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def _names(clip: otio.schema.Clip) -> list[str]:
    """What a clip's media may be called, most specific first: the reference's file name,
    the EDL's SOURCE FILE / FROM CLIP comments, the clip name, the reel."""
    ref = clip.media_reference
    names = [_basename(getattr(ref, "target_url", None) or "")]
    if ref is not None and ref.metadata.get("original_target_url"):  # OTIO's bundle stand-in
        names.append(_basename(str(ref.metadata["original_target_url"])))
    cmx = clip.metadata.get("cmx_3600") or {}
    for comment in cmx.get("comments", []) or []:
        m = re.match(r"^\s*(?:SOURCE FILE|FROM FILE|FROM CLIP)\s*:\s*(.+)$", str(comment), re.I)
        if m:
            names.append(_basename(m.group(1).strip()))
    names.append(clip.name or "")
    names.append(str(cmx.get("reel", "") or ""))
    safe = []
    for name in names:
        name = name.strip()
        if name and name not in (".", "..") and name not in safe:
            safe.append(name)
    return safe


def _find(name: str, index: _Index) -> tuple[Path | None, list[Path]]:
    """The file `name` means (and the candidates when several matched equally well): its
    full name, then a file named `name` plus an extension, then the same stem."""
    for table, key in (
        (index.by_name, _loose(name)),
        (index.by_stem, _loose(name)),
        (index.by_stem, _loose(_stem(name))),
    ):
        found = table.get(key, [])
        if len(found) == 1:
            return found[0], []
        if found:
            exact = [p for p in found if name in (p.name, _stem(p.name), p.stem)]
            if len(exact) == 1:
                return exact[0], []
            tied = sorted(exact or found)
            return tied[0], tied
    return None, []


def _needs_relink(ref: object, base_dir: Path | None) -> bool:
    if ref is None or isinstance(ref, otio.schema.MissingReference):
        return True
    if not isinstance(ref, otio.schema.ExternalReference):
        return False  # generators, image sequences: nothing to look up by name
    from .media import media_path

    path = media_path(ref, base_dir)
    if path is None:  # a remote URL: not ours to replace
        return urlparse(ref.target_url or "").scheme in ("", "file") or not ref.target_url
    return not path.is_file()


@dataclass(frozen=True)
class RelinkReport:
    relinked: tuple[tuple[str, Path], ...]  # (clip name, file)
    unmatched: tuple[str, ...]  # clip names left as they were


def relink_media(
    timeline: otio.schema.Timeline, media_dir: Path, *, base_dir: Path | None = None
) -> RelinkReport:
    """Point every clip whose media is missing (no reference, or a file that is not there)
    at the file in `media_dir` its name says: the reference's file name, the EDL's SOURCE
    FILE comment, the clip name, then the reel, each matched case-insensitively with or
    without an extension. The new reference keeps the available range and metadata.
    Several equally good files: the one spelled exactly as the name, else the first (with
    a warning). No match: the clip is left alone (scoring reports it missing).

    `base_dir` resolves relative references (the edit's folder). A timeline read from a
    bundle keeps its relative references (they live inside the bundle).
    """
    from .edit_io import bundle_of

    root = Path(media_dir)
    if not root.is_dir():
        from moodsic_engine.errors import InputError

        raise InputError(f"--media-dir {root}: not a folder")
    root = root.resolve()
    index = _index(root)
    in_bundle = bundle_of(timeline) is not None
    relinked: list[tuple[str, Path]] = []
    unmatched: list[str] = []
    ambiguous: dict[str, list[Path]] = {}
    for clip in timeline.find_clips():
        ref = clip.media_reference
        url = getattr(ref, "target_url", None) or ""
        if in_bundle and url and not Path(url).is_absolute() and "://" not in url:
            continue
        if not _needs_relink(ref, base_dir):
            continue
        found = None
        for name in _names(clip):
            found, tied = _find(name, index)
            if found is not None:
                if tied:
                    ambiguous[name] = tied
                break
        if found is None:
            unmatched.append(clip.name or "")
            continue
        old = ref if ref is not None else otio.schema.MissingReference()
        meta = copy.deepcopy(dict(old.metadata)) if old.metadata else {}
        meta.setdefault("moodsic", {})
        meta["moodsic"] = {**dict(meta["moodsic"]), "relinked_from": url or None}
        clip.media_reference = otio.schema.ExternalReference(
            target_url=found.resolve().as_uri(),
            available_range=getattr(old, "available_range", None),
            metadata=meta,
        )
        relinked.append((clip.name or "", found))
    if ambiguous:
        shown = "; ".join(
            f"{name}: {', '.join(str(p.relative_to(root)) for p in paths[:3])}"
            for name, paths in list(ambiguous.items())[:3]
        )
        warnings.warn(
            f"--media-dir: {len(ambiguous)} name(s) match several files, the first was taken "
            f"({shown}); rename or move the others to choose",
            UserWarning,
            stacklevel=2,
        )
    if index.truncated:
        warnings.warn(
            f"--media-dir {root}: searched only the first {MAX_FILES} files",
            UserWarning,
            stacklevel=2,
        )
    if unmatched and not relinked:
        warnings.warn(
            f"--media-dir {root}: no file there matches the edit's clips (by file name, "
            "source file, clip name or reel)",
            UserWarning,
            stacklevel=2,
        )
    return RelinkReport(tuple(relinked), tuple(unmatched))
