"""Live ambience mode: a camera (or stream, or file) in a room chooses the music, continuously.

`run_live(source, library, experts, config, options)` runs a session; see `session` for the
loop and the stated latency, `sources` for cameras/streams/files, `analysis` for the causal
stages, `player` and `playlist` for the music, `sinks` for the outputs, `events` and `status`
for the log and the status page. Frames live in memory only for as long as the analysis
needs them; nothing the camera sees is written or sent anywhere.
"""

from __future__ import annotations

from .session import LiveOptions, LiveReport, run_live
from .sources import SourceError, SourceSpec, source_spec

__all__ = ["LiveOptions", "LiveReport", "SourceError", "SourceSpec", "run_live", "source_spec"]
