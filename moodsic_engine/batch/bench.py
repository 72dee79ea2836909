"""`moodsic bench batch`: clips/min with 1 and 2 local workers, the speed-up, and the
per-clip overhead of the Ray backend against the local pool, on the same generated clips.

Rates count only the scoring phase (after every worker has loaded its models), so the
numbers compare the pools, not model loading; startup times are printed separately.
Timings on a shared machine move with its load: read them as ratios within one run.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..config import Config
from ..errors import ResourceError
from ..ffmpeg import encode_lavfi, find_tool
from .model import BatchResult, default_workers
from .run import run_batch

_SOURCES = ("testsrc2", "smptebars", "rgbtestsrc", "testsrc")


def make_clips(folder: Path, n: int, seconds: float, size: str = "320x180") -> list[Path]:
    """`n` distinct synthetic clips: test patterns with different hues, some with cuts."""
    find_tool("ffmpeg", purpose="to generate the benchmark clips")  # before the folder
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        path = folder / f"clip{i:03d}.mp4"
        src = _SOURCES[i % len(_SOURCES)]
        half = seconds / 2
        # Two shots per clip (a cut in the middle) with different tints.
        graph = (
            f"{src}=size={size}:rate=25:duration={half},hue=h={(i * 37) % 360}[a];"
            f"{_SOURCES[(i + 1) % len(_SOURCES)]}=size={size}:rate=25:duration={half},"
            f"hue=h={(i * 53 + 90) % 360}:s={0.5 + (i % 3) / 2}[b];[a][b]concat=n=2:v=1:a=0"
        )
        encode_lavfi(path, [], "-filter_complex", graph,
                     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                     purpose="to generate the benchmark clips")  # fmt: skip
        clips.append(path)
    return clips


def _rate(r: BatchResult) -> float:
    return r.count("ok") / r.scoring_s * 60.0 if r.scoring_s > 0 else float("nan")


def _line(label: str, r: BatchResult) -> str:
    return (
        f"{label:<17}{_rate(r):7.1f} clips/min  (scoring {r.scoring_s:.2f} s, startup "
        f"{r.startup_s:.1f} s, {_per_clip(r):.3f} s per clip inside a worker)"
    )


def _per_clip(r: BatchResult) -> float:
    per_clip = [x["seconds"] for x in r.records if x["status"] == "ok" and x["seconds"] is not None]
    return sum(per_clip) / len(per_clip) if per_clip else float("nan")


def batch_report(
    *,
    clips: int = 20,
    seconds: float = 6.0,
    experts: tuple[str, ...] = ("grammar",),
    library: str = "builtin",
    ray: bool = True,
    repeat: int = 3,
) -> Iterator[str]:
    """Each configuration runs `repeat` times, interleaved, and its fastest run counts: on a
    shared machine the fastest run is the one least disturbed by other processes."""
    config = Config(experts=experts)
    with tempfile.TemporaryDirectory(prefix="moodsic-bench-batch-") as tmp:
        root = Path(tmp)
        make_clips(root / "clips", clips, seconds)
        yield (
            f"batch bench: {clips} clips of {seconds:g} s (320x180, 25 fps), experts "
            f"{','.join(experts)}, library {library}, {default_workers()} CPU core(s) available, "
            f"best of {repeat}"
        )
        counter = iter(range(1_000_000))

        def run(workers: int, backend: str = "local") -> BatchResult:
            result = run_batch(
                root / "clips",
                root / f"out{next(counter)}",
                config=config,
                library=library,
                workers=workers,
                backend=backend,
                resume=False,
                contact_sheet=False,
            )
            if result.failed:
                first = result.failed[0]
                raise ResourceError(f"benchmark clip failed: {first['input']}: {first['error']}")
            return result

        def best(results: list[BatchResult]) -> BatchResult:
            return min(results, key=lambda r: r.scoring_s)

        # An untimed pass fills caches (built-in library audio, decoder warm-up).
        run(1)
        ones: list[BatchResult] = []
        twos: list[BatchResult] = []
        for _ in range(max(1, repeat)):
            ones.append(run(1))
            twos.append(run(2))
        one, two = best(ones), best(twos)
        yield _line("local, 1 worker:", one)
        yield _line("local, 2 workers:", two)
        speedup = _rate(two) / _rate(one)
        yield f"speed-up, 2 vs 1 workers: {speedup:.2f}x (target >= 1.7x on 2 cores)"
        # If each clip took as long inside a worker with 2 workers as with 1, the ideal
        # speed-up is 2x; clips that slow down inside the workers mean the cores are shared
        # with other work, and the pool itself costs only what is left after that.
        ideal = 2.0 * _per_clip(one) / _per_clip(two)
        yield (
            f"per-clip time inside a worker, 1 vs 2 workers: {_per_clip(one):.3f} vs "
            f"{_per_clip(two):.3f} s -> achievable {ideal:.2f}x on this machine now; the pool "
            f"reaches {speedup / ideal:.0%} of it (load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores)"
        )
        if not ray:
            return
        try:
            import ray as ray_mod
        except ImportError:
            yield 'ray: not installed (pip install "moodsic[ray]")'
            return
        import logging

        t0 = time.perf_counter()
        ray_mod.init(
            address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
            logging_level=logging.WARNING,
        )  # fmt: skip
        ray_start = time.perf_counter() - t0
        try:
            rays = [run(2, backend="ray") for _ in range(max(1, repeat))]
        finally:
            ray_mod.shutdown()
        on_ray = best(rays)
        yield _line("ray, 2 workers:", on_ray)
        overhead_ms = (on_ray.scoring_s - two.scoring_s) * 2 / clips * 1000.0
        yield (
            f"ray per-clip overhead vs the local pool: {overhead_ms:+.0f} ms of worker time per "
            f"clip ({_rate(on_ray) / _rate(two):.2f}x the local rate); starting Ray took "
            f"{ray_start:.1f} s and its actors {on_ray.startup_s:.1f} s more (local workers "
            f"{two.startup_s:.1f} s)"
        )
