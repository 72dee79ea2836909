"""Live music: the session playlist's no-repeat window, beat-aligned crossfades, loudness at the
target, continuity (no gaps, no clicks), the editor paths' fade curve and bar-grid loops, and
the true-peak limiter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click_tracks import click_track
from live_media import BUSY, CALM, MOODS, SR, live_library, quadrant_clusters

from moodsic_engine.config import MixConfig
from moodsic_engine.library import Library, Track, library_from_tracks
from moodsic_engine.live.player import MusicPlayer
from moodsic_engine.live.playlist import SessionPlaylist
from moodsic_engine.mix import fade_curve, integrated_lufs, render_pieces, true_peak
from moodsic_engine.mix.loudness import BlockLimiter, smooth_gain
from moodsic_engine.mix.plan import Piece
from moodsic_engine.segment_online import MoodChange


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return live_library(tmp_path_factory.mktemp("livelib"), per_mood=5, seconds=24.0)


def _change(lib, name: str) -> MoodChange:
    k = lib.clusters.predict(np.array([{"busy": [0.7, 0.6], "calm": [-0.6, -0.6]}[name]]))[0]
    v, a = lib.clusters.centroids[k]
    return MoodChange(0.0, 0.0, int(k), lib.clusters.slugs[k], "", float(v), float(a), 1.0)


def _play(player: MusicPlayer, seconds: float, block: int = 4800) -> np.ndarray:
    """Render as a session would, waiting for loads (not real time) so results are exact."""
    out = []
    for _ in range(int(round(seconds * SR / block))):
        for fut in player.pending():
            fut.result(timeout=60)
        out.append(player.render(block))
    return np.concatenate(out)


def _clicks(y: np.ndarray) -> float:
    """Largest sample-to-sample jump over the typical jump of its 10 ms neighbourhood."""
    d = np.abs(np.diff(y[:, 0].astype(np.float64)))
    w = SR // 100
    local = np.convolve(d, np.ones(w) / w, mode="same")
    return float(np.max(d / np.maximum(local, 1e-4)))


def test_playlist_never_repeats_within_the_window():
    tracks = [
        Track(str(i), f"t{i}", "", f"/x/{i}.wav", 60.0, math.cos(i), math.sin(i)) for i in range(40)
    ]
    pl = SessionPlaylist(library_from_tracks(tracks, clusters=quadrant_clusters()), no_repeat=20)
    picks = []
    for j in range(200):
        k = j // 7 % pl.library.clusters.k  # the mood changes every 7 tracks
        va = tuple(pl.library.clusters.centroids[k])
        picks.append(pl.take(k, va).id)
    for i in range(len(picks) - 19):
        assert len(set(picks[i : i + 20])) == 20, picks[i : i + 20]
    # The mood's own tracks come first while it has fresh ones.
    first = [pl.library.track_cluster[int(p)] for p in picks[:3]]
    assert first == [0, 0, 0]


def test_small_library_repeats_the_longest_ago_played_of_the_mood(lib):
    pl = SessionPlaylist(lib, no_repeat=20)  # 20 tracks in all: the window holds them all
    calm = _change(lib, "calm")
    picks = [pl.take(calm.index, (calm.valence, calm.arousal)) for _ in range(25)]
    assert len({t.id for t in picks[:20]}) == 20
    mood_of = {t.id: lib.track_cluster[i] for i, t in enumerate(lib.tracks)}
    assert all(mood_of[t.id] == calm.index for t in picks[:5])
    assert picks[20].id == picks[0].id  # every track recent: the calm one played longest ago


def test_mood_change_crossfades_on_the_downbeat_and_keeps_level_and_continuity(lib):
    events: list[dict] = []
    player = MusicPlayer(SessionPlaylist(lib), MixConfig(crossfade_s=2.0), on_event=events.append)
    player.set_mood(_change(lib, "busy"))
    first = _play(player, 8.05)
    player.set_mood(_change(lib, "calm"))
    rest = _play(player, 12.0)
    y = np.concatenate([first, rest])
    starts = [e for e in events if e["event"] == "track_start"]
    assert [e["reason"] for e in starts] == ["start", "mood"]
    boundary = starts[1]["t"]
    # The first track started at session 0 on its own downbeat (bars of 2 s): the boundary is
    # a downbeat of the outgoing track, the first one at least half a crossfade ahead.
    assert boundary == pytest.approx(10.0, abs=1e-3)
    assert starts[1]["fade_start"] == pytest.approx(9.0, abs=1e-3)
    # The incoming track's downbeat lands on the boundary: its pulse peaks there.
    env = np.abs(y[:, 0])
    lo = int((boundary + 1.05) * SR)  # after the fade: calm alone, pulses every 0.5 s
    pulse = [lo + int(np.argmax(env[lo + k * SR // 2 : lo + k * SR // 2 + SR // 2 - 100]))
             for k in range(4)]  # fmt: skip
    phase = [((p / SR - boundary) % 0.5) for p in pulse]
    assert all(min(ph, 0.5 - ph) < 0.03 for ph in phase), phase
    # Loudness: each track at the target (-14 LUFS) within 1 dB, measured alone.
    assert integrated_lufs(y[int(3 * SR) : int(8.5 * SR)], SR) == pytest.approx(-14.0, abs=1.0)
    assert integrated_lufs(y[int(11.5 * SR) : int(20 * SR)], SR) == pytest.approx(-14.0, abs=1.0)
    # Continuity: no window of 50 ms below -10 dB of the steady level, no click.
    rms = np.sqrt(np.mean(y[int(2.5 * SR) :, 0].reshape(-1, SR // 20) ** 2, axis=1))
    assert 20 * np.log10(rms.min() / np.median(rms)) > -10.0
    assert _clicks(y[int(2.5 * SR) :]) < 8.0
    assert float(np.max(np.abs(y))) <= 10 ** (-1 / 20) + 1e-6


def test_tracks_follow_each_other_before_they_end_without_a_gap(lib):
    events: list[dict] = []
    player = MusicPlayer(SessionPlaylist(lib), MixConfig(), on_event=events.append)
    player.set_mood(_change(lib, "calm"))
    y = _play(player, 75.0)  # 24 s tracks: at least three hand-overs
    ends = [e for e in events if e["event"] == "track_start" and e["reason"] == "end"]
    assert len(ends) >= 3
    ids = [e["track"] for e in events if e["event"] == "track_start"]
    assert len(set(ids)) == len(ids)  # no repeat
    # Every hand-over lands on a downbeat of the outgoing track; each incoming track puts its
    # own downbeat there, so all of them sit on the first track's 2 s bar grid.
    for e in ends:
        assert min(e["t"] % 2.0, 2.0 - e["t"] % 2.0) < 1e-3, e["t"]
    rms = np.sqrt(np.mean(y[int(2.5 * SR) :, 0].reshape(-1, SR // 20) ** 2, axis=1))
    assert 20 * np.log10(rms.min() / np.median(rms)) > -10.0
    assert _clicks(y[int(2.5 * SR) :]) < 8.0


def test_fade_out_ends_in_silence_and_the_limiter_holds_the_ceiling(lib):
    player = MusicPlayer(SessionPlaylist(lib), MixConfig(), on_event=lambda e: None)
    player.set_mood(_change(lib, "busy"))
    _play(player, 4.0)
    player.fade_out(2.0)
    tail = _play(player, 2.5)
    assert player.finished
    assert float(np.max(np.abs(tail[-SR // 2 :]))) < 1e-6  # silence (cos(pi/2) is 6e-17)
    assert float(np.sqrt(np.mean(tail[: SR // 10] ** 2))) > 0.01


def _one_mood_library(folder: Path, tracks: dict[str, tuple[str, np.ndarray]]) -> Library:
    """A library of the given files ({track id: (mood name, audio [n, 2])}) at the moods'
    quadrants, written as WAV."""
    out = []
    for tid, (mood, audio) in tracks.items():
        path = folder / f"{tid}.wav"
        sf.write(str(path), audio, SR, subtype="FLOAT")
        v, a = MOODS[mood][0]
        out.append(Track(tid, tid, "test", str(path), len(audio) / SR, v, a))
    return library_from_tracks(out, clusters=quadrant_clusters())


def test_live_crossfade_gain_curve_is_the_editor_fade_curve(tmp_path):
    # DC tracks, one per channel: the output is the fade gain itself, sample for sample.
    n = 20 * SR
    a, b = np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32)
    a[:, 0] = b[:, 1] = 0.02  # brought up by track_gain (+24 dB at most): 0.32, no limiting
    lib = _one_mood_library(tmp_path, {"a": (BUSY, a), "b": (CALM, b)})
    cfg = MixConfig(crossfade_s=1.0, beat_align=False)
    events: list[dict] = []
    player = MusicPlayer(SessionPlaylist(lib), cfg, on_event=events.append)
    player.set_mood(_change(lib, "busy"))
    y = _play(player, 6.0)
    player.set_mood(_change(lib, "calm"))
    y = np.concatenate([y, _play(player, 4.0)])
    start = [e for e in events if e["event"] == "track_start"][1]
    xf = int(round(cfg.crossfade_s * SR))
    fs = int(np.flatnonzero(y[:, 1])[0])  # the fade-in's first sample (sin > 0 there)
    assert fs / SR == pytest.approx(start["fade_start"], abs=0.6e-3)  # events: 1 ms steps
    steady_a, steady_b = y[fs - 1, 0], y[fs + xf + 10, 1]
    assert 0.2 < steady_a < 0.89 and steady_a == y[fs - SR, 0]  # flat before the fade
    k = np.arange(xf)
    down = fade_curve(k, xf, rising=False).astype(np.float32)
    up = fade_curve(k, xf, rising=True).astype(np.float32)
    np.testing.assert_array_equal(y[fs : fs + xf, 0], steady_a * down)
    np.testing.assert_array_equal(y[fs : fs + xf, 1], steady_b * up)
    assert np.all(y[fs + xf :, 0] == 0) and np.all(y[fs - SR : fs, 1] == 0)
    # The editor paths' renderer gives the same envelope to a piece with these fades.
    piece = [Piece(0, "a", 0, 0, 2 * xf, 0, fade_in=xf, fade_out=xf)]
    dc = np.full((2 * xf, 2), np.float32(steady_a))
    editor = render_pieces(piece, lambda p: dc, 2 * xf)[:, 0]
    np.testing.assert_array_equal(editor[:xf], steady_a * up)
    np.testing.assert_array_equal(editor[xf:], steady_a * down)


def _onsets(x: np.ndarray, thr: float = 1e-3, quiet_s: float = 0.1) -> np.ndarray:
    """Seconds where |x| first passes `thr` after `quiet_s` below it."""
    hot = np.flatnonzero(np.abs(x) > thr)
    keep = np.concatenate([[True], np.diff(hot) > quiet_s * SR]) if len(hot) else []
    return hot[keep] / SR


def test_short_track_loops_on_its_bar_grid_across_the_wrap(tmp_path):
    # 2 bars at a fractional tempo after a 0.37 s lead-in with pickups, and a partial bar:
    # 4.4 s, shorter than a deck plays, so it loops. The pickups and the partial bar must
    # never play between the bars: every click, across each wrap, one beat after the last.
    bpm = 123.7
    beat = 60.0 / bpm
    path = click_track(tmp_path / "short.wav", bpm=bpm, first_s=0.37, bars=2, extra_s=0.21)
    audio = sf.read(str(path), dtype="float32")[0]
    lib = _one_mood_library(tmp_path, {"short": (BUSY, audio)})  # same file, with its grid
    events: list[dict] = []
    player = MusicPlayer(SessionPlaylist(lib), MixConfig(), on_event=events.append)
    player.set_mood(_change(lib, "busy"))
    y = _play(player, 8.0, block=1000)
    # one deck in the window: its own loops only (the hand-over to its next pass comes later)
    assert [e["fade_start"] for e in events][0] == 0.0
    assert all(e["fade_start"] > 8.0 for e in events[1:])
    on = _onsets(y[:, 0])
    on = on[on > 0.5]  # the session's 2 s fade-in hides the first clicks
    body = 8 * beat
    assert on[-1] > 2 * body - 0.01  # two wraps heard (the deck starts on the first downbeat)
    gaps = np.diff(on)
    assert len(gaps) >= 12
    assert np.max(np.abs(gaps - beat)) < 0.002, (gaps - beat).round(4)


def test_live_output_true_peak_stays_at_or_under_the_ceiling(lib):
    # Tracks driven to -6 LUFS: their peaks, and the sum in the crossfade, pass -1 dBTP.
    cfg = MixConfig(target_lufs=-6.0)
    player = MusicPlayer(SessionPlaylist(lib), cfg, on_event=lambda e: None)
    player.set_mood(_change(lib, "busy"))
    y = _play(player, 5.05, block=1024)
    player.set_mood(_change(lib, "calm"))
    y = np.concatenate([y, _play(player, 6.0, block=1024)])
    tp = true_peak(y)
    ceiling = 10 ** (cfg.true_peak_db / 20)
    assert float(tp.max()) <= ceiling
    assert 20 * math.log10(float(tp.max()) / ceiling) > -0.5  # the limiter is what held it
    # ...and it did not distort the joins between blocks: no click.
    assert _clicks(y[int(2.5 * SR) :]) < 8.0


def test_block_limiter_is_the_editor_limiter_pass_whatever_the_block_sizes():
    # Loud noise in irregular blocks: every output sample away from the stream's two ends gets
    # the gain one pass of mix.limit over the whole signal gives it (so blocks join exactly).
    sr, rng = SR, np.random.default_rng(1)
    x = (rng.standard_normal((3 * sr, 2)) * 0.5).astype(np.float32)
    lim = BlockLimiter(sr, -1.0)
    sizes = rng.integers(1, 6000, 200)
    cuts = np.concatenate([[0], np.cumsum(sizes)[np.cumsum(sizes) < len(x)], [len(x)]])
    parts = [lim.process(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    out = np.concatenate([*parts, lim.process(np.zeros((lim.delay, 2), np.float32))])
    out = out[lim.delay :]
    ceiling = 10 ** (-1 / 20)
    need = np.minimum(1.0, ceiling / np.maximum(true_peak(x), 1e-12)).astype(np.float32)
    whole = x * smooth_gain(need, sr)[:, None]
    inner = slice(int(0.2 * sr), -int(0.2 * sr))
    np.testing.assert_array_equal(out[inner], whole[inner])
    assert float(true_peak(out).max()) <= ceiling
    assert float(np.abs(x).max()) > 2 * ceiling  # it had work to do (+8 dB over)
