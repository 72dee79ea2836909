"""The built-in library: short pieces synthesised by numpy code, each tagged with V/A.

The pieces differ in the musical cues that carry mood: mode (major/minor/modal), tempo,
register, brightness (harmonic roll-off), density (notes per beat) and percussion. Their V/A
tags follow those cues the way listeners rate them (major, fast, bright, dense -> positive and
aroused; minor, slow, low, dark, sparse -> negative and calm).

Files are generated deterministically into a cache folder on first use (written to a temp
folder and renamed, so a half-written library is never visible). Each piece is a whole number
of bars, and notes ringing past the end wrap to the start, so every piece loops seamlessly on
its bar grid; the grid is written beside each file as `<name>.beats.json` for the mixer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUILTIN_VERSION = 3
BUILTIN_CLUSTERS = 6  # the pieces are designed as six mood groups
SAMPLE_RATE = 44100

_MODES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "lydian": [0, 2, 4, 6, 7, 9, 11],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "phrygian": [0, 1, 3, 5, 7, 8, 10],
    "harmonic": [0, 2, 3, 5, 7, 8, 11],
}


@dataclass(frozen=True)
class PieceSpec:
    slug: str
    title: str
    valence: float
    arousal: float
    mode: str
    root: int  # MIDI note of the tonic (sets register)
    bpm: float
    brightness: float  # 0 dark .. 1 bright (harmonic roll-off)
    density: int  # melody notes per beat (0 = none)
    drums: int  # 0 none, 1 soft pulse, 2 full kit
    progression: tuple[int, ...]  # scale degree (0-based) of each bar's chord
    seconds: float = 24.0


PIECES: tuple[PieceSpec, ...] = (
    # bright & engaging: major/lydian, fast, high, bright, dense, full kit
    PieceSpec(
        "sunlit-parade", "Sunlit Parade", 0.68, 0.62, "major", 64, 132, 0.95, 4, 2, (0, 4, 5, 3)
    ),
    PieceSpec(
        "festival-lights",
        "Festival Lights",
        0.58,
        0.60,
        "lydian",
        62,
        124,
        0.85,
        2,
        2,
        (0, 1, 4, 0),
    ),
    PieceSpec(
        "morning-walk", "Morning Walk", 0.60, 0.50, "major", 60, 112, 0.75, 2, 2, (0, 3, 4, 0)
    ),
    # serene & tender: major, slow, soft, sparse
    PieceSpec("warm-hearth", "Warm Hearth", 0.50, -0.42, "major", 55, 76, 0.45, 1, 0, (0, 5, 3, 4)),
    PieceSpec(
        "lullaby-glow", "Lullaby Glow", 0.42, -0.52, "major", 72, 62, 0.35, 1, 0, (0, 3, 0, 4)
    ),
    PieceSpec(
        "open-field", "Open Field", 0.45, -0.38, "mixolydian", 57, 84, 0.55, 1, 1, (0, 6, 3, 0)
    ),
    # calm & neutral: modal, slow, pads, little melody
    PieceSpec(
        "still-water", "Still Water", 0.00, -0.55, "dorian", 57, 66, 0.30, 0, 0, (0, 3, 0, 3)
    ),
    PieceSpec(
        "quiet-resolve", "Quiet Resolve", 0.06, -0.45, "dorian", 50, 80, 0.40, 1, 0, (0, 3, 4, 3)
    ),
    PieceSpec(
        "slow-tide", "Slow Tide", 0.00, -0.50, "mixolydian", 53, 70, 0.35, 0, 1, (0, 6, 0, 6)
    ),
    # downcast & low-energy: minor, very slow, low, dark
    PieceSpec(
        "grey-afternoon", "Grey Afternoon", -0.48, -0.45, "minor", 55, 72, 0.35, 1, 0, (0, 5, 3, 4)
    ),
    PieceSpec(
        "long-goodbye", "Long Goodbye", -0.62, -0.55, "minor", 45, 56, 0.15, 0, 0, (0, 5, 0, 4)
    ),
    # tense & intense: harmonic minor/phrygian, fast, low, driving percussion
    PieceSpec(
        "night-pursuit", "Night Pursuit", -0.60, 0.68, "harmonic", 40, 144, 0.80, 4, 2, (0, 0, 5, 4)
    ),
    PieceSpec(
        "rising-threat", "Rising Threat", -0.50, 0.52, "phrygian", 43, 112, 0.65, 2, 2, (0, 1, 0, 1)
    ),
    PieceSpec(
        "machine-pulse", "Machine Pulse", -0.52, 0.60, "phrygian", 47, 120, 0.75, 4, 2, (0, 0, 6, 6)
    ),
    # driving & energetic: modal, fast, busy, neither happy nor dark
    PieceSpec(
        "restless-city",
        "Restless City",
        0.05,
        0.68,
        "mixolydian",
        52,
        138,
        0.90,
        4,
        2,
        (0, 6, 3, 4),
    ),
    PieceSpec(
        "steady-climb", "Steady Climb", 0.08, 0.56, "dorian", 50, 128, 0.80, 2, 2, (0, 3, 6, 4)
    ),
)


def builtin_dir(cache_dir: Path | None = None) -> Path:
    from ..weights import default_cache_dir

    base = cache_dir if cache_dir is not None else default_cache_dir()
    return Path(base) / "library" / f"builtin-{BUILTIN_VERSION}"


def _private_temp_base() -> Path:
    """A per-user folder in the system temp dir (mode 0700, owned by us, not a link), for the
    built-in audio when the user cache cannot be written (read-only home, CI sandboxes)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = Path(tempfile.gettempdir()) / f"moodsic-{uid}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o700)
    st = os.lstat(base)
    import stat as stat_mod

    if (
        not stat_mod.S_ISDIR(st.st_mode)
        or (hasattr(os, "getuid") and st.st_uid != uid)
        or (st.st_mode & 0o077)
    ):
        raise OSError(f"{base} is not a private folder of this user")
    return base


def ensure_builtin(cache_dir: Path | None = None) -> Path:
    """Generate the built-in pieces once (atomically); return the folder holding them.

    When the cache folder cannot be created or written, a private per-user temp folder is
    used instead; when neither works, a one-line ResourceError says so."""
    target = builtin_dir(cache_dir)
    if (target / "catalogue.json").is_file():
        return target
    try:
        return _render_builtin(target)
    except OSError as first:
        try:
            fallback = builtin_dir(_private_temp_base())
            if (fallback / "catalogue.json").is_file():
                return fallback
            return _render_builtin(fallback)
        except OSError:
            from ..errors import ResourceError

            raise ResourceError(
                f"cannot write the built-in library's audio under {target.parent}:"
                f" {first.strerror or first} (set XDG_CACHE_HOME to a writable folder)"
            ) from None


def _render_builtin(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        import soundfile as sf

        rows = []
        for i, spec in enumerate(PIECES):
            audio, bar_s = render_piece(spec, seed=i)
            name = f"{i + 1:02d}-{spec.slug}.flac"
            sf.write(str(tmp / name), audio, SAMPLE_RATE, subtype="PCM_16")
            grid = {"tempo_bpm": spec.bpm, "first_beat_s": 0.0, "beats_per_bar": 4, "bar_s": bar_s}
            (tmp / f"{name}.beats.json").write_text(json.dumps(grid), encoding="utf-8")
            rows.append(
                {
                    "id": f"builtin-{spec.slug}",
                    "title": spec.title,
                    "artist": "Moodsic built-in",
                    "path": name,
                    "duration_s": len(audio) / SAMPLE_RATE,
                    "valence": spec.valence,
                    "arousal": spec.arousal,
                    "genre": f"synth/{spec.mode}",
                    "tempo_bpm": spec.bpm,
                }
            )
        (tmp / "catalogue.json").write_text(
            json.dumps({"version": BUILTIN_VERSION, "tracks": rows}, indent=1)
        )
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first (target exists and is not empty): use theirs.
            if not (target / "catalogue.json").is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return target


# ----------------------------------------------------------------------------- synthesis
def _midi_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _tone(
    freq: float, dur: float, sr: int, brightness: float, attack: float, release: float
) -> np.ndarray:
    """Additive tone; brightness sets how slowly the harmonics fall off.

    The harmonic sum is computed once per cycle into a small table and read back by phase,
    which is about ten times cheaper than summing sines over every sample.
    """
    n = max(1, int(dur * sr))
    t = np.arange(n) / sr
    rolloff = 3.0 - 2.2 * brightness  # harmonic k has amplitude k**-rolloff
    max_h = max(1, int(min(10, (sr / 2 - 200) // max(freq, 1.0))))
    out = _wavetable(max_h, round(rolloff, 3))[(np.mod(freq * t, 1.0) * _TABLE).astype(np.int64)]
    env = np.ones(n)
    a = max(1, int(attack * sr))
    r = max(1, int(release * sr))
    env[:a] = np.linspace(0, 1, a)
    env[-r:] *= np.linspace(1, 0, r)
    # Plucked/decaying character for short notes, sustained for long ones.
    env *= np.exp(-t * (1.5 / max(dur, 0.1)))
    return out * env


_TABLE = 4096


@functools.lru_cache(maxsize=256)
def _wavetable(harmonics: int, rolloff: float) -> np.ndarray:
    phase = np.arange(_TABLE) / _TABLE
    table = np.zeros(_TABLE)
    for k in range(1, harmonics + 1):
        table += np.sin(2 * np.pi * k * phase + 0.3 * k) * k**-rolloff
    return table


def _add_wrapped(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add sig at start; whatever rings past the end wraps to the start (seamless loop)."""
    n = len(buf)
    pos = start % n
    while len(sig):
        take = min(len(sig), n - pos)
        buf[pos : pos + take] += sig[:take]
        sig = sig[take:]
        pos = 0


def render_piece(spec: PieceSpec, *, seed: int, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Render one piece as stereo float32 [n, 2] in [-1, 1]; returns (audio, bar length in s)."""
    rng = np.random.default_rng(1000 + seed)
    beat = 60.0 / spec.bpm
    bar = 4 * beat
    bars = max(4, int(round(spec.seconds / bar / 2)) * 2)
    total = int(round(bars * bar * sr))
    scale = _MODES[spec.mode]
    buf_pad = np.zeros(total)
    buf_bass = np.zeros(total)
    buf_mel = np.zeros(total)
    buf_drum = np.zeros(total)

    def degree(d: int, octave: int = 0) -> int:
        return spec.root + scale[d % 7] + 12 * (d // 7 + octave)

    for b in range(bars):
        chord_deg = spec.progression[b % len(spec.progression)]
        chord = [degree(chord_deg + i) for i in (0, 2, 4)]
        start = int(round(b * bar * sr))
        # Pad: the chord held over the bar, soft attack.
        for m in chord:
            _add_wrapped(
                buf_pad,
                start,
                _tone(
                    float(_midi_hz(m)), bar * 1.05, sr, spec.brightness * 0.6, 0.25 * bar, 0.3 * bar
                ),
            )
        # Bass: chord root an octave or two down, on beats 1 and 3 (every beat when driving).
        step = 1 if spec.drums == 2 else 2
        for k in range(0, 4, step):
            m = degree(chord_deg, -1 if spec.root < 50 else -2)
            _add_wrapped(
                buf_bass,
                start + int(round(k * beat * sr)),
                _tone(float(_midi_hz(m)), beat * step * 0.95, sr, 0.3, 0.01, 0.05),
            )
        # Melody: chord tones and passing notes, `density` per beat, an octave above.
        if spec.density:
            dur = beat / spec.density
            for j in range(4 * spec.density):
                if rng.random() < 0.15:
                    continue  # rests keep it from sounding mechanical
                d = chord_deg + int(
                    rng.choice([0, 2, 4, 7, 1, 5], p=[0.25, 0.2, 0.2, 0.15, 0.1, 0.1])
                )
                m = degree(d, 1)
                _add_wrapped(
                    buf_mel,
                    start + int(round(j * dur * sr)),
                    _tone(float(_midi_hz(m)), dur * 1.6, sr, spec.brightness, 0.005, 0.3 * dur),
                )
        if spec.drums:
            for k in range(4):
                t0 = start + int(round(k * beat * sr))
                if k in (0, 2) or spec.drums == 2:
                    _add_wrapped(buf_drum, t0, _kick(sr))
                if spec.drums == 2 and k in (1, 3):
                    _add_wrapped(buf_drum, t0, _snare(sr, rng))
                hats = 2 if spec.drums == 2 else 1
                for h in range(hats):
                    _add_wrapped(
                        buf_drum,
                        t0 + int(round(h * beat / hats * sr)),
                        _hat(sr, rng, spec.brightness),
                    )

    pad, bass, mel, drum = _norm(buf_pad), _norm(buf_bass), _norm(buf_mel), _norm(buf_drum)
    # A little stereo: melody a touch left, percussion a touch right, and a decorrelated
    # room (more of it for the sparse, calm pieces) on the pad and melody.
    send = 0.30 * pad + 0.35 * mel
    wet = 0.30 if spec.drums == 0 else 0.16
    left = 0.30 * pad + 0.30 * bass + 0.40 * mel + 0.31 * drum + wet * _room(send, sr, rng)
    right = 0.30 * pad + 0.30 * bass + 0.30 * mel + 0.39 * drum + wet * _room(send, sr, rng)
    mix = np.stack([left, right], axis=1)
    mix = mix / max(1e-9, np.max(np.abs(mix))) * 0.7  # -3 dBFS peak; the mixer sets loudness
    return mix.astype(np.float32), bar


def _room(x: np.ndarray, sr: int, rng: np.random.Generator, decay_s: float = 0.22) -> np.ndarray:
    """Reverb by circular convolution with decaying noise: the tail wraps around like the notes
    do, so the piece still loops seamlessly."""
    n_ir = min(len(x), int(1.2 * sr))
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-t / decay_s)
    ir[: int(0.012 * sr)] = 0.0  # pre-delay keeps the attack dry
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    from scipy.signal import oaconvolve

    full = oaconvolve(x, ir)
    out = full[: len(x)].copy()
    out[: len(full) - len(x)] += full[len(x) :]  # circular: the tail wraps to the start
    return out


def _norm(x: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(x))
    return x / peak if peak > 0 else x


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    f = 45 + 90 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 14)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.18 * sr)) / sr
    noise = rng.standard_normal(len(t))
    return (0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 22)


def _hat(sr: int, rng: np.random.Generator, brightness: float) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = rng.standard_normal(len(t))
    noise = np.diff(noise, prepend=0.0)  # crude high-pass
    return 0.25 * (0.4 + brightness) * noise * np.exp(-t * 80)
