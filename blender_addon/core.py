"""What the operators do, shared by the modal (UI) and the synchronous (background) paths.

Auto-score, per selected movie strip: the strip's whole source file is scored by the
engine (one run per distinct file), and the cue sheet is mapped through the strip's
position and trims onto the timeline (see placement.py). Choosing "the edit" instead
renders the scene's sequencer output to a small movie beside the cue sheets, scores that,
and maps it onto the scene range, so music follows the cut as the viewer sees it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Any

import bpy

from . import apply, compat
from .placement import (
    Job,
    MovieFacts,
    PlacementError,
    PlaceOptions,
    Plan,
    choose_channels,
    cue_track_path,
    plan,
    replace_track,
    segment_at,
)
from .runner import ScoreRequest, find_engine

EDIT_SOURCE = "<edit>"  # MovieFacts.name for the rendered edit


@dataclass
class Prepared:
    scene_name: str
    movies: list[MovieFacts]
    requests: list[ScoreRequest]
    engine: str
    options: PlaceOptions
    cue_paths: dict[str, str] = field(default_factory=dict)  # video -> cue sheet
    mode: str = "SELECTED"
    reroll: tuple[str, int] | None = None  # (cue path, segment) for re-roll
    want_speech: bool = False  # ask the engine where the dialogue is (for ducking)
    speech: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # video -> s
    want_levels: bool = False  # ask the engine for the mixdown's levels (music gain, ducking)
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)  # video -> engine levels


# ----------------------------------------------------------------------------- settings
def addon_prefs(context: Any) -> Any | None:
    addons = context.preferences.addons
    key = __package__ or "moodsic"
    entry = addons.get(key)
    return entry.preferences if entry is not None else None


def engine_path(context: Any) -> str:
    prefs = addon_prefs(context)
    return find_engine(prefs.engine_path if prefs is not None else "")


def options_from(settings: Any) -> PlaceOptions:
    return PlaceOptions(
        crossfade_s=float(settings.crossfade_s),
        duck=bool(settings.duck),
        target_lufs=float(settings.target_lufs),
        music_gain_db=(
            None
            if getattr(settings, "music_follow_engine", True)
            else float(getattr(settings, "music_gain_db", -6.0))
        ),
    )


def library_arg(settings: Any) -> str:
    if settings.library_kind == "BUILTIN":
        return "builtin"
    path = compat.abspath(settings.library_path) if settings.library_path else ""
    if not path or not os.path.exists(path):
        raise PlacementError(f"music library not found: {path or '(no path set)'}")
    return path


def work_dir() -> str:
    """Cue sheets live beside the .blend (so re-roll works after reopening), else in temp."""
    if bpy.data.filepath:
        d = os.path.join(os.path.dirname(bpy.data.filepath), "moodsic")
        os.makedirs(d, exist_ok=True)
        return d
    return _private_temp_dir()


def _private_temp_dir() -> str:
    """A per-user folder in the shared temp dir. A fixed name there could be pre-created or
    symlinked by another local user to read or redirect what the add-on writes."""
    if not hasattr(os, "getuid"):  # Windows: the temp dir is per user already
        d = os.path.join(tempfile.gettempdir(), "moodsic-blender")
        os.makedirs(d, exist_ok=True)
        return d
    d = os.path.join(tempfile.gettempdir(), f"moodsic-blender-{os.getuid()}")
    os.makedirs(d, mode=0o700, exist_ok=True)
    st = os.lstat(d)
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return tempfile.mkdtemp(prefix="moodsic-blender-")  # someone else prepared that one
    return d


def cue_path_for(video: str) -> str:
    stem = os.path.splitext(os.path.basename(video))[0]
    digest = hashlib.sha1(os.path.abspath(video).encode("utf-8")).hexdigest()[:8]
    return os.path.join(work_dir(), f"{stem}.{digest}.moodsic.json")


def write_config(settings: Any) -> str:
    """Engine settings chosen in the panel, as a TOML file for `--config`."""
    text = (
        "[segment]\n"
        f"min_segment_s = {float(settings.min_segment_s)!r}\n\n"
        "[mix]\n"
        f"target_lufs = {float(settings.target_lufs)!r}\n"
        f"duck = {'true' if settings.duck else 'false'}\n"
        f"crossfade_s = {float(settings.crossfade_s)!r}\n"
    )
    path = os.path.join(work_dir(), "moodsic-addon.toml")
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _request(settings: Any, video: str, config: str, reroll: tuple[int, ...] = ()) -> ScoreRequest:
    return ScoreRequest(
        video=video,
        cue=cue_path_for(video),
        library=library_arg(settings),
        sample_fps=float(settings.sample_fps),
        experts=settings.experts.strip(),
        config=config,
        reroll=reroll,
    )


# ----------------------------------------------------------------------------- auto-score
def prepare_auto(context: Any, mode: str = "SELECTED") -> Prepared:
    """Check everything that can be checked before the engine runs. Raises with one line."""
    scene = compat.sequencer_scene(context)
    settings = scene.moodsic
    strips = []
    if mode != "EDIT":
        strips = apply.selected_movies(scene)
        if not strips:
            raise PlacementError("no movie strip selected: select the movie strips to score")
        apply.check_movies(strips)
    choose_channels(apply.scene_facts(scene))
    engine = engine_path(context)
    library_arg(settings)
    # Rendering the edit is slow, so it comes after the cheap checks.
    movies = [render_edit(scene)] if mode == "EDIT" else [apply.movie_facts(s) for s in strips]
    config = write_config(settings)
    videos = list(dict.fromkeys(m.source_path for m in movies))
    requests = [_request(settings, v, config) for v in videos]
    opts = options_from(settings)
    return Prepared(
        scene.name,
        movies,
        requests,
        engine,
        opts,
        mode=mode,
        want_speech=opts.duck,
        want_levels=True,
    )


def _load_cue(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise PlacementError(f"cannot read cue sheet {os.path.basename(path)}: {exc}") from None
    if not isinstance(data, dict):
        raise PlacementError(f"{os.path.basename(path)} is not a cue sheet")
    for seg in data.get("segments") or []:
        track = seg.get("track") if isinstance(seg, dict) else None
        if isinstance(track, dict) and track.get("path"):
            track["path"] = cue_track_path(track, path)  # relative to the cue sheet's folder
    return data


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _speech(cue: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    spans = (cue.get("summary") or {}).get("speech") or []
    out = []
    for item in spans:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            out.append((float(item[0]), float(item[1])))
    return tuple(out)


def _tracks(cues: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Loudness (LUFS) and duration (s) of every track, measured with Blender's audio library."""
    from .loudness import integrated_loudness

    lufs: dict[str, float] = {}
    durations: dict[str, float] = {}
    seen: set[str] = set()
    for cue in cues:
        for seg in cue.get("segments", []):
            track = seg.get("track") or {}
            path = track.get("path")
            if not path or path in seen:
                continue
            seen.add(path)
            duration, data, rate = compat.sound_info(path)
            if duration is not None:
                durations[path] = duration
                value = integrated_loudness(data, rate)
                if value > -70.0:
                    lufs[path] = value
    return lufs, durations


def build_jobs(prepared: Prepared) -> list[Job]:
    jobs = []
    for movie in prepared.movies:
        cue_path = prepared.cue_paths[movie.source_path]
        cue = _load_cue(cue_path)
        found = prepared.speech.get(movie.source_path)
        speech = tuple(map(tuple, found)) if found is not None else _speech(cue)
        levels = prepared.levels.get(movie.source_path)
        jobs.append(Job(movie=movie, cue=cue, cue_path=cue_path, speech=speech, levels=levels))
    return jobs


def make_plan(scene: Any, prepared: Prepared, jobs: list[Job], channels=None) -> Plan:
    lufs, durations = _tracks([dict(j.cue) for j in jobs])
    return plan(
        jobs,
        apply.scene_facts(scene),
        prepared.options,
        track_lufs=lufs,
        track_duration_s=durations,
        channels=channels,
    )


def finish_auto(context: Any, prepared: Prepared) -> str:
    """Place the engine's cue sheets; the one step that changes the scene."""
    scene = bpy.data.scenes.get(prepared.scene_name)
    if scene is None:
        raise PlacementError("the scene was removed while the engine ran")
    jobs = build_jobs(prepared)
    the_plan = make_plan(scene, prepared, jobs)
    state = apply.load_state(scene)
    state["mode"] = prepared.mode
    state["jobs"] = [
        {
            "strip": j.movie.name,
            "video": j.movie.source_path,
            "cue": j.cue_path,
            "movie": _movie_dict(j.movie) if prepared.mode == "EDIT" else None,
            "speech": [list(x) for x in j.speech],
            "levels": dict(j.levels) if j.levels else None,
        }
        for j in jobs
    ]
    state["options"] = _options_dict(prepared.options)
    state["rerolls"] = {}
    created = apply.apply_plan(scene, the_plan, state)
    # The mixdown never raises the video's own sound: nor do the strips it plays on.
    apply.cap_original_sound(scene, [j.movie for j in jobs])
    moods = len(the_plan.markers)
    return f"Moodsic: placed {len(created)} music strips, {moods} mood markers"


def _movie_dict(m: MovieFacts) -> dict[str, Any]:
    return {
        "name": m.name,
        "source_path": m.source_path,
        "frame_start": m.frame_start,
        "final_start": m.final_start,
        "final_end": m.final_end,
        "channel": m.channel,
        "frame_duration": m.frame_duration,
    }


def _options_dict(o: PlaceOptions) -> dict[str, Any]:
    return {
        "crossfade_s": o.crossfade_s,
        "duck": o.duck,
        "target_lufs": o.target_lufs,
        "music_gain_db": o.music_gain_db,
    }


# ----------------------------------------------------------------------------- re-roll
def _state_movies(scene: Any, state: dict[str, Any]) -> list[tuple[MovieFacts, str]]:
    out = []
    for entry in state.get("jobs", []):
        if entry.get("movie"):
            movie = MovieFacts(**entry["movie"])
        else:
            strip = apply.movie_by_name(scene, entry["strip"])
            if strip is None:
                raise PlacementError(f"movie strip {entry['strip']} is gone: run Auto-score again")
            movie = apply.movie_facts(strip)
        out.append((movie, entry["cue"]))
    return out


def current_plan(scene: Any, prepared: Prepared, state: dict[str, Any]) -> tuple[Plan, list[Job]]:
    jobs = build_jobs(prepared)
    channels = tuple(state["channels"]) if state.get("channels") else None
    return make_plan(scene, prepared, jobs, channels=channels), jobs


def prepare_reroll(context: Any) -> Prepared:
    scene = compat.sequencer_scene(context)
    state = apply.load_state(scene)
    if not state.get("jobs") or not apply.our_strips(scene):
        raise PlacementError("nothing to re-roll: run Auto-score first")
    settings = scene.moodsic
    movies = _state_movies(scene, state)
    prepared = Prepared(
        scene.name,
        [m for m, _ in movies],
        [],
        engine_path(context),
        PlaceOptions(**state.get("options", {})),
        cue_paths={m.source_path: c for m, c in movies},
        mode=state.get("mode", "SELECTED"),
        speech={e["video"]: [tuple(x) for x in e.get("speech", [])] for e in state.get("jobs", [])},
        levels={e["video"]: e["levels"] for e in state.get("jobs", []) if e.get("levels")},
    )
    the_plan, _ = current_plan(scene, prepared, state)
    found = segment_at(the_plan, int(scene.frame_current))
    if found is None:
        raise PlacementError("no Moodsic music at the playhead")
    cue_path, segment = found
    video = next(m.source_path for m, c in movies if c == cue_path)
    counts = state.get("rerolls", {}).get(f"{cue_path}#{segment}", 0) + 1
    req = _request(settings, video, write_config(settings), (segment,) * counts)
    # The engine writes its re-rolled sheet beside the original, which stays untouched, and
    # takes the analysis from the original: only the music is chosen again (about a second).
    req = ScoreRequest(**{**req.__dict__, "cue": cue_path + ".reroll.json", "reuse": cue_path})
    prepared.requests = [req]
    prepared.reroll = (cue_path, segment)
    return prepared


def finish_reroll(context: Any, prepared: Prepared, new_cue_path: str) -> str:
    scene = bpy.data.scenes.get(prepared.scene_name)
    if scene is None or prepared.reroll is None:
        raise PlacementError("the scene was removed while the engine ran")
    cue_path, segment = prepared.reroll
    state = apply.load_state(scene)
    old = _load_cue(cue_path)
    new = _load_cue(new_cue_path)
    old_track = (old["segments"][segment].get("track") or {}).get("id")
    merged = replace_track(old, segment, new)
    new_track = merged["segments"][segment].get("track") or {}
    if new_track.get("id") == old_track:
        raise PlacementError("no other track fits this segment")
    try:
        _write_json(cue_path, merged)
        the_plan, _ = current_plan(scene, prepared, state)
        ops = the_plan.for_segment(cue_path, segment)
        old_strips = [
            s
            for s in apply.our_strips(scene)
            if s.get("cue") == cue_path and s.get("segment") == segment
        ]
        apply.replace_strips(scene, old_strips, ops.sounds)
    except Exception:
        _write_json(cue_path, old)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.remove(new_cue_path)
    rerolls = dict(state.get("rerolls", {}))
    rerolls[f"{cue_path}#{segment}"] = rerolls.get(f"{cue_path}#{segment}", 0) + 1
    state["rerolls"] = rerolls
    apply.save_state(scene, state)
    title = new_track.get("title") or os.path.basename(str(new_track.get("path", "")))
    return f"Moodsic: segment {segment + 1} now plays {title}"


# ----------------------------------------------------------------------------- the edit
def render_edit(scene: Any) -> MovieFacts:
    """Render the sequencer output over the scene range to a small movie (25 % size)."""
    if scene.sequence_editor is None or not compat.all_strips(scene):
        raise PlacementError("the scene has no strips to render")
    # Kept beside the cue sheets: re-roll scores the same render again.
    path = os.path.join(work_dir(), f"{bpy.path.clean_name(scene.name)}.edit.mp4")
    r = scene.render
    saved = {
        "filepath": r.filepath,
        "resolution_percentage": r.resolution_percentage,
        "use_sequencer": r.use_sequencer,
        "file_format": r.image_settings.file_format,
        "ff_format": r.ffmpeg.format,
        "ff_codec": r.ffmpeg.codec,
        "ff_audio": r.ffmpeg.audio_codec,
        "media_type": getattr(r.image_settings, "media_type", None),
    }
    # Moodsic's previous music is not part of what the engine should judge (nor "dialogue").
    ours = [st for st in apply.our_strips(scene) if not st.mute]
    try:
        for st in ours:
            st.mute = True
        if saved["media_type"] is not None:
            r.image_settings.media_type = "VIDEO"
        r.image_settings.file_format = "FFMPEG"
        r.ffmpeg.format = "MPEG4"
        r.ffmpeg.codec = "H264"
        r.ffmpeg.audio_codec = "AAC"
        r.resolution_percentage = max(1, min(100, 25))
        r.use_sequencer = True
        r.filepath = path
        bpy.ops.render.render(animation=True, scene=scene.name)
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.remove(path)
        raise PlacementError(f"could not render the edit: {exc}") from None
    finally:
        for st in ours:
            st.mute = False
        r.filepath = saved["filepath"]
        r.resolution_percentage = saved["resolution_percentage"]
        r.use_sequencer = saved["use_sequencer"]
        if saved["media_type"] is not None:
            r.image_settings.media_type = saved["media_type"]
        r.image_settings.file_format = saved["file_format"]
        r.ffmpeg.format = saved["ff_format"]
        r.ffmpeg.codec = saved["ff_codec"]
        r.ffmpeg.audio_codec = saved["ff_audio"]
    frames = int(scene.frame_end) - int(scene.frame_start) + 1
    return MovieFacts(
        name=EDIT_SOURCE,
        source_path=path,
        frame_start=int(scene.frame_start),
        final_start=int(scene.frame_start),
        final_end=int(scene.frame_end) + 1,
        channel=0,
        frame_duration=frames,
    )
