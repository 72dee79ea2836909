"""EmoNet (Toisoul et al., Nature Machine Intelligence 2021), written for Moodsic.

The published network is a two-stack face-alignment hourglass network (FAN) whose
features, masked by the sum of its landmark heatmaps, feed a small convolutional
emotion head. The head outputs expression logits (5 or 8 classes), valence and arousal.

This module re-implements that architecture so the official checkpoints
(`emonet_8.pth`, `emonet_5.pth`) load by state-dict key. Two details of those files:

* The authors' code swaps `nn.InstanceNorm2d` for `nn.BatchNorm2d` for the whole
  process, so every normalisation layer in the checkpoints holds BatchNorm parameters and
  running statistics. We build BatchNorm layers where the checkpoint has them, through a
  `norm` argument, and never touch `torch.nn` itself.
* The keys carry a `module.` prefix (saved from DataParallel). We strip it, then load
  strictly: missing or unexpected keys and shape mismatches are named in one clear line
  instead of being ignored.

Input: RGB face crops, 256x256, values in [0, 1], shape [B, 3, 256, 256].
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ResourceError

INPUT_SIZE = 256
N_LANDMARKS = 68
FEATURES = 256

EXPRESSIONS_8 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
EXPRESSIONS_5 = EXPRESSIONS_8[:5]

NormFactory = Callable[[int], nn.Module]


def _norm_factory(kind: str) -> NormFactory:
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "instance":
        # What the architecture was designed with; only for training from scratch.
        return lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=True)
    raise ValueError(f"unknown norm {kind!r} (batch or instance)")


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Pre-activation residual block with three 3x3 convolutions of shrinking width whose
    outputs are concatenated (cout/2 + cout/4 + cout/4 channels)."""

    def __init__(self, cin: int, cout: int, norm: NormFactory) -> None:
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.bn1 = norm(cin)
        self.conv1 = _conv3(cin, half)
        self.bn2 = norm(half)
        self.conv2 = _conv3(half, quarter)
        self.bn3 = norm(quarter)
        self.conv3 = _conv3(quarter, quarter)
        # Key layout of the published checkpoints: downsample.0 = norm, .1 = ReLU, .2 = 1x1 conv.
        self.downsample: nn.Module | None = None
        if cin != cout:
            self.downsample = nn.Sequential(
                norm(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel_size=1, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        skip = x if self.downsample is None else self.downsample(x)
        return torch.cat((a, b, c), dim=1) + skip


class HourGlass(nn.Module):
    """Recursive hourglass of the given depth; block names follow the published layout
    (b1_<level>, b2_<level>, b3_<level>, and b2_plus_1 at the bottom)."""

    def __init__(self, depth: int, norm: NormFactory) -> None:
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(FEATURES, FEATURES, norm))
            self.add_module(f"b2_{level}", ConvBlock(FEATURES, FEATURES, norm))
            self.add_module(f"b3_{level}", ConvBlock(FEATURES, FEATURES, norm))
        self.add_module("b2_plus_1", ConvBlock(FEATURES, FEATURES, norm))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        lower = self._modules[f"b2_{level}"](F.max_pool2d(x, 2, stride=2))
        if level > 1:
            lower = self._level(level - 1, lower)
        else:
            lower = self._modules["b2_plus_1"](lower)
        lower = self._modules[f"b3_{level}"](lower)
        return upper + F.interpolate(lower, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class EmoNet(nn.Module):
    """FAN features (2 hourglass stacks) + attention-masked emotion head.

    forward(x[B,3,256,256] in [0,1]) -> dict with 'expression' [B, n_expression] logits,
    'valence' [B], 'arousal' [B] (roughly in [-1, 1]) and 'heatmap' [B, 68, 64, 64].
    """

    def __init__(
        self,
        n_expression: int = 8,
        *,
        num_stacks: int = 2,
        n_head_blocks: int = 4,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        make_norm = _norm_factory(norm)
        self.n_expression = n_expression
        self.num_stacks = num_stacks
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = make_norm(64)
        self.conv2 = ConvBlock(64, 128, make_norm)
        self.conv3 = ConvBlock(128, 128, make_norm)
        self.conv4 = ConvBlock(128, FEATURES, make_norm)
        for i in range(num_stacks):
            self.add_module(f"m{i}", HourGlass(4, make_norm))
            self.add_module(f"top_m_{i}", ConvBlock(FEATURES, FEATURES, make_norm))
            self.add_module(f"conv_last{i}", nn.Conv2d(FEATURES, FEATURES, kernel_size=1))
            self.add_module(f"bn_end{i}", make_norm(FEATURES))
            self.add_module(f"l{i}", nn.Conv2d(FEATURES, N_LANDMARKS, kernel_size=1))
            if i < num_stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(FEATURES, FEATURES, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(N_LANDMARKS, FEATURES, kernel_size=1))
        # Emotion head: 1x1 fusion of stem + stack features, then 4 x (block, 2x2 max-pool);
        # the pools sit at the odd indices of emo_net_2, as in the published key layout.
        self.conv1x1_input_emo_2 = nn.Conv2d(FEATURES * (num_stacks + 1), FEATURES, kernel_size=1)
        layers: list[nn.Module] = []
        for _ in range(n_head_blocks):
            layers += [ConvBlock(FEATURES, FEATURES, make_norm), nn.MaxPool2d(2, 2)]
        self.emo_net_2 = nn.Sequential(*layers)
        self.emo_fc_2 = nn.Sequential(
            nn.Linear(FEATURES, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Linear(128, n_expression + 2),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(self.conv2(x), 2, stride=2)
        x = self.conv4(self.conv3(x))
        previous = x
        stack_features: list[torch.Tensor] = []
        heatmaps = x.new_zeros(0)
        for i in range(self.num_stacks):
            feat = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            feat = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](feat)))
            heatmaps = self._modules[f"l{i}"](feat)
            if i < self.num_stacks - 1:
                feat = self._modules[f"bl{i}"](feat)
                previous = previous + feat + self._modules[f"al{i}"](heatmaps)
            stack_features.append(feat)
        # Attention: the summed landmark heatmaps of the last stack weight the stack features.
        mask = heatmaps.sum(dim=1, keepdim=True)
        emo = torch.cat((x, torch.cat(stack_features, dim=1) * mask), dim=1)
        emo = self.emo_net_2(self.conv1x1_input_emo_2(emo))
        emo = F.adaptive_avg_pool2d(emo, 1).flatten(1)
        out = self.emo_fc_2(emo)
        return {
            "heatmap": heatmaps,
            "expression": out[:, :-2],
            "valence": out[:, -2],
            "arousal": out[:, -1],
        }


# ----------------------------------------------------------------------------- loading
def strip_prefix(state: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Drop a DataParallel-style prefix from every key that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def infer_n_expression(state: Mapping[str, Any]) -> int | None:
    """Number of expression classes a checkpoint was trained for (from its last layer)."""
    w = strip_prefix(state).get("emo_fc_2.3.weight")
    if w is None or getattr(w, "ndim", 0) != 2:
        return None
    return int(w.shape[0]) - 2


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    model: nn.Module, state: Mapping[str, Any], source: str = "checkpoint"
) -> None:
    """Raise ResourceError naming missing/unexpected keys or shape mismatches.

    BatchNorm's `num_batches_tracked` counters may be absent (older PyTorch wrote none);
    they do not affect inference.
    """
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected)
    n_model = getattr(model, "n_expression", None)
    n_ckpt = infer_n_expression(state)
    if n_model is not None and n_ckpt is not None and n_ckpt != n_model:
        raise ResourceError(
            f"{source} has a {n_ckpt}-class expression head but a {n_model}-class EmoNet was "
            f"requested (use emonet_{n_model}.pth, or let Moodsic infer the class count)"
        )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    if not problems:
        bad = [
            f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)
        ]
        if bad:
            problems.append(f"{len(bad)} shape mismatch(es): {_names(bad, 2)}")
    if problems:
        raise ResourceError(f"{source} is not an EmoNet checkpoint: " + "; ".join(problems))


def build_from_state_dict(
    state: Mapping[str, Any], n_expression: int | None = None, source: str = "checkpoint"
) -> EmoNet:
    """An EmoNet in eval mode with `state` loaded strictly (prefix `module.` removed).

    With `n_expression` None the class count is read from the checkpoint; with a value,
    a checkpoint for a different head is refused with a clear message.
    """
    clean = strip_prefix(state)
    # Without the last layer the class count is unknown; 8 lets the check name what is missing.
    model = EmoNet(n_expression=n_expression or infer_n_expression(clean) or 8)
    check_state_dict(model, clean, source)
    model.load_state_dict(clean, strict=False)  # strictness was checked above, with names
    return model.eval()


def load_emonet(path: str | os.PathLike[str], n_expression: int | None = None) -> EmoNet:
    """Read an official EmoNet checkpoint through the project's safe loader."""
    from ..weights import load_state_dict

    state = load_state_dict(path)
    return build_from_state_dict(state, n_expression, source=os.path.basename(str(path)))


@dataclass(frozen=True)
class EmoNetOutput:
    valence: torch.Tensor  # [B], clipped to [-1, 1]
    arousal: torch.Tensor  # [B], clipped to [-1, 1]
    expression: torch.Tensor  # [B, n] probabilities


@torch.inference_mode()
def run_emonet(model: EmoNet, images: torch.Tensor) -> EmoNetOutput:
    """Inference on [B, 3, 256, 256] float images in [0, 1]."""
    out = model(images)
    return EmoNetOutput(
        valence=out["valence"].clamp(-1.0, 1.0),
        arousal=out["arousal"].clamp(-1.0, 1.0),
        expression=out["expression"].softmax(dim=1),
    )
