"""Mix levels (issue 16, point 1): the video's own sound is never raised, the music sits the
configured LU under the dialogue, the mix meets the target and ceiling by moving the music, and
the levels (with LRA per EBU Tech 3342) reach the summary and the cue sheet."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from media import FFMPEG, run

from moodsic_engine import mix
from moodsic_engine.api import ScoreResult
from moodsic_engine.config import MixConfig
from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef

SR = 48000


def _rms_db(y: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-30))


def _tp_db(y: np.ndarray) -> float:
    return float(20 * np.log10(mix.true_peak(y).max()))


def _music(path: Path, seconds: float) -> Path:
    """A steady two-tone bed with a little noise (no beat grid: beat_align is off)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 330 * t)
    y = y + 0.02 * rng.normal(size=len(t))
    sf.write(str(path), np.stack([y, y], axis=1).astype(np.float32), SR)
    return path


def _cue(duration: float, parts: list[tuple[float, float, str | None]], video: str) -> CueSheet:
    segs = []
    for start, end, path in parts:
        track = (
            TrackChoice(id="m", title="t", artist="", path=path, valence=0.0, arousal=0.0)
            if path
            else None
        )
        segs.append(
            Segment(start, end, round(start * 25), round(end * 25), "m", "M", 0.0, 0.0, 1.0, track)
        )
    return CueSheet(
        video=VideoRef(video, duration, Fraction(25), round(duration * 25), True),
        engine={"version": "test", "experts": [], "config": {}},
        samples=(),
        cuts=(),
        segments=tuple(segs),
    )


def _speech(seconds: float, at: float, lufs: float) -> np.ndarray:
    """espeak-ng speech at `at` s in silence, [n, 2], scaled to `lufs` over the speech."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    proc = subprocess.run(
        ["espeak-ng", "-s", "160", "--stdout", "The storm has passed. The harbour lights are on."],
        check=True,
        capture_output=True,
    )
    import io

    voice, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    voice = mix.resample(voice[:, None], rate, SR)[:, 0]
    voice *= np.float32(10 ** ((lufs - mix.integrated_lufs(np.stack([voice, voice], 1), SR)) / 20))
    out = np.zeros(int(seconds * SR), dtype=np.float32)
    s = int(at * SR)
    out[s : s + len(voice)] = voice[: len(out) - s]
    return np.stack([out, out], axis=1)


def _assert_only_cut_at_the_ceiling(
    original: np.ndarray, in_mix: np.ndarray, cut_db: float, cfg: MixConfig
) -> None:
    """The original's part of the mix is the original times a gain <= 1 that is below 1 only
    where the original alone passes the ceiling, and by about what that needs."""
    over_db = _tp_db(original) - cfg.true_peak_db
    loud = np.abs(original[:, 0]) > 1e-3
    gain = in_mix[loud, 0] / original[loud, 0]
    assert gain.max() <= 1.0 + 1e-5  # never amplified
    if over_db <= 0:
        assert cut_db == 0.0
        np.testing.assert_allclose(in_mix, original, atol=1e-6)
    else:
        assert -over_db - 0.3 <= cut_db <= -over_db + 0.05
        assert np.mean(gain < 0.999) < 0.25  # only around the peaks, not the whole take


def test_room_tone_stays_at_its_own_level(tmp_path: Path) -> None:
    """A video whose own sound is a quiet room tone (-64 dBFS, no speech): the tone is in the
    mix at the level it has in the video (it was raised ~49 dB before), the music alone
    brings the mix to the target, and the true peak stays under the ceiling."""
    rng = np.random.default_rng(7)
    seconds = 6.0
    tone = rng.normal(size=(int(seconds * SR), 2)) * 10 ** (-64 / 20)
    tone_wav = tmp_path / "tone.wav"
    sf.write(str(tone_wav), tone.astype(np.float32), SR, subtype="FLOAT")
    video = tmp_path / "room.mkv"  # PCM audio: the tone reaches the mixer bit for bit
    run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=s=96x64:r=25:d={seconds}", "-i", str(tone_wav), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_f32le", "-shortest",
         str(video)])  # fmt: skip
    track = _music(tmp_path / "music.wav", 8.0)
    # music in the first half only: the second half of the mix is the room tone alone
    cue = _cue(seconds, [(0.0, 3.0, str(track)), (3.0, seconds, None)], str(video))
    cfg = MixConfig(beat_align=False)
    out = mix.write_mix(cue, tmp_path / "mix.wav", cfg, video_path=video)
    y, sr = sf.read(str(out), dtype="float64", always_2d=True)
    quiet = slice(int(4.5 * SR), int(6.0 * SR))  # past the music's fade
    level_video, level_mix = _rms_db(tone[quiet]), _rms_db(y[quiet])
    assert level_video == pytest.approx(-64.0, abs=0.3)
    assert abs(level_mix - level_video) < 0.5, (level_mix, level_video)
    assert mix.integrated_lufs(y, sr) == pytest.approx(cfg.target_lufs, abs=0.5)
    assert _tp_db(y) <= cfg.true_peak_db + 0.1
    # in memory: the original is added at 0 dB, sample for sample
    dialogue = mix.dialogue_for(cue, cfg, video)
    mixed, bed, levels = mix.mix_arrays(cue, cfg, dialogue)
    np.testing.assert_allclose(mixed - bed, dialogue, atol=1e-6)
    assert levels.original_cut_db == 0.0 and levels.dialogue_lufs is None
    assert levels.mix_lufs == pytest.approx(cfg.target_lufs, abs=0.2)
    assert levels.warnings == ()


@pytest.mark.parametrize(
    ("offset", "dialogue_lufs", "seconds"),
    [(12.0, -14.0, 9.0), (18.0, -26.0, 9.0), (12.0, -22.0, 4.5)],
)
def test_music_sits_the_configured_lu_under_the_dialogue(
    tmp_path: Path, offset: float, dialogue_lufs: float, seconds: float
) -> None:
    """espeak-ng speech: measured over the speech, the dialogue is `music_under_dialogue_lu`
    louder than the music (within 1 LU); where nobody speaks the music alone is at (up to 3 dB
    over) the target, so the mix meets the target and the ceiling; the dialogue is in the mix
    as it is (never amplified). Quiet dialogue filling the clip: the target is out of reach
    without raising it, so the mix stays under it and the summary says why."""
    dialogue = _speech(seconds, at=1.0, lufs=dialogue_lufs)
    track = _music(tmp_path / "music.wav", 10.0)
    cue = _cue(seconds, [(0.0, seconds, str(track))], "none.mp4")
    cfg = MixConfig(beat_align=False, music_under_dialogue_lu=offset)
    mixed, bed, levels = mix.mix_arrays(cue, cfg, dialogue)
    regions = mix.speech_regions(dialogue, SR)
    assert regions and regions[0][0] == pytest.approx(1.0, abs=0.3)
    measured = mix.lufs_over(dialogue, SR, regions) - mix.lufs_over(bed, SR, regions)
    assert measured == pytest.approx(offset, abs=1.0), measured
    assert levels.dialogue_to_music_lu == pytest.approx(offset, abs=1.0)
    assert levels.dialogue_lufs == pytest.approx(dialogue_lufs, abs=1.0)
    assert _tp_db(mixed) <= cfg.true_peak_db + 0.1
    _assert_only_cut_at_the_ceiling(dialogue, mixed - bed, levels.original_cut_db, cfg)
    lufs = mix.integrated_lufs(mixed, SR)
    assert levels.mix_lufs == pytest.approx(lufs, abs=0.01)
    end = regions[-1][1] + cfg.duck_release_s + 0.2
    if end < seconds - 1.5:  # speech-free music after the speech
        after = mix.integrated_lufs(bed[int(end * SR) : int((seconds - 0.5) * SR)], SR)
        assert cfg.target_lufs - 1.0 <= after <= cfg.target_lufs + 3.5  # the music alone
        assert lufs == pytest.approx(cfg.target_lufs, abs=0.5)
        assert levels.warnings == ()
    else:
        assert lufs < cfg.target_lufs - 1.0
        assert levels.music_gain_db == pytest.approx(3.0, abs=0.01)  # as loud as it may go
        assert any("under the target" in w for w in levels.warnings), levels.warnings


def test_loud_original_is_reported_and_only_cut_at_the_ceiling(tmp_path: Path) -> None:
    """An original louder than the target is left as it is and the summary says so; one that
    passes the ceiling on its own is lowered only by what the ceiling needs."""
    seconds = 5.0
    t = np.arange(int(seconds * SR)) / SR
    track = _music(tmp_path / "music.wav", 6.0)
    cue = _cue(seconds, [(0.0, seconds, str(track))], "none.mp4")
    cfg = MixConfig(beat_align=False)
    hum = 0.4 * np.sin(2 * np.pi * 1000 * t)  # about -8 LUFS, peaks at -8 dBFS
    loud = np.stack([hum, hum], axis=1).astype(np.float32)
    mixed, bed, levels = mix.mix_arrays(cue, cfg, loud)
    assert levels.original_lufs is not None and levels.original_lufs > cfg.target_lufs + 3
    assert any("louder than the target" in w for w in levels.warnings)
    assert levels.dialogue_to_music_lu is None  # a hum, not speech
    np.testing.assert_allclose(mixed - bed, loud, atol=1e-6)
    assert _tp_db(mixed) <= cfg.true_peak_db + 0.1
    sheet = CueSheet.from_dict(
        {**cue.to_dict(), "summary": {"levels": levels.to_dict()}}
    )  # the schema takes the levels
    lines = ScoreResult(tmp_path / "c.json", sheet).summary_lines()
    assert any(ln.startswith("levels:") and "mix -" in ln for ln in lines), lines
    assert any("warning:" in ln and "louder than the target" in ln for ln in lines), lines
    # over the ceiling on its own (0 dBFS peaks against -1 dBTP): cut by about 1 dB, no more
    hot = loud / np.float32(0.4)
    mixed, bed, levels = mix.mix_arrays(cue, cfg, hot)
    assert _tp_db(mixed) <= cfg.true_peak_db + 0.1
    assert -2.0 < levels.original_cut_db < -0.9


@pytest.mark.parametrize(
    ("steps_db", "lra"),
    [((-20, -30), 10.0), ((-20, -15), 5.0), ((-50, -35, -20, -35, -50), 15.0)],
)
def test_loudness_range_matches_ebu_tech_3342_cases(steps_db: tuple[int, ...], lra: float) -> None:
    """EBU Tech 3342's test signals: 1 kHz stereo sines, 20 s at each level."""
    t = np.arange(20 * SR) / SR
    sine = np.sin(2 * np.pi * 1000 * t)
    y = np.concatenate([np.stack([sine, sine], 1) * 10 ** (d / 20) for d in steps_db])
    assert mix.loudness_range(y.astype(np.float32), SR) == pytest.approx(lra, abs=0.1)
    assert np.isnan(mix.loudness_range(y[: 2 * SR], SR))  # under one 3 s window


def test_loudness_and_range_agree_with_ffmpeg_ebur128(tmp_path: Path) -> None:
    """A bed whose level moves (noise in 2 s steps): integrated loudness, LRA and true peak
    as ffmpeg's ebur128 filter measures them (it prints one decimal)."""
    rng = np.random.default_rng(11)
    steps = [-18, -26, -20, -32, -16, -24, -22, -28]
    y = np.concatenate([rng.normal(size=(2 * SR, 2)) * 10 ** (d / 20) for d in steps])
    y = y.astype(np.float32)
    path = tmp_path / "steps.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")
    proc = subprocess.run(
        [FFMPEG, "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128=peak=true",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = proc.stderr[proc.stderr.rindex("Summary:") :].split()
    ffmpeg_i = float(summary[summary.index("I:") + 1])
    ffmpeg_lra = float(summary[summary.index("LRA:") + 1])
    ffmpeg_tp = float(summary[summary.index("Peak:") + 1])
    assert mix.integrated_lufs(y, SR) == pytest.approx(ffmpeg_i, abs=0.15)
    assert mix.loudness_range(y, SR) == pytest.approx(ffmpeg_lra, abs=0.3)
    assert _tp_db(y) == pytest.approx(ffmpeg_tp, abs=0.3)
