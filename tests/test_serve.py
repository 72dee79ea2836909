"""`moodsic serve` (issue 19): a real server process on a Unix socket in tmp scores the same
cue sheet as in-process, `moodsic score` goes through it while it runs, a wrong token is
refused, only 127.0.0.1 or a Unix socket is ever listened on, and nothing lingers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import lavfi_video

from moodsic_engine.config import Config
from moodsic_engine.errors import InputError, VideoError
from moodsic_engine.serve import client, protocol, server


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lavfi_video(tmp_path_factory.mktemp("serve") / "c.mp4", seconds=3.0)


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A `moodsic serve` process (grammar expert) on a Unix socket in tmp; stopped after."""
    folder = tmp_path / "srv"
    monkeypatch.setenv(protocol.DIR_ENV, str(folder))
    monkeypatch.delenv(protocol.OFF_ENV, raising=False)
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodsic_engine.cli", "serve", "--socket", str(sock),
         "--experts", "grammar", "--idle-timeout", "300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while client.request("ping") is None:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        yield folder
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode is not None  # the process is gone
    assert not sock.exists() and not protocol.token_path(folder).exists()


def test_served_cue_equals_in_process_and_cli_uses_it(
    running: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.api import score_video_to_files
    from moodsic_engine.cli import app
    from moodsic_engine.cue import CueSheet

    token = protocol.token_path(running)
    assert token.stat().st_mode & 0o777 == 0o600
    assert (running.stat().st_mode & 0o777) == 0o700
    addr = protocol.read_address(running)
    assert addr is not None and addr.unix and (Path(addr.unix).stat().st_mode & 0o777) == 0o600

    cfg = Config(experts=("grammar",))
    events: list[tuple[str, int, int]] = []
    remote = client.score_via_server(
        clip, tmp_path / "remote.json", config=cfg, progress=lambda *e: events.append(e)
    )
    assert remote is not None and remote.server == addr.unix
    monkeypatch.setenv(protocol.OFF_ENV, "1")
    local = score_video_to_files(clip, tmp_path / "local.json", config=cfg)
    monkeypatch.delenv(protocol.OFF_ENV)
    a = CueSheet.from_json(remote.cue_path)
    b = local.cue
    assert [s.stable for s in a.samples] == [s.stable for s in b.samples] and len(a.samples) == 6
    assert [(s.start_s, s.track.id if s.track else None) for s in a.segments] == [
        (s.start_s, s.track.id if s.track else None) for s in b.segments
    ]
    assert ("perceive", 6, 6) in events
    assert remote.summary_lines()[0] == f"cue sheet: {tmp_path / 'remote.json'}"

    before = client.request("ping")["scored"]
    monkeypatch.chdir(tmp_path)  # a relative output path means the client's folder
    res = CliRunner().invoke(app, ["score", str(clip), "-o", "cli.json", "--experts", "grammar",
                                   "--progress", "none"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert client.request("ping")["scored"] == before + 1  # it went through the server
    assert client.request("ping")["loads"] == 1  # the preloaded models served every request
    assert (tmp_path / "cli.json").is_file()

    # a user error comes back as the same one-line error and exit code
    with pytest.raises(VideoError):
        client.score_via_server(tmp_path / "missing.mp4", tmp_path / "x.json", config=cfg)
    res = CliRunner().invoke(app, ["score", str(tmp_path / "none.mp4"), "--experts", "grammar"])
    assert res.exit_code != 0


def test_wrong_token_is_refused(running: Path) -> None:
    addr = protocol.read_address(running)
    assert addr is not None
    with addr.connect(5.0) as s:
        protocol.send(s, {"token": "0" * 64, "op": "stop"})
        reply = protocol.LineReader(s).read()
    assert reply == {"event": "error", "kind": "auth", "message": "wrong token"}
    assert client.request("ping") is not None  # still running: "stop" was not obeyed
    with pytest.warns(UserWarning, match="refused the token; scoring in-process"):
        assert client.request("ping", token="nope") is None  # the client falls back


def test_listens_only_on_loopback_or_a_unix_socket(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="127.0.0.1"):
        server.serve_forever(host="0.0.0.0", port=0, folder=tmp_path, preload=False)
    sock, addr = server._bind(None, 0, "127.0.0.1")
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
        assert addr.port == sock.getsockname()[1] > 0
    finally:
        sock.close()
    with pytest.raises(InputError, match="too long"):
        server._bind(str(tmp_path / ("x" * 120) / "s.sock"), None, "127.0.0.1")


def test_no_server_means_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.DIR_ENV, str(tmp_path / "none"))
    assert client.score_via_server(tmp_path / "c.mp4", tmp_path / "o.json") is None
    # files of a server that was killed: nothing answers, so in-process again
    protocol.write_address(protocol.Address(unix=str(tmp_path / "gone.sock")), tmp_path / "none")
    protocol.new_token(tmp_path / "none")
    assert client.request("ping") is None
    assert json.loads(protocol.address_path(tmp_path / "none").read_text())["unix"]
