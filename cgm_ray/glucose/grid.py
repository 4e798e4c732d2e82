"""CGM readings grouped by subject, and iglu's day-by-day interpolation grid.

The grid reproduces iglu's ``CGMS2DayByDay`` (iglu 4.3 / iglu-python 0.4.3) so that MODD,
CONGA and MAGE agree with iglu: the grid step is the typical sampling interval, glucose is
linearly interpolated onto the grid, and grid points inside gaps longer than 45 min are missing.
Times are naive wall-clock instants in int64 nanoseconds (tz-aware input is taken in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_PER_MIN = 60_000_000_000
NS_PER_DAY = 1440 * NS_PER_MIN
INTER_GAP_MIN = 45.0


@dataclass(frozen=True)
class Readings:
    """Readings of many subjects, sorted by (subject, time); subject k is rows offsets[k]:offsets[k+1].

    ``gl_mgdl`` holds only finite values: missing readings are dropped on construction, as every
    iglu metric drops them (``dropna``) before computing.
    """

    ids: np.ndarray
    offsets: np.ndarray
    time_ns: np.ndarray
    gl_mgdl: np.ndarray

    @property
    def n_subjects(self) -> int:
        return len(self.ids)

    def subject(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(time_ns, gl_mgdl) of subject ``k``."""
        lo, hi = self.offsets[k], self.offsets[k + 1]
        return self.time_ns[lo:hi], self.gl_mgdl[lo:hi]

    def subject_index(self) -> np.ndarray:
        """For every row, the index of its subject (for ``np.bincount`` reductions)."""
        return np.repeat(np.arange(self.n_subjects), np.diff(self.offsets))


def group_readings(ids: np.ndarray, time_ns: np.ndarray, gl_mgdl: np.ndarray) -> Readings:
    """Drop missing glucose, group by id in order of first appearance (as iglu does), sort by time.

    Input already grouped and time-sorted (the usual export) needs no sort.
    """
    ids = np.asarray(ids)
    time_ns = np.asarray(time_ns, dtype=np.int64)
    gl_mgdl = np.asarray(gl_mgdl, dtype=np.float64)
    keep = np.isfinite(gl_mgdl)
    if not keep.all():
        ids, time_ns, gl_mgdl = ids[keep], time_ns[keep], gl_mgdl[keep]
    if len(ids) == 0:
        return Readings(ids[:0], np.zeros(1, dtype=np.int64), time_ns[:0], gl_mgdl[:0])
    heads = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    head_ids = ids[heads]
    if len(np.unique(head_ids)) == len(heads):
        unique_ids, code = head_ids, np.repeat(np.arange(len(heads)), np.diff(np.append(heads, len(ids))))
    else:
        sorted_ids, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        appearance = np.argsort(first)
        unique_ids = sorted_ids[appearance]
        code = np.argsort(appearance)[inverse.ravel()]
    steps = np.diff(time_ns)
    same = np.diff(code) == 0
    if not (np.all(np.diff(code)[~same] > 0) and np.all(steps[same] >= 0)):
        order = np.lexsort((time_ns, code))
        code, time_ns, gl_mgdl = code[order], time_ns[order], gl_mgdl[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(code, minlength=len(unique_ids)))])
    return Readings(unique_ids, offsets, time_ns, gl_mgdl)


def typical_interval_min(time_ns: np.ndarray) -> int:
    """iglu's grid step: the most common gap between readings, truncated to whole minutes.

    Like pandas ``mode`` the smallest of equally common gaps wins; like iglu's ``int()`` a
    4 min 59 s mode gives 4. Zero gaps (duplicate timestamps) are ignored, where iglu would fail.
    """
    gaps_ns = np.diff(time_ns)
    gaps_ns = gaps_ns[gaps_ns > 0]
    if len(gaps_ns) == 0:
        raise ValueError("need two distinct reading times to find the sampling interval")
    gaps_ns = np.sort(gaps_ns)
    run_start = np.flatnonzero(np.concatenate([[True], gaps_ns[1:] != gaps_ns[:-1]]))
    run_length = np.diff(np.append(run_start, len(gaps_ns)))
    return max(1, int(gaps_ns[run_start[np.argmax(run_length)]] / NS_PER_MIN))


@dataclass(frozen=True)
class DayGrid:
    """Glucose on iglu's grid: ``gl_mgdl[day, slot]`` at ``start_ns + (day*per_day + slot + 1)*dt0``.

    Slot 0 is ``dt0`` after midnight and the last slot is midnight of the next day: iglu drops
    the first grid point (its R-compatible mode), so each row runs (00:00, 24:00].
    """

    gl_mgdl: np.ndarray
    start_ns: int
    dt0_min: int


def day_grid(time_ns: np.ndarray, gl_mgdl: np.ndarray, dt0_min: int | None = None,
             inter_gap_min: float = INTER_GAP_MIN) -> DayGrid:
    """Interpolate one subject's sorted readings onto iglu's day-by-day grid (CGMS2DayByDay).

    Grid points before the first or after the last reading are missing; so are the points
    strictly between two readings more than ``inter_gap_min`` apart (iglu's index rule, with its
    1-second offset, is kept so that a point exactly at the next reading stays interpolated).
    """
    if dt0_min is None:
        dt0_min = typical_interval_min(time_ns)
    start_ns = int(np.floor(time_ns[0] / NS_PER_DAY)) * NS_PER_DAY
    n_days = -(-(int(time_ns[-1]) - start_ns) // NS_PER_DAY)
    per_day = 1440 // dt0_min
    n_points = n_days * per_day
    rel_ns = time_ns - start_ns
    grid_min = dt0_min * np.arange(1, n_points + 1, dtype=np.float64)
    gl = np.interp(grid_min, rel_ns / NS_PER_MIN, gl_mgdl, left=np.nan, right=np.nan)
    gap = np.flatnonzero(np.diff(time_ns) > inter_gap_min * NS_PER_MIN)
    if len(gap):
        step_ns = dt0_min * NS_PER_MIN
        first = rel_ns[gap] // step_ns
        stop = (rel_ns[gap + 1] - 1_000_000_000) // step_ns
        mark = np.zeros(n_points + 1, dtype=np.int64)
        np.add.at(mark, np.clip(first, 0, n_points), 1)
        np.add.at(mark, np.clip(np.maximum(stop, first), 0, n_points), -1)
        gl[np.cumsum(mark[:-1]) > 0] = np.nan
    return DayGrid(gl.reshape(n_days, per_day), start_ns, dt0_min)
