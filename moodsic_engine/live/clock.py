"""The session clock: seconds since the session started, optionally running faster than real time.

`speed` > 1 plays a file source (and renders the music) that many times faster than real
time, so tests can run minutes or hours of a session in seconds. Everything in a session
(sources, analysis, music) reads this one clock, so accelerated and real runs behave alike.
"""

from __future__ import annotations

import threading
import time


class SessionClock:
    """Monotonic session seconds: (wall seconds since start) x speed.

    Parameters
    ----------
    speed
        How many session seconds pass per wall second (1: real time).
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._paused_at: float | None = None

    def restart(self) -> None:
        """Session time 0 is now."""
        self._t0 = time.monotonic()
        self._paused_at = None

    def now(self) -> float:
        """Session seconds since the clock started."""
        at = self._paused_at if self._paused_at is not None else time.monotonic()
        return (at - self._t0) * self.speed

    def hold_to(self, latest: float) -> None:
        """Never be later than `latest` session seconds: a clock running ahead of the music
        (rendering slower than `speed`, a sound card slower than the wall clock) is held back,
        so the sources never outrun what is heard."""
        ahead = self.now() - latest
        if ahead > 0:
            self._t0 += ahead / self.speed

    def pause(self) -> None:
        """Stop session time (accelerated runs wait for work that takes wall time, like
        reading a track, which the speed would otherwise multiply)."""
        if self._paused_at is None:
            self._paused_at = time.monotonic()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._t0 += time.monotonic() - self._paused_at
            self._paused_at = None

    def wall(self, session_s: float) -> float:
        """Wall seconds that `session_s` session seconds take."""
        return session_s / self.speed

    def sleep_until(self, session_t: float, stop: threading.Event | None = None) -> bool:
        """Sleep until the session time `session_t`; False when `stop` was set meanwhile."""
        while True:
            ahead = (session_t - self.now()) / self.speed
            if ahead <= 0:
                return True
            if stop is not None:
                if stop.wait(min(ahead, 0.5)):
                    return False
            else:
                time.sleep(min(ahead, 0.5))

    def sleep(self, session_s: float, stop: threading.Event | None = None) -> bool:
        """Sleep `session_s` session seconds; False when `stop` was set meanwhile."""
        return self.sleep_until(self.now() + session_s, stop)
