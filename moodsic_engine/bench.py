"""`moodsic bench speed`: pipeline time against decoding every frame, per stage, and memory.

Everything is measured in the same run on the same machine and printed as ratios: on a
shared machine absolute seconds move with the load, ratios much less. Timings are the best
of two interleaved runs (decode, pipeline, decode, pipeline).

- decode-all: `ffmpeg -threads 2 -i VIDEO -an -f null -` (every frame decoded, nothing else);
  target: the whole grammar-only pipeline takes no longer (ratio <= 1.0).
- per stage: sampling/decoding, each expert's predict, fusion, stabilizer, segment+match.
- memory (--memory): peak RSS scoring a 1-minute and a 10-minute generated clip, each in a
  fresh process; the sampler streams, so the target is a difference within 50 MB.
- other experts: each expert's own benchmark lines (its `benchmark` in the expert registry),
  then the pipeline with each expert alone.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ExpertUnavailable, ResourceError

MEMORY_TARGET_MB = 50.0


def generate_clip(
    path: str | os.PathLike[str],
    seconds: float = 60.0,
    *,
    size: str = "640x360",
    rate: str = "25",
    bframes: int = 3,
) -> Path:
    """A synthetic H.264 clip with B-frames (moving test pattern), as phone/camera footage is."""
    from .ffmpeg import encode_lavfi

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return encode_lavfi(
        out,
        [f"testsrc2=s={size}:r={rate}:d={seconds:g}"],
        *("-c:v", "libx264", "-preset", "veryfast", "-bf", str(bframes), "-g", "250"),
        *("-pix_fmt", "yuv420p"),
        purpose="to generate the bench clip",
    )


def decode_seconds(video: str | os.PathLike[str], threads: int = 2) -> float:
    """Wall time for ffmpeg to decode every frame of the video (no audio, no output)."""
    from .ffmpeg import run_ffmpeg

    t0 = time.perf_counter()
    run_ffmpeg(
        *("-threads", str(threads), "-i", str(video), "-an", "-f", "null", "-"),
        purpose=f"to decode {Path(video).name}",
        check=True,
    )
    return time.perf_counter() - t0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / (1024.0 * 1024.0)


class _TimedExpert:
    """Wraps an expert and adds up the time spent in its predict()."""

    def __init__(self, expert: Any) -> None:
        self.inner = expert
        self.name = expert.name
        self.mode = expert.mode
        self.seconds = 0.0

    def predict(self, batch: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.predict(batch)
        finally:
            self.seconds += time.perf_counter() - t0

    def finalize(self, series: Any, context: Any) -> Any:
        return self.inner.finalize(series, context)


@dataclass
class PipelineTiming:
    total_s: float
    stages: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    samples: int = 0


def time_pipeline(
    video: str | os.PathLike[str], experts: Any, config: Config, library: Any
) -> PipelineTiming:
    """One full scoring run (analysis + segments + tracks), split into stages."""
    from .experts import LoadedExperts
    from .fusion import fuse
    from .pipeline import analyze_video, build_cue
    from .segment import segment_moods
    from .stabilize import stabilize

    timed = [_TimedExpert(e) for e in experts.experts]
    wrapped = LoadedExperts(tuple(timed), dict(experts.unavailable))  # type: ignore[arg-type]
    for e in experts.experts:
        if hasattr(e, "reset"):
            e.reset()
    t0 = time.perf_counter()
    analysis = analyze_video(video, wrapped, config)
    t1 = time.perf_counter()
    build_cue(analysis, library, config)
    t2 = time.perf_counter()
    # fusion, stabilizer and segmenter again on their own (cheap) to split the analysis time
    a = time.perf_counter()
    va, var = fuse(list(analysis.series), config.fusion)
    b = time.perf_counter()
    stabilize(analysis.t, va, var, config.stabilize, config.sample.sample_fps)
    c = time.perf_counter()
    segment_moods(analysis.t, analysis.stable_va, library.clusters, analysis.cuts, config.segment,
                  duration_s=analysis.video.duration_s, fps=analysis.video.fps)  # fmt: skip
    d = time.perf_counter()
    expert_s = {f"expert {e.name}": e.seconds for e in timed}
    fuse_s, stab_s, seg_s = b - a, c - b, d - c
    stages = {
        "sample+decode": max(0.0, (t1 - t0) - sum(expert_s.values()) - fuse_s - stab_s),
        **expert_s,
        "fuse": fuse_s,
        "stabilize": stab_s,
        "segment": seg_s,
        "match+cue": max(0.0, (t2 - t1) - seg_s),
    }
    return PipelineTiming(t2 - t0, stages, analysis.video.duration_s, len(analysis.t))


def _reset_peak_rss() -> bool:
    """Linux: reset this process's peak RSS (VmHWM), so loading does not mask scoring."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_child(video: str, names: tuple[str, ...], weights_dir: str | None) -> dict[str, Any]:
    """Run in a fresh interpreter: score the clip, report seconds and peak RSS while scoring."""
    import gc

    from .experts import load_experts
    from .library import load_library
    from .pipeline import score_video

    config = Config(experts=names)
    library = load_library("builtin", match_config=config.match)
    experts = load_experts(config, Path(weights_dir) if weights_dir else None)
    gc.collect()
    reset = _reset_peak_rss()
    before = _vm_hwm_mb() if reset else peak_rss_mb()
    t0 = time.perf_counter()
    score_video(video, library, config, experts=experts)
    seconds = time.perf_counter() - t0
    peak = _vm_hwm_mb() if reset else None
    return {
        "seconds": seconds,
        "rss_mb": peak if peak is not None else peak_rss_mb(),
        "rss_before_mb": before,
        "process_peak_mb": peak_rss_mb(),
    }


def measure_rss(
    video: Path, names: tuple[str, ...], weights_dir: Path | None = None
) -> dict[str, Any]:
    from .bench_e2e import python_child

    proc = python_child("moodsic_engine.bench", "rss", str(video), ",".join(names),
                        str(weights_dir) if weights_dir else "")  # fmt: skip
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ResourceError(f"memory run failed on {video.name}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stage_line(t: PipelineTiming) -> str:
    parts = [f"{k} {v:.2f}" for k, v in t.stages.items()]
    return "  stages (s): " + ", ".join(parts)


def speed_report(
    video: str | os.PathLike[str] | None,
    names: tuple[str, ...] | list[str] = ("grammar",),
    *,
    memory: bool = False,
    weights_dir: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    library: Any = "builtin",
) -> list[str]:
    """The lines `moodsic bench speed` prints (see the module docstring). `library` is a
    loaded Library or a spec for `load_library` (matching is part of the timed pipeline)."""
    from .experts import load_experts
    from .library import load_library
    from .weights import resolve_weights_dir

    names = tuple(names) or ("grammar",)
    wdir = resolve_weights_dir(weights_dir)
    base = config or Config()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="moodsic-bench-") as tmp:
        if video is None:
            clip = generate_clip(Path(tmp) / "bench60.mp4", 60.0)
            lines.append("clip: generated 60 s 640x360 25 fps H.264 with B-frames")
        else:
            clip = Path(video)
            lines.append(f"clip: {clip}")
        cfg = base.replace(experts=names)
        if isinstance(library, str | os.PathLike):
            library = load_library(library, match_config=cfg.match)
        t0 = time.perf_counter()
        experts = load_experts(cfg, wdir)
        load_s = time.perf_counter() - t0
        runs: list[PipelineTiming] = []
        decodes: list[float] = []
        for _ in range(2):
            decodes.append(decode_seconds(clip))
            runs.append(time_pipeline(clip, experts, cfg, library))
        dec = min(decodes)
        best = min(runs, key=lambda r: r.total_s)
        label = "+".join(names)
        lines += [
            f"pipeline [{label}]: {best.total_s:.2f} s for {best.duration_s:.1f} s of video "
            f"({best.samples} samples); models loaded once in {load_s:.2f} s (not counted)",
            f"  decode-all (ffmpeg -threads 2): {dec:.2f} s; pipeline / decode-all: "
            f"{best.total_s / dec:.2f}" + (" (target <= 1.0)" if names == ("grammar",) else ""),
            f"  real-time factor: {best.duration_s / best.total_s:.1f}x real time",
            _stage_line(best),
            f"  peak RSS (this process): {peak_rss_mb():.0f} MB",
        ]
        lines += _provenance_lines(cfg, wdir, names)
        for name in names:
            lines += _expert_benchmark(name, cfg, wdir)
        if len(names) > 1:
            for name in names:
                lines += _alone(name, clip, base, wdir, library, dec)
        if memory:
            lines += _memory_lines(Path(tmp), names, wdir)
    return lines


def _provenance_lines(config: Config, wdir: Path | None, names: tuple[str, ...]) -> list[str]:
    """What the timing was made with: versions, the settings that matter, weights."""
    from .eval.provenance import versions, weights_info

    v = versions()
    keys = ("moodsic", "python", "numpy", "av", "torch", "open_clip_torch", "mediapipe", "ffmpeg")
    s = config.sample
    lines = [
        "  versions: " + ", ".join(f"{k} {v[k]}" for k in keys if k in v),
        f"  config: sample_fps {s.sample_fps:g}, short_side {s.short_side}, skip_frames "
        f"{s.skip_frames}, decoder_threads {s.decoder_threads}, torch_threads "
        f"{config.runtime.torch_threads or 'auto'}; cores {os.cpu_count()}",
    ]
    for name, entry in weights_info(config, wdir, names).items():
        lines.append(f"  weights {name}: {entry}")
    return lines


def _expert_benchmark(name: str, config: Config, wdir: Path | None) -> list[str]:
    """The expert's own benchmark lines, by its registry entry (none: no lines)."""
    from .experts.registry import expert_spec, function

    spec = expert_spec(name)
    if spec.benchmark is None:
        return []
    try:
        return list(function(spec.benchmark)(config, wdir))
    except (ExpertUnavailable, ResourceError) as exc:
        return [f"{name}: benchmark unavailable: {' '.join(str(exc).split())}"]


def _alone(
    name: str, clip: Path, base: Config, wdir: Path | None, library: Any, dec: float
) -> list[str]:
    from .experts import load_experts

    cfg = base.replace(experts=(name,))
    try:
        experts = load_experts(cfg, wdir)
    except ExpertUnavailable as exc:
        return [f"pipeline [{name} alone]: unavailable: {' '.join(str(exc).split())}"]
    t = time_pipeline(clip, experts, cfg, library)
    return [
        f"pipeline [{name} alone]: {t.total_s:.2f} s, {t.duration_s / t.total_s:.1f}x real time, "
        f"{t.total_s / dec:.2f}x decode-all",
        _stage_line(t),
    ]


def _memory_lines(tmp: Path, names: tuple[str, ...], wdir: Path | None) -> list[str]:
    short = generate_clip(tmp / "mem1.mp4", 60.0)
    long = generate_clip(tmp / "mem10.mp4", 600.0)
    a = measure_rss(short, names, wdir)
    b = measure_rss(long, names, wdir)
    diff = b["rss_mb"] - a["rss_mb"]
    ok = "ok" if diff <= MEMORY_TARGET_MB else "OVER TARGET"
    return [
        f"memory [{'+'.join(names)}]: peak RSS while scoring (models loaded before) 1-min clip {a['rss_mb']:.0f} MB ({a['seconds']:.1f} s), "
        f"10-min clip {b['rss_mb']:.0f} MB ({b['seconds']:.1f} s); "
        f"difference {diff:+.0f} MB (target within {MEMORY_TARGET_MB:.0f} MB: {ok})",
    ]


def _main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "rss":
        names = tuple(n for n in argv[2].split(",") if n) or ("grammar",)
        wdir = argv[3] if len(argv) > 3 and argv[3] else None
        print(json.dumps(_rss_child(argv[1], names, wdir)))
        return 0
    print("usage: python -m moodsic_engine.bench rss VIDEO EXPERTS [WEIGHTS_DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
