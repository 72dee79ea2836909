"""EmoNet re-implementation: official key layout, strict loading, outputs, global state."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from moodsic_engine.errors import ResourceError
from moodsic_engine.experts.emonet import (
    EmoNet,
    build_from_state_dict,
    infer_n_expression,
    load_emonet,
    run_emonet,
)

torch.set_num_threads(1)

# Key names as they appear in the authors' emonet_8.pth (after the `module.` prefix).
OFFICIAL_KEYS = [
    "conv1.weight",
    "conv1.bias",
    "bn1.running_mean",
    "conv2.downsample.0.running_var",
    "conv2.downsample.2.weight",
    "conv4.downsample.2.weight",
    "m0.b1_4.bn1.weight",
    "m0.b2_plus_1.conv3.weight",
    "m1.b3_2.bn3.running_mean",
    "top_m_1.conv1.weight",
    "conv_last0.bias",
    "bn_end1.running_var",
    "l1.weight",
    "bl0.weight",
    "al0.weight",
    "conv1x1_input_emo_2.weight",
    "emo_net_2.0.bn1.weight",
    "emo_net_2.6.conv3.weight",
    "emo_fc_2.0.weight",
    "emo_fc_2.1.running_mean",
    "emo_fc_2.3.bias",
]


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    """A random EmoNet saved the way the authors saved theirs: DataParallel `module.` keys."""
    torch.manual_seed(0)
    net = EmoNet(8)
    return {f"module.{k}": v.clone() for k, v in net.state_dict().items()}


def test_key_layout_matches_the_published_checkpoints(official_state) -> None:
    keys = {k.removeprefix("module.") for k in official_state}
    for k in OFFICIAL_KEYS:
        assert k in keys, k
    # 682 entries in the published layout (BatchNorm everywhere, incl. num_batches_tracked)
    assert len(keys) == 682
    assert not any("bl1" in k or "al1" in k for k in keys)  # only between stacks
    assert not any(k.startswith("emo_net_2.1.") for k in keys)  # odd indices are pools
    norm_types = {type(m) for m in EmoNet(5).modules() if "Norm" in type(m).__name__}
    assert norm_types == {torch.nn.BatchNorm2d, torch.nn.BatchNorm1d}


def test_loads_official_names_from_file_and_outputs_shapes(official_state, tmp_path) -> None:
    path = tmp_path / "emonet_8.pth"
    torch.save(official_state, path)
    net = load_emonet(path)
    assert net.n_expression == 8 and not net.training
    # loaded, not re-initialised: a weight equals the saved tensor
    assert torch.equal(net.conv1.weight, official_state["module.conv1.weight"])
    x = torch.rand(2, 3, 256, 256)
    raw = net(x)
    assert raw["expression"].shape == (2, 8)
    assert raw["valence"].shape == (2,) and raw["arousal"].shape == (2,)
    assert raw["heatmap"].shape == (2, 68, 64, 64)
    out = run_emonet(net, x)
    for t in (out.valence, out.arousal):
        assert torch.isfinite(t).all() and (t.abs() <= 1).all()
    assert torch.allclose(out.expression.sum(1), torch.ones(2), atol=1e-5)
    assert (out.expression >= 0).all()


def test_missing_and_extra_keys_are_named(official_state) -> None:
    broken = dict(official_state)
    del broken["module.emo_fc_2.0.weight"]
    broken["module.extra_head.weight"] = torch.zeros(3)
    with pytest.raises(ResourceError) as err:
        build_from_state_dict(broken, source="bad.pth")
    msg = str(err.value)
    assert "bad.pth" in msg and "emo_fc_2.0.weight" in msg and "extra_head.weight" in msg
    assert "\n" not in msg


def test_shape_mismatch_is_named(official_state) -> None:
    broken = dict(official_state)
    broken["module.l1.weight"] = torch.zeros(10, 256, 1, 1)
    with pytest.raises(ResourceError, match=r"l1\.weight"):
        build_from_state_dict(broken)


def test_five_class_checkpoint_refused_as_eight_class() -> None:
    torch.manual_seed(1)
    five = {f"module.{k}": v for k, v in EmoNet(5).state_dict().items()}
    assert infer_n_expression(five) == 5
    with pytest.raises(ResourceError, match="5-class"):
        build_from_state_dict(five, n_expression=8)
    assert build_from_state_dict(five).n_expression == 5  # inferred when not forced


def test_old_checkpoints_without_batch_counters_load(official_state) -> None:
    old = {k: v for k, v in official_state.items() if not k.endswith("num_batches_tracked")}
    assert build_from_state_dict(old).n_expression == 8


def test_not_an_emonet_file(tmp_path) -> None:
    path = tmp_path / "emonet_8.pth"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ResourceError, match="not an EmoNet checkpoint"):
        load_emonet(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ResourceError, match="cannot load"):
        load_emonet(path)


def test_batchnorm_statistics_are_used_in_eval(official_state) -> None:
    # The checkpoints carry running statistics: eval-mode outputs must depend on them
    # (they would not with InstanceNorm, which normalises each image by itself).
    state = dict(official_state)
    net_a = build_from_state_dict(state)
    state["module.bn1.running_mean"] = state["module.bn1.running_mean"] + 0.5
    net_b = build_from_state_dict(state)
    x = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        assert not torch.allclose(net_a(x)["heatmap"], net_b(x)["heatmap"])


def test_global_torch_state_unchanged() -> None:
    code = textwrap.dedent(
        """
        import torch, torch.nn as nn
        torch.set_num_threads(1)
        def snap():
            return (nn.InstanceNorm2d, nn.BatchNorm2d, nn.Conv2d.__init__, torch.get_num_threads(),
                    torch.is_grad_enabled(), torch.get_default_dtype(),
                    torch.are_deterministic_algorithms_enabled(), torch.nn.functional.relu)
        before = snap()
        import moodsic_engine.experts.face as face
        from moodsic_engine.experts.emonet import EmoNet, run_emonet
        assert snap() == before, "import changed torch"
        net = EmoNet(8).eval()
        run_emonet(net, torch.rand(1, 3, 256, 256))
        assert snap() == before, "inference changed torch"
        m = nn.InstanceNorm2d(4)
        assert type(m).__name__ == "InstanceNorm2d"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_equal_inputs_give_equal_outputs(official_state) -> None:
    net = build_from_state_dict(official_state)
    x = torch.rand(1, 3, 256, 256)
    a = run_emonet(net, torch.cat([x, x]))
    assert np.isclose(float(a.valence[0]), float(a.valence[1]), atol=1e-5)
