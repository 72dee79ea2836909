"""Volume keyframes for the add-on's sound strips: fades and ducking dips as (frame, volume)
points. Pure Python (no bpy), used by placement.py."""

from __future__ import annotations

from collections.abc import Sequence


def _interp(points: Sequence[tuple[float, float]], x: float) -> float:
    if not points:
        return 1.0
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _dips(
    intervals: Sequence[tuple[int, int]], depth: float, attack: int, release: int
) -> list[list[tuple[float, float]]]:
    return [[(s - attack, 1.0), (s, depth), (e, depth), (e + release, 1.0)] for s, e in intervals]


def _keys(
    start: int,
    end: int,
    gain: float,
    fade_in: int,
    fade_out: int,
    dips: Sequence[Sequence[tuple[float, float]]],
) -> tuple[tuple[int, float], ...]:
    fade: list[tuple[float, float]] = []
    if fade_in > 0:
        fade += [(start, 0.0), (start + fade_in, 1.0)]
    else:
        fade += [(start, 1.0)]
    if fade_out > 0:
        fade += [(end - fade_out, 1.0), (end, 0.0)]
    else:
        fade += [(end, 1.0)]
    fade.sort()
    xs = {float(x) for x, _ in fade}
    for d in dips:
        xs.update(float(x) for x, _ in d if start <= x <= end)

    def value(x: float) -> float:
        duck = min((_interp(d, x) for d in dips), default=1.0)
        return gain * _interp(fade, x) * duck

    pts = [(int(round(x)), round(value(x), 6)) for x in sorted(xs)]
    # Integer frames can collide; keep the first value at each frame.
    uniq: list[tuple[int, float]] = []
    for f, v in pts:
        if not uniq or f != uniq[-1][0]:
            uniq.append((f, v))
    # Drop interior points on a straight line between their neighbours.
    out: list[tuple[int, float]] = []
    for i, (f, v) in enumerate(uniq):
        if 0 < i < len(uniq) - 1:
            (f0, v0), (f1, v1) = out[-1], uniq[i + 1]
            expect = v0 + (v1 - v0) * (f - f0) / (f1 - f0)
            if abs(expect - v) < 1e-6:
                continue
        out.append((f, v))
    if all(abs(v - gain) < 1e-6 for _, v in out):
        return ()
    return tuple(out)
