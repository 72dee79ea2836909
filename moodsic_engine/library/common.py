"""What every library loader shares: the audio file extensions it recognises, a track's
duration, and the short lists its warnings and errors name files with."""

from __future__ import annotations

AUDIO_EXTS = {
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".m4a", ".opus", ".aac",
    ".wma", ".mka", ".caf",
}  # fmt: skip


def shown_names(names: list[str], limit: int = 10, sep: str = ", ") -> str:
    """The first `limit` names, then how many more ("a, b and 3 more"; "a; b; and 3 more")."""
    more = len(names) - limit
    if more <= 0:
        return sep.join(names)
    return sep.join(names[:limit]) + ("; and" if sep == "; " else " and") + f" {more} more"


def skipped_warning(what: str, names: list[str]) -> str:
    """The warning for files or songs a loader left out: "skipped 3 <what>: a, b, c"."""
    return f"skipped {len(names)} {what}: {shown_names(names)}"


def track_duration(path: str) -> float | None:
    """Seconds of audio in `path` (libsndfile, else ffprobe); None when neither can tell."""
    try:
        import soundfile as sf

        from ..ffmpeg import quiet_native_stderr

        with quiet_native_stderr(path):
            return float(sf.info(path).duration)
    except Exception:  # noqa: BLE001 - formats libsndfile cannot read fall back to ffprobe
        from ..ffmpeg import audio_duration

        return audio_duration(path)
