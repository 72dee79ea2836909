"""Batch scoring end to end with the real pipeline (film-grammar expert, a small CSV library):
the CLI with bad clips, a batch killed midway and resumed, and Ray against the local pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_batch_fakes import make_clip, write_library_csv

from moodsic_engine.batch import run_batch
from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet

GRAMMAR = Config(experts=("grammar",))
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Six distinct 4 s clips and a small library, generated once for this module."""
    d = tmp_path_factory.mktemp("pipeline_bank")
    clips = {
        f"c{i}": make_clip(d / f"c{i}.mp4", seconds=4.0 + (i % 3), hue=i * 50) for i in range(6)
    }
    clips["library"] = write_library_csv(d / "lib" / "library.csv")
    return clips


def _folder(bank: dict[str, Path], root: Path, n: int) -> Path:
    for i in range(n):
        dest = root / ("sub" if i % 2 else "") / f"clip{i}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bank[f"c{i % 6}"], dest)
    return root


def _cues(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.moodsic.json"))
    }


def test_cli_batch_bad_clips_exit_3(tmp_path: Path, bank: dict[str, Path]) -> None:
    root = _folder(bank, tmp_path / "in", 3)
    (root / "zero.mp4").write_bytes(b"")
    data = bank["c0"].read_bytes()
    (root / "sub" / "cut.mp4").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "moodsic_engine.cli", "batch", str(root), "-o", str(out),
        "--experts", "grammar", "--library", str(bank["library"]), "--workers", "2",
        "--progress", "json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout is JSON only
    done = events[-1]
    assert done["event"] == "done" and (done["ok"], done["failed"]) == (3, 2)
    rows = {
        Path(r["input"]).name: r
        for r in map(json.loads, (out / "batch.jsonl").read_text().splitlines())
    }
    assert rows["zero.mp4"]["error"] == f"video file is empty (0 bytes): {root / 'zero.mp4'}"
    assert rows["cut.mp4"]["status"] == "failed" and rows["cut.mp4"]["error"].startswith(
        "cannot read cut.mp4"
    )
    for i in range(3):
        rel = ("sub/" if i % 2 else "") + f"clip{i}.moodsic.json"
        cue = CueSheet.from_json(out / rel)  # schema-valid and tiling
        assert cue.engine["experts"] == ["grammar"]
        assert rows[f"clip{i}.mp4"]["segments"] == len(cue.segments)
        assert rows[f"clip{i}.mp4"]["moods"] == [s.mood for s in cue.segments]
    assert (out / "contact_sheet.html").read_text().count("<svg") == 3


_DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from moodsic_engine.batch import EngineFns, run_batch
    from moodsic_engine.config import Config
    try:
        r = run_batch({root!r}, {out!r}, workers=2, library={lib!r}, config=Config(experts=("grammar",)),
                      fns=EngineFns(score="test_batch_fakes:counting_score"))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(r.exit_code)
    """
)


def test_kill_midway_then_resume(tmp_path: Path, bank: dict[str, Path]) -> None:
    n = 8
    root = _folder(bank, tmp_path / "in", n)
    lib = str(bank["library"])
    reference = tmp_path / "reference"
    assert run_batch(root, reference, workers=2, library=lib, config=GRAMMAR).exit_code == 0

    out = tmp_path / "out"
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(tests=str(TESTS), root=str(root), out=str(out), lib=lib))
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    env = dict(os.environ, MOODSIC_FAKE_SLEEP="0.6", MOODSIC_FAKE_LOG=str(log1))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    state = out / ".moodsic-batch" / "state"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(state.rglob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    finished = {p.relative_to(state).with_suffix("").as_posix() for p in state.rglob("*.json")}
    assert 2 <= len(finished) < n  # it really stopped midway
    # Only complete outputs: no temp files, every cue sheet present is a valid one.
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    for p in out.rglob("*.moodsic.json"):
        CueSheet.from_json(p)
    first = {
        json.loads(x)["rel"]: json.loads(x)["status"]
        for x in (out / "batch.jsonl").read_text().splitlines()
    }
    assert {k for k, v in first.items() if v == "ok"} == finished
    assert {v for k, v in first.items() if k not in finished} == {"interrupted"}

    env = dict(env, MOODSIC_FAKE_SLEEP="0", MOODSIC_FAKE_LOG=str(log2))
    rerun = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    rescored = [Path(line.split(" ", 1)[1]) for line in log2.read_text().splitlines()]
    rescored_rels = {p.relative_to(root.resolve()).with_suffix("").as_posix() for p in rescored}
    assert len(rescored) == len(rescored_rels)  # nothing scored twice in the rerun
    assert rescored_rels.isdisjoint(finished)  # nothing finished before was scored again
    assert rescored_rels | finished == {(("sub/" if i % 2 else "") + f"clip{i}") for i in range(n)}
    assert _cues(out) == _cues(reference)  # identical to the uninterrupted run


@pytest.fixture(scope="module")
def ray_session() -> object:
    """One local Ray for the Ray tests (run_batch reuses a running Ray and leaves it up)."""
    ray = pytest.importorskip("ray")
    import logging

    from moodsic_engine.batch.ray_backend import loopback_ray

    with loopback_ray(ray, None) as lo:  # on 127.0.0.1, not the machine's address
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}},
            **lo,
        )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_local_matches_local_pool(
    tmp_path: Path, bank: dict[str, Path], ray_session: object
) -> None:
    root = _folder(bank, tmp_path / "in", 4)
    (root / "zero.mp4").write_bytes(b"")
    lib = str(bank["library"])
    local = run_batch(root, tmp_path / "local", workers=2, library=lib, config=GRAMMAR)
    ray = run_batch(root, tmp_path / "ray", workers=2, library=lib, config=GRAMMAR, backend="ray")
    assert ray.backend == "ray" and ray.workers == 2
    assert (
        _cues(tmp_path / "local") == _cues(tmp_path / "ray") and len(_cues(tmp_path / "ray")) == 4
    )
    assert [(r["rel"], r["status"], r["moods"], r["error"]) for r in local.records] == [
        (r["rel"], r["status"], r["moods"], r["error"]) for r in ray.records
    ]
    assert ray.exit_code == local.exit_code == 3


@pytest.mark.slow
def test_ray_faults_are_isolated(
    tmp_path: Path, bank: dict[str, Path], ray_session: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_batch_fakes import FAKES

    from moodsic_engine.batch import EngineFns

    root = tmp_path / "in"
    root.mkdir()
    for name, src in (("ok0", "c0"), ("ok1", "c1"), ("hang", "c2"), ("crash", "c3")):
        shutil.copy(bank[src], root / f"{name}.mp4")
    result = run_batch(
        root, tmp_path / "out", workers=2, backend="ray", timeout_s=6, fns=EngineFns(**FAKES)
    )
    by_rel = {r["rel"]: r for r in result.records}
    assert by_rel["ok0"]["status"] == by_rel["ok1"]["status"] == "ok"
    assert by_rel["hang"]["error"] == "timed out after 6 s"
    assert by_rel["crash"]["error"].startswith("worker crashed while scoring")
    assert result.exit_code == 3


@pytest.mark.slow
def test_cli_batch_mix_and_mux(tmp_path: Path, bank: dict[str, Path]) -> None:
    import soundfile as sf

    root = _folder(bank, tmp_path / "in", 1)
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "moodsic_engine.cli", "batch", str(root), "-o", str(out),
        "--experts", "grammar", "--library", "builtin", "--workers", "1",
        "--mix", "--mux", "--progress", "none",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = sf.info(str(out / "clip0.mix.wav"))
    assert abs(info.duration - 4.0) < 0.05
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
         str(out / "clip0.scored.mp4")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert sorted(probe.stdout.split()) == ["audio", "video"]
    row = json.loads((out / "batch.jsonl").read_text())
    assert set(row["outputs"]) == {"cue", "mix", "mux"}
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def test_worker_warm_up_builds_what_the_first_clip_would(bank: dict[str, Path]) -> None:
    # Loading once per worker includes the catalogue's search index: otherwise the first
    # clip of every worker pays for it (about 0.5 s, most of a short clip's scoring time).
    from moodsic_engine.batch import EngineFns, WarmSpec
    from moodsic_engine.batch.worker import WorkerContext

    fns = EngineFns()
    spec = WarmSpec(
        config=GRAMMAR, library=str(bank["library"]), weights_dir=None, allow_outside=False,
        fns=fns,
    )  # fmt: skip
    ctx = WorkerContext(threads=1)
    ctx.warm(spec)
    library = ctx.library(spec.library, GRAMMAR, False, fns.load_library)
    assert library.clusters.k >= 2
    assert sorted(library._trees) == list(range(library.clusters.k))
    assert ctx.library(spec.library, GRAMMAR, False, fns.load_library) is library  # once
