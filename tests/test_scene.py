"""Scene expert: tiny random open_clip model, MC-dropout head, calibration, head files."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

from moodsic_engine.config import Config  # noqa: E402
from moodsic_engine.errors import ExpertUnavailable, ResourceError  # noqa: E402
from moodsic_engine.experts import scene  # noqa: E402
from moodsic_engine.experts.base import ClipContext, ExpertSeries, FrameBatch  # noqa: E402
from moodsic_engine.experts.bench_experts import bench_scene  # noqa: E402
from moodsic_engine.experts.fetch_weights import fetch_scene  # noqa: E402
from moodsic_engine.experts.scene_testing import (  # noqa: E402
    TINY_MODEL,
    make_tiny_checkpoint,
    synthetic_scene,
)
from moodsic_engine.weights import WeightsError  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tinyclip")
    return folder, make_tiny_checkpoint(folder)


def _cfg(ckpt: Path, **extra: object) -> Config:
    changes = {"scene.model": TINY_MODEL, "scene.pretrained": str(ckpt), "scene.mc_passes": 20}
    changes.update({f"scene.{k}": v for k, v in extra.items()})
    return Config().replace(**changes)


def _frames(n: int, va: tuple[float, float] = (0.3, -0.2)) -> FrameBatch:
    fr = np.stack([synthetic_scene(va, (224, 398), seed=i) for i in range(n)])
    return FrameBatch(frames=fr, times=np.arange(n) * 0.5, motion=np.zeros(n))


def _make_head_file(
    tiny: tuple[Path, Path], path: Path, calibration=(1.0, 1.0), dropout=0.3
) -> Path:
    folder, ckpt = tiny
    ref = scene.resolve_encoder(_cfg(ckpt).scene, folder)
    torch.manual_seed(1)
    head = scene.SceneHead(32, hidden=16, dropout=dropout)
    head.calibration.copy_(torch.tensor(calibration))
    meta = {
        "encoder": scene.encoder_meta(ref, 32),
        "training": {"data": "synthetic"},
        "metrics": {},
    }
    return scene.save_head(path, head, meta)


def test_offline_without_weights_is_unavailable_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(scene, "cached_checkpoint", lambda cfg, cache_dir=None: None)
    import open_clip  # noqa: F401 - the first import alone takes seconds; time only the check

    t0 = time.perf_counter()
    av = scene.probe(Config(), tmp_path)
    with pytest.raises(ExpertUnavailable) as err:
        scene.load(Config(), tmp_path)
    assert time.perf_counter() - t0 < 5.0  # no hub retries (those take ~50 s)
    assert not av.ready
    assert "\n" not in av.reason and "ViT-B-32/laion2b_s34b_b79k" in av.reason
    assert "moodsic weights fetch scene" in av.reason and "HF_HUB_OFFLINE" in av.reason
    assert str(err.value) == av.reason
    with pytest.raises(ResourceError, match="HF_HUB_OFFLINE"):
        fetch_scene(Config(), tmp_path, echo=lambda s: None)


def test_missing_checkpoint_path_and_unknown_names(tmp_path: Path) -> None:
    bad = Config().replace(**{"scene.pretrained": str(tmp_path / "nope.pt")})
    assert "not found" in scene.probe(bad, tmp_path).reason
    assert (
        "unknown open_clip model"
        in scene.probe(Config().replace(**{"scene.model": "NoSuch-1"})).reason
    )
    assert (
        "neither a pretrained tag"
        in scene.probe(Config().replace(**{"scene.pretrained": "bogus"})).reason
    )


def test_zero_shot_mode_shapes_ranges(tiny: tuple[Path, Path]) -> None:
    folder, ckpt = tiny
    cfg = _cfg(ckpt)
    av = scene.probe(cfg, folder)
    assert av.ready and "zero-shot" in av.uses
    expert = scene.load(cfg, folder)
    assert expert.mode == "zero-shot"
    est = expert.predict(_frames(5))
    for arr in (est.v, est.a, est.var_v, est.var_a):
        assert arr.shape == (5,) and np.all(np.isfinite(arr))
    assert np.all(np.abs(est.v) <= 1) and np.all(np.abs(est.a) <= 1)
    sc = cfg.scene  # variances from the prompt-softmax entropy, between the published bounds
    assert np.all((est.var_v >= sc.zero_shot_var_min_v) & (est.var_v <= sc.zero_shot_var_max_v))
    assert np.all((est.var_a >= sc.zero_shot_var_min_a) & (est.var_a <= sc.zero_shot_var_max_a))
    assert est.present.all()
    series = ExpertSeries.concat("scene", "trained", np.arange(5) * 0.5, [est])
    out = expert.finalize(series, ClipContext(2.5, 25))
    assert out.mode == "zero-shot" and "zero-shot" in str(out.info["uses"])


def test_encoder_runs_once_per_frame(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    cfg = _cfg(ckpt, batch_size=4).replace(**{"runtime.onnx": False})  # the torch encoder
    head_path = _make_head_file(tiny, tmp_path / "h.safetensors")
    expert = scene.load(cfg.replace(**{"scene.head": str(head_path)}), folder)
    assert expert.mode == "trained"
    seen: list[int] = []
    inner = expert.encoder.model.encode_image

    def counting(x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        seen.append(int(x.shape[0]))
        return inner(x, normalize=normalize)

    expert.encoder.model.encode_image = counting
    est = expert.predict(_frames(10))
    assert seen == [4, 4, 2]  # batched, and 10 frames encoded once each despite 20 MC passes
    assert est.v.shape == (10,) and np.all(est.var_v > 0) and np.all(est.var_a > 0)


def test_mc_variance_positive_and_shrinks_with_dropout() -> None:
    torch.manual_seed(0)
    head = scene.SceneHead(32, hidden=64, dropout=0.5).eval()
    emb = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
    variances = []
    for p in (0.5, 0.2, 0.05, 0.0):
        torch.manual_seed(0)
        _, var = head.mc_predict(emb, passes=50, p=p)
        variances.append(float(var.mean()))
    assert variances[0] > variances[1] > variances[2] > variances[3] == 0.0
    assert variances[2] > 0
    # the MC mean approaches the deterministic output as dropout goes to 0
    with torch.no_grad():
        det = head(emb, p=0.0)
    mean, _ = head.mc_predict(emb, passes=50, p=0.05)
    assert float((mean - det).abs().max()) < 0.1


def test_calibration_recovers_known_factor() -> None:
    rng = np.random.default_rng(0)
    k = np.array([2.5, 0.4])
    var = rng.uniform(0.01, 0.1, size=(20000, 2))
    err = rng.normal(0, 1, size=var.shape) * np.sqrt(k * var)
    s = scene.fit_calibration(var, err**2)
    np.testing.assert_allclose(s, k, rtol=0.05)


def test_calibration_scales_reported_variance(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    cfg = _cfg(ckpt)
    ones = scene.load(
        cfg.replace(**{"scene.head": str(_make_head_file(tiny, tmp_path / "a.safetensors"))}),
        folder,
    )
    scaled = scene.load(
        cfg.replace(
            **{"scene.head": str(_make_head_file(tiny, tmp_path / "b.safetensors", (3.0, 0.5)))}
        ),
        folder,
    )
    frames = _frames(6)
    torch.manual_seed(5)
    e1 = ones.predict(frames)
    torch.manual_seed(5)
    e2 = scaled.predict(frames)
    np.testing.assert_allclose(e2.var_v, 3.0 * e1.var_v, rtol=1e-5)
    np.testing.assert_allclose(e2.var_a, 0.5 * e1.var_a, rtol=1e-5)


def test_head_round_trip_and_default_location(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    cfg = _cfg(ckpt)
    name = scene.head_candidates(cfg.scene)[0]
    path = _make_head_file(tiny, tmp_path / name, calibration=(1.7, 0.9))
    loaded = scene.load_head(path)
    assert loaded.meta["format"] == scene.HEAD_FORMAT
    assert loaded.meta["calibration"] == pytest.approx([1.7, 0.9])
    assert (
        loaded.meta["encoder"]["model"] == TINY_MODEL
        and loaded.meta["training"]["data"] == "synthetic"
    )
    torch.manual_seed(1)
    fresh = scene.SceneHead(32, hidden=16, dropout=0.3)
    emb = torch.randn(3, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.head(emb, p=0.0), fresh(emb, p=0.0))
    # found in the weights dir under its encoder-specific name: trained mode without --scene-head
    av = scene.probe(cfg, tmp_path)
    assert av.ready and "trained" in av.uses
    assert scene.load(cfg, tmp_path).mode == "trained"


def test_head_for_another_encoder_is_refused(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    path = _make_head_file(tiny, tmp_path / "h.safetensors")
    other = make_tiny_checkpoint(
        tmp_path, seed=7, name="other.safetensors"
    )  # same arch, other weights
    cfg = _cfg(other).replace(**{"scene.head": str(path)})
    with pytest.raises(WeightsError, match="was trained on"):
        scene.load(cfg, folder)
    assert not scene.probe(cfg, folder).ready
    wrong_model = Config().replace(**{"scene.pretrained": str(ckpt), "scene.head": str(path)})
    with pytest.raises(WeightsError, match=f"trained on {TINY_MODEL}"):
        scene.load(wrong_model, folder)


def test_corrupt_truncated_and_malicious_heads(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    good = _make_head_file(tiny, tmp_path / "good.safetensors")
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    with evil.open("wb") as f:
        pickle.dump({"moodsic": "{}", "w": Evil()}, f)
    for bad in (truncated, garbage, evil):
        with pytest.raises(ResourceError) as err:
            scene.load_head(bad)
        assert "\n" not in str(err.value)
        with pytest.raises(WeightsError):
            scene.load(_cfg(ckpt).replace(**{"scene.head": str(bad)}), folder)
    assert not marker.exists()


def test_corrupt_clip_checkpoint_is_one_line(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "clip.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as err:
        scene.load(_cfg(bad), tiny[0])
    assert "cannot load CLIP weights" in str(err.value) and "\n" not in str(err.value)


def test_fetch_with_local_checkpoint_does_nothing(tiny: tuple[Path, Path]) -> None:
    lines: list[str] = []
    assert fetch_scene(_cfg(tiny[1]), tiny[0], echo=lines.append) == tiny[1]
    assert "nothing to fetch" in lines[0]


def test_benchmark_prints_ratios(tiny: tuple[Path, Path]) -> None:
    lines = bench_scene(_cfg(tiny[1], mc_passes=10), tiny[0], batch=4, repeats=2)
    text = "\n".join(lines)
    assert "MC dropout x10" in text and "naive" in text and "frames/s" in text
    ratio = float(lines[1].split(": ")[-1].split("x")[0])
    naive_ratio = float(lines[2].split(": ")[-1].split("x")[0])
    assert ratio > 0 and naive_ratio < 1.0  # re-running the encoder per pass is slower


def test_fetch_unreachable_host_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(scene, "cached_checkpoint", lambda cfg, cache_dir=None: None)

    def refuse(*a: object, **k: object) -> None:
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match="cannot reach huggingface.co") as err:
        fetch_scene(Config(), tmp_path, echo=lambda s: None)
    assert time.perf_counter() - t0 < 5.0 and "--scene-pretrained" in str(err.value)


def test_pipeline_runs_scene_with_grammar(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    from media import lavfi_video

    from moodsic_engine.experts import load_experts
    from moodsic_engine.pipeline import analyze_video

    video = lavfi_video(tmp_path / "clip.mp4", seconds=3.0)
    cfg = _cfg(tiny[1])
    experts = load_experts(cfg, tiny[0], names=("scene", "grammar"))
    analysis = analyze_video(video, experts, cfg)
    assert analysis.modes["scene"] == "zero-shot"
    s = next(x for x in analysis.series if x.name == "scene")
    assert len(s.v) == len(analysis.t) >= 5 and s.present.all()
    assert np.all(np.isfinite(analysis.fused_va))
    # without weights the pipeline carries on with the other experts and says why
    rest = load_experts(Config(), tmp_path / "none")
    assert "scene" in rest.unavailable and "scene" not in rest.names


@pytest.mark.slow
def test_mobileclip_reparameterization_keeps_outputs() -> None:
    import timm

    # MobileCLIP2-S0's image tower (open_clip builds it through timm as fastvit_mci0)
    tower = timm.create_model("fastvit_mci0", pretrained=False, num_classes=0).eval()
    x = torch.randn(2, 3, 128, 128)
    n_before = sum(p.numel() for p in tower.parameters())
    with torch.no_grad():
        before = tower(x)
        visual = scene.reparameterize(tower)
        after = visual(x)
    assert sum(p.numel() for p in visual.parameters()) < n_before  # branches were folded
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    tiny_visual = torch.nn.Linear(2, 2)
    assert scene.reparameterize(tiny_visual) is tiny_visual


def test_relative_checkpoint_and_torch_head_format(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    cfg = Config().replace(**{"scene.model": TINY_MODEL, "scene.pretrained": ckpt.name})
    ref = scene.resolve_encoder(
        cfg.scene, folder
    )  # a bare file name is looked up in the weights dir
    assert ref.checkpoint == folder / ckpt.name and not ref.is_tag
    st = _make_head_file(tiny, tmp_path / "h.safetensors", calibration=(2.0, 0.5))
    loaded = scene.load_head(st)
    state = dict(loaded.head.state_dict())
    state["moodsic"] = json.dumps(loaded.meta)
    pt = tmp_path / "h.pt"
    torch.save(state, pt)
    again = scene.load_head(pt)
    assert again.meta["calibration"] == [2.0, 0.5]
    torch.testing.assert_close(again.head.calibration, torch.tensor([2.0, 0.5]))
    expert = scene.load(_cfg(ckpt).replace(**{"scene.head": str(pt)}), folder)
    assert expert.mode == "trained"


def test_local_dir_model(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    from moodsic_engine.experts.scene_testing import TINY_CONFIG

    folder = tmp_path / "tinydir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    (folder / "open_clip_model.safetensors").write_bytes(tiny[1].read_bytes())
    cfg = Config().replace(**{"scene.model": f"local-dir:{folder}", "scene.pretrained": ""})
    assert scene.probe(cfg, tmp_path).ready
    expert = scene.load(cfg, tmp_path)
    est = expert.predict(_frames(3))
    assert expert.mode == "zero-shot" and est.v.shape == (3,)
    frames = _frames(2).frames
    by_path = scene.load(_cfg(tiny[1]), tiny[0])  # the same weights through a checkpoint path
    torch.testing.assert_close(expert.embed(frames), by_path.embed(frames))
    empty = Config().replace(**{"scene.model": f"local-dir:{tmp_path / 'nothing'}"})
    assert "needs open_clip_config.json" in scene.probe(empty, tmp_path).reason
