"""Front-end helpers over the public API: score a video and write every requested file."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .cue import CueSheet
from .errors import InputError
from .experts.registry import mode_label
from .fileio import atomic_path, sweep_parts
from .progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from .experts import LoadedExperts


@dataclass(frozen=True)
class ScoreResult:
    cue_path: Path
    cue: CueSheet
    extras: dict[str, Path] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        cue = self.cue
        lines = [f"cue sheet: {self.cue_path}"]
        lines += [f"{k}: {v}" for k, v in self.extras.items()]
        modes = cue.engine.get("modes", {})
        ran = ", ".join(
            f"{n} ({mode_label(n, modes.get(n))})" for n in cue.engine.get("experts", [])
        )
        lines.append(f"experts: {ran}")
        for name, why in cue.engine.get("unavailable", {}).items():
            why = why.removeprefix(f"{name}:").strip()
            lines.append(f"  not run: {name}: {why}")
        if "face_coverage" in cue.summary:
            lines.append(f"face coverage: {cue.summary['face_coverage']:.0%}")
        cal = (cue.engine.get("config") or {}).get("fusion", {}).get("calibration")
        if cal:
            lines.append(f"calibration: {cal}")
        levels = cue.summary.get("levels")
        if isinstance(levels, dict):
            lines.append(_levels_line(levels))
            lines += [f"  warning: {w}" for w in levels.get("warnings", [])]
        lines.append(f"{len(cue.segments)} segment(s):")
        for i, s in enumerate(cue.segments):
            track = f"{s.track.title} - {s.track.artist}" if s.track else "(no track)"
            lines.append(
                f"  [{i}] {s.start_s:7.2f}-{s.end_s:7.2f}s  {s.mood_label:<24} "
                f"V{s.valence:+.2f} A{s.arousal:+.2f}  {track}"
            )
        return lines


def _levels_line(levels: dict[str, Any]) -> str:
    """The mix's levels (cue summary "levels") in one summary line."""

    def f(key: str, unit: str) -> str:
        x = levels.get(key)
        return "-" if x is None else f"{x:.1f} {unit}"

    parts = []
    if levels.get("dialogue_lufs") is not None:
        parts += [f"dialogue {f('dialogue_lufs', 'LUFS')}",
                  f"music {f('dialogue_to_music_lu', 'LU')} under it"]  # fmt: skip
    parts += [f"music gain {f('music_gain_db', 'dB')}", f"mix {f('mix_lufs', 'LUFS')}",
              f"true peak {f('mix_true_peak_dbtp', 'dBTP')}", f"LRA {f('mix_lra_lu', 'LU')}"]  # fmt: skip
    return "levels: " + ", ".join(parts)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        raise InputError(f"cannot resolve {path}: symlink loop") from None


def _check_outputs(video: Path, outputs: dict[str, Path | None]) -> None:
    src = _resolved(video)
    seen: dict[Path, str] = {}
    for name, p in outputs.items():
        if p is None:
            continue
        rp = _resolved(Path(p))
        if rp == src:
            raise InputError(f"--{name} would overwrite the input video {video}")
        if rp in seen:
            raise InputError(f"--{name} and --{seen[rp]} name the same file {p}")
        if rp.is_dir():
            raise InputError(f"--{name} {p} is a directory")
        if rp.exists() and not rp.is_file():  # checked before the work, not after it
            raise InputError(f"--{name} {p} exists and is not a regular file")
        seen[rp] = name


def _write_audio_outputs(
    cue: CueSheet,
    video: Path,
    config: Config,
    *,
    mix: str | os.PathLike[str] | None,
    bed: str | os.PathLike[str] | None,
    mux: str | os.PathLike[str] | None,
    progress: ProgressFn,
) -> CueSheet:
    """Bed, mix and muxed video from ONE render: speech detection and music placement run once.
    Returns the cue with the mix's levels in its summary ("levels")."""
    import dataclasses

    from . import mix as mixing
    from .fileio import work_dir

    cfg = config.mix
    sr = cfg.sample_rate
    steps = sum(1 for x in (mix, bed, mux) if x)
    progress("mix", 0, steps)
    dialogue = mixing.dialogue_for(cue, cfg, video) if cue.video.has_audio else None
    # the bed is the music exactly as it sits in the mix (same level and ducking)
    mixed, bed_audio, levels = mixing.mix_arrays(cue, cfg, dialogue)
    out: dict[str, Path] = {}
    if bed:
        out["bed"] = mixing.write_audio(bed, bed_audio, sr)
        progress("mix", len(out), steps)
    if mix or mux:
        with work_dir("score") as tmpdir:
            mix_path = mixing.write_audio(mix or Path(tmpdir) / "mix.wav", mixed, sr)
            if mix:
                out["mix"] = mix_path
                progress("mix", len(out), steps)
            if mux:
                out["mux"] = mixing.mux(video, mix_path, mux)
                progress("mix", len(out), steps)
    if levels is None:
        return cue
    return dataclasses.replace(cue, summary={**cue.summary, "levels": levels.to_dict()})


def score_video_to_files(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    library: str = "builtin",
    config: Config | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    mix: str | os.PathLike[str] | None = None,
    bed: str | os.PathLike[str] | None = None,
    mux: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    reroll: dict[int, int] | None = None,
    allow_outside: bool = False,
    progress: ProgressFn = no_progress,
    reuse: str | os.PathLike[str] | None = None,
    experts: LoadedExperts | None = None,
) -> ScoreResult:
    """Score `video`; write the cue sheet to `out` and each requested extra atomically.

    Every output is checked before any work starts, and the cue sheet is written last, so a
    failure in mixing never leaves a cue sheet that looks like a finished run.

    `reuse`: an earlier cue sheet of the same video. When it was made from this very file
    with the same analysis settings, its analysis is taken as it stands (no decoding, no
    models: a re-roll takes about a second); otherwise a warning says why and the video is
    analysed again.

    `experts`: models already loaded for this config (the warm engine's); without them
    they load on a background thread while the library loads and the video starts decoding.
    """
    import warnings

    from .calibration import resolve_config
    from .experts import load_experts
    from .library import load_library
    from .pipeline import reuse_problem, score_video
    from .weights import resolve_weights_dir

    # names the calibration in the config (echoed in the cue sheet); a bad file stops here
    config = resolve_config(config or Config(), weights_dir)
    video = Path(video)
    extras_req = {"mix": mix, "bed": bed, "mux": mux, "plot": plot}
    _check_outputs(
        video, {"output": Path(out), **{k: Path(v) if v else None for k, v in extras_req.items()}}
    )
    for target in (out, *(v for v in extras_req.values() if v)):
        sweep_parts(target)  # temp files an earlier, killed run left beside these outputs
    from .video import probe_video

    probe_video(video, config.sample)  # a bad video fails in a blink, before models load
    earlier = CueSheet.from_json(reuse) if reuse is not None else None
    if earlier is not None and (problem := reuse_problem(earlier, video, config)) is not None:
        warnings.warn(
            f"not reusing {Path(reuse).name}: {problem}; analysing the video again", stacklevel=2
        )
        earlier = None
    progress("load", 0, 2)
    # The models load on their own thread while the library loads and the video starts
    # decoding; the first batch of frames waits for them (runtime.background).
    if earlier is not None:
        experts = None
    elif experts is None:  # given: already loaded (`moodsic serve` keeps them)
        from .experts.registry import EXPERT_NAMES
        from .runtime.background import Pending

        experts = Pending(load_experts, config, resolve_weights_dir(weights_dir))
        experts.detail = "face" in (config.experts or EXPERT_NAMES)
    lib = load_library(library, match_config=config.match, allow_outside=allow_outside)
    progress("load", 1, 2)
    progress("load", 2, 2)
    cue = score_video(
        video, lib, config, experts=experts, progress=progress, reroll=reroll, reuse=earlier
    )
    # One unit: every output goes to a temp file first; only when all are written are they
    # renamed into place, the cue sheet last (ExitStack renames in reverse order of entry).
    with contextlib.ExitStack() as stack:
        cue_tmp = stack.enter_context(atomic_path(out))
        staged = {k: stack.enter_context(atomic_path(v)) for k, v in extras_req.items() if v}
        if mix or bed or mux:
            cue = _write_audio_outputs(
                cue,
                video,
                config,
                mix=staged.get("mix"),
                bed=staged.get("bed"),
                mux=staged.get("mux"),
                progress=progress,
            )
        if plot:
            from .plot import plot_cue

            plot_cue(cue, staged["plot"])
        cue_tmp.write_text(cue.to_json_text(Path(out).parent) + "\n", encoding="utf-8")
    extras = {k: Path(v) for k, v in extras_req.items() if v}
    return ScoreResult(cue_path=Path(out), cue=cue, extras=extras)
