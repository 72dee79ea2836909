"""Every real editor's file under tests/data meets the command line as a user would meet it:
read or refused in one line (never a traceback), and one file of each format scored end to
end through `moodsic score-timeline` with its media relinked by --media-dir."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from editor_corpus import music_clips, picture_items, stand_in_media
from typer.testing import CliRunner

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import read_edit
from otio_adapter.formats import format_for

DATA = Path(__file__).parent / "data"
EDITS = sorted(
    p
    for folder in ("otio", "fcpxml", "fcp7", "kdenlive", "edl")
    for p in (DATA / folder).iterdir()
    if p.name != "SOURCES.md"
)


def _plain(path: Path, tmp_path: Path) -> Path:
    """A gzipped test file (kept small in the repository) as the editor wrote it."""
    if path.suffix != ".gz":
        return path
    out = tmp_path / path.stem
    out.write_bytes(gzip.decompress(path.read_bytes()))
    return out


@pytest.mark.parametrize("path", EDITS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_is_read_or_refused_in_one_line(path: Path, tmp_path: Path) -> None:
    edit = _plain(path, tmp_path)
    assert format_for(edit) is not None, f"{edit.name}: no registered format"
    try:
        timeline = read_edit(edit)
    except InputError as exc:  # a refusal says what to do, on one line
        assert "\n" not in str(exc) and edit.name in str(exc)
        return
    assert len(timeline.tracks) >= 1


ONE_PER_FORMAT = [
    ("otio/transition.otio", [], ".otio"),
    ("fcpxml/23.98.fcpxml", [], ".fcpxml"),
    ("fcp7/premiere_enable_property.xml", [], ".xml"),
    ("kdenlive/kdenlive_example_v221170.kdenlive", [], ".mlt"),
    ("edl/25fps.edl", [], ".edl"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra", "suffix"), ONE_PER_FORMAT)
def test_score_timeline_cli_on_one_file_of_each_format(
    name: str, extra: list[str], suffix: str, tmp_path: Path
) -> None:
    from moodsic_engine.cli import app
    from otio_adapter.testing import small_library

    edit = DATA / name
    media = stand_in_media(read_edit(edit), tmp_path / "media")
    small_library(tmp_path / "lib", per_quadrant=1, seconds=20.0)
    out = tmp_path / f"scored{suffix}"
    args = ["score-timeline", str(edit), "-o", str(out), "--media-dir", str(media),
            "--library", str(tmp_path / "lib"), "--experts", "grammar", "--progress", "none",
            "--cue", str(tmp_path / "scored.moodsic.json"), *extra]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.is_file() and (tmp_path / "scored.moodsic.json").is_file()
    assert "Traceback" not in res.output
    if suffix != ".mlt":  # MLT is write-only: its check is the melt render in test_mlt_export
        before = read_edit(edit, media_dir=media)
        back = read_edit(out, media_dir=media)
        assert picture_items(back) == picture_items(before)
        # the music is there as audio clips (formats that keep Moodsic's metadata say so too)
        assert _audio_clips(back) > _audio_clips(before)
        assert music_clips(back) or suffix in (".edl", ".xml")


def _audio_clips(timeline) -> int:  # noqa: ANN001
    return sum(
        1 for t in timeline.tracks if t.kind == "Audio" for _ in t.find_clips(shallow_search=True)
    )
