"""V/A estimated from audio for unlabelled music (tempo, mode, loudness, brightness, onsets).

A transparent rule of thumb, not a trained model: arousal rises with tempo, onset density,
spectral brightness and loudness; valence rises with major mode (key-profile correlation,
Krumhansl-Kessler), and a little with tempo and brightness. Results are marked "estimated" in
the catalogue so a user knows to check them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LibraryError

_SR = 22050
_MAX_S = 60.0
# Krumhansl-Kessler key profiles.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Estimate:
    valence: float
    arousal: float
    duration_s: float
    tempo_bpm: float | None
    features: dict[str, float]


def _load(path: Path) -> tuple[np.ndarray, float]:
    import soundfile as sf

    from .. import ffmpeg

    try:
        with ffmpeg.quiet_native_stderr(path):
            info = sf.info(str(path))
            frames = int(min(info.frames, _MAX_S * info.samplerate))
            y, sr = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
        duration = float(info.duration)
        if len(y) == 0:
            raise ValueError("no samples")
    except Exception:  # noqa: BLE001 - not readable by libsndfile: ask ffmpeg
        y2 = ffmpeg.decode_audio(path, _SR, max_s=_MAX_S)
        if y2 is None or len(y2) == 0:
            raise LibraryError(f"cannot read audio file {path.name}") from None
        y, sr = y2[: int(_MAX_S * _SR)], _SR
        duration = ffmpeg.audio_duration(path) or len(y2) / _SR
    # a damaged float file can hold NaN/inf samples: silence them rather than fail later
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    mono = y.mean(axis=1)
    if y.shape[1] > 1:
        # Channels in opposite phase cancel in the average (a "silent" downmix of loud
        # music): then the loudest channel stands for the track.
        ch_rms = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=0))
        if np.sqrt(np.mean(np.square(mono, dtype=np.float64))) < 0.25 * float(ch_rms.max()):
            mono = y[:, int(np.argmax(ch_rms))]
    if sr != _SR:
        import soxr

        mono = soxr.resample(mono, sr, _SR)
    if len(mono) < _SR:
        raise LibraryError(f"audio file {path.name} is shorter than one second")
    return np.asarray(mono, dtype=np.float32), duration


def key_mode_score(chroma_mean: np.ndarray) -> float:
    """Best major-key correlation minus best minor-key correlation, in about [-1, 1]."""
    c = np.asarray(chroma_mean, dtype=np.float64)
    if c.std() < 1e-9:
        return 0.0
    maj = max(np.corrcoef(c, np.roll(_MAJOR, k))[0, 1] for k in range(12))
    mnr = max(np.corrcoef(c, np.roll(_MINOR, k))[0, 1] for k in range(12))
    return float(maj - mnr)


def features(y: np.ndarray, sr: int = _SR) -> dict[str, float]:
    import warnings

    import librosa

    with warnings.catch_warnings():
        # librosa's notes on a short clip (n_fft larger than the signal...) are not the user's
        warnings.simplefilter("ignore", UserWarning)
        tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
        tempo = float(np.atleast_1d(tempo)[0])
        onsets = librosa.onset.onset_detect(y=y, sr=sr, units="time")
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr)  # steadier key estimates than STFT
        centroid = float(np.mean(librosa.feature.spectral_centroid(y=y, sr=sr)))
        rms = librosa.feature.rms(y=y)[0]
    rms_db = float(20 * np.log10(np.mean(rms) + 1e-9))
    return {
        "tempo_bpm": tempo if math.isfinite(tempo) else 0.0,
        "onset_rate": len(onsets) / (len(y) / sr),
        "mode": key_mode_score(chroma.mean(axis=1)),
        "centroid_hz": centroid,
        "rms_db": rms_db,
    }


def _fold_tempo(bpm: float) -> float:
    """Beat trackers halve or double tempos; fold into the range listeners tap in."""
    if not bpm or not math.isfinite(bpm):
        return 100.0
    while bpm < 60:
        bpm *= 2
    while bpm > 180:
        bpm /= 2
    return bpm


def va_from_features(f: dict[str, float]) -> tuple[float, float]:
    tempo = _fold_tempo(f["tempo_bpm"])
    arousal = math.tanh(
        0.8 * (tempo - 105) / 35
        + 0.6 * (f["onset_rate"] - 2.5) / 2.0
        + 0.5 * (f["centroid_hz"] - 1800) / 1200
        + 0.3 * (f["rms_db"] + 22) / 8
    )
    # Modal music leans slightly "major" in key-profile correlation, hence the small offset.
    valence = math.tanh(
        3.5 * (f["mode"] - 0.03)
        + 0.15 * (tempo - 100) / 40
        + 0.2 * (f["centroid_hz"] - 1500) / 1500
    )
    return 0.9 * valence, 0.9 * arousal


def estimate_va(path: str | Path) -> Estimate:
    p = Path(path)
    y, duration = _load(p)
    if float(np.max(np.abs(y))) < 1e-5:
        raise LibraryError(f"audio file {p.name} is silent")
    f = features(y)
    v, a = va_from_features(f)
    return Estimate(
        valence=v, arousal=a, duration_s=duration, tempo_bpm=f["tempo_bpm"] or None, features=f
    )
