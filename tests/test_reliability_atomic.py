"""Atomic outputs under injected faults: a crash (exception or Ctrl-C) at any step of
`score_video_to_files`, or in the middle of writing a file, leaves the previous complete
output or none, no temp files (beside the outputs or in TMPDIR), and the inputs untouched."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from badinputs import good_video, va_manifest

from moodsic_engine.api import score_video_to_files
from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet
from moodsic_engine.fileio import atomic_path

CFG = Config(experts=("grammar",))


class Boom(RuntimeError):
    pass


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("atomic")
    return {
        "video": good_video(root / "clip.mp4", seconds=3),
        "library": va_manifest(root / "lib"),
    }


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for this test only, so leftovers of tempfile users can be counted."""
    folder = tmp_path / "sys-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return folder


def _silent_render(cue, cfg, dialogue):  # noqa: ANN001, ANN202
    """Stands in for the music render (the test library has no audio files)."""
    n = int(round(cue.video.duration_s * cfg.sample_rate))
    z = np.zeros((n, 2), dtype=np.float32)
    return z, z.copy(), None  # (mix, bed, levels)


def _interrupt(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise KeyboardInterrupt


def _boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise Boom("injected fault")


RENDER = "moodsic_engine.mix.mix_arrays"
# step -> (what fails, outputs requested, stand-ins). A run's outputs are one unit: the mix
# finished before the mux failed is not kept either (the cue sheet is renamed in last).
FAULTS = {
    "build_cue": ("moodsic_engine.pipeline.build_cue", ("plot",), {}),
    "render": (RENDER, ("bed", "mix"), {}),
    "write_audio": ("moodsic_engine.mix.write_audio", ("bed", "mux"), {RENDER: _silent_render}),
    "mux": ("moodsic_engine.mix.mux", ("mix", "mux"), {RENDER: _silent_render}),
    "plot": ("moodsic_engine.plot.plot_cue", ("bed", "plot"), {RENDER: _silent_render}),
}


def _previous_run(media: dict[str, Path], out: Path) -> str:
    """A complete cue sheet from an earlier run, to be kept if the next run fails."""
    score_video_to_files(media["video"], out, library=str(media["library"]), config=CFG)
    return _digest(out)


@pytest.mark.parametrize("how", ["exception", "ctrl-c"])
@pytest.mark.parametrize("step", list(FAULTS))
def test_fault_at_each_step_keeps_previous_output(
    step: str,
    how: str,
    media: dict[str, Path],
    tmp_path: Path,
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, wanted, helpers = FAULTS[step]
    out_dir = tmp_path / "out"
    cue = out_dir / "clip.moodsic.json"
    before_cue = _previous_run(media, cue)
    before_video = _digest(media["video"])
    for name, fake in helpers.items():
        monkeypatch.setattr(name, fake)
    monkeypatch.setattr(target, _interrupt if how == "ctrl-c" else _boom)
    paths = {
        "mix": out_dir / "clip.mix.wav",
        "bed": out_dir / "clip.bed.wav",
        "mux": out_dir / "clip.scored.mp4",
        "plot": out_dir / "clip.png",
    }
    extras = {k: paths[k] for k in wanted}
    with pytest.raises(KeyboardInterrupt if how == "ctrl-c" else Boom):
        score_video_to_files(
            media["video"], cue, library=str(media["library"]), config=CFG, **extras
        )
    assert _digest(cue) == before_cue  # the previous complete cue sheet, untouched
    left = _files(out_dir)
    assert not [f for f in left if ".part" in f], left  # no temp files
    assert left == ["clip.moodsic.json"]  # none of this run's outputs: they are one unit
    assert _files(private_tmp) == []  # the mux's temporary mix folder is gone too
    assert _digest(media["video"]) == before_video


@pytest.mark.parametrize("crash", ["enospc", "ctrl-c"])
def test_crash_while_writing_the_mix(
    crash: str, media: dict[str, Path], tmp_path: Path, private_tmp: Path, monkeypatch
) -> None:
    """The mixdown dies half-way through its file: no half file, no cue sheet claiming success."""
    out_dir = tmp_path / "out"
    mix = out_dir / "clip.mix.wav"
    mix.parent.mkdir()
    mix.write_bytes(b"previous mix")

    def crash_mid_write(path, y, sr):  # noqa: ANN001, ANN202
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"RIFF" + b"\0" * 1000)
            if crash == "ctrl-c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RENDER, _silent_render)
    monkeypatch.setattr("moodsic_engine.mix.write_audio", crash_mid_write)
    with pytest.raises(KeyboardInterrupt if crash == "ctrl-c" else OSError):
        score_video_to_files(
            media["video"], out_dir / "clip.moodsic.json", library=str(media["library"]),
            config=CFG, mix=mix,
        )  # fmt: skip
    assert _files(out_dir) == ["clip.mix.wav"]
    assert mix.read_bytes() == b"previous mix"
    assert _files(private_tmp) == []


def test_disk_full_while_writing_the_cue_sheet(
    media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "clip.moodsic.json"
    before = _previous_run(media, out)
    real_write_text = Path.write_text

    def half_then_enospc(self: Path, data: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if ".part" in self.name:
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half_then_enospc)
    with pytest.raises(OSError, match="No space"):
        score_video_to_files(media["video"], out, library=str(media["library"]), config=CFG)
    assert _digest(out) == before
    assert _files(tmp_path) == ["clip.moodsic.json"]
    CueSheet.from_json(out)  # still a complete, valid cue sheet


def test_ctrl_c_during_analysis_writes_nothing(
    media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moodsic_engine.experts import grammar

    calls = {"n": 0}
    real = grammar.GrammarExpert.predict

    def predict_then_interrupt(self, batch):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(grammar.GrammarExpert, "predict", predict_then_interrupt)
    video = good_video(tmp_path / "long.mp4", seconds=20, audio=False)
    with pytest.raises(KeyboardInterrupt):
        score_video_to_files(
            video, tmp_path / "out" / "c.json", library=str(media["library"]), config=CFG
        )
    assert calls["n"] == 2
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_timeline_writer_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """score-timeline's writer: an adapter that dies mid-write leaves the old file."""
    import opentimelineio as otio

    from otio_adapter import edit_io

    out = tmp_path / "scored.otio"
    out.write_text("previous timeline")
    real_from_filepath = otio.adapters.from_filepath

    class Dying:
        name = "dying"

        def write_to_file(self, timeline, path):  # noqa: ANN001, ANN202
            Path(path).write_text('{"OTIO_SCHEMA": "Timeline.1", "tra')
            raise RuntimeError("adapter crashed")

    monkeypatch.setattr(otio.adapters, "from_filepath", lambda p: Dying())
    with pytest.raises(Exception, match="adapter crashed"):
        edit_io.write_timeline(otio.schema.Timeline(name="t"), out)
    assert out.read_text() == "previous timeline"
    assert _files(tmp_path) == ["scored.otio"]
    monkeypatch.setattr(otio.adapters, "from_filepath", real_from_filepath)


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    """Temp files are private (mkstemp's 0600); the finished output is not."""
    from moodsic_engine.fileio import write_text_atomic

    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644
