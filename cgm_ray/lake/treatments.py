"""A patient's treatments for the doctor's report, from the lake's Nightscout tables or from a
simulation's ``treatments.parquet``: one ``Treatments`` either way, saying what it records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_DAY
from cgm_ray.glucose.insulin_totals import (
    MS_PER_DAY,
    BasalSchedule,
    DailyTotals,
    TempBasals,
    daily_totals,
)
from cgm_ray.lake.store import Lake

TEMP_BASAL = "Temp Basal"  # Nightscout's event types containing it set or end a temporary rate


@dataclass(frozen=True)
class Basal:
    """Basal insulin as recorded: the newest profile's schedule (None: the lake has no
    profile with one) and the temporary rates that replaced it."""

    schedule: BasalSchedule | None
    temps: TempBasals
    profile: str | None = None  # the schedule's profile name


@dataclass(frozen=True)
class Treatments:
    """What the patient did, where known: carbohydrate and boluses (marked on the daily
    profiles, totalled per day) and, when recorded, basal insulin."""

    time_ns: np.ndarray  # epoch ns UTC
    carbs_g: np.ndarray  # 0 or NaN where none
    insulin_u: np.ndarray  # bolus insulin; 0 or NaN where none
    hypo: np.ndarray | None = None  # carbohydrate taken to treat a low (None: not told apart)
    meals_recorded: bool = True  # False: the only carbohydrate recorded is hypo treatment
    basal: Basal | None = None  # None: basal insulin not recorded

    @property
    def bolus(self) -> np.ndarray:
        return np.nan_to_num(self.insulin_u) > 0

    @property
    def carbs(self) -> np.ndarray:
        return np.nan_to_num(self.carbs_g) > 0

    @property
    def rescue(self) -> np.ndarray:
        """Hypo treatments (none when the source does not tell them apart)."""
        return self.carbs & (self.hypo if self.hypo is not None else False)


def lake_treatments(lake: Lake, patient_id: str) -> Treatments | None:
    """The patient's treatments in the lake (None when it has none): boluses and carbohydrate
    of every treatment, temporary basal rates of the ``Temp Basal`` ones, and the basal
    schedule of its newest profile. Nightscout does not mark hypo treatments apart (AAPS
    records every carbohydrate entry as a ``Carb Correction``), so none are flagged."""
    snapshot = lake.snapshot()
    rows = lake.patient_documents("treatments", patient_id, snapshot)
    if rows.num_rows == 0:
        return None
    time_ms = rows["ts"].cast(pa.int64()).to_numpy()
    temp = pc.fill_null(pc.match_substring(rows["event_type"], TEMP_BASAL), False).to_numpy(
        zero_copy_only=False)
    temps = TempBasals(time_ms[temp], _floats(rows, "duration_min", temp, fill=0.0),
                       _floats(rows, "rate_u_per_h", temp), _floats(rows, "rate_change_pct", temp))
    profiles = lake.patient_documents("profiles", patient_id, snapshot)
    schedule, name = None, None
    if profiles.num_rows:
        newest = profiles.slice(profiles.num_rows - 1).to_pylist()[0]  # sorted by time
        if newest["basal"]:
            schedule = BasalSchedule(np.array([e["start_s"] for e in newest["basal"]]),
                                     np.array([e["rate_u_per_h"] for e in newest["basal"]]),
                                     newest["timezone"] or "UTC")
            name = newest["default_profile"]
    everything = np.ones(rows.num_rows, dtype=bool)
    return Treatments(time_ms * 1_000_000, _floats(rows, "carbs_g", everything),
                      _floats(rows, "insulin_u", everything), basal=Basal(schedule, temps, name))


def _floats(rows: pa.Table, column: str, keep: np.ndarray, fill: float = np.nan) -> np.ndarray:
    values = rows[column].to_numpy(zero_copy_only=False).astype(float)[keep]
    return np.where(np.isnan(values), fill, values)


SIMULATED_COLUMNS = ("patient_id", "ts_ms", "kind", "carbs_g", "insulin_u")


def simulated_treatments(table: pa.Table, patient_id: str) -> Treatments:
    """One patient's rows of a simulation's treatments (``TREATMENT_SCHEMA``: hypo rescue
    carbohydrate and boluses; meals and basal are not recorded there)."""
    missing = [c for c in SIMULATED_COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError("treatments", f"missing column(s) {missing}")
    rows = table.filter(pc.equal(table.column("patient_id").cast(pa.string()), patient_id))
    kind = rows.column("kind").to_numpy(zero_copy_only=False).astype(str)
    return Treatments(rows.column("ts_ms").cast(pa.int64()).to_numpy() * 1_000_000,
                      rows.column("carbs_g").cast(pa.float64()).to_numpy(zero_copy_only=False),
                      rows.column("insulin_u").cast(pa.float64()).to_numpy(zero_copy_only=False),
                      hypo=kind == "hypo_carbs", meals_recorded=False)


def daily_insulin(treatments: Treatments, first_ns: int, last_ns: int) -> DailyTotals | None:
    """Insulin and carbohydrate per UTC day over the days with a treatment record (a bolus,
    carbohydrate or temporary basal) between the first and the last of them inside the
    report's days (those of ``first_ns`` to ``last_ns``): days before the records start or
    after they stop are not counted as days without insulin. None without such records."""
    temps = treatments.basal.temps if treatments.basal is not None else TempBasals.none()
    days = np.concatenate([treatments.time_ns // NS_PER_DAY,
                           np.asarray(temps.start_ms, dtype=np.int64) // MS_PER_DAY])
    days = days[(days >= first_ns // NS_PER_DAY) & (days <= last_ns // NS_PER_DAY)]
    if not len(days):
        return None
    schedule = treatments.basal.schedule if treatments.basal is not None else None
    time_ms = treatments.time_ns // 1_000_000
    return daily_totals(int(days.min()) * MS_PER_DAY, int(days.max() - days.min()) + 1,
                        time_ms, treatments.insulin_u, time_ms, treatments.carbs_g, schedule, temps)
