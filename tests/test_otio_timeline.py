"""Cue sheet <-> OTIO Timeline: structure, round trips, NLE formats, rates over long timelines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import CueSheetError
from otio_adapter.testing import make_cue
from otio_adapter.timeline import (
    cue_to_timeline,
    fps_from_rate,
    music_track_timeline,
    place_segments,
    timeline_to_cue,
    to_frames,
    url_path,
)

RATES = [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25)]


def _bin(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    return found


def _music_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    clips = []
    for track in timeline.tracks:
        if track.kind == otio.schema.TrackKind.Audio:
            clips.extend(track.find_clips(shallow_search=True))
    return sorted(clips, key=lambda c: c.range_in_parent().start_time.value)


def _rec(item: otio.core.Item, rate: float) -> tuple[int, int]:
    rng = item.range_in_parent()
    return to_frames(rng.start_time, rate), to_frames(rng.end_time_exclusive(), rate)


# ------------------------------------------------------------------------------ the plugin
def test_plugin_is_registered_and_documented() -> None:
    assert "moodsic" in otio.adapters.available_adapter_names()
    adapter = otio.adapters.from_name("moodsic")
    assert adapter.module().__doc__  # otiopluginfo needs module docstrings
    assert otio.adapters.from_filepath("x.moodsic.json").name == "moodsic"
    out = subprocess.run([_bin("otiopluginfo")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    block = out.stdout.split("moodsic", 1)[1][:600]
    assert "read_from_file" in block and "ERROR" not in block


def test_otioconvert_cue_to_otio_and_back(tmp_path: Path) -> None:
    cue = make_cue(tmp_path)
    src = cue.to_json(tmp_path / "clip.moodsic.json")
    before = src.read_bytes()
    subprocess.run(
        [_bin("otioconvert"), "-i", str(src), "-o", str(tmp_path / "clip.otio")],
        check=True,
        timeout=120,
    )
    subprocess.run(
        [
            _bin("otioconvert"),
            "-i",
            str(tmp_path / "clip.otio"),
            "-o",
            str(tmp_path / "back.moodsic.json"),
        ],
        check=True,
        timeout=120,
    )
    assert src.read_bytes() == before
    back = CueSheet.from_json(tmp_path / "back.moodsic.json")
    # read back, paths mean what they mean to this process (the cue's relative ones joined
    # to its folder), as they do for the original read from its file
    assert back.to_dict() == CueSheet.from_json(src).to_dict()
    assert back.to_json_text(tmp_path) == cue.to_json_text(tmp_path)
    tl = otio.adapters.read_from_file(str(tmp_path / "clip.otio"))
    # relative track paths were resolved against the cue sheet's folder, as file:// URLs
    urls = [c.media_reference.target_url for c in _music_clips(tl)]
    assert urls and all(u.startswith("file:///") and Path(url_path(u)).is_file() for u in urls)


# ------------------------------------------------------------------------------ structure
def test_timeline_structure_alternate(tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    cue = make_cue(tmp_path, fps=fps, crossfade_s=2.0)
    tl = cue_to_timeline(cue, base_dir=tmp_path)
    rate = 30000 / 1001
    video, music_a, music_b = tl.tracks
    assert video.kind == "Video" and music_a.kind == music_b.kind == "Audio"
    (vclip,) = video.find_clips()
    assert vclip.source_range.duration.rate == rate
    assert fps_from_rate(vclip.source_range.duration.rate) == fps
    assert vclip.media_reference.available_range.duration.value == cue.video.frames
    assert to_frames(tl.duration(), rate) == cue.video.frames

    clips = _music_clips(tl)
    assert len(clips) == len(cue.segments)
    places = place_segments(cue.segments, fps, 2.0)
    half = round(fps)  # one second of frames: half the crossfade
    for i, (clip, seg, p) in enumerate(zip(clips, cue.segments, places, strict=True)):
        assert clip.parent() is (music_a if i % 2 == 0 else music_b)
        start, end = _rec(clip, rate)
        # overlap: the clip starts `head` early and ends `tail` late
        assert (start, end) == (seg.start_frame - p.head, seg.end_frame + p.tail)
        assert p.head == (0 if i == 0 else half) and p.tail == (0 if i == len(clips) - 1 else half)
        # the file plays from in_s at the segment start
        src_at_start = to_frames(clip.source_range.start_time, rate) + (seg.start_frame - start)
        assert src_at_start == round(Fraction(seg.track.in_s) * fps)
        assert clip.media_reference.target_url == (tmp_path / seg.track.path).as_uri()
    transitions = [
        t for tr in (music_a, music_b) for t in tr if isinstance(t, otio.schema.Transition)
    ]
    assert transitions and all(t.transition_type == "SMPTE_Dissolve" for t in transitions)
    # each boundary: a fade-out on one track, a fade-in on the other, both 2 s long
    assert len(transitions) == 2 * (len(cue.segments) - 1)
    assert {to_frames(t.in_offset + t.out_offset, rate) for t in transitions} == {2 * half}

    markers = list(tl.tracks.markers)
    assert [to_frames(m.marked_range.start_time, rate) for m in markers] == [
        s.start_frame for s in cue.segments
    ]
    for m, seg in zip(markers, cue.segments, strict=True):
        meta = m.metadata["moodsic"]
        assert (meta["mood"], meta["label"], meta["track_id"]) == (
            seg.mood,
            seg.mood_label,
            seg.track.id,
        )
        assert (meta["valence"], meta["arousal"], meta["confidence"]) == (
            seg.valence,
            seg.arousal,
            seg.confidence,
        )


def test_single_layout_dissolves_at_boundaries(tmp_path: Path) -> None:
    cue = make_cue(tmp_path, in_s=[0.0, 0.4, 5.0, 5.0], crossfade_s=2.0)
    tl = cue_to_timeline(cue, layout="single", base_dir=tmp_path)
    (music,) = [t for t in tl.tracks if t.kind == "Audio"]
    clips = list(music.find_clips())
    assert [_rec(c, 25.0) for c in clips] == [(s.start_frame, s.end_frame) for s in cue.segments]
    dissolves = [t for t in music if isinstance(t, otio.schema.Transition)]
    # in_offset is the incoming file's handle. The in point 0.4 s leaves no room for the
    # 1 s lead, so the plan (as the mixdown) starts that track at 1.0 s: a full 25-frame handle.
    assert [(t.in_offset.value, t.out_offset.value) for t in dissolves] == [
        (25, 25),
        (25, 25),
        (25, 25),
    ]
    assert to_frames(clips[1].source_range.start_time, 25.0) == 25
    assert all(len(c.markers) == 1 for c in clips)


def test_short_segments_never_overlap_crossfades(tmp_path: Path) -> None:
    cue = make_cue(
        tmp_path, boundaries_s=(0.0, 5.0, 5.6, 6.0, 12.0), in_s=[9.0] * 5, crossfade_s=4.0
    )
    for layout in ("single", "alternate"):
        tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
        for track in tl.tracks:
            ends = [_rec(i, 25.0) for i in track if not isinstance(i, otio.schema.Transition)]
            assert all(a[1] == b[0] for a, b in zip(ends, ends[1:], strict=False))  # no overlap
        assert timeline_to_cue(tl).to_dict() == cue.to_dict()


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("layout", ["alternate", "single"])
def test_round_trip_otio_json_and_otioz_bit_exact(tmp_path: Path, layout: str) -> None:
    cue = make_cue(tmp_path, fps=Fraction(24000, 1001))
    tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
    assert timeline_to_cue(tl).to_dict() == cue.to_dict()

    path = tmp_path / "t.otio"
    otio.adapters.write_to_file(tl, str(path))
    again = otio.adapters.read_from_file(str(path))
    assert otio.adapters.write_to_string(again, "otio_json") == otio.adapters.write_to_string(
        tl, "otio_json"
    )
    assert timeline_to_cue(again).to_dict() == cue.to_dict()

    bundle = tmp_path / "t.otioz"
    policy = otio.adapters.file_bundle_utils.MediaReferencePolicy.MissingIfNotFile
    otio.adapters.write_to_file(tl, str(bundle), media_policy=policy)  # the video is not on disk
    out = tmp_path / "unz"
    out.mkdir()
    unz = otio.adapters.read_from_file(str(bundle), extract_to_directory=str(out))
    assert sorted(p.name for p in (out / "media").iterdir()) == sorted(
        s.track.path for s in cue.segments
    )

    def timing(t: otio.schema.Timeline) -> list[tuple]:
        return [
            (
                type(i).__name__,
                i.range_in_parent() if not isinstance(i, otio.schema.Transition) else None,
                getattr(i, "source_range", None),
                getattr(i, "in_offset", None),
                getattr(i, "out_offset", None),
            )
            for tr in t.tracks
            for i in tr
        ] + [m.marked_range for m in t.tracks.markers]

    assert timing(unz) == timing(tl)  # RationalTime equality: value and rate, bit for bit
    back = timeline_to_cue(unz)
    assert [s.track.path for s in back.segments] == [f"media/{s.track.path}" for s in cue.segments]
    assert [(s.start_frame, s.end_frame, s.track.in_s) for s in back.segments] == [
        (s.start_frame, s.end_frame, s.track.in_s) for s in cue.segments
    ]


def test_editor_changes_are_written_back(tmp_path: Path) -> None:
    cue = make_cue(tmp_path)
    tl = cue_to_timeline(cue, layout="single", base_dir=tmp_path)
    # the editor drags the second mood marker 10 frames later and slips the third clip 1 s
    tl.tracks.markers[1].marked_range = otio.opentime.TimeRange(
        otio.opentime.RationalTime(cue.segments[1].start_frame + 10, 25),
        otio.opentime.RationalTime(0, 25),
    )
    clip = _music_clips(tl)[2]
    rng = clip.source_range
    clip.source_range = otio.opentime.TimeRange(
        rng.start_time + otio.opentime.RationalTime(25, 25), rng.duration
    )
    clip.media_reference.target_url = "/elsewhere/relinked.wav"
    back = timeline_to_cue(tl)
    assert back.segments[1].start_frame == cue.segments[1].start_frame + 10
    assert back.segments[0].end_frame == back.segments[1].start_frame
    assert back.segments[1].start_s == pytest.approx((cue.segments[1].start_frame + 10) / 25)
    assert back.segments[2].track.in_s == pytest.approx(cue.segments[2].track.in_s + 1.0)
    assert back.segments[2].track.path == "/elsewhere/relinked.wav"
    assert back.segments[3] == cue.segments[3]


def test_fcpxml_round_trip_keeps_clips_record_times_and_markers(tmp_path: Path) -> None:
    # otio-fcpx-xml-adapter 1.0 looks rates up in a table keyed by int(rate) or 29.97/23.98
    # literally, so it cannot write the exact 30000/1001 rate: integer rates only.
    cue = make_cue(tmp_path, fps=Fraction(25), boundaries_s=(0.0, 7.3, 15.1, 21.9))
    rate = 25.0
    for layout in ("single", "alternate"):
        tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
        path = tmp_path / f"{layout}.fcpxml"
        otio.adapters.write_to_file(tl, str(path))
        back = otio.adapters.read_from_file(str(path))
        clips = _music_clips(back)
        want = _music_clips(tl)
        assert len(clips) == len(cue.segments)
        got, exp = [_rec(c, rate) for c in clips], [_rec(c, rate) for c in want]
        assert [g[0] for g in got] == [e[0] for e in exp]  # record in: exact
        # record out: the file holds the exact rational duration, but the adapter's reader
        # truncates float(num/den)*fps (207/25 s -> 206.99999 -> 206), so allow that frame
        text = path.read_text()
        for e in exp:
            d = Fraction(e[1] - e[0], 25)
            assert (
                f'duration="{d.numerator}/{d.denominator}s"' in text or f'duration="{d}s"' in text
            )
        assert all(0 <= e[1] - g[1] <= 1 for g, e in zip(got, exp, strict=True))
        # mood markers survive on the music clips (FCPXML drops metadata, not positions)
        positions = []
        for c in clips:
            (m,) = c.markers
            rec0, _ = _rec(c, rate)
            positions.append(
                rec0
                + to_frames(m.marked_range.start_time, rate)
                - to_frames(c.source_range.start_time, rate)
            )
        assert positions == [s.start_frame for s in cue.segments]
        assert [c.markers[0].name for c in clips] == [s.mood_label for s in cue.segments]


@pytest.mark.parametrize("fps", RATES, ids=["23.976", "29.97", "25"])
def test_edl_of_music_track_keeps_record_times_and_markers(tmp_path: Path, fps: Fraction) -> None:
    rate = fps.numerator / fps.denominator
    cue = make_cue(tmp_path, fps=fps, boundaries_s=(0.0, 7.3, 15.1, 21.9), in_s=[3, 4, 5, 6])
    # hard cuts: every music clip's record in/out is the segment's, to the frame
    tl = cue_to_timeline(cue, layout="single", crossfade_s=0.0, base_dir=tmp_path)
    edl = tmp_path / "music.edl"
    otio.adapters.write_to_file(music_track_timeline(tl), str(edl))
    back = otio.adapters.read_from_file(str(edl), rate=rate)
    clips = list(back.tracks[0].find_clips())
    assert len(clips) == len(cue.segments)
    assert [_rec(c, rate) for c in clips] == [(s.start_frame, s.end_frame) for s in cue.segments]
    # a LOC comment at each mood change, in source timecode (drop-frame ';' at 29.97, which
    # the adapter's reader skips: so read the positions from the text as well)
    locs = re.findall(r"^\* LOC: (\d\d:\d\d:\d\d[:;]\d\d) \w+\s+(.*)$", edl.read_text(), re.M)
    assert len(locs) == len(cue.segments)
    for c, seg, (tc, label) in zip(clips, cue.segments, locs, strict=True):
        src_in = to_frames(c.source_range.start_time, rate)
        assert src_in == round(Fraction(seg.track.in_s) * fps)
        at = _rec(c, rate)[0] + to_frames(otio.opentime.from_timecode(tc, rate), rate) - src_in
        assert at == seg.start_frame and label == seg.mood_label.upper()
        if ";" not in tc:
            (m,) = c.markers
            assert (
                _rec(c, rate)[0] + to_frames(m.marked_range.start_time, rate) - src_in
                == seg.start_frame
            )

    # dissolves: CMX 3600 starts the incoming event at the dissolve's start, so the cut
    # point (record in + the incoming handle) still lands on the boundary
    tl = cue_to_timeline(cue, layout="single", crossfade_s=1.0, base_dir=tmp_path)
    places = place_segments(cue.segments, fps, 1.0)
    edl = tmp_path / "dissolve.edl"
    otio.adapters.write_to_file(music_track_timeline(tl), str(edl))
    text = edl.read_text()
    assert text.count(" D ") == len(cue.segments) - 1
    back = otio.adapters.read_from_file(str(edl), rate=rate)
    clips = list(back.tracks[0].find_clips())
    assert len(clips) == len(cue.segments)
    for c, seg, p in zip(clips, cue.segments, places, strict=True):
        assert _rec(c, rate)[0] + p.head == seg.start_frame


def test_music_track_timeline_refuses_missing_track(tmp_path: Path) -> None:
    tl = cue_to_timeline(make_cue(tmp_path), layout="single", base_dir=tmp_path)
    with pytest.raises(CueSheetError, match="no track 1"):
        music_track_timeline(tl, 1)


# ------------------------------------------------------------------------------ MLT + melt
def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))


@pytest.mark.skipif(shutil.which("melt") is None, reason="melt (MLT) is not installed")
def test_mlt_export_renders_with_melt_and_switches_tracks(tmp_path: Path) -> None:
    import soundfile

    cue = make_cue(tmp_path, boundaries_s=(0.0, 5.0, 10.0), duration_s=15.0, in_s=[3.0, 2.0, 4.0])
    tl = cue_to_timeline(cue, layout="single", base_dir=tmp_path)
    mlt = tmp_path / "music.mlt"
    otio.adapters.write_to_file(music_track_timeline(tl, kind="Audio"), str(mlt))
    wav = tmp_path / "render.wav"
    subprocess.run(
        ["melt", "-quiet", str(mlt), "-consumer", f"avformat:{wav}", "ar=48000", "ac=1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    y, sr = soundfile.read(str(wav), always_2d=True)
    y = y[:, 0]
    assert sr == 48000 and abs(len(y) / sr - 15.0) < 0.1
    sources = [soundfile.read(str(tmp_path / s.track.path))[0] for s in cue.segments]
    win = int(0.25 * sr)
    for i, seg in enumerate(cue.segments):
        # inside the segment, away from the crossfades: loud, and the right file at the right place
        for t in np.arange(seg.start_s + 1.2, seg.end_s - 1.2, 0.5):
            a = int(t * sr)
            chunk = y[a : a + win]
            assert np.sqrt(np.mean(chunk**2)) > 0.05
            s0 = int((seg.track.in_s + t - seg.start_s) * sr)
            scores = []
            for j, src in enumerate(sources):
                off = (
                    int((cue.segments[j].track.in_s + t - cue.segments[j].start_s) * sr)
                    if j != i
                    else s0
                )
                scores.append(_corr(chunk, src[off : off + win]))
            assert scores[i] > 0.9, (i, t, scores)
            assert max(s for j, s in enumerate(scores) if j != i) < 0.5
    # the switch: the new file comes in where the dissolve starts (boundary - head) and the
    # old one leaves where it ends (boundary + tail); melt's "mix" holds both meanwhile
    places = place_segments(cue.segments, Fraction(25), 2.0)

    def level(freq: float, t0: float, t1: float) -> np.ndarray:
        n = int(0.04 * sr)
        starts = np.arange(int(t0 * sr), int(t1 * sr), int(0.01 * sr))
        k = np.arange(n) / sr
        basis = np.exp(-2j * np.pi * freq * k)
        return np.array([2 * abs(np.dot(y[a : a + n], basis)) / n for a in starts]), (
            starts + n / 2
        ) / sr

    for i in range(1, len(cue.segments)):
        b = cue.segments[i].start_s
        new_lvl, times = level(220.0 * 1.5**i, b - 2.0, b + 2.0)
        old_lvl, _ = level(220.0 * 1.5 ** (i - 1), b - 2.0, b + 2.0)
        onset = times[np.argmax(new_lvl > 0.1)]
        offset = times[len(old_lvl) - 1 - np.argmax(old_lvl[::-1] > 0.1)]
        assert abs(onset - (b - places[i].head / 25)) <= 2 / 25, (i, onset)
        assert abs(offset - (b + places[i - 1].tail / 25)) <= 2 / 25, (i, offset)


# ------------------------------------------------------------------------------ rates
@pytest.mark.parametrize("fps", RATES, ids=["23.976", "29.97", "25"])
def test_one_hour_timeline_no_boundary_drifts(tmp_path: Path, fps: Fraction) -> None:
    rate = fps.numerator / fps.denominator
    rng = np.random.default_rng(7)
    bounds = np.concatenate([[0.0], np.sort(rng.uniform(5, 3595, 150))])
    bounds = bounds[np.concatenate([[True], np.diff(bounds) > 3.0])]
    cue = make_cue(
        tmp_path,
        fps=fps,
        boundaries_s=bounds.tolist(),
        duration_s=3600.0,
        # in points of at least the crossfade's 1 s lead: the plan (as the mixdown) moves
        # earlier ones to 1 s, which the round trip below would then report as slipped
        in_s=np.maximum(rng.uniform(0, 20, len(bounds)).round(3), 1.0).tolist(),
        track_seconds=3600.0,
        write_audio=False,
    )
    half_frame = 0.5 / float(fps)
    for layout in ("alternate", "single"):
        tl = cue_to_timeline(cue, layout=layout)
        tl = otio.adapters.read_from_string(
            otio.adapters.write_to_string(tl, "otio_json"), "otio_json"
        )
        assert abs(tl.duration().to_seconds() - 3600.0) <= half_frame
        for m, b in zip(tl.tracks.markers, bounds, strict=True):
            assert abs(m.marked_range.start_time.to_seconds() - b) <= half_frame
        starts = sorted(
            c.range_in_parent().start_time.to_seconds()
            + (c.markers[0].marked_range.start_time - c.source_range.start_time).to_seconds()
            for c in _music_clips(tl)
        )
        assert max(abs(s - b) for s, b in zip(starts, bounds, strict=True)) <= half_frame
        assert timeline_to_cue(tl).to_dict() == cue.to_dict()
    # and through a CMX 3600 EDL (timecode): every cut within half a frame
    tl = cue_to_timeline(cue, layout="single", crossfade_s=0.0)
    edl = tmp_path / "hour.edl"
    otio.adapters.write_to_file(music_track_timeline(tl), str(edl))
    back = otio.adapters.read_from_file(str(edl), rate=rate)
    clips = list(back.tracks[0].find_clips())
    assert len(clips) == len(bounds)
    assert (
        max(
            abs(c.range_in_parent().start_time.to_seconds() - b)
            for c, b in zip(clips, bounds, strict=True)
        )
        <= half_frame
    )


# ------------------------------------------------------------------------------ bad input
def test_bad_cue_sheets_are_refused_clearly(tmp_path: Path) -> None:
    good = make_cue(tmp_path).to_dict()
    cases = {
        "wrong_schema.moodsic.json": {**good, "schema": "moodsic.cue/2"},
        "no_segments.moodsic.json": {**good, "segments": []},
        "a_list.moodsic.json": [1, 2],
        "other_json.moodsic.json": {"name": "a package.json, say"},
    }
    for name, data in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "broken.moodsic.json").write_text("{not json")
    messages = {}
    for name in [*cases, "broken.moodsic.json"]:
        with pytest.raises(CueSheetError) as err:
            otio.adapters.read_from_file(str(tmp_path / name))
        messages[name] = str(err.value)
        assert "\n" not in messages[name]
    assert "unsupported schema 'moodsic.cue/2'" in messages["wrong_schema.moodsic.json"]
    assert "not a moodsic cue sheet" in messages["other_json.moodsic.json"]
    assert "not valid JSON" in messages["broken.moodsic.json"]
    with pytest.raises(CueSheetError, match="layout"):
        otio.adapters.read_from_file(
            str(make_cue(tmp_path).to_json(tmp_path / "c.moodsic.json")), layout="x"
        )


def test_timeline_without_moodsic_markers_is_not_a_cue_sheet(tmp_path: Path) -> None:
    tl = otio.schema.Timeline(name="edit")
    with pytest.raises(CueSheetError, match="no video track"):
        timeline_to_cue(tl)
    track = otio.schema.Track(kind="Video")
    track.append(
        otio.schema.Clip(
            name="a",
            media_reference=otio.schema.ExternalReference(target_url="/x/a.mov"),
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, 25), otio.opentime.RationalTime(50, 25)
            ),
        )
    )
    tl.tracks.append(track)
    with pytest.raises(CueSheetError, match="no Moodsic mood markers"):
        otio.adapters.write_to_file(tl, str(tmp_path / "x.moodsic.json"))
    assert not (tmp_path / "x.moodsic.json").exists()


def test_edl_of_alternate_layout_tracks(tmp_path: Path) -> None:
    cue = make_cue(tmp_path, boundaries_s=(0.0, 6.0, 12.0, 18.0), duration_s=24.0)
    tl = cue_to_timeline(cue, base_dir=tmp_path)  # alternate: fades against gaps
    for k, want in ((0, [0, 2]), (1, [1, 3])):
        edl = tmp_path / f"music{k}.edl"
        otio.adapters.write_to_file(music_track_timeline(tl, k), str(edl))
        clips = list(otio.adapters.read_from_file(str(edl), rate=25).tracks[0].find_clips())
        assert [c.name for c in clips] == [f"Tone {i}" for i in want]
        assert [to_frames(c.source_range.duration, 25) for c in clips] == [
            cue.segments[i].end_frame
            - cue.segments[i].start_frame
            + (25 if i else 0)
            + (25 if i < 3 else 0)
            for i in want
        ]


def test_segment_without_music_is_a_gap(tmp_path: Path) -> None:
    data = make_cue(tmp_path).to_dict()
    data["segments"][1]["track"] = None
    cue = CueSheet.from_dict(data)
    for layout in ("alternate", "single"):
        tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
        clips = _music_clips(tl)
        assert [c.name for c in clips] == ["Tone 0", "Tone 2", "Tone 3"]
        assert all(_rec(c, 25.0)[0] >= cue.segments[2].start_frame - 25 for c in clips[1:])
        # The plan (as the mixdown) fades the track out over the crossfade into the silent
        # segment; the single track cuts it at the boundary (a clip cannot overlap a gap).
        tail = 25 if layout == "alternate" else 0
        assert _rec(clips[0], 25.0)[1] == cue.segments[0].end_frame + tail
        assert timeline_to_cue(tl).to_dict() == cue.to_dict()


def test_track_without_a_file_is_a_placeholder_clip(tmp_path: Path) -> None:
    """A metadata-only library (tracks with no file) gives no plan pieces; each segment still
    shows its choice as one clip over the segment (with the crossfade handles in the
    alternate layout), named after the track, for the editor to relink."""
    data = make_cue(tmp_path, write_audio=False).to_dict()
    for seg in data["segments"]:
        seg["track"]["path"] = ""
        seg["track"]["duration_s"] = None
    cue = CueSheet.from_dict(data)
    for layout in ("alternate", "single"):
        tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
        clips = _music_clips(tl)
        assert [c.name for c in clips] == ["Tone 0", "Tone 1", "Tone 2", "Tone 3"]
        for clip, seg in zip(clips, cue.segments, strict=True):
            a, b = _rec(clip, 25.0)
            assert a <= seg.start_frame and b >= seg.end_frame
            if layout == "single":
                assert (a, b) == (seg.start_frame, seg.end_frame)


@pytest.mark.slow
def test_wheel_ships_the_plugin(tmp_path: Path) -> None:
    """A built wheel carries the manifest and the entry point: OTIO finds the adapter there."""
    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("moodsic_engine", "otio_adapter"):
        shutil.copytree(repo / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (repo / name).exists():
            shutil.copy(repo / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "w")],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (tmp_path / "w").glob("moodsic-*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    cue = make_cue(tmp_path / "cue").to_json(tmp_path / "cue" / "clip.moodsic.json")
    probe = (
        "import sys, opentimelineio as otio\n"
        "assert 'moodsic' in otio.adapters.available_adapter_names()\n"
        "print(otio.adapters.from_name('moodsic').module().__file__)\n"
        f"tl = otio.adapters.read_from_file({str(cue)!r})\n"
        "print(len(tl.tracks), len(tl.tracks.markers))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the repo: the package must come from the wheel
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    where, counts = out.stdout.split()[0], out.stdout.split()[1:]
    assert Path(where).is_relative_to(target)
    assert counts == ["3", "4"]


def test_short_tracks_loop_without_passing_the_media_end(tmp_path: Path) -> None:
    # 10 s tracks under 12-26 s segments: the file plays again from its start, as in the mix
    cue = make_cue(
        tmp_path,
        boundaries_s=(0.0, 26.0, 38.0),
        duration_s=60.0,
        track_seconds=10.0,
        in_s=[4, 2, 6],
    )
    for layout in ("single", "alternate"):
        tl = cue_to_timeline(cue, layout=layout, base_dir=tmp_path)
        clips = _music_clips(tl)
        for c in clips:
            avail = c.media_reference.available_range
            assert c.source_range.start_time.value >= 0
            assert c.source_range.end_time_exclusive().value <= avail.end_time_exclusive().value
        per_seg = [[c for c in clips if c.metadata["moodsic"]["segment"] == i] for i in range(3)]
        # segment 0: 6 s from 4 s, then 10 s + 10 s (+ the crossfade tail in "alternate")
        assert [to_frames(c.source_range.start_time, 25) for c in per_seg[0]][:3] == [100, 0, 0]
        for i, pieces in enumerate(per_seg):
            first, last = _rec(pieces[0], 25.0)[0], _rec(pieces[-1], 25.0)[1]
            seg = cue.segments[i]
            p = place_segments(cue.segments, Fraction(25), 2.0, base_dir=tmp_path)[i]
            extra = (p.head, p.tail) if layout == "alternate" else (0, 0)
            assert (first, last) == (seg.start_frame - extra[0], seg.end_frame + extra[1])
            assert all(
                _rec(a, 25.0)[1] == _rec(b, 25.0)[0]
                for a, b in zip(pieces, pieces[1:], strict=False)
            )
            assert sum(len(c.markers) for c in pieces) == 1
        assert timeline_to_cue(tl).to_dict() == cue.to_dict()
    edl = tmp_path / "loops.edl"
    otio.adapters.write_to_file(
        music_track_timeline(
            cue_to_timeline(cue, layout="single", crossfade_s=0, base_dir=tmp_path)
        ),
        str(edl),
    )
    read = otio.adapters.read_from_file(str(edl), rate=25)
    back = list(read.tracks[0].find_clips())
    assert len(back) == len(
        _music_clips(cue_to_timeline(cue, layout="single", crossfade_s=0, base_dir=tmp_path))
    )
    assert to_frames(back[-1].range_in_parent().end_time_exclusive(), 25) == cue.video.frames


def test_otioconvert_music_edl(tmp_path: Path) -> None:
    cue = make_cue(tmp_path, in_s=[3, 4, 5, 6])
    src = cue.to_json(tmp_path / "clip.moodsic.json")
    edl = tmp_path / "music.edl"
    args = ["-a", "layout=single", "-a", "music_edl=1", "-a", "crossfade_s=0"]
    subprocess.run(
        [_bin("otioconvert"), "-i", str(src), *args, "-o", str(edl)], check=True, timeout=120
    )
    clips = list(otio.adapters.read_from_file(str(edl), rate=25).tracks[0].find_clips())
    assert [c.name for c in clips] == [s.track.title for s in cue.segments]
    assert edl.read_text().count("* LOC:") == len(cue.segments)
