"""A small web status page for a live session (http.server, bound to 127.0.0.1 by default).

`/` is an HTML page that refreshes itself: current mood, the V/A trail as an inline SVG plot,
now playing, next up, face coverage. `/status.json` is the same as JSON. The page is built
from numbers and names only; no frame, face crop or picture of the room exists to serve.
"""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import InputError
from .events import LiveStatus

_SIZE = 240  # plot side in pixels


def trail_svg(trail: list[list[float]], size: int = _SIZE) -> str:
    """The V/A trail (valence right, arousal up, both -1..1) as an SVG polyline, newest dot."""

    def xy(v: float, a: float) -> tuple[float, float]:
        return (round((v + 1) / 2 * size, 1), round((1 - (a + 1) / 2) * size, 1))

    half = size / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="valence-arousal trail">',
        f'<rect width="{size}" height="{size}" fill="#fafafa" stroke="#999"/>',
        f'<line x1="{half}" y1="0" x2="{half}" y2="{size}" stroke="#ccc"/>',
        f'<line x1="0" y1="{half}" x2="{size}" y2="{half}" stroke="#ccc"/>',
        f'<text x="{size - 4}" y="{half - 4}" font-size="10" text-anchor="end">valence</text>',
        f'<text x="{half + 4}" y="12" font-size="10">arousal</text>',
    ]
    if trail:
        pts = " ".join(f"{x},{y}" for x, y in (xy(p[1], p[2]) for p in trail))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#3b6ea8" stroke-width="1.5"/>')
        x, y = xy(trail[-1][1], trail[-1][2])
        parts.append(f'<circle cx="{x}" cy="{y}" r="4" fill="#c0392b"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_page(snap: dict[str, Any]) -> str:
    """The status page's HTML for one snapshot of `LiveStatus`."""

    def esc(x: Any) -> str:
        return html.escape("—" if x is None else str(x))

    cov = snap.get("face_coverage")
    coverage = "no face expert" if cov is None else f"{100 * float(cov):.0f} % of recent samples"
    rows = [
        ("Mood", snap.get("mood_label") or snap.get("mood")),
        ("Now playing", snap.get("now_playing")),
        ("Next up", snap.get("next_up")),
        ("Face coverage", coverage),
        ("Source", snap.get("source")),
        ("Session time", f"{float(snap.get('t', 0.0)):.0f} s"),
        ("Samples", snap.get("samples")),
        ("Problems", snap.get("problems")),
    ]
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='refresh' content='2'><title>Moodsic live</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "</style></head><body><h1>Moodsic live</h1>"
        f"<table>{table}</table><h2>Valence / arousal, last minutes</h2>"
        f"{trail_svg(snap.get('trail') or [])}</body></html>"
    )


class StatusServer:
    """Serves a LiveStatus on host:port from a daemon thread; `port` 0 picks a free one."""

    def __init__(self, status: LiveStatus, host: str = "127.0.0.1", port: int = 0) -> None:
        status_ref = status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/status.json":
                    body = json.dumps(status_ref.snapshot()).encode()
                    kind = "application/json"
                elif path in ("/", "/index.html"):
                    body = render_page(status_ref.snapshot()).encode()
                    kind = "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # a page that refreshes every 2 s would fill the terminal

        try:
            self._server = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise InputError(
                f"status page: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moodsic-live-status", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
