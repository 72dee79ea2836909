"""Planning a batch: hash inputs and settings, skip what is complete and unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..fileio import resolve_inside
from .discover import apply_overrides
from .model import (
    CUE_SUFFIX,
    MIX_SUFFIX,
    MUX_SUFFIX,
    STATE_DIR,
    ClipInput,
    ClipTask,
    EngineFns,
    WarmSpec,
    clip_record,
)


def file_sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fingerprint(spec: str | None) -> Any:
    """A cheap identity for a library or weights location: content for a file, a listing for a folder."""
    if not spec:
        return None
    if spec == "builtin":  # a name, even if a folder of that name happens to be here
        return {"name": spec, "version": __version__}
    p = Path(spec).expanduser()
    if p.is_file():
        return {"file": str(p.resolve()), "sha256": file_sha256(p)}
    if p.is_dir():
        listing = []
        for q in sorted(p.rglob("*")):
            if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts):
                st = q.stat()
                listing.append([q.relative_to(p).as_posix(), st.st_size, st.st_mtime_ns])
        return {"dir": str(p.resolve()), "files": listing}
    return {"name": spec}


def config_sha256(
    config: Config, *, library_id: Any, mix: bool, mux: bool, weights_id: Any, fns: EngineFns
) -> str:
    """Everything that changes a clip's outputs, apart from the clip itself."""
    blob = json.dumps(
        {
            "engine": __version__,
            "config": config.to_dict(),
            "library": library_id,
            "mix": mix,
            "mux": mux,
            "weights": weights_id,
            "fns": dataclasses.asdict(fns),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------- planning
@dataclass
class Plan:
    tasks: list[ClipTask]  # to score, in input order
    records: list[dict[str, Any] | None]  # per input clip; filled now for skipped/missing ones
    warm: WarmSpec


def plan_batch(
    clips: list[ClipInput],
    outdir: Path,
    *,
    config: Config,
    library: str,
    weights_dir: str | None,
    allow_outside: bool,
    mix: bool,
    mux: bool,
    resume: bool,
    fns: EngineFns,
) -> Plan:
    """Decide per clip: skip (complete and unchanged), fail now (missing), or score."""
    from ..weights import resolve_weights_dir

    outdir = outdir.resolve()
    weights_id = _fingerprint(str(resolve_weights_dir(weights_dir)))
    lib_ids: dict[str, Any] = {}
    # Bad manifest options fail before any file is hashed.
    configs = [apply_overrides(config, c.overrides, c.where or str(c.path)) for c in clips]
    hashes = _hash_all([c.path for c in clips])
    tasks: list[ClipTask] = []
    records: list[dict[str, Any] | None] = []
    for index, clip in enumerate(clips):
        cfg = configs[index]
        lib = clip.library or library
        if lib not in lib_ids:
            lib_ids[lib] = _fingerprint(lib)
        want_mix = mix if clip.mix is None else clip.mix
        want_mux = mux if clip.mux is None else clip.mux
        cue_path = resolve_inside(outdir, clip.rel + CUE_SUFFIX)
        base = dict(index=index, input=str(clip.path), rel=clip.rel)
        if not clip.path.is_file():
            reason = "video not found" if not clip.path.exists() else "not a file"
            records.append(clip_record(base, "failed", error=f"{reason}: {clip.path}"))
            continue
        input_hash = hashes[index]
        if not isinstance(input_hash, str):
            reason = getattr(input_hash, "strerror", None) or str(input_hash or "vanished")
            records.append(clip_record(base, "failed", error=f"cannot read {clip.path}: {reason}"))
            continue
        task = ClipTask(
            index=index,
            video=str(clip.path),
            rel=clip.rel,
            cue_path=str(cue_path),
            mix_path=str(resolve_inside(outdir, clip.rel + MIX_SUFFIX)) if want_mix else None,
            mux_path=str(resolve_inside(outdir, clip.rel + MUX_SUFFIX)) if want_mux else None,
            state_path=str(resolve_inside(outdir / STATE_DIR / "state", clip.rel + ".json")),
            config=cfg,
            library=lib,
            weights_dir=weights_dir,
            allow_outside=allow_outside,
            input_sha256=input_hash,
            config_sha256=config_sha256(
                cfg,
                library_id=lib_ids[lib],
                mix=want_mix,
                mux=want_mux,
                weights_id=weights_id,
                fns=fns,
            ),
            fns=fns,
            size=clip.path.stat().st_size,
        )
        done = read_state(task) if resume else None
        if done is not None:
            done.update(status="skipped", index=index)
            records.append(done)
        else:
            records.append(None)
            tasks.append(task)
    warm = WarmSpec(config, library, weights_dir, allow_outside, fns)
    return Plan(tasks, records, warm)


def _hash_all(paths: list[Path]) -> list[str | OSError | None]:
    """Content hashes of the existing files, a few at a time (hashlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(p: Path) -> str | OSError | None:
        if not p.is_file():
            return None
        try:
            return file_sha256(p)
        except OSError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, paths))


def read_state(task: ClipTask) -> dict[str, Any] | None:
    """The clip's completion record if its outputs are complete and nothing changed, else None."""
    try:
        state = json.loads(Path(task.state_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("input_sha256") != task.input_sha256:
        return None
    if state.get("config_sha256") != task.config_sha256:
        return None
    sizes = state.get("output_sizes") or {}
    if sorted(sizes) != sorted(task.output_paths()):
        return None
    for p, size in sizes.items():
        try:
            if Path(p).stat().st_size != size:
                return None
        except OSError:
            return None
    record = state.get("record")
    return dict(record) if isinstance(record, dict) else None
