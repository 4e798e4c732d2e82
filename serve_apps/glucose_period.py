"""Patients' readings over a period, for the history view, reports and the clinician's panel:
from the lake where it holds them, then from the partitions' hot history.

The lake holds what the ETL has loaded (days to years); a partition's rings hold each
sensor's newest ``hot_readings``, including those the lake has not loaded yet. A period takes
the lake's readings, then the hot readings newer than the lake's newest, so no reading is
counted twice, and every answer says how many came from each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cgm_ray.errors import ConfigError
from cgm_ray.lake.store import Lake

MS_PER_DAY = 86_400_000
MAX_PERIOD_DAYS = 90  # the AGP report's longest useful period


@dataclass(frozen=True)
class Period:
    """``[start_ms, end_ms)``, epoch milliseconds UTC."""

    start_ms: int
    end_ms: int

    @classmethod
    def ending(cls, end_ms: int, days: float) -> Period:
        """The ``days`` before ``end_ms``; ConfigError naming ``days`` unless 0 < days <= 90."""
        if not 0 < days <= MAX_PERIOD_DAYS:
            raise ConfigError("days", f"must be over 0 and at most {MAX_PERIOD_DAYS}, got {days:g}")
        return cls(end_ms - round(days * MS_PER_DAY), end_ms)

    @property
    def days(self) -> float:
        return (self.end_ms - self.start_ms) / MS_PER_DAY


@dataclass(frozen=True)
class GlucoseSeries:
    """One patient's readings: UTC epoch ms and mg/dL, in any order."""

    ts_ms: np.ndarray
    glucose_mgdl: np.ndarray

    @classmethod
    def empty(cls) -> GlucoseSeries:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64))


@dataclass(frozen=True)
class PeriodReadings:
    """A patient's readings in a period, sorted by time, and how many came from where."""

    series: GlucoseSeries
    lake_readings: int
    hot_readings: int

    @property
    def source(self) -> Literal["lake", "hot", "lake+hot", "none"]:
        """Where the readings came from."""
        if self.lake_readings and self.hot_readings:
            return "lake+hot"
        return "lake" if self.lake_readings else "hot" if self.hot_readings else "none"


def lake_series(lake_dir: str | None, patient_ids: list[str], period: Period
                ) -> dict[str, GlucoseSeries]:
    """The lake's readings of ``patient_ids`` in ``period`` (no entry for a patient without
    any; none at all when ``lake_dir`` is unset or holds no lake yet)."""
    if not lake_dir or not patient_ids:
        return {}
    try:
        lake = Lake(lake_dir)
    except ConfigError:  # the ETL has not created it yet: everything is hot
        return {}
    table = lake.readings_of(patient_ids, period.start_ms, period.end_ms)
    if table.num_rows == 0:
        return {}
    table = table.sort_by([("patient_id", "ascending"), ("ts", "ascending")])
    ids = table.column("patient_id").to_numpy(zero_copy_only=False)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    glucose = pc.cast(table.column("glucose_mgdl"), pa.float64()).to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {str(ids[a]): GlucoseSeries(ts[a:b], glucose[a:b]) for a, b in zip(starts, ends)}


def combine(lake: GlucoseSeries | None, hot: GlucoseSeries | None, period: Period
            ) -> PeriodReadings:
    """The lake's readings, then the hot ones in ``period`` newer than the lake's newest."""
    lake = lake if lake is not None else GlucoseSeries.empty()
    hot = hot if hot is not None else GlucoseSeries.empty()
    newest = int(lake.ts_ms.max()) if len(lake.ts_ms) else period.start_ms - 1
    keep = (hot.ts_ms > newest) & (hot.ts_ms >= period.start_ms) & (hot.ts_ms < period.end_ms)
    ts = np.concatenate([lake.ts_ms, hot.ts_ms[keep]])
    order = np.argsort(ts, kind="stable")
    glucose = np.concatenate([lake.glucose_mgdl, hot.glucose_mgdl[keep]])
    return PeriodReadings(GlucoseSeries(ts[order], glucose[order]), len(lake.ts_ms),
                          int(keep.sum()))
