"""Speed-ups give the same answers (issue 19): cached prompt embeddings, ONNX Runtime for the
CLIP image tower and EmoNet (within 1e-4 of PyTorch), numpy preprocessing, the scene
content-change gate (off: identical; on: a skipped sample takes its reference's estimate,
at most skip_max_gap_s apart), caches keyed by the weights' fingerprint, and a warm cache
that loads the scene and face experts without importing torch or open_clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.config import Config
from moodsic_engine.experts import scene
from moodsic_engine.experts.base import FrameBatch
from moodsic_engine.experts.scene_runtime import encoder_id
from moodsic_engine.experts.scene_testing import TINY_MODEL, make_tiny_checkpoint, synthetic_scene
from moodsic_engine.runtime import clip_visual
from moodsic_engine.runtime import prompts as prompt_cache


@pytest.fixture(autouse=True)
def _runtime_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtime-cache"
    monkeypatch.setenv("MOODSIC_RUNTIME_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("tinyclip")
    return (
        folder,
        make_tiny_checkpoint(folder),
        make_tiny_checkpoint(folder, seed=1, name="b.safetensors"),
    )


def _cfg(ckpt: Path, **extra: object) -> Config:
    changes: dict[str, object] = {"scene.model": TINY_MODEL, "scene.pretrained": str(ckpt)}
    changes.update(extra)
    return Config().replace(**changes)


def _batch(frames: np.ndarray, t0: float = 0.0, index0: int = 0) -> FrameBatch:
    n = len(frames)
    return FrameBatch(
        frames=frames, times=t0 + np.arange(n) * 0.5, motion=np.zeros(n), index0=index0
    )


def _scenes(n: int) -> np.ndarray:
    return np.stack(
        [synthetic_scene((0.6 - 0.2 * i, -0.3 + 0.15 * i), (224, 398), seed=i) for i in range(n)]
    )


def _predict(expert: scene.SceneExpert, frames: np.ndarray) -> np.ndarray:
    est = expert.predict(_batch(frames))
    return np.stack([est.v, est.a, est.var_v, est.var_a], axis=1)


def test_numpy_preprocessing_matches_torch(tiny: tuple[Path, Path, Path]) -> None:
    """Antialiased bicubic/bilinear resize + crop + normalise, without torch, as torch does."""
    import torch

    _, ckpt, _ = tiny
    enc = scene.build_encoder(scene.resolve_encoder(_cfg(ckpt).scene, None), with_text=False)
    rng = np.random.default_rng(0)
    for shape in ((2, 224, 398, 3), (1, 50, 37, 3), (1, 16, 20, 3)):  # down, odd, up
        frames = rng.integers(0, 256, size=shape, dtype=np.uint8)
        for mode in ("bicubic", "bilinear"):
            enc.interpolation = mode
            want = enc.preprocess(frames).numpy()
            got = clip_visual.preprocess(frames, clip_visual.preprocess_of(enc))
            assert got.shape == want.shape == (shape[0], 3, 32, 32)
            assert np.abs(got - want).max() < 1e-4, (shape, mode)  # float32 rounding only
    assert isinstance(enc.mean, torch.Tensor)


def test_prompt_cache_same_answers_and_keyed_by_fingerprint(
    tiny: tuple[Path, Path, Path], _runtime_cache: Path
) -> None:
    folder, a, b = tiny
    off = {"runtime.onnx": False, "scene.skip_change": 0.0}
    frames = _scenes(4)
    first = scene.load(_cfg(a, **off), folder)  # computes the prompts and stores them
    keys = sorted(p.name for p in (_runtime_cache / "prompts").iterdir())
    assert len(keys) == 1
    again = scene.load(_cfg(a, **off), folder)  # from the cache
    np.testing.assert_allclose(_predict(again, frames), _predict(first, frames), atol=1e-6)
    for axis in ("v", "a"):
        np.testing.assert_array_equal(again._prompts[axis][0], first._prompts[axis][0])

    # A stored entry is really what is used: replace it, and the expert follows it...
    cached = prompt_cache.load_prompts(keys[0])
    assert cached is not None
    flipped = prompt_cache.PromptEmbeddings(
        {k: -v for k, v in cached.text.items()}, cached.scores, cached.logit_scale
    )
    prompt_cache.save_prompts(keys[0], flipped)
    used = scene.load(_cfg(a, **off), folder)
    np.testing.assert_array_equal(used._prompts["v"][0], -first._prompts["v"][0])
    # ...but other weights (another fingerprint) never read it: they get an entry of their own
    other = scene.load(_cfg(b, **off), folder)
    assert len(list((_runtime_cache / "prompts").iterdir())) == 2
    assert not np.allclose(other._prompts["v"][0], -first._prompts["v"][0])


def test_onnx_image_encoder_matches_torch(
    tiny: tuple[Path, Path, Path], _runtime_cache: Path
) -> None:
    pytest.importorskip("onnxruntime")
    folder, a, b = tiny
    frames = _scenes(5)
    base = {"scene.skip_change": 0.0}
    torch_exp = scene.load(_cfg(a, **base, **{"runtime.onnx": False}), folder)
    ort_exp = scene.load(_cfg(a, **base), folder)  # exports, checks, caches
    assert torch_exp.encoder.backend == "torch" and ort_exp.encoder.backend == "onnxruntime"
    emb_t, emb_o = torch_exp.embed(frames), ort_exp.embed(frames)
    assert np.abs(emb_t - emb_o).max() < 1e-4
    assert np.abs(_predict(ort_exp, frames) - _predict(torch_exp, frames)).max() < 1e-4
    cached = scene.load(_cfg(a, **base), folder)  # from the cache this time
    assert cached.encoder.backend == "onnxruntime"
    assert np.abs(cached.embed(frames) - emb_o).max() == 0.0
    # other weights: another key, and nothing cached under it yet
    ref_a = scene.resolve_encoder(_cfg(a).scene, folder)
    ref_b = scene.resolve_encoder(_cfg(b).scene, folder)
    key_a = clip_visual.visual_key(encoder_id(ref_a, "fp32"))
    key_b = clip_visual.visual_key(encoder_id(ref_b, "fp32"))
    assert key_a != key_b and clip_visual.load_cached(key_b, ref_b, 1) is None
    assert [p.name for p in (_runtime_cache / "clip-visual").iterdir()] == [key_a]


def test_skip_gate_off_is_identical_and_on_reuses_within_the_gap(
    tiny: tuple[Path, Path, Path],
) -> None:
    folder, a, _ = tiny
    still = np.repeat(_scenes(1), 8, axis=0)  # 4 s of one picture at 2 samples/s
    frames = np.concatenate([still, _scenes(3)[1:]])  # then two different pictures
    off = scene.load(_cfg(a, **{"runtime.onnx": False, "scene.skip_change": 0.0}), folder)
    every = np.concatenate([_predict(off, frames[i : i + 1]) for i in range(len(frames))])
    whole = _predict(off, frames)
    assert np.abs(whole - every).max() < 1e-6  # gate off: every sample encoded
    assert off.gate.encoded == off.gate.samples == len(frames)

    on = scene.load(_cfg(a, **{"runtime.onnx": False, "scene.skip_max_gap_s": 1.0}), folder)
    gated = _predict(on, frames)
    # samples 0..7 are one picture: encoded at 0 s, 1.5 s, 3 s (the gap is at most 1 s);
    # the two new pictures (4 s, 4.5 s) are encoded at once
    assert on.gate.encoded == 5 and on.gate.samples == 10
    for i, ref in enumerate([0, 0, 0, 3, 3, 3, 6, 6, 8, 9]):
        np.testing.assert_array_equal(gated[i], gated[ref])
    assert np.abs(gated - every).max() < 1e-6  # identical pictures: identical estimates

    # across batches: the last encoded embedding of the previous batch is reused
    on.predict(_batch(still[:2]))
    nxt = on.predict(_batch(still[2:4], t0=1.0, index0=2))
    assert on.gate.encoded == 2 and on.gate.samples == 4  # 0 s, then 1.5 s
    assert nxt.v[0] == pytest.approx(every[0, 0], abs=1e-6)


@pytest.mark.slow
def test_emonet_onnx_matches_torch_and_is_keyed_by_fingerprint(
    tmp_path: Path, _runtime_cache: Path
) -> None:
    pytest.importorskip("onnxruntime")
    import torch

    from moodsic_engine.experts.emonet import EmoNet, load_emonet
    from moodsic_engine.runtime.emonet_runtime import (
        OrtEmoNet,
        _key,
        _load_cached,
        load_emonet_fast,
        run_views,
    )

    torch.manual_seed(0)
    net = EmoNet(8).eval()
    with torch.no_grad():  # running statistics away from 0/1, as a trained net has
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "emonet_8.pth"
    torch.save(net.state_dict(), path)
    views = np.random.default_rng(0).random((3, 256, 256, 3), dtype=np.float32)
    fast = load_emonet_fast(path, 8, threads=2)
    assert isinstance(fast, OrtEmoNet) and fast.n_expression == 8
    v_o, a_o = run_views(fast, views)
    v_t, a_t = run_views(load_emonet(path, 8), views)
    assert max(np.abs(v_o - v_t).max(), np.abs(a_o - a_t).max()) < 1e-4
    assert isinstance(load_emonet_fast(path, 8, threads=2), OrtEmoNet)  # the cached export
    assert len(list((_runtime_cache / "emonet").iterdir())) == 1
    key = _key(path, 8)
    with torch.no_grad():
        net.emo_fc_2[3].bias.add_(0.5)  # other weights, same size: another fingerprint
    torch.save(net.state_dict(), path)
    assert _key(path, 8) != key and _load_cached(_key(path, 8), 2) is None  # not served stale
    assert _load_cached(key, 2) is not None


def test_warm_caches_load_without_torch(
    tiny: tuple[Path, Path, Path], _runtime_cache: Path
) -> None:
    """Second run of the same weights: the scene expert (zero-shot) needs neither torch
    nor open_clip; the prompt embeddings, the resolved weights and the export are cached."""
    pytest.importorskip("onnxruntime")
    folder, a, _ = tiny
    scene.load(_cfg(a), folder)  # first run: fills the caches
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from moodsic_engine.config import Config\n"
        "from moodsic_engine.experts import scene\n"
        f"cfg = Config().replace(**{{'scene.model': {TINY_MODEL!r}, 'scene.pretrained': {str(a)!r}}})\n"
        f"e = scene.load(cfg, Path({str(folder)!r}))\n"
        "import numpy as np\n"
        "est = e.predict(__import__('moodsic_engine.experts.base', fromlist=['x']).FrameBatch("
        "frames=np.zeros((2, 224, 398, 3), np.uint8), times=np.array([0.0, 0.5]), motion=np.zeros(2)))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'open_clip': 'open_clip' in sys.modules,"
        " 'backend': e.encoder.backend, 'v': est.v.tolist()}))\n"
    )
    env = {**os.environ, "MOODSIC_RUNTIME_CACHE": str(_runtime_cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {**got, "torch": False, "open_clip": False, "backend": "onnxruntime"}
    assert len(got["v"]) == 2 and all(-1 <= v <= 1 for v in got["v"])


def test_bench_counts_each_import_once_and_by_stage() -> None:
    """`bench speed --end-to-end` parses `-X importtime`: top-level imports only (nested
    ones are inside them), attributed to the stage that triggered them."""
    from moodsic_engine.bench_e2e import STAGE_MARK, _imports

    stderr = "\n".join(
        [
            "import time:       100 |     500000 | numpy",
            "import time:       100 |     300000 |   numpy.linalg",
            STAGE_MARK + "imports",
            "import time:       100 |    1500000 | onnxruntime",
            STAGE_MARK + "load scene",
            STAGE_MARK + "load face",
        ]
    )
    got = _imports(stderr)
    assert got["total"] == pytest.approx(2.0)
    assert got["top"] == [("onnxruntime", 1.5), ("numpy", 0.5)]
    assert got["by_stage"] == {"imports": 0.5, "load scene": 1.5, "load face": 0.0}
