"""Many clips at once: discovery, resume, a local process pool or Ray, and a summary.

`run_batch(INPUT, OUTDIR)` finds the clips (a folder, recursively; a glob; a single file;
or a CSV/JSONL manifest with per-clip options), skips those whose outputs are complete
and whose input bytes and effective configuration are unchanged, scores the rest in
parallel and writes, next to each clip's mirrored place under OUTDIR, its cue sheet
(`NAME.moodsic.json`) and on request its mixdown (`NAME.mix.wav`) and muxed video
(`NAME.scored.mp4`). The batch summary goes to `OUTDIR/batch.jsonl`, `OUTDIR/batch.csv`
and `OUTDIR/contact_sheet.html`.

The per-clip work (`batch_worker.process_clip`) is the same function for both backends:
a worker or Ray actor loads the experts and the library once and scores many clips.
Faults stay with their clip: a clip that fails to decode, hangs past the per-clip timeout
or crashes its worker is recorded as failed with a one-line reason, the worker is
replaced, and the batch goes on. Every output is written atomically and a clip counts as
done only once its completion record (`OUTDIR/.moodsic-batch/state/NAME.json`) is
written after all its outputs, so an interrupted batch leaves complete outputs only and
a rerun redoes exactly the clips that were not finished.

Running on a Ray cluster
------------------------
`moodsic batch INPUT -o OUTDIR --backend ray --ray-address ADDR` runs the same per-clip
function in Ray actors, one per worker, each loading the models once.

1. Install the same environment on every node: `pip install "moodsic[ray]"` (same
   Python, same Moodsic and Ray versions; put model weights at the same path on every
   node or point `--weights-dir`/`MOODSIC_WEIGHTS` at a shared folder).
2. Inputs and OUTDIR must be visible at the same absolute paths on every node (NFS, a
   cluster file system, or a mounted bucket): actors read the clips and write the outputs
   themselves; only small summary records travel back to the driver.
3. Start the cluster: on the head node `ray start --head --port=6379`, on each worker
   node `ray start --address=HEAD_IP:6379` (or use `ray up cluster.yaml`, KubeRay, ...).
4. On the head node (or any machine that can reach it): `moodsic batch /shared/clips -o
   /shared/scored --backend ray --ray-address HEAD_IP:6379` (`auto` picks up a cluster
   started on this machine; `ray://HEAD_IP:10001` works through Ray Client). Without
   `--ray-address` a private local Ray is started and stopped again.
5. `--workers N` sets the number of actors (default: the cluster's CPUs); each actor asks
   Ray for one CPU and sets torch to that many threads. `--timeout S` kills an actor
   stuck on one clip and starts a replacement; a node that dies takes its actors' clips
   with it, which are recorded as failed and are redone by rerunning the same command.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .config import Config
from .errors import InputError
from .fileio import resolve_inside

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
        ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".gif",
    }
)  # fmt: skip
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".ndjson"})
CUE_SUFFIX = ".moodsic.json"
MIX_SUFFIX = ".mix.wav"
MUX_SUFFIX = ".scored.mp4"
STATE_DIR = ".moodsic-batch"
SUMMARY_JSONL = "batch.jsonl"
SUMMARY_CSV = "batch.csv"
CONTACT_SHEET = "contact_sheet.html"
EXIT_SOME_FAILED = 3

# Manifest columns that are not config keys.
_CLIP_KEYS = {"path", "out", "library", "mix", "mux"}
# Short names accepted in manifests for the config keys people set most.
_ALIASES = {"sample_fps": "sample.sample_fps", "min_segment_s": "segment.min_segment_s"}


@dataclass(frozen=True)
class EngineFns:
    """The engine functions a worker calls, as `module:attr` import paths.

    Strings rather than callables so a task pickles the same way to a spawned process or
    a Ray actor; tests swap in small fakes here.
    """

    score: str = "moodsic_engine.pipeline:score_video"
    load_experts: str = "moodsic_engine.experts:load_experts"
    load_library: str = "moodsic_engine.library:load_library"
    write_mix: str = "moodsic_engine.mix:write_mix"
    mux: str = "moodsic_engine.mix:mux"


@dataclass(frozen=True)
class ClipInput:
    """One clip found in the input, before planning."""

    path: Path  # absolute
    rel: str  # output name relative to OUTDIR, posix, no suffix: "a/b/clip"
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys
    library: str | None = None
    mix: bool | None = None
    mux: bool | None = None
    where: str = ""  # manifest line, for messages


@dataclass(frozen=True)
class WarmSpec:
    """What a worker loads before its first clip (the batch-wide config and library)."""

    config: Config
    library: str
    weights_dir: str | None
    allow_outside: bool
    fns: EngineFns


@dataclass(frozen=True)
class ClipTask:
    """Everything a worker needs to score one clip and write its outputs."""

    index: int
    video: str
    rel: str
    cue_path: str
    mix_path: str | None
    mux_path: str | None
    state_path: str
    config: Config
    library: str
    weights_dir: str | None
    allow_outside: bool
    input_sha256: str
    config_sha256: str
    fns: EngineFns
    size: int = 0

    def output_paths(self) -> list[str]:
        return [p for p in (self.cue_path, self.mix_path, self.mux_path) if p]


class BatchReporter(Protocol):
    def start(self, total: int, skipped: int, to_run: int) -> None: ...

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None: ...

    def finish(self, result: BatchResult) -> None: ...


class NullReporter:
    def start(self, total: int, skipped: int, to_run: int) -> None:
        return None

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None:
        return None

    def finish(self, result: BatchResult) -> None:
        return None


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    outdir: Path
    summary_jsonl: Path
    summary_csv: Path
    contact_sheet: Path | None
    wall_s: float
    startup_s: float  # until every worker had its models loaded
    scoring_s: float  # from then until the last clip finished
    workers: int
    backend: str
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r["status"] == status)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] in ("failed", "interrupted")]

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else 0

    def summary_lines(self) -> list[str]:
        lines = [
            f"{len(self.records)} clips: {self.count('ok')} scored, {self.count('skipped')} unchanged "
            f"(skipped), {self.count('failed')} failed"
            + (f", {self.count('interrupted')} not finished" if self.interrupted else ""),
        ]
        if self.scoring_s > 0 and self.count("ok"):
            rate = self.count("ok") / self.scoring_s * 60.0
            lines.append(
                f"{rate:.1f} clips/min on {self.workers} {self.backend} worker(s) (startup {self.startup_s:.1f} s)"
            )
        failed = self.failed
        for r in failed[:20]:
            lines.append(f"  failed: {r['input']}: {r.get('error') or r['status']}")
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more (see {SUMMARY_JSONL})")
        lines.append(f"summary: {self.summary_jsonl}")
        if self.contact_sheet:
            lines.append(f"contact sheet: {self.contact_sheet}")
        return lines


# ----------------------------------------------------------------------------- discovery
def discover(spec: str | os.PathLike[str], *, exclude: Path | None = None) -> list[ClipInput]:
    """The clips named by INPUT: a folder (recursive), a glob, a manifest, or one video file.

    Output names mirror the input tree under a root: the folder itself, the fixed part of
    a glob, or the manifest's folder (or the clips' common folder when a manifest points
    elsewhere). Hidden files and anything under `exclude` (the output folder, when it sits
    inside the input tree) are left out.
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        root = path.resolve()
        in_place = exclude is not None and exclude == root
        # Writing into the input folder itself: leave its subfolders in, but never take a
        # previous batch's muxed videos for new input.
        found = [
            p
            for p in _walk(root, None if in_place else exclude)
            if p.suffix.lower() in VIDEO_EXTENSIONS
            and not (in_place and p.name.endswith(MUX_SUFFIX))
        ]
        if not found:
            raise InputError(f"no video files found in {path}")
        return _mirror(root, [ClipInput(path=p, rel="") for p in found])
    if path.is_file():
        if path.suffix.lower() in MANIFEST_EXTENSIONS:
            return _read_manifest(path)
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            p = path.resolve()
            return _mirror(p.parent, [ClipInput(path=p, rel="")])
        raise InputError(
            f"{path} is neither a video ({', '.join(sorted(VIDEO_EXTENSIONS))}) nor a manifest (.csv, .jsonl)"
        )
    if glob.has_magic(text):
        matches = sorted(
            Path(m).resolve()
            for m in glob.glob(os.path.expanduser(text), recursive=True)
            if Path(m).is_file() and Path(m).suffix.lower() in VIDEO_EXTENSIONS
        )
        matches = [m for m in matches if not _excluded(m, exclude)]
        if not matches:
            raise InputError(f"no video files match {text}")
        root = _glob_root(text)
        if not all(m.is_relative_to(root) for m in matches):
            root = Path(os.path.commonpath([m.parent for m in matches]))
        return _mirror(root, [ClipInput(path=m, rel="") for m in matches])
    raise InputError(f"input not found: {path}")


def discover_many(
    specs: list[str | os.PathLike[str]], *, exclude: Path | None = None
) -> list[ClipInput]:
    """Several INPUTs (what a shell makes of `clips/*.mp4`): folders, globs or videos, mirrored
    under their common folder. A manifest must come alone."""
    if len(specs) == 1:
        return discover(specs[0], exclude=exclude)
    if not specs:
        raise InputError("no input given")
    found: dict[Path, None] = {}
    for spec in specs:
        if Path(spec).suffix.lower() in MANIFEST_EXTENSIONS and Path(spec).is_file():
            raise InputError(f"a manifest ({spec}) must be the only input")
        for clip in discover(spec, exclude=exclude):
            found.setdefault(clip.path, None)
    paths = list(found)
    root = Path(os.path.commonpath([p.parent for p in paths]))
    for spec in specs:  # a folder argument keeps its own name as the root, as when given alone
        p = Path(spec).expanduser()
        if p.is_dir() and all(q.is_relative_to(p.resolve()) for q in paths):
            root = p.resolve()
    return _mirror(root, [ClipInput(path=p, rel="") for p in paths])


def _walk(root: Path, exclude: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _excluded(here / d, exclude)
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _excluded(path: Path, exclude: Path | None) -> bool:
    return exclude is not None and path.resolve().is_relative_to(exclude)


def _glob_root(pattern: str) -> Path:
    parts = Path(os.path.expanduser(pattern)).parts
    fixed: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed).resolve() if fixed else Path.cwd().resolve()


def _mirror(root: Path, clips: list[ClipInput]) -> list[ClipInput]:
    """Give each clip without an explicit name its path under `root`, minus the extension.

    Two clips that differ only by extension in one folder keep the extension in their
    output name (clip.mp4 -> clip.mp4.moodsic.json) so neither overwrites the other.
    """
    stems: dict[str, int] = {}
    for c in clips:
        if not c.rel:
            key = c.path.relative_to(root).with_suffix("").as_posix()
            stems[key] = stems.get(key, 0) + 1
    out: list[ClipInput] = []
    for c in clips:
        if c.rel:
            out.append(c)
            continue
        rel_path = c.path.relative_to(root)
        key = rel_path.with_suffix("").as_posix()
        rel = rel_path.as_posix() if stems[key] > 1 else key
        out.append(dataclasses.replace(c, rel=rel))
    return out


def _read_manifest(path: Path) -> list[ClipInput]:
    rows = _manifest_rows(path)
    if not rows:
        raise InputError(f"manifest {path} lists no clips")
    base = path.resolve().parent
    clips: list[ClipInput] = []
    for where, row in rows:
        row = _flatten(row)
        raw = row.get("path")
        if raw in (None, ""):
            raise InputError(f"{where}: no path given")
        try:
            clip_path = Path(os.path.expanduser(str(raw)))
            clip_path = (clip_path if clip_path.is_absolute() else base / clip_path).resolve()
        except (ValueError, OSError, RuntimeError):  # NUL byte, symlink loop
            raise InputError(f"{where}: unusable path {str(raw)!r}") from None
        out = row.get("out")
        rel = ""
        if out not in (None, ""):
            rel = str(out).removesuffix(CUE_SUFFIX)
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise InputError(f"{where}: out must be a relative name inside the output folder")
        overrides = {}
        for key, value in row.items():
            if key in _CLIP_KEYS or value in (None, ""):
                continue
            key = key.removeprefix("config.")  # {"path": ..., "config": {...}} reads the same
            overrides[_ALIASES.get(key, key)] = value
        clips.append(
            ClipInput(
                path=clip_path,
                rel=Path(rel).as_posix() if rel else "",
                overrides=overrides,
                library=_manifest_library(row.get("library"), base),
                mix=_as_bool(row.get("mix"), where, "mix"),
                mux=_as_bool(row.get("mux"), where, "mux"),
                where=where,
            )
        )
    unnamed = [c.path for c in clips if not c.rel]
    root = base
    if unnamed and not all(p.is_relative_to(base) for p in unnamed):
        root = Path(os.path.commonpath([p.parent for p in unnamed]))
    clips = _mirror(root, clips)
    seen: dict[str, str] = {}
    for c in clips:
        if c.rel in seen:
            raise InputError(
                f"{c.where}: writes the same output as {seen[c.rel]} ({c.rel}{CUE_SUFFIX}); give one an `out` name"
            )
        seen[c.rel] = c.where
    return clips


def _manifest_library(value: Any, base: Path) -> str | None:
    """A per-clip library: a name like "builtin", or a path relative to the manifest."""
    if value in (None, ""):
        return None
    text = str(value)
    candidate = Path(os.path.expanduser(text))
    if not candidate.is_absolute() and (base / candidate).exists():
        return str(base / candidate)
    return text


def _manifest_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"manifest {path} is not UTF-8 text") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise InputError(f"manifest {path} needs a header row with a `path` column")
        for i, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"{path.name} line {i}: more cells than header columns")
            clean = {k.strip(): _parse_cell(v) for k, v in row.items() if k is not None}
            if any(v not in (None, "") for v in clean.values()):
                rows.append((f"{path.name} line {i}", clean))
        return rows
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also: absurd nesting, 5000-digit ints
            msg = getattr(exc, "msg", None) or " ".join(str(exc).split())[:120]
            raise InputError(f"{path.name} line {i}: not valid JSON ({msg})") from None
        if isinstance(row, str):
            row = {"path": row}
        if not isinstance(row, dict):
            raise InputError(f"{path.name} line {i}: expected an object with a path")
        rows.append((f"{path.name} line {i}", row))
    return rows


def _parse_cell(value: str | None) -> Any:
    """A CSV cell as the JSON value it spells (numbers, true/false, lists), else the text."""
    if value is None:
        return None
    text = value.strip()
    if text == "":
        return ""
    with contextlib.suppress(ValueError, RecursionError):  # RecursionError: absurd nesting
        return json.loads(text)
    if text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    return text


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _as_bool(value: Any, where: str, key: str) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{where}: {key} must be true or false, not {value!r}")


def apply_overrides(base: Config, overrides: dict[str, Any], where: str = "") -> Config:
    """`base` with dotted-key overrides from a manifest row, validated like a TOML file."""
    if not overrides:
        return base
    data = base.to_dict()
    for key, value in overrides.items():
        if key == "experts" and isinstance(value, str):
            value = [
                v.strip() for v in value.replace(";", ",").replace("|", ",").split(",") if v.strip()
            ]
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise InputError(f"{where}: unknown option {key!r}")
            node = node[part]
        if parts[-1] not in node:
            raise InputError(f"{where}: unknown option {key!r}")
        node[parts[-1]] = value
    try:
        return Config.from_dict(data)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


# ----------------------------------------------------------------------------- hashing
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
    from .weights import resolve_weights_dir

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
            records.append(_record(base, "failed", error=f"{reason}: {clip.path}"))
            continue
        input_hash = hashes[index]
        if not isinstance(input_hash, str):
            reason = getattr(input_hash, "strerror", None) or str(input_hash or "vanished")
            records.append(_record(base, "failed", error=f"cannot read {clip.path}: {reason}"))
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


def _record(base: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        **base,
        "status": status,
        "seconds": None,
        "duration_s": None,
        "segments": None,
        "moods": [],
        "tracks": [],
        "outputs": {},
        "error": None,
    }
    rec.update(fields)
    return rec


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


# ----------------------------------------------------------------------------- running
def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_batch(
    input: str | os.PathLike[str] | list[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    config: Config | None = None,
    library: str = "builtin",
    weights_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    timeout_s: float | None = None,
    mix: bool = False,
    mux: bool = False,
    resume: bool = True,
    allow_outside: bool = False,
    contact_sheet: bool = True,
    reporter: BatchReporter | None = None,
    fns: EngineFns | None = None,
) -> BatchResult:
    """Score every clip of INPUT into OUTDIR; see the module docstring.

    Returns the result even when clips failed (`result.exit_code` is 3 then). Bad
    arguments, an unreadable manifest, or models/library that cannot load at all raise
    MoodsicError. Ctrl-C or SIGTERM stop the workers, remove half-written files, write the
    summary of what finished, and re-raise KeyboardInterrupt.
    """
    t_start = time.perf_counter()
    config = config or Config()
    fns = fns or EngineFns()
    reporter = reporter or NullReporter()
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r} (choose local or ray)")
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    if timeout_s is not None and timeout_s <= 0:
        timeout_s = None
    out = Path(outdir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder is a file: {out}")
    specs = list(input) if isinstance(input, list | tuple) else [input]
    clips = discover_many(specs, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    with _outdir_lock(out):
        plan = plan_batch(
            clips,
            out,
            config=config,
            library=library,
            weights_dir=os.fspath(weights_dir) if weights_dir else None,
            allow_outside=allow_outside,
            mix=mix,
            mux=mux,
            resume=resume,
            fns=fns,
        )
        return _run_planned(
            plan,
            clips,
            out,
            backend,
            workers,
            ray_address,
            timeout_s,
            contact_sheet,
            reporter,
            t_start,
        )


@contextlib.contextmanager
def _outdir_lock(out: Path) -> Iterator[None]:
    """One batch per output folder at a time: a second one would score the same clips and
    sweep away the first one's temp files."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock_path = out / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise InputError(
                f"another batch ({owner}) is writing to {out}; wait for it or pick another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_planned(
    plan: Plan,
    clips: list[ClipInput],
    out: Path,
    backend: str,
    workers: int | None,
    ray_address: str | None,
    timeout_s: float | None,
    contact_sheet: bool,
    reporter: BatchReporter,
    t_start: float,
) -> BatchResult:
    records = plan.records
    total = len(records)
    skipped = sum(1 for r in records if r is not None)
    reporter.start(total, skipped, len(plan.tasks))
    sweep_partials(plan.tasks)  # leftovers of a batch that was killed hard

    clock = _Clock(total=total, already=skipped)

    def on_result(record: dict[str, Any]) -> None:
        records[record["index"]] = record
        rate, eta = clock.tick()
        reporter.clip(record, clock.done, total, rate, eta)

    def on_ready() -> None:
        clock.ready()

    n_workers = 0
    interrupted = False
    timing = {"startup_s": 0.0, "scoring_s": 0.0}
    with _sigterm_as_interrupt():
        try:
            if plan.tasks:
                n_workers = min(workers or default_workers(), len(plan.tasks))
                if backend == "local":
                    from .batch_worker import run_local

                    run_local(plan.tasks, plan.warm, n_workers, timeout_s, on_result, on_ready)
                else:
                    from .batch_ray import run_ray

                    n_workers = run_ray(
                        plan.tasks, plan.warm, workers, timeout_s, ray_address, on_result, on_ready
                    )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sweep_partials(plan.tasks)
            timing = clock.timing()
    by_index = {t.index: t for t in plan.tasks}
    for i, rec in enumerate(records):
        # A clip can finish in its worker just as the batch is stopped, before its result
        # reaches us: its completion record says so.
        done = read_state(by_index[i]) if rec is None and i in by_index else None
        if done is not None:
            records[i] = done
        elif rec is None:
            clip = clips[i]
            records[i] = _record(
                dict(index=i, input=str(clip.path), rel=clip.rel),
                "interrupted",
                error="batch stopped before this clip finished",
            )
    from .batch_report import write_contact_sheet, write_summaries

    final = [r for r in records if r is not None]
    jsonl, csv_path = write_summaries(out, final)
    sheet = write_contact_sheet(out, final) if contact_sheet else None
    result = BatchResult(
        records=final,
        outdir=out,
        summary_jsonl=jsonl,
        summary_csv=csv_path,
        contact_sheet=sheet,
        wall_s=time.perf_counter() - t_start,
        startup_s=timing["startup_s"],
        scoring_s=timing["scoring_s"],
        workers=n_workers,
        backend=backend,
        interrupted=interrupted,
    )
    reporter.finish(result)
    if interrupted:
        raise KeyboardInterrupt
    return result


class _Clock:
    """Clips/s and ETA over the clips scored in this run (skipped ones cost nothing)."""

    def __init__(self, total: int, already: int) -> None:
        self.total = total
        self.done = already
        self.scored = 0
        self.t0 = time.perf_counter()
        self.t_ready: float | None = None
        self.t_last: float | None = None

    def ready(self) -> None:
        if self.t_ready is None:
            self.t_ready = time.perf_counter()

    def tick(self) -> tuple[float | None, float | None]:
        self.done += 1
        self.scored += 1
        now = time.perf_counter()
        self.t_last = now
        elapsed = now - (self.t_ready or self.t0)
        if elapsed <= 0:
            return None, None
        rate = self.scored / elapsed
        return rate, (self.total - self.done) / rate if rate > 0 else None

    def timing(self) -> dict[str, float]:
        ready = self.t_ready or self.t0
        end = self.t_last or ready
        return {"startup_s": ready - self.t0, "scoring_s": max(0.0, end - ready)}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so both stop the batch the same clean way."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep_partials(tasks: list[ClipTask]) -> None:
    """Remove temp files (`.NAME.*.part*`) a killed worker left beside a clip's outputs."""
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        for target in (*task.output_paths(), task.state_path):
            p = Path(target)
            key = (str(p.parent), p.stem)
            if key in seen or not p.parent.is_dir():
                continue
            seen.add(key)
            for tmp in p.parent.glob(f".{glob.escape(p.stem)}.*.part*"):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


__all__ = [
    "CONTACT_SHEET",
    "SUMMARY_CSV",
    "SUMMARY_JSONL",
    "BatchReporter",
    "BatchResult",
    "ClipInput",
    "ClipTask",
    "EngineFns",
    "NullReporter",
    "WarmSpec",
    "apply_overrides",
    "discover",
    "plan_batch",
    "run_batch",
]
