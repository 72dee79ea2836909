"""Mixdown: loop exactness, centred and beat-aligned crossfades, loudness, ducking, formats, mux."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from media import FFMPEG, lavfi_video, run, stream_types

from moodsic_engine import ffmpeg, mix
from moodsic_engine.config import MixConfig
from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef
from moodsic_engine.errors import InputError

SR = 48000


def _write(path: Path, y: np.ndarray, sr: int = SR, grid: dict | None = None) -> Path:
    sf.write(str(path), np.asarray(y, dtype=np.float32), sr)
    if grid is not None:
        Path(f"{path}.beats.json").write_text(json.dumps(grid))
    return path


def _sine(freq: float, seconds: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def _cue(
    parts: list[tuple[float, float, str, float]],
    duration: float,
    video: str = "none.mp4",
    has_audio: bool = False,
) -> CueSheet:
    fps = Fraction(25)
    segs = []
    for start, end, path, in_s in parts:
        track = TrackChoice(
            id=Path(path).stem, title="t", artist="", path=path, valence=0, arousal=0, in_s=in_s
        )
        segs.append(
            Segment(
                start,
                end,
                int(round(start * 25)),
                int(round(end * 25)),
                "m",
                "M",
                0.0,
                0.0,
                1.0,
                track,
            )
        )
    return CueSheet(
        video=VideoRef(video, duration, fps, int(round(duration * 25)), has_audio),
        engine={},
        samples=(),
        cuts=(),
        segments=tuple(segs),
    )


def _rms_db(y: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


def test_short_track_loops_to_exact_length(tmp_path: Path) -> None:
    # A 7 s track whose content is not periodic within itself (a rising sweep).
    t = np.arange(7 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * (200 * t + 30 * t**2))
    path = _write(tmp_path / "seven.wav", y)
    cfg = MixConfig(beat_align=False)
    out = mix.render_music(_cue([(0.0, 30.0, str(path), 0.0)], 30.0), cfg)
    assert out.shape == (30 * SR, 2)
    # Loops with a 7 s period (compare a window away from the joins and the end fade).
    a = out[int(8.0 * SR) : int(13.0 * SR), 0]
    b = out[int(15.0 * SR) : int(20.0 * SR), 0]
    np.testing.assert_allclose(a, b, atol=1e-4)
    # Music right up to the end: only the final fade (crossfade_s) brings it down to silence.
    mid = _rms_db(out[int(20 * SR) : int(27 * SR)])
    assert _rms_db(out[int(27.0 * SR) : int(27.9 * SR)]) > mid - 1.0
    assert _rms_db(out[int(29.0 * SR) : int(29.5 * SR)]) > mid - 20.0
    assert np.max(np.abs(out[-10:])) < 1e-3


def test_loop_on_bar_boundaries_with_a_beat_grid(tmp_path: Path) -> None:
    t = np.arange(7 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * (200 * t + 30 * t**2))
    path = _write(
        tmp_path / "bars.wav", y, grid={"tempo_bpm": 120, "first_beat_s": 0.0, "beats_per_bar": 4}
    )
    out = mix.render_music(_cue([(0.0, 20.0, str(path), 0.0)], 20.0), MixConfig())
    assert out.shape == (20 * SR, 2)
    # 2 s bars: the 7 s track loops after 3 whole bars, i.e. every 6 s.
    a = out[int(2.5 * SR) : int(5.5 * SR), 0]
    b = out[int(8.5 * SR) : int(11.5 * SR), 0]
    np.testing.assert_allclose(a, b, atol=1e-4)


def _envelope(y: np.ndarray, freq: float, sr: int, hop: int) -> np.ndarray:
    """Amplitude of one sinusoid over time (quadrature demodulation, 20 ms smoothing)."""
    t = np.arange(len(y)) / sr
    z = y * np.exp(-2j * np.pi * freq * t)
    win = int(0.02 * sr)
    smooth = np.convolve(z, np.ones(win) / win, mode="same")
    return np.abs(smooth)[::hop]


def test_crossfade_is_centred_on_the_boundary(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.wav", _sine(440, 14))
    b = _write(tmp_path / "b.wav", _sine(660, 14))
    cfg = MixConfig(beat_align=False, crossfade_s=2.0)
    boundary = 10.37
    out = mix.render_music(
        _cue([(0.0, boundary, str(a), 0.0), (boundary, 20.0, str(b), 3.0)], 20.0), cfg
    )[:, 0]
    hop = 48  # 1 ms
    ea, eb = _envelope(out, 440, SR, hop), _envelope(out, 660, SR, hop)
    # Normalise each by its steady level so loudness differences do not move the crossing.
    ea /= np.median(ea[int(3 * SR / hop) : int(8 * SR / hop)])
    eb /= np.median(eb[int(13 * SR / hop) : int(18 * SR / hop)])
    lo, hi = int((boundary - 1.5) * SR / hop), int((boundary + 1.5) * SR / hop)
    diff = ea[lo:hi] - eb[lo:hi]
    cross = lo + int(np.flatnonzero(np.diff(np.sign(diff)) != 0)[0])
    assert abs(cross * hop / SR - boundary) < 0.010
    # The fade spans the configured length: nothing of b before it, nothing of a after it.
    assert eb[int((boundary - 1.1) * SR / hop)] < 0.1
    assert ea[int((boundary + 1.1) * SR / hop)] < 0.1


def test_incoming_downbeat_lands_on_the_boundary(tmp_path: Path) -> None:
    a = _write(tmp_path / "low.wav", _sine(100, 14), grid={"tempo_bpm": 100, "first_beat_s": 0.0})
    # Track b: clicks (4 kHz bursts) on each downbeat: 2 s bars starting at 0.5 s.
    y = _sine(150, 14, amp=0.05)
    for k in range(7):
        s = int((0.5 + 2 * k) * SR)
        y[s : s + 240] += 0.6 * np.sin(2 * np.pi * 4000 * np.arange(240) / SR)
    b = _write(
        tmp_path / "clicks.wav", y, grid={"tempo_bpm": 120, "first_beat_s": 0.5, "beats_per_bar": 4}
    )
    boundary = 8.0
    out = mix.render_music(
        _cue([(0.0, boundary, str(a), 0.0), (boundary, 16.0, str(b), 0.0)], 16.0), MixConfig()
    )
    from scipy.signal import butter, sosfilt

    hp = np.abs(sosfilt(butter(4, 2000, "highpass", fs=SR, output="sos"), out[:, 0]))
    near = hp[int((boundary - 0.5) * SR) : int((boundary + 0.5) * SR)]
    onset = int(np.flatnonzero(near > 0.3 * near.max())[0])
    assert abs((boundary - 0.5) + onset / SR - boundary) < 0.002
    # place_tracks writes the real start positions into the cue (a downbeat past the
    # crossfade's first half: 2.5 s), and mixing the placed cue changes nothing.
    cue = _cue([(0.0, boundary, str(a), 0.0), (boundary, 16.0, str(b), 0.0)], 16.0)
    placed = mix.place_tracks(cue, MixConfig())
    assert placed.segments[1].track.in_s == pytest.approx(2.5)
    assert placed.segments[0].track.in_s == pytest.approx(0.0)
    np.testing.assert_array_equal(mix.render_music(placed, MixConfig()), out)


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_mix_loudness_and_true_peak(tmp_path: Path, target: float) -> None:
    rng = np.random.default_rng(0)
    loud = _write(tmp_path / "loud.wav", 0.9 * np.clip(rng.normal(0, 0.5, 12 * SR), -1, 1))
    quiet = _write(tmp_path / "quiet.wav", _sine(330, 12, amp=0.02) + _sine(495, 12, amp=0.02))
    cue = _cue([(0.0, 9.0, str(loud), 0.0), (9.0, 18.0, str(quiet), 0.0)], 18.0)
    cfg = MixConfig(beat_align=False, target_lufs=target)
    out = mix.write_mix(cue, tmp_path / "mix.wav", cfg, video_path=None)
    y, sr = sf.read(str(out))
    assert sr == SR and len(y) == 18 * SR
    assert abs(mix.integrated_lufs(y, sr) - target) < 0.5
    assert 20 * np.log10(mix.true_peak(y).max()) <= cfg.true_peak_db + 0.1
    # Per-track normalisation: both halves end up within a few LU of each other.
    first = mix.integrated_lufs(y[: 8 * SR], sr)
    second = mix.integrated_lufs(y[10 * SR :], sr)
    assert abs(first - second) < 3.0


def _speech_video(tmp_path: Path, seconds: float = 14.0, at: float = 4.0) -> tuple[Path, float]:
    """A clip whose own audio is silence, then espeak-ng speech at `at`, then silence."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    wav = tmp_path / "speech.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-s",
            "150",
            "-w",
            str(wav),
            "Good evening. The storm has passed and the harbour lights are on.",
        ],
        check=True,
        capture_output=True,
    )
    speech, sr = sf.read(str(wav), dtype="float32")
    track = np.zeros(int(seconds * sr), dtype=np.float32)
    s = int(at * sr)
    track[s : s + len(speech)] = speech[: len(track) - s]
    padded = _write(tmp_path / "dialogue.wav", track, sr)
    video = tmp_path / "talk.mp4"
    run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=s=160x90:r=25:d={seconds}",
            "-i", str(padded), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(video),
        ]
    )  # fmt: skip
    return video, len(speech) / sr


@pytest.mark.slow
def test_ducking_under_speech(tmp_path: Path) -> None:
    video, speech_len = _speech_video(tmp_path)
    rng = np.random.default_rng(1)
    music = _sine(220, 16, amp=0.2) + _sine(330, 16, amp=0.15) + 0.02 * rng.normal(size=16 * SR)
    track = _write(tmp_path / "music.wav", music)
    cue = _cue([(0.0, 14.0, str(track), 0.0)], 14.0, video=str(video), has_audio=True)
    cfg = MixConfig(beat_align=False, duck_db=-10.0)
    dialogue = mix.video_audio(video, SR, 14 * SR)
    regions = mix.speech_regions(dialogue, SR)
    assert regions, "silero-vad found no speech"
    start, end = regions[0][0], regions[-1][1]
    assert abs(start - 4.0) < 0.4 and abs(end - (4.0 + speech_len)) < 0.8
    bed_path = mix.write_bed(cue, tmp_path / "bed.wav", cfg, video_path=video)
    bed, _ = sf.read(str(bed_path))
    before = _rms_db(bed[int(1.0 * SR) : int(3.0 * SR)])
    # Inside speech, away from the ramps (and any short pause the VAD splits on).
    inner = [(s + 0.2, e - 0.2) for s, e in regions if e - s > 0.6]
    during = _rms_db(np.concatenate([bed[int(s * SR) : int(e * SR)] for s, e in inner]))
    after_from = end + cfg.duck_release_s + 0.3
    after = _rms_db(bed[int(after_from * SR) : int(min(after_from + 2.0, 11.5) * SR)])
    # ducked at least duck_db; as deep as it takes to sit music_under_dialogue_lu under the speech
    assert during - before <= cfg.duck_db + 1.5, (before, during)
    speech_lu = mix.lufs_over(dialogue, SR, regions) - mix.lufs_over(bed, SR, regions)
    assert abs(speech_lu - cfg.music_under_dialogue_lu) <= 1.0, speech_lu
    assert abs(after - before) < 1.0
    # The finished mix contains the speech: louder than the bed where people talk.
    mixed = mix.write_mix(cue, tmp_path / "mix.flac", cfg, video_path=video)
    y, sr = sf.read(str(mixed))
    assert len(y) == 14 * SR
    # the speech is not raised to the target: the mix lies between the dialogue's loudness
    # and the target (the music alone is at the target where nobody speaks)
    dialogue_lufs = mix.lufs_over(dialogue, SR, regions)
    assert dialogue_lufs - 0.5 <= mix.integrated_lufs(y, sr) <= cfg.target_lufs + 0.5
    assert _rms_db(y[int(inner[0][0] * SR) : int(inner[0][1] * SR)]) > during + 3


def test_duck_envelope_ramps() -> None:
    cfg = MixConfig(duck_db=-12.0, duck_attack_s=0.2, duck_release_s=0.5)
    env = mix.duck_envelope(10 * SR, SR, [(3.0, 5.0)], cfg)
    db = 20 * np.log10(env)
    assert db[int(2.7 * SR)] == pytest.approx(0.0, abs=1e-6)
    assert db[int(2.9 * SR)] == pytest.approx(-6.0, abs=0.1)  # half-way down the attack
    assert db[int(4.0 * SR)] == pytest.approx(-12.0, abs=1e-6)
    assert db[int(5.25 * SR)] == pytest.approx(-6.0, abs=0.1)  # half-way up the release
    assert db[int(5.6 * SR)] == pytest.approx(0.0, abs=1e-6)


def test_video_without_audio_still_mixes_and_muxes_with_identical_video(tmp_path: Path) -> None:
    video = lavfi_video(tmp_path / "silent.mp4", seconds=6.0, size="160x90")
    track = _write(tmp_path / "t.wav", _sine(330, 4))
    cue = _cue([(0.0, 6.0, str(track), 0.0)], 6.0, video=str(video))
    out = mix.write_mix(cue, tmp_path / "mix.wav", MixConfig(beat_align=False), video_path=video)
    y, sr = sf.read(str(out))
    assert len(y) == 6 * SR and np.abs(y).max() > 0.01
    muxed = mix.mux(video, out, tmp_path / "out.mp4")
    assert stream_types(muxed) == ["video", "audio"]

    def packet_hashes(p: Path) -> list[str]:
        res = subprocess.run(
            [
                FFMPEG,
                "-v",
                "error",
                "-i",
                str(p),
                "-map",
                "0:v:0",
                "-c",
                "copy",
                "-f",
                "framemd5",
                "-",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return [
            line.split(",")[-1].strip()
            for line in res.stdout.splitlines()
            if not line.startswith("#")
        ]

    src, dst = packet_hashes(video), packet_hashes(muxed)
    assert len(src) == 150 and src == dst


def test_output_formats_by_extension(tmp_path: Path) -> None:
    y = np.stack([_sine(440, 1.0), _sine(440, 1.0)], axis=1)
    for ext in ("wav", "flac", "mp3"):
        p = mix.write_audio(tmp_path / f"o.{ext}", y, SR)
        info = sf.info(str(p))
        assert info.samplerate == SR and abs(info.duration - 1.0) < 0.1
        back = mix.read_audio(p, 44100)  # read back (MP3 included) and resampled
        assert back.shape[1] == 2 and abs(len(back) / 44100 - 1.0) < 0.1
        assert np.abs(back).max() == pytest.approx(0.3, abs=0.05)
    with pytest.raises(InputError, match="use .wav, .flac or .mp3"):
        mix.write_audio(tmp_path / "o.ogg", y, SR)
    assert not (tmp_path / "o.ogg").exists()


def test_missing_or_unreadable_track_is_one_clear_error(tmp_path: Path) -> None:
    cue = _cue([(0.0, 5.0, str(tmp_path / "gone.wav"), 0.0)], 5.0)
    with pytest.raises(InputError, match="audio file not found"):
        mix.write_bed(cue, tmp_path / "bed.wav", MixConfig())
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    cue = _cue([(0.0, 5.0, str(bad), 0.0)], 5.0)
    with pytest.raises(InputError, match="cannot read audio"):
        mix.write_bed(cue, tmp_path / "bed.wav", MixConfig())
    assert not (tmp_path / "bed.wav").exists()


def test_builtin_tracks_mix_end_to_end(tmp_path: Path) -> None:
    from moodsic_engine.library import load_library

    lib = load_library("builtin")
    a, b = lib.tracks[0], lib.tracks[10]
    cue = _cue([(0.0, 12.0, a.path, 0.0), (12.0, 40.0, b.path, 0.0)], 40.0)
    out = mix.write_bed(cue, tmp_path / "bed.wav", MixConfig())
    y, sr = sf.read(str(out))
    assert len(y) == 40 * SR
    assert abs(mix.integrated_lufs(y, sr) + 14.0) < 0.5
    # No silent stretch anywhere before the final fade (the 25 s piece loops to fill 28 s).
    for s in range(0, 37):
        assert _rms_db(y[s * SR : (s + 1) * SR]) > -45, s


def test_long_track_is_cut_at_a_bar_boundary_with_a_fade(tmp_path: Path) -> None:
    y = _sine(330, 30)
    path = _write(tmp_path / "long.wav", y, grid={"tempo_bpm": 120, "first_beat_s": 0.0})
    out = mix.render_music(_cue([(0.0, 15.3, str(path), 0.0)], 15.3), MixConfig(crossfade_s=2.0))[
        :, 0
    ]
    assert len(out) == int(round(15.3 * SR))
    env = _envelope(out, 330, SR, 48)
    full = env[int(11.0 * SR / 48)]
    # The nominal 2 s fade would start at 13.3 s; it starts at the bar line before it (12 s).
    assert env[int(11.95 * SR / 48)] > 0.995 * full
    assert env[int(12.6 * SR / 48)] < 0.98 * full
    assert env[int(14.0 * SR / 48)] < 0.8 * full
    assert np.max(np.abs(out[-10:])) < 1e-3


def test_annotation_only_tracks_cannot_be_mixed(tmp_path: Path) -> None:
    cue = _cue([(0.0, 5.0, "", 0.0)], 5.0)
    with pytest.raises(InputError, match="nothing to mix"):
        mix.write_bed(cue, tmp_path / "bed.wav", MixConfig())
    assert not (tmp_path / "bed.wav").exists()


@pytest.mark.slow
def test_beat_grid_detected_without_a_sidecar(tmp_path: Path) -> None:
    # 120 BPM clicks, accented on every fourth beat, the first downbeat at 0.25 s.
    sr = 22050
    y = np.zeros(12 * sr, dtype=np.float32)
    burst = np.sin(2 * np.pi * 1500 * np.arange(400) / sr) * np.exp(-np.arange(400) / 80)
    for k in range(23):
        s = int((0.25 + 0.5 * k) * sr)
        y[s : s + 400] += (0.9 if k % 4 == 0 else 0.3) * burst
    path = _write(tmp_path / "clicks.wav", y, sr)
    audio = mix.read_audio(path, SR)
    grid = mix.beat_grid(str(path), audio, SR, detect=True)
    assert grid is not None
    assert grid.bar_s == pytest.approx(2.0, abs=0.05)
    assert abs(grid.first_s - 0.25) < 0.05
    assert mix.beat_grid(str(path), audio, SR, detect=False) is None


@pytest.mark.parametrize("sr", [48000, 44100])
def test_streaming_loudness_matches_pyloudnorm(sr: int) -> None:
    import pyloudnorm

    rng = np.random.default_rng(2)
    y = np.concatenate(
        [
            rng.normal(0, 0.3, (sr * 3, 2)),
            np.zeros((sr * 2, 2)),
            0.01 * rng.normal(0, 1, (sr * 4 + 77, 2)),
        ]
    )
    ref = pyloudnorm.Meter(sr).integrated_loudness(y)
    assert mix.integrated_lufs(y.astype(np.float32), sr) == pytest.approx(ref, abs=0.01)


def _tp_db(y: np.ndarray) -> float:
    return float(20 * np.log10(mix.true_peak(y).max()))


def _dense_master(seconds: float, sr: int) -> np.ndarray:
    """Chords with noise bursts on the beat, mastered to -14 LUFS / -1 dBTP: the kind of
    material whose lossy encodings overshoot the limiter's ceiling."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
    noise = np.random.default_rng(0).standard_normal(len(t))
    noise = np.convolve(noise, np.full(4, 0.5), mode="same")  # below MP3's low-pass
    y = y + (np.mod(t, 0.5) < 0.03) * 0.5 * noise
    return mix.normalize(np.stack([y, y], axis=1).astype(np.float32), sr, -14.0, -1.0)


@pytest.mark.parametrize("sr", [44100, 48000])
def test_lossy_outputs_keep_the_true_peak_ceiling(tmp_path: Path, sr: int) -> None:
    """MP3 and the muxed video's AAC decode to a true peak at or below -1 dBTP (the encoders'
    overshoot came back at about +0.2..+0.6 dBTP), at the same loudness."""
    y = _dense_master(8.0, sr)
    assert _tp_db(y) <= -1.0
    out = mix.write_audio(tmp_path / "m.mp3", y, sr, ceiling_db=-1.0)
    z, zsr = sf.read(str(out), always_2d=True)
    assert zsr == sr
    assert _tp_db(z) <= -1.0
    assert mix.integrated_lufs(z, zsr) == pytest.approx(-14.0, abs=0.4)
    # the default ceiling is the input's own true peak
    z2, _ = sf.read(str(mix.write_audio(tmp_path / "d.mp3", y, sr)), always_2d=True)
    assert _tp_db(z2) <= _tp_db(y) + 1e-6
    video = lavfi_video(tmp_path / "v.mp4", seconds=8.0, size="160x90")
    wav = mix.write_audio(tmp_path / "m.wav", y, sr)
    muxed = mix.mux(video, wav, tmp_path / "out.mp4", ceiling_db=-1.0)
    back = ffmpeg.decode_audio(muxed, sr)
    assert _tp_db(back) <= -1.0
    assert mix.integrated_lufs(back, sr) == pytest.approx(-14.0, abs=0.4)


def test_mp3_at_a_rate_mp3_lacks_and_unwritable_outputs(tmp_path: Path) -> None:
    y = np.stack([_sine(440, 1.0, 96000), _sine(440, 1.0, 96000)], axis=1)
    out = mix.write_audio(tmp_path / "hi.mp3", y, 96000)  # was a LibsndfileError traceback
    info = sf.info(str(out))
    assert info.samplerate == 48000 and abs(info.duration - 1.0) < 0.1
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        mix.write_audio(tmp_path / "file" / "o.wav", y, 96000)


def test_quiet_native_stderr_restores_fd2_across_threads() -> None:
    """fd 2 is silenced while libsndfile opens an MP3; overlapping callers on several threads
    must leave the real stderr in place afterwards."""
    import os
    import threading
    import time

    before = os.fstat(2)

    def work() -> None:
        for _ in range(50):
            with mix.quiet_native_stderr("x.mp3"):
                time.sleep(0.0002)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    with mix.quiet_native_stderr("x.wav"):  # other formats: untouched
        assert os.fstat(2).st_ino == before.st_ino


def test_surround_tracks_fold_down_with_their_centre(tmp_path: Path) -> None:
    """A 5.1 WAV whose music is in the centre channel (vocals usually are) was cut to its
    silent front left/right: the placed track was silence."""
    y = np.zeros((2 * SR, 6), dtype=np.float32)
    y[:, 2] = _sine(440, 2.0)  # centre only
    y[:, 4] = 0.5 * _sine(660, 2.0)  # left surround
    back = mix.read_audio(_write(tmp_path / "c51.wav", y), SR)
    assert back.shape == (2 * SR, 2)
    np.testing.assert_allclose(back[:, 0] - back[:, 1], np.sqrt(0.5) * y[:, 4], atol=1e-4)
    assert _rms_db(back[:, 1]) == pytest.approx(_rms_db(y[:, 2]) - 3.0, abs=0.1)


def test_zero_length_video_is_a_clear_error_and_tiny_ones_mix(tmp_path: Path) -> None:
    track = _write(tmp_path / "t.wav", _sine(440, 3.0))
    with pytest.raises(InputError, match="too short to mix"):  # was a numpy reshape ValueError
        mix.write_mix(_cue([(0.0, 0.0, str(track), 0.0)], 0.0), tmp_path / "m.wav")
    assert not (tmp_path / "m.wav").exists()
    assert mix.integrated_lufs(np.zeros((0, 2)), SR) == -np.inf
    out = mix.write_mix(_cue([(0.0, 0.01, str(track), 0.0)], 0.01), tmp_path / "m.mp3")
    y, sr = sf.read(str(out), always_2d=True)
    assert len(y) == 480 and np.isfinite(y).all()


@pytest.mark.parametrize(
    "sidecar",
    [
        {"tempo_bpm": 0},  # ZeroDivisionError
        {"bar_s": 2, "first_beat_s": "nan"},  # ValueError: NaN to integer
        [1, 2],  # AttributeError: list has no .get
        {"bar_s": 2, "first_beat_s": 1e9},  # the track "started" at 1e9 s
        {"bar_s": 1e-7},
        {"tempo_bpm": 120, "beats_per_bar": 0},
    ],
)
def test_malformed_beat_sidecars_are_ignored(tmp_path: Path, sidecar: object) -> None:
    track = _write(tmp_path / "a.wav", _sine(440, 5.0))
    Path(f"{track}.beats.json").write_text(json.dumps(sidecar))
    cue = _cue([(0.0, 4.0, str(track), 0.5), (4.0, 12.0, str(track), 1.0)], 12.0)
    placed = mix.place_tracks(cue, MixConfig(beat_align=False))
    starts = [s.track.in_s for s in placed.segments]
    assert all(0.0 <= s < 5.0 for s in starts), starts
    y = mix.render_music(placed, MixConfig(beat_align=False))
    assert y.shape == (12 * SR, 2) and np.isfinite(y).all() and np.abs(y).max() > 0.1


def test_beat_sidecar_first_downbeat_is_taken_within_a_bar() -> None:
    grid = mix.plan._sidecar_grid({"bar_s": 2.0, "first_beat_s": 9.5})
    assert grid == mix.BeatGrid(bar_s=2.0, first_s=1.5)
    grid3 = mix.plan._sidecar_grid({"tempo_bpm": "120", "beats_per_bar": 3})
    assert grid3 == mix.BeatGrid(1.5, 0.0)
    assert mix.plan._sidecar_grid({"bar_s": True}) is None


@pytest.mark.parametrize("grid", [{"bar_s": 1.5, "first_beat_s": 0.0}, None])
def test_in_point_past_the_track_end_places_as_a_fixed_point(
    tmp_path: Path, grid: dict | None
) -> None:
    """An in-point beyond the track (a curve offset, an edited cue) wrapped to the grid's first
    downbeat, inside the fade-in's lead, so placing the placed cue again moved it (0.0 then
    1.5); without a grid it stayed past the end of the media in the cue."""
    track = _write(tmp_path / "a.wav", _sine(440, 6.0), grid=grid)
    cue = _cue([(0.0, 4.0, str(track), 1.0), (4.0, 9.0, str(track), 100.0)], 9.0)
    cfg = MixConfig(beat_align=False, crossfade_s=2.0)
    placed = mix.place_tracks(cue, cfg)
    again = mix.place_tracks(placed, cfg)
    starts = [s.track.in_s for s in placed.segments]
    assert starts == [s.track.in_s for s in again.segments]
    assert all(0.0 <= s < 6.0 for s in starts), starts
    assert starts[1] >= 1.0  # past the half crossfade (1 s) that pre-rolls before the boundary
    np.testing.assert_allclose(
        mix.render_music(placed, cfg), mix.render_music(again, cfg), atol=1e-6
    )


def test_placing_a_placed_cue_keeps_downbeats_that_cue_rounding_moved(tmp_path: Path) -> None:
    """At 174 BPM a bar is 1.3793103... s: an in-point rounded to 6 decimals in the cue sat
    a few 1e-7 s after its downbeat, and placing the placed cue again moved the track one
    whole bar later each time."""
    grid = {"tempo_bpm": 174, "first_beat_s": 0.2095662707238568}
    track = _write(tmp_path / "a.wav", _sine(440, 20.0), grid=grid)
    cue = _cue([(0.0, 3.0, str(track), 5.0), (3.0, 8.0, str(track), 0.0)], 8.0)
    cfg = MixConfig(beat_align=False, crossfade_s=2.0)
    placed = mix.place_tracks(cue, cfg)
    for _ in range(3):
        again = mix.place_tracks(placed, cfg)
        assert [s.track.in_s for s in again.segments] == [s.track.in_s for s in placed.segments]
        placed = again


def _video_codec(path: Path) -> str:
    res = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return res.stdout.strip()


def test_mux_encodes_the_picture_only_when_the_container_cannot_hold_it(tmp_path: Path) -> None:
    # FFV1 (as ProRes, raw video, GIF) cannot go into an MP4: the picture is encoded once,
    # with a warning naming a container that keeps it; into .mkv it is copied untouched.
    video = tmp_path / "master.mkv"
    run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=3",
         "-c:v", "ffv1", str(video)])  # fmt: skip
    audio = _write(tmp_path / "a.wav", _sine(330, 3))
    with pytest.warns(UserWarning, match=r"master\.mkv: its video codec cannot go into \.mp4.*mkv"):
        out = mix.mux(video, audio, tmp_path / "out.mp4")
    assert _video_codec(out) == "h264" and stream_types(out) == ["video", "audio"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = mix.mux(video, audio, tmp_path / "out.mkv")
    assert _video_codec(kept) == "ffv1"
    # H.264 cannot go into a .webm: VP9 there
    with pytest.warns(UserWarning, match=r"\.webm"):
        web = mix.mux(lavfi_video(tmp_path / "h.mp4", seconds=2.0), audio, tmp_path / "o.webm")
    assert _video_codec(web) == "vp9"
