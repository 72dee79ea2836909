"""Fetching expert weights ahead of a run (`moodsic weights fetch`), kept apart from the
experts themselves so that loading an expert never carries download code.

- scene: the configured CLIP checkpoint, through open_clip into its own cache.
- face: EmoNet's emonet_8.pth / emonet_5.pth from the authors' repository, after the user
  accepts their licence; each file must load as an EmoNet before it is kept.

Both are reached through the expert registry (`moodsic_engine.experts.registry`).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ResourceError


# ----------------------------------------------------------------------------- scene
def _remote_size(ref_cfg: dict[str, Any]) -> tuple[str, int | None]:
    """(what will be fetched, its size in bytes if the server says)."""
    hub = ref_cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        try:
            from huggingface_hub import get_hf_file_metadata, hf_hub_url

            for name in (filename.rsplit(".", 1)[0] + ".safetensors", filename):
                if filename == "open_clip_pytorch_model.bin" and name.endswith(".safetensors"):
                    name = "open_clip_model.safetensors"
                try:
                    meta = get_hf_file_metadata(hf_hub_url(repo, name), timeout=15)
                    return f"hf://{repo}/{name}", meta.size
                except Exception:  # noqa: BLE001 - try the next name
                    continue
        except ImportError:  # pragma: no cover
            pass
        return f"hf://{repo}/{filename}", None
    return ref_cfg.get("url", "?"), None


def fetch_scene(
    config: Config,
    weights_dir: Path | None = None,
    *,
    accept_license: bool = False,  # noqa: ARG001 - CLIP weights need no extra licence step
    echo: Callable[[str], None] = print,
) -> Path:
    """Download the configured CLIP weights through open_clip into its cache."""
    import open_clip

    from .scene import _offline, resolve_encoder

    cfg = config.scene
    ref = resolve_encoder(cfg, weights_dir, need_weights=False)
    if not ref.is_tag:
        if ref.checkpoint is None:
            raise ResourceError(
                f"scene: {cfg.pretrained!r} is not a pretrained tag; nothing to fetch"
            )
        echo(f"scene: uses the local checkpoint {ref.checkpoint}; nothing to fetch")
        return ref.checkpoint
    if ref.checkpoint is not None:
        echo(f"scene: {ref.describe()} is already cached at {ref.checkpoint}")
        return ref.checkpoint
    if _offline():
        raise ResourceError(
            f"scene: cannot fetch {ref.describe()}: HF_HUB_OFFLINE=1 is set; unset it and run again while online"
        )
    # One quick connection test first: the hub client retries for ~50 s when offline.
    import socket
    from urllib.parse import urlparse

    if ref.pretrained_cfg.get("hf_hub"):
        host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    else:
        host = urlparse(ref.pretrained_cfg.get("url", "")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=5).close()
    except OSError as exc:
        raise ResourceError(
            f"scene: cannot reach {host} to fetch {ref.describe()} ({exc.strerror or exc}); "
            "connect and run again, or pass --scene-pretrained /path/to/checkpoint"
        ) from None
    source, size = _remote_size(ref.pretrained_cfg)
    if ref.pretrained_cfg.get("hf_hub"):
        from huggingface_hub import constants

        dest = constants.HF_HUB_CACHE
    else:
        dest = str(Path("~/.cache/clip").expanduser())
    size_txt = f"{size / 1e6:.0f} MB" if size else "size unknown"
    echo(f"scene: fetching {ref.describe()} from {source} ({size_txt}) into {dest}")
    try:
        target = open_clip.download_pretrained(ref.pretrained_cfg)
    except Exception as exc:  # noqa: BLE001 - network or hub failure
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ResourceError(f"scene: download of {ref.describe()} failed: {first[:200]}") from None
    echo(f"scene: saved {target}")
    return Path(target)


# ----------------------------------------------------------------------------- face (EmoNet)
def _download(url: str, dest: Path, echo: Callable[[str], None], timeout: float = 60.0) -> Path:
    from ..fileio import atomic_path

    req = urllib.request.Request(url, headers={"User-Agent": "moodsic"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_path(dest) as tmp:  # noqa: S310
        size = resp.headers.get("Content-Length")
        size_txt = f"{int(size) / 1e6:.1f} MB" if size else "size unknown"
        echo(f"emonet: downloading {url} ({size_txt}) -> {dest}")
        with open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
        head = tmp.read_bytes()[:64]
        if head.startswith(b"version https://git-lfs"):
            raise ResourceError(f"{url} returned a Git LFS pointer, not the checkpoint")
        _verify(tmp, dest.name)
    return dest


def _verify(path: Path, name: str) -> None:
    from ..weights import load_state_dict
    from .emonet import build_from_state_dict
    from .face import expected_classes

    build_from_state_dict(load_state_dict(path), expected_classes(Path(name)), source=name)


def fetch_face(
    config: Config,
    weights_dir: Path | None = None,
    *,
    accept_license: bool = False,
    echo: Callable[[str], None] = print,
    urls: dict[str, str] | None = None,
) -> list[Path]:
    """Download emonet_8.pth and emonet_5.pth from the authors' repository after the user
    accepts their licence. Each file is checked to load as an EmoNet before it is kept."""
    from ..weights import resolve_weights_dir
    from .face import DOWNLOADS, LICENCE_TEXT

    echo("emonet: licence: " + LICENCE_TEXT)
    if not accept_license:
        raise ResourceError(
            "emonet: not fetched: the weights are CC BY-NC-ND 4.0; re-run with --accept-license "
            "to accept that licence"
        )
    folder = Path(weights_dir) if weights_dir is not None else resolve_weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    for name, url in (urls or DOWNLOADS).items():
        dest = folder / name
        if dest.is_file():
            try:
                _verify(dest, name)
                echo(f"emonet: {dest} already present")
                saved.append(dest)
                continue
            except ResourceError as exc:
                echo(f"emonet: {dest} is unusable ({exc}); downloading again")
        candidates = [url]
        if "/raw/" in url and "github.com" in url:  # the same file when stored with Git LFS
            candidates.append(
                url.replace(
                    "https://github.com/", "https://media.githubusercontent.com/media/"
                ).replace("/raw/", "/", 1)
            )
        error = ""
        for candidate in candidates:
            try:
                saved.append(_download(candidate, dest, echo))
                error = ""
                break
            except (urllib.error.URLError, OSError, ResourceError) as exc:
                error = str(getattr(exc, "reason", None) or exc).splitlines()[0][:200]
        if error:
            raise ResourceError(
                f"emonet: download of {name} failed ({error}); download it by hand from {url} "
                f"into {folder}"
            )
    echo(f"emonet: ready in {folder}")
    return saved
