"""Stamps as integer microseconds: the samples of one control tick compare equal across topics and processes (header
stamps as sec + nanosec, JSON records as floats), and lookups tolerate tick times that sit on the 2 ms physics grid
rather than exactly k·dt apart."""
from __future__ import annotations


def stamp_key(stamp: float) -> int:
    return int(round(stamp * 1e6))


def nearest_key(table: dict[int, object], key: int, tolerance: int) -> int | None:
    """`key` if `table` has it, else the nearest key within `tolerance` (µs), else None."""
    if key in table:
        return key
    best = min(table, key=lambda k: abs(k - key), default=None)
    return best if best is not None and abs(best - key) <= tolerance else None


def nearest_stamp(table: dict[int, object], stamp: float, tolerance: float) -> int | None:
    """nearest_key with the stamp and the tolerance in seconds."""
    return nearest_key(table, stamp_key(stamp), stamp_key(tolerance))
