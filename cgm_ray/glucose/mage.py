"""MAGE by iglu's default "ma" algorithm (Fernandes et al. 2022), as iglu-python 0.4.3 does it.

Service's (1970) MAGE averages the glucose excursions larger than one SD. The "ma" algorithm
finds candidate peaks and nadirs where a 5-point and a 32-point moving average cross, on a
5-minute grid; a trace is split into segments at gaps over 180 min, MAGE+ (nadir to peak) and
MAGE- (peak to nadir) are computed per segment, and the result is their average weighted by
segment duration. The peak/nadir search and the excursion walk are sequential by nature, so
they run per subject in plain Python over the (few hundred) extrema.
"""

from __future__ import annotations

import numpy as np

from cgm_ray.glucose.grid import DayGrid

MAGE_GRID_MIN = 5
SHORT_MA = 5
LONG_MA = 32
MAX_GAP_MIN = 180.0


def mage_ma(grid: DayGrid) -> float:
    """MAGE (mg/dL) from a subject's 5-minute iglu grid; NaN when no excursion exceeds one SD.

    iglu always regrids to 5 minutes for MAGE, whatever the sampling interval.
    """
    if grid.dt0_min != MAGE_GRID_MIN:
        raise ValueError(f"MAGE needs the {MAGE_GRID_MIN}-minute grid, got {grid.dt0_min} min")
    gl = grid.gl_mgdl.ravel()
    valid = np.flatnonzero(np.isfinite(gl))
    if len(valid) == 0:
        return float("nan")
    breaks = np.flatnonzero(np.diff(valid) * MAGE_GRID_MIN > MAX_GAP_MIN)
    starts = valid[np.concatenate([[0], breaks + 1])]
    ends = valid[np.concatenate([breaks, [len(valid) - 1]])]
    total = weight = 0.0
    for lo, hi in zip(starts, ends):
        duration = float(hi - lo)
        for value in _segment_mage(gl[lo:hi + 1]):
            if not np.isnan(value):
                total += value * duration
                weight += duration
    return total / weight if weight > 0 else float("nan")


def _moving_average(gl: np.ndarray, window: int) -> np.ndarray:
    """pandas ``rolling(window, min_periods=1).mean()`` skipping NaN, with iglu's head fill.

    Running sums give the mean; like pandas, a window whose values are all equal gets exactly
    that value (a flat stretch then has a short-minus-long difference of exactly 0, which iglu
    treats as "no sign"). iglu replaces the first ``window`` values by the value at
    ``window-1`` (or, for a shorter segment, by the last value) so the averages start settled.
    """
    finite = np.isfinite(gl)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, gl, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(finite)])
    hi = np.arange(1, len(gl) + 1)
    lo = np.maximum(hi - window, 0)
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = (csum[hi] - csum[lo]) / count
    values = gl[finite]
    run_start = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    run_length = np.arange(len(values)) - np.repeat(run_start, np.diff(np.append(run_start, len(values)))) + 1
    last = ccount[hi] - 1
    flat = (count > 0) & (run_length[last] >= count)
    ma[flat] = values[last[flat]]
    ma[:window] = ma[-1] if window > len(gl) else ma[window - 1]
    return ma


def _crossings(delta: np.ndarray, gl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices and types (True = peak) of iglu's crossing list: first point, crosses, last point.

    iglu walks the points and records a cross where the short-minus-long difference changes
    sign against the previous point or, across missing values, against the last cross; both
    reduce to "sign changes between consecutive valid (finite, non-zero) differences", except
    that before the first cross iglu needs two adjacent valid points when the first difference
    is zero (its sign is then undefined).
    """
    first_is_peak = bool(delta[0] > 0)
    delta = np.where(delta == 0, np.nan, delta)
    ok = np.flatnonzero(np.isfinite(delta))
    positive = delta[ok] > 0
    change = ok[1:][positive[1:] != positive[:-1]]
    if not np.isfinite(delta[0]):
        adjacent = np.isfinite(gl[change]) & np.isfinite(gl[change - 1]) & np.isfinite(delta[change - 1])
        first = np.flatnonzero(adjacent)
        change = change[first[0]:] if len(first) else change[:0]
    ids = np.concatenate([[0], change, [len(delta) - 1]])
    peaks = np.concatenate([[first_is_peak], delta[change] > 0, [bool(delta[-1] > 0)]])
    return ids, peaks


def _extrema(gl: np.ndarray, ids: np.ndarray, peaks: np.ndarray) -> list[float]:
    """The peak or nadir value between each cross and the next, searched from the last extremum.

    Missing points never win: they are -inf in the peak search and +inf in the nadir search.
    """
    for_max = np.where(np.isnan(gl), -np.inf, gl).tolist()
    for_min = np.where(np.isnan(gl), np.inf, gl).tolist()
    values: list[float] = []
    s1 = int(ids[0])
    for s2, peak in zip(ids[1:].tolist(), peaks[:-1].tolist()):
        series = for_max if peak else for_min
        value = (max if peak else min)(series[s1:s2 + 1])
        values.append(value)
        s1 = series.index(value, s1, s2 + 1)
    return values


def _first_extreme(values: list[float], lo: int, hi: int, pick) -> int:
    """Index of the first min (pick=min) or max of values[lo:hi+1]."""
    best = pick(values[lo:hi + 1])
    return lo + values[lo:hi + 1].index(best)


def _mage_plus(mm: list[float], sd: float) -> list[float]:
    """Nadir-to-peak excursions larger than ``sd`` (iglu-python's calculate_mage_plus)."""
    heights, n, j, prev_j = [], len(mm), 0, 0
    while j < n:
        i = _first_extreme(mm, prev_j, j, min)
        if mm[j] - mm[i] > sd:
            for k in range(j, n):
                if mm[k] >= mm[j]:
                    j = k
                if mm[k] - mm[j] < -sd or k == n - 1:
                    heights.append(mm[j] - mm[i])
                    prev_j = j = k
                    break
        else:
            j += 1
    return heights


def _mage_minus(mm: list[float], sd: float) -> list[float]:
    """Peak-to-nadir excursions larger than ``sd`` (iglu-python's calculate_mage_minus).

    Unlike MAGE+, iglu restarts the next search from the nadir (``prev_j = j``), not from the
    point that ended the excursion; kept for agreement.
    """
    heights, n, j, prev_j = [], len(mm), 0, 0
    while j < n:
        i = _first_extreme(mm, prev_j, j, max)
        if mm[j] - mm[i] < -sd:
            for k in range(j, n):
                if mm[k] <= mm[j]:
                    j = k
                if mm[k] - mm[j] > sd or k == n - 1:
                    heights.append(mm[j] - mm[i])
                    prev_j, j = j, k
                    break
        else:
            j += 1
    return heights


def _segment_mage(gl: np.ndarray) -> tuple[float, float]:
    """(MAGE+, MAGE-) of one gap-free segment that starts and ends with a valid point."""
    n = len(gl)
    if n < 7 or n < SHORT_MA:
        return float("nan"), float("nan")
    sd = float(np.nanstd(gl, ddof=1))
    if sd < 1:
        return float("nan"), float("nan")
    delta = _moving_average(gl, SHORT_MA) - _moving_average(gl, LONG_MA)
    ids, peaks = _crossings(delta, gl)
    mm = _extrema(gl, ids, peaks)
    plus, minus = _mage_plus(mm, sd), _mage_minus(mm, sd)
    return (float(np.mean(plus)) if plus else float("nan"),
            float(abs(np.mean(minus))) if minus else float("nan"))
