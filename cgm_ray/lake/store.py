"""The Parquet lake: its layout, patient bucketing, and the manifest that makes loads atomic.

Layout under the lake root (a local path or any pyarrow filesystem URI, e.g. ``s3://...``)::

    _lake.json                                   format version and bucket count (fixed)
    _manifest/v00000001.json ...                 one snapshot per committed load
    readings/bucket=NN/date=YYYY-MM-DD/*.parquet LAKE_SCHEMA rows, sorted by (patient_id, ts)
    patients/patients-<run>.parquet              patient attributes (age group, therapy, ...)
    sensors/sensors-<run>.parquet                sensor -> patient, first/last reading, count
    treatments/bucket=NNN/*.parquet              Nightscout documents, newest version of each,
    devicestatus/bucket=NNN/*.parquet            one file per table and bucket, sorted by
    profiles/bucket=NNN/*.parquet                (patient_id, ts); see cgm_ray.lake.documents
    deleted_documents/bucket=NNN/*.parquet       the versions that deleted documents
    landing/{ingest,fleet,patients,documents,...}/ what the ETL loads (ingest WAL segments, ...)
    cohort/<name>/                               per-patient metrics and summaries

A patient's readings all live in one bucket (``crc32(patient_id) % buckets``), so per-patient
work is one task per bucket and never needs a shuffle. Only the files the latest snapshot
lists are part of the lake: a load writes new files, then commits a snapshot naming them (and
the files it replaces), so a crash before the commit leaves the lake as it was. There must be
one writer (ETL) at a time; any number of readers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.errors import CgmRayError, ConfigError
from cgm_ray.fs import open_filesystem, write_bytes_atomic
from cgm_ray.schema import LAKE_DOCUMENT_SCHEMAS, LAKE_SCHEMA
from cgm_ray.sharding import shard_of, shards_of

LAKE_FORMAT = 1
DEFAULT_BUCKETS = 16
SNAPSHOTS_KEPT = 10
READINGS_DIR, PATIENTS_DIR, SENSORS_DIR = "readings", "patients", "sensors"
MANIFEST_DIR, STAGING_DIR, LANDING_DIR, COHORT_DIR = "_manifest", "_staging", "landing", "cohort"
DELETED_DIR = "deleted_documents"
TABLE_DIRS = (*LAKE_DOCUMENT_SCHEMAS, DELETED_DIR)  # the per-bucket tables besides readings


class CommitConflict(CgmRayError):
    """Another writer committed the same snapshot version first."""


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the readings table, relative to the lake root."""

    path: str
    bucket: int
    date: str  # YYYY-MM-DD (UTC) of every reading in the file
    rows: int


@dataclass(frozen=True)
class TableFile:
    """The one Parquet file of a patient bucket of a per-bucket table (``TABLE_DIRS``)."""

    path: str
    table: str
    bucket: int
    rows: int


@dataclass(frozen=True)
class LoadedInput:
    """An input file an ETL run consumed (or rejected), identified by path, size and mtime."""

    path: str
    size: int
    mtime_ns: int
    source: str
    rows: int = 0
    rejected_rows: int = 0
    error: str | None = None  # set when the whole file was rejected


@dataclass(frozen=True)
class Snapshot:
    """The lake's contents at one committed version."""

    version: int = 0
    run_id: str = ""
    committed_ms: int = 0
    files: dict[str, DataFile] = field(default_factory=dict)
    inputs: dict[str, LoadedInput] = field(default_factory=dict)
    patients_file: str | None = None
    sensors_file: str | None = None
    table_files: dict[str, TableFile] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Readings in the lake."""
        return sum(f.rows for f in self.files.values())

    def table_rows(self, table: str) -> int:
        """Rows of one per-bucket table (documents in the lake, or deleted ones)."""
        return sum(f.rows for f in self.table_files.values() if f.table == table)

    def bucket_tables(self, bucket: int) -> dict[str, str]:
        """The per-bucket tables' files of one bucket: table -> path."""
        return {f.table: f.path for f in self.table_files.values() if f.bucket == bucket}

    def to_json(self) -> str:
        doc = asdict(self)
        for key in ("files", "inputs", "table_files"):
            doc[key] = list(doc[key].values())
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        doc = json.loads(text)
        doc["files"] = {f["path"]: DataFile(**f) for f in doc["files"]}
        doc["inputs"] = {i["path"]: LoadedInput(**i) for i in doc["inputs"]}
        # Lakes written before the document tables have no "table_files".
        doc["table_files"] = {f["path"]: TableFile(**f) for f in doc.get("table_files", [])}
        return cls(**doc)


class Lake:
    """A lake at ``uri``; with ``create`` a new one gets ``buckets`` patient buckets."""

    def __init__(self, uri: str, buckets: int = DEFAULT_BUCKETS, create: bool = False) -> None:
        self.uri = uri
        self.fs, self.root = open_filesystem(uri)
        self.buckets = self._read_or_create_header(buckets, create)

    def _read_or_create_header(self, buckets: int, create: bool) -> int:
        header = self.path("_lake.json")
        if self.fs.get_file_info(header).type == pafs.FileType.File:
            doc = json.loads(self.read_text(header))
            if doc.get("format") != LAKE_FORMAT:
                raise ConfigError("lake", f"{self.uri}: unsupported lake format {doc.get('format')}")
            return int(doc["buckets"])
        if not create:
            raise ConfigError("lake", f"{self.uri} is not a cgm-ray lake (no _lake.json); "
                                      "`cgm-ray etl` creates one")
        if not 1 <= buckets <= 4096:
            raise ConfigError("buckets", f"must be between 1 and 4096, got {buckets}")
        self.fs.create_dir(self.root, recursive=True)
        self.write_text(header, json.dumps({"format": LAKE_FORMAT, "buckets": buckets}))
        return buckets

    # -- paths and small files ---------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"), *parts))

    def read_text(self, path: str) -> str:
        with self.fs.open_input_stream(path) as fh:
            return fh.read().decode()

    def write_text(self, path: str, text: str) -> None:
        """Write a small file atomically where the filesystem allows (temp name, then move)."""
        write_bytes_atomic(self.fs, path, text.encode())

    def partition_dir(self, bucket: int, day: str) -> str:
        """Relative directory of one (bucket, date) partition."""
        return f"{READINGS_DIR}/bucket={bucket:03d}/date={day}"

    # -- bucketing ---------------------------------------------------------------------
    def bucket_of(self, patient_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Bucket of every row's patient: ``cgm_ray.sharding.shards_of`` over the buckets."""
        return shards_of(patient_ids, self.buckets)

    # -- snapshots ---------------------------------------------------------------------
    def _versions(self) -> list[int]:
        selector = pafs.FileSelector(self.path(MANIFEST_DIR), allow_not_found=True)
        names = (info.base_name for info in self.fs.get_file_info(selector))
        return sorted(int(n[1:-5]) for n in names if n.startswith("v") and n.endswith(".json"))

    def snapshot(self) -> Snapshot:
        """The latest committed snapshot (version 0, empty, for a new lake)."""
        versions = self._versions()
        if not versions:
            return Snapshot()
        return Snapshot.from_json(self.read_text(self._manifest_path(versions[-1])))

    def _manifest_path(self, version: int) -> str:
        return self.path(MANIFEST_DIR, f"v{version:08d}.json")

    def commit(self, snapshot: Snapshot) -> Snapshot:
        """Publish ``snapshot`` as the next version; the lake changes at this single step."""
        version = (self._versions() or [0])[-1] + 1
        if version != snapshot.version:
            raise CommitConflict(f"lake {self.uri} moved to version {version - 1} during this load; "
                                 "run the ETL again (one writer at a time)")
        committed = replace(snapshot, committed_ms=int(time.time() * 1000))
        self.write_text(self._manifest_path(version), committed.to_json())
        return committed

    def collect_garbage(self, snapshot: Snapshot) -> int:
        """Delete data files no snapshot from ``snapshot`` on needs, stale staging, old manifests."""
        live = (set(snapshot.files) | set(snapshot.table_files)
                | {snapshot.patients_file, snapshot.sensors_file})
        removed = 0
        for folder in (READINGS_DIR, PATIENTS_DIR, SENSORS_DIR, *TABLE_DIRS):
            selector = pafs.FileSelector(self.path(folder), recursive=True, allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                rel = info.path[len(self.root.rstrip("/")) + 1:]
                if info.type == pafs.FileType.File and rel not in live:
                    self.fs.delete_file(info.path)
                    removed += 1
        self.fs.delete_dir_contents(self.path(STAGING_DIR), missing_dir_ok=True)
        for version in self._versions()[:-SNAPSHOTS_KEPT]:
            self.fs.delete_file(self._manifest_path(version))
        return removed

    # -- reading -----------------------------------------------------------------------
    def readings_files(self, start: date | None = None, end: date | None = None,
                       buckets: set[int] | None = None) -> list[DataFile]:
        """Live readings files with dates in [start, end] (inclusive), ordered by bucket, date."""
        lo, hi = (start.isoformat() if start else ""), (end.isoformat() if end else "9999")
        files = [f for f in self.snapshot().files.values()
                 if lo <= f.date <= hi and (buckets is None or f.bucket in buckets)]
        return sorted(files, key=lambda f: (f.bucket, f.date, f.path))

    def files_by_bucket(self, start: date | None = None, end: date | None = None
                        ) -> dict[int, list[str]]:
        """Full paths of the live readings files dated in [start, end], grouped by bucket:
        the work list of every per-bucket job."""
        by_bucket: dict[int, list[str]] = {}
        for f in self.readings_files(start, end):
            by_bucket.setdefault(f.bucket, []).append(self.path(f.path))
        return by_bucket

    def patient_readings(self, patient_id: str, start: date | None = None,
                         end: date | None = None) -> pa.Table:
        """One patient's readings sorted by time, reading only its bucket; ConfigError if none."""
        bucket = shard_of(patient_id, self.buckets)
        files = self.readings_files(start, end, buckets={bucket})
        table = self.read([self.path(f.path) for f in files]) if files else None
        if table is not None:
            table = table.filter(pc.equal(table.column("patient_id"), patient_id))
        if table is None or table.num_rows == 0:
            window = f" between {start} and {end}" if start or end else ""
            raise ConfigError("patient", f"no readings of patient {patient_id!r} in "
                                         f"{self.uri}{window}")
        return table.sort_by("ts")

    def readings_of(self, patient_ids: list[str], start_ms: int, end_ms: int) -> pa.Table:
        """``patient_id, ts, glucose_mgdl`` of the readings of ``patient_ids`` with
        ``start_ms <= ts < end_ms``, reading only their buckets' files of those dates
        (unsorted; empty when there are none)."""
        columns = ["patient_id", "ts", "glucose_mgdl"]
        days = [datetime.fromtimestamp(ms / 1000, UTC).date() for ms in (start_ms, end_ms - 1)]
        buckets = {shard_of(p, self.buckets) for p in patient_ids}
        files = self.readings_files(days[0], days[1], buckets)
        if not files:
            return pa.schema([LAKE_SCHEMA.field(c) for c in columns]).empty_table()
        ts = pc.field("ts")
        return pq.read_table(
            [self.path(f.path) for f in files], columns=columns, filesystem=self.fs,
            partitioning=None, schema=LAKE_SCHEMA,
            filters=(pc.field("patient_id").isin(patient_ids)
                     & (ts >= pa.scalar(start_ms, LAKE_SCHEMA.field("ts").type))
                     & (ts < pa.scalar(end_ms, LAKE_SCHEMA.field("ts").type))))

    def patient_attributes(self, patient_id: str) -> dict[str, object]:
        """One patient's attribute row without its id ({} when the lake has none for it)."""
        patients = self.patients()
        if patients is None:
            return {}
        rows = patients.filter(pc.equal(patients.column("patient_id"), patient_id)).to_pylist()
        return {k: v for k, v in rows[0].items() if k != "patient_id"} if rows else {}

    def read(self, paths: list[str], columns: list[str] | None = None) -> pa.Table:
        """Whole readings (or staging) files as LAKE_SCHEMA rows; no Hive columns from paths."""
        return pq.read_table(paths, columns=columns, filesystem=self.fs, partitioning=None,
                             schema=None if columns else LAKE_SCHEMA)

    def patient_documents(self, table: str, patient_id: str,
                          snapshot: Snapshot | None = None) -> pa.Table:
        """One patient's rows of a document table (``LAKE_DOCUMENT_SCHEMAS``) sorted by time,
        reading only its bucket's file; an empty table when it has none."""
        schema = LAKE_DOCUMENT_SCHEMAS[table]
        path = (snapshot or self.snapshot()).bucket_tables(
            shard_of(patient_id, self.buckets)).get(table)
        if path is None:
            return schema.empty_table()
        rows = pq.read_table(self.path(path), filesystem=self.fs, partitioning=None,
                             schema=schema, filters=pc.field("patient_id") == patient_id)
        return rows.sort_by("ts")

    def patients(self, snapshot: Snapshot | None = None) -> pa.Table | None:
        """Patient attributes, one row per patient (None before any were loaded)."""
        name = (snapshot or self.snapshot()).patients_file
        return pq.read_table(self.path(name), filesystem=self.fs) if name else None

    def sensors(self, snapshot: Snapshot | None = None) -> pa.Table | None:
        """Sensors: patient, first and last reading time, readings (None for an empty lake)."""
        name = (snapshot or self.snapshot()).sensors_file
        return pq.read_table(self.path(name), filesystem=self.fs) if name else None
