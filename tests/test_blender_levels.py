"""The Blender add-on's strips at the mixdown's levels (issue 16, points 1 and 3): the engine
reports the levels it mixes with (`moodsic blender speech --cue`), and the music strips the
placement computes play each piece at the gain the mixdown gives it; the video's own sound is
never raised."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from blender_support import addon_module
from media import FFMPEG, run

from moodsic_engine import mix
from moodsic_engine.blender_build import strip_levels
from moodsic_engine.config import MixConfig
from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef
from moodsic_engine.mix.plan import place_tracks
from moodsic_engine.mix.render import mix_arrays

P = addon_module("placement")
SR = 48000
FPS = 25


def _tone(path: Path, seconds: float, freqs: tuple[float, float], amp: float) -> Path:
    """A steady two-tone track with a little noise, at `amp` (tracks of different loudness
    get different piece gains)."""
    rng = np.random.default_rng(int(freqs[0]))
    t = np.arange(int(seconds * SR)) / SR
    y = amp * (np.sin(2 * np.pi * freqs[0] * t) + 0.7 * np.sin(2 * np.pi * freqs[1] * t))
    y = y + 0.1 * amp * rng.normal(size=len(t))
    sf.write(str(path), np.stack([y, y], axis=1).astype(np.float32), SR)
    return path


def _video(path: Path, audio: np.ndarray, seconds: float) -> Path:
    """A small video whose own sound is `audio` ([n, 2] at SR), as PCM (bit for bit)."""
    wav = path.with_suffix(".wav")
    sf.write(str(wav), audio.astype(np.float32), SR, subtype="FLOAT")
    run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=s=96x64:r={FPS}:d={seconds}", "-i", str(wav), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_f32le", "-shortest",
         str(path)])  # fmt: skip
    return path


def _cue(video: Path, seconds: float, parts: list[tuple[float, float, Path]]) -> CueSheet:
    segs = []
    for i, (a, b, track) in enumerate(parts):
        choice = TrackChoice(
            id=f"t{i}", title=f"T{i}", artist="", path=str(track), valence=0.0, arousal=0.0
        )
        segs.append(Segment(a, b, round(a * FPS), round(b * FPS), "m", "M", 0.0, 0.0, 1.0, choice))
    return CueSheet(
        video=VideoRef(str(video), seconds, Fraction(FPS), round(seconds * FPS), True),
        engine={"version": "test", "experts": [], "config": {}},
        samples=(),
        cuts=(),
        segments=tuple(segs),
    )


def _addon_cue(path: Path) -> dict:
    """The cue sheet as the add-on reads it (track paths resolved against its folder)."""
    data = json.loads(path.read_text())
    for seg in data["segments"]:
        if seg.get("track"):
            seg["track"]["path"] = P.cue_track_path(seg["track"], str(path))
    return data


def _strips(cue: dict, cue_path: Path, levels: dict, speech=()) -> P.Plan:
    """The placement at the movie's own rate, the movie from timeline frame 1."""
    frames = int(cue["video"]["frames"])
    src = P.cue_video_path(cue, str(cue_path))
    movie = P.MovieFacts("clip", src, 1, 1, 1 + frames, 1, frames)
    scene = P.SceneFacts(Fraction(FPS), 1, frames, frozenset({1}))
    job = P.Job(movie, cue, str(cue_path), speech=tuple(speech), levels=levels)
    return P.plan([job], scene, P.PlaceOptions(crossfade_s=MixConfig().crossfade_s))


def _rms_db(y: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-30))


def test_strip_volumes_are_the_mixdowns_music_gain_per_piece(tmp_path: Path) -> None:
    """A room-tone video (-64 dBFS, no speech) under two tracks 14 dB apart in level: each
    music strip's volume (dB) is the gain the mixdown plays that piece at (measured as the
    bed against the track file, mid-piece), within 0.1 dB; the original is not raised."""
    seconds = 10.0
    rng = np.random.default_rng(5)
    tone = rng.normal(size=(int(seconds * SR), 2)) * 10 ** (-64 / 20)
    video = _video(tmp_path / "room.mkv", tone, seconds)
    loud = _tone(tmp_path / "loud.wav", 12.0, (220, 330), 0.25)
    soft = _tone(tmp_path / "soft.wav", 12.0, (196, 294), 0.05)
    cfg = MixConfig(beat_align=False)
    placed = place_tracks(_cue(video, seconds, [(0, 5, loud), (5, seconds, soft)]), cfg)
    cue_path = placed.to_json(tmp_path / "room.moodsic.json")

    found = strip_levels(video, cue_path, cfg)
    lv = found["levels"]
    assert found["speech"] == [] and lv["dialogue_lufs"] is None and lv["duck_db"] == 0.0
    assert lv["original_cut_db"] == 0.0 and lv["original_lufs"] < -50.0
    assert lv["music_db"] == pytest.approx(lv["norm_db"] + lv["music_gain_db"], abs=0.02)

    # The mixdown, as `moodsic mix` makes it.
    cue = CueSheet.from_json(cue_path)
    down = mix_arrays(cue, cfg, mix.dialogue_for(cue, cfg, video))
    assert abs(down.levels.mix_lufs - cfg.target_lufs) < 0.5
    plan = _strips(_addon_cue(cue_path), cue_path, lv)
    pieces = placed.placement["pieces"]
    files = {"t0": loud, "t1": soft}
    gains = []
    for seg in (0, 1):
        strip = next(s for s in plan.sounds if s.tags["segment"] == seg)
        piece = next(p for p in pieces if p["segment"] == seg)
        mid = (piece["rec_in"] + piece["rec_out"]) // 2
        w = SR // 2  # half a second in the middle: no fade, no crossfade
        src = piece["src_in"] + mid - piece["rec_in"]
        raw = sf.read(str(files[piece["track_id"]]), dtype="float32", always_2d=True)[0]
        mixdown_db = _rms_db(down.bed[mid - w // 2 : mid + w // 2]) - _rms_db(
            raw[src - w // 2 : src + w // 2]
        )
        strip_db = 20 * math.log10(strip.volume)
        assert strip_db == pytest.approx(mixdown_db, abs=0.1)
        assert strip_db == pytest.approx(piece["gain_db"] + lv["music_db"], abs=0.01)
        gains.append(strip_db)
    assert gains[1] - gains[0] == pytest.approx(14.0, abs=0.3)  # each track to the target
    # The video's own sound strip: never raised, as the mix never raises the room tone.
    assert P.original_volume(1.0) == 1.0 and P.original_volume(4.0) == 1.0
    in_mix = down.mix - down.bed
    np.testing.assert_allclose(in_mix[: len(tone)], tone[: len(in_mix)], atol=1e-6)


def _voice(seconds: float, at: float, lufs: float) -> np.ndarray:
    """espeak-ng speech at `at` s in silence, [n, 2], scaled to `lufs` (integrated)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    proc = subprocess.run(
        ["espeak-ng", "-s", "160", "--stdout", "The storm has passed. The harbour lights are on."],
        check=True,
        capture_output=True,
    )
    voice, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    voice = mix.resample(voice[:, None], rate, SR)[:, 0]
    out = np.zeros(int(seconds * SR), dtype=np.float32)
    s = int(at * SR)
    out[s : s + len(voice)] = voice[: len(out) - s]
    y = np.stack([out, out], axis=1)
    return y * np.float32(10 ** ((lufs - mix.integrated_lufs(y, SR)) / 20))


def test_engine_reports_dialogue_loudness_and_strips_duck_to_it(tmp_path: Path) -> None:
    """`moodsic blender speech VIDEO --cue CUE --progress json`: the dialogue loudness it
    reports is within 1 LU of the voice measured directly; under speech the strips' keyed
    volume is the mixdown's music level there (music_under_dialogue_lu under the dialogue)."""
    seconds = 8.0
    voice = _voice(seconds, at=1.5, lufs=-24.0)
    video = _video(tmp_path / "talk.mkv", voice, seconds)
    track = _tone(tmp_path / "bed.wav", 12.0, (220, 330), 0.2)
    cfg = MixConfig(beat_align=False)
    placed = place_tracks(_cue(video, seconds, [(0, seconds, track)]), cfg)
    cue_path = placed.to_json(tmp_path / "talk.moodsic.json")
    done = subprocess.run(
        [sys.executable, "-m", "moodsic_engine.cli", "blender", "speech", str(video),
         "--cue", str(cue_path), "--progress", "json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = next(e for e in events if e["event"] == "done")
    lv = result["levels"]
    direct = mix.integrated_lufs(voice, SR)
    assert lv["dialogue_lufs"] == pytest.approx(direct, abs=1.0)
    assert result["speech"] and result["speech"][0][0] == pytest.approx(1.5, abs=0.4)
    under = lv["music_under_dialogue_db"]
    assert lv["duck_db"] == pytest.approx(min(0.0, under - lv["music_gain_db"]), abs=0.02)
    assert lv["duck_db"] <= -abs(cfg.duck_db) + 0.01  # at least MixConfig's duck depth
    assert lv["dialogue_to_music_lu"] == pytest.approx(cfg.music_under_dialogue_lu, abs=0.5)

    speech = [tuple(r) for r in result["speech"]]
    plan = _strips(_addon_cue(cue_path), cue_path, lv, speech)
    piece = placed.placement["pieces"][0]
    strip = plan.sounds[0]
    near = [(round(a * FPS), round(b * FPS)) for a, b in speech]  # frames from the movie's start
    in_speech = [v for f, v in strip.keys if any(a <= f - 1 <= b for a, b in near)]
    assert in_speech, strip.keys
    expect = piece["gain_db"] + lv["norm_db"] + under
    assert 20 * math.log10(min(in_speech)) == pytest.approx(expect, abs=0.1)
    assert 20 * math.log10(strip.volume) == pytest.approx(
        piece["gain_db"] + lv["music_db"], abs=0.01
    )
