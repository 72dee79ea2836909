"""Runs for days: an accelerated soak of an hour of live input (a room changing mood every two
minutes, looped) with the grammar expert. Memory stays flat and the music never stops."""

from __future__ import annotations

import threading

import numpy as np
import psutil
import pytest
from live_media import BUSY, CALM, act_video, live_library

from moodsic_engine.config import Config
from moodsic_engine.experts import load_experts
from moodsic_engine.live import LiveOptions, run_live

SR = 8000  # the soak renders an hour of audio: a low rate keeps it cheap (the work per block is alike)


class MeterSink:
    """Keeps running numbers only: the level of each second and the RSS each minute."""

    name = "meter"
    paces = False

    def __init__(self) -> None:
        self.samples = 0
        self.window: list[float] = []
        self.level: list[float] = []  # RMS of each second after the first track is in
        self.rss: list[tuple[float, int]] = []  # (session seconds, bytes)
        self._proc = psutil.Process()

    def write(self, block: np.ndarray) -> None:
        self.samples += len(block)
        self.window.append(float(np.mean(block[:, 0] ** 2)))
        if len(self.window) * len(block) >= SR:  # one second
            t = self.samples / SR
            if t > 60:  # after the first track is in
                self.level.append(float(np.sqrt(np.mean(self.window))))
            self.window.clear()
            if int(t) % 60 == 0:
                self.rss.append((t, self._proc.memory_info().rss))

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_an_hour_at_high_speed_keeps_memory_flat_and_music_going(tmp_path):
    video = act_video(tmp_path / "room.mp4", [BUSY, CALM], 120.0, fps=2)  # 4 min, looped
    lib = live_library(tmp_path / "lib", per_mood=3, seconds=90.0, sr=SR)
    cfg = Config(experts=("grammar",)).replace(**{"mix.sample_rate": SR})
    meter = MeterSink()
    opts = LiveOptions(
        speed=200.0,
        duration_s=3600.0,
        loop=True,
        min_dwell_s=30.0,
        block_s=0.5,
        events=tmp_path / "events.jsonl",
    )
    stop = threading.Event()
    report = run_live(str(video), lib, load_experts(cfg, None), cfg, opts, sinks=[meter], stop=stop)
    assert report.stop_reason == "duration reached"
    assert report.seconds == pytest.approx(3600.0, abs=1.0)
    # the analysis kept up with most of the hour, and the room's moods came through
    assert report.samples > 1000  # a loaded machine drops samples, as a camera drops frames
    assert report.mood_changes >= 10
    assert report.tracks >= 30 and report.problems == 0
    # music all the way: no second 10 dB quieter than the typical one (until the fade-out)
    level = np.array(meter.level[:-4])
    dip = 20 * np.log10(level.min() / np.median(level))
    assert dip > -10.0
    # memory: flat after the first ten minutes (everything warmed up and every track seen once)
    warm = [r for t, r in meter.rss if 600 <= t <= 720]
    end = [r for t, r in meter.rss if t >= 3300]
    growth_mb = (np.median(end) - np.median(warm)) / 2**20
    print(
        f"soak: {report.seconds:.0f} s session, {report.samples} samples, {report.mood_changes} "
        f"mood changes, {report.tracks} tracks; RSS {np.median(warm) / 2**20:.0f} MB at 10 min, "
        f"growth to the end {growth_mb:+.1f} MB; deepest 1 s dip {dip:.1f} dB"
    )
    assert growth_mb < 20.0
    lines = (tmp_path / "events.jsonl").read_text().count("\n")
    assert lines > report.samples  # the log is on disk, not in memory
