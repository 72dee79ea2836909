"""Audio placement and mixdown: the music bed, the finished mix, and the muxed video.

Each segment's track is placed from its `in_s` (snapped to the track's next downbeat when
a beat grid is known), looped on bar boundaries when it is shorter than its segment, and
crossfaded (equal power) into the next segment over a window centred on the boundary, so the
incoming track's downbeat lands on the boundary. The last segment fades out, from a bar
boundary when the grid is known, ending exactly at the video's end. Every track is brought to
the target loudness, the bed as a whole too; under speech found in the video's own audio
(silero-vad) the bed is lowered by `duck_db` with attack/release ramps; a true-peak limiter
keeps the result below `true_peak_db`. Output format follows the extension (WAV, FLAC, MP3).

Beat grids come from a `<audio file>.beats.json` sidecar (the built-in library writes them)
or, when `MixConfig.beat_align` is on, from librosa's beat tracker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import MixConfig
from .cue import CueSheet
from .errors import InputError, ResourceError
from .fileio import atomic_path, work_dir

_LOOP_JOIN_S = 0.03  # crossfade at a loop's wrap point when the audio past the bar is known
_LIMITER_WINDOW_S = 0.05
_MAX_TRACK_GAIN_DB = 24.0


# ----------------------------------------------------------------------------- reading
_QUIET_LOCK = threading.Lock()
_QUIET_STATE = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def quiet_native_stderr(path: str | os.PathLike[str]) -> Iterator[None]:
    """Silence what C code prints on file descriptor 2 while libsndfile opens an MP3: its
    libmpg123 writes "Note: Illegal Audio-MPEG-Header ... Trying to resync" lines for a damaged
    file, which would break the one-line error a user gets. Other formats pass through.
    Re-entrant and thread-safe: the first caller in redirects fd 2, the last one out restores
    it (two threads each saving and restoring would leave stderr silenced for good)."""
    if Path(path).suffix.lower() not in (".mp3", ".mp2", ".mpga"):
        yield
        return
    with _QUIET_LOCK:
        if _QUIET_STATE["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):  # no usable fd 2 (embedded interpreters)
                saved = -1
            if saved >= 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            _QUIET_STATE["saved"] = saved
        _QUIET_STATE["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_STATE["depth"] -= 1
            if _QUIET_STATE["depth"] == 0 and _QUIET_STATE["saved"] >= 0:
                os.dup2(_QUIET_STATE["saved"], 2)
                os.close(_QUIET_STATE["saved"])
                _QUIET_STATE["saved"] = -1


def read_audio(path: str | os.PathLike[str], sr: int) -> np.ndarray:
    """Any audio file as float32 [n, 2] at `sr` (soundfile, else ffmpeg). Raises InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file not found: {p}")
    try:
        import soundfile as sf

        with quiet_native_stderr(p):
            y, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - libsndfile cannot read it: let ffmpeg try
        y = _ffmpeg_decode(p, sr)
        if y is None:
            raise InputError(f"cannot read audio file {p.name}") from None
        return y
    y = _stereo(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0))  # damaged float files
    if file_sr != sr:
        y = _resample(y, file_sr, sr)
    return y


def _stereo(y: np.ndarray) -> np.ndarray:
    """Mono is doubled; more than two channels are folded down (as `ffmpeg -ac 2` would, in
    WAV channel order: L R C LFE then surrounds), not cut to the first two: a 5.1 file keeps
    its centre channel, where the vocals usually are."""
    if y.shape[1] == 1:
        return np.repeat(y, 2, axis=1)
    if y.shape[1] > 2:
        g = np.float32(math.sqrt(0.5))
        left, right = y[:, 0].copy(), y[:, 1].copy()
        if y.shape[1] >= 3:  # centre into both
            left += g * y[:, 2]
            right += g * y[:, 2]
        rest = y[:, 4:] if y.shape[1] >= 5 else y[:, 3:3]  # surrounds (LFE dropped)
        for k in range(rest.shape[1]):
            (left if k % 2 == 0 else right)[:] += g * rest[:, k]
        out = np.stack([left, right], axis=1)
        peak = float(np.max(np.abs(out), initial=0.0))
        src = float(np.max(np.abs(y), initial=0.0))
        if peak > 1.0 and peak > src:  # the fold-down must not clip what did not clip
            out *= np.float32(max(src, 1e-9) / peak)
        return out.astype(np.float32, copy=False)
    return y


def _resample(y: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst or len(y) == 0:
        return y
    try:
        import soxr

        return np.asarray(soxr.resample(y, src, dst, quality="HQ"), dtype=np.float32)
    except ImportError:
        from scipy.signal import resample_poly

        g = math.gcd(src, dst)
        return resample_poly(y, dst // g, src // g, axis=0).astype(np.float32)


def _ffmpeg_decode(
    path: Path, sr: int, *, stream: str = "0:a:0", max_s: float | None = None
) -> np.ndarray | None:
    """Decode with ffmpeg to float32 stereo at `sr`; at most `max_s` seconds when given (the
    V/A estimate reads a minute, not a whole hour-long file into memory)."""
    limit = ["-t", f"{max_s:g}"] if max_s is not None else []
    try:
        proc = subprocess.run(
            # absolute paths: a relative "a: b.mp4" or "-x.mp4" is not a protocol or an option
            ["ffmpeg", "-v", "error", "-nostdin", "-i", os.path.abspath(path), "-map", stream, "-vn",
             *limit, "-ac", "2", "-ar", str(sr), "-f", "f32le", "-"],
            capture_output=True,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError("ffmpeg is not installed (needed to read this audio)") from None
    if proc.returncode != 0 or not proc.stdout:
        return None
    usable = len(proc.stdout) // 8 * 8  # whole stereo float32 frames
    return np.frombuffer(proc.stdout[:usable], dtype=np.float32).reshape(-1, 2).copy()


def has_audio_stream(video_path: str | os.PathLike[str]) -> bool:
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
             "-of", "csv=p=0", os.path.abspath(video_path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ResourceError("ffprobe is not installed") from None
    return out.returncode == 0 and bool(out.stdout.strip())


def video_audio(video_path: str | os.PathLike[str], sr: int, n: int) -> np.ndarray | None:
    """The video's own audio as [n, 2] at `sr` (padded/cut to n), or None if it has none."""
    if not has_audio_stream(video_path):
        return None
    y = _ffmpeg_decode(Path(video_path), sr)
    if y is None:
        return None
    return _fit(y, n)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros((n - len(y), y.shape[1]), dtype=y.dtype)])


# ----------------------------------------------------------------------------- beat grids
@dataclass(frozen=True)
class BeatGrid:
    bar_s: float  # length of one bar
    first_s: float  # first downbeat

    # A time within this of a downbeat is on it. Cue sheets keep in-points to 6 decimals, so a
    # downbeat read back from one can sit up to 5e-7 s late; a tighter tolerance moved such a
    # track a whole bar each time a placed cue was placed again.
    _ON_BEAT_S = 2e-6

    def downbeat_at_or_after(self, t: float) -> float:
        k = math.ceil((t - self.first_s - self._ON_BEAT_S) / self.bar_s)
        return self.first_s + max(0, k) * self.bar_s

    def downbeat_at_or_before(self, t: float) -> float:
        k = math.floor((t - self.first_s + self._ON_BEAT_S) / self.bar_s)
        return self.first_s + max(0, k) * self.bar_s


_BAR_RANGE_S = (0.25, 30.0)  # a bar of 4 beats at 960..8 BPM: anything else is not a grid


def _sidecar_grid(d: Any) -> BeatGrid | None:
    """A `.beats.json` sidecar's grid ({"bar_s"} or {"tempo_bpm", "beats_per_bar"}, plus
    "first_beat_s"), or None when it does not describe a usable one: zero/negative/absurd
    tempos or bars, non-finite numbers, booleans and non-objects are ignored (they crashed
    placement or put a track's start at 1e9 s). The first downbeat is taken within one bar."""

    def num(x: Any) -> float | None:
        if isinstance(x, bool) or not isinstance(x, int | float | str):
            return None
        try:
            v = float(x)
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    if not isinstance(d, dict):
        return None
    bar = num(d.get("bar_s"))
    if bar is None or bar <= 0:
        tempo, beats = num(d.get("tempo_bpm")), num(d.get("beats_per_bar", 4))
        if tempo is None or beats is None or tempo <= 0 or beats < 1 or beats != int(beats):
            return None
        bar = 60.0 / tempo * beats
    if not _BAR_RANGE_S[0] <= bar <= _BAR_RANGE_S[1]:
        return None
    first = num(d.get("first_beat_s", 0.0))
    return BeatGrid(bar_s=bar, first_s=(first or 0.0) % bar)


def beat_grid(path: str, y: np.ndarray, sr: int, *, detect: bool) -> BeatGrid | None:
    """A track's bar grid: from its `.beats.json` sidecar, else librosa when `detect`."""
    side = Path(f"{path}.beats.json")
    if side.is_file():
        try:
            grid = _sidecar_grid(json.loads(side.read_text(encoding="utf-8")))
            if grid is not None:
                return grid
        except (OSError, ValueError, RecursionError):
            pass  # unreadable sidecar: as if there were none
    if not detect or len(y) < sr * 4:
        return None
    import librosa

    mono = (
        librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=22050)
        if sr != 22050
        else y.mean(axis=1)
    )
    tempo, beats = librosa.beat.beat_track(y=mono, sr=22050, units="time")
    tempo = float(np.atleast_1d(tempo)[0])
    if not np.isfinite(tempo) or tempo < 40 or len(beats) < 8:
        return None
    beat_s = 60.0 / tempo
    # Downbeat phase: the beat (of four) with the strongest onsets starts the bar.
    env = librosa.onset.onset_strength(y=mono, sr=22050)
    frames = librosa.time_to_frames(beats, sr=22050)
    frames = frames[frames < len(env)]
    strength = [float(env[frames[p::4]].mean()) if len(frames[p::4]) else 0.0 for p in range(4)]
    phase = int(np.argmax(strength))
    first = float(beats[phase]) if phase < len(beats) else float(beats[0])
    first = first % (4 * beat_s)
    return BeatGrid(bar_s=4 * beat_s, first_s=first)


# ----------------------------------------------------------------------------- placement
def _loop_len(y: np.ndarray, sr: int, grid: BeatGrid | None) -> int:
    """The loop body: whole bars from the grid's first downbeat, else the whole track."""
    if grid is None:
        return len(y)
    bars = math.floor((len(y) / sr - grid.first_s) / grid.bar_s + 1e-6)
    if bars < 1:
        return len(y)
    return int(round((grid.first_s + bars * grid.bar_s) * sr))


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


def _start_s(in_s: float, grid: BeatGrid | None, lead_s: float, loop_s: float) -> float:
    """Track position placed at a segment's start: `in_s`, moved to the next downbeat (so the
    incoming downbeat lands on the boundary) and past the crossfade's first half."""
    p0_s = max(0.0, float(in_s))
    if grid is not None:
        p0_s = grid.downbeat_at_or_after(max(p0_s, lead_s))
        if p0_s >= loop_s - 1e-9:
            # Past the loop's end: its first downbeat after the fade-in's lead, as a start
            # within the loop would get (so placing the result again changes nothing).
            p0_s = grid.downbeat_at_or_after(lead_s)
            if p0_s >= loop_s - 1e-9:
                p0_s = grid.first_s
        return p0_s
    if loop_s > 0 and p0_s >= loop_s:
        p0_s %= loop_s  # an in-point past the end of the track: where the loop has it
    if p0_s < lead_s < loop_s:
        # No grid (not loop-shaped): the fade-in starts at the track's beginning rather than
        # borrowing a pre-roll from its ending.
        p0_s = lead_s
    return p0_s


def _halves(cue: CueSheet, cfg: MixConfig) -> tuple[list[int], list[int]]:
    sr = int(cfg.sample_rate)
    n = int(round(cue.video.duration_s * sr))
    bounds = [int(round(s.start_s * sr)) for s in cue.segments] + [n]
    halves = [0] * (len(cue.segments) + 1)
    for i in range(1, len(cue.segments)):
        left = bounds[i] - bounds[i - 1]
        right = bounds[i + 1] - bounds[i]
        halves[i] = int(max(0, min(cfg.crossfade_s * sr / 2, left / 2, right / 2)))
    return bounds, halves


def _grid_and_loop_s(path: str, sr: int, *, detect: bool) -> tuple[BeatGrid | None, float]:
    """A track's bar grid and loop length. With a `.beats.json` sidecar only the file's header
    is read (placement runs for every cue sheet, so it must not decode whole tracks)."""
    no_audio = np.zeros((0, 2), dtype=np.float32)
    grid = beat_grid(path, no_audio, sr, detect=False)
    if grid is not None:
        try:
            import soundfile as sf

            with quiet_native_stderr(path):
                frames = int(round(sf.info(path).duration * sr))
            return grid, _loop_len(np.empty((frames, 0)), sr, grid) / sr
        except (RuntimeError, OSError, ValueError):
            pass  # not a soundfile format (MP3 on old libsndfile...): decode below
    y = read_audio(path, sr)
    grid = beat_grid(path, y, sr, detect=detect)
    return grid, _loop_len(y, sr, grid) / sr


def place_tracks(cue: CueSheet, cfg: MixConfig | None = None) -> CueSheet:
    """The cue with each track's `in_s` set to where the mixdown really starts it.

    Timeline front ends (OTIO, Blender) that place strips from the cue then agree with the
    mixdown; calling the mixers on the result changes nothing (the positions are fixed points).
    """
    import dataclasses

    cfg = cfg or MixConfig()
    sr = int(cfg.sample_rate)
    _, halves = _halves(cue, cfg)
    grids: dict[str, tuple[BeatGrid | None, float]] = {}
    segs = []
    for i, seg in enumerate(cue.segments):
        tr = seg.track
        if tr is None or not tr.path:
            segs.append(seg)
            continue
        if tr.path not in grids:
            grids[tr.path] = _grid_and_loop_s(tr.path, sr, detect=cfg.beat_align)
        grid, loop_s = grids[tr.path]
        start = round(_start_s(tr.in_s, grid, halves[i] / sr, loop_s), 6)
        segs.append(dataclasses.replace(seg, track=dataclasses.replace(tr, in_s=start)))
    return cue.with_segments(segs)


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
            cache[tr.path] = (y, grid, _track_gain(y, sr, cfg.target_lufs))
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


# ----------------------------------------------------------------------------- loudness
def _meter(sr: int) -> Any:
    import pyloudnorm

    return pyloudnorm.Meter(sr)


def integrated_lufs(y: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated), as pyloudnorm measures it.

    pyloudnorm's own loop copies the whole signal to float64 and filters it at once (about
    0.7 GB for a 10-minute stereo mix); this streams the same K-weighting filters (taken from
    pyloudnorm's meter) over 10 s chunks and keeps only 100 ms sums of squares.
    """
    from scipy.signal import lfilter, lfilter_zi

    if len(y) < max(1, int(0.4 * sr)):
        return -math.inf
    y = np.asarray(y).reshape(len(y), -1)
    n, channels = y.shape
    meter = _meter(sr)
    stages = getattr(meter, "_filters", None)
    if not isinstance(stages, dict) or channels > 3:
        return float(meter.integrated_loudness(np.asarray(y, dtype=np.float64)))
    coeffs = [
        (np.asarray(f.b, dtype=np.float64), np.asarray(f.a, dtype=np.float64))
        for f in stages.values()
    ]
    hop = int(round(0.1 * sr))  # 400 ms blocks with 75 % overlap = four 100 ms hops
    n_hops = n // hop
    if n_hops < 4:
        return float(meter.integrated_loudness(np.asarray(y, dtype=np.float64)))
    sums = np.zeros((n_hops, channels))
    chunk = hop * 100
    for c in range(channels):
        state = [lfilter_zi(b, a) * 0.0 for b, a in coeffs]
        for s in range(0, n_hops * hop, chunk):
            e = min(s + chunk, n_hops * hop)
            x = y[s:e, c].astype(np.float64)
            for j, (b, a) in enumerate(coeffs):
                x, state[j] = lfilter(b, a, x, zi=state[j])
            sums[s // hop : e // hop, c] = np.square(x).reshape(-1, hop).sum(axis=1)
    blocks = (sums[:-3] + sums[1:-2] + sums[2:-1] + sums[3:]).sum(axis=1) / (4 * hop)
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(blocks)
    gated = blocks[loud >= -70.0]
    if len(gated) == 0:
        return -math.inf
    relative = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    final = blocks[(loud >= -70.0) & (loud >= relative)]
    if len(final) == 0:
        return -math.inf
    return float(-0.691 + 10 * np.log10(final.mean()))


def _track_gain(y: np.ndarray, sr: int, target: float) -> float:
    lufs = integrated_lufs(y, sr)
    if not math.isfinite(lufs):
        return 1.0
    # A near-silent file is not pushed up into its noise floor.
    return float(10 ** (min(_MAX_TRACK_GAIN_DB, target - lufs) / 20))


def true_peak(y: np.ndarray, oversample: int = 4) -> np.ndarray:
    """Per-sample true-peak estimate (max over channels and the oversampled points), [n]."""
    from scipy.signal import resample_poly

    if len(y) == 0:
        return np.zeros(0, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
    n = len(y)
    out = np.empty(n, dtype=np.float32)
    block, pad = 10 * 48000, 64  # blocks keep a long mix's 4x copy small; pad covers the filter
    for s in range(0, n, block):
        e = min(n, s + block)
        a, b = max(0, s - pad), min(n, e + pad)
        up = np.abs(resample_poly(y[a:b], oversample, 1, axis=0))
        up = up[(s - a) * oversample : (e - a) * oversample]
        out[s:e] = up.reshape(e - s, oversample, -1).max(axis=(1, 2))
    return out


def limit(y: np.ndarray, sr: int, ceiling_db: float) -> np.ndarray:
    """Look-ahead true-peak limiter: a smooth gain that never lets a peak exceed the ceiling."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    out = np.asarray(y, dtype=np.float32)
    for _ in range(4):
        peaks = true_peak(out)
        if peaks.max(initial=0.0) <= ceiling:
            break
        need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12)).astype(np.float32)
        half = max(1, int(_LIMITER_WINDOW_S * sr))
        # min over +-half, then a box of half+1: every averaged value is a minimum over a
        # window containing the sample, so the smooth gain stays at or below what is needed.
        g = uniform_filter1d(
            minimum_filter1d(need, 2 * half + 1, mode="nearest"), half + 1, mode="nearest"
        )
        out = out * (np.minimum(g, need) * 0.999)[:, None]
    return out


def normalize(y: np.ndarray, sr: int, target_lufs: float, ceiling_db: float) -> np.ndarray:
    """Gain to the integrated target, limit true peaks, and re-gain (the limiter costs loudness)."""
    out = np.asarray(y, dtype=np.float32)
    for _ in range(5):
        lufs = integrated_lufs(out, sr)
        if not math.isfinite(lufs):
            return out
        if abs(lufs - target_lufs) < 0.1 and true_peak(out).max(initial=0) <= 10 ** (
            ceiling_db / 20
        ):
            break
        out = limit(out * np.float32(10 ** ((target_lufs - lufs) / 20)), sr, ceiling_db)
    return out


# ----------------------------------------------------------------------------- ducking
def speech_regions(audio: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Speech (start_s, end_s) in the audio, found by silero-vad (its model ships in the package).

    `audio` is [n] or [n, channels]. Channels that carry the same signal are listened to as
    one (their mean); channels that differ (a phase-inverted pair that cancels in a mono sum,
    two speakers on two lavaliers) are listened to one by one and their speech joined.
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if len(y) < sr // 4:
        return []
    if y.shape[1] == 1 or _channels_agree(y):
        return _vad(y.mean(axis=1), sr)
    found: list[tuple[float, float]] = []
    for channel in range(y.shape[1]):
        if np.abs(y[:, channel]).max(initial=0) > 1e-4:
            found.extend(_vad(y[:, channel], sr))
    return _union(found)


def _channels_agree(y: np.ndarray) -> bool:
    """Whether every channel carries the same signal (mono speech in a stereo file): their
    mean keeps nearly all of the loudest channel's energy."""
    energy = np.mean(np.square(y, dtype=np.float64), axis=0)
    mean_energy = float(np.mean(np.square(y.mean(axis=1), dtype=np.float64)))
    return mean_energy >= 0.8 * float(energy.max(initial=0.0))


def _union(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _vad(mono: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """silero-vad over one channel [n] at `sr`."""
    try:
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError:
        raise ResourceError(
            "silero-vad is not installed (pip install silero-vad) for ducking"
        ) from None
    mono16 = _resample(np.asarray(mono, dtype=np.float32)[:, None], sr, 16000)[:, 0]
    import warnings

    with warnings.catch_warnings():
        # silero-vad's loader trips deprecation notices in importlib/torch.jit; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model = load_silero_vad()
    with torch.no_grad():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(mono16)), model, sampling_rate=16000
        )
    return [(s["start"] / 16000.0, s["end"] / 16000.0) for s in stamps]


def duck_envelope(
    n: int, sr: int, regions: list[tuple[float, float]], cfg: MixConfig
) -> np.ndarray:
    """Linear gain [n]: duck_db under speech, ramping down over attack_s before each region
    (the audio is known in advance) and back up over release_s after it."""
    depth = -abs(cfg.duck_db)
    db = np.zeros(n, dtype=np.float64)
    att, rel = max(1, int(cfg.duck_attack_s * sr)), max(1, int(cfg.duck_release_s * sr))
    # Merge regions whose ramps would touch, so the music does not pump between words.
    merged: list[list[float]] = []
    for s, e in sorted(regions):
        if merged and s - merged[-1][1] < cfg.duck_attack_s + cfg.duck_release_s:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for s, e in merged:
        a, b = int(round(s * sr)), int(round(e * sr))
        shape = np.zeros(n)
        lo, hi = max(0, a - att), min(n, b + rel)
        idx = np.arange(lo, hi)
        shape_part = np.ones(len(idx))
        ramp_in = idx < a
        shape_part[ramp_in] = (idx[ramp_in] - (a - att)) / att
        ramp_out = idx >= b
        shape_part[ramp_out] = 1 - (idx[ramp_out] - b) / rel
        shape[lo:hi] = np.clip(shape_part, 0, 1)
        db = np.minimum(db, depth * shape)
    return (10 ** (db / 20)).astype(np.float32)


# ----------------------------------------------------------------------------- outputs
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _peak_db(y: np.ndarray) -> float:
    tp = float(true_peak(y).max(initial=0.0)) if len(y) else 0.0
    return 20 * math.log10(tp) if tp > 0 else -math.inf


def _encode_under_ceiling(
    y: np.ndarray,
    sr: int,
    ceiling_db: float,
    encode: Any,
    decode: Any,
    *,
    tries: int = 3,
) -> None:
    """Encode (lossy) so the DECODED audio's true peak stays at or below `ceiling_db`.

    MP3/AAC coding noise rides on the peaks: a mix limited to -1 dBTP came back from an MP3
    at +0.2 dBTP and from AAC at +0.4. Each try limits the source lower by the overshoot, at
    the source's own loudness (limiting alone cost dense material most of a dB); the encoder's
    overshoot is not monotonic in the ceiling, so if that does not settle it, plain gain on
    the best try does (a codec is close to linear in gain)."""
    encode(None)  # the source as it is
    if not math.isfinite(ceiling_db):
        return
    lufs = integrated_lufs(y, sr)
    target = ceiling_db
    best: tuple[float, np.ndarray] | None = None
    source = y
    for step in range(tries + 3):
        decoded = decode()
        if decoded is None or len(decoded) == 0:
            return
        over = _peak_db(decoded) - ceiling_db
        if over <= 0:
            return
        if best is None or over < best[0]:
            best = (over, source)
        if step < tries:
            target -= over + 0.1
            source = normalize(y, sr, lufs, target) if math.isfinite(lufs) else limit(y, sr, target)
        else:
            source = best[1] * np.float32(10 ** (-(best[0] + 0.05) / 20))
            best = None
        encode(source)


def write_audio(
    path: str | os.PathLike[str], y: np.ndarray, sr: int, *, ceiling_db: float | None = None
) -> Path:
    """WAV/FLAC (24-bit) or MP3 by extension, written atomically.

    MP3: at a rate MP3 has (above 48 kHz: 48 kHz), and re-encoded until the decoded true peak
    is no higher than `ceiling_db` (default: the input's own true peak), so the encoder's
    overshoot does not undo the limiter."""
    import soundfile as sf

    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".wav", ".flac", ".mp3"):
        raise InputError(f"cannot write audio as {ext or 'no extension'}: use .wav, .flac or .mp3")
    y = np.clip(np.asarray(y, dtype=np.float32).reshape(len(y), -1), -1.0, 1.0)
    with atomic_path(p) as tmp:
        try:
            if ext == ".mp3":
                rate = sr if sr in _MP3_RATES else min((r for r in _MP3_RATES if r >= sr),
                                                       default=48000)  # fmt: skip
                src = _resample(y, sr, rate) if rate != sr else y
                ceiling = _peak_db(src) if ceiling_db is None else float(ceiling_db)

                def encode(alt: np.ndarray | None) -> None:
                    out = np.clip(src if alt is None else alt, -1.0, 1.0)
                    sf.write(str(tmp), out, rate, format="MP3", subtype="MPEG_LAYER_III")

                def decode() -> np.ndarray | None:
                    try:
                        return sf.read(str(tmp), dtype="float32", always_2d=True)[0]
                    except Exception:  # noqa: BLE001 - cannot check: keep what was written
                        return None

                _encode_under_ceiling(src, rate, ceiling, encode, decode)
            else:
                sf.write(str(tmp), y, sr, subtype="PCM_24")
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise InputError(f"cannot write {p}: {first}") from None
    return p


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


def mux(
    video_path: str | os.PathLike[str],
    audio_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    ceiling_db: float | None = None,
) -> Path:
    """The video with `audio_path` as its only audio; the video stream is copied, not re-encoded.

    Only when the output container cannot hold the video's codec as it is (ProRes, FFV1, raw
    or GIF video in an .mp4; H.264 in a .webm) is the picture encoded once, visually lossless
    (H.264 CRF 18; VP9 for .webm), with a warning that names a container that would keep it.

    A lossy audio codec (AAC, Opus) is checked like an MP3 output: when its decoded true peak
    lands above `ceiling_db` (default: the audio file's own true peak), the audio is limited by
    the overshoot and encoded again."""
    import warnings

    video, audio, out = Path(video_path), Path(audio_path), Path(out_path)
    for p in (video, audio):
        if not p.is_file():
            raise InputError(f"file not found: {p}")
    suffix = out.suffix.lower()
    codec = {
        ".mkv": ["-c:a", "flac"],
        ".webm": ["-c:a", "libopus", "-b:a", "160k"],
    }.get(suffix, ["-c:a", "aac", "-b:a", "192k"])
    picture = video  # the file whose video stream is copied

    def ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["ffmpeg", "-v", "error", "-nostdin", "-y", *args],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
        except FileNotFoundError:
            raise ResourceError("ffmpeg is not installed (needed to write the video)") from None

    def run(tmp: Path, source: Path) -> None:
        nonlocal picture

        def copy() -> subprocess.CompletedProcess[str]:
            return ffmpeg("-i", os.path.abspath(picture), "-i", os.path.abspath(source),
                          "-map", "0:V:0", "-map", "1:a:0", "-c:v", "copy", *codec,
                          "-map_metadata", "0", os.path.abspath(tmp))  # fmt: skip

        proc = copy()
        if proc.returncode != 0 and picture == video and _container_refuses(proc.stderr):
            # Encoded once into the work folder; every audio re-encode then copies it.
            encoding = _REENCODE.get(suffix, _REENCODE[".mp4"])
            encoded = Path(work) / f"picture{suffix}"
            proc = ffmpeg("-i", os.path.abspath(video), "-map", "0:V:0", *encoding,
                          "-map_metadata", "0", os.path.abspath(encoded))  # fmt: skip
            if proc.returncode == 0:
                picture = encoded
                warnings.warn(
                    f"{video.name}: its video codec cannot go into {suffix or 'this file'} as "
                    f"it is, so the picture was encoded again ({encoding[1]}); use --mux "
                    "NAME.mkv (or .mov) to keep it untouched",
                    stacklevel=4,
                )
                proc = copy()
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["ffmpeg failed"]
            why = next((ln for ln in lines if _container_refuses(ln)), lines[-1])
            raise InputError(f"cannot mux {video.name}: {why.strip()[:200]}")

    # work_dir names the folder after this process, so a parent can remove it if we are killed.
    with atomic_path(out) as tmp, work_dir("mux") as work:
        if codec[1] == "flac":
            run(tmp, audio)
        else:
            sr = _file_rate(audio)
            y = read_audio(audio, sr)
            ceiling = _peak_db(y) if ceiling_db is None else float(ceiling_db)
            limited = Path(work) / "limited.wav"

            def encode(alt: np.ndarray | None) -> None:
                if alt is None:
                    run(tmp, audio)
                    return
                import soundfile as sf

                sf.write(str(limited), np.clip(alt, -1.0, 1.0), sr, subtype="FLOAT")
                run(tmp, limited)

            _encode_under_ceiling(y, sr, ceiling, encode, lambda: _ffmpeg_decode(tmp, sr))
    return out


# Picture encodings for a container that cannot carry the source's video codec.
_REENCODE = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
             "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"],
    ".webm": ["-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-deadline", "realtime",
              "-cpu-used", "8", "-row-mt", "1"],
}  # fmt: skip


def _container_refuses(stderr: str) -> bool:
    """FFmpeg's words for 'this container cannot hold that codec' (mp4 and webm muxers)."""
    return any(
        phrase in stderr
        for phrase in ("not currently supported in container", "Only VP8 or VP9 or AV1 video")
    )


def _file_rate(path: Path) -> int:
    """An audio file's sample rate (48 kHz when neither soundfile nor ffprobe can tell)."""
    try:
        import soundfile as sf

        with quiet_native_stderr(path):
            return int(sf.info(str(path)).samplerate)
    except Exception:  # noqa: BLE001 - not a soundfile format
        pass
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=sample_rate", "-of", "csv=p=0", os.path.abspath(path)],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        return int(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 48000
