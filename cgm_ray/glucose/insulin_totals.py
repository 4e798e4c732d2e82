"""Insulin and carbohydrate by day: boluses, basal and carbs, totalled per UTC day.

Basal insulin is the programmed schedule, replaced by temporary basal rates while they run,
integrated over time, following Nightscout (``lib/profilefunctions.js`` getTempBasal and
``lib/data/ddata.js`` processDurations, cgm-remote-monitor 15):

- the schedule gives a rate from each local time of day (in the profile's time zone) until the
  next entry; before the first entry the first rate applies;
- a temporary basal runs from its start for its duration, cut short by the next temporary basal
  event, so one of duration 0 only ends the one running;
- its rate is its absolute rate when given, else the scheduled rate changed by its percent
  (-50: half), else the schedule's.

Pure functions of numpy arrays; times are epoch milliseconds UTC. Bolus and carbohydrate
amounts are counted in the day they were given; basal is split at midnight UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from cgm_ray.errors import ConfigError

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MIN = 60_000


@dataclass(frozen=True)
class BasalSchedule:
    """A pump's programmed basal rates by local time of day: ``rate_u_per_h[k]`` from
    ``start_s[k]`` seconds after local midnight (ascending) until the next entry."""

    start_s: np.ndarray
    rate_u_per_h: np.ndarray
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        start, rate = np.asarray(self.start_s), np.asarray(self.rate_u_per_h)
        if len(start) == 0 or len(start) != len(rate):
            raise ConfigError("basal", f"{len(start)} start times for {len(rate)} rates "
                                       "(at least one entry needed)")
        if np.any(np.diff(start) <= 0) or start[0] < 0 or start[-1] >= 86_400:
            raise ConfigError("basal.start_s", "times of day must ascend within [0, 86400)")
        if not np.all(np.isfinite(rate) & (rate >= 0)):
            raise ConfigError("basal.rate_u_per_h", "rates must be finite and >= 0")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("timezone", f"unknown time zone {self.timezone!r}") from None

    def pieces(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """(start_ms, rate_u_per_h) of the schedule's constant pieces over [start_ms, end_ms):
        each rate holds until the next piece starts; the first starts at or before ``start_ms``.

        Local times of day become instants in the profile's time zone, daylight saving
        included; one that a change skips or repeats takes the offset before the change
        (``fold=0``)."""
        zone = ZoneInfo(self.timezone)
        first = datetime.fromtimestamp(start_ms / 1000, zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end_ms / 1000, zone).date()
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        of_day = np.asarray(self.start_s).copy()
        of_day[0] = 0  # the first rate also runs from midnight to the first entry
        starts = np.array([_local_ms(day, int(s), zone) for day in days for s in of_day],
                          dtype=np.int64)
        rates = np.tile(np.asarray(self.rate_u_per_h, dtype=float), len(days))
        order = np.argsort(starts, kind="stable")
        return starts[order], rates[order]


def _local_ms(day: date, second_of_day: int, zone: ZoneInfo) -> int:
    clock = time(second_of_day // 3600, second_of_day // 60 % 60, second_of_day % 60)
    return round(datetime.combine(day, clock, tzinfo=zone).timestamp() * 1000)


@dataclass(frozen=True)
class TempBasals:
    """Temporary basal events (Nightscout ``Temp Basal`` treatments), in any order: the start,
    the duration programmed, and the rate as an absolute U/h or a change of the schedule in
    percent (NaN where not given)."""

    start_ms: np.ndarray
    duration_min: np.ndarray
    rate_u_per_h: np.ndarray
    rate_change_pct: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.start_ms)
        for name in ("duration_min", "rate_u_per_h", "rate_change_pct"):
            if len(getattr(self, name)) != n:
                raise ConfigError(name, f"{len(getattr(self, name))} values for {n} temp basals")
        if np.any(~np.isfinite(self.duration_min) | (np.asarray(self.duration_min) < 0)):
            raise ConfigError("duration_min", "durations must be finite and >= 0")

    @classmethod
    def none(cls) -> TempBasals:
        empty = np.zeros(0)
        return cls(np.zeros(0, dtype=np.int64), empty, empty, empty)

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(start_ms, end_ms, rate_u_per_h, rate_change_pct) of the temporary rates as they
        ran: sorted, each cut short by the next event, those left without time dropped."""
        order = np.argsort(self.start_ms, kind="stable")
        start = np.asarray(self.start_ms, dtype=np.int64)[order]
        end = start + np.round(np.asarray(self.duration_min)[order] * MS_PER_MIN).astype(np.int64)
        end[:-1] = np.minimum(end[:-1], start[1:])
        ran = end > start
        return (start[ran], end[ran], np.asarray(self.rate_u_per_h, dtype=float)[order][ran],
                np.asarray(self.rate_change_pct, dtype=float)[order][ran])


@dataclass(frozen=True)
class DailyTotals:
    """Insulin and carbohydrate of consecutive UTC days; basal is NaN when no schedule is known."""

    day_start_ms: np.ndarray
    bolus_u: np.ndarray
    basal_u: np.ndarray
    carbs_g: np.ndarray

    @property
    def days(self) -> int:
        return len(self.day_start_ms)

    @property
    def total_u(self) -> np.ndarray:
        """Total daily dose of each day: bolus + basal."""
        return self.bolus_u + self.basal_u

    def per_day(self, values: np.ndarray) -> float:
        """The mean over the days of one of the columns."""
        return float(np.sum(values) / self.days)

    @property
    def bolus_percent(self) -> float:
        """Bolus share of the total dose over all the days, % (basal's is the rest)."""
        total = float(np.sum(self.total_u))
        return 100.0 * float(np.sum(self.bolus_u)) / total if total > 0 else float("nan")


def basal_by_day(schedule: BasalSchedule, temps: TempBasals, first_day_ms: int,
                 days: int) -> np.ndarray:
    """Basal insulin (U) delivered in each of ``days`` UTC days from ``first_day_ms`` (a
    midnight): the schedule's rate, or the temporary one while it runs, integrated exactly."""
    end_ms = first_day_ms + days * MS_PER_DAY
    sched_start, sched_rate = schedule.pieces(first_day_ms, end_ms)
    temp_start, temp_end, temp_rate, temp_pct = temps.runs()
    cuts = np.concatenate([first_day_ms + MS_PER_DAY * np.arange(days + 1), sched_start,
                           temp_start, temp_end])
    cuts = np.unique(cuts[(cuts >= first_day_ms) & (cuts <= end_ms)])
    lo, hi = cuts[:-1], cuts[1:]
    mid = (lo + hi) / 2.0  # every piece has one scheduled rate and at most one temporary one
    scheduled = sched_rate[np.searchsorted(sched_start, mid, side="right") - 1]
    rate = scheduled.copy()
    if len(temp_start):
        k = np.searchsorted(temp_start, mid, side="right") - 1
        running = (k >= 0) & (mid < temp_end[np.maximum(k, 0)])
        k = k[running]
        changed = scheduled[running] * (100.0 + np.nan_to_num(temp_pct[k])) / 100.0
        rate[running] = np.where(np.isfinite(temp_rate[k]), temp_rate[k], changed)
    units = rate * (hi - lo) / MS_PER_HOUR
    return np.bincount((lo - first_day_ms) // MS_PER_DAY, weights=units, minlength=days)[:days]


def daily_totals(first_day_ms: int, days: int, bolus_ms: np.ndarray, bolus_u: np.ndarray,
                 carbs_ms: np.ndarray, carbs_g: np.ndarray, schedule: BasalSchedule | None,
                 temps: TempBasals) -> DailyTotals:
    """Bolus, basal and carbohydrate totals of ``days`` UTC days from ``first_day_ms`` (a
    midnight). Amounts outside the days are ignored; NaN amounts count as none. Basal is NaN
    without a ``schedule`` (temporary rates alone do not say what ran between them)."""
    if first_day_ms % MS_PER_DAY:
        raise ConfigError("first_day_ms", f"{first_day_ms} is not a midnight UTC")
    if days < 1:
        raise ConfigError("days", f"must be at least 1, got {days}")
    basal = (basal_by_day(schedule, temps, first_day_ms, days) if schedule is not None
             else np.full(days, np.nan))
    return DailyTotals(first_day_ms + MS_PER_DAY * np.arange(days, dtype=np.int64),
                       _by_day(bolus_ms, bolus_u, first_day_ms, days), basal,
                       _by_day(carbs_ms, carbs_g, first_day_ms, days))


def _by_day(time_ms: np.ndarray, amount: np.ndarray, first_day_ms: int, days: int) -> np.ndarray:
    day = (np.asarray(time_ms, dtype=np.int64) - first_day_ms) // MS_PER_DAY
    inside = (day >= 0) & (day < days)
    weights = np.nan_to_num(np.asarray(amount, dtype=float)[inside])
    return np.bincount(day[inside], weights=weights, minlength=days)
