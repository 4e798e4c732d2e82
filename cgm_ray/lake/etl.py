"""``cgm-ray etl``: load landing files and imports into the lake, as a two-stage Ray Data job.

Stage 1 (one task per group of input files) reads and validates each file into LAKE_SCHEMA
rows (or, for Nightscout documents, typed versions per document table) and writes them to
staging, split by table and patient bucket. Stage 2 (one task per bucket)
deduplicates the staged rows on (sensor_id, ts), drops those already in the lake, and writes
one new sorted file per (bucket, date) partition, merging a partition's files into one when
it has too many (compaction). The driver then commits a snapshot naming the new files and the
inputs consumed. A run that dies before the commit changes nothing and the next run redoes
it; inputs already committed (same path, size and mtime) are skipped; so running twice or
crashing mid-run never loses or duplicates a reading. The exchange between the stages goes
through the lake's filesystem, not Ray Data's shuffle (slow for this, see ray-notes).
Documents take their own stage 2 (``cgm_ray.lake.documents``) and the same commit, and so do
the treatments of vendor exports (Clarity, LibreView, Tidepool, OhioT1DM, Nightscout dumps),
which stage 1 turns into treatment document versions beside their readings. Each imported
file's format, glucose units, patients and notes are in the run's report (``imports``).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.errors import ConfigError
from cgm_ray.fs import open_filesystem, uri_for, write_parquet_atomic
from cgm_ray.lake.documents import (
    DocumentCounts,
    merge_document_tables,
    parse_documents,
    read_documents,
)
from cgm_ray.lake.etl_counters import etl_counters
from cgm_ray.lake.sources import (
    SOURCE_SUFFIXES,
    ImportOptions,
    SourceError,
    distinct_readings,
    read_source,
    read_table,
)
from cgm_ray.lake.store import (
    LANDING_DIR,
    PATIENTS_DIR,
    READINGS_DIR,
    SENSORS_DIR,
    STAGING_DIR,
    DataFile,
    Lake,
    LoadedInput,
    Snapshot,
)
from cgm_ray.lake.tasks import run_tasks
from cgm_ray.schema import LAKE_DOCUMENT_SCHEMAS, LAKE_SCHEMA

GROUP_TARGET_BYTES = 128 << 20  # input bytes per stage-1 task (upper bound)
MAX_FILES_PER_PARTITION = 8  # a partition with more files is compacted into one
LANDING_SOURCES = ("ingest", "fleet")  # landing/<name>/... ; anything else loads as "import"
ATTRIBUTES_SOURCE = "patients"  # landing/patients/: patient attribute tables, not readings
DOCUMENTS_SOURCE = "documents"  # landing/documents/: Nightscout documents' log segments


@dataclass(frozen=True)
class InputFile:
    """A file to load: where it is, what it is, and its identity for idempotence."""

    path: str  # local absolute path or filesystem URI
    source: str  # ingest, fleet, import, patients (attributes) or documents
    size: int
    mtime_ns: int
    options: ImportOptions | None = None  # --tz and --patient of an --import


@dataclass(frozen=True)
class ImportSummary:
    """What one imported file was: its format (or column convention), the glucose units it
    gave, the patients of its readings, its valid readings, its treatment documents, and its
    notes by reason (rows adjusted at daylight-saving changes, or left out on purpose)."""

    format: str
    units_found: str
    patients: list[str]
    readings: int
    treatments: int  # treatment documents read (counting those rejected)
    treatments_rejected: int = 0
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class EtlReport:
    """What one run did (``--json`` prints it)."""

    version: int
    run_id: str
    inputs_loaded: int = 0
    inputs_skipped: int = 0  # already in the lake from an earlier run
    rows_read: int = 0  # readings rows (documents are counted in ``documents``)
    rows_rejected: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    files_rejected: dict[str, str] = field(default_factory=dict)  # path -> reason
    imports: dict[str, ImportSummary] = field(default_factory=dict)  # path -> what it was
    readings_added: int = 0
    duplicates: int = 0
    files_written: int = 0
    files_compacted: int = 0
    patients: int = 0
    lake_rows: int = 0
    documents: DocumentCounts = field(default_factory=DocumentCounts)
    seconds: float = 0.0


# -- discovery ---------------------------------------------------------------------------
def discover_inputs(lake: Lake, imports: list[str] = (), attributes: list[str] = (),
                    options: ImportOptions | None = None) -> list[InputFile]:
    """Every loadable file in the lake's landing area, plus ``imports`` (read with ``options``:
    the time zone of device-local times, the patient) and ``attributes``.

    Names starting with ``.`` or ``_`` are skipped (temporary files of writers in progress).
    """
    found = _list_files(lake.uri, lake.path(LANDING_DIR), None)
    for uri in imports:
        found += _list_files(uri, None, "import", must_exist=True, options=options)
    for uri in attributes:
        found += _list_files(uri, None, ATTRIBUTES_SOURCE, must_exist=True)
    return found


def _list_files(base_uri: str, root: str | None, source: str | None,
                must_exist: bool = False, options: ImportOptions | None = None) -> list[InputFile]:
    """Loadable files at or under ``root`` (default: ``base_uri`` itself)."""
    fs, base = open_filesystem(base_uri)
    root = root or base
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        if must_exist:
            raise ConfigError(base_uri, "no such file or directory")
        return []
    infos = [info] if info.type == pafs.FileType.File else fs.get_file_info(
        pafs.FileSelector(root, recursive=True))
    out = []
    for item in infos:
        rel = item.path[len(root):].lstrip("/") if item.path != root else item.base_name
        if item.type != pafs.FileType.File or any(p[:1] in "._" for p in rel.split("/")):
            continue
        if not item.base_name.lower().endswith(SOURCE_SUFFIXES):
            continue
        kind = source or _landing_source(rel)
        out.append(InputFile(uri_for(base_uri, item.path), kind, item.size, item.mtime_ns or 0,
                             options))
    return sorted(out, key=lambda f: f.path)


def _landing_source(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return top if top in (*LANDING_SOURCES, ATTRIBUTES_SOURCE, DOCUMENTS_SOURCE) else "import"


def _is_loaded(snapshot: Snapshot, f: InputFile) -> bool:
    done = snapshot.inputs.get(f.path)
    return done is not None and (done.size, done.mtime_ns) == (f.size, f.mtime_ns)


def _groups(files: list[InputFile], n_tasks: int) -> list[list[InputFile]]:
    """Split files into about ``n_tasks`` groups of similar byte size (at most the target)."""
    total = sum(f.size for f in files)
    target = max(1, min(GROUP_TARGET_BYTES, total // max(1, n_tasks)))
    groups, current, size = [], [], 0
    for f in files:
        if current and size + f.size > target:
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    return groups + ([current] if current else [])


# -- stage 1: read, validate, split by bucket ------------------------------------------
@dataclass(frozen=True)
class StageTask:
    """Stage 1's work item: one group of input files of one run."""

    lake_uri: str
    run_id: str
    task: int
    files: tuple[InputFile, ...]


@dataclass(frozen=True)
class Staged:
    """What stage 1 did with a group: every input's record, rejected rows by reason (of
    readings and of documents), the staging file it wrote per table and bucket, and what each
    imported file was."""

    inputs: list[LoadedInput]
    rejections: dict[str, int]
    document_rejections: dict[str, int]
    staged: dict[str, dict[int, str]]
    imports: dict[str, ImportSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class InputRows:
    """One input's valid rows by lake table; how many rows it counts as read and rejected (its
    readings, or a documents segment's versions); rejected readings and documents by reason;
    and, for an import, what it was."""

    tables: dict[str, pa.Table]
    rows: int
    rejected_rows: int
    rejections: dict[str, int]
    document_rejections: dict[str, int]
    summary: ImportSummary | None = None


def stage_inputs(item: StageTask) -> Staged:
    """Read one group of input files into staging files, one per table and bucket; report each input."""
    lake = Lake(item.lake_uri)
    tables: dict[str, list[pa.Table]] = defaultdict(list)
    records: list[LoadedInput] = []
    rejections: dict[str, dict[str, int]] = {"readings": defaultdict(int), "documents": defaultdict(int)}
    imports: dict[str, ImportSummary] = {}
    for f in item.files:
        try:
            found = _read_input(f)
        except (SourceError, ConfigError, OSError) as exc:
            records.append(LoadedInput(f.path, f.size, f.mtime_ns, f.source, error=str(exc)))
            continue
        for name, table in found.tables.items():
            tables[name].append(table)
        records.append(LoadedInput(f.path, f.size, f.mtime_ns, f.source, found.rows,
                                   found.rejected_rows))
        for kind, part in (("readings", found.rejections), ("documents", found.document_rejections)):
            for reason, count in part.items():
                rejections[kind][reason] += count
        if found.summary is not None:
            imports[f.path] = found.summary
    loaded = [r for r in records if not r.error]
    etl_counters().count(files_loaded=len(loaded), files_rejected=len(records) - len(loaded),
                        rows_rejected=sum(r.rejected_rows for r in loaded))
    staged = {name: _stage_by_bucket(lake, item, name, pa.concat_tables(parts))
              for name, parts in tables.items()}
    return Staged(records, dict(rejections["readings"]), dict(rejections["documents"]),
                  {name: by_bucket for name, by_bucket in staged.items() if by_bucket}, imports)


def _read_input(f: InputFile) -> InputRows:
    """An input's valid rows by lake table and its rejected rows by reason (a vendor export's
    treatments become treatment document versions); SourceError when it cannot be loaded at all."""
    fs, path = open_filesystem(f.path)
    if f.source == DOCUMENTS_SOURCE:
        versions = read_documents(path, fs)
        return InputRows(versions.tables, sum(t.num_rows for t in versions.tables.values()),
                         sum(versions.rejections.values()), {}, versions.rejections)
    rows = read_source(path, fs, f.source, f.options)
    tables = {READINGS_DIR: rows.table}
    documents = parse_documents(rows.treatments.to_pylist()) if rows.treatments.num_rows else None
    if documents is not None:
        tables |= documents.tables
    summary = None
    if f.source == "import":
        patients = set(rows.table.column("patient_id").to_pylist())
        patients |= set(rows.treatments.column("patient_id").to_pylist())
        summary = ImportSummary(rows.format, rows.units_found, sorted(patients),
                                rows.table.num_rows, rows.treatments.num_rows,
                                sum(documents.rejections.values()) if documents else 0, rows.notes)
    return InputRows(tables, rows.table.num_rows, rows.rejected_rows, rows.rejections,
                     documents.rejections if documents else {}, summary)


def _stage_by_bucket(lake: Lake, item: StageTask, table_name: str, table: pa.Table) -> dict[int, str]:
    """Write ``table``'s rows to one staging file per patient bucket: bucket -> path."""
    staged = {}
    bucket = lake.bucket_of(table.column("patient_id"))
    for b in np.unique(bucket):
        path = lake.path(STAGING_DIR, item.run_id, table_name, f"bucket={b:03d}",
                         f"t{item.task:05d}.parquet")
        lake.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table.filter(pa.array(bucket == b)), path, filesystem=lake.fs)
        staged[int(b)] = path
    return staged


# -- stage 2: per bucket, deduplicate against the lake and write partitions -------------
@dataclass(frozen=True)
class MergeTask:
    """Stage 2's work item: one bucket, its staged files and its files in the lake by date."""

    lake_uri: str
    run_id: str
    bucket: int
    staged: list[str]
    existing: dict[str, list[str]]
    compact: bool


@dataclass(frozen=True)
class Merged:
    """What stage 2 did to a bucket: files added and removed (compacted), readings added,
    duplicates dropped, and the staged per-sensor summary of what it added."""

    added: list[DataFile]
    removed: list[str]
    readings_added: int
    duplicates: int
    sensors: str | None


def merge_bucket(item: MergeTask) -> Merged:
    """Write one bucket's new distinct readings; compact its crowded partitions."""
    lake, run_id, bucket = Lake(item.lake_uri), item.run_id, item.bucket
    staged, existing, compact = item.staged, item.existing, item.compact
    staged_rows = lake.read(staged) if staged else LAKE_SCHEMA.empty_table()
    new = distinct_readings(staged_rows)
    days = pc.strftime(new.column("ts"), "%Y-%m-%d")
    touched = sorted(set(pc.unique(days).to_pylist()) | (set(existing) if compact else set()))
    added, removed, kept = [], [], []
    for day in touched:
        old = [lake.path(p) for p in existing.get(day, [])]
        fresh = _unseen(lake, new.filter(pc.equal(days, day)), old)
        if fresh.num_rows:
            kept.append(fresh)
        n_files = len(old) + (fresh.num_rows > 0)
        if n_files > (1 if compact else MAX_FILES_PER_PARTITION):  # merge the partition
            body = pa.concat_tables([lake.read(old), fresh])
            removed += existing[day]
        elif fresh.num_rows:
            body = fresh
        else:
            continue
        rel = f"{lake.partition_dir(bucket, day)}/part-{run_id}.parquet"
        _write_sorted(lake, rel, body)
        added.append(DataFile(rel, bucket, day, body.num_rows))
    sensors = None
    if kept:
        sensors = lake.path(STAGING_DIR, run_id, f"sensors-{bucket:03d}.parquet")
        pq.write_table(sensor_summary(pa.concat_tables(kept)), sensors, filesystem=lake.fs)
    added_rows = sum(t.num_rows for t in kept)
    duplicates = staged_rows.num_rows - added_rows
    etl_counters().count(readings_loaded=added_rows, readings_duplicate=duplicates)
    return Merged(added, removed, added_rows, duplicates, sensors)


def _unseen(lake: Lake, rows: pa.Table, old: list[str]) -> pa.Table:
    """The ``rows`` whose (sensor_id, ts) is in none of the partition's ``old`` files."""
    if not rows.num_rows or not old:
        return rows
    keys = lake.read(old, columns=["sensor_id", "ts"])
    return rows.join(keys, keys=["sensor_id", "ts"], join_type="left anti") \
        .select(LAKE_SCHEMA.names).cast(LAKE_SCHEMA)


def _write_sorted(lake: Lake, rel: str, table: pa.Table) -> None:
    table = table.sort_by([("patient_id", "ascending"), ("ts", "ascending")])
    path = lake.path(rel)
    lake.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, path, filesystem=lake.fs, compression="zstd")


def sensor_summary(table: pa.Table) -> pa.Table:
    """Per sensor: patient, first and last reading time, number of readings."""
    out = table.group_by("sensor_id", use_threads=False).aggregate(
        [("patient_id", "min"), ("ts", "min"), ("ts", "max"), ("ts", "count")])
    return pa.table({"sensor_id": out["sensor_id"], "patient_id": out["patient_id_min"],
                     "first_ts": out["ts_min"], "last_ts": out["ts_max"],
                     "readings": out["ts_count"]})


def _merge_sensors(tables: list[pa.Table]) -> pa.Table:
    out = pa.concat_tables(tables).group_by("sensor_id", use_threads=False).aggregate(
        [("patient_id", "min"), ("first_ts", "min"), ("last_ts", "max"), ("readings", "sum")])
    return pa.table({"sensor_id": out["sensor_id"], "patient_id": out["patient_id_min"],
                     "first_ts": out["first_ts_min"], "last_ts": out["last_ts_max"],
                     "readings": out["readings_sum"]}).sort_by("sensor_id")


# -- attributes ----------------------------------------------------------------------------
def read_attributes(f: InputFile) -> pa.Table:
    """A patient attribute table (any readable format) with a ``patient_id`` column."""
    fs, path = open_filesystem(f.path)
    table = read_table(path, fs)
    if "patient_id" not in table.column_names:
        raise SourceError(f.path, f"missing column 'patient_id'; found {table.column_names}")
    return table.set_column(table.schema.get_field_index("patient_id"), "patient_id",
                            table.column("patient_id").cast(pa.string()))


def _merge_patients(old: pa.Table | None, new: list[pa.Table]) -> pa.Table:
    """Union of attribute tables; for a patient listed more than once the latest row wins."""
    table = pa.concat_tables(([old] if old is not None else []) + new, promote_options="permissive")
    ids = table.column("patient_id").to_numpy(zero_copy_only=False)
    _, last_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - last_from_end)
    return table.take(pa.array(keep)).sort_by("patient_id")


# -- the job ---------------------------------------------------------------------------------
def run_etl(lake: Lake, inputs: list[InputFile], compact: bool = False,
            progress=print) -> EtlReport:
    """Load ``inputs`` into ``lake`` and commit one snapshot (Ray must be initialised)."""
    import ray

    started = time.perf_counter()
    base = lake.snapshot()
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    report = EtlReport(version=base.version, run_id=run_id)
    lake.fs.delete_dir_contents(lake.path(STAGING_DIR), missing_dir_ok=True)  # a crashed run's
    todo = [f for f in inputs if not _is_loaded(base, f)]
    report.inputs_skipped = len(inputs) - len(todo)
    to_stage = [f for f in todo if f.source != ATTRIBUTES_SOURCE]
    records: list[LoadedInput] = []
    patients = _load_attributes([f for f in todo if f.source == ATTRIBUTES_SOURCE], records)

    staged: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    if to_stage:
        groups = _groups(to_stage, 2 * int(ray.cluster_resources().get("CPU", 1)))
        progress(f"etl: reading {len(to_stage)} input files in {len(groups)} tasks")
        tasks = [StageTask(lake.uri, run_id, k, tuple(g)) for k, g in enumerate(groups)]
        for out in run_tasks(stage_inputs, tasks):
            records += out.inputs
            report.imports.update(out.imports)
            for total, part in ((report.rejections, out.rejections),
                                (report.documents.rejections, out.document_rejections)):
                for reason, count in part.items():
                    total[reason] = total.get(reason, 0) + count
            for name, by_bucket in out.staged.items():
                for b, path in by_bucket.items():
                    staged[name][b].append(path)
    readings_staged = staged.pop(READINGS_DIR, {})

    existing: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in base.files.values():
        existing[f.bucket][f.date].append(f.path)
    buckets = sorted(set(readings_staged) | ({b for b, days in existing.items()
                                              if any(len(p) > 1 for p in days.values())}
                                             if compact else set()))
    files = dict(base.files)
    sensor_parts = [lake.sensors(base)] if base.sensors_file else []
    if buckets:
        progress(f"etl: deduplicating and writing {len(buckets)} buckets")
        merges = [MergeTask(lake.uri, run_id, b, readings_staged.get(b, []), dict(existing[b]), compact)
                  for b in buckets]
        for out in run_tasks(merge_bucket, merges):
            for path in out.removed:
                files.pop(path)
            files.update({f.path: f for f in out.added})
            report.files_written += len(out.added)
            report.files_compacted += len(out.removed)
            report.readings_added += out.readings_added
            report.duplicates += out.duplicates
            if out.sensors:
                sensor_parts.append(pq.read_table(out.sensors, filesystem=lake.fs))
    sensors_file = base.sensors_file
    if len(sensor_parts) > (1 if base.sensors_file else 0):
        sensors_file = f"{SENSORS_DIR}/sensors-{run_id}.parquet"
        write_parquet_atomic(lake.fs, lake.path(sensors_file), _merge_sensors(sensor_parts))
    patients_file = base.patients_file
    if patients:
        patients_file = f"{PATIENTS_DIR}/patients-{run_id}.parquet"
        write_parquet_atomic(lake.fs, lake.path(patients_file),
                             _merge_patients(lake.patients(base), patients))

    table_files = merge_document_tables(lake, base, run_id, staged, report.documents, progress)

    inputs_done = dict(base.inputs) | {r.path: r for r in records}
    snapshot = lake.commit(Snapshot(base.version + 1, run_id, 0, files, inputs_done,
                                    patients_file, sensors_file, table_files))
    lake.collect_garbage(snapshot)
    for r in records:
        if r.error:
            report.files_rejected[r.path] = r.error
            continue
        report.inputs_loaded += 1
        if r.source == DOCUMENTS_SOURCE:
            report.documents.read += r.rows + r.rejected_rows
            report.documents.rejected += r.rejected_rows
        else:
            report.rows_read += r.rows + r.rejected_rows
            report.rows_rejected += r.rejected_rows
    for summary in report.imports.values():  # treatments of vendor exports
        report.documents.read += summary.treatments
        report.documents.rejected += summary.treatments_rejected
    report.version, report.lake_rows = snapshot.version, snapshot.rows
    report.documents.in_lake = {name: snapshot.table_rows(name) for name in LAKE_DOCUMENT_SCHEMAS}
    patients_table = lake.patients(snapshot)
    report.patients = patients_table.num_rows if patients_table is not None else 0
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _load_attributes(files: list[InputFile], records: list[LoadedInput]) -> list[pa.Table]:
    tables = []
    for f in files:
        try:
            tables.append(read_attributes(f))
        except (SourceError, pa.ArrowInvalid, OSError) as exc:
            records.append(LoadedInput(f.path, f.size, f.mtime_ns, f.source, error=str(exc)))
            continue
        records.append(LoadedInput(f.path, f.size, f.mtime_ns, f.source, tables[-1].num_rows))
    return tables
