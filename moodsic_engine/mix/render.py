"""Rendering: the music bed read and looped per the placement, then levelled and ducked; the
finished mix (the video's own audio plus the bed) and writing either to a file.

Each segment's track is placed from its `in_s` (snapped to the track's next downbeat when
a beat grid is known), looped on bar boundaries when it is shorter than its segment, and
crossfaded (equal power) into the next segment over a window centred on the boundary, so the
incoming track's downbeat lands on the boundary. The last segment fades out, from a bar
boundary when the grid is known, ending exactly at the video's end. Every track is brought to
the target loudness, the bed as a whole too; under speech found in the video's own audio
(silero-vad) the bed is lowered by `duck_db` with attack/release ramps; a true-peak limiter
keeps the result below `true_peak_db`. Output format follows the extension (WAV, FLAC, MP3).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import MixConfig
from ..cue import CueSheet
from ..errors import InputError
from .audio import read_audio, video_audio, write_audio
from .ducking import duck_envelope, speech_regions
from .loudness import normalize, track_gain
from .plan import BeatGrid, _halves, _loop_len, _start_s, beat_grid

_LOOP_JOIN_S = 0.03  # crossfade at a loop's wrap point when the audio past the bar is known


def _read_looped(y: np.ndarray, loop_len: int, start: int, count: int, join: int) -> np.ndarray:
    """count samples of y starting at position start, wrapping at loop_len.

    Positions wrap modulo loop_len (a negative start reads the loop's tail as pre-roll). At each
    wrap the audio that continues past the loop point is faded out over `join` samples while the
    loop start fades in, so the join does not click.
    """
    pos = start + np.arange(count)
    out = y[np.mod(pos, loop_len)].copy()
    if join <= 0:
        return out
    # First sample of each new pass through the loop.
    wraps = np.flatnonzero(np.mod(pos, loop_len) == 0)
    wraps = wraps[wraps > 0]
    for w in wraps:
        k = np.arange(min(join, count - w))
        if len(k) == 0:
            continue
        fade_in = np.sin(0.5 * np.pi * (k + 0.5) / join)[:, None].astype(np.float32)
        fade_out = np.cos(0.5 * np.pi * (k + 0.5) / join)[:, None].astype(np.float32)
        tail_idx = loop_len + k
        if tail_idx[-1] < len(y):
            out[w + k] = y[k] * fade_in + y[tail_idx] * fade_out
        else:
            # Nothing beyond the loop point: short fade out before the wrap, fade in after.
            pre = np.arange(max(0, w - len(k)), w)
            ramp = np.cos(0.5 * np.pi * (np.arange(len(pre)) + 0.5) / max(1, len(pre)))
            out[pre] *= ramp[:, None].astype(np.float32)
            out[w + k] *= fade_in
    return out


def render_music(cue: CueSheet, cfg: MixConfig) -> np.ndarray:
    """The music bed before loudness and ducking: float32 [n, 2] spanning the video exactly."""
    sr = int(cfg.sample_rate)
    n = int(round(cue.video.duration_s * sr))
    out = np.zeros((n, 2), dtype=np.float32)
    segs = list(cue.segments)
    if segs and n == 0:
        raise InputError(
            f"the video lasts {cue.video.duration_s:g} s: too short to mix music under it"
        )
    if not segs:
        return out
    if not any(seg.track is not None and seg.track.path for seg in segs):
        raise InputError(
            "no segment's track has an audio file (an annotation-only library?): nothing to mix"
        )
    cache: dict[str, tuple[np.ndarray, BeatGrid | None, float]] = {}
    # Half crossfade at each inner boundary, limited by the neighbouring segment lengths.
    bounds, halves = _halves(cue, cfg)
    join = int(_LOOP_JOIN_S * sr)
    for i, seg in enumerate(segs):
        tr = seg.track
        if tr is None or not tr.path:
            continue
        if tr.path not in cache:
            y = read_audio(tr.path, sr)
            if len(y) < sr // 10:
                raise InputError(f"audio file {Path(tr.path).name} is too short to place")
            grid = beat_grid(tr.path, y, sr, detect=cfg.beat_align)
            cache[tr.path] = (y, grid, track_gain(y, sr, cfg.target_lufs))
        y, grid, gain = cache[tr.path]
        loop_len = _loop_len(y, sr, grid)
        s0, s1 = bounds[i], bounds[i + 1]
        h_in, h_out = halves[i], halves[i + 1]
        p0 = int(round(_start_s(tr.in_s, grid, h_in / sr, loop_len / sr) * sr)) % max(1, loop_len)
        a, b = s0 - h_in, s1 + h_out
        piece = _read_looped(y, loop_len, p0 - h_in, b - a, join) * gain
        env = np.ones(b - a, dtype=np.float32)
        if h_in:
            k = np.arange(2 * h_in)
            env[: 2 * h_in] = np.sin(0.5 * np.pi * (k + 0.5) / (2 * h_in))
        if h_out:
            k = np.arange(2 * h_out)
            env[-2 * h_out :] *= np.cos(0.5 * np.pi * (k + 0.5) / (2 * h_out))
        if i == len(segs) - 1:
            env *= _end_fade(b - a, sr, cfg, grid, p0 - h_in, loop_len)
        if i == 0:
            k = np.arange(min(len(env), int(0.01 * sr)))
            env[: len(k)] *= (k + 0.5) / max(1, len(k))
        out[a:b] += piece * env[:, None]
    return out


def _end_fade(
    count: int, sr: int, cfg: MixConfig, grid: BeatGrid | None, start_pos: int, loop_len: int
) -> np.ndarray:
    """Fade to silence at the video's end, starting on a bar boundary when the grid is known."""
    env = np.ones(count, dtype=np.float32)
    fade = int(min(count, max(0.05 * sr, cfg.crossfade_s * sr)))
    begin = count - fade
    if grid is not None and count > 2:
        # Track position (in seconds, within the loop) where the fade would begin.
        pos = ((start_pos + begin) % loop_len) / sr
        bar_start = grid.downbeat_at_or_before(pos)
        shift = int(round((pos - bar_start) * sr))
        if (
            0 <= shift < count - begin + fade
            and begin - shift >= 0
            and fade + shift <= 2 * grid.bar_s * sr
        ):
            begin -= shift
            fade += shift
    k = np.arange(fade)
    env[begin:] = np.cos(0.5 * np.pi * (k + 0.5) / fade).astype(np.float32)
    return env


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


def build_bed(
    cue: CueSheet,
    cfg: MixConfig,
    *,
    dialogue: np.ndarray | None = None,
    level_lufs: float | None = None,
) -> np.ndarray:
    """The music bed at `level_lufs` (default: the target), ducked under speech in `dialogue`."""
    sr = cfg.sample_rate
    music = render_music(cue, cfg)
    level = cfg.target_lufs if level_lufs is None else level_lufs
    music = normalize(music, sr, level, cfg.true_peak_db)
    if cfg.duck and dialogue is not None and np.abs(dialogue).max(initial=0) > 1e-4:
        regions = speech_regions(dialogue, sr)
        if regions:
            music = music * duck_envelope(len(music), sr, regions, cfg)[:, None]
    return music


def write_bed(
    cue: CueSheet,
    path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The music alone, after ducking under the video's speech (if the video has audio)."""
    cfg = cfg or MixConfig()
    sr = cfg.sample_rate
    dialogue = dialogue_for(cue, cfg, video_path)
    bed = build_bed(cue, cfg, dialogue=dialogue)
    return write_audio(path, bed, sr, ceiling_db=cfg.true_peak_db)


def mix_arrays(
    cue: CueSheet, cfg: MixConfig, dialogue: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(mix, bed): the bed under the dialogue by music_gain_db, then the sum at the target."""
    sr = cfg.sample_rate
    if dialogue is None or np.abs(dialogue).max(initial=0) <= 1e-4:
        bed = build_bed(cue, cfg)
        return bed, bed
    bed = build_bed(cue, cfg, dialogue=dialogue, level_lufs=cfg.target_lufs + cfg.music_gain_db)
    dlg = normalize(dialogue, sr, cfg.target_lufs, cfg.true_peak_db)
    mix = normalize(dlg + bed, sr, cfg.target_lufs, cfg.true_peak_db)
    return mix, bed


def write_mix(
    cue: CueSheet,
    path: str | os.PathLike[str],
    cfg: MixConfig | None = None,
    *,
    video_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The finished soundtrack: the video's own audio plus the ducked music, at the target loudness."""
    cfg = cfg or MixConfig()
    sr = cfg.sample_rate
    dialogue = dialogue_for(cue, cfg, video_path)
    mix, _ = mix_arrays(cue, cfg, dialogue)
    return write_audio(path, mix, sr, ceiling_db=cfg.true_peak_db)
