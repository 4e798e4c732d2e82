"""Hypo- and hyperglycaemia episodes (Battelino et al., Lancet Diabetes Endocrinol 2023).

An event starts after >= 15 consecutive minutes beyond a threshold and ends after >= 15
consecutive minutes back on the other side; shorter excursions back do not end it. Extended
hypoglycaemia is an event whose qualifying run is > 120 consecutive minutes < 70 mg/dL. As in
iglu's ``episode_calculation`` the series is iglu's interpolated day grid, a missing grid point
(a gap > 45 min) ends an ongoing event, and an event open at a gap or at the end of data counts.
Unlike iglu, an event's duration stops at its last point beyond the threshold and a type with no
event has a NaN (not 0) mean duration. Runs are found by run-length encoding with numpy, so the
cost per subject is a few array passes per threshold, with no Python loop over grid points.
"""

from __future__ import annotations

import math

import numpy as np

from cgm_ray.glucose.grid import INTER_GAP_MIN, NS_PER_DAY, NS_PER_MIN, DayGrid, Readings, day_grid

MIN_EVENT_MIN = 15.0
MIN_END_MIN = 15.0
EXTENDED_HYPO_MIN = 120.0
HYPO_L1_MGDL = 70.0
HYPO_L2_MGDL = 54.0
HYPER_L1_MGDL = 180.0
HYPER_L2_MGDL = 250.0

# Episode type -> (threshold mg/dL, True if "beyond" means below it).
EPISODE_TYPES = {
    "hypo_l1": (HYPO_L1_MGDL, True),
    "hypo_l2": (HYPO_L2_MGDL, True),
    "hypo_ext": (HYPO_L1_MGDL, True),
    "hyper_l1": (HYPER_L1_MGDL, False),
    "hyper_l2": (HYPER_L2_MGDL, False),
}
EPISODE_COLUMNS: tuple[str, ...] = tuple(
    f"episodes_{kind}{suffix}"
    for kind in EPISODE_TYPES for suffix in ("", "_per_day", "_duration_min"))


def episode_metrics(readings: Readings) -> dict[str, np.ndarray]:
    """Every column of ``EPISODE_COLUMNS`` per subject; NaN for subjects with < 2 distinct times."""
    out = {name: np.full(readings.n_subjects, np.nan) for name in EPISODE_COLUMNS}
    for k in range(readings.n_subjects):
        time_ns, gl = readings.subject(k)
        if len(gl) == 0 or time_ns[-1] == time_ns[0]:
            continue
        for name, value in episodes_from_grid(day_grid(time_ns, gl)).items():
            out[name][k] = value
    return out


def episodes_from_grid(grid: DayGrid) -> dict[str, float]:
    """Count, rate per day of data and mean duration (min) of each episode type on one subject's grid."""
    gl = grid.gl_mgdl.ravel()
    missing = np.isnan(gl)
    dt0_min = grid.dt0_min
    days = (len(gl) - int(np.count_nonzero(missing))) * dt0_min / 1440.0
    end_pts = math.ceil(MIN_END_MIN / dt0_min)
    runs_by_threshold = {}  # hypo_ext reuses the runs of hypo_l1
    out = {}
    for kind, (threshold_mgdl, below) in EPISODE_TYPES.items():
        key = (threshold_mgdl, below)
        if key not in runs_by_threshold:
            beyond = gl < threshold_mgdl if below else gl > threshold_mgdl
            runs_by_threshold[key] = _runs(beyond, missing)
        count, total_pts = _events(*runs_by_threshold[key], _opening_pts(kind, dt0_min), end_pts)
        out[f"episodes_{kind}"] = float(count)
        out[f"episodes_{kind}_per_day"] = count / days if days > 0 else float("nan")
        out[f"episodes_{kind}_duration_min"] = (total_pts * dt0_min / count if count
                                                else float("nan"))
    return out


def _opening_pts(kind: str, dt0_min: int) -> int:
    """Grid points a run beyond the threshold needs to open an event: >= 15 min, or > 120 min
    for extended hypoglycaemia (a run of k points lasts k * dt0 minutes)."""
    if kind == "hypo_ext":
        return math.floor(EXTENDED_HYPO_MIN / dt0_min) + 1
    return math.ceil(MIN_EVENT_MIN / dt0_min)


def _runs(beyond: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encode the grid's states: (first index, length, state) of each run.

    State is 1 beyond the threshold, 0 back within it, -1 missing (NaN compares false, so a
    missing point is never beyond).
    """
    state = beyond.view(np.int8) - missing.view(np.int8)
    first = np.flatnonzero(np.concatenate(([True], state[1:] != state[:-1])))
    length = np.diff(np.append(first, len(state)))
    return first, length, state[first]


def _events(first: np.ndarray, length: np.ndarray, state: np.ndarray, event_pts: int, end_pts: int
            ) -> tuple[int, int]:
    """(Number of events, their total length in grid points) from the runs of one threshold.

    A run of missing points, or of >= ``end_pts`` points back within, closes whatever is open;
    between two closing runs there is one event if some beyond run has >= ``event_pts`` points.
    It runs from the first such run to the end of the last beyond run before the closing run.
    """
    closes = (state < 0) | ((state == 0) & (length >= end_pts))
    beyond = state > 0
    group = np.cumsum(closes)[beyond]
    start = first[beyond]
    last = start + length[beyond] - 1
    qualifies = length[beyond] >= event_pts
    opening_group = group[qualifies]
    if len(opening_group) == 0:
        return 0, 0
    opens = np.concatenate(([True], opening_group[1:] != opening_group[:-1]))
    event_group = opening_group[opens]
    event_first = start[qualifies][opens]
    event_last = last[np.searchsorted(group, event_group, side="right") - 1]
    return len(event_group), int((event_last - event_first).sum()) + len(event_group)


def long_low_days(readings: Readings, below_mgdl: float = HYPO_L2_MGDL,
                  min_minutes: float = 240.0, max_gap_min: float = INTER_GAP_MIN
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per subject, (calendar days with readings, days on which a run of readings below
    ``below_mgdl`` lasting >= ``min_minutes`` starts).

    A run is consecutive readings below the threshold, broken by a reading at or above it or a
    gap > ``max_gap_min``; it lasts from its first reading to one sampling interval after its
    last. This is the realism tail check: no person sits below 54 mg/dL for 4 h untreated.
    """
    sid, t, g = readings.subject_index(), readings.time_ns, readings.gl_mgdl
    n = readings.n_subjects
    day = t // NS_PER_DAY
    new_day = np.concatenate([[True], (sid[1:] != sid[:-1]) | (day[1:] != day[:-1])])
    days = np.bincount(sid[new_day], minlength=n)
    low = g < below_mgdl
    step = np.diff(t, prepend=t[:1])
    joined = np.concatenate([[False], low[1:] & low[:-1] & (sid[1:] == sid[:-1])
                             & (step[1:] <= max_gap_min * NS_PER_MIN)])
    starts = np.flatnonzero(low & ~joined)
    if len(starts) == 0:
        return days, np.zeros(n, np.int64)
    run = np.cumsum(low & ~joined)[low] - 1  # run number of each low reading
    last = np.zeros(len(starts), np.int64)
    np.maximum.at(last, run, np.flatnonzero(low))
    interval = np.median(np.diff(t)[np.diff(sid) == 0]) if len(t) > 1 else 0.0
    minutes = (t[last] - t[starts] + interval) / NS_PER_MIN
    long = starts[minutes >= min_minutes]
    pairs = np.unique(np.stack([sid[long], day[long]]), axis=1)
    return days, np.bincount(pairs[0], minlength=n)
