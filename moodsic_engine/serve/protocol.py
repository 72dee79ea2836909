"""Where the warm engine listens, its token, and the messages (one JSON object per line).

Request: {"token": T, "op": "ping" | "score" | "stop", "args": {...}}.
Replies: any number of {"event": "progress", "stage", "done", "total"} and
{"event": "warning", "message"} lines, then {"event": "done", ...} or
{"event": "error", "kind": ERROR_CLASS, "message": ...}.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResourceError
from ..weights import default_cache_dir

DIR_ENV = "MOODSIC_SERVE_DIR"  # where the socket, token and address file live
OFF_ENV = "MOODSIC_NO_SERVE"  # 1: never use a running server (always in-process)
MAX_LINE = 1 << 20  # a request or reply line larger than this is refused
LOOPBACK = "127.0.0.1"


def serve_dir() -> Path:
    """$MOODSIC_SERVE_DIR, else <cache>/moodsic/serve (private to the user)."""
    env = os.environ.get(DIR_ENV)
    return Path(env).expanduser() if env else default_cache_dir() / "serve"


def _private_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def token_path(folder: Path | None = None) -> Path:
    return (folder or serve_dir()) / "token"


def address_path(folder: Path | None = None) -> Path:
    return (folder or serve_dir()) / "address.json"


def new_token(folder: Path | None = None) -> str:
    """A fresh token, written 0600 (created that way, never readable by others)."""
    path = token_path(_private_dir(folder or serve_dir()))
    token = secrets.token_hex(32)
    tmp = path.with_name(f".token.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.replace(tmp, path)
    return token


def read_token(folder: Path | None = None) -> str | None:
    try:
        return token_path(folder).read_text().strip() or None
    except OSError:
        return None


def token_ok(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Address:
    """A Unix socket path, or a loopback TCP port."""

    unix: str = ""
    port: int = 0

    def describe(self) -> str:
        return self.unix or f"{LOOPBACK}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = self.unix
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (LOOPBACK, self.port)
        s.settimeout(timeout)
        try:
            s.connect(target)
        except OSError:
            s.close()
            raise
        return s


def write_address(addr: Address, folder: Path | None = None) -> None:
    from ..fileio import write_text_atomic

    path = address_path(_private_dir(folder or serve_dir()))
    write_text_atomic(path, json.dumps({"unix": addr.unix, "port": addr.port, "pid": os.getpid()}))


def read_address(folder: Path | None = None) -> Address | None:
    try:
        obj = json.loads(address_path(folder).read_text())
        return Address(str(obj.get("unix", "")), int(obj.get("port", 0)))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def clear_files(addr: Address, folder: Path | None = None) -> None:
    """Remove what a server leaves (on its way out)."""
    for p in (address_path(folder), token_path(folder), Path(addr.unix) if addr.unix else None):
        if p is not None:
            with contextlib.suppress(OSError):
                p.unlink()


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    sock.sendall(json.dumps(obj, allow_nan=False).encode() + b"\n")


class LineReader:
    """JSON objects from a stream socket, one per line, each at most MAX_LINE bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read(self) -> dict[str, Any] | None:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise ResourceError("moodsic serve: a message over 1 MiB")
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj
