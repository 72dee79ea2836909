"""The pipeline: SAMPLE -> PERCEIVE -> FUSE -> STABILIZE -> SEGMENT -> MATCH, as plain data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .config import Config
from .cue import CueSheet, SampleRecord, Segment, VideoRef
from .errors import VideoError
from .experts import ClipContext, Estimates, ExpertSeries, LoadedExperts, load_experts
from .experts.registry import EXPERT_NAMES
from .fusion import fuse
from .progress import ProgressFn, no_progress
from .runtime.background import Pending, ready
from .segment import segment_moods
from .stabilize import stabilize
from .video import sample_video

if TYPE_CHECKING:
    from .library import Library


@dataclass(frozen=True)
class Analysis:
    """Everything known about a clip before music is chosen. Times are source seconds."""

    video: VideoRef
    t: np.ndarray
    series: tuple[ExpertSeries, ...]
    fused_va: np.ndarray
    fused_var: np.ndarray
    stable_va: np.ndarray
    held: np.ndarray
    cuts: tuple[float, ...]
    unavailable: dict[str, str] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    start_s: float = 0.0
    end_s: float = 0.0

    @property
    def faces(self) -> np.ndarray:
        for s in self.series:
            if s.faces is not None:
                return s.faces
        return np.zeros(len(self.t), dtype=np.int64)

    def face_coverage(self) -> float | None:
        for s in self.series:
            if s.name == "face":
                return float(np.mean(s.present)) if len(s.present) else 0.0
        return None


def _frames_for(end_s: float, fps: Fraction, declared_frames: int) -> int:
    measured = max(1, int(round(Fraction(end_s) * fps)))
    # trust the container's count when it agrees with what was decoded (within 2 frames)
    if declared_frames > 0 and abs(declared_frames - measured) <= 2:
        return declared_frames
    return measured


def analyze_video(
    video: str | os.PathLike[str],
    experts: LoadedExperts | Pending[LoadedExperts],
    config: Config,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    progress: ProgressFn = no_progress,
) -> Analysis:
    """Sample, perceive, fuse and stabilize one video (or the source range [start_s, end_s))."""
    from .calibration import calibration_for

    calibration = calibration_for(config)  # read before decoding: a bad file stops at once
    # experts that cut crops from full-resolution frames (the face expert) get them per batch
    detail = getattr(experts, "detail", None)  # models still loading say it beforehand
    if detail is None:
        detail = any(getattr(e, "wants_detail", False) for e in experts.experts)
    sampler = sample_video(
        video, config.sample, start_s=start_s, end_s=end_s, batch_size=16, detail=detail
    )
    info = sampler.info
    total = sampler.expected_samples()
    parts: dict[str, list[Estimates]] = {}
    times: list[np.ndarray] = []
    done = 0
    progress("perceive", 0, total)
    for batch in sampler:
        if not parts:  # models loading in the background are needed from here on
            experts = ready(experts)
            parts = {e.name: [] for e in experts.experts}
        times.append(batch.times)
        for expert in experts.experts:
            parts[expert.name].append(expert.predict(batch))
        done += len(batch)
        progress("perceive", done, max(total, done))
    progress("perceive", done, done)  # the estimate may be off by one; finish at 100 %
    experts = ready(experts)
    t = np.concatenate(times) if times else np.zeros(0)
    if len(t) == 0:
        raise VideoError(f"{Path(video).name}: no frames in the requested range")
    measured_end = sampler.end_s if sampler.end_s is not None else float(t[-1])
    whole = start_s <= 0 and end_s is None
    frames = _frames_for(measured_end, info.fps, info.frames if whole else 0)
    ref = VideoRef(
        path=str(video),
        duration_s=float(frames / info.fps) if whole else float(info.duration_s or measured_end),
        fps=info.fps,
        frames=frames if whole else max(1, info.frames),
        has_audio=info.has_audio,
    )
    context = ClipContext(duration_s=ref.duration_s, fps=info.fps, cuts=sampler.cuts)
    series = []
    for expert in experts.experts:
        s = ExpertSeries.concat(expert.name, expert.mode, t, parts[expert.name])
        s = calibration.apply(expert.finalize(s, context))  # raw spread -> expected sq. error
        series.append(s.sanitized(config.fusion.var_floor, config.fusion.var_ceiling))
    fused_va, fused_var = fuse(series, config.fusion)
    stable_va, held = stabilize(t, fused_va, fused_var, config.stabilize, config.sample.sample_fps)
    return Analysis(
        video=ref,
        t=t,
        series=tuple(series),
        fused_va=fused_va,
        fused_var=fused_var,
        stable_va=stable_va,
        held=held,
        cuts=sampler.cuts,
        unavailable=dict(experts.unavailable),
        modes={s.name: s.mode for s in series},
        start_s=float(start_s),
        end_s=float(measured_end),
    )


def _sample_records(a: Analysis) -> tuple[SampleRecord, ...]:
    records = []
    faces = a.faces
    boxes = next((s.boxes for s in a.series if s.boxes is not None), None)
    for i, ti in enumerate(a.t):
        experts = {
            s.name: {
                "v": float(s.v[i]),
                "a": float(s.a[i]),
                "var_v": float(s.var_v[i]),
                "var_a": float(s.var_a[i]),
            }
            for s in a.series
            if s.present[i]
        }
        fused = None
        if np.all(np.isfinite(a.fused_va[i])):
            fused = {
                "v": float(a.fused_va[i, 0]),
                "a": float(a.fused_va[i, 1]),
                "var_v": float(a.fused_var[i, 0]),
                "var_a": float(a.fused_var[i, 1]),
            }
        records.append(
            SampleRecord(
                t=round(float(ti), 6),
                experts=experts,
                fused=fused,
                stable={"v": float(a.stable_va[i, 0]), "a": float(a.stable_va[i, 1])},
                held=bool(a.held[i]),
                faces=int(faces[i]),
                face_boxes=_face_boxes(boxes[i]) if boxes is not None else (),
            )
        )
    return tuple(records)


def _face_boxes(found: tuple[tuple[float, ...], ...]) -> tuple[dict[str, Any], ...]:
    """A sample's faces for the cue sheet: box [x, y, w, h] normalised to the frame, the
    detector's confidence and the face mesh's presence (-1: no mesh ran)."""
    return tuple({"box": list(f[:4]), "confidence": f[4], "mesh": f[5]} for f in found)


def choose_tracks(
    segments: list[Segment],
    library: Library,
    config: Config,
    reroll: dict[int, int] | None = None,
    arcs: list[np.ndarray] | None = None,
) -> list[Segment]:
    """MATCH: a track for every segment (cluster gate, nearest neighbour, no-repeat).

    `arcs` are each segment's own stable V/A samples; tracks that carry a V/A curve then
    start where their curve follows that arc best.
    """
    import dataclasses

    from .library.match import match_segments

    seg_va = np.array([[s.valence, s.arousal] for s in segments], dtype=np.float64)
    seg_post = library.clusters.posterior(seg_va)
    tracks = match_segments(
        library,
        seg_va,
        seg_post,
        config.match,
        config.seed,
        reroll=reroll,
        arcs=arcs,
        arc_dt=1.0 / config.sample.sample_fps,
    )
    return [dataclasses.replace(s, track=tr) for s, tr in zip(segments, tracks, strict=True)]


def _segment_arcs(analysis: Analysis, segments: list[Segment]) -> list[np.ndarray]:
    arcs = []
    for seg in segments:
        inside = (analysis.t >= seg.start_s) & (analysis.t < seg.end_s)
        arcs.append(
            analysis.stable_va[inside] if inside.any() else np.array([[seg.valence, seg.arousal]])
        )
    return arcs


def build_cue(
    analysis: Analysis, library: Library, config: Config, *, reroll: dict[int, int] | None = None
) -> CueSheet:
    """SEGMENT + MATCH on an analysis of a whole video; the cue sheet."""
    segments = segment_moods(
        analysis.t,
        analysis.stable_va,
        library.clusters,
        analysis.cuts,
        config.segment,
        duration_s=analysis.video.duration_s,
        fps=analysis.video.fps,
    )
    segments = choose_tracks(segments, library, config, reroll, _segment_arcs(analysis, segments))
    summary: dict[str, Any] = {
        "samples": len(analysis.t),
        "held_share": float(np.mean(analysis.held)) if len(analysis.held) else 0.0,
        "segments": len(segments),
        "moods": [s.mood for s in segments],
    }
    coverage = analysis.face_coverage()
    if coverage is not None:
        summary["face_coverage"] = coverage
    calibrated = {s.name: s.info["calibration"] for s in analysis.series if "calibration" in s.info}
    if calibrated:
        summary["calibration"] = calibrated  # which map each expert's variance went through
    engine = {
        "version": __version__,
        "experts": [s.name for s in analysis.series],
        "config": config.to_dict(),
        "modes": dict(analysis.modes),
        "unavailable": dict(analysis.unavailable),
        "library": {"name": library.name, "root": str(library.root), "tracks": len(library.tracks)},
    }
    cue = CueSheet(
        video=analysis.video,
        engine=engine,
        samples=_sample_records(analysis),
        cuts=tuple(round(c, 6) for c in analysis.cuts),
        segments=tuple(segments),
        summary=summary,
    )
    # Each track's in-point becomes where the mixdown really starts it (on its beat grid),
    # so timelines built from the cue (OTIO, Blender) play exactly what the mix plays.
    from .mix.plan import place_tracks

    return place_tracks(cue, config.mix)


def score_video(
    video: str | os.PathLike[str],
    library: Library | str | os.PathLike[str] | None = None,
    config: Config | None = None,
    *,
    experts: LoadedExperts | Pending[LoadedExperts] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn = no_progress,
    reroll: dict[int, int] | None = None,
    reuse: CueSheet | None = None,
) -> CueSheet:
    """Score one video with a library (default: the built-in one). Models load once if not given.

    `reuse`: an earlier cue sheet of this video whose analysis is taken as it stands (check
    it with `reuse_problem` first): only segmentation and matching run, nothing is decoded.
    """
    from .library import Library, load_library
    from .weights import file_fingerprint, resolve_weights_dir

    config = config or Config()
    if not isinstance(library, Library):
        library = load_library(
            str(library) if library is not None else "builtin", match_config=config.match
        )
    if reuse is not None:
        analysis = analysis_from_cue(reuse)
        fingerprint = reuse.engine.get(VIDEO_FINGERPRINT)
    else:
        if experts is None:
            experts = load_experts(config, resolve_weights_dir(weights_dir))
        analysis = analyze_video(video, experts, config, progress=progress)
        fingerprint = file_fingerprint(video)
    progress("segment", 0, 1)
    cue = build_cue(analysis, library, config, reroll=reroll)
    progress("segment", 1, 1)
    # What `reuse_problem` checks a later run's video against.
    return replace(cue, engine={**cue.engine, VIDEO_FINGERPRINT: fingerprint})


VIDEO_FINGERPRINT = "video_fingerprint"
# The config sections that shape an analysis (what is decoded and how experts, fusion and
# the stabilizer see it); segment, match and mix settings only act after it.
# (each registered expert has the config section of its name)
_ANALYSIS_SECTIONS = ("experts", "sample", *EXPERT_NAMES, "fusion", "stabilize")


def reuse_problem(cue: CueSheet, video: str | os.PathLike[str], config: Config) -> str | None:
    """Why `cue` cannot stand in for analysing `video` with `config` again, or None if it can."""
    from .weights import file_fingerprint

    recorded = cue.engine.get(VIDEO_FINGERPRINT)
    if recorded is None:
        return "it does not record which video file it analysed"
    if recorded != file_fingerprint(video):
        return f"it was made from another video file than {Path(video).name}"
    before = cue.engine.get("config") or {}
    now = config.to_dict()
    changed = [k for k in _ANALYSIS_SECTIONS if _jsonish(before.get(k)) != _jsonish(now.get(k))]
    if changed:
        return f"its analysis settings differ ({', '.join(changed)})"
    if not cue.samples:
        return "it holds no samples"
    return None


def _jsonish(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))  # tuples and lists compare alike


def _boxes_from_cue(cue: CueSheet) -> tuple[tuple[tuple[float, ...], ...], ...]:
    """Each sample's face boxes as the face expert reports them (inverse of _face_boxes)."""
    return tuple(
        tuple(
            (*(float(x) for x in b["box"]), float(b["confidence"]), float(b.get("mesh", -1.0)))
            for b in s.face_boxes
        )
        for s in cue.samples
    )


def analysis_from_cue(cue: CueSheet) -> Analysis:
    """The analysis a cue sheet records: samples (per expert, fused, stable), cuts, video."""
    t = np.array([s.t for s in cue.samples], dtype=np.float64)
    nan2 = [float("nan")] * 2
    fused = np.array(
        [[s.fused["v"], s.fused["a"]] if s.fused else nan2 for s in cue.samples], dtype=np.float64
    ).reshape(-1, 2)
    fused_var = np.array(
        [[s.fused["var_v"], s.fused["var_a"]] if s.fused else nan2 for s in cue.samples],
        dtype=np.float64,
    ).reshape(-1, 2)
    modes = dict(cue.engine.get("modes") or {})
    series = []
    calibrated = dict(cue.summary.get("calibration") or {})
    for name in cue.engine.get("experts") or []:
        rows = [s.experts.get(name) for s in cue.samples]
        present = np.array([r is not None for r in rows], dtype=bool)

        def column(key: str, fill: float, rows: list[Any] = rows) -> np.ndarray:
            return np.array([r[key] if r is not None else fill for r in rows], dtype=np.float64)

        series.append(
            ExpertSeries(
                name=name,
                t=t,
                v=column("v", 0.0),
                a=column("a", 0.0),
                var_v=column("var_v", 1.0),
                var_a=column("var_a", 1.0),
                present=present,
                faces=(
                    np.array([s.faces for s in cue.samples], dtype=np.int64)
                    if name == "face"
                    else None
                ),
                mode=modes.get(name, "trained"),
                boxes=_boxes_from_cue(cue) if name == "face" else None,
                # the recorded variances are already calibrated; say by what, as the cue did
                info={"calibration": calibrated[name]} if name in calibrated else {},
            )
        )
    return Analysis(
        video=cue.video,
        t=t,
        series=tuple(series),
        fused_va=fused,
        fused_var=fused_var,
        stable_va=np.array(
            [[s.stable["v"], s.stable["a"]] for s in cue.samples], dtype=np.float64
        ).reshape(-1, 2),
        held=np.array([s.held for s in cue.samples], dtype=bool),
        cuts=tuple(cue.cuts),
        unavailable=dict(cue.engine.get("unavailable") or {}),
        modes=modes,
        start_s=0.0,
        end_s=float(cue.video.duration_s),
    )
