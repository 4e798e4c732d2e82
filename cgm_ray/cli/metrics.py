"""``cgm-ray metrics INPUT --out OUT``: iglu's metrics for a CGM export, one row per subject.

INPUT is any format the lake reads (CSV, Parquet, JSON, Arrow, Avro) in iglu's layout
(columns ``id``, ``time``, ``gl`` in mg/dL; other columns are ignored); OUT is written as
CSV, Parquet or JSON (a list of row objects) by its extension. Naive times are wall-clock
times; tz-aware ones are taken in UTC.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import Readings, group_readings
from cgm_ray.glucose.metrics import glucose_metrics
from cgm_ray.lake.sources import SourceError, read_table

REQUIRED_COLUMNS = ("id", "time", "gl")
OUTPUT_FORMATS = (".csv", ".parquet", ".json")


def read_readings(path: str | Path) -> Readings:
    """Load an iglu-format CSV or Parquet file into grouped readings; ConfigError on bad input."""
    table = _read_table(Path(path))
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ConfigError(f"{path}: column {missing[0]}",
                          f"missing required column(s) {missing}; found {table.column_names}")
    ids = table.column("id").cast(pa.string()).to_numpy(zero_copy_only=False)
    try:
        gl = table.column("gl").cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"{path}: column gl", f"glucose must be numeric mg/dL ({exc})") from exc
    return group_readings(ids, _time_ns(table.column("time"), path), gl)


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise ConfigError(str(path), "input file not found")
    try:
        return read_table(str(path.resolve()), pafs.LocalFileSystem())
    except SourceError as exc:
        raise ConfigError(str(path), exc.reason) from None


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


def metrics_table(readings: Readings) -> pa.Table:
    """One row per subject: ``id`` then every metric column."""
    columns = {"id": readings.ids.astype(str), **glucose_metrics(readings)}
    return pa.table({name: pa.array(values) for name, values in columns.items()})


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


def run(input_path: str | Path, out: str | Path) -> pa.Table:
    """Compute the metrics of ``input_path`` and write them to ``out``; return the table."""
    _output_suffix(Path(out))  # fail before the work, not after it
    table = metrics_table(read_readings(input_path))
    write_table(table, out)
    return table


def cmd_metrics(args: argparse.Namespace) -> int:
    """Compute iglu's CGM metrics per subject of a CGM export (columns id, time, gl)."""
    table = run(args.input, args.out)
    print(f"wrote {table.num_rows} subject(s) x {table.num_columns - 1} metrics to {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``metrics`` on the ``cgm-ray`` parser."""
    metrics = sub.add_parser("metrics", help="iglu CGM metrics per subject of a CSV/Parquet export",
                             description=cmd_metrics.__doc__)
    metrics.add_argument("input", help="CSV or Parquet with columns id, time, gl (mg/dL)")
    metrics.add_argument("--out", required=True, help="output .csv, .parquet or .json")
    metrics.set_defaults(func=cmd_metrics)


__all__ = ["add_commands", "metrics_table", "read_readings", "run", "write_table"]
