"""Rendering: the music bed read and looped per the placement, then levelled and ducked; the
finished mix (the video's own audio plus the bed) and writing either to a file.

The bed plays the music plan (`plan.music_plan`: where each track enters on its downbeat,
loops on its bar grid after playing its lead-in once, and leaves at a bar line, with its
crossfades, fades and gain; the OTIO exports and the Blender add-on play the same plan).
Every track is brought to the target loudness. The video's own sound is never amplified; the
music is set against it (`levels.level_mix`): under speech found by silero-vad it sits
`music_under_dialogue_lu` under the dialogue, elsewhere it brings the mix to the target, and it
is pulled down first where the sum would pass `true_peak_db`. Output format follows the
extension (WAV, FLAC, MP3).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import MixConfig
from ..cue import CueSheet
from ..errors import InputError
from .audio import read_audio, video_audio, write_audio
from .ducking import speech_regions
from .levels import Levels, level_mix
from .plan import MusicPlan, Piece, fade_curve, music_plan, track_facts


def render_music(cue: CueSheet, cfg: MixConfig, plan: MusicPlan | None = None) -> np.ndarray:
    """The music bed before loudness and ducking: float32 [n, 2] spanning the video exactly.

    It plays `plan` (default: the plan made from the decoded tracks, as `place_tracks` makes
    it, see `plan.music_plan`); every piece at its record position, with its fades and gain."""
    sr = int(cfg.sample_rate)
    n = int(round(cue.video.duration_s * sr))
    segs = list(cue.segments)
    if segs and n == 0:
        raise InputError(
            f"the video lasts {cue.video.duration_s:g} s: too short to mix music under it"
        )
    if not segs:
        return np.zeros((n, 2), dtype=np.float32)
    if not any(seg.track is not None and seg.track.path for seg in segs):
        raise InputError(
            "no segment's track has an audio file (an annotation-only library?): nothing to mix"
        )
    audio = _tracks(cue, sr)
    if plan is None:
        plan = mixdown_plan(cue, cfg, audio)
    return render_plan(plan, cue, audio, n)


def _tracks(cue: CueSheet, sr: int) -> dict[str, np.ndarray]:
    audio: dict[str, np.ndarray] = {}
    for seg in cue.segments:
        tr = seg.track
        if tr is not None and tr.path and tr.path not in audio:
            y = read_audio(tr.path, sr)
            if len(y) < sr // 10:
                raise InputError(f"audio file {Path(tr.path).name} is too short to place")
            audio[tr.path] = y
    return audio


def mixdown_plan(
    cue: CueSheet, cfg: MixConfig, audio: dict[str, np.ndarray] | None = None
) -> MusicPlan:
    """The plan `render_music` plays: made from the decoded tracks (`audio`, path -> samples
    at the mix rate; decoded here when not given), as `place_tracks` makes it."""
    sr = int(cfg.sample_rate)
    audio = _tracks(cue, sr) if audio is None else audio
    facts = {
        path: track_facts(path, sr, detect=cfg.beat_align, target_lufs=cfg.target_lufs, audio=y)
        for path, y in audio.items()
    }
    return music_plan(cue, facts, rate=sr, crossfade_s=cfg.crossfade_s)


def render_plan(plan: MusicPlan, cue: CueSheet, audio: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Sum the plan's pieces: float32 [n, 2]; `audio` maps each track path of the cue sheet
    to its samples [frames, 2] at the plan's rate."""

    def source(p: Piece) -> np.ndarray:
        tr = cue.segments[p.segment].track
        assert tr is not None
        return audio[tr.path]

    return render_pieces(plan.pieces, source, n)


def render_pieces(
    pieces: Iterable[Piece], source: Callable[[Piece], np.ndarray], n: int
) -> np.ndarray:
    """Sum pieces (`plan.Piece`, record samples from 0) into float32 [n, 2]: each read from
    `source(piece)` ([frames, 2] at the pieces' rate) with its fades (`plan.fade_curve`), gain
    and loop join."""
    out = np.zeros((n, 2), dtype=np.float32)
    for p in pieces:
        y = source(p)
        a, b = max(0, p.rec_in), min(n, p.rec_out)
        if b <= a:
            continue
        piece = _take(y, p.src_in + (a - p.rec_in), b - a)
        env = np.ones(p.length, dtype=np.float32)
        if p.fade_in:
            env[: p.fade_in] = fade_curve(np.arange(p.fade_in), p.fade_in, rising=True)
        if p.fade_out:
            k = np.arange(p.fade_out)
            env[p.length - p.fade_out :] *= fade_curve(k, p.fade_out, rising=False)
        gain = np.float32(1.0 if p.gain_db is None else 10 ** (p.gain_db / 20))
        out[a:b] += piece * (env[a - p.rec_in : b - p.rec_in] * gain)[:, None]
        if p.join:
            # The audio past the wrap point fades out while the next pass fades in.
            end = min(n, p.rec_out + p.join)
            if end > p.rec_out:
                k = np.arange(end - p.rec_out)
                fade = fade_curve(k, p.join, rising=False).astype(np.float32)
                out[p.rec_out : end] += _take(y, p.src_out, len(k)) * (fade * gain)[:, None]
    return out


def _take(y: np.ndarray, start: int, count: int) -> np.ndarray:
    """count samples of y from start; silence where the file has none (never past its end
    in a plan made from this file; a shorter file than planned plays what it has)."""
    part = y[max(0, start) : max(0, start + count)]
    if len(part) == count:
        return part
    out = np.zeros((count, y.shape[1]), dtype=np.float32)
    out[: len(part)] = part
    return out


def _video_for(cue: CueSheet, video_path: str | os.PathLike[str] | None) -> Path | None:
    if video_path is not None:
        return Path(video_path)
    p = Path(cue.video.path)
    return p if p.is_file() else None


def dialogue_for(
    cue: CueSheet, cfg: MixConfig, video_path: str | os.PathLike[str] | None = None
) -> np.ndarray | None:
    """The video's own audio spanning the cue exactly ([n, 2] at the mix rate), or None."""
    video = _video_for(cue, video_path)
    if video is None:
        return None
    return video_audio(video, cfg.sample_rate, int(round(cue.video.duration_s * cfg.sample_rate)))


class Mixdown(NamedTuple):
    """The finished mix [n, 2], the music bed as it sits in it [n, 2], and the levels."""

    mix: np.ndarray
    bed: np.ndarray
    levels: Levels


def mix_arrays(cue: CueSheet, cfg: MixConfig, dialogue: np.ndarray | None) -> Mixdown:
    """The music rendered for the cue and set against the video's own sound (`dialogue`,
    [n, 2] at the mix rate, or None), which is never amplified: see `levels.level_mix`."""
    sr = cfg.sample_rate
    music = render_music(cue, cfg)
    regions: list[tuple[float, float]] = []
    if dialogue is not None and np.abs(dialogue).max(initial=0) > 1e-4:
        regions = speech_regions(dialogue, sr)
    mix, bed, levels = level_mix(music, dialogue, sr, cfg, regions)
    return Mixdown(mix, bed, levels)


def build_bed(cue: CueSheet, cfg: MixConfig, *, dialogue: np.ndarray | None = None) -> np.ndarray:
    """The music bed exactly as it sits in the mix with `dialogue` (levelled and ducked)."""
    return mix_arrays(cue, cfg, dialogue).bed


def write_bed(
    cue: CueSheet,
    path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The music alone, after ducking under the video's speech (if the video has audio)."""
    cfg = cfg or MixConfig()
    dialogue = dialogue_for(cue, cfg, video_path)
    bed = build_bed(cue, cfg, dialogue=dialogue)
    return write_audio(path, bed, cfg.sample_rate, ceiling_db=cfg.true_peak_db)


def write_mix(
    cue: CueSheet,
    path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The finished soundtrack: the video's own sound as it is plus the music (see
    `mix_arrays`)."""
    return write_mix_measured(cue, path, cfg, video_path=video_path).path


class WrittenMix(NamedTuple):
    """Where the mix was written and its levels (what `mix_arrays` measured)."""

    path: Path
    levels: Levels


def write_mix_measured(
    cue: CueSheet,
    path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> WrittenMix:
    """`write_mix` that also returns the levels, for callers that record them (the batch
    puts them in each clip's cue sheet as `summary.levels`, as `moodsic score --mix` does)."""
    cfg = cfg or MixConfig()
    dialogue = dialogue_for(cue, cfg, video_path)
    done = mix_arrays(cue, cfg, dialogue)
    out = write_audio(path, done.mix, cfg.sample_rate, ceiling_db=cfg.true_peak_db)
    return WrittenMix(out, done.levels)
