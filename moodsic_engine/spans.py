"""SPANS: analyse stretches of several media files placed on one record timeline (an edit).

Each span is one used range of one media file. It is analysed on its own (sample, perceive,
fuse), its samples are mapped to record time (shifted, or retimed for a speed change or a
freeze frame), the expert series of all spans are joined, and ONE stabilizer runs across the
whole record timeline, so the mood carries over cuts as a viewer's does. The result is an
`Analysis` in record time that `build_cue` segments and matches like any single video.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .config import Config
from .errors import InputError, MoodsicError
from .progress import ProgressFn, no_progress
from .stabilize import stabilize

if TYPE_CHECKING:
    from .experts import LoadedExperts
    from .pipeline import Analysis


@dataclass(frozen=True)
class SourceSpan:
    """One stretch of one media file placed on a record timeline.

    Source times are seconds inside the media file; record times are seconds on the
    timeline. `speed` is source seconds per record second (2.0 plays twice as fast; 0 is a
    freeze frame that shows the source range's first frame for its whole record length).
    """

    path: Path
    src_start_s: float
    src_end_s: float
    rec_start_s: float
    rec_end_s: float
    speed: float = 1.0
    name: str = ""

    @property
    def label(self) -> str:
        """How messages name the span: its name, else its file's."""
        return self.name or Path(self.path).name


@dataclass(frozen=True)
class SpanFailure:
    """A span that gave no samples: its position in the input, the span and why (one line)."""

    index: int
    span: SourceSpan
    reason: str


@dataclass(frozen=True)
class SpansResult:
    """The joined analysis in record time, which spans it holds, and which failed and why."""

    analysis: Analysis
    analysed: tuple[int, ...]  # positions of the spans whose samples are in `analysis`
    failed: tuple[SpanFailure, ...] = ()


class NoSpansAnalysed(InputError):
    """No span gave a sample (every one failed, or none was given); `failed` says why."""

    def __init__(self, message: str, failed: tuple[SpanFailure, ...]) -> None:
        super().__init__(message)
        self.failed = failed


# ----------------------------------------------------------------------------- media checks
def media_duration_s(path: Path) -> float | None:
    """The media file's duration in seconds (container, else video stream), if it tells."""
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
            video = container.streams.video[0] if container.streams.video else None
            if video is not None and video.duration and video.time_base:
                return float(video.duration * video.time_base)
    except Exception:  # unreadable files are reported as such by the analysis
        return None
    return None


def _past_the_end(span: SourceSpan) -> str:
    """Why a span gave no frames, when its used range lies past the end of its media."""
    duration = media_duration_s(Path(span.path))
    if duration is None or span.src_start_s < duration - 1e-3:
        return ""
    return (
        f"its source range {span.src_start_s:.3f}-{span.src_end_s:.3f} s starts past the end "
        f"of {Path(span.path).name} ({duration:.3f} s)"
    )


# ----------------------------------------------------------------------------- one span
def _select(a: Analysis, keep: np.ndarray, t: np.ndarray | None = None) -> Analysis:
    """The samples `keep` of an analysis; with `t` (already selected), their new times."""
    if t is None:
        series = tuple(s.select(keep) for s in a.series)
        t = a.t[keep]
    else:
        series = tuple(dataclasses.replace(s.select(keep), t=t) for s in a.series)
    return dataclasses.replace(
        a,
        t=t,
        series=series,
        fused_va=a.fused_va[keep],
        fused_var=a.fused_var[keep],
        stable_va=a.stable_va[keep],
        held=a.held[keep],
    )


def _used_range(a: Analysis, span: SourceSpan) -> Analysis:
    """Only the samples on screen during the span's used range (the sampler may overrun by a
    sample). A frame is shown from its timestamp until the next one, so a frame stamped up
    to one frame before the span's start is what the span opens on (media at another rate
    than the edit: 25 fps footage in a 24 fps cut); its time is moved to the start."""
    fps = float(a.video.fps) if a.video.fps else 0.0
    early = 1.0 / fps if fps > 0 else 0.0
    keep = (a.t > span.src_start_s - early - 1e-9) & (a.t < span.src_end_s)
    return _select(a, keep, np.maximum(a.t[keep], span.src_start_s))


def _to_record(a: Analysis, span: SourceSpan) -> Analysis:
    """The span's samples in record time: shifted, or source seconds divided by the speed
    (a freeze frame's samples spread evenly over its record length)."""
    if span.speed == 1.0:
        shift = span.rec_start_s - span.src_start_s
        series = tuple(dataclasses.replace(s, t=s.t + shift) for s in a.series)
        return dataclasses.replace(a, t=a.t + shift, series=series)
    if span.speed > 0:
        t = span.rec_start_s + (a.t - span.src_start_s) / span.speed
    else:
        t = np.linspace(span.rec_start_s, span.rec_end_s, len(a.t), endpoint=False)
    keep = t < span.rec_end_s
    return _select(a, keep, t[keep])


# ----------------------------------------------------------------------------- joining
def _join_series(parts: list[Analysis]) -> tuple[Any, ...]:
    """Concatenate the experts' series of every span (already in record time)."""
    out = []
    for k, first in enumerate(parts[0].series):
        pieces = [a.series[k] for a in parts]
        faces = None
        if all(p.faces is not None for p in pieces):
            faces = np.concatenate([p.faces for p in pieces])
        boxes = None  # each sample's face boxes (face expert), joined like the samples
        if all(p.boxes is not None for p in pieces):
            boxes = tuple(b for p in pieces for b in p.boxes)  # type: ignore[union-attr]
        out.append(
            dataclasses.replace(
                first,
                t=np.concatenate([p.t for p in pieces]),
                v=np.concatenate([p.v for p in pieces]),
                a=np.concatenate([p.a for p in pieces]),
                var_v=np.concatenate([p.var_v for p in pieces]),
                var_a=np.concatenate([p.var_a for p in pieces]),
                present=np.concatenate([p.present for p in pieces]),
                faces=faces,
                boxes=boxes,
            )
        )
    return tuple(out)


def _rational(fps: Fraction | float) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    return Fraction(fps).limit_denominator(1_000_000)  # 29.97 -> 2997/100, not a binary float


def _span_cuts(spans: Sequence[SourceSpan], duration_s: float) -> tuple[float, ...]:
    inner = {s.rec_start_s for s in spans if s.rec_start_s > 1e-9}
    inner |= {s.rec_end_s for s in spans if s.rec_end_s < duration_s - 1e-9}
    return tuple(sorted(inner))


# ----------------------------------------------------------------------------- the stage
def analyze_spans(
    spans: Sequence[SourceSpan],
    experts: LoadedExperts,
    config: Config,
    *,
    duration_s: float,
    fps: Fraction | float,
    cuts: Sequence[float] | None = None,
    name: str = "edit",
    progress: ProgressFn = no_progress,
    on_error: Literal["skip", "raise"] = "skip",
) -> SpansResult:
    """Analyse every span and join them into one `Analysis` in record time.

    Each span's source range is analysed with `pipeline.analyze_video(start_s=, end_s=)`,
    cut to its used range, and mapped to record time; the expert series are joined and the
    fused V/A stabilized ONCE over the whole record timeline. The analysis' video is the
    record timeline (`name`, `duration_s`, `fps`); its cuts are `cuts`, by default every
    span boundary inside the timeline. Record time not covered by a span has no samples.

    A span that cannot be read or gives no frames is skipped and listed in `failed` with its
    reason; with `on_error="raise"` it raises InputError ("clip <name>: <reason>") instead.
    When no span gives a sample, NoSpansAnalysed (an InputError) lists them all.

    Progress: "clips" (spans done of all) and one "perceive" bar over all spans, counted in
    expected samples at the sample rate.
    """
    from . import pipeline
    from .cue import VideoRef

    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
    fps = _rational(fps)
    parts: list[Analysis] = []
    analysed: list[int] = []
    failed: list[SpanFailure] = []
    expected = [
        max(1, round((s.src_end_s - s.src_start_s) * config.sample.sample_fps)) for s in spans
    ]
    total = sum(expected)
    for n, span in enumerate(spans):
        progress("clips", n, len(spans))
        before = sum(expected[:n])

        def span_progress(stage: str, done: int, _total: int, before: int = before) -> None:
            if stage == "perceive":
                progress("perceive", min(total, before + done), total)

        reason = ""
        try:
            # through the module attribute, so a test (or a caller) can stand in for it
            a = pipeline.analyze_video(
                span.path,
                experts,
                config,
                start_s=span.src_start_s,
                end_s=span.src_end_s,
                progress=span_progress,
            )
        except MoodsicError as exc:
            reason = _past_the_end(span) or f"unreadable: {exc}"
        else:
            a = _used_range(a, span)
            if len(a.t) == 0:
                reason = _past_the_end(span) or "no frames in the used range"
        if reason:
            if on_error == "raise":
                raise InputError(f"clip {span.label}: {reason}") from None
            failed.append(SpanFailure(n, span, reason))
            continue
        parts.append(_to_record(a, span))
        analysed.append(n)
    progress("perceive", total, total)
    progress("clips", len(spans), len(spans))
    if not parts:
        raise NoSpansAnalysed(
            "no span could be analysed"
            + (
                " (" + "; ".join(f"{f.span.label}: {f.reason}" for f in failed) + ")"
                if failed
                else ""
            ),
            tuple(failed),
        )

    series = _join_series(parts)
    t = np.concatenate([a.t for a in parts])
    fused_va = np.concatenate([a.fused_va for a in parts])
    fused_var = np.concatenate([a.fused_var for a in parts])
    order = np.argsort(t, kind="stable")  # spans usually come in record order; this guards it
    t, fused_va, fused_var = t[order], fused_va[order], fused_var[order]
    series = tuple(s.select(order) for s in series)
    # One EMA across the whole timeline: the mood carries over cuts, as a viewer's does.
    stable_va, held = stabilize(t, fused_va, fused_var, config.stabilize, config.sample.sample_fps)
    frames = max(1, round(Fraction(duration_s) * fps))
    first = parts[0]
    joined = pipeline.Analysis(
        video=VideoRef(path=name, duration_s=float(duration_s), fps=fps, frames=frames),
        t=t,
        series=series,
        fused_va=fused_va,
        fused_var=fused_var,
        stable_va=stable_va,
        held=held,
        cuts=tuple(cuts) if cuts is not None else _span_cuts(spans, duration_s),
        unavailable=dict(first.unavailable),
        modes=dict(first.modes),
        start_s=0.0,
        end_s=float(duration_s),
    )
    return SpansResult(analysis=joined, analysed=tuple(analysed), failed=tuple(failed))


__all__ = [
    "NoSpansAnalysed",
    "SourceSpan",
    "SpanFailure",
    "SpansResult",
    "analyze_spans",
    "media_duration_s",
]
