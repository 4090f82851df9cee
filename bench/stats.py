"""Small statistics helpers: percentiles, rounding, ratios.

Example:
    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> ratio(3.0, 2.0)
    1.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile of ``values`` (linear interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded to 3 places; None when undefined."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def mb(size_bytes: float | None) -> float | None:
    """Bytes as MiB, rounded to 1 place."""
    return None if size_bytes is None else round(size_bytes / 2**20, 1)


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, rounded to 1 place."""
    return None if seconds is None else round(seconds * 1000.0, 1)
