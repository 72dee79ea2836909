"""OpenTimelineIO's own sample timelines (tests/data/otio, see SOURCES.md): read with exact
timing, scored on stand-in media relinked with --media-dir, written back to .otio with the
picture untouched and the music present."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from editor_corpus import (
    corpus_library,
    music_clips,
    picture_items,
    score_with_grammar,
    stand_in_media,
)

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit, write_timeline

DATA = Path(__file__).parent / "data" / "otio"
FILES = sorted(p.name for p in DATA.glob("*.otio"))


def _seconds(rt: dict) -> Fraction:
    return Fraction(rt["value"]) / Fraction(rt["rate"])


def _declared(path: Path) -> tuple[list[tuple[int, int]], Fraction]:
    """The main track's items as (record start, end) in frames, walked from the JSON itself:
    the first video track holding an enabled clip; each item lasts its source range (or its
    media's available range); transitions take no time of their own."""
    data = json.loads(path.read_text())
    for track in data["tracks"]["children"]:
        kids = track["children"]
        shows = [
            k
            for k in kids
            if not k["OTIO_SCHEMA"].startswith(("Gap", "Transition")) and k.get("enabled", True)
        ]
        if track.get("kind") == "Video" and track.get("enabled", True) and shows:
            break
    first = next(k for k in kids if not k["OTIO_SCHEMA"].startswith("Transition"))
    rng = first.get("source_range") or _available(first)
    fps = Fraction(rng["duration"]["rate"]).limit_denominator(1001)
    items, at = [], Fraction(0)
    for kid in kids:
        if kid["OTIO_SCHEMA"].startswith("Transition"):
            continue
        rng = kid.get("source_range") or _available(kid)
        length = _seconds(rng["duration"])
        items.append((round(at * fps), round((at + length) * fps)))
        at += length
    return items, fps


def _available(item: dict) -> dict:
    refs = item.get("media_references") or {}
    ref = refs.get(item.get("active_media_reference_key", "DEFAULT_MEDIA")) or item.get(
        "media_reference"
    )
    return ref["available_range"]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return corpus_library(tmp_path_factory.mktemp("otio-corpus-lib"))


@pytest.mark.parametrize("name", FILES)
def test_reads_with_the_timing_the_file_declares(name: str) -> None:
    timeline = read_edit(DATA / name)
    declared, _ = _declared(DATA / name)
    assert [(start, end) for _, start, end in picture_items(timeline)] == declared


@pytest.mark.parametrize("name", FILES)
def test_scores_on_relinked_stand_ins_and_writes_back(name: str, tmp_path: Path, library) -> None:  # noqa: ANN001
    timeline = read_edit(DATA / name)
    media = stand_in_media(timeline, tmp_path / "media")
    timeline = read_edit(DATA / name, media_dir=media)
    scored, report = score_with_grammar(timeline, library)
    assert not report.missing, report.missing_lines()
    music = music_clips(scored)
    assert music and len(report.cue.segments) >= 1
    for suffix in ("otio", "otioz"):
        out = write_timeline(scored, tmp_path / f"scored.{suffix}")
        back = read_edit(out)
        assert picture_items(back) == picture_items(timeline)
        assert len(music_clips(back)) == len(music)
    # the music covers the whole picture, from its first frame to its last
    rate = scored.tracks[0].duration().rate
    ends = [c.range_in_parent().end_time_exclusive().value_rescaled_to(rate) for c in music]
    assert round(max(ends)) >= picture_items(timeline)[-1][2] - 1


def test_newer_schema_that_cannot_be_taken_back_is_one_line(tmp_path: Path) -> None:
    data = json.loads((DATA / "simple_cut.otio").read_text())
    data["tracks"]["children"][0]["children"][0]["OTIO_SCHEMA"] = "Clip.9"
    edit = tmp_path / "future.otio"
    edit.write_text(json.dumps(data))
    with pytest.raises(
        InputError, match=r"newer OpenTimelineIO \(Clip\.9; this one reads Clip\.2\)"
    ):
        read_edit(edit)


def test_marker_3_colours_and_comments_survive_the_downgrade(tmp_path: Path) -> None:
    timeline = read_edit(DATA / "premiere_example.otio")
    markers = _markers(timeline)
    assert len(markers) == 4 and {m.color for m in markers} == {"RED"}
    assert {m.metadata["fcp_xml"]["comment"] for m in markers} >= {"fsfsfs", "so, this happened"}
    # Marker.3's own comment field (which Marker.2 lacks) is kept in the metadata
    data = json.loads((DATA / "premiere_example.otio").read_text())
    marker = data["tracks"]["markers"][0] if data["tracks"].get("markers") else None
    marker = marker or data["tracks"]["children"][0]["markers"][0]
    marker["comment"], marker["color"]["name"] = "check the cut", "Teal"
    edit = tmp_path / "commented.otio"
    edit.write_text(json.dumps(data))
    back = read_edit(edit)
    assert any(
        m.metadata.get("comment") == "check the cut" and m.color == "Teal" for m in _markers(back)
    )


def _markers(timeline):  # noqa: ANN001, ANN202
    items = [timeline.tracks, *timeline.tracks.find_children()]
    return [m for item in items for m in getattr(item, "markers", [])]
