"""``cgm-ray metrics INPUT --out OUT``: iglu's metrics for a CGM export, one row per subject.

INPUT is any format the lake reads (CSV, Parquet, JSON, Arrow, Avro) in iglu's layout
(columns ``id``, ``time``, ``gl`` in mg/dL; other columns are ignored), or a vendor export the
lake recognises (Dexcom Clarity, LibreView, Tidepool, OhioT1DM, Nightscout dump; read by
``cgm_ray.lake.readers`` into mg/dL, one subject per patient, a reading delivered twice counted
once). OUT is written as CSV, Parquet or JSON (a list of row objects) by its extension.
Naive times are wall-clock times, and so are an export's device-local times unless ``--tz``
names their zone (then they are converted to UTC, daylight-saving changes resolved);
tz-aware ones are taken in UTC. ``--patient`` names the subject of an export's readings.
``--units mmol/L`` writes the glucose-valued metrics (``GLUCOSE_VALUED_METRICS``: mean, median,
SD, MAGE, MODD, CONGA) in mmol/L, the others as they are; the column names do not change.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.cli.options import add_import_options, add_units_option
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import Readings, group_readings
from cgm_ray.glucose.metrics import glucose_metrics, metrics_in_units
from cgm_ray.glucose.units import UNITS_LABEL, GlucoseUnits, parse_units
from cgm_ray.lake.readers import expected_formats
from cgm_ray.lake.sources import (
    ImportOptions,
    SourceError,
    SourceRows,
    detect_export,
    distinct_readings,
    read_source,
    read_table,
)

REQUIRED_COLUMNS = ("id", "time", "gl")
OUTPUT_FORMATS = (".csv", ".parquet", ".json")


@dataclass(frozen=True)
class MetricsInput:
    """An input's readings for the metrics, and what reading it found: the format or column
    convention, the glucose units, rows rejected and notes (by reason), duplicates dropped."""

    readings: Readings
    format: str = "iglu"
    units_found: str = "mg/dL"
    rejections: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0


def read_readings(path: str | Path, tz: str | None = None, patient: str | None = None) -> Readings:
    """Load an iglu-layout file or a vendor export into grouped readings; ConfigError on bad input."""
    return load_input(path, tz, patient).readings


def load_input(path: str | Path, tz: str | None = None, patient: str | None = None) -> MetricsInput:
    """The readings of ``path`` (see the module's description) and what was found reading it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "input file not found")
    options = ImportOptions(tz, patient)
    fs, full = pafs.LocalFileSystem(), str(path.resolve())
    try:
        if detect_export(full, fs) is not None:
            return _export_input(read_source(full, fs, "import", ImportOptions(tz or "UTC", patient)))
        table = read_table(full, fs)
    except SourceError as exc:
        raise ConfigError(str(path), exc.reason) from None
    return MetricsInput(_iglu_readings(table, path, options.patient_id))


def _iglu_readings(table: pa.Table, path: Path, patient: str | None) -> Readings:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if len(missing) == len(REQUIRED_COLUMNS):
        raise ConfigError(str(path), f"no known glucose columns: expected iglu's {list(REQUIRED_COLUMNS)} "
                                     f"or an export of {expected_formats()}; found {table.column_names}")
    if missing:
        raise ConfigError(f"{path}: column {missing[0]}",
                          f"missing required column(s) {missing}; found {table.column_names}")
    ids = table.column("id").cast(pa.string()).to_numpy(zero_copy_only=False)
    if patient is not None:
        ids = np.full(len(ids), patient)
    try:
        gl = table.column("gl").cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"{path}: column gl", f"glucose must be numeric mg/dL ({exc})") from exc
    return group_readings(ids, _time_ns(table.column("time"), path), gl)


def _export_input(rows: SourceRows) -> MetricsInput:
    """A vendor export's lake rows as readings: one reading per sensor and time, by patient."""
    table = distinct_readings(rows.table)
    readings = group_readings(table.column("patient_id").to_numpy(zero_copy_only=False),
                              table.column("ts").cast(pa.int64()).to_numpy() * 1_000_000,
                              table.column("glucose_mgdl").to_numpy().astype(np.float64))
    return MetricsInput(readings, rows.format, rows.units_found, rows.rejections, rows.notes,
                        rows.table.num_rows - table.num_rows)


def _time_ns(column: pa.ChunkedArray, path: str | Path) -> np.ndarray:
    """Times as int64 ns; strings must be ISO-like ("2015-06-06 16:50:27")."""
    if pa.types.is_timestamp(column.type):
        times = column.cast(pa.timestamp("ns", tz=column.type.tz))
    else:
        try:
            times = pc.cast(column.cast(pa.string()), pa.timestamp("ns"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConfigError(f"{path}: column time", f"unparsable time ({exc})") from exc
    if times.null_count:
        raise ConfigError(f"{path}: column time", f"{times.null_count} missing time value(s)")
    return times.cast(pa.int64()).to_numpy()


def metrics_table(readings: Readings, units: GlucoseUnits = "mg/dl") -> pa.Table:
    """One row per subject: ``id`` then every metric column, glucose-valued ones in ``units``
    (named in the schema's metadata as ``glucose_units``, which Parquet keeps)."""
    columns = {"id": readings.ids.astype(str), **metrics_in_units(glucose_metrics(readings), units)}
    return pa.table({name: pa.array(values) for name, values in columns.items()},
                    metadata={"glucose_units": UNITS_LABEL[units]})


def write_table(table: pa.Table, out: str | Path) -> None:
    """Write by extension: .csv, .parquet or .json (a list of objects; NaN as null)."""
    out = Path(out)
    suffix = _output_suffix(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        pacsv.write_csv(table, out)
    elif suffix == ".parquet":
        pq.write_table(table, out)
    else:
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in table.to_pylist()]
        out.write_text(json.dumps(rows, indent=1) + "\n")


def _output_suffix(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError("--out", f"unknown output extension {suffix!r}: use one of {OUTPUT_FORMATS}")
    return suffix


def run(input_path: str | Path, out: str | Path, tz: str | None = None,
        patient: str | None = None, units: GlucoseUnits = "mg/dl") -> pa.Table:
    """Compute the metrics of ``input_path`` and write them to ``out`` (glucose-valued ones in
    ``units``); return the table."""
    return _run(input_path, out, tz, patient, units)[0]


def _run(input_path: str | Path, out: str | Path, tz: str | None, patient: str | None,
         units: GlucoseUnits) -> tuple[pa.Table, MetricsInput]:
    _output_suffix(Path(out))  # fail before the work, not after it
    found = load_input(input_path, tz, patient)
    table = metrics_table(found.readings, units)
    write_table(table, out)
    return table, found


def cmd_metrics(args: argparse.Namespace) -> int:
    """Compute iglu's CGM metrics per subject of a CGM export (columns id, time, gl) or of a
    vendor export (Dexcom Clarity, LibreView, Tidepool, OhioT1DM, Nightscout dump)."""
    units = parse_units(args.units)
    table, found = _run(args.input, args.out, args.tz, args.patient, units)
    print(f"read {args.input}: {found.format}, glucose in {found.units_found}, "
          f"{len(found.readings.gl_mgdl):,} readings ({found.duplicates:,} duplicates dropped)")
    for kind, counts in (("rejected rows", found.rejections), ("note", found.notes)):
        for reason, count in sorted(counts.items()):
            print(f"  {kind}: {count:,} {reason}")
    print(f"wrote {table.num_rows} subject(s) x {table.num_columns - 1} metrics to {args.out} "
          f"(glucose values in {UNITS_LABEL[units]})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``metrics`` on the ``cgm-ray`` parser."""
    metrics = sub.add_parser("metrics", help="iglu CGM metrics per subject of a CGM export",
                             description=cmd_metrics.__doc__)
    metrics.add_argument("input", help="CSV/Parquet/JSON with columns id, time, gl (mg/dL), or a "
                                       "Clarity, LibreView, Tidepool, OhioT1DM or Nightscout export")
    metrics.add_argument("--out", required=True, help="output .csv, .parquet or .json")
    add_import_options(metrics, "without: kept as wall-clock times")
    add_units_option(metrics, "glucose-valued metrics (mean, median, SD, MAGE, MODD, CONGA)")
    metrics.set_defaults(func=cmd_metrics)


__all__ = ["MetricsInput", "add_commands", "load_input", "metrics_table", "read_readings", "run",
           "write_table"]
