"""Relinking an edit's media by name inside --media-dir (otio_adapter.relink)."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit
from otio_adapter.relink import MAX_DEPTH, relink_media

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def _clip(
    name: str, ref: otio.core.MediaReference | None = None, **meta: object
) -> otio.schema.Clip:
    return otio.schema.Clip(
        name=name,
        media_reference=ref or otio.schema.MissingReference(),
        source_range=TR(RT(86400, 24), RT(48, 24)),
        metadata=dict(meta),
    )


def _timeline(*clips: otio.schema.Clip) -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name="t")
    track = otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    track.extend(clips)
    tl.tracks.append(track)
    return tl


def _path(clip: otio.schema.Clip) -> Path | None:
    url = getattr(clip.media_reference, "target_url", None)
    if not url or not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path))


def test_clip_name_without_extension_finds_the_file(tmp_path: Path) -> None:
    media = tmp_path / "media"
    target = _touch(media / "day1" / "A001C003.mov")
    _touch(media / "A001C004.mov")
    tl = _timeline(_clip("A001C003"))
    report = relink_media(tl, media)
    clip = tl.find_clips()[0]
    assert _path(clip) == target.resolve()
    assert clip.media_reference.target_url == target.resolve().as_uri()
    assert report.relinked == (("A001C003", target.resolve()),)
    assert report.unmatched == ()


def test_reference_file_name_is_percent_decoded_and_keeps_its_range(tmp_path: Path) -> None:
    media = tmp_path / "media"
    target = _touch(media / "Take 1.MOV")
    available = TR(RT(3600 * 25, 25), RT(500, 25))
    ref = otio.schema.ExternalReference(
        target_url="file:///Volumes/Shoot/Take%201.mov",
        available_range=available,
        metadata={"keep": 1},
    )
    tl = _timeline(_clip("whatever", ref))
    relink_media(tl, media)
    new = tl.find_clips()[0].media_reference
    assert _path(tl.find_clips()[0]) == target.resolve()
    assert new.available_range == available
    assert new.metadata["keep"] == 1
    assert new.metadata["moodsic"]["relinked_from"] == "file:///Volumes/Shoot/Take%201.mov"


def test_windows_path_in_an_edl_comment_reference(tmp_path: Path) -> None:
    media = tmp_path / "m"
    target = _touch(media / "ZZ100_501.take_1.0001.exr")
    ref = otio.schema.ExternalReference(target_url="S:\\path\\to\\ZZ100_501.take_1.0001.exr")
    tl = _timeline(_clip("take_1", ref))
    relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == target.resolve()


def test_source_file_comes_before_the_clip_name_and_names_are_folded(tmp_path: Path) -> None:
    media = tmp_path / "media"
    by_source = _touch(media / "B026C018_170615_R6L6.mov")
    by_name = _touch(media / "92A-2B_.mov")  # '*' cannot be in a file name everywhere
    comments = {"cmx_3600": {"reel": "B026C018", "comments": ["SOURCE FILE: B026C018_170615_R6L6"]}}
    tl = _timeline(_clip("92A-2B*", **comments))
    relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == by_source.resolve()
    by_source.unlink()
    tl = _timeline(_clip("92A-2B*", **comments))
    relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == by_name.resolve()


def test_reel_is_the_last_resort(tmp_path: Path) -> None:
    media = tmp_path / "media"
    target = _touch(media / "ZZ100_50.mxf")
    tl = _timeline(_clip("take_2", **{"cmx_3600": {"reel": "ZZ100_50"}}))
    relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == target.resolve()


def test_present_media_generators_and_sidecars_are_left_alone(tmp_path: Path) -> None:
    media = tmp_path / "media"
    _touch(media / "shot.mov")
    _touch(media / "notes.txt")
    own = _touch(tmp_path / "elsewhere" / "shot.mov")
    present = _clip("shot", otio.schema.ExternalReference(target_url=own.as_uri()))
    black = _clip("shot", otio.schema.GeneratorReference(generator_kind="black"))
    notes = _clip("notes")
    tl = _timeline(present, black, notes)
    with pytest.warns(UserWarning, match="no file there matches") as caught:
        report = relink_media(tl, media)
    assert len(caught) == 1
    assert _path(present) == own  # its own file exists: not replaced
    assert isinstance(black.media_reference, otio.schema.GeneratorReference)
    assert isinstance(notes.media_reference, otio.schema.MissingReference)  # .txt is no media
    assert report.unmatched == ("notes",)


def test_ambiguous_names_prefer_the_exact_spelling_else_warn(tmp_path: Path) -> None:
    media = tmp_path / "media"
    exact = _touch(media / "b" / "Shot1.mov")
    _touch(media / "a" / "SHOT1.mov")
    tl = _timeline(_clip("Shot1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == exact.resolve()

    _touch(media / "c" / "Shot1.mov")
    tl = _timeline(_clip("Shot1"))
    with pytest.warns(
        UserWarning, match=r"1 name\(s\) match several files.*b/Shot1.mov, c/Shot1.mov"
    ):
        relink_media(tl, media)
    assert _path(tl.find_clips()[0]) == exact.resolve()  # the first, in path order


def test_names_never_lead_out_of_the_folder(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    _touch(tmp_path / "secret.mov")
    (media / "link").symlink_to(tmp_path, target_is_directory=True)  # not followed
    ref = otio.schema.ExternalReference(target_url="../secret.mov")
    tl = _timeline(_clip("../secret", ref), _clip("..", None, **{"cmx_3600": {"reel": ".."}}))
    with pytest.warns(UserWarning, match="no file there matches"):
        report = relink_media(tl, media, base_dir=media)
    assert report.relinked == ()
    assert all(isinstance(c.media_reference, otio.schema.MissingReference) or
               c.media_reference.target_url == "../secret.mov" for c in tl.find_clips())  # fmt: skip


def test_search_depth_is_bounded(tmp_path: Path) -> None:
    media = tmp_path / "media"
    deep = media.joinpath(*[f"d{i}" for i in range(MAX_DEPTH + 1)])
    _touch(deep / "deep.mov")
    _touch(media.joinpath(*[f"d{i}" for i in range(MAX_DEPTH)]) / "shallow.mov")
    tl = _timeline(_clip("deep"), _clip("shallow"))
    report = relink_media(tl, media)
    assert [name for name, _ in report.relinked] == ["shallow"]
    assert report.unmatched == ("deep",)


def test_media_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        relink_media(_timeline(_clip("x")), tmp_path / "nope")


def test_read_edit_relinks_every_format(tmp_path: Path) -> None:
    """An .otio from another machine: its missing file is found by name in --media-dir."""
    media = tmp_path / "media"
    target = _touch(media / "interview.mov")
    ref = otio.schema.ExternalReference(target_url="/Users/someone/Footage/interview.mov")
    edit = tmp_path / "edit.otio"
    otio.adapters.write_to_file(_timeline(_clip("Interview", ref)), str(edit))
    tl = read_edit(edit, media_dir=media)
    assert _path(tl.find_clips()[0]) == target.resolve()
    untouched = read_edit(edit)
    assert untouched.find_clips()[0].media_reference.target_url == ref.target_url


def test_relative_reference_next_to_the_edit_is_kept(tmp_path: Path) -> None:
    media = tmp_path / "media"
    _touch(media / "clip.mov")
    own = _touch(tmp_path / "edit" / "clip.mov")
    edit = tmp_path / "edit" / "cut.otio"
    ref = otio.schema.ExternalReference(target_url="clip.mov")
    otio.adapters.write_to_file(_timeline(_clip("clip", ref)), str(edit))
    tl = read_edit(edit, media_dir=media)
    assert tl.find_clips()[0].media_reference.target_url == "clip.mov"
    assert own.exists()
