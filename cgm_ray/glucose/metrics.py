"""CGM metrics maths: pure numpy functions over glucose arrays (mg/dL).

``glucose_metrics`` computes the consensus panel and the iglu set per subject, with iglu's
column names, agreeing with iglu-python 0.4.3, plus the 2023 consensus episodes (``episodes``).
Reading-level metrics (``reading_metrics``) are reduced across all subjects at once
(``np.bincount``); grid-based ones (MODD, CONGA, MAGE, episodes) loop over subjects and build each
subject's grid once.
Definitions: ``../shared/docs/cgm-domain.md`` section 3 (Battelino 2019/2023, Kovatchev,
Klonoff 2022). Where iglu departs from a published definition the function says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cgm_ray.glucose.episodes import EPISODE_COLUMNS, episodes_from_grid
from cgm_ray.glucose.grid import NS_PER_DAY, NS_PER_MIN, DayGrid, Readings, day_grid
from cgm_ray.glucose.mage import MAGE_GRID_MIN, mage_ma
from cgm_ray.glucose.risk import RISK_NEUTRAL_MGDL, risk_index, symmetrised_bg
from cgm_ray.glucose.units import UNITS_LABEL, GlucoseUnits, from_mgdl, glucose_text

# Ranges as iglu names them: in-range bounds inclusive, below/above strict.
IN_RANGES_MGDL = ((70, 180), (63, 140), (70, 140))
BELOW_MGDL = (54, 70)
ABOVE_MGDL = (180, 250)
CONGA_HOURS = (1, 24)
GRI_ZONES = np.array(list("ABCDE"))
AGP_PERCENTILES = (5, 25, 50, 75, 95)
ADRR_RISK_CONSTANT = 22.77  # iglu's rounding of 10*1.509^2, used by iglu for ADRR only

METRIC_COLUMNS = (
    "mean", "median", "sd", "cv", "gmi", "ea1c",
    *(f"in_range_{lo}_{hi}" for lo, hi in IN_RANGES_MGDL),
    *(f"below_{t}" for t in BELOW_MGDL), *(f"above_{t}" for t in ABOVE_MGDL),
    "active_percent", "lbgi", "hbgi", "adrr", "gri", "gri_zone", "j_index", "grade", "m_value",
    "mage", "modd", *(f"conga{h}" for h in CONGA_HOURS),
    *EPISODE_COLUMNS,
)
# The metrics that are glucose values, or differences or SDs of them: mg/dL in cgm-ray,
# divided by 18.0182 where mmol/L are asked for (and so are the AGP percentiles, drawn by the
# report). Every other column of METRIC_COLUMNS reads the same in either unit: % of time in
# ranges (the ranges are fixed in mg/dL; only their labels change, see ``range_text``),
# active %, CV %, GMI and eA1c (% HbA1c), the risk indices LBGI, HBGI, ADRR, GRI (and its zone),
# J-index, GRADE and M-value (each defined on mg/dL, or on mmol/L with its own scale, and
# published as one unitless number), and the episodes' counts, rates per day and minutes.
GLUCOSE_VALUED_METRICS = ("mean", "median", "sd", "mage", "modd", *(f"conga{h}" for h in CONGA_HOURS))
# Each time-in-ranges column's glucose range in mg/dL: (low, high), None where open.
RANGE_BOUNDS_MGDL: dict[str, tuple[float | None, float | None]] = {
    **{f"in_range_{lo}_{hi}": (lo, hi) for lo, hi in IN_RANGES_MGDL},
    **{f"below_{t}": (None, t) for t in BELOW_MGDL}, **{f"above_{t}": (t, None) for t in ABOVE_MGDL},
}


def metrics_in_units(metrics: Mapping[str, Any], units: GlucoseUnits) -> dict[str, Any]:
    """``metrics`` (name -> a value or an array per subject, mg/dL) as shown in ``units``:
    the ``GLUCOSE_VALUED_METRICS`` converted, every other name as it is. Names stay the same."""
    return {name: (from_mgdl(value, units) if name in GLUCOSE_VALUED_METRICS else value)
            for name, value in metrics.items()}


def range_text(column: str, units: GlucoseUnits = "mg/dl") -> str:
    """A time-in-ranges column's range with its unit: ``in_range_70_180`` -> "70-180 mg/dL" or
    "3.9-10.0 mmol/L", ``below_70`` -> "<70 mg/dL" or "<3.9 mmol/L", ``above_250`` -> ">250"."""
    lo, hi = (None if bound is None else glucose_text(bound, units) for bound in RANGE_BOUNDS_MGDL[column])
    text = f"<{hi}" if lo is None else f">{lo}" if hi is None else f"{lo}-{hi}"
    return f"{text} {UNITS_LABEL[units]}"


def gmi_percent(mean_mgdl: np.ndarray) -> np.ndarray:
    """Glucose management indicator (Bergenstal 2018): 3.31 + 0.02392 * mean glucose."""
    return 3.31 + 0.02392 * np.asarray(mean_mgdl, dtype=float)


def ea1c_percent(mean_mgdl: np.ndarray) -> np.ndarray:
    """Estimated A1c (Nathan 2008): (46.7 + mean glucose) / 28.7."""
    return (46.7 + np.asarray(mean_mgdl, dtype=float)) / 28.7


def gri_zone(gri: np.ndarray) -> np.ndarray:
    """GRI zone letter (Klonoff 2022): A 0-20, B 21-40, C 41-60, D 61-80, E 81-100."""
    return GRI_ZONES[np.clip(np.ceil(np.asarray(gri, dtype=float) / 20.0) - 1, 0, 4).astype(int)]


def glucose_metrics(readings: Readings) -> dict[str, np.ndarray]:
    """Every metric of ``METRIC_COLUMNS`` for each subject of ``readings`` (one value per subject)."""
    out = reading_metrics(readings)
    out["adrr"] = _adrr(readings)
    out.update(_subject_metrics(readings))
    return {name: out[name] for name in METRIC_COLUMNS}


def basic_metrics(subject: np.ndarray, gl_mgdl: np.ndarray, n_subjects: int
                  ) -> dict[str, np.ndarray]:
    """Mean, SD, CV, GMI, eA1c and the time in ranges of each subject ``0..n_subjects-1``.

    Rows may come in any order (``subject`` gives each row's subject): the cheapest panel,
    for cohort screening over raw lake rows without sorting them.
    """
    n = np.bincount(subject, minlength=n_subjects).astype(float)

    def mean_of(values: np.ndarray) -> np.ndarray:
        return _subject_mean(subject, values, n)

    mean = mean_of(gl_mgdl)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.bincount(subject, weights=(gl_mgdl - mean[subject]) ** 2,
                                 minlength=n_subjects) / (n - 1))
    out = {"mean": mean, "sd": sd, "cv": 100.0 * sd / mean,
           "gmi": gmi_percent(mean), "ea1c": ea1c_percent(mean)}
    for lo, hi in IN_RANGES_MGDL:
        out[f"in_range_{lo}_{hi}"] = 100.0 * mean_of((gl_mgdl >= lo) & (gl_mgdl <= hi))
    for t in BELOW_MGDL:
        out[f"below_{t}"] = 100.0 * mean_of(gl_mgdl < t)
    for t in ABOVE_MGDL:
        out[f"above_{t}"] = 100.0 * mean_of(gl_mgdl > t)
    return out


def _subject_mean(subject: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per subject (NaN for a subject without rows)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(subject, weights=values, minlength=len(counts)) / counts


def reading_metrics(readings: Readings) -> dict[str, np.ndarray]:
    """The reading-level panel per subject: the fast subset of the metrics, needing no per-subject loop."""
    sid, g = readings.subject_index(), readings.gl_mgdl
    out = basic_metrics(sid, g, readings.n_subjects)
    n = np.diff(readings.offsets).astype(float)

    def mean_of(values: np.ndarray) -> np.ndarray:
        return _subject_mean(sid, values, n)

    risk = risk_index(g)
    out.update(lbgi=mean_of(np.where(g < RISK_NEUTRAL_MGDL, risk, 0.0)),
               hbgi=mean_of(np.where(g >= RISK_NEUTRAL_MGDL, risk, 0.0)),
               j_index=0.001 * (out["mean"] + out["sd"]) ** 2)
    gri = (3.0 * out["below_54"] + 2.4 * (out["below_70"] - out["below_54"])
           + 1.6 * out["above_250"] + 0.8 * (out["above_180"] - out["above_250"]))
    out["gri"] = np.minimum(gri, 100.0)
    out["gri_zone"] = gri_zone(out["gri"])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["grade"] = mean_of(np.minimum(425.0 * (np.log10(np.log10(g / 18.0)) + 0.16) ** 2, 50.0))
        out["m_value"] = 1000.0 * mean_of(np.abs(np.log10(g / 90.0)) ** 3)
    return {name: out[name] for name in METRIC_COLUMNS if name in out}


def _adrr(readings: Readings) -> np.ndarray:
    """Average daily risk range: mean over calendar days of max low risk + max high risk.

    iglu uses 22.77 for 10*1.509^2 here (and 22.7708 in LBGI/HBGI); kept for agreement.
    """
    sid, g = readings.subject_index(), readings.gl_mgdl
    day = readings.time_ns // NS_PER_DAY
    new_day = np.concatenate([[True], (np.diff(sid) != 0) | (np.diff(day) != 0)])
    starts = np.flatnonzero(new_day)
    if len(starts) == 0:
        return np.full(readings.n_subjects, np.nan)
    bgi = symmetrised_bg(g)
    high = np.maximum(np.maximum.reduceat(bgi, starts), 0.0)
    low = np.minimum(np.minimum.reduceat(bgi, starts), 0.0)
    daily_risk = ADRR_RISK_CONSTANT * (high ** 2 + low ** 2)
    day_sid = sid[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.bincount(day_sid, weights=daily_risk, minlength=readings.n_subjects)
                / np.bincount(day_sid, minlength=readings.n_subjects))


def _active_percent(time_ns: np.ndarray) -> float:
    """Percent of expected readings present, iglu's "automatic" range (first to last reading).

    iglu takes the step as the rounded median gap and counts the readings missing in each gap
    longer than one step; Python's round-half-to-even is kept.
    """
    if len(time_ns) < 2:
        return 100.0
    gaps_min = np.diff(time_ns) / NS_PER_MIN
    dt0 = round(float(np.median(gaps_min)))
    expected = round((time_ns[-1] - time_ns[0]) / NS_PER_MIN / dt0) + 1
    long_gaps = gaps_min[gaps_min > dt0]
    missing = round((long_gaps.sum() - len(long_gaps) * dt0) / dt0)
    return 100.0 * (expected - missing) / expected


def _subject_metrics(readings: Readings) -> dict[str, np.ndarray]:
    """Median, active percent, and the grid metrics (MODD, CONGA(n), MAGE, episodes), subject by subject."""
    names = ["median", "active_percent", "modd", "mage", *(f"conga{h}" for h in CONGA_HOURS),
             *EPISODE_COLUMNS]
    out = {name: np.full(readings.n_subjects, np.nan) for name in names}
    for k in range(readings.n_subjects):
        time_ns, gl = readings.subject(k)
        if len(gl) == 0:
            continue
        out["median"][k] = np.median(gl)
        out["active_percent"][k] = _active_percent(time_ns)
        if time_ns[-1] == time_ns[0]:
            continue
        grid = day_grid(time_ns, gl)
        out["modd"][k] = modd(grid)
        for h in CONGA_HOURS:
            out[f"conga{h}"][k] = conga(grid, h)
        mage_grid = grid if grid.dt0_min == MAGE_GRID_MIN else day_grid(time_ns, gl, MAGE_GRID_MIN)
        out["mage"][k] = mage_ma(mage_grid)
        for name, value in episodes_from_grid(grid).items():
            out[name][k] = value
    return out


def modd(grid: DayGrid, lag_days: int = 1) -> float:
    """Mean of daily differences: mean |G(t) - G(t - lag days)| over grid points where both exist."""
    gl = grid.gl_mgdl.ravel()
    shift = lag_days * 1440 // grid.dt0_min
    diffs = np.abs(gl[shift:] - gl[:-shift]) if shift < len(gl) else np.array([])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if len(diffs) else float("nan")


def conga(grid: DayGrid, hours: int) -> float:
    """CONGA(n): SD (n-1) of G(t) - G(t - n h) on the grid; NaN with fewer than 2 differences.

    The lag is ``round(60/dt0) * hours`` grid steps, as iglu computes it.
    """
    gl = grid.gl_mgdl.ravel()
    lag = round(60 / grid.dt0_min) * hours
    diffs = gl[lag:] - gl[:-lag] if lag < len(gl) else np.array([])
    diffs = diffs[np.isfinite(diffs)]
    return float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else float("nan")


def agp_percentiles(grid: DayGrid, percentiles: tuple[float, ...] = AGP_PERCENTILES
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Ambulatory glucose profile: glucose percentiles by time of day, pooled across days.

    Returns (minute of day of each grid slot, ``[slot, percentile]`` in mg/dL); a slot with no
    data on any day is NaN. Slot times follow iglu's grid, ``dt0`` to 1440 min.
    """
    minute_of_day = grid.dt0_min * np.arange(1, grid.gl_mgdl.shape[1] + 1)
    gl = grid.gl_mgdl
    empty = np.all(np.isnan(gl), axis=0)
    values = np.full((gl.shape[1], len(percentiles)), np.nan)
    if not np.all(empty):
        values[~empty] = np.nanpercentile(gl[:, ~empty], percentiles, axis=0).T
    return minute_of_day, values
