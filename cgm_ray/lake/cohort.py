"""``cgm-ray cohort``: per-patient metrics over the lake and cohort aggregates, with Ray Data.

One task per patient bucket reads that bucket's files for the date window and computes every
patient's metrics in place: the lake keeps a patient in a single bucket, so nothing is
shuffled. The driver joins patient attributes and aggregates by any of them (median, IQR and
the share of patients meeting each consensus target), and writes both back to the lake.
The lake's copy is in mg/dL; ``summary_in_units`` and ``cohort_table`` give what a person
asked to see, in mg/dL or mmol/L.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import group_readings
from cgm_ray.glucose.metrics import GLUCOSE_VALUED_METRICS, basic_metrics, glucose_metrics, range_text
from cgm_ray.glucose.targets import CONSENSUS_TARGETS, data_sufficient
from cgm_ray.glucose.units import UNITS_LABEL, GlucoseUnits, from_mgdl
from cgm_ray.lake.store import COHORT_DIR, Lake
from cgm_ray.lake.tasks import run_tasks

Panel = Literal["full", "simple"]
SIMPLE_COLUMNS = ("mean", "sd", "cv", "gmi", "in_range_70_180", "below_70", "below_54",
                  "above_180", "above_250")
SUMMARY_COLUMNS = ("mean", "gmi", "cv", "in_range_70_180", "below_70", "below_54", "above_180",
                   "above_250", "gri", "mage", "active_percent")


@dataclass(frozen=True)
class CohortResult:
    """Per-patient metrics, the JSON summary, and where both were written."""

    patients: pa.Table
    summary: dict
    location: str
    seconds: float


@dataclass(frozen=True)
class BucketTask:
    """One bucket's work: its files (full paths) and the window and panel to compute."""

    lake_uri: str
    paths: list[str]
    start_ms: int | None
    end_ms: int | None
    panel: Panel


def bucket_metrics(task: BucketTask) -> pa.Table:
    """Metrics of every patient in one bucket's files, one row per patient."""
    lake, start_ms, end_ms, panel = Lake(task.lake_uri), task.start_ms, task.end_ms, task.panel
    table = pq.read_table(task.paths, filesystem=lake.fs, partitioning=None,
                          columns=["patient_id", "ts", "glucose_mgdl"],
                          read_dictionary=["patient_id"])
    if start_ms is not None or end_ms is not None:
        ts_ms = table.column("ts").cast(pa.int64())
        table = table.filter(pc.and_(pc.greater_equal(ts_ms, start_ms or 0),
                                     pc.less(ts_ms, end_ms if end_ms is not None else 2 ** 62)))
    patient = table.column("patient_id").unify_dictionaries()
    names = patient.chunk(0).dictionary if patient.num_chunks else pa.array([], pa.string())
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in patient.chunks]
                           or [np.zeros(0, np.int32)])
    span = pa.table({"code": codes, "ts": table.column("ts")}).group_by("code").aggregate(
        [("ts", "min"), ("ts", "max"), ("ts", "count")]).sort_by("code")
    present = span.column("code").to_numpy()
    first_ms = span.column("ts_min").cast(pa.int64()).to_numpy()
    last_ms = span.column("ts_max").cast(pa.int64()).to_numpy()
    gl = table.column("glucose_mgdl").to_numpy()
    if panel == "full":
        order = np.argsort(codes, kind="stable")  # files: date order, sorted by (patient, ts)
        readings = group_readings(codes[order], table.column("ts").cast(pa.int64()).to_numpy()[order]
                                  * 1_000_000, gl[order])
        values = glucose_metrics(readings)
        present = np.asarray(readings.ids)  # the same codes, in the same (sorted) order
    else:
        values = {k: v[present] for k, v in basic_metrics(codes, gl, len(names)).items()
                  if k in SIMPLE_COLUMNS}
    return pa.table({
        "patient_id": names.take(pa.array(present, pa.int32())),
        "readings": span.column("ts_count"),
        "first_ts": span.column("ts_min"), "last_ts": span.column("ts_max"),
        "days": (last_ms - first_ms) / 86_400_000,
        **values,
    })


def run_cohort(lake: Lake, start: date | None = None, end: date | None = None,
               group_by: tuple[str, ...] = (), panel: Panel = "full",
               name: str | None = None) -> CohortResult:
    """Per-patient metrics for readings dated in [start, end] and cohort aggregates by attribute.

    Ray must be initialised. Writes ``cohort/<name>/patient_metrics.parquet`` and
    ``summary.json`` into the lake.
    """
    started = time.perf_counter()
    by_bucket = lake.files_by_bucket(start, end)
    if not by_bucket:
        raise ConfigError("lake", f"{lake.uri} has no readings between {start or 'the start'} "
                                  f"and {end or 'the end'}; run `cgm-ray etl` first")
    start_ms = _day_ms(start) if start else None
    end_ms = _day_ms(end + timedelta(days=1)) if end else None
    tasks = [BucketTask(lake.uri, paths, start_ms, end_ms, panel) for paths in by_bucket.values()]
    patients = pa.concat_tables(run_tasks(bucket_metrics, tasks)).sort_by("patient_id")
    patients = _with_attributes(patients, lake.patients(), group_by)
    summary = cohort_summary(patients, group_by, panel)
    summary.update(window={"start": start and start.isoformat(), "end": end and end.isoformat()},
                   lake_version=lake.snapshot().version)
    name = name or f"{start or 'all'}_{end or 'all'}_{panel}"
    folder = lake.path(COHORT_DIR, name)
    lake.fs.create_dir(folder, recursive=True)
    pq.write_table(patients, f"{folder}/patient_metrics.parquet", filesystem=lake.fs)
    lake.write_text(f"{folder}/summary.json", json.dumps(summary, indent=1))
    return CohortResult(patients, summary, folder, time.perf_counter() - started)


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _with_attributes(patients: pa.Table, attributes: pa.Table | None,
                     group_by: tuple[str, ...]) -> pa.Table:
    """Left-join patient attributes; every ``group_by`` column must exist."""
    available = [] if attributes is None else attributes.column_names
    missing = [g for g in group_by if g not in available]
    if missing:
        raise ConfigError("group_by", f"unknown patient attribute(s) {missing}; the lake has "
                                      f"{[c for c in available if c != 'patient_id'] or 'none'}")
    if attributes is None:
        return patients
    extra = [c for c in attributes.column_names if c not in patients.column_names]
    joined = patients.join(attributes.select(["patient_id", *extra]), "patient_id",
                           join_type="left outer")
    return joined.sort_by("patient_id")


def cohort_summary(patients: pa.Table, group_by: tuple[str, ...], panel: Panel) -> dict:
    """Median/IQR of the headline metrics and % meeting each target, overall and per group."""
    groups = {"all": {"all": _group_stats(patients, panel)}}
    for column in group_by:
        values = patients.column(column).cast(pa.string()).fill_null("unknown")
        groups[column] = {v: _group_stats(patients.filter(pc.equal(values, v)), panel)
                          for v in sorted(pc.unique(values).to_pylist())}
    return {"panel": panel, "patients": patients.num_rows,
            "readings": int(pc.sum(patients.column("readings")).as_py() or 0), "groups": groups}


def _group_stats(patients: pa.Table, panel: Panel) -> dict:
    cols = [c for c in SUMMARY_COLUMNS if c in patients.column_names]
    stats = {"patients": patients.num_rows, "metrics": {}}
    for c in cols:
        v = patients.column(c).to_numpy(zero_copy_only=False).astype(float)
        v = v[np.isfinite(v)]
        q25, q50, q75 = np.percentile(v, (25, 50, 75)) if len(v) else (np.nan,) * 3
        stats["metrics"][c] = {"median": _num(q50), "q25": _num(q25), "q75": _num(q75)}
    met = {}
    all_met = np.ones(patients.num_rows, bool)
    for t in CONSENSUS_TARGETS:
        ok = t.met(patients.column(t.column).to_numpy(zero_copy_only=False))
        all_met &= ok
        met[t.name] = _percent(ok)
    met["all"] = _percent(all_met)
    stats["targets_met_percent"] = met
    if panel == "full":
        stats["data_sufficient_percent"] = _percent(data_sufficient(
            patients.column("days").to_numpy(), patients.column("active_percent").to_numpy()))
    return stats


def _percent(mask: np.ndarray) -> float | None:
    return round(100.0 * float(mask.mean()), 2) if len(mask) else None


def _num(x: float) -> float | None:
    return round(float(x), 3) if np.isfinite(x) else None


SUMMARY_DECIMALS = 3  # the summary's statistics, in mg/dL; one more in mmol/L, 18 times smaller


def summary_in_units(summary: dict, units: GlucoseUnits) -> dict:
    """A copy of ``summary`` (``cohort_summary``'s, mg/dL) as shown in ``units``: the median,
    q25 and q75 of each of ``GLUCOSE_VALUED_METRICS`` converted (quantiles convert exactly),
    percentages as they are, and ``glucose_units`` saying which units it holds."""
    shown = copy.deepcopy(summary)
    decimals = SUMMARY_DECIMALS + (units == "mmol")
    for groups in shown["groups"].values():
        for stats in groups.values():
            for name, quantiles in stats["metrics"].items():
                if name in GLUCOSE_VALUED_METRICS:
                    quantiles.update({q: None if v is None else round(from_mgdl(v, units), decimals)
                                      for q, v in quantiles.items()})
    shown["glucose_units"] = UNITS_LABEL[units]
    return shown


COHORT_TABLE_COLUMNS = (("mean", "mean"), ("in_range_70_180", "TIR%"), ("below_70", "TBR%"),
                        ("above_180", "TAR%"), ("cv", "CV%"))


def cohort_table(summary: dict, units: GlucoseUnits = "mg/dl") -> str:
    """The cohort summary (``cohort_summary``'s, mg/dL) as a text table in ``units``: one line
    per group, medians and % meeting targets, then a line saying the units and ranges."""
    summary = summary_in_units(summary, units)
    head = f"{'group':<24} {'patients':>8} " + " ".join(f"{h:>7}" for _, h in COHORT_TABLE_COLUMNS)
    lines = [head + f" {'targets':>8}"]
    for column, groups in summary["groups"].items():
        for value, stats in groups.items():
            label = "all" if column == "all" else f"{column}={value}"
            cells = []
            for key, _ in COHORT_TABLE_COLUMNS:
                median = stats["metrics"].get(key, {}).get("median")
                cells.append(f"{median:>7.1f}" if median is not None else f"{'-':>7}")
            met = stats["targets_met_percent"]["all"]
            lines.append(f"{label:<24} {stats['patients']:>8} " + " ".join(cells)
                         + (f" {met:>7.1f}%" if met is not None else f" {'-':>8}"))
    lines.append(f"(mean glucose in {UNITS_LABEL[units]}; TIR {range_text('in_range_70_180', units)}, "
                 f"TBR {range_text('below_70', units)}, TAR {range_text('above_180', units)})")
    return "\n".join(lines)
