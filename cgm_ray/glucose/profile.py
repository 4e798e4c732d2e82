"""A patient's glucose over a period as the web app's history view draws it: the consensus
panel, the ambulatory glucose profile (AGP) and the daily profiles, in the viewer's time zone.

Pure (numpy, Arrow's time-zone kernels). The AGP pools days by local time of day, as the AGP
report does for the clinic's zone; the panel is the doctor's report's (``glucose_metrics``),
so the page and the report show the same numbers for the same readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_DAY, day_grid, group_readings
from cgm_ray.glucose.metrics import AGP_PERCENTILES, agp_percentiles, glucose_metrics
from cgm_ray.glucose.targets import CONSENSUS_TARGETS

MS_PER_DAY = NS_PER_DAY // 1_000_000
DAILY_PROFILE_DAYS = 14  # the AGP report's daily profiles: its last two weeks
PANEL = ("mean", "sd", "cv", "gmi", "in_range_70_180", "below_54", "below_70", "above_180",
         "above_250", "active_percent", "gri")


@dataclass(frozen=True)
class DayProfile:
    """One local calendar day: its readings' UTC times and their local minute of the day."""

    date: str  # ISO local date
    ts_ms: np.ndarray
    minute_of_day: np.ndarray
    glucose_mgdl: np.ndarray


@dataclass(frozen=True)
class GlucoseProfile:
    """The history view of one period: panel (``PANEL``, NaN where undefined), the targets
    missed, the AGP percentiles (``AGP_PERCENTILES``) by local minute of day, the newest days."""

    readings: int
    days: int  # local calendar days with readings
    panel: dict[str, float]
    targets_missed: list[str]
    agp_minute_of_day: np.ndarray
    agp_mgdl: np.ndarray  # [slot, percentile]
    daily: list[DayProfile]


def local_ms(ts_ms: np.ndarray, tz: str) -> np.ndarray:
    """UTC epoch milliseconds as the wall-clock milliseconds of zone ``tz`` (IANA name);
    ConfigError naming ``tz`` when the zone is unknown."""
    stamps = pa.array(np.asarray(ts_ms, dtype=np.int64), pa.timestamp("ms", tz="UTC"))
    try:
        local = pc.local_timestamp(stamps.cast(pa.timestamp("ms", tz=tz)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError("tz", f"unknown time zone {tz[:60]!r} ({exc})") from None
    return local.cast(pa.int64()).to_numpy()


def glucose_profile(ts_ms: np.ndarray, glucose_mgdl: np.ndarray, tz: str = "UTC",
                    daily_days: int = DAILY_PROFILE_DAYS) -> GlucoseProfile:
    """The history view of one patient's readings (``ts_ms`` UTC, any order; non-finite
    glucose dropped). ConfigError when fewer than 2 distinct reading times remain."""
    readings = group_readings(np.zeros(len(ts_ms), dtype=np.int64),
                              np.asarray(ts_ms, dtype=np.int64) * 1_000_000, glucose_mgdl)
    t_ms, g = readings.time_ns // 1_000_000, readings.gl_mgdl
    if len(t_ms) < 2 or t_ms[0] == t_ms[-1]:
        raise ConfigError("period", "fewer than two readings in the period")
    metrics = glucose_metrics(readings)
    panel = {name: float(metrics[name][0]) for name in PANEL}
    missed = [t.name for t in CONSENSUS_TARGETS if not t.met(metrics[t.column])[0]]
    wall_ms = local_ms(t_ms, tz)
    minute, agp = agp_percentiles(day_grid(wall_ms * 1_000_000, g))
    day = wall_ms // MS_PER_DAY
    days = np.unique(day)
    daily = []
    for d in days[-daily_days:]:
        sel = day == d
        daily.append(DayProfile(str(np.datetime64(int(d), "D")), t_ms[sel],
                                (wall_ms[sel] - d * MS_PER_DAY) / 60_000.0, g[sel]))
    return GlucoseProfile(len(t_ms), len(days), panel, missed, minute, agp, daily)


__all__ = ["AGP_PERCENTILES", "DAILY_PROFILE_DAYS", "PANEL", "DayProfile", "GlucoseProfile",
           "glucose_profile", "local_ms"]
