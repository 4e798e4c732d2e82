"""``cgm-ray etl``, ``cohort``, ``report`` and ``export``: the lake's batch side."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from cgm_ray.errors import ConfigError
from cgm_ray.fs import open_filesystem
from cgm_ray.lake import DEFAULT_BUCKETS, Lake
from cgm_ray.ray_runtime import init_ray, configure_ray_data

DEFAULT_LAKE = "out/lake"
COHORT_TABLE_COLUMNS = (("mean", "mean"), ("in_range_70_180", "TIR%"), ("below_70", "TBR%"),
                        ("above_180", "TAR%"), ("cv", "CV%"))


def cmd_etl(args: argparse.Namespace) -> int:
    """Load the landing area (and any --import files) into the Parquet lake."""
    from cgm_ray.etl import discover_inputs, run_etl

    lake = Lake(args.lake, args.buckets, create=True)
    inputs = discover_inputs(lake, args.imports, args.patients)
    init_ray(args.address)
    report = run_etl(lake, inputs, compact=args.compact,
                     progress=(lambda _: None) if args.json else _stderr)
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    print(f"lake {lake.uri} version {report.version}: {report.lake_rows:,} readings, "
          f"{report.patients:,} patients with attributes")
    print(f"  this run: {report.inputs_loaded} files loaded ({report.inputs_skipped} already in "
          f"the lake), {report.readings_added:,} readings added, {report.duplicates:,} duplicates "
          f"skipped, {report.rows_rejected:,} rows rejected, {report.files_written} files "
          f"written, {report.files_compacted} compacted, {report.seconds:.1f} s")
    for reason, count in sorted(report.rejections.items()):
        print(f"  rejected rows: {count:,} {reason}")
    for path, reason in sorted(report.files_rejected.items()):
        print(f"  REJECTED FILE {path}: {reason}")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    """Per-patient consensus metrics over the lake and cohort aggregates by attribute."""
    from cgm_ray.cohort import run_cohort

    lake = Lake(args.lake)
    group_by = tuple(g for g in (args.group_by or "").split(",") if g)
    init_ray(args.address)
    result = run_cohort(lake, args.start, args.end, group_by, args.panel, args.name)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result.summary, fh, indent=1)
    if args.json:
        print(json.dumps(result.summary))
        return 0
    print(format_cohort_table(result.summary))
    print(f"{result.summary['patients']:,} patients, {result.summary['readings']:,} readings "
          f"in {result.seconds:.1f} s; written to {result.location}")
    return 0


def format_cohort_table(summary: dict) -> str:
    """The cohort summary as a text table: one line per group, medians and % meeting targets."""
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
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    """The AGP report of one patient, as HTML and PDF."""
    from cgm_ray.report import render_report

    lake = Lake(args.lake)
    table = patient_readings(lake, args.patient, args.start, args.end)
    attributes = _attributes_of(lake, args.patient)
    time_ns = table.column("ts").cast(pa.int64()).to_numpy() * 1_000_000
    files = render_report(args.patient, time_ns, table.column("glucose_mgdl").to_numpy(),
                          args.out, attributes)
    print(f"report for {args.patient}: {files.html} and {files.pdf}")
    return 0


def patient_readings(lake: Lake, patient_id: str, start: date | None = None,
                     end: date | None = None) -> pa.Table:
    """One patient's readings from the lake, sorted by time (reads only its bucket)."""
    bucket = int(lake.bucket_of(pa.array([patient_id]))[0])
    files = lake.readings_files(start, end, buckets={bucket})
    table = lake.read([lake.path(f.path) for f in files]) if files else None
    if table is not None:
        table = table.filter(pc.equal(table.column("patient_id"), patient_id))
    if table is None or table.num_rows == 0:
        raise ConfigError("patient", f"no readings of patient {patient_id!r} in {lake.uri}"
                                     + (f" between {start} and {end}" if start or end else ""))
    return table.sort_by("ts")


def _attributes_of(lake: Lake, patient_id: str) -> dict:
    patients = lake.patients()
    if patients is None:
        return {}
    rows = patients.filter(pc.equal(patients.column("patient_id"), patient_id)).to_pylist()
    return {k: v for k, v in rows[0].items() if k != "patient_id"} if rows else {}


def cmd_export(args: argparse.Namespace) -> int:
    """Readings as JSON or Avro files, one per sensor, for sharing."""
    from cgm_ray.exports import write_sensor_exports

    lake = Lake(args.lake)
    files = lake.readings_files(args.start, args.end)
    if not files:
        raise ConfigError("lake", f"{lake.uri} has no readings in that window")
    out_fs, out_root = open_filesystem(args.out)
    out_fs.create_dir(out_root, recursive=True)
    init_ray(args.address)
    import ray

    by_bucket: dict[int, list[str]] = {}
    for f in files:
        by_bucket.setdefault(f.bucket, []).append(lake.path(f.path))

    def export_bucket(row: dict) -> dict:
        written = write_sensor_exports(lake.read(row["paths"]), out_root, args.format, out_fs)
        return {"files": len(written)}

    configure_ray_data()
    ds = ray.data.from_items([{"paths": p} for p in by_bucket.values()],
                             override_num_blocks=len(by_bucket))
    n_files = sum(r["files"] for r in ds.map(export_bucket).take_all())
    print(f"exported {n_files:,} sensors as {args.format} into {args.out}")
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _add_common(p: argparse.ArgumentParser, window: bool = True, ray: bool = True,
                json_help: str | None = None) -> None:
    """The lake, and where relevant the date window, the Ray address and ``--json``."""
    p.add_argument("--lake", default=DEFAULT_LAKE, help="lake path or URI (s3://...)")
    if window:
        p.add_argument("--start", type=_date, help="first date (UTC, YYYY-MM-DD), inclusive")
        p.add_argument("--end", type=_date, help="last date (UTC, YYYY-MM-DD), inclusive")
    if ray:
        p.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    if json_help:
        p.add_argument("--json", action="store_true", help=json_help)


def add_commands(sub: argparse._SubParsersAction) -> None:
    etl = sub.add_parser("etl", help="load landing files and imports into the lake",
                         description=cmd_etl.__doc__)
    _add_common(etl, window=False, json_help="print the run report as JSON")
    etl.add_argument("--import", dest="imports", action="append", default=[], metavar="PATH",
                     help="file or directory of CSV/JSON/NDJSON/Avro/Parquet/Arrow readings")
    etl.add_argument("--patients", action="append", default=[], metavar="PATH",
                     help="patient attribute table (Parquet/CSV/JSON lines with patient_id)")
    etl.add_argument("--compact", action="store_true",
                     help="merge every partition's files into one")
    etl.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS,
                     help="patient buckets of a new lake (fixed once created)")
    etl.set_defaults(func=cmd_etl)

    cohort = sub.add_parser("cohort", help="per-patient metrics and cohort aggregates",
                            description=cmd_cohort.__doc__)
    _add_common(cohort, json_help="print the summary as JSON")
    cohort.add_argument("--group-by", help="patient attributes, comma separated (age_group,...)")
    cohort.add_argument("--panel", choices=("full", "simple"), default="full",
                        help="full consensus/iglu panel, or mean/SD/CV/ranges only")
    cohort.add_argument("--name", help="name of the result folder under <lake>/cohort/")
    cohort.add_argument("--out", help="also write the JSON summary here")
    cohort.set_defaults(func=cmd_cohort)

    report = sub.add_parser("report", help="a patient's AGP report (HTML and PDF)",
                            description=cmd_report.__doc__)
    _add_common(report, ray=False)
    report.add_argument("--patient", required=True, help="patient id")
    report.add_argument("--out", default="out/reports", help="output directory")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="readings as JSON or Avro, one file per sensor",
                            description=cmd_export.__doc__)
    _add_common(export)
    export.add_argument("--format", choices=("json", "avro"), default="json")
    export.add_argument("--out", required=True, help="output directory or URI")
    export.set_defaults(func=cmd_export)
