"""The edit-format registry: every entry's functions exist, suffixes belong to one format,
and a target that cannot hold a scored edit is refused before any analysis."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from moodsic_engine.errors import InputError
from otio_adapter.edit_io import check_writable, read_edit
from otio_adapter.formats import FORMATS, check_of, format_for, reader_of, writer_of
from otio_adapter.testing import make_edit, write_video


def test_every_registered_function_imports() -> None:
    for fmt in FORMATS:
        for spec, get in ((fmt.reader, reader_of), (fmt.writer, writer_of), (fmt.check, check_of)):
            if spec is not None:
                assert callable(get(fmt)), spec
        assert fmt.reader or fmt.writer, fmt.name


def test_a_suffix_belongs_to_one_format() -> None:
    suffixes = [s for fmt in FORMATS for s in fmt.suffixes]
    assert len(suffixes) == len(set(suffixes))
    assert all(s.startswith(".") and s == s.lower() for s in suffixes)
    assert format_for("Edit.FCPXML").name == "FCPXML"
    assert format_for("x.unknownsuffix") is None


@pytest.mark.parametrize("name", ["scored.docx", "scored"])
def test_unwritable_target_is_refused_with_the_formats_that_work(name: str) -> None:
    with pytest.raises(InputError, match=r"cannot write this format; use one of .*\.otio") as e:
        check_writable(Path(name))
    assert "\n" not in str(e.value)


def test_reading_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "edit.otio"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_edit(fifo)


def test_score_timeline_refuses_the_output_format_before_any_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import moodsic_engine.pipeline as pipeline
    from moodsic_engine.cli import app

    video = write_video(tmp_path / "a.mp4", 2, size="64x36")
    edit = tmp_path / "edit.otio"
    import opentimelineio as otio

    otio.adapters.write_to_file(make_edit([(video.resolve(), 0, 40, 50)]), str(edit))

    def no_analysis(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("analysis ran before the output format was checked")

    monkeypatch.setattr(pipeline, "analyze_video", no_analysis)
    out = tmp_path / "scored.docx"
    res = CliRunner().invoke(
        app,
        ["score-timeline", str(edit), "-o", str(out), "--experts", "grammar", "--progress", "none"],
    )
    assert res.exit_code == 1
    assert "scored.docx: Moodsic cannot write this format" in res.output
    assert "Traceback" not in res.output and not out.exists()


_BOMB = """<?xml version="1.0"?>
<!DOCTYPE {root} [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<{root}>&b;&b;&b;&b;</{root}>
"""


@pytest.mark.parametrize(
    ("suffix", "root"), [(".fcpxml", "fcpxml"), (".xml", "xmeml"), (".kdenlive", "mlt")]
)
def test_every_xml_reader_refuses_entities_and_depth(
    tmp_path: Path, suffix: str, root: str
) -> None:
    bomb = tmp_path / f"bomb{suffix}"
    bomb.write_text(_BOMB.format(root=root))
    with pytest.raises(InputError, match="declares XML entities") as e:
        read_edit(bomb)
    assert "\n" not in str(e.value)
    deep = tmp_path / f"deep{suffix}"
    deep.write_text(f"<{root}>" + "<a>" * 300 + "</a>" * 300 + f"</{root}>")
    with pytest.raises(InputError, match="nested more than 200 deep"):
        read_edit(deep)


def test_score_timeline_unknown_expert_is_a_usage_error(tmp_path: Path) -> None:
    from moodsic_engine.cli import app

    res = CliRunner().invoke(
        app, ["score-timeline", str(tmp_path / "e.otio"), "-o", str(tmp_path / "s.otio"),
              "--experts", "grammar,mood-ring"],
    )  # fmt: skip
    assert res.exit_code == 2 and "unknown expert(s) 'mood-ring'" in res.output


def test_edl_event_count_and_size_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import otio_adapter.edl as edl

    event = "{n:03d}  A001     V     C        00:00:00:00 00:00:01:00 01:00:{s:02d}:00 01:00:{e:02d}:00\n"
    text = "TITLE: long\n" + "".join(
        event.format(n=n % 1000, s=n % 59, e=n % 59 + 1) for n in range(50)
    )
    many = tmp_path / "many.edl"
    many.write_text(text)
    monkeypatch.setattr(edl, "MAX_EVENTS", 40)
    with pytest.raises(InputError, match="50 events; an EDL holds at most 40"):
        read_edit(many, rate=25)
    monkeypatch.setattr(edl, "MAX_EDL_BYTES", 100)
    with pytest.raises(InputError, match="too large to be an EDL"):
        read_edit(many, rate=25)
