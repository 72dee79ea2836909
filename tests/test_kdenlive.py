"""Kdenlive in: real .kdenlive projects (19.11, 22.11, 24.07, mixes) and Kdenlive's own OTIO
export with its rate-0 media ranges, in tests/data/kdenlive.

Expected timings come from walking the project's MLT XML (playlist blanks and entries'
in/out at the profile's rate), not from the adapter."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from editor_corpus import corpus_library, picture_items, score_with_grammar, stand_in_media

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit, write_timeline
from otio_adapter.kdenlive import fix_zero_rates, mlt_frames
from otio_adapter.score import edit_rate, main_video_track
from otio_adapter.timeline import is_moodsic_music, to_frames

DATA = Path(__file__).parent / "data" / "kdenlive"
PROJECTS = [
    "kdenlive_example_v191180.kdenlive",
    "kdenlive_example_v221170.kdenlive",
    "kdenlive_example_v240770.kdenlive",
    "kdenlive_mixes_markers.kdenlive",
]
RATE0 = DATA / "test-missing-media.otio"


def _prop(el: ET.Element, name: str) -> str:
    return el.findtext(f"property[@name='{name}']") or ""


def _clock(text: str, fps: Fraction) -> int:
    """MLT's rule: a frame count, or the nearest frame to hh:mm:ss.mmm."""
    if ":" not in text:
        return int(text)
    h, m, s = (["0"] + text.split(":"))[-3:]
    return round((int(h) * 3600 + int(m) * 60 + Fraction(s)) * fps)


def expected_v1(path: Path) -> tuple[list[tuple[bool, int, int]], Fraction]:
    """(is a clip, record start, record end) of Kdenlive's V1 (the first video track of the
    main tractor) and the profile's rate."""
    root = ET.parse(path).getroot()
    byid = {el.get("id"): el for el in root.iter() if el.get("id")}
    profile = root.find("profile")
    fps = Fraction(int(profile.get("frame_rate_num")), int(profile.get("frame_rate_den")))
    main = root.find("tractor[@global_feed='1']")
    if main is None:
        main = root.findall("tractor")[-1]
        if _prop(main, "kdenlive:projectTractor") == "1":
            main = byid[main.find("track").get("producer")]
    for track in main.findall("track"):
        sub = byid.get(track.get("producer"))
        if sub is None or sub.tag != "tractor" or _prop(sub, "kdenlive:audio_track"):
            continue
        first, second = (byid[t.get("producer")] for t in sub.findall("track"))
        assert not second.findall("entry")  # V1 has no same-track mixes in these files
        out, cursor = [], 0
        for el in first:
            if el.tag == "blank":
                length = _clock(el.get("length"), fps)
                out.append((False, cursor, cursor + length))
            elif el.tag == "entry":
                length = _clock(el.get("out"), fps) - _clock(el.get("in"), fps) + 1
                out.append((True, cursor, cursor + length))
            else:
                continue
            cursor += length
        return out, fps
    raise AssertionError("no video track")


def _shape(items: list[tuple[str, int, int]]) -> list[tuple[bool, int, int]]:
    return [(name != "gap", start, end) for name, start, end in items]


@pytest.mark.parametrize("name", PROJECTS)
def test_reads_exact_v1(name: str) -> None:
    timeline = read_edit(DATA / name)
    expected, fps = expected_v1(DATA / name)
    assert _shape(picture_items(timeline)) == expected
    track = main_video_track(timeline)
    assert edit_rate(timeline, track) == fps
    assert to_frames(track.duration(), float(fps)) == expected[-1][2]


def test_media_paths_are_absolute_against_the_project_root() -> None:
    timeline = read_edit(DATA / "kdenlive_example_v221170.kdenlive")  # root="/opt/kdenlive"
    urls = {c.media_reference.target_url for c in main_video_track(timeline).find_clips()
            if isinstance(c.media_reference, otio.schema.ExternalReference)}  # fmt: skip
    assert urls == {"/opt/kdenlive/VID0001.MKV"}
    assert [c.name for c in main_video_track(timeline).find_clips()] == [
        "Dark Blue", "VID0001.MKV", "VID0001.MKV",
    ]  # fmt: skip


def test_media_next_to_a_moved_project_is_found(tmp_path: Path) -> None:
    project = tmp_path / "moved.kdenlive"
    project.write_bytes((DATA / "kdenlive_example_v221170.kdenlive").read_bytes())
    (tmp_path / "VID0001.MKV").write_bytes(b"")
    clips = main_video_track(read_edit(project)).find_clips()
    assert clips[1].media_reference.target_url == str(tmp_path / "VID0001.MKV")


def test_mlt_clock_at_ntsc_rates() -> None:
    fps = Fraction(30000, 1001)
    adapter_time = otio.adapters.from_name("kdenlive").module().time
    # MLT writes frame 107892 at 29.97 as 00:59:59.996; the adapter's own conversion sums
    # truncated minutes and rounded seconds and lands a frame early
    assert adapter_time("00:59:59.996", float(fps)).value == 107891
    assert mlt_frames("00:59:59.996", fps) == 107892
    assert mlt_frames("00:00:33.367", fps) == 1000
    assert mlt_frames("00:00:41.708", Fraction(24000, 1001)) == 1000
    assert mlt_frames("250", fps) == 250


@pytest.mark.parametrize(
    "text, words",
    [
        ("<mlt><profile frame_rate_num='25'/></mlt>", "without Kdenlive's bin"),
        ("<kdenlive/>", "not a Kdenlive project"),
        ("<mlt>", "not well-formed XML"),
    ],
)
def test_refusals_are_one_line(text: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.kdenlive"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_edit(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_kdenlive_is_read_only(tmp_path: Path) -> None:
    timeline = read_edit(DATA / PROJECTS[0])
    with pytest.raises(InputError, match="cannot write it") as err:
        write_timeline(timeline, tmp_path / "out.kdenlive")
    assert "\n" not in str(err.value) and ".mlt" in str(err.value)


# ----------------------------------------------------------------------------- rate 0 (OTIO)
@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return corpus_library(tmp_path_factory.mktemp("lib"))


def test_rate_zero_ranges_take_the_edit_rate() -> None:
    raw = json.loads(RATE0.read_text())
    media = raw["tracks"]["children"][0]["children"][0]["media_references"]["DEFAULT_MEDIA"]
    assert media["available_range"]["duration"] == {
        "OTIO_SCHEMA": "RationalTime.1", "rate": 0.0, "value": 120.0,
    }  # fmt: skip
    timeline = read_edit(RATE0)
    for clip in timeline.find_clips():
        rng = clip.media_reference.available_range
        assert (rng.start_time.rate, rng.duration.rate, rng.duration.value) == (24, 24, 120)
    assert picture_items(timeline) == [("red.png", 0, 24), ("yellow.png", 24, 48)]
    assert fix_zero_rates(timeline) == 0  # nothing left to fix


@pytest.mark.slow
def test_rate_zero_used_to_break_scoring(library: Any, tmp_path: Path) -> None:
    raw = otio.adapters.read_from_file(str(RATE0))  # as OTIO alone reads it
    media = stand_in_media(read_edit(RATE0), tmp_path / "media")
    for clip in raw.find_clips():
        clip.media_reference.target_url = str(media / clip.name)
    with pytest.raises(ValueError, match="NaN"):
        score_with_grammar(raw, library)
    assert fix_zero_rates(raw) == 2
    scored, report = score_with_grammar(raw, library)
    assert not report.missing and report.cue.segments[-1].end_frame == 48


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, missing",
    [
        ("kdenlive_example_v240770.kdenlive", 1),  # V1 opens with a colour clip
        ("kdenlive_mixes_markers.kdenlive", 0),
        ("test-missing-media.otio", 0),
    ],
)
def test_scored_project_written_back(name: str, missing: int, library: Any, tmp_path: Path) -> None:
    path = DATA / name
    media = stand_in_media(read_edit(path), tmp_path / "media")
    timeline = read_edit(path, media_dir=media)
    scored, report = score_with_grammar(timeline, library)
    assert len(report.missing) == missing
    music = [t for t in scored.tracks if is_moodsic_music(t)]
    assert music and all(c.media_reference.target_url for t in music for c in t.find_clips())
    rate = float(edit_rate(scored, main_video_track(scored)))
    frames = to_frames(timeline.duration(), rate)  # the longest track (an ambience track)
    assert max(to_frames(t.duration(), rate) for t in music) == frames
    back = read_edit(write_timeline(scored, tmp_path / "scored.otio"))
    assert picture_items(back) == picture_items(timeline)
    assert [t.name for t in back.tracks if is_moodsic_music(t)] == [t.name for t in music]
    mlt = ET.parse(write_timeline(scored, tmp_path / "scored.mlt")).getroot()
    main = mlt.find("tractor[@id='main']")
    assert [t.get("hide") for t in main.findall("track")][-2:] == ["video", "video"]
