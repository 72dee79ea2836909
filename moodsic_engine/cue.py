"""The cue sheet (`*.moodsic.json`, schema `moodsic.cue/1`): dataclasses, JSON and validation."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import CueSheetError
from .fileio import write_text_atomic

SCHEMA_ID = "moodsic.cue/1"


@dataclass(frozen=True)
class TrackChoice:
    id: str
    title: str
    artist: str
    path: str
    valence: float
    arousal: float
    in_s: float = 0.0  # where playback starts inside the track
    duration_s: float | None = None
    rank: int = 0  # 0 = best match; re-rolls increase it


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int  # exclusive
    mood: str
    mood_label: str
    valence: float
    arousal: float
    confidence: float
    track: TrackChoice | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class VideoRef:
    path: str
    duration_s: float
    fps: Fraction
    frames: int
    has_audio: bool = False


@dataclass(frozen=True)
class SampleRecord:
    t: float
    experts: dict[str, dict[str, float]]
    fused: dict[str, float] | None
    stable: dict[str, float]
    held: bool
    faces: int = 0
    # the face expert's faces: {"box": [x, y, w, h] (0..1 of the frame), "confidence",
    # "mesh"}; see README "What counts as a face"
    face_boxes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class CueSheet:
    video: VideoRef
    engine: dict[str, Any]
    samples: tuple[SampleRecord, ...]
    cuts: tuple[float, ...]
    segments: tuple[Segment, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA_ID
    # The music plan (moodsic_engine.mix.plan.MusicPlan.to_dict) every renderer plays; None
    # when not placed. It names the segments it was made for, so readers can tell a stale one.
    placement: dict[str, Any] | None = None

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        video = dataclasses.asdict(self.video)
        video["fps"] = [self.video.fps.numerator, self.video.fps.denominator]
        out = {
            "schema": self.schema,
            "video": video,
            "engine": self.engine,
            "samples": [dataclasses.asdict(s) for s in self.samples],
            "cuts": list(self.cuts),
            "segments": [dataclasses.asdict(s) for s in self.segments],
            "summary": self.summary,
        }
        if self.placement is not None:
            out["placement"] = self.placement
        return _finite(out)

    def to_json_text(self, base_dir: str | os.PathLike[str] | None = None) -> str:
        """The cue sheet as JSON; with `base_dir` (the folder it is written to), media paths
        are recorded relative to that folder (see `relocated`)."""
        sheet = self.relocated(base_dir, stored=True) if base_dir is not None else self
        return json.dumps(sheet.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; media paths resolve from the cue sheet's own folder."""
        return write_text_atomic(path, self.to_json_text(Path(path).parent) + "\n")

    def relocated(self, base_dir: str | os.PathLike[str], *, stored: bool) -> CueSheet:
        """The cue sheet with its video and track paths moved between the process's view
        and a cue file's view.

        In memory a path means what it means to this process (absolute, or relative to the
        working folder); in a file it is relative to the file's folder when the media lies in
        that folder or beside it (under the same parent), so the folder can move with its
        media, and absolute otherwise (a library cache, another drive): exports made from
        the cue sheet find the media wherever the folder is opened from. With `stored`, memory ->
        file; otherwise file -> memory (relative paths joined to `base_dir`). Paths that
        name no existing file (an edit's name, a URL) are left as they are.
        """
        folder = os.path.abspath(base_dir)

        def move(path: str) -> str:
            if not path or "://" in path:
                return path
            if stored:
                if not os.path.isfile(path):
                    return path
                try:
                    rel = Path(os.path.relpath(os.path.abspath(path), folder))
                except ValueError:  # another drive: only an absolute path reaches it
                    return os.path.abspath(path)
                # media beside the cue sheet (its folder, or a sibling under the same parent)
                # travels with it; a library cache far away stays put, so absolute
                ups = len(rel.parts) - len([p for p in rel.parts if p != ".."])
                return rel.as_posix() if ups <= 1 else os.path.abspath(path)
            if os.path.isabs(path):
                return path
            joined = os.path.normpath(os.path.join(folder, path))
            return joined if os.path.isfile(joined) else path

        video = dataclasses.replace(self.video, path=move(self.video.path))
        segments = tuple(
            dataclasses.replace(s, track=dataclasses.replace(s.track, path=move(s.track.path)))
            if s.track is not None
            else s
            for s in self.segments
        )
        return dataclasses.replace(self, video=video, segments=segments)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "cue sheet") -> CueSheet:
        validate(data, source=source)
        v = data["video"]
        video = VideoRef(
            path=v["path"],
            duration_s=float(v["duration_s"]),
            fps=Fraction(int(v["fps"][0]), int(v["fps"][1])),
            frames=int(v["frames"]),
            has_audio=bool(v.get("has_audio", False)),
        )
        samples = tuple(
            SampleRecord(
                t=float(s["t"]),
                experts=dict(s["experts"]),
                fused=s["fused"],
                stable=dict(s["stable"]),
                held=bool(s["held"]),
                faces=int(s.get("faces", 0)),
                face_boxes=tuple(dict(b) for b in s.get("face_boxes", ())),
            )
            for s in data["samples"]
        )
        segments = tuple(
            Segment(
                **{k: seg[k] for k in _SEGMENT_KEYS if k != "track"},
                track=_track_from(seg["track"]),
            )
            for seg in data["segments"]
        )
        sheet = cls(
            video=video,
            engine=dict(data["engine"]),
            samples=samples,
            cuts=tuple(float(c) for c in data["cuts"]),
            segments=segments,
            summary=dict(data.get("summary", {})),
            placement=data.get("placement"),
        )
        check_tiling(sheet.segments, video, source=source)
        return sheet

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CueSheet:
        from .fileio import regular_file

        # Checked before opening: a FIFO would block; a cue sheet of a 3-hour film at 2 samples/s
        # is a few MB, so one past 64 MiB is refused before it is read.
        p = regular_file(path, "cue sheet", max_bytes=64 << 20, error=CueSheetError)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CueSheetError(f"{p} is not a text cue sheet") from None
        except OSError as exc:  # permissions, symlink loops, ...
            raise CueSheetError(f"cannot read cue sheet {p}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also: absurd nesting, 5000-digit ints
            raise CueSheetError(f"{p} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(p)).relocated(p.parent, stored=False)

    def with_segments(self, segments: tuple[Segment, ...] | list[Segment]) -> CueSheet:
        # New segments: the music plan made for the old ones no longer applies.
        return dataclasses.replace(self, segments=tuple(segments), placement=None)


_SEGMENT_KEYS = [f.name for f in dataclasses.fields(Segment)]
_TRACK_KEYS = {f.name for f in dataclasses.fields(TrackChoice)}


def _track_from(data: dict[str, Any] | None) -> TrackChoice | None:
    if data is None:
        return None
    return TrackChoice(**{k: v for k, v in data.items() if k in _TRACK_KEYS})


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None so no non-finite number reaches a cue sheet."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


@cache
def schema() -> dict[str, Any]:
    text = resources.files("moodsic_engine").joinpath("schemas/cue-1.schema.json").read_text()
    return json.loads(text)


def _check_numbers(data: Any, source: str) -> None:
    """Python's json accepts NaN/Infinity and unbounded ints, and JSON Schema's bounds let NaN
    through; refuse them here (iteratively: nesting depth is the sender's choice)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        obj, where = stack.pop()
        if isinstance(obj, dict):
            stack.extend((v, f"{where}/{k}") for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, f"{where}/{i}") for i, v in enumerate(obj))
        elif isinstance(obj, float) and not math.isfinite(obj):
            raise CueSheetError(f"{source}: non-finite number at {where or '<root>'}")
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 2**63:
            if not where.startswith(("/engine/", "/summary/")):  # free-form (a huge --seed)
                raise CueSheetError(f"{source}: integer out of range at {where}")


def validate(data: Any, *, source: str = "cue sheet") -> None:
    """Raise CueSheetError with one line naming the first problem, if `data` is not a valid cue sheet."""
    import jsonschema

    if not isinstance(data, dict):
        raise CueSheetError(f"{source}: not a moodsic cue sheet (expected a JSON object)")
    if "schema" not in data:
        raise CueSheetError(f'{source}: not a moodsic cue sheet (no "schema": "{SCHEMA_ID}")')
    if data.get("schema") != SCHEMA_ID:
        raise CueSheetError(
            f"{source}: unsupported schema {data.get('schema')!r} (this Moodsic reads {SCHEMA_ID})"
        )
    _check_numbers(data, source)
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise CueSheetError(f"{source}: invalid at {where}: {error.message}")


def check_tiling(
    segments: tuple[Segment, ...], video: VideoRef, *, source: str = "cue sheet"
) -> None:
    """Segments must tile the video exactly, in frames and in seconds."""
    if not segments:
        raise CueSheetError(f"{source}: no segments")
    if segments[0].start_frame != 0:
        raise CueSheetError(f"{source}: first segment does not start at frame 0")
    for prev, nxt in zip(segments, segments[1:], strict=False):
        if nxt.start_frame != prev.end_frame:
            raise CueSheetError(
                f"{source}: segments do not tile (gap/overlap at frame {prev.end_frame})"
            )
    for seg in segments:
        if seg.end_frame <= seg.start_frame:
            raise CueSheetError(f"{source}: empty segment at frame {seg.start_frame}")
    if segments[-1].end_frame != video.frames:
        raise CueSheetError(
            f"{source}: last segment ends at frame {segments[-1].end_frame}, video has {video.frames}"
        )
