"""Audio I/O for the mixer: read any audio file as float32 stereo at the mix rate, the video's
own audio, and write WAV/FLAC/MP3 whose decoded true peak stays under a ceiling.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..ffmpeg import decode_audio, has_audio_stream, quiet_native_stderr
from ..fileio import atomic_path
from .loudness import integrated_lufs, limit, normalize, true_peak

__all__ = [
    "encode_under_ceiling",
    "has_audio_stream",
    "peak_db",
    "read_audio",
    "resample",
    "stereo",
    "video_audio",
    "write_audio",
]

_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


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
        y = decode_audio(p, sr)
        if y is None:
            raise InputError(f"cannot read audio file {p.name}") from None
        return y
    y = stereo(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0))  # damaged float files
    if file_sr != sr:
        y = resample(y, file_sr, sr)
    return y


def stereo(y: np.ndarray) -> np.ndarray:
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


def resample(y: np.ndarray, src: int, dst: int) -> np.ndarray:
    """[n, channels] float32 from rate `src` to `dst` (soxr HQ, else scipy's polyphase)."""
    if src == dst or len(y) == 0:
        return y
    try:
        import soxr

        return np.asarray(soxr.resample(y, src, dst, quality="HQ"), dtype=np.float32)
    except ImportError:
        from scipy.signal import resample_poly

        g = math.gcd(src, dst)
        return resample_poly(y, dst // g, src // g, axis=0).astype(np.float32)


def video_audio(video_path: str | os.PathLike[str], sr: int, n: int) -> np.ndarray | None:
    """The video's own audio as [n, 2] at `sr` (padded/cut to n), or None if it has none."""
    if not has_audio_stream(video_path):
        return None
    y = decode_audio(Path(video_path), sr)
    if y is None:
        return None
    return _fit(y, n)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros((n - len(y), y.shape[1]), dtype=y.dtype)])


def peak_db(y: np.ndarray) -> float:
    """True peak of [n, channels] in dBTP (-inf for silence or no samples)."""
    tp = float(true_peak(y).max(initial=0.0)) if len(y) else 0.0
    return 20 * math.log10(tp) if tp > 0 else -math.inf


def encode_under_ceiling(
    y: np.ndarray,
    sr: int,
    ceiling_db: float,
    encode: Callable[[np.ndarray | None], None],
    decode: Callable[[], np.ndarray | None],
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
        over = peak_db(decoded) - ceiling_db
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
                src = resample(y, sr, rate) if rate != sr else y
                ceiling = peak_db(src) if ceiling_db is None else float(ceiling_db)

                def encode(alt: np.ndarray | None) -> None:
                    out = np.clip(src if alt is None else alt, -1.0, 1.0)
                    sf.write(str(tmp), out, rate, format="MP3", subtype="MPEG_LAYER_III")

                def decode() -> np.ndarray | None:
                    try:
                        return sf.read(str(tmp), dtype="float32", always_2d=True)[0]
                    except Exception:  # noqa: BLE001 - cannot check: keep what was written
                        return None

                encode_under_ceiling(src, rate, ceiling, encode, decode)
            else:
                sf.write(str(tmp), y, sr, subtype="PCM_24")
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise InputError(f"cannot write {p}: {first}") from None
    return p
