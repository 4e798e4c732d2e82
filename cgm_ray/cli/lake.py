"""``cgm-ray etl``, ``cohort``, ``report`` and ``export``: the lake's batch side."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from cgm_ray.cli.options import add_import_options, add_units_option
from cgm_ray.cli.ray_runtime import init_ray
from cgm_ray.errors import ConfigError
from cgm_ray.fs import open_filesystem
from cgm_ray.glucose.units import parse_units
from cgm_ray.lake.store import DEFAULT_BUCKETS, Lake

if TYPE_CHECKING:
    from cgm_ray.lake.treatments import Treatments

DEFAULT_LAKE = "out/lake"


def cmd_etl(args: argparse.Namespace) -> int:
    """Load the landing area (and any --import files) into the Parquet lake."""
    from cgm_ray.lake.etl import discover_inputs, run_etl
    from cgm_ray.lake.sources import ImportOptions

    options = ImportOptions(args.tz, args.patient)  # checked before anything is created
    lake = Lake(args.lake, args.buckets, create=True)
    inputs = discover_inputs(lake, args.imports, args.patients, options)
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
    documents = report.documents
    if documents.read or any(documents.in_lake.values()):
        run = [f"{documents.read:,} versions read",
               *(f"{n:,} {t} written" for t, n in documents.written.items()),
               *(f"{n:,} {t} deleted" for t, n in documents.deleted.items()),
               f"{documents.superseded:,} superseded", f"{documents.rejected:,} rejected"]
        print("  documents: " + ", ".join(f"{n:,} {t}" for t, n in documents.in_lake.items())
              + "; this run: " + ", ".join(run))
    for path, found in sorted(report.imports.items()):
        print(f"  imported {path}: {found.format}, glucose in {found.units_found}, patient(s) "
              f"{', '.join(found.patients) or '-'}, {found.readings:,} readings, "
              f"{found.treatments:,} treatments")
        for reason, count in sorted(found.notes.items()):
            print(f"    note: {count:,} {reason}")
    for reason, count in sorted(report.rejections.items()):
        print(f"  rejected rows: {count:,} {reason}")
    for reason, count in sorted(documents.rejections.items()):
        print(f"  rejected documents: {count:,} {reason}")
    for path, reason in sorted(report.files_rejected.items()):
        print(f"  REJECTED FILE {path}: {reason}")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    """Per-patient consensus metrics over the lake and cohort aggregates by attribute."""
    from cgm_ray.lake.cohort import cohort_table, run_cohort, summary_in_units

    units = parse_units(args.units)
    lake = Lake(args.lake)
    group_by = tuple(g for g in (args.group_by or "").split(",") if g)
    init_ray(args.address)
    result = run_cohort(lake, args.start, args.end, group_by, args.panel, args.name)
    shown = summary_in_units(result.summary, units)  # the lake's copy stays in mg/dL
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(shown, fh, indent=1)
    if args.json:
        print(json.dumps(shown))
        return 0
    print(cohort_table(result.summary, units))
    print(f"{result.summary['patients']:,} patients, {result.summary['readings']:,} readings "
          f"in {result.seconds:.1f} s; written to {result.location}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The AGP report of one patient, as HTML and PDF."""
    from cgm_ray.lake.report import render_report
    from cgm_ray.lake.treatments import lake_treatments

    units = parse_units(args.units)
    lake = Lake(args.lake)
    table = lake.patient_readings(args.patient, args.start, args.end)
    attributes = lake.patient_attributes(args.patient)
    time_ns = table.column("ts").cast(pa.int64()).to_numpy() * 1_000_000
    treatments = (patient_treatments(args.treatments, args.patient) if args.treatments
                  else lake_treatments(lake, args.patient))
    files = render_report(args.patient, time_ns, table.column("glucose_mgdl").to_numpy(),
                          args.out, attributes, treatments=treatments, units=units)
    print(f"report for {args.patient}: {files.html} and {files.pdf}")
    return 0


def patient_treatments(uri: str, patient_id: str) -> Treatments:
    """One patient's rows of a treatments file (``cgm-ray simulate``'s treatments.parquet)."""
    from cgm_ray.lake.sources import SourceError, read_table
    from cgm_ray.lake.treatments import simulated_treatments

    fs, path = open_filesystem(uri)
    try:
        return simulated_treatments(read_table(path, fs), patient_id)
    except SourceError as exc:
        raise ConfigError("--treatments", exc.reason) from None
    except ConfigError as exc:
        raise ConfigError("--treatments", f"{uri}: {exc.message}") from None


def cmd_export(args: argparse.Namespace) -> int:
    """Readings as JSON or Avro files, one per sensor, for sharing."""
    from cgm_ray.lake.exports import export_lake

    lake = Lake(args.lake)
    init_ray(args.address)
    n_files = export_lake(lake, args.out, args.format, args.start, args.end)
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
                     help="file or directory of CSV/JSON/NDJSON/Avro/Parquet/Arrow readings, or "
                          "of exports of Dexcom Clarity, LibreView, Tidepool, OhioT1DM, Nightscout")
    add_import_options(etl, "without: device-local files are refused")
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
    add_units_option(cohort, "mean glucose and MAGE printed and in the JSON summary")
    cohort.set_defaults(func=cmd_cohort)

    report = sub.add_parser("report", help="a patient's AGP report (HTML and PDF)",
                            description=cmd_report.__doc__)
    _add_common(report, ray=False)
    report.add_argument("--patient", required=True, help="patient id")
    report.add_argument("--out", default="out/reports", help="output directory")
    report.add_argument("--treatments", metavar="PATH",
                        help="treatments to mark and total, instead of the lake's Nightscout "
                             "treatments (cgm-ray simulate's treatments.parquet)")
    add_units_option(report, "report's glucose statistics, ranges and axes")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="readings as JSON or Avro, one file per sensor",
                            description=cmd_export.__doc__)
    _add_common(export)
    export.add_argument("--format", choices=("json", "avro"), default="json")
    export.add_argument("--out", required=True, help="output directory or URI")
    export.set_defaults(func=cmd_export)
