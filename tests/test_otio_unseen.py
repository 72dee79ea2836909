"""score-timeline on edits the first tests never tried: bundles, URLs editors really write,
odd track layouts, rates the FCPXML adapter mangles, outputs that would lose the score."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from otio_adapter import read_edit, score_timeline_report
from otio_adapter.testing import make_edit, small_library, write_video

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("unseen")
    return {
        "root": root,
        "a": write_video(root / "a.mp4", 3, size="160x90").resolve(),  # 75 frames
        "b": write_video(root / "b.mp4", 3, colour="0x081030", size="160x90").resolve(),
        "lib": small_library(root / "lib", per_quadrant=1, seconds=10.0),
    }


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config().replace(experts=("grammar",), **{"segment.min_segment_s": 1.0})


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float]]:
    import moodsic_engine.pipeline as pipeline

    calls: list[tuple[str, float, float]] = []
    real = pipeline.analyze_video

    def spy(path, experts, config, *, start_s=0.0, end_s=None, progress=None):  # noqa: ANN001, ANN202
        calls.append((Path(path).name, start_s, end_s))
        return real(path, experts, config, start_s=start_s, end_s=end_s)

    monkeypatch.setattr(pipeline, "analyze_video", spy)
    return calls


@pytest.mark.parametrize("suffix", ["otioz", "otiod"])
def test_bundle_edit_scores_the_media_inside_it(media, cfg, tmp_path, suffix) -> None:  # noqa: ANN001
    # otioz/otiod bundles rewrite references to "media/a.mp4", relative to the bundle
    edit = make_edit([(media["a"], 10, 40, 75), (media["b"], 5, 30, 75)])
    bundle = tmp_path / f"edit.{suffix}"
    otio.adapters.write_to_file(edit, str(bundle))
    timeline = read_edit(bundle)
    urls = [c.media_reference.target_url for c in timeline.find_clips()]
    assert urls == ["media/a.mp4", "media/b.mp4"]
    scored, report = score_timeline_report(timeline, media["lib"], cfg, base_dir=tmp_path)
    assert report.missing == ()
    assert report.cue.summary["edit"]["scored"] == ["a.mp4", "b.mp4"]
    assert report.cue.video.frames == 70 and report.cue.cuts == (1.6,)
    # the copy keeps the bundle's own references; nothing extracted is left behind
    assert [c.media_reference.target_url for c in scored.tracks[0].find_clips()] == urls
    assert list(tmp_path.iterdir()) == [bundle]


def test_media_urls_as_editors_write_them(media, cfg, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    odd = tmp_path / "take 1 é%20#2.mp4"  # literal '%20' and '#' in the file name
    shutil.copy(media["a"], odd)
    plain = tmp_path / "day two.mp4"
    shutil.copy(media["b"], plain)
    calls = _spy(monkeypatch)
    edit = make_edit(
        [
            ("file://" + str(odd), 0, 25),  # unencoded path after file://
            (odd.as_uri(), 25, 25),  # RFC 8089: percent-encoded
            ("file://localhost" + plain.as_uri()[len("file://") :], 0, 25),
            ("day%20two.mp4", 25, 25),  # relative and percent-encoded
        ]
    )
    _, report = score_timeline_report(edit, media["lib"], cfg, base_dir=tmp_path)
    assert report.missing == ()
    assert [c[0] for c in calls] == [odd.name, odd.name, plain.name, plain.name]
    assert [c[1] for c in calls] == [0.0, 1.0, 0.0, 1.0]


def test_edl_output_keeps_the_audio_track(media, tmp_path) -> None:  # noqa: ANN001
    from otio_adapter import write_timeline

    edit = make_edit([(media["a"], 0, 50, 75), (media["b"], 0, 25, 75)])
    music = otio.schema.Track(name="Music A", kind=otio.schema.TrackKind.Audio)
    music.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(10, 25))))
    edit.tracks.append(music)
    # a track of gaps loses nothing: written
    write_timeline(edit, tmp_path / "pic.edl")
    assert len(read_edit(tmp_path / "pic.edl", rate=25).tracks[0].find_clips()) == 2
    music.append(
        otio.schema.Clip(
            name="tone",
            media_reference=otio.schema.ExternalReference(target_url=str(media["a"])),
            source_range=TR(RT(0, 25), RT(40, 25)),
        )
    )
    # an audio track with clips is written as audio events (A), nothing refused
    write_timeline(edit, tmp_path / "scored.edl")
    back = read_edit(tmp_path / "scored.edl", rate=25)
    audio = next(t for t in back.tracks if t.name == "A1")
    assert [(c.name, c.range_in_parent().start_time.value, c.duration().value)
            for c in audio.find_clips()] == [("tone", 10, 40)]  # fmt: skip


def test_main_track_is_the_first_video_track_with_clips(media, cfg, monkeypatch) -> None:  # noqa: ANN001
    calls = _spy(monkeypatch)
    edit = make_edit([(media["a"], 5, 30, 75), (media["b"], 0, 20, 75)])
    edit.tracks.insert(0, otio.schema.Track(name="V0", kind=otio.schema.TrackKind.Video))
    gaps = otio.schema.Track(name="V0b", kind=otio.schema.TrackKind.Video)
    gaps.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(90, 25))))
    edit.tracks.insert(1, gaps)
    dialogue = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    dialogue.append(edit.tracks[2][0].clone())
    edit.tracks.insert(0, dialogue)
    top = make_edit([(media["b"], 0, 50, 75)]).tracks[0].clone()
    top.name = "V2 titles"
    edit.tracks.append(top)
    scored, report = score_timeline_report(edit, media["lib"], cfg)
    assert calls == [("a.mp4", 0.2, 1.4), ("b.mp4", 0.0, 0.8)]
    # the picture ends at 2 s; the gap track keeps the edit running to 3.6 s
    assert report.cue.cuts == (1.2, 2.0) and report.cue.video.frames == 90
    assert [t.name for t in scored.tracks] == ["A1", "V0", "V0b", "V1", "V2 titles"] + [
        "Music A",
        "Music B",
    ]

    empty = make_edit([(None, 0, 25)])
    empty.tracks.insert(0, otio.schema.Track(name="V0", kind=otio.schema.TrackKind.Video))
    with pytest.raises(InputError, match="the main video track has no clips"):
        score_timeline_report(empty, media["lib"], cfg)


NTSC = [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25)]


@pytest.mark.parametrize("fps", NTSC, ids=["23.976", "29.97", "25"])
def test_fcpxml_edit_keeps_exact_rate_and_every_frame(tmp_path, fps) -> None:  # noqa: ANN001
    from otio_adapter import write_timeline
    from otio_adapter.timeline import rate_of, to_frames

    rate = rate_of(fps)
    # ~1 hour: 300 clips of 287 frames, 207-frame tail (the adapter used to truncate 207/25 s)
    items = [(tmp_path / "a.mp4", 1000 + k, 287, 100000) for k in range(300)]
    items.append((tmp_path / "a.mp4", 7, 207, 100000))
    edit = make_edit(items, fps=fps)
    write_timeline(edit, tmp_path / "edit.fcpxml")
    back = read_edit(tmp_path / "edit.fcpxml")
    clips = back.tracks[0].find_clips()
    assert len(clips) == 301
    assert {c.source_range.duration.rate for c in clips} == {rate}
    rec = [to_frames(c.range_in_parent().start_time, rate) for c in clips]
    assert rec == [287 * k for k in range(301)]
    assert [to_frames(c.source_range.start_time, rate) for c in clips] == [i[1] for i in items]
    assert to_frames(back.duration(), rate) == 300 * 287 + 207


def test_hand_written_fcpxml_at_23976_with_tc_start(media, cfg, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    shutil.copy(media["a"], tmp_path / "a.mp4")
    shutil.copy(media["b"], tmp_path / "b.mp4")
    # FCP's own form: 01:00:00:00 at 23.976 NDF is 86400 frames = 18018/5 s
    (tmp_path / "hand.fcpxml").write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.9">
  <resources>
    <format id="r1" frameDuration="1001/24000s" width="160" height="90"/>
    <asset id="r2" name="a" src="a.mp4" start="0s" duration="3s" hasVideo="1" format="r1"/>
    <asset id="r3" name="b" src="b.mp4" start="0s" duration="3s" hasVideo="1" format="r1"/>
  </resources>
  <library><event name="e"><project name="hand">
    <sequence format="r1" duration="5005/2000s" tcStart="18018/5s">
      <spine>
        <asset-clip ref="r2" offset="18018/5s" name="a" start="1001/1000s" duration="1001/1000s"/>
        <gap offset="3604601/1000s" duration="1001/2000s"/>
        <asset-clip ref="r3" offset="7210203/2000s" name="b" start="1001/2000s" duration="1001/1000s"/>
      </spine>
    </sequence>
  </project></event></library>
</fcpxml>
"""
    )
    edit = read_edit(tmp_path / "hand.fcpxml")
    rate = 24000 / 1001
    assert edit.global_start_time == RT(86400, rate)
    track = edit.tracks[0]
    assert [type(i).__name__ for i in track] == ["Clip", "Gap", "Clip"]
    assert [i.range_in_parent().start_time for i in track] == [
        RT(0, rate),
        RT(24, rate),
        RT(36, rate),
    ]
    calls = _spy(monkeypatch)
    _, report = score_timeline_report(edit, media["lib"], cfg, base_dir=tmp_path)
    assert report.missing == ()
    assert [c[0] for c in calls] == ["a.mp4", "b.mp4"]  # source seconds at 24000/1001, not 23
    assert [c[1:] for c in calls] == [
        pytest.approx((1.001, 2.002), abs=1e-9),
        pytest.approx((0.5005, 1.5015), abs=1e-9),
    ]
    assert report.cue.video.fps == Fraction(24000, 1001) and report.cue.video.frames == 60


def test_otioconvert_writes_an_ntsc_cue_sheet_as_readable_fcpxml(tmp_path) -> None:  # noqa: ANN001
    from otio_adapter.testing import make_cue
    from otio_adapter.timeline import to_frames

    fps = Fraction(24000, 1001)
    cue = make_cue(tmp_path, fps=fps)
    cue.to_json(tmp_path / "clip.moodsic.json")
    exe = Path(sys.executable).with_name("otioconvert")
    res = subprocess.run(
        [str(exe), "-i", "clip.moodsic.json", "-o", "clip.fcpxml", "-a", "layout=single"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert 'frameDuration="1001/24000s"' in (tmp_path / "clip.fcpxml").read_text()
    back = read_edit(tmp_path / "clip.fcpxml")
    rate = 24000 / 1001
    (music,) = [t for t in back.tracks if t.kind == "Audio"]
    starts = [to_frames(c.range_in_parent().start_time, rate) for c in music.find_clips()]
    assert starts == [s.start_frame for s in cue.segments] == [0, 144, 300, 480]
    assert to_frames(back.duration(), rate) == cue.video.frames == 623


def test_source_range_past_the_media_end_is_named_as_such(media, cfg) -> None:  # noqa: ANN001
    # b.mp4 has 75 frames: the second clip asks for frames 100-139
    edit = make_edit([(media["a"], 0, 50), (media["b"], 100, 40)])
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.missing_lines() == [
        "b.mp4 (item 1): its source range 4.000-5.600 s starts past the end of b.mp4 (3.000 s)"
    ]
    assert report.cue.summary["edit"]["scored"] == ["a.mp4"]
    with pytest.raises(InputError, match=r"clip b.mp4: its source range 4.000-5.600 s starts past"):
        score_timeline_report(edit, media["lib"], cfg, strict=True)


def test_bundle_output_holds_media_with_odd_names_and_survives_missing_clips(
    media,  # noqa: ANN001
    cfg,  # noqa: ANN001
    tmp_path,  # noqa: ANN001
) -> None:
    import shutil
    import zipfile

    from otio_adapter import write_timeline

    odd = tmp_path / "take 1 é%20.mp4"
    shutil.copy(media["b"], odd)
    edit = make_edit(
        [(media["a"], 0, 25, 75), (odd, 0, 25, 75), (tmp_path / "gone.mp4", 0, 25, 75)]
    )
    write_timeline(edit, tmp_path / "edit.otioz")
    with zipfile.ZipFile(tmp_path / "edit.otioz") as z:
        assert sorted(n for n in z.namelist() if n.startswith("media/")) == [
            "media/a.mp4",
            "media/take 1 é%20.mp4",
        ]
    back = read_edit(tmp_path / "edit.otioz")
    gone = back.tracks[0][2].media_reference
    assert gone.is_missing_reference and gone.metadata["original_target_url"].endswith("gone.mp4")
    assert gone.available_range == TR(RT(0, 25), RT(75, 25))  # OTIO's stand-in dropped it
    rangeless = make_edit([(media["a"], 0, 25), (tmp_path / "gone.mp4", 0, 25, 75)])
    rangeless.tracks[0][1].source_range = None  # its length is the media's available range
    write_timeline(rangeless, tmp_path / "rangeless.otioz")
    assert read_edit(tmp_path / "rangeless.otioz").duration() == RT(100, 25)

    # scoring the bundle and writing the scored copy as a bundle again carries the media
    scored, report = score_timeline_report(back, media["lib"], cfg)
    assert [c.name for c in report.missing] == ["gone.mp4"]
    write_timeline(scored, tmp_path / "scored.otioz")
    with zipfile.ZipFile(tmp_path / "scored.otioz") as z:
        names = [n for n in z.namelist() if n.startswith("media/")]
    assert {"media/a.mp4", "media/take 1 é%20.mp4"} <= set(names)
    assert len(names) == 2 + len(
        {
            Path(c.media_reference.target_url).name
            for c in scored.tracks[-2].find_clips() + scored.tracks[-1].find_clips()
        }
    )
    _, again = score_timeline_report(read_edit(tmp_path / "scored.otioz"), media["lib"], cfg)
    assert [c.name for c in again.missing] == ["gone.mp4"]


def test_edl_record_start_and_leading_black_are_kept(media, cfg, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import shutil

    from otio_adapter.timeline import to_frames

    shutil.copy(media["a"], tmp_path / "a.mp4")
    shutil.copy(media["b"], tmp_path / "b.mp4")
    # the program starts at 01:00:00:00; two seconds of black before the first event
    (tmp_path / "hand.edl").write_text(
        "TITLE: hand\nFCM: NON-DROP FRAME\n\n"
        "001  AX       V     C        00:00:00:05 00:00:01:05 01:00:02:00 01:00:03:00\n"
        "* FROM CLIP: a.mp4\n"
        "002  AX       V     C        00:00:00:00 00:00:01:00 01:00:03:00 01:00:04:00\n"
        "* FROM CLIP: b.mp4\n"
    )
    edit = read_edit(tmp_path / "hand.edl", rate=25)
    assert edit.global_start_time == RT(90000, 25)
    assert [
        (type(i).__name__, to_frames(i.range_in_parent().start_time, 25)) for i in edit.tracks[0]
    ] == [
        ("Gap", 0),
        ("Clip", 50),
        ("Clip", 75),
    ]
    calls = _spy(monkeypatch)
    scored, report = score_timeline_report(edit, media["lib"], cfg, base_dir=tmp_path)
    assert calls == [("a.mp4", 0.2, 1.2), ("b.mp4", 0.0, 1.0)]
    assert report.cue.video.frames == 100 and report.cue.cuts == (2.0, 3.0)
    t = [s.t for s in report.cue.samples]
    assert min(t) >= 2.0  # nothing was seen in the black
    # the picture and the music line up on the stack: both start at the program start
    picture, music = scored.tracks[0], scored.tracks[-2]
    assert picture.source_range is None and to_frames(music.duration(), 25) == 100

    # an edit with leading black, written by OTIO's own EDL writer, reads back with it
    black = make_edit([(None, 0, 25), (media["a"], 5, 40), (None, 0, 10), (media["b"], 0, 20)])
    otio.adapters.write_to_file(black, str(tmp_path / "black.edl"))
    back = read_edit(tmp_path / "black.edl", rate=25)
    assert [to_frames(i.range_in_parent().start_time, 25) for i in back.tracks[0]] == [
        0,
        25,
        65,
        75,
    ]


def test_drop_frame_edl_with_rate_as_typed(media, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "df.edl").write_text(
        "TITLE: df\nFCM: DROP FRAME\n\n"
        "001  AX       V     C        00:00:00;05 00:00:01;05 01:00:02;00 01:00:03;00\n"
        f"* FROM CLIP: {media['a']}\n"
        "002  AX       V     C        00:00:00;00 00:00:01;00 01:00:03;00 01:00:04;00\n"
        f"* FROM CLIP: {media['b']}\n"
    )
    rate = 30000 / 1001
    for typed in (29.97, rate, None):  # None: FCM: DROP FRAME says 29.97
        edit = read_edit(tmp_path / "df.edl", rate=typed)
        assert edit.global_start_time == RT(107892, rate)  # 01:00:00;00 drop-frame
        items = list(edit.tracks[0])
        assert [type(i).__name__ for i in items] == ["Gap", "Clip", "Clip"]
        assert items[0].duration() == RT(60, rate)
        assert items[1].source_range == TR(RT(5, rate), RT(30, rate))
    with pytest.raises(InputError, match="frame rate must be a positive number"):
        read_edit(tmp_path / "df.edl", rate=0)


def test_otio_json_saved_as_json_is_read_as_a_timeline(media, tmp_path) -> None:  # noqa: ANN001
    edit = make_edit([(media["a"], 5, 30, 75), (media["b"], 0, 20, 75)])
    text = otio.adapters.write_to_string(edit, "otio_json")
    (tmp_path / "edit.json").write_text(text)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    for name in ("edit.json", "bom.json"):
        back = read_edit(tmp_path / name)
        assert otio.adapters.write_to_string(back, "otio_json") == text
        assert otio.adapters.read_from_file(str(tmp_path / name)).name == "edit"  # otioconvert
    deep = '{"OTIO_SCHEMA": "Timeline.1", "metadata": ' + "[" * 50000 + "]" * 50000 + "}"
    (tmp_path / "deep.json").write_text(deep)
    with pytest.raises(InputError, match="nested too deeply"):
        read_edit(tmp_path / "deep.json")


def test_global_start_at_an_audio_rate_is_not_the_edit_rate(media) -> None:  # noqa: ANN001
    from otio_adapter.score import edit_clips

    edit = make_edit([(media["a"], 0, 50), (media["b"], 10, 40)])
    edit.global_start_time = RT(48000 * 3600, 48000)  # 01:00:00:00 in samples
    clips, fps, frames = edit_clips(edit)
    assert fps == 25 and frames == 90
    assert [(c.rec_start, c.rec_end) for c in clips] == [(0, 50), (50, 90)]
    edit.global_start_time = RT(86400, 24000 / 1001)  # a picture rate: it names the edit's
    assert edit_clips(edit)[1] == Fraction(24000, 1001)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_crossfade_that_is_no_length_is_refused(tmp_path, value) -> None:  # noqa: ANN001
    from moodsic_engine.errors import CueSheetError
    from otio_adapter import cue_to_timeline
    from otio_adapter.testing import make_cue

    cue = make_cue(tmp_path, write_audio=False)
    cue.to_json(tmp_path / "clip.moodsic.json")
    with pytest.raises(CueSheetError, match="crossfade_s must be a number of seconds >= 0"):
        cue_to_timeline(cue, crossfade_s=float(value))
    with pytest.raises(CueSheetError, match="crossfade_s must be a number of seconds >= 0"):
        otio.adapters.read_from_file(
            str(tmp_path / "clip.moodsic.json"), adapter_name="moodsic", crossfade_s=value
        )


def test_source_range_from_file_start_with_timecoded_reference(media, cfg, monkeypatch) -> None:  # noqa: ANN001
    calls = _spy(monkeypatch)
    edit = make_edit([(media["a"], 25, 25), (media["b"], 90000 + 10, 25)])
    tc = TR(RT(90000, 25), RT(75, 25))  # both files start at 01:00:00:00
    for clip in edit.tracks[0]:
        clip.media_reference.available_range = tc
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.missing == ()
    # a.mp4's range (25-50) is counted from the file start; b.mp4's in timecode
    assert calls == [("a.mp4", 1.0, 2.0), ("b.mp4", 0.4, 1.4)]


@pytest.mark.parametrize("fps", NTSC, ids=["23.976", "29.97", "25"])
def test_plain_edl_of_a_cue_sheet_keeps_the_mood_markers(tmp_path, fps) -> None:  # noqa: ANN001
    from otio_adapter.testing import make_cue
    from otio_adapter.timeline import rate_of, to_frames

    cue = make_cue(tmp_path, fps=fps, boundaries_s=(0.0, 7.3, 15.1, 21.9), write_audio=False)
    cue.to_json(tmp_path / "clip.moodsic.json")
    timeline = otio.adapters.read_from_file(str(tmp_path / "clip.moodsic.json"))
    otio.adapters.write_to_file(timeline, str(tmp_path / "clip.edl"))  # what otioconvert does
    rate = rate_of(fps)
    back = read_edit(tmp_path / "clip.edl", rate=rate)
    (clip,) = back.tracks[0].find_clips()
    assert [to_frames(m.marked_range.start_time, rate) for m in clip.markers] == [
        s.start_frame for s in cue.segments
    ]
    assert [m.name for m in clip.markers] == [s.mood_label.upper() for s in cue.segments]


def test_disabled_clips_and_tracks_are_not_the_picture(media, cfg, monkeypatch) -> None:  # noqa: ANN001
    calls = _spy(monkeypatch)
    edit = make_edit([(media["a"], 0, 25), (media["b"], 0, 25), (media["a"], 25, 25)])
    edit.tracks[0][1].enabled = False  # switched off in the NLE: black there
    hidden = make_edit([(media["b"], 0, 75)]).tracks[0].clone()
    hidden.enabled = False
    edit.tracks.insert(0, hidden)
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert calls == [("a.mp4", 0.0, 1.0), ("a.mp4", 1.0, 2.0)]
    assert [(c.rec_start, c.rec_end) for c in report.clips] == [(0, 25), (50, 75)]
    assert report.cue.cuts == (1.0, 2.0) and report.cue.video.frames == 75
    assert not any(1.0 <= s.t < 2.0 for s in report.cue.samples)


def test_unreadable_inputs_say_what_is_wrong(media, cfg, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "empty.fcpxml").write_text(
        '<?xml version="1.0"?>\n<fcpxml version="1.9"><resources/><library/></fcpxml>\n'
    )
    with pytest.raises(InputError, match="empty.fcpxml: this FCPXML holds no project"):
        read_edit(tmp_path / "empty.fcpxml")
    edit = make_edit([(media["a"], 0, 25), (tmp_path, 0, 25)])  # a folder where media goes
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.missing_lines() == [
        f"{tmp_path.name} (item 1): media not found (not a file): {tmp_path}"
    ]


def test_clips_at_another_rate_tile_the_edit_without_slivers(tmp_path) -> None:  # noqa: ANN001
    from otio_adapter.score import edit_clips

    # 30000/1001 source ranges in a 24 fps edit: 45 frames are 36.036 edit frames each
    edit = make_edit(
        [(tmp_path / f"c{k}.mp4", 0, 45) for k in range(40)], fps=Fraction(30000, 1001)
    )
    edit.global_start_time = RT(86400, 24)
    clips, fps, frames = edit_clips(edit)
    assert fps == 24 and frames == round(40 * 45 * 24 * 1001 / 30000)  # 1441
    assert clips[0].rec_start == 0 and clips[-1].rec_end == frames
    assert all(a.rec_end == b.rec_start for a, b in zip(clips, clips[1:], strict=False))
    assert [c.rec_start for c in clips[13:16]] == [468, 505, 541]


def test_cue_from_timeline_without_its_metadata_takes_the_clip_rate(tmp_path) -> None:  # noqa: ANN001
    from otio_adapter import cue_to_timeline, timeline_to_cue
    from otio_adapter.testing import make_cue

    cue = make_cue(tmp_path, fps=Fraction(30000, 1001), write_audio=False)
    timeline = cue_to_timeline(cue)
    del timeline.metadata["moodsic"]  # an editor that keeps only clip and marker metadata
    video = timeline.tracks[0][0]
    video.source_range = None  # its length from the media's available range
    back = timeline_to_cue(timeline)
    assert back.video.fps == Fraction(30000, 1001) and back.video.frames == cue.video.frames
    assert [s.start_frame for s in back.segments] == [s.start_frame for s in cue.segments]


def test_bundle_media_too_large_for_the_disk_is_refused(media, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import shutil
    from collections import namedtuple

    from otio_adapter.score import bundle_media

    otio.adapters.write_to_file(make_edit([(media["a"], 0, 25)]), str(tmp_path / "e.otioz"))
    timeline = read_edit(tmp_path / "e.otioz")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(InputError, match=r"e.otioz: no room to extract media/a.mp4 \(\d+ bytes\)"):
        with bundle_media(tmp_path / "e.otioz", timeline):
            pass


def test_time_warped_clips_score_the_source_they_show(media, cfg, monkeypatch) -> None:  # noqa: ANN001
    calls = _spy(monkeypatch)
    edit = make_edit([(media["a"], 0, 25), (media["b"], 10, 25), (media["a"], 50, 25)])
    fast, frozen, _ = edit.tracks[0]
    fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))  # 1 s shows 2 s
    frozen.effects.append(otio.schema.FreezeFrame())
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.missing == ()
    assert [c.speed for c in report.clips] == [2.0, 0.0, 1.0]
    assert calls[0] == ("a.mp4", 0.0, 2.0)  # the whole 2 s, not its first second
    assert calls[1] == ("b.mp4", 0.4, pytest.approx(0.44))  # the one frozen frame
    assert calls[2] == ("a.mp4", 2.0, 3.0)
    t = np.array([s.t for s in report.cue.samples])
    assert np.all(np.diff(t) > 0) and t[-1] < 3.0
    # 2 s of samples at 2/s (on frames: 0, 0.52, 1.0, 1.52 s) squeezed into 1 s
    assert list(t[t < 1.0]) == pytest.approx([0.0, 0.26, 0.5, 0.76])
    assert np.sum((t >= 1.0) & (t < 2.0)) >= 1  # the freeze frame is seen on screen


def test_a_rangeless_clip_on_another_track_does_not_stop_scoring(media, cfg) -> None:  # noqa: ANN001
    edit = make_edit([(media["a"], 0, 25), (media["b"], 0, 25)])
    notes = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    notes.append(  # no source range, no available range: OTIO cannot tell its length
        otio.schema.Clip(name="vo", media_reference=otio.schema.MissingReference())
    )
    edit.tracks.append(notes)
    scored, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.cue.video.frames == 50 and report.missing == ()
    assert [t.name for t in scored.tracks][:2] == ["V1", "A1"]


def test_track_length_zero_in_the_cue_sheet_is_read_from_the_file(tmp_path) -> None:  # noqa: ANN001
    import dataclasses

    from otio_adapter import cue_to_timeline
    from otio_adapter.testing import make_cue

    cue = make_cue(tmp_path, track_seconds=40.0)  # the WAVs hold 40 s
    segments = tuple(
        dataclasses.replace(s, track=dataclasses.replace(s.track, duration_s=0.0))
        for s in cue.segments
    )
    timeline = cue_to_timeline(dataclasses.replace(cue, segments=segments), base_dir=tmp_path)
    music = [c for t in list(timeline.tracks)[1:] for c in t.find_clips()]
    assert music and all(
        c.media_reference.available_range == TR(RT(0, 25), RT(1000, 25)) for c in music
    )
    assert all(c.source_range.end_time_exclusive() <= RT(1000, 25) for c in music)


def test_fcpxml_connected_clip_below_the_spine_is_not_the_main_track(
    media,  # noqa: ANN001
    cfg,  # noqa: ANN001
    tmp_path,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    import shutil

    shutil.copy(media["a"], tmp_path / "a.mp4")
    shutil.copy(media["b"], tmp_path / "b.mp4")
    (tmp_path / "lanes.fcpxml").write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.9">
  <resources>
    <format id="r1" frameDuration="1/25s" width="160" height="90"/>
    <asset id="r2" name="a" src="a.mp4" start="0s" duration="3s" hasVideo="1" format="r1"/>
    <asset id="r3" name="b" src="b.mp4" start="0s" duration="3s" hasVideo="1" format="r1"/>
  </resources>
  <library><event name="e"><project name="lanes">
    <sequence format="r1" duration="2s" tcStart="0s">
      <spine>
        <asset-clip ref="r2" offset="0s" name="a" start="0s" duration="1s">
          <asset-clip ref="r3" lane="-1" offset="1/5s" name="under" start="0s" duration="2/5s"/>
        </asset-clip>
        <asset-clip ref="r3" offset="1s" name="b" start="1s" duration="1s"/>
      </spine>
    </sequence>
  </project></event></library>
</fcpxml>
"""
    )
    edit = read_edit(tmp_path / "lanes.fcpxml")
    assert [t.name for t in edit.tracks] == ["-1", "0"]  # the reader's lane order
    calls = _spy(monkeypatch)
    _, report = score_timeline_report(edit, media["lib"], cfg, base_dir=tmp_path)
    assert calls == [("a.mp4", 0.0, 1.0), ("b.mp4", 1.0, 2.0)]
    assert report.cue.video.frames == 50 and report.cue.cuts == (1.0,)


def test_fcpxml_with_the_adapters_empty_frame_duration_is_read_by_its_format_name(tmp_path) -> None:  # noqa: ANN001
    from otio_adapter.timeline import to_frames

    # what otio-fcpx-xml-adapter writes for a 23.976 timeline on its own
    (tmp_path / "plain.fcpxml").write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.8">
    <resources>
        <format id="r1" frameDuration="" name="FFVideoFormat160x90p23.976023976023978"/>
        <asset name="a.mp4" src="/x/a.mp4" format="r1" id="r2" duration="3003/1000s" start="0s" hasAudio="0" hasVideo="1"/>
    </resources>
    <project name="edit" uid="">
        <sequence duration="7007/2400s" format="r1">
            <spine>
                <clip name="a.mp4" offset="0s" duration="1001/600s" start="1001/4800s">
                    <video offset="0s" ref="r2" duration="3003/1000s"/>
                </clip>
                <clip name="a.mp4" offset="1001/600s" duration="1001/800s" start="1001/2400s">
                    <video offset="0s" ref="r2" duration="3003/1000s"/>
                </clip>
            </spine>
        </sequence>
    </project>
</fcpxml>
"""
    )
    rate = 24000 / 1001
    edit = read_edit(tmp_path / "plain.fcpxml")
    clips = edit.tracks[0].find_clips()
    assert [c.source_range for c in clips] == [
        TR(RT(5, rate), RT(40, rate)),
        TR(RT(10, rate), RT(30, rate)),
    ]
    assert [to_frames(c.range_in_parent().start_time, rate) for c in clips] == [0, 40]
    (tmp_path / "nameless.fcpxml").write_text(
        (tmp_path / "plain.fcpxml")
        .read_text()
        .replace("FFVideoFormat160x90p23.976023976023978", "")
    )
    with pytest.raises(InputError, match="format 'r1' has no frameDuration"):
        read_edit(tmp_path / "nameless.fcpxml")


def test_fcpxmld_bundle_is_read(media, tmp_path) -> None:  # noqa: ANN001
    from otio_adapter import write_timeline

    bundle = tmp_path / "Project.fcpxmld"
    bundle.mkdir()
    write_timeline(
        make_edit([(media["a"], 5, 40, 75), (media["b"], 0, 30, 75)]), bundle / "Info.fcpxml"
    )
    edit = read_edit(bundle)
    assert [c.source_range for c in edit.tracks[0].find_clips()] == [
        TR(RT(5, 25), RT(40, 25)),
        TR(RT(0, 25), RT(30, 25)),
    ]
    (bundle / "Info.fcpxml").unlink()
    with pytest.raises(InputError, match="Project.fcpxmld: an .fcpxmld bundle without Info.fcpxml"):
        read_edit(bundle)


def test_track_kind_spelt_in_lower_case_is_a_video_track(media, tmp_path) -> None:  # noqa: ANN001
    from otio_adapter.score import edit_clips

    edit = make_edit([(media["a"], 0, 25), (media["b"], 0, 25)])
    text = otio.adapters.write_to_string(edit, "otio_json").replace(
        '"kind": "Video"', '"kind": "video"'
    )
    (tmp_path / "hand.otio").write_text(text)
    clips, fps, frames = edit_clips(read_edit(tmp_path / "hand.otio"))
    assert len(clips) == 2 and fps == 25 and frames == 50


@pytest.mark.parametrize("layout", ["alternate", "single"])
def test_music_deleted_or_slid_in_an_editor_is_written_back(tmp_path, layout) -> None:  # noqa: ANN001
    from otio_adapter import cue_to_timeline, timeline_to_cue
    from otio_adapter.testing import make_cue

    cue = make_cue(tmp_path, write_audio=False)
    timeline = cue_to_timeline(cue, layout=layout)
    assert timeline_to_cue(timeline).segments == cue.segments
    for track in list(timeline.tracks)[1:]:
        for i, item in enumerate(list(track)):
            if isinstance(item, otio.schema.Clip) and item.metadata["moodsic"]["segment"] == 2:
                track[i] = otio.schema.Gap(source_range=item.source_range)  # deleted
    back = timeline_to_cue(timeline)
    # segment 2 is silent now (was: still t2, or, under a crossfade tail, t1 from 10.48 s)
    assert [s.track.id if s.track else None for s in back.segments] == ["t0", "t1", None, "t3"]
    assert back.segments[3] == cue.segments[3]

    slid = cue_to_timeline(cue, layout="single")
    music = slid.tracks[1]
    k = next(
        i
        for i, c in enumerate(music)
        if getattr(c, "metadata", {}).get("moodsic", {}).get("segment") == 2
    )
    clip = music[k]
    rng = clip.source_range
    clip.source_range = TR(rng.start_time, rng.duration - RT(10, 25))
    music.insert(k, otio.schema.Gap(source_range=TR(RT(0, 25), RT(10, 25))))  # 10 frames later
    if isinstance(music[k - 1], otio.schema.Transition):
        del music[k - 1]
    seg = timeline_to_cue(slid).segments[2]
    assert seg.track is not None and seg.track.id == "t2" and seg.track.in_s == 5.0
