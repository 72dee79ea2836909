"""Audio placement and mixdown: the music bed, the finished mix, and the muxed video.

One module per stage:

- `audio`: read any audio file, the video's own audio, write WAV/FLAC/MP3 under a ceiling;
- `grid`: bar grids (beat sidecars, librosa);
- `plan`: the music plan every front end plays: each track's passes, cuts, fades and gain
  (`music_plan`; `place_tracks` stores it in the cue sheet);
- `loudness`: integrated loudness, loudness range, true peak, limiter, normalisation;
- `ducking`: speech regions (silero-vad) and the ducking envelope;
- `levels`: the music set against the video's own sound (never amplified) and the dialogue;
- `render`: the music bed, the finished mix, writing them;
- `mux`: the video with the mix as its audio.

ffmpeg/ffprobe calls live in `moodsic_engine.ffmpeg`. The names below are re-exported so
`from moodsic_engine.mix import X` and `mix.X` keep working.
"""

from __future__ import annotations

from ..ffmpeg import quiet_native_stderr
from .audio import (
    encode_under_ceiling,
    has_audio_stream,
    peak_db,
    read_audio,
    resample,
    stereo,
    video_audio,
    write_audio,
)
from .ducking import duck_envelope, speech_regions
from .levels import Levels, level_mix
from .loudness import (
    integrated_lufs,
    limit,
    loudness_range,
    lufs_over,
    normalize,
    track_gain,
    true_peak,
)
from .mux import mux
from .plan import BeatGrid, beat_grid, fade_curve, looped_pieces, place_tracks
from .render import (
    Mixdown,
    WrittenMix,
    build_bed,
    dialogue_for,
    mix_arrays,
    render_music,
    render_pieces,
    write_bed,
    write_mix,
    write_mix_measured,
)

__all__ = [
    "BeatGrid",
    "Levels",
    "Mixdown",
    "WrittenMix",
    "beat_grid",
    "build_bed",
    "dialogue_for",
    "duck_envelope",
    "encode_under_ceiling",
    "fade_curve",
    "has_audio_stream",
    "integrated_lufs",
    "level_mix",
    "limit",
    "loudness_range",
    "looped_pieces",
    "lufs_over",
    "mix_arrays",
    "mux",
    "normalize",
    "peak_db",
    "place_tracks",
    "quiet_native_stderr",
    "read_audio",
    "render_music",
    "render_pieces",
    "resample",
    "speech_regions",
    "stereo",
    "track_gain",
    "true_peak",
    "video_audio",
    "write_audio",
    "write_bed",
    "write_mix",
    "write_mix_measured",
]
