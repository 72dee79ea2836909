"""Property tests (hypothesis) for FUSE, STABILIZE and SEGMENT, and for the path from hostile
expert outputs (NaN, inf, huge, negative variances) to a cue sheet.

Properties: outputs finite and in [-1, 1]; fused values inside the range of the experts
present; segments tile [0, frames) exactly for arbitrary rational frame rates and durations;
time is monotone; the same input gives the same output; no NaN/inf ever reaches cue JSON.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moodsic_engine.config import Config, FusionConfig, SegmentConfig, StabilizeConfig
from moodsic_engine.cue import CueSheet, VideoRef, check_tiling
from moodsic_engine.experts.base import ExpertSeries
from moodsic_engine.fusion import fuse
from moodsic_engine.library.clusters import fit_clusters
from moodsic_engine.segment import segment_moods
from moodsic_engine.stabilize import stabilize

PROFILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# Anything an expert might emit: ordinary values, out-of-range values, NaN and infinities.
wild = st.one_of(
    st.floats(-1, 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0]),
)
wild_var = st.one_of(
    st.floats(0, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, np.nan, np.inf, 1e-300]),
)


@st.composite
def times(draw, max_n: int = 40) -> np.ndarray:  # noqa: ANN001
    """Strictly increasing sample times with arbitrary (also uneven, VFR-like) spacing."""
    n = draw(st.integers(1, max_n))
    gaps = draw(st.lists(st.floats(1e-3, 30.0), min_size=n, max_size=n))
    t0 = draw(st.floats(0, 5))
    return t0 + np.cumsum([0.0, *gaps[:-1]])


@st.composite
def expert_series(draw, t: np.ndarray, name: str) -> ExpertSeries:  # noqa: ANN001
    n = len(t)

    def arr(s) -> np.ndarray:  # noqa: ANN001
        return np.array(draw(st.lists(s, min_size=n, max_size=n)), dtype=np.float64)

    return ExpertSeries(
        name=name,
        t=t,
        v=arr(wild),
        a=arr(wild),
        var_v=arr(wild_var),
        var_a=arr(wild_var),
        present=np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
    )


@st.composite
def series_sets(draw) -> list[ExpertSeries]:  # noqa: ANN001
    t = draw(times())
    k = draw(st.integers(1, 3))
    return [draw(expert_series(t, f"e{i}")) for i in range(k)]


# ----------------------------------------------------------------------------- fusion
@PROFILE
@given(series_sets())
def test_fusion_is_bounded_convex_and_deterministic(series: list[ExpertSeries]) -> None:
    cfg = FusionConfig()
    va, var = fuse(series, cfg)
    n = len(series[0].t)
    assert va.shape == var.shape == (n, 2)
    clean = [s.sanitized(cfg.var_floor, cfg.var_ceiling) for s in series]
    any_present = np.any([c.present for c in clean], axis=0)
    # where some expert has a finite value: finite, in [-1, 1], variance a real number
    assert np.all(np.isfinite(va[any_present]))
    assert np.all(np.abs(va[any_present]) <= 1.0)
    assert np.all(np.isfinite(var[any_present]))
    assert np.all(var[any_present] >= cfg.var_floor / len(series) - 1e-12)
    assert np.all(var[any_present] <= cfg.var_ceiling + 1e-12)
    # where nobody has anything: explicitly unknown, never a made-up number
    assert np.all(np.isnan(va[~any_present])) and np.all(np.isinf(var[~any_present]))
    # inverse-variance weighting is a convex combination of the experts present
    for i in np.flatnonzero(any_present):
        for axis, attr in ((0, "v"), (1, "a")):
            vals = [getattr(c, attr)[i] for c in clean if c.present[i]]
            assert min(vals) - 1e-9 <= va[i, axis] <= max(vals) + 1e-9
    va2, var2 = fuse(series, cfg)
    np.testing.assert_array_equal(va, va2)
    np.testing.assert_array_equal(var, var2)


# ----------------------------------------------------------------------------- stabilizer
@PROFILE
@given(
    series_sets(),
    st.floats(0, 1),
    st.floats(0.001, 5),
    st.floats(0, 20),
    st.sampled_from([0.5, 1.0, 2.0, 4.0, 29.97]),
)
def test_stabilizer_is_bounded_and_deterministic(
    series: list[ExpertSeries], alpha: float, gate: float, max_hold: float, sample_fps: float
) -> None:
    t = series[0].t
    va, var = fuse(series)
    cfg = StabilizeConfig(ema_alpha=alpha, gate=gate, max_hold_s=max_hold)
    out, held = stabilize(t, va, var, cfg, sample_fps)
    assert out.shape == (len(t), 2) and held.shape == (len(t),) and held.dtype == bool
    assert np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
    # a sample with nothing fused is always held (it carries the last stable value)
    assert np.all(held[~np.all(np.isfinite(va), axis=1)])
    out2, held2 = stabilize(t, va, var, cfg, sample_fps)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(held, held2)


@PROFILE
@given(times(), st.floats(-1, 1), st.floats(-1, 1), st.floats(0.01, 1))
def test_stabilizer_keeps_a_constant_signal(
    t: np.ndarray, v: float, a: float, alpha: float
) -> None:
    va = np.tile([v, a], (len(t), 1))
    var = np.full((len(t), 2), 0.05)
    out, held = stabilize(t, va, var, StabilizeConfig(ema_alpha=alpha), 2.0)
    np.testing.assert_allclose(out, va, atol=1e-12)
    assert not held.any()


# ----------------------------------------------------------------------------- segmenter
CLUSTERS = fit_clusters(
    np.random.default_rng(3).uniform(-0.9, 0.9, (120, 2)), min_clusters=3, max_clusters=5
)

rational_fps = st.one_of(
    st.sampled_from(
        [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(25),
         Fraction(1), Fraction(1000)]
    ),
    st.builds(Fraction, st.integers(1, 240_000), st.integers(1, 1001)).filter(
        lambda f: Fraction(1, 2) <= f <= 1000
    ),
)  # fmt: skip


@st.composite
def segment_inputs(draw):  # noqa: ANN001, ANN201
    fps = draw(rational_fps)
    duration = draw(st.floats(0.01, 4000.0))
    n = draw(st.integers(0, 60))
    t = np.sort(np.array(draw(st.lists(st.floats(0, duration), min_size=n, max_size=n))))
    t = np.unique(t)
    va = np.array(draw(st.lists(st.tuples(wild, wild), min_size=len(t), max_size=len(t))))
    va = va.reshape(-1, 2)
    cuts = draw(
        st.lists(
            st.one_of(st.floats(-10, duration + 10), st.sampled_from([np.nan, np.inf, 0.0])),
            max_size=8,
        )
    )
    cfg = SegmentConfig(
        min_segment_s=draw(st.floats(0, 60)),
        switch_penalty=draw(st.floats(0, 50)),
        cut_snap_s=draw(st.floats(0, 5)),
    )
    return t, va, cuts, cfg, duration, fps


@PROFILE
@given(segment_inputs())
def test_segments_tile_the_video_exactly(inputs) -> None:  # noqa: ANN001
    t, va, cuts, cfg, duration, fps = inputs
    segs = segment_moods(t, va, CLUSTERS, cuts, cfg, duration_s=duration, fps=fps)
    total = max(1, int(round(Fraction(duration) * fps)))
    assert segs[0].start_frame == 0 and segs[-1].end_frame == total
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end_frame == b.start_frame
    for s in segs:
        assert s.end_frame > s.start_frame  # monotone, no empty segment
        assert s.start_s == float(Fraction(s.start_frame) / fps)  # exact frame grid, no drift
        assert s.end_s == float(Fraction(s.end_frame) / fps)
        assert s.start_s < s.end_s
        for x in (s.valence, s.arousal):
            assert np.isfinite(x) and -1.0 <= x <= 1.0
        assert np.isfinite(s.confidence) and 0.0 <= s.confidence <= 1.0
        assert s.mood in CLUSTERS.slugs and s.track is None
    check_tiling(tuple(segs), VideoRef("v.mp4", float(total / fps), fps, total))
    again = segment_moods(t, va, CLUSTERS, cuts, cfg, duration_s=duration, fps=fps)
    assert again == segs


# ----------------------------------------------------------------------------- to the cue sheet
@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from badinputs import va_manifest

    from moodsic_engine.library import load_library

    folder = tmp_path_factory.mktemp("lib")
    return load_library(va_manifest(folder), cache_dir=folder / "cache")


def _analysis(series: list[ExpertSeries], duration: float, fps: Fraction):  # noqa: ANN202
    from moodsic_engine.pipeline import Analysis

    cfg = Config()
    t = series[0].t
    clean = [s.sanitized(cfg.fusion.var_floor, cfg.fusion.var_ceiling) for s in series]
    va, var = fuse(series, cfg.fusion)
    stable, held = stabilize(t, va, var, cfg.stabilize, cfg.sample.sample_fps)
    frames = max(1, int(round(Fraction(duration) * fps)))
    return Analysis(
        video=VideoRef("clip.mp4", float(frames / fps), fps, frames),
        t=t,
        series=tuple(clean),
        fused_va=va,
        fused_var=var,
        stable_va=stable,
        held=held,
        cuts=(),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(series=series_sets(), fps=rational_fps)
def test_hostile_expert_values_never_reach_cue_json(series, fps, library) -> None:  # noqa: ANN001
    from moodsic_engine.pipeline import build_cue

    duration = float(series[0].t[-1]) + 1.0
    cue = build_cue(_analysis(series, duration, fps), library, Config())
    text = cue.to_json_text()  # allow_nan=False: raises if a non-finite number slipped in
    assert "NaN" not in text and "Infinity" not in text
    back = CueSheet.from_dict(json.loads(text))  # schema, ranges and tiling hold
    assert back.segments[-1].end_frame == back.video.frames


class _WildExpert:
    """An expert gone wrong: NaN, infinities, values far out of range, negative variances."""

    name = "wild"
    mode = "trained"

    def predict(self, batch):  # noqa: ANN001, ANN201
        from moodsic_engine.experts.base import Estimates

        n = len(batch)
        pattern = np.array([np.nan, np.inf, -np.inf, 7.0, -1e308, 0.3])
        v = np.resize(pattern, n)
        a = np.resize(pattern[::-1], n)
        var = np.resize(np.array([-1.0, np.nan, 0.0, np.inf, 1e-300]), n)
        return Estimates(v, a, var, var.copy(), np.ones(n, dtype=bool))

    def finalize(self, series, context):  # noqa: ANN001, ANN201
        return series


def test_wild_expert_on_a_real_clip_gives_a_clean_cue_sheet(tmp_path: Path, library) -> None:
    """End to end through the sampler and pipeline, next to the grammar expert and alone."""
    from media import lavfi_video

    from moodsic_engine.experts import LoadedExperts, load_experts
    from moodsic_engine.pipeline import analyze_video, build_cue

    video = lavfi_video(tmp_path / "v.mp4", seconds=4)
    cfg = Config(experts=("grammar",))
    grammar = load_experts(cfg).experts
    for experts in ((_WildExpert(),), (*grammar, _WildExpert())):
        analysis = analyze_video(video, LoadedExperts(experts, {}), cfg)
        cue = build_cue(analysis, library, cfg)
        path = cue.to_json(tmp_path / "c.moodsic.json")
        text = path.read_text(encoding="utf-8")
        assert "NaN" not in text and "Infinity" not in text
        back = CueSheet.from_json(path)
        for s in back.samples:
            for est in s.experts.values():
                assert all(np.isfinite(x) for x in est.values())
                assert -1 <= est["v"] <= 1 and -1 <= est["a"] <= 1
        assert all(-1 <= s.valence <= 1 and -1 <= s.arousal <= 1 for s in back.segments)


# ----------------------------------------------------------------------------- sampler
def _vfr_video(path: Path, times_ms: list[int]) -> Path:
    """H.264 (no B-frames) whose frames sit at exactly these timestamps (ms)."""
    import av

    rng = np.random.default_rng(len(times_ms))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 36, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"preset": "ultrafast", "bf": "0"}
        for t in times_ms:
            f = av.VideoFrame.from_ndarray(
                (rng.random((36, 64, 3)) * 255).astype(np.uint8), format="rgb24"
            )
            f.pts, f.time_base = int(t), s.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    gaps=st.lists(st.integers(1, 2500), min_size=1, max_size=50),
    sample_fps=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
)
def test_sampler_time_is_monotone_and_takes_nearest_frames(
    gaps: list[int], sample_fps: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Variable frame rate with arbitrary gaps: sample times strictly increase, are real frame
    times, and every grid point up to the last frame gets its nearest frame."""
    from moodsic_engine.config import SampleConfig
    from moodsic_engine.video import sample_video

    times_ms = np.cumsum([0, *gaps])
    path = _vfr_video(tmp_path_factory.mktemp("vfr") / "v.mkv", times_ms.tolist())
    frames = times_ms / 1000.0
    sampler = sample_video(path, SampleConfig(sample_fps=sample_fps))
    got = np.concatenate([b.times for b in sampler])
    assert np.all(np.diff(got) > 0)
    assert np.all(np.min(np.abs(got[:, None] - frames[None, :]), axis=1) < 1e-6)
    grid = np.arange(0.0, frames[-1] + 1e-9, 1.0 / sample_fps)
    for g in grid:
        d = np.abs(frames - g)
        nearest = frames[np.isclose(d, d.min(), atol=1e-9)]  # ties: either frame will do
        assert np.any(np.isclose(got[:, None], nearest[None, :], atol=1e-6)), (g, got)
    assert sampler.end_s is not None and sampler.end_s >= frames[-1]
    assert all(0 < c <= frames[-1] + 1e-6 for c in sampler.cuts)
    assert list(sampler.cuts) == sorted(sampler.cuts)
