"""A still image on an edit's timeline is scored from its picture for as long as it is shown;
on its own (no span) it is still refused as not a video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from moodsic_engine.config import Config, SampleConfig
from moodsic_engine.experts import load_experts
from moodsic_engine.pipeline import analyze_video
from moodsic_engine.video import StillImageError, sample_video
from otio_adapter.score import score_timeline_report
from otio_adapter.testing import small_library, write_video

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-image's astronaut (NASA, public domain) as a PNG, 512x512."""
    import cv2
    from skimage import data

    path = tmp_path_factory.mktemp("still") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_a_still_alone_is_not_a_video(photo: Path) -> None:
    with pytest.raises(StillImageError, match="still image .*not a video"):
        sample_video(photo)


def test_a_still_shown_for_a_span_is_its_picture_at_every_sample(photo: Path) -> None:
    sampler = sample_video(photo, SampleConfig(sample_fps=2.0), start_s=10.0, end_s=13.0)
    batches = list(sampler)
    times = np.concatenate([b.times for b in batches])
    frames = np.concatenate([b.frames for b in batches])
    np.testing.assert_allclose(times, [10.0, 10.5, 11.0, 11.5, 12.0, 12.5])
    assert frames.shape == (6, 224, 224, 3) and frames.dtype == np.uint8
    assert all(np.array_equal(f, frames[0]) for f in frames)
    assert frames[0].std() > 20  # the photo, not a blank
    assert sampler.cuts == () and sampler.end_s == 13.0
    assert not np.any(np.concatenate([b.motion for b in batches]))


def test_the_grammar_expert_sees_a_still_as_calm(photo: Path) -> None:
    config = Config().replace(experts=("grammar",))
    a = analyze_video(photo, load_experts(config), config, start_s=0.0, end_s=4.0)
    assert len(a.t) == 8
    grammar = a.series[0]
    assert np.ptp(grammar.v) < 1e-9 and np.ptp(grammar.a) < 1e-9  # one picture, one reading
    assert a.cuts == ()


def test_a_still_between_two_shots_is_scored_for_its_span(photo: Path, tmp_path: Path) -> None:
    shot = write_video(tmp_path / "shot.mp4", 3, colour="0x202020", size="160x90").resolve()
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for name, url, start, frames in (
        ("shot", shot, 0, 50),
        ("photo", photo, 0, 75),  # three seconds of the astronaut at 25 fps
        ("shot", shot, 10, 50),
    ):
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=otio.schema.ExternalReference(target_url=url.as_uri()),
                source_range=TR(RT(start, 25), RT(frames, 25)),
            )
        )
    timeline = otio.schema.Timeline(tracks=[track])
    library = small_library(tmp_path / "lib", per_quadrant=1, seconds=10.0)
    config = Config().replace(experts=("grammar",), **{"segment.min_segment_s": 1.0})
    _, report = score_timeline_report(timeline, library, config)
    assert not report.missing
    t = np.array([s.t for s in report.cue.samples])
    photo_t = t[(t >= 2.0) & (t < 5.0)]
    np.testing.assert_allclose(photo_t, [2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
