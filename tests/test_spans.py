"""analyze_spans: stretches of several media files joined on one record timeline."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from moodsic_engine.experts import load_experts
from moodsic_engine.pipeline import Analysis, analyze_video
from moodsic_engine.spans import NoSpansAnalysed, SourceSpan, analyze_spans
from moodsic_engine.stabilize import stabilize
from otio_adapter.testing import write_video

CFG = Config().replace(experts=("grammar",))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spans")
    # flat colours: the grammar expert reads bright as (V +0.32, A -0.97), dark as (-0.91, -0.78)
    return {
        "bright": write_video(root / "bright.mp4", 4, colour="0xe0e0e0"),
        "dark": write_video(root / "dark.mp4", 4, colour="0x101010"),
    }


@pytest.fixture(scope="module")
def experts():  # noqa: ANN201
    return load_experts(CFG)


def _source(path: Path, experts, start: float, end: float) -> Analysis:  # noqa: ANN001
    return analyze_video(path, experts, CFG, start_s=start, end_s=end)


def _run(spans: list[SourceSpan], experts, duration_s: float, **kw) -> object:  # noqa: ANN001, ANN003
    return analyze_spans(spans, experts, CFG, duration_s=duration_s, fps=Fraction(25), **kw)


def test_spans_are_shifted_into_their_record_ranges(media, experts) -> None:  # noqa: ANN001
    spans = [
        SourceSpan(media["bright"], 1.0, 3.0, 0.0, 2.0, name="A"),
        SourceSpan(media["dark"], 2.0, 4.0, 5.0, 7.0, name="B"),  # a 3 s gap before it
    ]
    res = _run(spans, experts, 8.0, name="my edit")
    a = res.analysis
    assert res.analysed == (0, 1) and res.failed == ()
    # exactly the source samples, each shifted by rec_start - src_start
    src_a = _source(media["bright"], experts, 1.0, 3.0)
    src_b = _source(media["dark"], experts, 2.0, 4.0)
    np.testing.assert_array_equal(a.t, np.concatenate([src_a.t - 1.0, src_b.t + 3.0]))
    np.testing.assert_allclose(a.t, [0.0, 0.52, 1.0, 1.52, 5.0, 5.52, 6.0, 6.52])
    inside = ((a.t >= 0.0) & (a.t < 2.0)) | ((a.t >= 5.0) & (a.t < 7.0))
    assert inside.all()
    np.testing.assert_array_equal(a.fused_va, np.vstack([src_a.fused_va, src_b.fused_va]))
    np.testing.assert_array_equal(a.series[0].t, a.t)  # the expert's series moved along
    assert a.series[0].name == "grammar" and len(a.series[0].v) == 8
    np.testing.assert_allclose(a.fused_va[0], [0.3202, -0.9691], atol=1e-3)
    np.testing.assert_allclose(a.fused_va[-1], [-0.9108, -0.7756], atol=1e-3)
    # the analysis' video is the record timeline; cuts default to the span boundaries inside it
    assert a.video.path == "my edit" and a.video.fps == Fraction(25)
    assert a.video.frames == 200 and a.video.duration_s == 8.0
    assert a.cuts == (2.0, 5.0, 7.0)
    assert _run(spans, experts, 8.0, cuts=[2.5]).analysis.cuts == (2.5,)


def test_a_span_at_double_speed_plays_twice_its_record_length(media, experts) -> None:  # noqa: ANN001
    span = SourceSpan(media["bright"], 0.0, 4.0, 1.0, 3.0, speed=2.0)
    a = _run([span], experts, 3.0).analysis
    src = _source(media["bright"], experts, 0.0, 4.0)
    assert len(src.t) == 8 and len(a.t) == 8  # 4 s of source at 2 samples/s
    np.testing.assert_allclose(a.t, 1.0 + src.t / 2.0)
    np.testing.assert_allclose(a.t, [1.0, 1.26, 1.5, 1.76, 2.0, 2.26, 2.5, 2.76])
    assert a.t[0] >= 1.0 and a.t[-1] < 3.0
    np.testing.assert_array_equal(a.fused_va, src.fused_va)
    assert a.cuts == (1.0,)  # its end is the timeline's end: no cut there


def test_a_freeze_frame_holds_one_source_frame(media, experts) -> None:  # noqa: ANN001
    # one frame (1/25 s) of the dark clip held for 3 s of record time, after 2 s of bright
    spans = [
        SourceSpan(media["bright"], 0.0, 2.0, 0.0, 2.0),
        SourceSpan(media["dark"], 1.0, 1.04, 2.0, 5.0, speed=0.0),
    ]
    a = _run(spans, experts, 5.0).analysis
    np.testing.assert_allclose(a.t, [0.0, 0.52, 1.0, 1.52, 2.0])
    np.testing.assert_allclose(a.fused_va[-1], [-0.9108, -0.7756], atol=1e-3)
    assert a.cuts == (2.0,)


def test_a_failing_span_is_skipped_with_its_reason_or_raises(media, experts, tmp_path) -> None:  # noqa: ANN001
    spans = [
        SourceSpan(media["bright"], 1.0, 3.0, 0.0, 2.0, name="A"),
        SourceSpan(tmp_path / "missing.mp4", 0.0, 2.0, 2.0, 4.0, name="gone"),
        SourceSpan(media["dark"], 10.0, 12.0, 4.0, 6.0, name="late"),  # past its 4 s end
        SourceSpan(media["dark"], 1.0, 3.0, 6.0, 8.0, name="B"),
    ]
    res = _run(spans, experts, 8.0)
    assert res.analysed == (0, 3)
    assert [(f.index, f.span.name) for f in res.failed] == [(1, "gone"), (2, "late")]
    assert res.failed[0].reason.startswith("unreadable: ") and "missing.mp4" in res.failed[0].reason
    assert res.failed[1].reason == (
        "its source range 10.000-12.000 s starts past the end of dark.mp4 (4.000 s)"
    )
    np.testing.assert_allclose(res.analysis.t, [0.0, 0.52, 1.0, 1.52, 6.0, 6.52, 7.0, 7.52])
    assert res.analysis.cuts == (2.0, 4.0, 6.0)  # a failed span's boundaries are still cuts

    with pytest.raises(InputError, match=r"^clip gone: unreadable: .*missing\.mp4"):
        _run(spans, experts, 8.0, on_error="raise")
    with pytest.raises(NoSpansAnalysed, match="gone: unreadable") as info:
        _run(spans[1:3], experts, 8.0)
    assert [f.index for f in info.value.failed] == [0, 1]
    with pytest.raises(NoSpansAnalysed, match="no span could be analysed"):
        _run([], experts, 8.0)


def test_one_stabilizer_runs_across_the_spans(media, experts) -> None:  # noqa: ANN001
    spans = [
        SourceSpan(media["bright"], 1.0, 3.0, 0.0, 2.0),
        SourceSpan(media["dark"], 1.0, 3.0, 2.0, 4.0),
    ]
    events: list[tuple[str, int, int]] = []
    a = _run(spans, experts, 4.0, progress=lambda s, d, t: events.append((s, d, t))).analysis
    stable, held = stabilize(a.t, a.fused_va, a.fused_var, CFG.stabilize, CFG.sample.sample_fps)
    np.testing.assert_array_equal(a.stable_va, stable)
    np.testing.assert_array_equal(a.held, held)
    assert not a.held.any()
    # the stable value carries over the cut at 2 s: the first dark sample is pulled toward
    # dark by one EMA step (alpha 0.6 per 0.5 s, here 0.48 s) from bright, not reset to dark
    bright, dark = a.fused_va[0], a.fused_va[4]
    alpha = 1.0 - 0.4 ** (0.48 / 0.5)
    assert a.t[4] == 2.0
    np.testing.assert_allclose(a.stable_va[4], bright + alpha * (dark - bright))
    np.testing.assert_allclose(a.stable_va[4], [-0.4000, -0.8559], atol=1e-3)
    own = _source(media["dark"], experts, 1.0, 3.0).stable_va[0]  # stabilized on its own
    assert abs(own[0] - a.stable_va[4][0]) > 0.4
    # one perceive bar over both spans (4 + 4 samples expected), clips counted 0..2
    perceive = [(d, t) for s, d, t in events if s == "perceive"]
    assert perceive[-1] == (8, 8) and all(t == 8 for _, t in perceive)
    assert [d for d, _ in perceive] == sorted(d for d, _ in perceive)
    assert [(d, t) for s, d, t in events if s == "clips"] == [(0, 2), (1, 2), (2, 2)]


def test_on_error_must_be_skip_or_raise(media, experts) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="on_error"):
        _run([SourceSpan(media["bright"], 0.0, 1.0, 0.0, 1.0)], experts, 1.0, on_error="warn")
