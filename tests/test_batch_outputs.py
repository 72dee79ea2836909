"""A clip's outputs are one unit, and they stay in OUTDIR.

Fault injection through the fake muxer (test_batch_fakes.fake_mux): a clip named
*slowmux* hangs half-way through its mux with a work folder in TMPDIR and a half-written
output beside its target; *muxfail* fails there after its cue sheet was computed. Every
test lists OUTDIR and the (private) temp folder before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_batch_fakes import FAKES, make_clip

from moodsic_engine.batch import EngineFns, run_batch
from moodsic_engine.errors import InputError

FNS = EngineFns(**FAKES)
REPO = Path(__file__).resolve().parent.parent
SUMMARIES = ["batch.csv", "batch.jsonl", "contact_sheet.html", ".moodsic-batch/lock"]


def _files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _outputs(*rels: str, mux: bool = False) -> list[str]:
    out = list(SUMMARIES)
    for rel in rels:
        out += [f"{rel}.moodsic.json", f".moodsic-batch/state/{rel}.json"]
        if mux:
            out.append(f"{rel}.scored.mp4")
    return sorted(out)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("bank") / "c.mp4", seconds=2.0)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of this test's own (workers inherit TMPDIR), to list before and after."""
    folder = tmp_path / "sys-tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setenv("MOODSIC_FAKE_LOG", str(tmp_path / "score.log"))
    monkeypatch.delenv("MOODSIC_FAKE_SLEEP", raising=False)
    return folder


def _inputs(root: Path, clip: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        data = clip.read_bytes() + bytes([i])  # distinct content, same picture
        (root / f"{name}.mp4").write_bytes(data)
    return root


def test_timeout_mid_mux_and_failed_mux_leave_nothing(
    tmp_path: Path, clip: Path, private_tmp: Path
) -> None:
    root = _inputs(tmp_path / "in", clip, ["ok", "slowmux", "muxfail"])
    out = tmp_path / "out"
    assert _files(out) == [] and _entries(private_tmp) == []
    seen: dict[str, list[str]] = {"tmp": [], "out": []}
    done = threading.Event()

    def watch() -> None:  # what the hanging clip had on disk before it was stopped
        while not done.is_set():
            seen["tmp"] += [n for n in _entries(private_tmp) if n.startswith("moodsic-mux-p")]
            seen["out"] += [n for n in _files(out) if n.startswith(".slowmux.scored.")]
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.monotonic()
    try:
        result = run_batch(root, out, workers=2, timeout_s=4, mux=True, fns=FNS)
    finally:
        done.set()
        watcher.join()
    by_rel = {r["rel"]: r for r in result.records}
    assert by_rel["ok"]["status"] == "ok"
    assert by_rel["slowmux"]["error"] == "timed out after 4 s"
    assert by_rel["muxfail"]["error"] == "cannot mux muxfail.mp4: injected failure"
    assert result.exit_code == 3
    assert seen["tmp"] and seen["out"], seen  # the killed worker did leave things behind
    # ... which the parent removed: no cue sheet, no partial files, no work folders.
    assert _files(out) == _outputs("ok", mux=True)
    assert _entries(private_tmp) == []
    assert time.monotonic() - t0 < 60


def test_rerun_cleans_what_a_killed_batch_left(
    tmp_path: Path, clip: Path, private_tmp: Path
) -> None:
    root = _inputs(tmp_path / "in", clip, ["ok", "slowmux"])
    out = tmp_path / "out"
    log = tmp_path / "score.log"
    code = (
        "import json, sys\n"
        "from moodsic_engine.batch import EngineFns, run_batch\n"
        f"run_batch({str(root)!r}, {str(out)!r}, workers=1, mux=True,\n"
        f"          fns=EngineFns(**json.loads({json.dumps(FAKES)!r})))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]),
        "MOODSIC_FAKE_LOG": str(log),
    }
    batch = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "mux-started" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and batch.poll() is None
            time.sleep(0.05)
    finally:
        import psutil

        worker = psutil.Process(batch.pid).children(recursive=True)
        os.killpg(batch.pid, signal.SIGKILL)  # the batch and its worker, no clean-up at all
        batch.wait()
        psutil.wait_procs(worker, timeout=10)  # "the next run" starts once they are gone
    left_out = [f for f in _files(out) if ".part" in f]
    left_tmp = [n for n in _entries(private_tmp) if n.startswith("moodsic-mux-p")]
    assert left_out and left_tmp, (_files(out), _entries(private_tmp))
    # A folder of a live process (this one) is not a leftover.
    live = private_tmp / f"moodsic-mux-p{os.getpid()}-abcdefgh"
    live.mkdir()
    (root / "slowmux.mp4").unlink()  # the rerun does not even plan that clip
    result = run_batch(root, out, workers=1, mux=True, fns=FNS)
    assert [r["status"] for r in result.records] in (["ok"], ["skipped"])
    assert not [f for f in _files(out) if ".part" in f]
    assert _entries(private_tmp) == [live.name]
    assert _files(out) == _outputs("ok", mux=True)


def test_outputs_never_leave_outdir(tmp_path: Path, clip: Path, private_tmp: Path) -> None:
    """Inputs anywhere (absolute, `..`, the same clip twice); outputs only under OUTDIR."""
    (tmp_path / "far" / "deep").mkdir(parents=True)
    a = tmp_path / "far" / "deep" / "a.mp4"
    shutil.copy(clip, a)
    b = _inputs(tmp_path / "near", clip, ["b"]) / "b.mp4"
    manifest = tmp_path / "lists" / "m.jsonl"
    manifest.parent.mkdir()
    rows = [
        {"path": str(a)},
        {"path": "../near/b.mp4"},
        {"path": "../far/deep/../deep/a.mp4", "out": "again/a"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    before = set(_files(tmp_path)) - set(_files(out))
    result = run_batch(manifest, out, workers=1, fns=FNS)
    assert result.exit_code == 0
    after = set(_files(tmp_path))
    new = sorted(after - before - {"score.log"})
    assert new and all(f.startswith("out/") for f in new), new
    rels = sorted(r["rel"] for r in result.records)
    assert rels == ["again/a", "far/deep/a", "near/b"]
    assert b.exists() and _entries(private_tmp) == []

    for bad, why in (
        ({"path": str(a), "out": "../escape"}, "inside the output folder"),
        ({"path": str(a), "out": "/etc/escape"}, "inside the output folder"),
    ):
        manifest.write_text(json.dumps(bad) + "\n")
        with pytest.raises(InputError, match=why):
            run_batch(manifest, tmp_path / "out2", workers=1, fns=FNS)
    manifest.write_text(json.dumps({"path": str(a)}) + "\n" + json.dumps({"path": str(a)}) + "\n")
    with pytest.raises(InputError, match="writes the same output"):
        run_batch(manifest, tmp_path / "out2", workers=1, fns=FNS)
    assert not (tmp_path / "escape").exists() and not Path("/etc/escape").exists()


def test_symlink_in_outdir_pointing_out_is_refused(tmp_path: Path, clip: Path) -> None:
    """OUTDIR/a is a link to a folder elsewhere: the batch refuses (exit 1, one line)
    before writing anything there."""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    shutil.copy(clip, root / "a" / "c0.mp4")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(elsewhere, target_is_directory=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "moodsic"), "batch", str(root), "-o", str(out),
         "--experts", "grammar", "--progress", "none"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and "points outside" in lines[0], proc.stderr
    assert _entries(elsewhere) == []
    assert time.monotonic() - t0 < 60


@pytest.mark.slow  # a real analysis and mix (~30 s)
def test_score_mux_failure_leaves_no_cue_sheet(tmp_path: Path, clip: Path) -> None:
    """`moodsic score` whose mux fails after the analysis: exit 1, one line, and none of
    the run's outputs (no cue sheet, no mix), no temp files, no work folders."""
    out = tmp_path / "out"
    out.mkdir()
    tmp = tmp_path / "sys-tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "moodsic"), "score", str(clip),
         "-o", str(out / "c.moodsic.json"), "--experts", "grammar", "--progress", "none",
         "--mix", str(out / "c.mix.wav"), "--mux", str(out / "c.scored.notacontainer")],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and "cannot mux" in lines[0], proc.stderr
    assert _files(out) == [] and _entries(tmp) == []
