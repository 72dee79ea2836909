"""The experts' own speed benchmarks (`moodsic bench speed` prints their lines), kept apart
from the experts so that a run never carries benchmark code; reached through the expert
registry (`moodsic_engine.experts.registry`).

- scene: MC-dropout cost against one pass and against re-running the encoder per pass.
- face: detection and EmoNet speed, TTA cost over a clip with one face always in view
  (`write_bench_video`), and the face expert's share of a face + grammar pipeline.

Every figure is a ratio measured in the same run: on a shared machine absolute seconds move
with the load, ratios much less.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..errors import ExpertUnavailable, ResourceError
from .base import ClipContext, Estimates, ExpertSeries, FrameBatch


# ----------------------------------------------------------------------------- scene
def _bench_parts(config: Config, weights_dir: Path | None) -> tuple[Any, Any, str]:
    """The configured encoder (random weights when none are on disk: timing only) and a head."""
    from .scene import SceneHead, build_encoder, find_head, load_head, resolve_encoder

    cfg = config.scene
    note = ""
    try:
        ref = resolve_encoder(cfg, weights_dir)
    except ExpertUnavailable:
        ref = resolve_encoder(
            dataclasses.replace(cfg, pretrained=""), weights_dir, need_weights=False
        )
        note = " (random weights: timing only)"
    enc = build_encoder(ref, cfg.precision, with_text=False)
    head = None
    try:
        path = find_head(cfg, weights_dir)
        if path is not None:
            head = load_head(path).head
    except (ExpertUnavailable, ResourceError):
        head = None
    if head is None or head.embed_dim != enc.embed_dim:
        head = SceneHead(enc.embed_dim).eval()
    return enc, head, note


def bench_scene(
    config: Config, weights_dir: Path | None = None, *, batch: int = 8, repeats: int = 3
) -> list[str]:
    """Timings printed by `moodsic bench speed`, as ratios measured in one run."""
    import torch

    if config.runtime.torch_threads > 0:
        torch.set_num_threads(config.runtime.torch_threads)
    enc, head, note = _bench_parts(config, weights_dir)
    passes = max(2, config.scene.mc_passes)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(batch, 224, 398, 3), dtype=np.uint8)  # a 16:9 sample

    def single() -> None:
        head.mc_predict(enc.encode(frames), 1)

    def mc() -> None:
        head.mc_predict(enc.encode(frames), passes)

    def naive() -> None:  # the reference way: the whole model once per MC pass
        with torch.inference_mode():
            for _ in range(passes):
                head(enc.encode(frames), mc=True)

    def timed(fn: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    single()  # warm-up
    mc()
    # Interleaved and best-of: on a shared machine, load changes between runs.
    pairs = [(timed(single), timed(mc)) for _ in range(max(1, repeats))]
    t_single = min(p[0] for p in pairs)
    t_mc = min(p[1] for p in pairs)
    t_naive = timed(naive)
    # The parts alone, best of a few: the head's MC cost against the encoder's, which is what
    # the end-to-end ratio reduces to on a quiet machine.
    emb = enc.encode(frames)
    t_head1 = min(timed(lambda: head.mc_predict(emb, 1)) for _ in range(5))
    t_headmc = min(timed(lambda: head.mc_predict(emb, passes)) for _ in range(5))
    t_enc = min(timed(lambda: enc.encode(frames)) for _ in range(max(1, repeats)))
    side = enc.image_size[0]
    return [
        f"scene: {enc.ref.describe() if enc.ref.pretrained else enc.ref.model}{note}, batch {batch}, "
        f"{side} px, {torch.get_num_threads()} threads",
        f"scene: MC dropout x{passes} (head only) / one deterministic pass: {t_mc / t_single:.2f}x (target <= 1.2x)",
        f"scene: MC dropout x{passes} / re-running the encoder per pass (naive): {t_mc / t_naive:.3f}x "
        f"(naive is {t_naive / t_mc:.1f}x slower)",
        f"scene: throughput {batch / t_single:.1f} frames/s single pass, {batch / t_mc:.1f} frames/s with MC dropout, "
        f"{batch / t_naive:.2f} frames/s naive",
        f"scene: parts per batch: encoder {t_enc * 1e3:.1f} ms, head {t_head1 * 1e3:.2f} ms, "
        f"head MC x{passes} {t_headmc * 1e3:.2f} ms -> MC / single from parts: "
        f"{(t_enc + t_headmc) / (t_enc + t_head1):.3f}x",
    ]


# ----------------------------------------------------------------------------- face
def bench_frame(t: float, size: tuple[int, int] = (360, 640), frown: bool = False) -> np.ndarray:
    """One frame of the benchmark clip: the astronaut's face, drifting slowly, on a
    textured background; `frown` paints a closed, down-turned mouth over her smile."""
    import cv2
    from skimage import data

    h, w = size
    fh = int(h * 0.44)
    fw = int(fh * 0.95)
    face = cv2.resize(data.astronaut()[30:230, 130:320], (fw, fh))
    if frown:
        sy, sx = fh / 116, fw / 110  # painted in the coordinates of a 110x116 face
        skin = face[int(50 * sy) : int(56 * sy), int(28 * sx) : int(36 * sx)].reshape(-1, 3)
        face[int(60 * sy) : int(78 * sy), int(36 * sx) : int(72 * sx)] = skin.mean(0)
        cv2.ellipse(
            face, (int(54 * sx), int(72 * sy)), (int(12 * sx), int(5 * sy)), 0, 180, 360,
            (120, 60, 60), max(1, int(2 * sx)),
        )  # fmt: skip
    rng = np.random.default_rng(7)
    tex = rng.integers(50, 170, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.ascontiguousarray(tex.repeat(8, 0).repeat(8, 1)[:h, :w])
    x = int(w / 2 - fw / 2 + 0.03 * w * math.sin(t / 3))
    y = int(h / 2 - fh / 2 + 0.02 * h * math.sin(t / 2))
    img[y : y + fh, x : x + fw] = face
    return img


def write_bench_video(path: Path, seconds: float, fps: int = 25) -> Path:
    """H.264 clip of `bench_frame`s; the expression changes every 10 s."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        cache: dict[tuple[int, bool], np.ndarray] = {}
        for k in range(int(round(seconds * fps))):
            t = k / fps
            key = (int(t * 4), int(t // 10) % 2 == 1)  # the face moves 4 times a second
            if key not in cache:
                cache = {key: bench_frame(key[0] / 4, frown=key[1])}
            frame = av.VideoFrame.from_ndarray(cache[key], format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class _Timed:
    """Wraps an expert and adds up the time spent in it."""

    def __init__(self, expert: Any) -> None:
        self.expert, self.name, self.mode, self.seconds = expert, expert.name, expert.mode, 0.0

    def predict(self, batch: FrameBatch) -> Estimates:
        t0 = time.perf_counter()
        try:
            return self.expert.predict(batch)
        finally:
            self.seconds += time.perf_counter() - t0

    def finalize(self, series: ExpertSeries, context: ClipContext) -> ExpertSeries:
        return self.expert.finalize(series, context)


def bench_face(
    config: Config, weights_dir: Path | None = None, *, seconds: float = 60.0
) -> list[str]:
    """Lines for `moodsic bench speed`: per-stage speed, the TTA cost over a clip with one
    face always in view, and the face expert's share of the pipeline (face + grammar)."""
    import tempfile

    import torch

    from ..pipeline import analyze_video
    from . import LoadedExperts
    from . import grammar as grammar_mod
    from .emonet import EmoNet, run_emonet
    from .face import (
        FaceExpert,
        FaceStats,
        LandmarkModel,
        _detector_line,
        _to_tensor,
        expected_classes,
        find_checkpoint,
        make_detector,
        tta_views,
    )

    if config.runtime.torch_threads > 0:
        torch.set_num_threads(config.runtime.torch_threads)
    cfg = config.face
    note = ""
    try:
        ckpt = find_checkpoint(cfg, weights_dir)
    except ResourceError:
        ckpt = None
    if ckpt is not None:
        from .emonet import load_emonet

        model = load_emonet(ckpt, expected_classes(ckpt))
    else:
        torch.manual_seed(0)
        model = EmoNet(8).eval()
        note = " (random weights: timing only)"
    try:
        landmarks: LandmarkModel | None = LandmarkModel()
    except ResourceError:
        landmarks = None
    detector = make_detector(cfg.detector, cfg.min_confidence)
    expert = FaceExpert(cfg, detector, emonet=model, landmarks=landmarks, source="bench")

    def best(fn: Callable[[], Any], n: int) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    crop = np.random.default_rng(1).random((256, 256, 3), dtype=np.float32)
    one = _to_tensor(crop[None])
    many = _to_tensor(tta_views(crop, expert.n_views))
    run_emonet(model, one)  # warm-up
    t_one = best(lambda: run_emonet(model, one), 3)
    t_many = best(lambda: run_emonet(model, many), 2)
    import cv2

    small = cv2.resize(bench_frame(0.0), (398, 224), interpolation=cv2.INTER_AREA)
    expert.detect(small)
    t_det = best(lambda: expert.detect(small), 5)

    expert.stats = FaceStats()
    timed = _Timed(expert)
    with tempfile.TemporaryDirectory(prefix="moodsic-face-bench-") as tmp:
        clip = write_bench_video(Path(tmp) / "face.mp4", seconds)
        experts = LoadedExperts((timed, grammar_mod.load(config, weights_dir)), {})
        t0 = time.perf_counter()
        analysis = analyze_video(clip, experts, config)
        t_total = time.perf_counter() - t0
    expert.close()
    s = expert.stats
    coverage = float(np.mean(analysis.series[0].present)) if len(analysis.t) else 0.0
    # The reference: the same detection and alignment, and one EmoNet view per face, each
    # view costing what views cost in this very run (load on a shared machine moves both).
    per_view = s.model_s / s.views if s.views else t_one
    single = timed.seconds - s.model_s + s.faces * per_view
    return [
        f"face: EmoNet{note}, {_detector_line(cfg)}, {torch.get_num_threads()} threads",
        f"face: detection + mesh {t_det * 1000:.0f} ms/frame; EmoNet one view {1 / t_one:.2f} "
        f"faces/s; {expert.n_views} views in one batch {1 / t_many:.2f} faces/s "
        f"({t_many / t_one:.1f}x one view)",
        f"face: {seconds:.0f} s clip, one face always in view (coverage {coverage:.0%}), "
        f"{len(analysis.t)} samples: {s.views} EmoNet views for {s.faces} faces, "
        f"{s.reused} reused estimates",
        f"face: with TTA / one view per face: {timed.seconds / single:.2f}x (target <= 2x); "
        f"{s.faces / timed.seconds:.2f} faces/s through the whole expert",
        f"face: {timed.seconds:.1f} s of a {t_total:.1f} s pipeline run (face + grammar): "
        f"{timed.seconds / t_total:.0%} share; pipeline {seconds / t_total:.2f}x real time "
        f"(target >= 2x, scene expert not included here)",
    ]


# ----------------------------------------------------------------------------- grammar
def bench_grammar(config: Config, weights_dir: Path | None = None) -> list[str]:  # noqa: ARG001
    """Frames per second through the film-grammar rules at the working size."""
    from .grammar import GrammarExpert

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(32, 224, 398, 3), dtype=np.uint8)
    batch = FrameBatch(frames, np.arange(32) / 2.0, np.full(32, 0.01))
    expert = GrammarExpert(config.grammar)
    t0 = time.perf_counter()
    for _ in range(3):
        expert.predict(batch)
    dt = (time.perf_counter() - t0) / 3
    return [f"grammar: {32 / dt:.0f} frames/s at 398x224"]
