"""Ray as users run it: a cluster started with `ray start` (a head and a second node, each
with a temp folder of its own), every process on 127.0.0.1, and `moodsic batch
--backend ray --ray-address` driving it from another process.

Ray turns 127.0.0.1 into the machine's interface address wherever it meets it, in
`ray start --node-ip-address` too (Ray 2.60). The nodes here are started through a small
wrapper that switches that off the way Ray does on macOS/Windows (a node's address is
then 127.0.0.1 as asked); the driver does the same by itself (batch.ray_backend). The
processes of each node carry an environment marker, so the teardown stops exactly those
(by pid) and the test can check what they listen on. `ray stop` is not used: it stops
every Ray process of the user on the machine, including other runs'.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_batch_fakes import FAKES, make_clip

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # a dependency of ray

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
MARK = "MOODSIC_RAY_TEST_NODE"
# `ray start` with 127.0.0.1 kept as 127.0.0.1 (services.get_node_ip_address answers it).
RAY_LOOPBACK = (
    "import sys\n"
    "import ray._private.services as services\n"
    "services.get_node_ip_address = lambda address=None: '127.0.0.1'\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv[0] = 'ray'\n"
    "main()\n"
)
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _marked(value: str) -> list[psutil.Process]:
    """This user's processes whose environment carries MARK=value (a node and its workers)."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get(MARK) == value:
                found.append(p)
    return found


def _kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.pid in pids and c.status == psutil.CONN_LISTEN:
            out.append((c.pid, c.laddr.ip, c.laddr.port))
    return out


class Cluster:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.marks: list[str] = []
        self.wrapper = root / "ray_loopback.py"
        self.wrapper.write_text(RAY_LOOPBACK)

    def start(self, name: str, *args: str, wait: bool = True) -> subprocess.Popen[bytes]:
        mark = f"{name}-{secrets.token_hex(4)}"
        self.marks.append(mark)
        cmd = [sys.executable, str(self.wrapper), "start", "--node-ip-address", "127.0.0.1"]
        cmd += ["--num-cpus", "1", "--temp-dir", str(self.root / name), "--disable-usage-stats"]
        cmd += ["--object-store-memory", str(80 * 1024 * 1024), *args]
        proc = subprocess.Popen(
            cmd,
            env={**self.env, MARK: mark},
            stdout=subprocess.DEVNULL,
            stderr=(self.root / f"{name}.log").open("wb"),
        )
        if wait:
            assert proc.wait(timeout=90) == 0, (self.root / f"{name}.log").read_text()[-2000:]
        return proc

    def processes(self, index: int | None = None) -> list[psutil.Process]:
        marks = self.marks if index is None else [self.marks[index]]
        return [p for m in marks for p in _marked(m)]

    def stop(self) -> None:
        _kill(self.processes())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Short paths: Ray's socket names must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="mray-"))
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]),
        # A cluster of our own with a token of its own (not ~/.ray's).
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        MOODSIC_FAKE_SLEEP="2",
        MOODSIC_FAKE_LOG=str(root / "score.log"),
    )
    env.pop("RAY_ADDRESS", None)
    c = Cluster(root, env)
    try:
        head = c.start(
            "head",
            "--head",
            "--port",
            str(c.port),
            "--include-dashboard",
            "false",
            "--ray-client-server-port",
            str(_free_port()),
            wait=False,
        )
        # The second node joins as soon as the head's GCS answers, while the head finishes.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", c.port), 1):
                break
            time.sleep(0.2)
        c.start("n2", "--address", c.address, "--dashboard-agent-listen-port", str(_free_port()))
        assert head.wait(timeout=90) == 0, (root / "head.log").read_text()[-2000:]
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_batch_on_a_two_node_cluster_survives_losing_a_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    bank = make_clip(tmp_path / "bank.mp4", seconds=2.0)
    for i in range(6):
        (src / f"c{i}.mp4").parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bank, src / f"c{i}.mp4")
        with (src / f"c{i}.mp4").open("ab") as fh:  # distinct bytes, same picture
            fh.write(bytes([i]))
    out = tmp_path / "out"
    fns = json.dumps(FAKES)
    driver_code = (
        "import json, sys\n"
        "from moodsic_engine.batch import EngineFns, run_batch\n"
        f"r = run_batch({str(src)!r}, {str(out)!r}, backend='ray', workers=2,\n"
        f"    ray_address={cluster.address!r}, fns=EngineFns(**json.loads({fns!r})))\n"
        "print(json.dumps([[x['rel'], x['status'], x['error']] for x in r.records]))\n"
        "sys.exit(r.exit_code)\n"
    )
    t0 = time.monotonic()
    driver = subprocess.Popen(
        [sys.executable, "-c", driver_code],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the second node's actor is scoring a clip, then kill that node.
    busy = None
    deadline = time.monotonic() + 60
    while busy is None and time.monotonic() < deadline and driver.poll() is None:
        for p in cluster.processes(1):
            with contextlib.suppress(psutil.Error):
                if "ClipActor.score" in " ".join(p.cmdline()):
                    busy = p
        time.sleep(0.1)
    assert busy is not None, "the second node never got a clip"
    pids = {p.pid for p in cluster.processes()} | {driver.pid}
    pids |= {c.pid for c in psutil.Process(driver.pid).children(recursive=True)}
    listening = _listening(pids)
    assert listening and all(ip in LOOPBACK for _, ip, _ in listening), listening
    _kill(cluster.processes(1))
    stdout, stderr = driver.communicate(timeout=120)
    wall = time.monotonic() - t0
    assert driver.returncode == 0, (stdout[-3000:], stderr[-3000:])
    # Ray's report of the lost node goes to stderr: stdout holds only what the driver printed.
    assert len(stdout.strip().splitlines()) == 1, stdout[-2000:]
    records = json.loads(stdout)
    assert sorted(r[0] for r in records) == [f"c{i}" for i in range(6)]
    assert all(r[1] == "ok" for r in records), records
    assert _files(out) == sorted(
        [f"c{i}.moodsic.json" for i in range(6)]
        + [".moodsic-batch/lock", "batch.csv", "batch.jsonl", "contact_sheet.html"]
        + [f".moodsic-batch/state/c{i}.json" for i in range(6)]
    )
    summary = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert len(summary) == 6 and {s["status"] for s in summary} == {"ok"}
    assert wall < 90


def test_cli_batch_reaches_the_cluster_by_loopback(cluster: Cluster, tmp_path: Path) -> None:
    """`moodsic batch --ray-address 127.0.0.1:PORT` (the real engine, grammar only) on the
    cluster that is left (the head): Ray does not turn the address into the network one."""
    src = make_clip(tmp_path / "in" / "one.mp4", seconds=2.0)
    out = tmp_path / "out"
    env = {k: v for k, v in cluster.env.items() if not k.startswith("MOODSIC_FAKE")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "moodsic"), "batch", str(src.parent), "-o", str(out),
         "--backend", "ray", "--ray-address", cluster.address, "--experts", "grammar",
         "--progress", "json", "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "one.moodsic.json").is_file()
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # JSON and nothing else
    assert events[-1]["event"] == "done" and events[-1]["ok"] == 1


def test_unreachable_address_is_one_line(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in" / "one.mp4", seconds=1.0)
    out = tmp_path / "out"
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "moodsic"), "batch", str(src.parent), "-o", str(out),
         "--backend", "ray", "--ray-address", f"127.0.0.1:{port}", "--progress", "none"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 30
    # Nothing was scored; only the batch's own lock folder was made.
    assert _files(out) == [".moodsic-batch/lock"]
