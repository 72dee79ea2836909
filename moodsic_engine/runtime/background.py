"""Loading models on a background thread while the video starts decoding.

`Pending(fn, ...)` starts `fn` on a daemon thread; `ready(x)` is `x` itself, or a Pending's
result once it is there (its exception, if it raised, is raised again in the caller, so a
missing or broken weights file reports exactly as when loaded in line).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """A value being computed on its own thread."""

    def __init__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        # what a consumer must know before the value is there (set by the creator), e.g.
        # whether the experts being loaded want full-resolution frames from the sampler
        self.detail: bool | None = None
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(fn, args, kwargs), name="moodsic-load", daemon=True
        )
        self._thread.start()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        """Wait for the value; re-raise what the function raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def ready(value: Any) -> Any:
    """`value`, or the result of a Pending (waiting for it)."""
    return value.result() if isinstance(value, Pending) else value
