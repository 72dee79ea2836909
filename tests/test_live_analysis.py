"""Rolling analysis with the face expert (offline fallback mode) on a paced file: faces are
counted per sample and face coverage follows the room; Ctrl-C ends a session cleanly."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
from live_media import BUSY, act_video, live_library
from media import pipe_video

from moodsic_engine.config import Config
from moodsic_engine.experts import load_experts
from moodsic_engine.live import LiveOptions, run_live, source_spec
from moodsic_engine.live.analysis import LiveAnalyzer
from moodsic_engine.live.clock import SessionClock
from moodsic_engine.live.sources import FrameReader


@pytest.mark.slow
def test_face_expert_counts_faces_live_and_coverage_follows(tmp_path):
    from skimage.data import astronaut

    face = astronaut()[::2, ::2][:, 16:240]  # 256x224, the face large in the frame
    face = np.ascontiguousarray(face[:224, :224])
    blank = np.full_like(face, 90)

    def frame(k: int) -> np.ndarray:
        return face if k < 60 else blank  # 6 s of a face, then 6 s of an empty room

    video = pipe_video(tmp_path / "face.mp4", frame, 120, rate="10", bframes=0)
    cfg = Config(experts=("face", "grammar"))
    experts = load_experts(cfg, None)
    lib = live_library(tmp_path / "lib", per_mood=1, seconds=12.0)
    analyzer = LiveAnalyzer(experts, lib.clusters, cfg, coverage_window=5)
    reader = FrameReader(source_spec(str(video)), SessionClock(50.0))
    steps, coverage = [], []
    for lf in reader.frames(threading.Event()):
        steps.append(analyzer.step(lf))
        coverage.append(analyzer.face_coverage)
    faces = [s.faces for s in steps]
    assert len(steps) >= 10
    assert all(f is not None for f in faces)
    with_face = [s for s in steps if s.source_t < 5.5]
    without = [s for s in steps if s.source_t > 7.5]
    assert sum(s.faces >= 1 for s in with_face) >= len(with_face) - 1
    assert all(s.faces == 0 for s in without)
    assert any("face" in s.experts for s in with_face)  # fused with the grammar expert
    assert coverage[len(with_face) - 1] >= 0.8 and coverage[-1] == 0.0


def test_ctrl_c_fades_out_and_returns(tmp_path):
    video = act_video(tmp_path / "room.mp4", [BUSY], 60.0)
    lib = live_library(tmp_path / "lib", per_mood=1, seconds=20.0)
    cfg = Config(experts=("grammar",))
    opts = LiveOptions(speed=10.0, min_dwell_s=15.0, out_audio=tmp_path / "music.wav")

    def interrupt(url) -> None:  # noqa: ANN001, ARG001
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()

    previous = signal.getsignal(signal.SIGINT)
    report = run_live(str(video), lib, load_experts(cfg, None), cfg, opts, on_ready=interrupt)
    assert report.stop_reason == "stopped"
    assert 10.0 < report.seconds < 50.0  # stopped long before the 60 s file ended
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    import soundfile as sf

    y, sr = sf.read(str(tmp_path / "music.wav"), dtype="float32")
    assert len(y) / sr == pytest.approx(report.seconds, abs=0.2)
    assert float(np.max(np.abs(y[-10:]))) < 1e-3  # faded to silence
