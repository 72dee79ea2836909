"""Every tunable in one frozen dataclass tree, loadable from and savable to TOML.

The whole tree is echoed into each cue sheet (`engine.config`) so a result can be
reproduced. Unknown keys in a TOML file are an error, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_CONFIG_BYTES = 1 << 20  # a full config is about 2 KB


@dataclass(frozen=True)
class SampleConfig:
    sample_fps: float = 2.0  # samples per second handed to the experts
    short_side: int = 224  # working resolution of sampled frames
    skip_frames: bool = True  # decoder drops unreferenced frames when sampling sparsely
    skip_ratio: float = 4.0  # skip only when video fps >= skip_ratio * sample_fps
    cut_threshold: float = 0.22  # content change (0..1) that counts as a shot cut
    cut_min_gap_s: float = 0.5  # no two cuts closer than this
    decoder_threads: int = 2
    max_pixels: int = 8192 * 8192  # refuse absurd declared frame sizes before decoding


@dataclass(frozen=True)
class GrammarConfig:
    motion_gain: float = 60.0  # mean abs luma change per frame -> arousal (saturating)
    cut_window_s: float = 6.0  # window for cut density
    cuts_per_s_high: float = 1.0  # cut rate that counts as fully "fast"
    var_v: float = 0.12  # film grammar is a weak cue; its variance says so
    var_a: float = 0.08


@dataclass(frozen=True)
class SceneConfig:
    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"  # open_clip tag or a local checkpoint path
    head: str = ""  # trained head file; empty: scene_head_<model>_<tag>.safetensors in the weights dir, else zero-shot prompts
    mc_passes: int = 20
    batch_size: int = 8
    # zero-shot variance: prompt softmax at this temperature (on cosine similarities), its
    # entropy over score levels moves the variance from var_min (certain) to var_max (no
    # idea); defaults from published figures, see moodsic_engine/calibration.py
    zero_shot_temperature: float = 0.025
    zero_shot_var_min_v: float = 0.1991
    zero_shot_var_min_a: float = 0.2855
    zero_shot_var_max_v: float = 0.3974
    zero_shot_var_max_a: float = 0.3181
    # content-change gate: a sample whose grey thumbnail moved at most this much (mean abs,
    # 0..1) since the last encoded sample reuses its embedding; 0 encodes every sample
    skip_change: float = 0.01
    skip_max_gap_s: float = 1.0  # ... for at most this long
    precision: str = "fp32"


@dataclass(frozen=True)
class FaceConfig:
    emonet: str = ""  # path to emonet_8.pth / emonet_5.pth; empty: look in weights dir
    detector: str = ""  # MediaPipe .tflite; empty: the bundled/short-range model
    min_face_frac: float = (
        0.04  # faces whose box side is below this share of the short side are ignored
    )
    # a face: detector confidence >= min_confidence and the face mesh's presence >=
    # min_mesh_presence (README "What counts as a face")
    min_confidence: float = 0.6
    min_mesh_presence: float = 0.5
    tta_views: int = 5
    tta_uncertain_var: float = 0.03  # run the extra views only when one view leaves this much doubt
    var_floor_v: float = 0.02
    var_floor_a: float = 0.02
    fallback_var: float = 0.25  # landmark-geometry fallback is a weak cue
    # raw face variance = floor + scale * spread across views; a calibration file maps it to
    # the expected squared error (`eval veatic` / `eval findingemo` fit it and report the
    # equivalent fitted scale)
    tta_var_scale: float = 2.0
    max_faces: int = 3  # faces per sample that get an estimate (the best-scored ones)
    # a steady face reuses its last EmoNet estimate for at most this long (README "Performance")
    reuse_max_s: float = 4.0
    # largest change of the face-mesh expression features (inter-ocular units) that still
    # counts as a steady face; detection jitter alone moves them by about 0.03
    steady_diff: float = 0.06


@dataclass(frozen=True)
class FusionConfig:
    var_floor: float = 0.01  # no expert may claim more certainty than this
    var_ceiling: float = 4.0
    # calibration file (raw spread -> expected squared error per expert); empty: a
    # calibration.json in the weights folder, else `builtin` (published figures); `none`
    calibration: str = ""


@dataclass(frozen=True)
class StabilizeConfig:
    ema_alpha: float = (
        0.6  # per sample at the configured sample rate (chosen by `moodsic bench stability`)
    )
    gate: float = 0.20  # mean fused variance above this holds the last stable value
    max_hold_s: float = 6.0  # after this long, follow the data again even if uncertain


@dataclass(frozen=True)
class SegmentConfig:
    min_segment_s: float = 8.0
    switch_penalty: float = 4.0  # log-likelihood cost of changing mood (hysteresis)
    cut_snap_s: float = 1.5  # boundaries move to a shot cut this close


@dataclass(frozen=True)
class MatchConfig:
    cluster_gate: float = 0.6  # below this top posterior, the gate widens to the top two clusters
    no_repeat: int = 3  # a track is not reused within this many segments
    max_clusters: int = 8
    min_clusters: int = 2


@dataclass(frozen=True)
class MixConfig:
    sample_rate: int = 48000
    crossfade_s: float = 2.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    duck: bool = True
    duck_db: float = -10.0
    duck_attack_s: float = 0.15
    duck_release_s: float = 0.6
    # music this many LU under the dialogue's loudness where people speak (the video's own
    # sound is never raised); see moodsic_engine/mix/levels.py for the source of the default
    music_under_dialogue_lu: float = 12.0
    beat_align: bool = True  # loop/crossfade on the bar grid (sidecar or librosa beat tracking)


@dataclass(frozen=True)
class RuntimeConfig:
    torch_threads: int = 0  # 0: let the engine pick (cores / workers)
    onnx: bool = True  # CLIP image tower and EmoNet on ONNX Runtime when installed (else torch)


@dataclass(frozen=True)
class Config:
    seed: int = 0
    experts: tuple[str, ...] = ()  # empty: every available expert
    sample: SampleConfig = field(default_factory=SampleConfig)
    grammar: GrammarConfig = field(default_factory=GrammarConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    stabilize: StabilizeConfig = field(default_factory=StabilizeConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return _from_dict(cls, data, "")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Config:
        from .fileio import regular_file

        # A FIFO or device would block the read; a config is a few KB, so cap what is read.
        p = regular_file(path, "config file", max_bytes=MAX_CONFIG_BYTES)
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"config file {p} is not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"cannot read config file {p}: {exc.strerror or exc}") from None
        try:
            data = tomllib.loads(text)
        except RecursionError:  # tomllib recurses once per nested array or inline table
            raise InputError(f"config file {p} is nested too deeply to be a config") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"config file {p} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data)
        except RecursionError:
            raise InputError(f"config file {p} is nested too deeply to be a config") from None

    def to_toml(self) -> str:
        return _dump_toml(self.to_dict())

    def save_toml(self, path: str | os.PathLike[str]) -> Path:
        from .fileio import write_text_atomic

        return write_text_atomic(path, self.to_toml())

    def replace(self, **changes: Any) -> Config:
        """Copy with changes; dotted keys reach into sections: replace(**{"sample.sample_fps": 4})."""
        flat: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            if "." in key:
                section, name = key.split(".", 1)
                flat.setdefault(section, {})[name] = value
            else:
                top[key] = value
        for section, values in flat.items():
            top[section] = dataclasses.replace(getattr(self, section), **values)
        return dataclasses.replace(self, **top)


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return list(obj)
    return obj


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"config section {where or '<root>'} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown config key(s) in {where or '<root>'}: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, key)
        else:
            kwargs[name] = _coerce(hint, value, key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InputError(f"config key {key} must be a list of names")
        if key == "experts":
            from .experts.registry import EXPERT_NAMES

            unknown = [v for v in value if v not in EXPERT_NAMES]
            if unknown:
                raise InputError(
                    f"config key experts: unknown expert(s) {', '.join(map(repr, unknown))} "
                    f"(choose from {', '.join(EXPERT_NAMES)})"
                )
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"config key {key} must be true or false")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"config key {key} must be a number")
        if not math.isfinite(value):  # TOML allows nan and inf; no setting means either
            raise InputError(f"config key {key} must be a finite number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"config key {key} must be an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"config key {key} must be a string")
        return value
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _dump_toml(data: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append("")
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"
