"""Batch summaries (`batch.jsonl`, `batch.csv`), the HTML contact sheet, and progress reporters."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..fileio import write_text_atomic
from .model import CONTACT_SHEET, SUMMARY_CSV, SUMMARY_JSONL, BatchResult

CSV_COLUMNS = [
    "input",
    "status",
    "seconds",
    "duration_s",
    "segments",
    "moods",
    "tracks",
    "cue",
    "mix_lufs",
    "mix_true_peak_dbtp",
    "louder_than_target",
    "level_warnings",
    "error",
]
_JSONL_KEYS = [
    "input", "rel", "status", "seconds", "duration_s", "segments", "moods", "mood_labels",
    "tracks", "experts", "outputs", "mix_lufs", "mix_true_peak_dbtp", "louder_than_target",
    "level_warnings", "error",
]  # fmt: skip


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """The public part of a record (no internal index, no hashes)."""
    row = {k: record.get(k) for k in _JSONL_KEYS}
    row["moods"] = row["moods"] or []
    row["tracks"] = row["tracks"] or []
    row["outputs"] = row["outputs"] or {}
    if record.get("traceback"):
        row["traceback"] = record["traceback"]
    return row


def write_summaries(outdir: Path, records: list[dict[str, Any]]) -> tuple[Path, Path]:
    rows = [summary_row(r) for r in records]
    jsonl = "".join(
        json.dumps(r, ensure_ascii=False, allow_nan=False, default=str) + "\n" for r in rows
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                "input": r["input"],
                "status": r["status"],
                "seconds": "" if r["seconds"] is None else r["seconds"],
                "duration_s": "" if r["duration_s"] is None else r["duration_s"],
                "segments": "" if r["segments"] is None else r["segments"],
                "moods": ";".join(r["moods"]),
                "tracks": ";".join(
                    (t or {}).get("title") or (t or {}).get("id") or "" for t in r["tracks"]
                ),
                "cue": r["outputs"].get("cue", ""),
                "mix_lufs": "" if r["mix_lufs"] is None else r["mix_lufs"],
                "mix_true_peak_dbtp": (
                    "" if r["mix_true_peak_dbtp"] is None else r["mix_true_peak_dbtp"]
                ),
                "louder_than_target": (
                    "" if r["louder_than_target"] is None else str(r["louder_than_target"]).lower()
                ),
                "level_warnings": " | ".join(r["level_warnings"] or []),
                "error": r["error"] or "",
            }
        )
    return (
        write_text_atomic(outdir / SUMMARY_JSONL, jsonl or "\n"),
        write_text_atomic(outdir / SUMMARY_CSV, buf.getvalue()),
    )


# ----------------------------------------------------------------------------- contact sheet
_PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]
_W, _H = 720, 64


def _mood_colour(slug: str, colours: dict[str, str]) -> str:
    if slug not in colours:
        colours[slug] = _PALETTE[len(colours) % len(_PALETTE)]
    return colours[slug]


def _timeline_svg(cue: dict[str, Any], colours: dict[str, str]) -> str:
    duration = float(cue.get("video", {}).get("duration_s") or 0.0) or 1.0
    parts = [
        f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for seg in cue.get("segments", []):
        x0 = _W * float(seg["start_s"]) / duration
        x1 = _W * float(seg["end_s"]) / duration
        track = seg.get("track") or {}
        tip = (
            f"{seg['start_s']:.1f}-{seg['end_s']:.1f} s  {seg.get('mood_label', seg['mood'])}  "
            f"V {seg['valence']:+.2f} A {seg['arousal']:+.2f}  conf {seg['confidence']:.2f}"
            + (f"  track: {track.get('title') or track.get('id')}" if track else "")
        )
        parts.append(
            f'<rect x="{x0:.1f}" y="0" width="{max(x1 - x0, 0.5):.1f}" height="{_H}" '
            f'fill="{_mood_colour(seg["mood"], colours)}" fill-opacity="0.55"><title>{html.escape(tip)}</title></rect>'
        )
        if x1 - x0 > 90:  # room for the mood's name inside its band
            label = html.escape(str(seg.get("mood_label", seg["mood"])))
            parts.append(f'<text x="{x0 + 4:.1f}" y="12" font-size="10" fill="#333">{label}</text>')
    parts.append(
        f'<line x1="0" y1="{_H / 2}" x2="{_W}" y2="{_H / 2}" stroke="#bbb" stroke-width="0.5"/>'
    )
    for key, style in (("v", ""), ("a", ' stroke-dasharray="4 3"')):
        points = []
        for s in cue.get("samples", []):
            stable = s.get("stable") or {}
            if stable.get(key) is None:
                continue
            x = _W * float(s["t"]) / duration
            y = _H / 2 - float(stable[key]) * (_H / 2 - 2)
            points.append(f"{x:.1f},{y:.1f}")
        if points:
            parts.append(
                f'<polyline fill="none" stroke="#222" stroke-width="1.4"{style} points="{" ".join(points)}"/>'
            )
    for c in cue.get("cuts", []):
        x = _W * float(c) / duration
        parts.append(f'<line x1="{x:.1f}" y1="{_H - 6}" x2="{x:.1f}" y2="{_H}" stroke="#000"/>')
    parts.append("</svg>")
    return "".join(parts)


def write_contact_sheet(outdir: Path, records: list[dict[str, Any]]) -> Path:
    """One row per clip: its mood segments as coloured bands, stable valence (solid) and
    arousal (dashed) on top, shot cuts as ticks; failed clips show their reason."""
    colours: dict[str, str] = {}
    labels: dict[str, str] = {}
    rows = []
    for r in records:
        name = html.escape(r.get("rel") or r["input"])
        status = r["status"]
        cue_path = (r.get("outputs") or {}).get("cue")
        body = ""
        if status in ("ok", "skipped") and cue_path:
            try:
                cue = json.loads(Path(cue_path).read_text(encoding="utf-8"))
                body = _timeline_svg(cue, colours)
                for seg in cue.get("segments", []):
                    labels.setdefault(seg["mood"], seg.get("mood_label", seg["mood"]))
                rel_link = (
                    html.escape(Path(cue_path).relative_to(outdir).as_posix())
                    if Path(cue_path).is_relative_to(outdir)
                    else html.escape(cue_path)
                )
                name = f'<a href="{rel_link}">{name}</a>'
            except (OSError, ValueError, KeyError, TypeError) as exc:
                body = f'<span class="err">cue sheet unreadable: {html.escape(str(exc))}</span>'
        else:
            body = f'<span class="err">{html.escape(str(r.get("error") or status))}</span>'
        info = ""
        if r.get("duration_s") is not None:
            info = f"{r['duration_s']:.1f} s, {r.get('segments') or 0} segments"
        rows.append(
            f"<tr><td>{name}<br><small>{status} {html.escape(info)}</small></td><td>{body}</td></tr>"
        )
    legend = " ".join(
        f'<span class="key" style="background:{colours[s]}"></span>{html.escape(labels.get(s, s))}'
        for s in colours
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Moodsic batch: {len(records)} clips</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }} td {{ padding: 4px 8px; border-bottom: 1px solid #ddd; vertical-align: middle; }}
.err {{ color: #b00; }} .key {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; opacity: .7; }}
svg {{ background: #fafafa; }}
</style></head><body>
<h1>Moodsic batch: {len(records)} clips</h1>
<p>Bands: mood segments. Solid line: stable valence; dashed: stable arousal (-1 bottom, +1 top). Ticks: shot cuts.</p>
<p>{legend}</p>
<table>
{chr(10).join(rows)}
</table></body></html>
"""
    return write_text_atomic(outdir / CONTACT_SHEET, page)


# ----------------------------------------------------------------------------- progress
def _fmt_eta(eta_s: float | None) -> str:
    if eta_s is None:
        return "--:--"
    m, s = divmod(int(round(eta_s)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class JsonBatchReporter:
    """`--progress json`: one object per line on stdout (DESIGN.md), nothing else there."""

    def __init__(self, emit: Any) -> None:
        self.emit = emit  # progress.JsonProgress.emit

    def start(self, total: int, skipped: int, to_run: int) -> None:
        self.emit(
            "progress", stage="batch", done=skipped, total=total, skipped=skipped, to_run=to_run
        )

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None:
        self.emit(
            "clip",
            input=record["input"],
            status=record["status"],
            seconds=record.get("seconds"),
            segments=record.get("segments"),
            error=record.get("error"),
        )
        self.emit(
            "progress",
            stage="batch",
            done=done,
            total=total,
            clips_per_s=None if rate is None else round(rate, 4),
            eta_s=None if eta_s is None else round(eta_s, 1),
        )

    def finish(self, result: BatchResult) -> None:
        return None


class LineReporter:
    """Plain lines on a stream (stderr when it is not a terminal, e.g. in logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def start(self, total: int, skipped: int, to_run: int) -> None:
        self.stream.write(f"batch: {total} clips, {skipped} unchanged, {to_run} to score\n")
        self.stream.flush()

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None:
        extra = f": {record['error']}" if record.get("error") else ""
        speed = f"{rate:.2f} clips/s, ETA {_fmt_eta(eta_s)}" if rate else ""
        self.stream.write(
            f"[{done}/{total}] {record.get('rel') or record['input']} {record['status']}{extra}  {speed}\n"
        )
        self.stream.flush()

    def finish(self, result: BatchResult) -> None:
        return None


class RichBatchReporter:
    """A single bar for the whole batch, with clips/s and ETA, on stderr."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} clips/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[failed]}"),
            console=console or Console(stderr=True),
        )
        self._task: Any = None
        self._failed = 0
        self._t0 = time.perf_counter()

    def start(self, total: int, skipped: int, to_run: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            "batch", total=max(total, 1), completed=skipped, rate="-", eta="--:--", failed=""
        )

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None:
        if record["status"] != "ok":
            self._failed += 1
            self._progress.console.print(
                f"[red]failed[/red] {record.get('rel') or record['input']}: {record.get('error')}"
            )
        self._progress.update(
            self._task,
            completed=done,
            rate=f"{rate:.2f}" if rate else "-",
            eta=_fmt_eta(eta_s),
            failed=f"{self._failed} failed" if self._failed else "",
        )

    def finish(self, result: BatchResult) -> None:
        self.close()

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None


@contextlib.contextmanager
def batch_reporter(mode: str, emit: Any = None) -> Iterator[Any]:
    """The reporter for a `--progress` mode: a bar on a terminal, plain lines on stderr when
    it is not one (logs), JSON lines through `emit`, or nothing; the bar is always stopped."""
    from .model import NullReporter

    if mode == "json":
        yield JsonBatchReporter(emit)
    elif mode == "bar" and sys.stderr.isatty():
        rich = RichBatchReporter()
        try:
            yield rich
        finally:
            rich.close()
    elif mode == "bar":
        yield LineReporter()
    else:
        yield NullReporter()
