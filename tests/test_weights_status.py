"""Weights that cannot be loaded: one line naming the file and why (never PyTorch's advice to
turn weights_only off), the run stops (exit 1) instead of going on without them, and
`moodsic weights status` loads what it reports into the model that would use it (random-init
models built from the config, as in the expert tests) before calling it ready."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from moodsic_engine.cli import app
from moodsic_engine.config import Config
from moodsic_engine.experts import load_experts, verify_experts
from moodsic_engine.experts.emonet import EmoNet
from moodsic_engine.experts.scene_testing import TINY_MODEL, make_tiny_checkpoint
from moodsic_engine.weights import WeightsError, load_state_dict

torch.set_num_threads(1)


class _Obj:
    """Any Python object in a pickle: what weights-only loading refuses."""

    def __reduce__(self):  # noqa: ANN204
        return (print, ("never printed",))


@pytest.fixture(scope="module")
def emonet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("emonet")
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in EmoNet(8).state_dict().items()}
    torch.save(state, folder / "emonet_8.pth")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tinyclip")
    return folder, make_tiny_checkpoint(folder)


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a piece of the reason the loader must give)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    p = folder / "objects.pth"
    torch.save({"w": torch.zeros(2), "x": _Obj()}, p)
    files["objects"] = (p, "python objects")
    p = folder / "bare-pickle.pth"
    p.write_bytes(pickle.dumps({"w": _Obj()}))
    files["bare-pickle"] = (p, "python objects")
    p = folder / "garbage.pth"
    p.write_bytes(bytes(range(256)) * 8)
    files["garbage"] = (p, "not a pytorch or safetensors weights file")
    p = folder / "empty.pth"
    p.write_bytes(b"")
    files["empty"] = (p, "empty or truncated")
    p = folder / "truncated.pth"
    torch.save({"w": torch.zeros(1000)}, p)
    p.write_bytes(p.read_bytes()[:300])
    files["truncated"] = (p, "damaged or truncated")
    p = folder / "a-list.pth"
    torch.save([1, 2, 3], p)
    files["not-a-state-dict"] = (p, "state dict of tensors")
    p = folder / "fake.safetensors"
    p.write_bytes(b"\xff" * 64)
    files["fake-safetensors"] = (p, "not a valid safetensors file")
    return files


def test_loader_says_why_in_its_own_words(tmp_path: Path) -> None:
    for name, (path, why) in _bad_files(tmp_path).items():
        with pytest.raises(WeightsError) as exc:
            load_state_dict(path)
        msg = str(exc.value)
        assert "\n" not in msg and str(path) in msg, (name, msg)
        assert why in msg.lower(), (name, msg)
        assert "weights_only" not in msg, (name, msg)


def test_unloadable_files_stop_the_run_not_skip_the_expert(
    emonet_dir: Path, tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without --experts, an expert whose weights are missing is skipped; one whose named or
    installed weights are there but unusable is not: WeightsError (exit 1 in the CLI)."""
    bad = _bad_files(tmp_path / "bad")["garbage"][0]
    cases = {
        "--emonet": (Config().replace(**{"face.emonet": str(bad)}), tmp_path),
        "weights dir": (Config(), tmp_path / "wd"),
        "--scene-pretrained": (
            Config().replace(**{"scene.model": TINY_MODEL, "scene.pretrained": str(bad)}),
            tmp_path,
        ),
        "--scene-head": (
            Config().replace(
                **{
                    "scene.model": TINY_MODEL,
                    "scene.pretrained": str(tiny[1]),
                    "scene.head": str(bad),
                }
            ),  # fmt: skip
            tmp_path,
        ),
    }
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "emonet_8.pth").write_bytes(bad.read_bytes())
    for what, (cfg, wd) in cases.items():
        with pytest.raises(WeightsError) as exc:
            load_experts(cfg.replace(experts=()), wd)
        assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value), what
        assert ("emonet_8.pth" if what == "weights dir" else str(bad)) in str(exc.value), what


def _status(args: list[str]) -> tuple[int, str, list[dict]]:
    runner = CliRunner()
    text = runner.invoke(app, ["weights", "status", *args])
    data = runner.invoke(app, ["weights", "status", *args, "--json"])
    assert data.exit_code == 0, data.output
    return text.exit_code, text.stdout, json.loads(data.stdout)


def _row(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["name"] == name)


def test_status_face_garbage_is_invalid_not_ready(tmp_path: Path) -> None:
    (tmp_path / "emonet_8.pth").write_bytes(b"this is not a checkpoint" * 40)
    code, out, rows = _status(["--weights-dir", str(tmp_path)])
    assert code == 0
    face = _row(rows, "face")
    assert face["state"] == "invalid" and not face["ready"]
    assert "emonet_8.pth" in face["reason"] and "weights_only" not in out
    line = next(ln for ln in out.splitlines() if ln.startswith("face"))
    assert "invalid" in line and "ready" not in line
    assert "invalid: face: cannot load weights" in out


def test_status_face_checks_layout_and_checksum(emonet_dir: Path, tmp_path: Path) -> None:
    code, out, rows = _status(["--weights-dir", str(emonet_dir)])
    face = _row(rows, "face")
    assert face["state"] == "ready" and "loads" in face["uses"] and "8 classes" in face["uses"]
    assert "no checksum known" in face["uses"]

    # a checksum beside the file: checked
    folder = tmp_path / "sum"
    folder.mkdir()
    ckpt = folder / "emonet_8.pth"
    ckpt.write_bytes((emonet_dir / "emonet_8.pth").read_bytes())
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    (folder / "emonet_8.pth.sha256").write_text(f"{digest}  emonet_8.pth\n")
    assert "sha256 ok" in _row(_status(["--weights-dir", str(folder)])[2], "face")["uses"]
    (folder / "emonet_8.pth.sha256").write_text("0" * 64 + "\n")
    face = _row(_status(["--weights-dir", str(folder)])[2], "face")
    assert face["state"] == "invalid" and "sha256" in face["reason"]

    # loads as tensors, but not the layout EmoNet needs: invalid, with the keys named
    (folder / "emonet_8.pth.sha256").unlink()
    torch.save({"module.conv1.weight": torch.zeros(64, 3, 7, 7)}, ckpt)
    face = _row(_status(["--weights-dir", str(folder)])[2], "face")
    assert face["state"] == "invalid" and "missing key" in face["reason"]


def test_status_scene_loads_checkpoint_and_head(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    folder, ckpt = tiny
    cfg = Config().replace(**{"scene.model": TINY_MODEL, "scene.pretrained": str(ckpt)})
    scene = verify_experts(cfg, folder, ("scene",))[0]
    assert scene.ready and "loads" in scene.uses and "zero-shot" in scene.uses

    garbage = tmp_path / "clip.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    bad = cfg.replace(**{"scene.pretrained": str(garbage)})
    scene = verify_experts(bad, folder, ("scene",))[0]
    assert scene.invalid and not scene.ready and str(garbage) in scene.reason

    # same key names, wrong shapes: open_clip's strict load refuses it
    other = make_tiny_checkpoint(tmp_path, name="other.safetensors")
    from safetensors.torch import load_file, save_file

    state = load_file(str(other))
    key = next(k for k, v in state.items() if "attn.in_proj_weight" in k)
    state[key] = torch.zeros(3, 3)
    save_file(state, str(other))
    scene = verify_experts(cfg.replace(**{"scene.pretrained": str(other)}), folder, ("scene",))[0]
    assert scene.invalid and "size mismatch" in scene.reason and key in scene.reason

    head = tmp_path / "head.safetensors"
    head.write_bytes(b"\x00" * 100)
    scene = verify_experts(cfg.replace(**{"scene.head": str(head)}), folder, ("scene",))[0]
    assert scene.invalid and "head.safetensors" in scene.reason

    toml = tmp_path / "c.toml"
    toml.write_text(f'[scene]\nmodel = "{TINY_MODEL}"\npretrained = "{garbage}"\n')
    code, out, rows = _status(["--config", str(toml), "--weights-dir", str(folder)])
    assert code == 0 and _row(rows, "scene")["state"] == "invalid"
    assert next(ln for ln in out.splitlines() if ln.startswith("scene")).split()[1] == "invalid"


@pytest.mark.parametrize(
    "command",
    [["batch", "x.mp4", "-o", "out"], ["eval", "veatic", "--root", "."], ["bench", "speed"],
     ["bench", "batch"]],
    ids=["batch", "eval-veatic", "bench-speed", "bench-batch"],
)  # fmt: skip
def test_unknown_expert_is_a_usage_error(command: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(app, [*command, "--experts", "grammar,facee"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["moodsic: error: --experts: unknown expert(s) 'facee'; "
                     "choose from scene, face, grammar"]  # fmt: skip
