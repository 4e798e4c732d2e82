"""Simulator output as Arrow tables: readings, true-glucose traces and who was simulated.

The schemas are the base package's (``cgm_ray.schema``); this module fills them from the
engine's arrays, so the base never imports the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cgm_ray.schema import READING_SCHEMA, TRACE_SCHEMA, TREATMENT_SCHEMA
from simulators.engine import Simulation, Step
from simulators.integrator import HYPO_BELOW_MGDL
from simulators.population import Cohort
from simulators.sensor import Readings

OUTPUT_FILES = ("patients", "readings", "treatments")  # <name>.parquet, what the lake and reports read


def sensor_ids(sensor_model: str, keys: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Serial of each sensor: model, patient key and how many sensors came before."""
    return np.char.add(np.char.add(f"{sensor_model}-", keys.astype(str)),
                       np.char.add("-", session.astype(str)))


class ReadingEncoder:
    """Turns one simulation's readings into ``READING_SCHEMA`` tables, chunk after chunk.

    The patient-name dictionary is built once and each patient's current sensor serial is
    cached, so a chunk only formats the serials of sensors that changed since the last
    one (string formatting was ~40% of a fleet shard's time at 5-minute windows).
    """

    def __init__(self, cohort: Cohort, start_ms: int, sensor_model: str) -> None:
        self.start_ms, self.sensor_model, self.keys = start_ms, sensor_model, cohort.keys
        self.names = pa.array(cohort.names, pa.string())
        self._session = np.full(len(cohort), -1, np.int64)
        self._serial = np.empty(len(cohort), dtype=object)

    def table(self, readings: Readings) -> pa.Table:
        pair = readings.patient * (1 << 20) + readings.session
        uniq, inverse = np.unique(pair, return_inverse=True)
        patient, session = uniq >> 20, uniq & ((1 << 20) - 1)
        serial = self._serial[patient]
        stale = self._session[patient] != session
        if stale.any():
            serial[stale] = sensor_ids(self.sensor_model, self.keys[patient[stale]], session[stale])
            self._serial[patient[stale]] = serial[stale]  # a patient's latest session wins
            self._session[patient[stale]] = session[stale]
        return pa.table([
            pa.DictionaryArray.from_arrays(pa.array(readings.patient.astype(np.int32)), self.names),
            pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)),
                                           pa.array(serial, pa.string())),
            pa.array(self.start_ms + readings.minute * 60_000, pa.int64()),
            pa.array(readings.glucose_mgdl, pa.float32()),
            pa.array(readings.range_flag, pa.int8()),
        ], schema=READING_SCHEMA)


def readings_table(readings: Readings, cohort: Cohort, start_ms: int,
                   sensor_model: str) -> pa.Table:
    """One chunk of readings as an Arrow table (see ``ReadingEncoder`` for many chunks)."""
    return ReadingEncoder(cohort, start_ms, sensor_model).table(readings)


def trace_table(cohort: Cohort, t0: int, gsub_mgdl: np.ndarray, bg_mgdl: np.ndarray) -> pa.Table:
    """Per-minute true glucose of a chunk starting at minute ``t0``, one row per patient-minute."""
    n, n_min = gsub_mgdl.shape
    return pa.table([
        pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(n, dtype=np.int32), n_min)),
                                       pa.array(cohort.names)),
        pa.array(np.tile(np.arange(t0, t0 + n_min, dtype=np.int64), n)),
        pa.array(gsub_mgdl.ravel()), pa.array(bg_mgdl.ravel()),
    ], schema=TRACE_SCHEMA)


def patients_table(sim: Simulation) -> pa.Table:
    """Who was simulated: attributes, therapy and each patient's sampled habits (carb-count
    error, missed boluses, ...; ``PatientBehaviour.table``), one row per patient."""
    c = sim.cohort
    habits = sim.behaviour.table() if sim.behaviour is not None else {}
    return pa.table({
        "patient_id": list(c.names), "patient_key": c.keys, "age_group": list(c.age_group),
        "age_years": c.age_years, "weight_kg": c.params["BW"], "model": [sim.model.name] * len(c),
        "sensor_model": [sim.sensor.name] * len(c), "carb_ratio_g_per_u": c.cr_g_per_u,
        "correction_factor_mgdl_per_u": c.cf_mgdl_per_u,
        "basal_u_per_h": sim.basal_u_per_min * 60.0,
        "treats_lows_below_mgdl": sim.behaviour_rows[:, HYPO_BELOW_MGDL],
        **habits,
    })


def treatments_table(step: Step, cohort: Cohort, start_ms: int) -> pa.Table:
    """The hypo rescues and boluses of one step as ``TREATMENT_SCHEMA`` rows."""
    names = np.asarray(cohort.names, dtype=object)
    parts = []
    if step.rescues is not None and len(step.rescues):
        r = step.rescues
        parts.append(pa.table({
            "patient_id": pa.array(names[r.patient], pa.string()),
            "ts_ms": start_ms + r.minute * 60_000, "kind": ["hypo_carbs"] * len(r),
            "carbs_g": r.grams, "insulin_u": pa.nulls(len(r), pa.float64()),
            "correction": pa.nulls(len(r), pa.bool_())}, schema=TREATMENT_SCHEMA))
    b = step.boluses
    if b is not None and len(b.minute):
        parts.append(pa.table({
            "patient_id": pa.array(names[b.patient], pa.string()),
            "ts_ms": start_ms + b.minute * 60_000, "kind": ["bolus"] * len(b.minute),
            "carbs_g": pa.nulls(len(b.minute), pa.float64()), "insulin_u": b.units,
            "correction": b.correct}, schema=TREATMENT_SCHEMA))
    return pa.concat_tables(parts) if parts else TREATMENT_SCHEMA.empty_table()


class OutputWriter:
    """A simulation's outputs in a folder, as ``cgm-ray simulate`` writes them and ``cgm-ray etl``
    and ``report --treatments`` read them: ``patients.parquet`` at once, then ``readings.parquet``,
    ``treatments.parquet`` and (``trace``) ``trace.parquet`` one step at a time.
    """

    def __init__(self, sim: Simulation, start_ms: int, out: Path, trace: bool = False) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.sim, self.start_ms = sim, start_ms
        names = OUTPUT_FILES + (("trace",) if trace else ())
        self.files = [out / f"{name}.parquet" for name in names]
        pq.write_table(patients_table(sim), self.files[0])
        self.encoder = ReadingEncoder(sim.cohort, start_ms, sim.sensor.name)
        self.readings = pq.ParquetWriter(self.files[1], READING_SCHEMA)
        self.treatments = pq.ParquetWriter(self.files[2], TREATMENT_SCHEMA)
        self.trace = pq.ParquetWriter(self.files[3], TRACE_SCHEMA) if trace else None
        self.n_readings = 0

    def write(self, step: Step) -> None:
        """Append one step (its true glucose only when it was traced and the writer traces)."""
        self.readings.write_table(self.encoder.table(step.readings))
        self.n_readings += len(step.readings)
        self.treatments.write_table(treatments_table(step, self.sim.cohort, self.start_ms))
        if self.trace is not None:
            self.trace.write_table(trace_table(self.sim.cohort, step.t0, step.gsub_mgdl, step.bg_mgdl))

    def close(self) -> None:
        for writer in (self.readings, self.treatments, self.trace):
            if writer is not None:
                writer.close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
