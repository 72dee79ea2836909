"""Levels: how loud the music sits against the video's own sound, and the finished mix.

The video's own sound (dialogue, room tone, wind) is never amplified: its gain is 0 dB, and
it is lowered only where the finished mix would otherwise pass the true-peak ceiling even with
the music out of the way (the original alone is too hot there). Everything else moves the
music:

- under speech, the music sits `MixConfig.music_under_dialogue_lu` LU under the dialogue's
  loudness (measured over the speech regions only, a dialogue-gated measure as Dolby's Dialogue
  Intelligence and Netflix's spec use), and at least `duck_db` under its own level elsewhere;
- where there is no speech, the music alone is at the loudness target, moved (down where the
  video's own sound already adds loudness, up by at most `_MUSIC_HEADROOM_DB` where quieter
  dialogue holds the mix back) so the finished mix meets the target;
- where the sum would pass the ceiling, the music is pulled down around those peaks first.

The default offset, 12 LU: Torcoli et al., "Preferred Levels for Background Ducking to Produce
Esthetically Pleasing Audio for TV with Clear Speech", JAES 67(12), 2019, recommend at least
10 LU between commentary and music underneath it, and found non-expert listeners preferred
about 4 LU more difference than experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import MixConfig
from .ducking import merged_regions, speech_shape
from .loudness import (
    integrated_lufs,
    limit_gain,
    loudness_range,
    lufs_over,
    smooth_gain,
    true_peak,
)

_MIN_SPEECH_S = 0.4  # less speech than one loudness block is no dialogue to measure
_MUSIC_FLOOR_DB = -60.0  # the most the music is lowered against the target
# The most the music alone goes over the target where nobody speaks, to bring a mix whose
# dialogue is quieter than the target up to it: a little, so the music does not jump up
# between quiet lines; past that the mix stays under the target and the summary says why.
_MUSIC_HEADROOM_DB = 3.0
_TOLERANCE_LU = 0.1


@dataclass(frozen=True)
class Levels:
    """What the mixer measured and set (dB, LUFS, LU; None where it does not apply).

    `music_gain_db` is the music's gain where nobody speaks, relative to the music on its own
    at the target; `music_under_dialogue_db` the same under speech. `original_cut_db` (<= 0)
    is the most the video's own sound was lowered anywhere (only to keep the ceiling).
    """

    target_lufs: float
    ceiling_dbtp: float
    original_lufs: float | None
    dialogue_lufs: float | None
    speech_s: float
    music_gain_db: float | None
    music_under_dialogue_db: float | None
    dialogue_to_music_lu: float | None
    original_cut_db: float
    mix_lufs: float | None
    mix_true_peak_dbtp: float | None
    mix_lra_lu: float | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (numbers rounded to 0.01; non-finite numbers as None)."""

        def r(x: Any) -> Any:
            if isinstance(x, float):
                return round(x, 2) if math.isfinite(x) else None
            return x

        return {
            "target_lufs": r(self.target_lufs),
            "ceiling_dbtp": r(self.ceiling_dbtp),
            "original_lufs": r(self.original_lufs),
            "dialogue_lufs": r(self.dialogue_lufs),
            "speech_s": r(self.speech_s),
            "music_gain_db": r(self.music_gain_db),
            "music_under_dialogue_db": r(self.music_under_dialogue_db),
            "dialogue_to_music_lu": r(self.dialogue_to_music_lu),
            "original_cut_db": r(self.original_cut_db),
            "mix_lufs": r(self.mix_lufs),
            "mix_true_peak_dbtp": r(self.mix_true_peak_dbtp),
            "mix_lra_lu": r(self.mix_lra_lu),
            "warnings": list(self.warnings),
        }


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else -math.inf


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def level_mix(
    music: np.ndarray,
    original: np.ndarray | None,
    sr: int,
    cfg: MixConfig,
    regions: list[tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, Levels]:
    """Set the music against the video's own sound and sum them.

    Parameters
    ----------
    music : [n, 2] the rendered music (any level).
    original : [n, 2] the video's own sound, or None when it has none.
    sr : sample rate of both.
    cfg : target, ceiling, offset under dialogue, ducking ramps and depth.
    regions : speech (start_s, end_s) found in `original`; None or [] when there is none.

    Returns
    -------
    (mix [n, 2], bed [n, 2], levels): the bed is the music exactly as it sits in the mix.
    """
    target, ceiling_db = float(cfg.target_lufs), float(cfg.true_peak_db)
    n = len(music)
    music = np.asarray(music, dtype=np.float32)
    orig = None if original is None else np.asarray(original, dtype=np.float32)[:n]
    orig_lufs = integrated_lufs(orig, sr) if orig is not None else -math.inf
    speech = merged_regions([(a, b) for a, b in (regions or []) if b > a], cfg)
    speech = [(max(0.0, a), min(n / sr, b)) for a, b in speech if a < n / sr]
    speech_s = float(sum(b - a for a, b in speech))
    dlg_lufs = (
        lufs_over(orig, sr, speech) if orig is not None and speech_s >= _MIN_SPEECH_S else -math.inf
    )
    has_dialogue = math.isfinite(dlg_lufs)
    warnings: list[str] = []
    if math.isfinite(orig_lufs) and orig_lufs > target + _TOLERANCE_LU:
        warnings.append(
            f"the video's own sound alone is {orig_lufs:.1f} LUFS, louder than the target "
            f"{target:.1f} LUFS: it is not turned down (only its peaks over the ceiling are), "
            "so the music sits under it"
        )

    music_lufs = integrated_lufs(music, sr)
    base = np.zeros_like(music) if not math.isfinite(music_lufs) else music
    to_target = 10 ** ((target - music_lufs) / 20) if math.isfinite(music_lufs) else 0.0
    m0 = (base * np.float32(to_target)).astype(np.float32)  # the music alone at the target
    shape = (
        speech_shape(n, sr, speech, cfg)
        if has_dialogue and cfg.duck
        else np.full(n, 1.0 if has_dialogue else 0.0)
    )
    under_db = -math.inf
    if has_dialogue and math.isfinite(music_lufs):
        m0_speech = lufs_over(m0, sr, speech)
        if math.isfinite(m0_speech):
            under_db = (dlg_lufs - cfg.music_under_dialogue_lu) - m0_speech

    def render(gain_db: float) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(mix, bed, under-speech gain dB, original cut dB) for music gain `gain_db` (without
        ducking, under dialogue the one gain is the under-speech gain)."""
        d = under_db
        if has_dialogue and cfg.duck:
            d = min(under_db, gain_db - abs(cfg.duck_db))  # ducked at least duck_db
        env_db = gain_db + (max(d, _MUSIC_FLOOR_DB - 40) - gain_db) * shape
        bed = m0 * (10 ** (env_db / 20)).astype(np.float32)[:, None]
        bed, mix, cut = _fit_ceiling(orig, bed, sr, ceiling_db)
        return mix, bed, d, cut

    # No speech and an original at or over the target: the music sits under it as it would
    # under dialogue (the target is out of reach without lowering the original).
    if not has_dialogue and math.isfinite(orig_lufs) and orig_lufs >= target - _TOLERANCE_LU:
        gain = max(_MUSIC_FLOOR_DB, orig_lufs - cfg.music_under_dialogue_lu - target)
        fixed = True
    else:
        gain, fixed = 0.0, (has_dialogue and not cfg.duck)
    if has_dialogue and not cfg.duck:
        gain = (
            under_db if math.isfinite(under_db) else _MUSIC_FLOOR_DB
        )  # one gain, set by the dialogue
    mix, bed, d, cut = render(gain)
    mix_lufs = integrated_lufs(mix, sr)
    if not fixed and math.isfinite(mix_lufs):
        # Mix loudness rises monotonically with the music's gain: secant steps, bracketed
        # between the floor and the headroom over the target.
        lo, hi = (_MUSIC_FLOOR_DB, -math.inf), (_MUSIC_HEADROOM_DB, math.inf)
        prev = None
        for _ in range(8):
            if abs(mix_lufs - target) < _TOLERANCE_LU or (
                gain >= _MUSIC_HEADROOM_DB - 1e-9 and mix_lufs < target
            ):
                break
            if mix_lufs > target:
                hi = (gain, mix_lufs)
            else:
                lo = (gain, mix_lufs)
            step = target - mix_lufs
            if prev is not None and prev[0] != gain and prev[1] != mix_lufs:
                step *= (gain - prev[0]) / (mix_lufs - prev[1])
            prev = (gain, mix_lufs)
            new = gain + step
            if new >= _MUSIC_HEADROOM_DB and hi[1] == math.inf:
                new = _MUSIC_HEADROOM_DB  # as loud as the music may go: try it once
            elif not lo[0] < new < hi[0]:
                new = 0.5 * (lo[0] + hi[0])
            gain = float(new)
            mix, bed, d, cut = render(gain)
            mix_lufs = integrated_lufs(mix, sr)
        if mix_lufs < target - 0.5 and has_dialogue:
            warnings.append(
                f"the mix is {mix_lufs:.1f} LUFS, under the target {target:.1f} LUFS: the "
                f"dialogue is {dlg_lufs:.1f} LUFS and the music stays "
                f"{cfg.music_under_dialogue_lu:g} LU under it; raise the video's own sound "
                "in an editor for a louder mix"
            )
    elif has_dialogue and math.isfinite(mix_lufs) and abs(mix_lufs - target) > 1.0:
        warnings.append(
            f"the mix is {mix_lufs:.1f} LUFS against the target {target:.1f} LUFS: without "
            "ducking the music follows the dialogue, not the target"
        )
    tp = float(true_peak(mix).max(initial=0.0)) if len(mix) else 0.0
    music_speech = lufs_over(bed, sr, speech) if has_dialogue else -math.inf
    levels = Levels(
        target_lufs=target,
        ceiling_dbtp=ceiling_db,
        original_lufs=_finite(orig_lufs),
        dialogue_lufs=_finite(dlg_lufs),
        speech_s=round(speech_s, 3),
        music_gain_db=_finite(gain) if math.isfinite(music_lufs) else None,
        music_under_dialogue_db=_finite(d) if has_dialogue else None,
        dialogue_to_music_lu=_finite(dlg_lufs - music_speech) if has_dialogue else None,
        original_cut_db=cut,
        mix_lufs=_finite(mix_lufs),
        mix_true_peak_dbtp=_finite(_db(tp)),
        mix_lra_lu=_finite(loudness_range(mix, sr)),
        warnings=tuple(warnings),
    )
    return mix, bed, levels


def _fit_ceiling(
    orig: np.ndarray | None, bed: np.ndarray, sr: int, ceiling_db: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(bed, mix, original cut dB): the music pulled down around peaks of the sum over the
    ceiling; where the original alone passes it, the whole sum is limited there (the only
    place the original is ever lowered)."""
    ceiling = 10 ** (ceiling_db / 20)
    if orig is None:
        gain = limit_gain(bed, sr, ceiling_db)
        bed = bed * gain[:, None]
        return bed, bed, 0.0
    tp_orig = true_peak(orig)
    for _ in range(4):
        peaks = true_peak(orig + bed)
        if peaks.max(initial=0.0) <= ceiling:
            break
        # |orig + g*bed| <= |orig| + g*|bed| at every oversampled point: this g keeps the sum
        # at the ceiling wherever the original alone leaves room for any music at all.
        room = (ceiling - tp_orig) / np.maximum(true_peak(bed), 1e-12)
        need = np.where(peaks > ceiling, np.clip(room, 0.0, 1.0), 1.0)
        bed = bed * smooth_gain(need, sr)[:, None]
    mix = orig + bed
    gain = limit_gain(mix, sr, ceiling_db)
    cut = _db(float(gain.min(initial=1.0))) if len(gain) else 0.0
    if cut < 0:
        mix, bed = mix * gain[:, None], bed * gain[:, None]
    return bed, mix, min(0.0, cut)
