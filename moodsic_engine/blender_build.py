"""Engine-side helpers for the Blender add-on: the extension zip and dialogue regions.

`moodsic blender build-addon` builds the extension zip from `blender_addon/`;
`moodsic blender speech VIDEO` reports where the video's own audio has speech, so the
add-on can key the music's volume down under dialogue (Blender cannot run silero-vad).

The zip has the same layout as Blender's own `blender_ext.py build`: the manifest and the
add-on's files at the top level, caches and hidden files left out. It needs no Blender.
The zip is installed with Edit > Preferences > Get Extensions > Install from Disk, or headless with
`bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default")`.
"""

from __future__ import annotations

import os
import re
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from .errors import InputError, ResourceError
from .fileio import atomic_path

MANIFEST = "blender_manifest.toml"
REQUIRED = (
    "schema_version",
    "id",
    "version",
    "name",
    "tagline",
    "maintainer",
    "type",
    "blender_version_min",
    "license",
)
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # same bytes for the same sources


def addon_source() -> Path:
    """`blender_addon/` beside the engine package: in a checkout, and in an installed wheel,
    which ships it as a top-level package (pyproject.toml); MOODSIC_ADDON_SOURCE overrides."""
    env = os.environ.get("MOODSIC_ADDON_SOURCE")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "blender_addon")
    for path in candidates:
        if (path / MANIFEST).is_file():
            return path
    raise ResourceError(
        "the Blender add-on sources (blender_addon/) are not installed with this copy of "
        "Moodsic: reinstall it from its wheel or a source checkout, or set MOODSIC_ADDON_SOURCE"
    )


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no {MANIFEST} in {source}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(f"{path} lacks {', '.join(missing)}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(data["id"])):
        raise InputError(f"{path}: id {data['id']!r} must be a lowercase identifier")
    if data["type"] != "add-on":
        raise InputError(f"{path}: type must be 'add-on'")
    return data


def _files(source: Path) -> list[Path]:
    out = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo", ".zip"):
            out.append(path)
    return out


def build_addon(
    output_dir: str | os.PathLike[str] | None = None, *, source: Path | None = None
) -> Path:
    """Write `<id>-<version>.zip` into `output_dir` (default: current folder); return its path."""
    src = source or addon_source()
    manifest = read_manifest(src)
    if not (src / "__init__.py").is_file():
        raise InputError(f"{src} has no __init__.py")
    out_dir = Path(output_dir) if output_dir else Path.cwd()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _files(src):
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return target


def dialogue_regions(
    video: str | os.PathLike[str], *, sample_rate: int = 16000
) -> list[tuple[float, float]]:
    """Speech (start_s, end_s) in the video's own audio; [] when it has no audio track."""
    from .mix.audio import video_audio
    from .mix.ducking import speech_regions
    from .video import probe_video

    info = probe_video(video)
    if not info.has_audio:
        return []
    n = int(round(info.duration_s * sample_rate))
    audio = video_audio(video, sample_rate, n)
    if audio is None or float(abs(audio).max(initial=0.0)) < 1e-4:
        return []
    return [(round(a, 3), round(b, 3)) for a, b in speech_regions(audio, sample_rate)]
