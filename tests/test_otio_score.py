"""Scoring an existing edit: used source ranges, record-time joining, cuts, missing media,
bad input, the CLI on .otio/.fcpxml/.edl edits, and the input never being modified."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from moodsic_engine.config import Config
from moodsic_engine.errors import InputError
from otio_adapter import score_timeline, score_timeline_report, timeline_to_cue
from otio_adapter.testing import make_edit, small_library, write_video
from otio_adapter.timeline import to_frames, url_path

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("edit")
    return {
        "root": root,
        "a": write_video(root / "a.mp4", 10).resolve(),  # moving test pattern
        "b": write_video(root / "b.mp4", 10, colour="0x081030").resolve(),  # dark, still
        "lib": small_library(root / "lib"),
    }


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config().replace(experts=("grammar",), **{"segment.min_segment_s": 2.0})


def _edit(media: dict[str, object]) -> otio.schema.Timeline:
    # a[1 s, 5 s) | b[2 s, 7 s) | a[6 s, 9 s): cuts at 4 s and 9 s, 12 s long
    return make_edit(
        [(media["a"], 25, 100, 250), (media["b"], 50, 125, 250), (media["a"], 150, 75, 250)]
    )


def _digest(timeline: otio.schema.Timeline) -> str:
    return hashlib.sha256(otio.adapters.write_to_string(timeline, "otio_json").encode()).hexdigest()


def test_scores_used_source_ranges_and_joins_in_record_time(media, cfg, monkeypatch) -> None:  # noqa: ANN001
    import moodsic_engine.pipeline as pipeline

    calls = []
    real = pipeline.analyze_video

    def spy(path, experts, config, *, start_s=0.0, end_s=None, progress=None):  # noqa: ANN001, ANN202
        calls.append((Path(path).name, start_s, end_s))
        return real(path, experts, config, start_s=start_s, end_s=end_s)

    monkeypatch.setattr(pipeline, "analyze_video", spy)
    edit = _edit(media)
    before = _digest(edit)
    scored, report = score_timeline_report(edit, media["lib"], cfg)
    assert _digest(edit) == before  # the input timeline is untouched
    assert calls == [("a.mp4", 1.0, 5.0), ("b.mp4", 2.0, 7.0), ("a.mp4", 6.0, 9.0)]
    assert report.missing == ()

    cue = report.cue
    assert cue.video.frames == 300 and cue.video.fps == Fraction(25)
    assert cue.cuts == (4.0, 9.0)
    t = np.array([s.t for s in cue.samples])
    assert np.all(np.diff(t) > 0) and t[0] >= 0 and t[-1] < 12.0
    # every record-time sample came from the clip on screen then: b (dark, still) is calmer
    arousal = np.array([s.fused["a"] for s in cue.samples])
    in_b = (t >= 4.0) & (t < 9.0)
    assert in_b.sum() >= 8 and (~in_b).sum() >= 12
    assert arousal[in_b].mean() < arousal[~in_b].mean() - 0.1
    # segments tile the edit and change mood only on the edit's own cuts
    segs = cue.segments
    assert segs[0].start_frame == 0 and segs[-1].end_frame == 300
    assert len(segs) >= 2
    assert {s.start_frame for s in segs[1:]} <= {100, 225}

    # the copy: original track first and unchanged, music tracks and markers added
    assert [t.name for t in scored.tracks] == ["V1", "Music A", "Music B"]
    assert otio.adapters.write_to_string(scored.tracks[0]) == otio.adapters.write_to_string(
        edit.tracks[0]
    )
    assert [to_frames(m.marked_range.start_time, 25) for m in scored.tracks.markers] == [
        s.start_frame for s in segs
    ]
    assert all(m.metadata["moodsic"]["track_id"] for m in scored.tracks.markers)
    music = [c for tr in list(scored.tracks)[1:] for c in tr.find_clips()]
    assert len(music) == len(segs)
    assert all(Path(url_path(c.media_reference.target_url)).is_file() for c in music)
    # and the scored edit reads back as the edit's cue sheet
    assert timeline_to_cue(scored).segments == segs


def test_gaps_transitions_and_missing_media(media, cfg) -> None:  # noqa: ANN001
    edit = make_edit(
        [
            (media["a"], 25, 100),
            (None, 0, 25),
            (media["root"] / "gone.mp4", 0, 50),
            (media["b"], 50, 100),
        ]
    )
    track = edit.tracks[0]
    track.insert(4, otio.schema.Transition(in_offset=RT(5, 25), out_offset=RT(5, 25)))
    gen = otio.schema.Clip(
        name="bars",
        media_reference=otio.schema.GeneratorReference(generator_kind="SMPTEBars"),
        source_range=TR(RT(0, 25), RT(25, 25)),
    )
    track.append(gen)
    scored, report = score_timeline_report(edit, media["lib"], cfg)
    problems = dict((c.name, c.problem) for c in report.missing)
    assert set(problems) == {"gone.mp4", "bars"}
    assert "media not found" in problems["gone.mp4"] and "generator" in problems["bars"]
    assert report.missing_lines()[0].startswith("gone.mp4 (item 2)")
    assert report.cue.video.frames == 100 + 25 + 50 + 100 + 25
    assert report.cue.summary["edit"]["scored"] == ["a.mp4", "b.mp4"]
    t = np.array([s.t for s in report.cue.samples])
    assert not np.any((t >= 4.0) & (t < 7.0))  # nothing sampled in the gap or the missing clip
    assert len(list(scored.tracks)) == 3

    with pytest.raises(InputError, match=r"1 clip\(s\)|2 clip\(s\)"):
        score_timeline(edit, media["lib"], cfg, strict=True)
    nothing = make_edit([(media["root"] / "gone.mp4", 0, 50)])
    with pytest.raises(InputError, match="no clip could be scored"):
        score_timeline(nothing, media["lib"], cfg)


def test_bad_edits_are_refused_clearly(media, cfg) -> None:  # noqa: ANN001
    audio_only = otio.schema.Timeline(name="radio")
    audio_only.tracks.append(otio.schema.Track(kind="Audio"))
    with pytest.raises(InputError, match="has no video track"):
        score_timeline(audio_only, media["lib"], cfg)

    # a nested stack (a compound clip) is scored as the picture it shows
    from otio_adapter.edit_track import edit_clips

    nested = _edit(media)
    before = edit_clips(nested)[2]
    inner = otio.schema.Stack(name="compound")
    inner.append(make_edit([(media["a"], 10, 50)]).tracks[0].clone())
    nested.tracks[0].append(inner)
    clips, _, frames = edit_clips(nested)
    assert frames == before + 50
    shown = clips[-1]
    assert (shown.name, shown.rec_start, shown.rec_end) == ("a.mp4", before, before + 50)
    assert (shown.src_start_s, shown.src_end_s) == (0.4, 2.4)

    rangeless = otio.schema.Timeline(name="r")
    rangeless.tracks.append(otio.schema.Track(kind="Video"))
    rangeless.tracks[0].append(
        otio.schema.Clip(
            name="noclue", media_reference=otio.schema.ExternalReference(target_url="/x.mp4")
        )
    )
    with pytest.raises(InputError, match="'noclue' on the main track has no usable range"):
        score_timeline(rangeless, media["lib"], cfg)

    empty = make_edit([(None, 0, 50)])
    with pytest.raises(InputError, match="no clips"):
        score_timeline(empty, media["lib"], cfg)


def _moodsic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moodsic_engine.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _write_library_manifest(media: dict[str, object], root: Path) -> Path:
    rows = [
        {
            "id": t.id,
            "title": t.title,
            "artist": t.artist,
            "path": t.path,
            "valence": t.valence,
            "arousal": t.arousal,
        }
        for t in media["lib"].tracks
    ]
    path = root / "lib" / "tracks.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.slow
def test_cli_scores_otio_fcpxml_and_edl_edits(media, tmp_path: Path) -> None:  # noqa: ANN001
    edit = _edit(media)
    src = tmp_path / "edit.otio"
    otio.adapters.write_to_file(edit, str(src))
    otio.adapters.write_to_file(edit, str(tmp_path / "edit.fcpxml"))
    otio.adapters.write_to_file(edit, str(tmp_path / "edit.edl"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    manifest = _write_library_manifest(media, media["root"])
    common = ["--library", str(manifest), "--experts", "grammar", "--progress", "none"]
    for name in ("edit.otio", "edit.fcpxml", "edit.edl"):
        extra = ["--rate", "25"] if name.endswith(".edl") else []
        out = tmp_path / f"scored-{name}.otio"
        res = _moodsic(
            "score-timeline",
            name,
            "-o",
            str(out),
            "--cue",
            str(out) + ".json",
            *common,
            *extra,
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr
        assert "scored 3 of 3 clips" in res.stdout
        scored = otio.adapters.read_from_file(str(out))
        assert [t.kind for t in scored.tracks] == ["Video", "Audio", "Audio"]
        assert len(scored.tracks.markers) >= 1
        assert to_frames(scored.duration(), 25) == 300
        assert json.loads(Path(str(out) + ".json").read_text())["schema"] == "moodsic.cue/1"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before

    # missing media: listed on stderr-free stdout lines; --strict turns it into exit 1
    broken = make_edit([(media["a"], 0, 50), (tmp_path / "nope.mp4", 0, 50)])
    otio.adapters.write_to_file(broken, str(tmp_path / "broken.otio"))
    res = _moodsic("score-timeline", "broken.otio", "-o", "b.otio", *common, cwd=tmp_path)
    assert res.returncode == 0 and "not scored: nope.mp4 (item 1): media not found" in res.stdout
    res = _moodsic(
        "score-timeline", "broken.otio", "-o", "b2.otio", "--strict", *common, cwd=tmp_path
    )
    assert res.returncode == 1 and "nope.mp4" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "b2.otio").exists()

    # the input can never be the output; unreadable input is one line, exit 1
    res = _moodsic("score-timeline", "edit.otio", "-o", "edit.otio", *common, cwd=tmp_path)
    assert res.returncode == 1 and "overwrite the input" in res.stderr
    assert (tmp_path / "edit.otio").read_bytes() == before["edit.otio"]
    (tmp_path / "junk.otio").write_text("{ not json")
    res = _moodsic("score-timeline", "junk.otio", "-o", "j.otio", *common, cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "junk.otio" in res.stderr
    res = _moodsic("score-timeline", "edit.xyz", "-o", "j.otio", *common, cwd=tmp_path)
    assert res.returncode == 1 and "not found" in res.stderr

    # --cue is a second output: never the timeline's own path, and never left behind by
    # a timeline that could not be written (here its folder is a file)
    res = _moodsic("score-timeline", "edit.otio", "-o", "s.otio", "--cue", "s.otio", *common,
                   cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1 and "same file" in res.stderr
    (tmp_path / "blocker").write_text("a file where a folder should be")
    res = _moodsic("score-timeline", "edit.otio", "-o", "blocker/s.edl", "--cue", "s.json",
                   *common, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert not (tmp_path / "s.json").exists()
    assert not list(tmp_path.glob(".s.*part*"))


def test_rescoring_replaces_earlier_music_and_keeps_the_rest(media, cfg) -> None:  # noqa: ANN001
    from otio_adapter import add_score

    edit = _edit(media)
    note = otio.schema.Marker(name="editor note", marked_range=TR(RT(10, 25), RT(0, 25)))
    edit.tracks.markers.append(note)
    dialogue = otio.schema.Track(name="Dialogue", kind="Audio")
    dialogue.append(otio.schema.Gap(source_range=TR(RT(0, 25), RT(300, 25))))
    edit.tracks.append(dialogue)
    events: list[tuple[str, int, int]] = []
    scored, report = score_timeline_report(
        edit, media["lib"], cfg, progress=lambda s, d, t: events.append((s, d, t))
    )
    assert [t.name for t in scored.tracks] == ["V1", "Dialogue", "Music A", "Music B"]
    perceive = [(d, t) for s, d, t in events if s == "perceive"]
    assert perceive and all(b[0] >= a[0] for a, b in zip(perceive, perceive[1:], strict=False))
    assert perceive[-1][0] == perceive[-1][1] == 24  # 12 s at 2 samples/s, one bar for the edit

    again = add_score(scored, report.cue, layout="single")
    assert [t.name for t in again.tracks] == ["V1", "Dialogue", "Music"]
    names = [m.name for m in again.tracks.markers]
    assert names.count("editor note") == 1 and len(names) == 1 + len(report.cue.segments)
    assert timeline_to_cue(again).segments == report.cue.segments


def test_real_cue_sheet_round_trips_through_otio(media, cfg) -> None:  # noqa: ANN001
    from moodsic_engine.cue import CueSheet
    from moodsic_engine.pipeline import score_video
    from otio_adapter import cue_to_timeline

    cue = score_video(media["b"], media["lib"], cfg)
    for layout in ("alternate", "single"):
        text = otio.adapters.write_to_string(cue_to_timeline(cue, layout=layout), "otio_json")
        back = timeline_to_cue(otio.adapters.read_from_string(text, "otio_json"))
        assert back.to_dict() == CueSheet.from_dict(cue.to_dict()).to_dict()


def test_missing_reference_clip_is_listed(media, cfg) -> None:  # noqa: ANN001
    edit = _edit(media)
    edit.tracks[0].append(
        otio.schema.Clip(
            name="offline",
            media_reference=otio.schema.MissingReference(),
            source_range=TR(RT(0, 25), RT(25, 25)),
        )
    )
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert [(c.name, c.problem) for c in report.missing] == [("offline", "missing media reference")]
    assert report.cue.video.frames == 325


def test_ntsc_rate_edit_keeps_cuts_on_its_frame_grid(media, cfg) -> None:  # noqa: ANN001
    fps = Fraction(30000, 1001)
    edit = make_edit([(media["a"], 30, 120), (media["b"], 60, 150), (media["a"], 180, 90)], fps=fps)
    scored, report = score_timeline_report(edit, media["lib"], cfg)
    cue = report.cue
    assert cue.video.fps == fps and cue.video.frames == 360
    assert cue.cuts == (float(Fraction(120) / fps), float(Fraction(270) / fps))
    assert {s.start_frame for s in cue.segments[1:]} <= {120, 270}
    rate = 30000 / 1001
    assert [to_frames(m.marked_range.start_time, rate) for m in scored.tracks.markers] == [
        s.start_frame for s in cue.segments
    ]
    assert all(m.marked_range.start_time.rate == rate for m in scored.tracks.markers)


def test_source_timecode_of_media_is_honoured(media, cfg, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    import moodsic_engine.pipeline as pipeline

    tc = tmp_path / "tc.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x96:r=25:d=6",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-timecode", "01:00:00:00", str(tc)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    calls = []
    real = pipeline.analyze_video

    def spy(path, experts, config, *, start_s=0.0, end_s=None, progress=None):  # noqa: ANN001, ANN202
        calls.append((start_s, end_s))
        return real(path, experts, config, start_s=start_s, end_s=end_s)

    monkeypatch.setattr(pipeline, "analyze_video", spy)
    # as an EDL gives it: source in at 01:00:01:00, no available range on the reference
    edit = make_edit([(tc, 3601 * 25, 100), (media["b"], 0, 50)])
    _, report = score_timeline_report(edit, media["lib"], cfg)
    assert report.missing == ()
    assert calls == [(1.0, 5.0), (0.0, 2.0)]
