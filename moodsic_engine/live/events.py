"""The session's event log (JSON lines) and the live status the web page shows.

Every line is one JSON object with `event` (sample, mood, track_start, source, problem, stop),
`t` (session seconds) and `wall` (UTC time). Lines are appended and flushed one by one, so
the log survives a crash up to its last line. Problems also go to stderr, one line each.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from ..errors import InputError


class EventLog:
    """Append-only JSON-lines log (None path: nothing written), plus one line per problem on
    stderr. Thread-safe."""

    def __init__(self, path: str | Path | None, *, echo_problems: bool = True) -> None:
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self.echo_problems = echo_problems
        self.problems = 0
        if path is not None:
            p = Path(path)
            if p.exists() and not p.is_file():
                raise InputError(f"events log {p} exists and is not a regular file")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                self._fh = p.open("a", encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot write events log {p}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any]) -> None:
        rec = {"wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        line = json.dumps(rec, separators=(",", ":"), default=float)
        with self._lock:
            if record.get("event") == "problem":
                self.problems += 1
                if self.echo_problems:
                    print(f"moodsic live: {record.get('message', '')}", file=sys.stderr, flush=True)
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()

    def problem(self, t: float, message: str) -> None:
        """One line about something that went wrong (and what is done about it)."""
        text = " ".join(str(message).split())[:300]
        self.write({"event": "problem", "t": round(t, 3), "message": text})

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class LiveStatus:
    """What the status page shows: numbers and names only, never a picture. Thread-safe."""

    def __init__(self, trail_s: float = 600.0, trail_points: int = 600) -> None:
        self._lock = threading.Lock()
        self.trail_s = trail_s
        self._trail: deque[tuple[float, float, float]] = deque(maxlen=trail_points)
        self._state: dict[str, Any] = {
            "mood": None,
            "mood_label": None,
            "now_playing": None,
            "next_up": None,
            "face_coverage": None,
            "source": "starting",
            "samples": 0,
            "problems": 0,
            "t": 0.0,
        }

    def sample(self, t: float, v: float, a: float) -> None:
        with self._lock:
            self._trail.append((t, v, a))
            self._state["samples"] += 1
            while self._trail and self._trail[0][0] < t - self.trail_s:
                self._trail.popleft()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._state.update(fields)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._state)
            out["trail"] = [list(p) for p in self._trail]
        return out
