"""Which track is the edit's picture: the lowest enabled video track holding a clip, V1 by
name where the tracks are numbered, whatever their order in the file."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from otio_adapter.edit_track import main_video_track

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def _track(name: str, kind: str = "Video") -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=kind)
    track.append(
        otio.schema.Clip(
            name=f"{name} clip",
            media_reference=otio.schema.ExternalReference(target_url=f"file:///m/{name}.mov"),
            source_range=TR(RT(0, 25), RT(50, 25)),
        )
    )
    return track


@pytest.mark.parametrize(
    ("order", "main"),
    [
        (["V2", "V1", "A1", "A2"], "V1"),  # Kdenlive's OTIO export: top track first
        (["V1", "V2", "A1"], "V1"),  # OTIO's own order
        (["Video 3", "Video 1", "Video 2"], "Video 1"),
        (["B-roll", "Main"], "B-roll"),  # not numbered: the file's order (bottom first)
    ],
)
def test_main_track_is_the_bottom_one(order: list[str], main: str) -> None:
    timeline = otio.schema.Timeline(
        tracks=[
            _track(n, "Audio" if n.startswith("A") and n[1:].isdigit() else "Video") for n in order
        ]
    )
    assert main_video_track(timeline).name == main


def test_an_empty_v1_is_passed_over() -> None:
    empty = otio.schema.Track(name="V1", kind="Video")
    empty.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(50, 25))))
    timeline = otio.schema.Timeline(tracks=[_track("V2"), empty])
    assert main_video_track(timeline).name == "V2"
