"""Engine-side helpers for the Blender add-on: the extension zip and dialogue regions.

`moodsic blender build-addon` builds the extension zip from `blender_addon/`;
`moodsic blender speech VIDEO` reports where the video's own audio has speech, so the
add-on can key the music's volume down under dialogue (Blender cannot run silero-vad); with
`--cue` it also reports the levels the mixdown would set for that cue sheet (`strip_levels`),
so the add-on's strips sit where the mixdown's music does.

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
from typing import TYPE_CHECKING, Any

from .errors import InputError, ResourceError
from .fileio import atomic_path

if TYPE_CHECKING:
    from .config import MixConfig

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


def strip_levels(
    video: str | os.PathLike[str] | None,
    cue_path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
) -> dict[str, Any]:
    """Speech and the mixdown's levels for a cue sheet, as the Blender add-on keys them.

    The music is rendered and levelled exactly as `mix.render.mix_arrays` does (same plan,
    speech found at the mix rate, `levels.level_mix`), so the numbers are the mixdown's. The
    music a piece plays sits, where nobody speaks, at `piece.gain_db + music_db` (`music_db` =
    `norm_db`, the bed to the target, + `music_gain_db`) and `duck_db` lower under speech.

    Returns
    -------
    {"speech": [[start_s, end_s], ...], "levels": Levels.to_dict() plus "norm_db",
    "music_db", "duck_db" (<= 0; 0 without dialogue or ducking), "duck", "duck_attack_s",
    "duck_release_s", "music_under_dialogue_lu"}.
    """
    import math

    import numpy as np

    from .config import MixConfig
    from .cue import CueSheet
    from .mix.audio import video_audio
    from .mix.ducking import speech_regions
    from .mix.levels import level_mix
    from .mix.loudness import integrated_lufs
    from .mix.render import render_music

    cfg = cfg or MixConfig()
    sr = int(cfg.sample_rate)
    cue = CueSheet.from_json(cue_path)
    src = Path(video) if video is not None else Path(cue.video.path)
    n = int(round(cue.video.duration_s * sr))
    dialogue = video_audio(src, sr, n) if src.is_file() else None
    regions: list[tuple[float, float]] = []
    if dialogue is not None and float(np.abs(dialogue).max(initial=0.0)) > 1e-4:
        regions = speech_regions(dialogue, sr)
    music = render_music(cue, cfg)
    music_lufs = integrated_lufs(music, sr)
    _, _, levels = level_mix(music, dialogue, sr, cfg, regions)
    out = levels.to_dict()
    norm = float(cfg.target_lufs) - music_lufs if math.isfinite(music_lufs) else None
    gain, under = levels.music_gain_db, levels.music_under_dialogue_db
    out["norm_db"] = None if norm is None else round(norm, 3)
    out["music_db"] = None if norm is None or gain is None else round(norm + gain, 3)
    duck = 0.0
    if gain is not None and under is not None:
        duck = min(0.0, under - gain)
    out["duck_db"] = round(duck, 3)
    out["duck"] = bool(cfg.duck)
    out["duck_attack_s"] = float(cfg.duck_attack_s)
    out["duck_release_s"] = float(cfg.duck_release_s)
    out["music_under_dialogue_lu"] = float(cfg.music_under_dialogue_lu)
    return {"speech": [[round(a, 3), round(b, 3)] for a, b in regions], "levels": out}
