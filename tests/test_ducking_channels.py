"""Speech is found for ducking however the dialogue sits in the channels: mono in stereo,
a phase-inverted pair whose mono sum cancels, two speakers on two lavaliers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from moodsic_engine import mix

SR = 48000


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """espeak-ng saying a sentence, at 48 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    wav = tmp_path_factory.mktemp("speech") / "s.wav"
    subprocess.run(
        ["espeak-ng", "-s", "150", "-w", str(wav), "The harbour lights are on again tonight."],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    from scipy.signal import resample_poly

    y, sr = sf.read(str(wav), dtype="float32")
    return resample_poly(y, SR, sr).astype(np.float32)


def _placed(speech: np.ndarray, at_s: float, seconds: float = 10.0) -> np.ndarray:
    track = np.zeros(int(seconds * SR), dtype=np.float32)
    start = int(at_s * SR)
    track[start : start + len(speech)] = speech[: len(track) - start]
    return track


def _covers(regions: list[tuple[float, float]], start: float, length: float) -> bool:
    return any(a < start + 0.5 and b > start + length - 0.8 for a, b in regions)


def test_phase_inverted_stereo_speech_is_heard(speech: np.ndarray) -> None:
    voice = _placed(speech, 3.0)
    stereo = np.stack([voice, -voice], axis=1)
    assert np.abs(stereo.mean(axis=1)).max() == 0  # a mono sum hears nothing at all
    regions = mix.speech_regions(stereo, SR)
    assert _covers(regions, 3.0, len(speech) / SR), regions


def test_two_speakers_on_two_channels_are_both_heard(speech: np.ndarray) -> None:
    left, right = _placed(speech, 1.0, 14.0), _placed(speech, 8.0, 14.0)
    regions = mix.speech_regions(np.stack([left, right], axis=1), SR)
    length = len(speech) / SR
    assert _covers(regions, 1.0, length) and _covers(regions, 8.0, length), regions


def test_mono_speech_in_stereo_is_found_once(speech: np.ndarray) -> None:
    voice = _placed(speech, 2.0)
    regions = mix.speech_regions(np.stack([voice, voice], axis=1), SR)
    assert _covers(regions, 2.0, len(speech) / SR)
    assert all(b <= 2.0 + len(speech) / SR + 0.5 for _, b in regions)
    assert mix.speech_regions(np.zeros((SR * 2, 2), dtype=np.float32), SR) == []
