"""Finding the clips: a folder (recursive), a glob, a single video, or a CSV/JSONL manifest
with per-clip options; output names mirror the input tree."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..fileio import regular_file
from .model import CUE_SUFFIX, MANIFEST_EXTENSIONS, MUX_SUFFIX, VIDEO_EXTENSIONS, ClipInput

# Manifest columns that are not config keys.
_CLIP_KEYS = {"path", "out", "library", "mix", "mux"}
# Short names accepted in manifests for the config keys people set most.
_ALIASES = {"sample_fps": "sample.sample_fps", "min_segment_s": "segment.min_segment_s"}


def discover(spec: str | os.PathLike[str], *, exclude: Path | None = None) -> list[ClipInput]:
    """The clips named by INPUT: a folder (recursive), a glob, a manifest, or one video file.

    Output names mirror the input tree under a root: the folder itself, the fixed part of
    a glob, or the manifest's folder (or the clips' common folder when a manifest points
    elsewhere). Hidden files and anything under `exclude` (the output folder, when it sits
    inside the input tree) are left out.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        root = path.resolve()
        in_place = exclude is not None and exclude == root
        # Writing into the input folder itself: leave its subfolders in, but never take a
        # previous batch's muxed videos for new input.
        found = [
            p
            for p in _walk(root, None if in_place else exclude)
            if p.suffix.lower() in VIDEO_EXTENSIONS
            and not (in_place and p.name.endswith(MUX_SUFFIX))
        ]
        if not found:
            raise InputError(f"no video files found in {path}")
        return _mirror(root, [ClipInput(path=p, rel="") for p in found])
    if path.is_file():
        if path.suffix.lower() in MANIFEST_EXTENSIONS:
            return _read_manifest(path)
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            p = path.resolve()
            return _mirror(p.parent, [ClipInput(path=p, rel="")])
        raise InputError(
            f"{path} is neither a video ({', '.join(sorted(VIDEO_EXTENSIONS))}) nor a manifest (.csv, .jsonl)"
        )
    if glob.has_magic(text):
        matches = sorted(
            Path(m).resolve()
            for m in glob.glob(os.path.expanduser(text), recursive=True)
            if Path(m).is_file() and Path(m).suffix.lower() in VIDEO_EXTENSIONS
        )
        matches = [m for m in matches if not _excluded(m, exclude)]
        if not matches:
            raise InputError(f"no video files match {text}")
        root = _glob_root(text)
        if not all(m.is_relative_to(root) for m in matches):
            root = Path(os.path.commonpath([m.parent for m in matches]))
        return _mirror(root, [ClipInput(path=m, rel="") for m in matches])
    if path.exists():  # there, but not a file or folder: a FIFO, device or socket
        regular_file(path, "input")
    raise InputError(f"input not found: {path}")


def discover_many(
    specs: list[str | os.PathLike[str]], *, exclude: Path | None = None
) -> list[ClipInput]:
    """Several INPUTs (what a shell makes of `clips/*.mp4`): folders, globs or videos, mirrored
    under their common folder. A manifest must come alone."""
    if len(specs) == 1:
        return discover(specs[0], exclude=exclude)
    if not specs:
        raise InputError("no input given")
    found: dict[Path, None] = {}
    for spec in specs:
        if Path(spec).suffix.lower() in MANIFEST_EXTENSIONS and Path(spec).is_file():
            raise InputError(f"a manifest ({spec}) must be the only input")
        for clip in discover(spec, exclude=exclude):
            found.setdefault(clip.path, None)
    paths = list(found)
    root = Path(os.path.commonpath([p.parent for p in paths]))
    for spec in specs:  # a folder argument keeps its own name as the root, as when given alone
        p = Path(spec).expanduser()
        if p.is_dir() and all(q.is_relative_to(p.resolve()) for q in paths):
            root = p.resolve()
    return _mirror(root, [ClipInput(path=p, rel="") for p in paths])


def _walk(root: Path, exclude: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _excluded(here / d, exclude)
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _excluded(path: Path, exclude: Path | None) -> bool:
    return exclude is not None and path.resolve().is_relative_to(exclude)


def _glob_root(pattern: str) -> Path:
    parts = Path(os.path.expanduser(pattern)).parts
    fixed: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed).resolve() if fixed else Path.cwd().resolve()


def _mirror(root: Path, clips: list[ClipInput]) -> list[ClipInput]:
    """Give each clip without an explicit name its path under `root`, minus the extension.

    Two clips that differ only by extension in one folder keep the extension in their
    output name (clip.mp4 -> clip.mp4.moodsic.json) so neither overwrites the other.
    """
    stems: dict[str, int] = {}
    for c in clips:
        if not c.rel:
            key = c.path.relative_to(root).with_suffix("").as_posix()
            stems[key] = stems.get(key, 0) + 1
    out: list[ClipInput] = []
    for c in clips:
        if c.rel:
            out.append(c)
            continue
        rel_path = c.path.relative_to(root)
        key = rel_path.with_suffix("").as_posix()
        rel = rel_path.as_posix() if stems[key] > 1 else key
        out.append(dataclasses.replace(c, rel=rel))
    return out


def _read_manifest(path: Path) -> list[ClipInput]:
    rows = _manifest_rows(path)
    if not rows:
        raise InputError(f"manifest {path} lists no clips")
    base = path.resolve().parent
    clips: list[ClipInput] = []
    for where, row in rows:
        row = _flatten(row)
        raw = row.get("path")
        if raw in (None, ""):
            raise InputError(f"{where}: no path given")
        try:
            clip_path = Path(os.path.expanduser(str(raw)))
            clip_path = (clip_path if clip_path.is_absolute() else base / clip_path).resolve()
        except (ValueError, OSError, RuntimeError):  # NUL byte, symlink loop
            raise InputError(f"{where}: unusable path {str(raw)!r}") from None
        out = row.get("out")
        rel = ""
        if out not in (None, ""):
            rel = str(out).removesuffix(CUE_SUFFIX)
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise InputError(f"{where}: out must be a relative name inside the output folder")
        overrides = {}
        for key, value in row.items():
            if key in _CLIP_KEYS or value in (None, ""):
                continue
            key = key.removeprefix("config.")  # {"path": ..., "config": {...}} reads the same
            overrides[_ALIASES.get(key, key)] = value
        clips.append(
            ClipInput(
                path=clip_path,
                rel=Path(rel).as_posix() if rel else "",
                overrides=overrides,
                library=_manifest_library(row.get("library"), base),
                mix=_as_bool(row.get("mix"), where, "mix"),
                mux=_as_bool(row.get("mux"), where, "mux"),
                where=where,
            )
        )
    unnamed = [c.path for c in clips if not c.rel]
    root = base
    if unnamed and not all(p.is_relative_to(base) for p in unnamed):
        root = Path(os.path.commonpath([p.parent for p in unnamed]))
    clips = _mirror(root, clips)
    seen: dict[str, str] = {}
    for c in clips:
        if c.rel in seen:
            raise InputError(
                f"{c.where}: writes the same output as {seen[c.rel]} ({c.rel}{CUE_SUFFIX}); give one an `out` name"
            )
        seen[c.rel] = c.where
    return clips


def _manifest_library(value: Any, base: Path) -> str | None:
    """A per-clip library: a name like "builtin", or a path relative to the manifest."""
    if value in (None, ""):
        return None
    text = str(value)
    candidate = Path(os.path.expanduser(text))
    if not candidate.is_absolute() and (base / candidate).exists():
        return str(base / candidate)
    return text


def _manifest_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    # A manifest of 100,000 clips is a few MB: cap what is read (and never open a FIFO).
    regular_file(path, "manifest", max_bytes=64 << 20)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"manifest {path} is not UTF-8 text") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise InputError(f"manifest {path} needs a header row with a `path` column")
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"{path.name} line {i}: more cells than header columns")
            clean = {k.strip(): _parse_cell(v) for k, v in row.items() if k is not None}
            if any(v not in (None, "") for v in clean.values()):
                rows.append((f"{path.name} line {i}", clean))
        return rows
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also: absurd nesting, 5000-digit ints
            msg = getattr(exc, "msg", None) or " ".join(str(exc).split())[:120]
            raise InputError(f"{path.name} line {i}: not valid JSON ({msg})") from None
        if isinstance(row, str):
            row = {"path": row}
        if not isinstance(row, dict):
            raise InputError(f"{path.name} line {i}: expected an object with a path")
        rows.append((f"{path.name} line {i}", row))
    return rows


def _parse_cell(value: str | None) -> Any:
    """A CSV cell as the JSON value it spells (numbers, true/false, lists), else the text."""
    if value is None:
        return None
    text = value.strip()
    if text == "":
        return ""
    with contextlib.suppress(ValueError, RecursionError):  # RecursionError: absurd nesting
        return json.loads(text)
    if text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    return text


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _as_bool(value: Any, where: str, key: str) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{where}: {key} must be true or false, not {value!r}")


def apply_overrides(base: Config, overrides: dict[str, Any], where: str = "") -> Config:
    """`base` with dotted-key overrides from a manifest row, validated like a TOML file."""
    if not overrides:
        return base
    data = base.to_dict()
    for key, value in overrides.items():
        if key == "experts" and isinstance(value, str):
            value = [
                v.strip() for v in value.replace(";", ",").replace("|", ",").split(",") if v.strip()
            ]
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise InputError(f"{where}: unknown option {key!r}")
            node = node[part]
        if parts[-1] not in node:
            raise InputError(f"{where}: unknown option {key!r}")
        node[parts[-1]] = value
    try:
        return Config.from_dict(data)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
