"""Nightscout documents into the lake: landed log segments to typed tables, newest version wins.

The ingest appends every version of a document (create, update, delete) to its write-ahead
log, whose closed segments land in ``landing/documents/`` as ``DOCUMENT_SCHEMA`` rows; a
document's state is its version with the greatest ``srv_modified_ms``. The ETL loads them in
its two stages: ``read_documents`` (stage 1, per input file) turns a segment into typed
version rows per lake table (``cgm_ray.lake.nightscout``), counting by reason the rows it
cannot use; ``merge_documents`` (stage 2, one task per patient bucket) keeps the newest
version of every document over the lake and the load, and rewrites that bucket's file of
each table it changed. The driver commits the files with the readings' in one snapshot.

A deleted document leaves its table, and the version that deleted it is kept in
``deleted_documents/``, so an older version landing later (a late or re-delivered segment)
cannot bring it back. Ties of ``srv_modified_ms`` go to the version already in the lake,
then to the later one in the load (inputs in path order, rows in log order): loading a
segment again changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cgm_ray.fs import write_parquet_atomic
from cgm_ray.lake.nightscout import TABLES, DocumentError
from cgm_ray.lake.sources import SourceError, read_table
from cgm_ray.lake.store import DELETED_DIR, Lake, Snapshot, TableFile
from cgm_ray.lake.tasks import run_tasks
from cgm_ray.schema import (
    DELETED_DOCUMENTS_SCHEMA,
    DOCUMENT_SCHEMA,
    EARLIEST_TS_MS,
    LAKE_DOCUMENT_SCHEMAS,
)

_KEY_COLUMNS = ("patient_id", "identifier", "ts", "srv_modified_ms", "document")
_IN_LAKE_RANK = 1 << 62  # outranks every row of a load on equal srv_modified_ms


def version_schema(table: str) -> pa.Schema:
    """The staged versions of a document table: its columns (all nullable but the key, as
    a deleting version carries only the key) and ``is_valid``."""
    fields = [f.with_nullable(f.name not in _KEY_COLUMNS) for f in LAKE_DOCUMENT_SCHEMAS[table]]
    return pa.schema([*fields, pa.field("is_valid", pa.bool_(), nullable=False)])


# -- stage 1: a landed segment as typed versions --------------------------------------------
@dataclass(frozen=True)
class DocumentVersions:
    """One input's document versions by lake table (``version_schema`` rows, in log order)
    and its rejected rows by reason."""

    tables: dict[str, pa.Table]
    rejections: dict[str, int]


def read_documents(path: str, filesystem: pafs.FileSystem) -> DocumentVersions:
    """The typed versions of one landed file of ``DOCUMENT_SCHEMA`` rows (any registered
    format). SourceError when it cannot be read or lacks a column; bad rows are counted."""
    table = read_table(path, filesystem)
    columns = {}
    for spec in DOCUMENT_SCHEMA:
        if spec.name not in table.column_names:
            raise SourceError(path, f"missing column {spec.name!r} of a documents segment; "
                                    f"found {table.column_names}")
        try:
            columns[spec.name] = table.column(spec.name).cast(spec.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SourceError(path, f"column {spec.name!r} holds {table.column(spec.name).type}, "
                                    f"expected {spec.type}") from None
    return parse_documents(pa.table(columns).to_pylist())


def parse_documents(rows: list[dict[str, Any]]) -> DocumentVersions:
    """``DOCUMENT_SCHEMA`` rows as typed versions per lake table. A deleting version
    (``is_valid`` false) keeps only the key; a row that is incomplete, of a collection
    without a table, or whose document cannot be read is counted by reason."""
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rejections: dict[str, int] = defaultdict(int)
    for row in rows:
        try:
            table, version = _version(row)
        except DocumentError as exc:
            rejections[f"{row['collection']}: {exc}" if row.get("collection") else str(exc)] += 1
            continue
        versions[table].append(version)
    tables = {name: pa.Table.from_pylist(found, schema=version_schema(name))
              for name, found in versions.items()}
    return DocumentVersions(tables, dict(rejections))


def _version(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(lake table, typed version) of one landing row; DocumentError says why not."""
    for name in DOCUMENT_SCHEMA.names:
        if row[name] is None or row[name] == "":
            raise DocumentError(name, "missing")
    spec = TABLES.get(row["collection"])
    if spec is None:
        raise DocumentError("collection", f"has no lake table (tables are kept of {sorted(TABLES)})")
    if row["date_ms"] < EARLIEST_TS_MS:
        raise DocumentError("date_ms", "before 2000-01-01")
    version = {"patient_id": row["patient_id"], "identifier": row["identifier"],
               "ts": row["date_ms"], "srv_modified_ms": row["srv_modified_ms"],
               "document": row["document"], "is_valid": row["is_valid"]}
    if row["is_valid"]:
        try:
            doc = json.loads(row["document"])
        except ValueError:
            raise DocumentError("document", "not JSON") from None
        if not isinstance(doc, dict):
            raise DocumentError("document", "not a JSON object")
        version |= spec.columns(doc)
    return spec.name, version


# -- stage 2: per bucket, the newest version of every document -----------------------------
@dataclass(frozen=True)
class DocumentMergeTask:
    """Stage 2's work item: one bucket, its staged versions by table, its files in the lake."""

    lake_uri: str
    run_id: str
    bucket: int
    staged: dict[str, list[str]]  # table -> staged version files
    existing: dict[str, str]  # table (or DELETED_DIR) -> its file in the lake


@dataclass(frozen=True)
class DocumentsMerged:
    """What stage 2 did to a bucket: files added and replaced, and per table the documents
    written (new or updated) and deleted, and the versions superseded by newer ones."""

    added: list[TableFile]
    removed: list[str]
    written: dict[str, int]
    deleted: dict[str, int]
    superseded: int


def newest_versions(keys: pa.Table) -> np.ndarray:
    """Row numbers, ascending, of the newest row of each (patient_id, identifier) in
    ``keys``: the greatest ``srv_modified_ms``, on ties the greatest ``rank``."""
    if keys.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    order = pc.sort_indices(keys, [(name, "ascending") for name in
                                   ("patient_id", "identifier", "srv_modified_ms", "rank")])
    patient, identifier = keys["patient_id"].take(order), keys["identifier"].take(order)
    same_as_next = pc.and_(pc.equal(patient[:-1], patient[1:]),
                           pc.equal(identifier[:-1], identifier[1:]))
    last = np.append(~np.asarray(same_as_next.to_numpy(zero_copy_only=False), dtype=bool), True)
    return np.sort(order.to_numpy()[last])


def _keys(table: pa.Table, rank: np.ndarray) -> pa.Table:
    return pa.table({"patient_id": table["patient_id"], "identifier": table["identifier"],
                     "srv_modified_ms": table["srv_modified_ms"],
                     "rank": pa.array(rank, pa.int64())})


def merge_documents(item: DocumentMergeTask) -> DocumentsMerged:
    """Keep the newest version of every document of one bucket; rewrite the tables it changed."""
    lake = Lake(item.lake_uri)
    deleted = _read(lake, item.existing.get(DELETED_DIR), DELETED_DOCUMENTS_SCHEMA)
    deleted_parts = [deleted.filter(pc.invert(pc.is_in(deleted["table"], pa.array(list(item.staged)))))]
    deleted_changed = False
    added: list[TableFile] = []
    removed: list[str] = []
    written: dict[str, int] = {}
    dropped: dict[str, int] = {}
    superseded = 0
    for name, paths in sorted(item.staged.items()):
        schema = LAKE_DOCUMENT_SCHEMAS[name]
        new = pq.read_table(paths, filesystem=lake.fs, partitioning=None, schema=version_schema(name))
        live = _read(lake, item.existing.get(name), schema)
        dead = deleted.filter(pc.equal(deleted["table"], name))
        n_old = live.num_rows + dead.num_rows
        winners = newest_versions(pa.concat_tables([
            _keys(live, np.full(live.num_rows, _IN_LAKE_RANK)),
            _keys(dead, np.full(dead.num_rows, _IN_LAKE_RANK)),
            _keys(new, np.arange(new.num_rows))]))
        fresh = new.take(winners[winners >= n_old] - n_old)
        valid = fresh["is_valid"]
        kept_dead = winners[(winners >= live.num_rows) & (winners < n_old)] - live.num_rows
        gone = fresh.filter(pc.invert(valid))
        deleted_parts += [dead.take(kept_dead), pa.table({
            "patient_id": gone["patient_id"], "table": pa.array([name] * gone.num_rows, pa.string()),
            "identifier": gone["identifier"], "srv_modified_ms": gone["srv_modified_ms"]},
            schema=DELETED_DOCUMENTS_SCHEMA)]
        deleted_changed |= gone.num_rows > 0 or len(kept_dead) < dead.num_rows
        written[name], dropped[name] = fresh.num_rows - gone.num_rows, gone.num_rows
        superseded += new.num_rows - fresh.num_rows
        if fresh.num_rows:
            body = pa.concat_tables([live.take(winners[winners < live.num_rows]),
                                     fresh.filter(valid).drop_columns("is_valid").cast(schema)])
            _replace(lake, item, name, body.sort_by([("patient_id", "ascending"),
                                                     ("ts", "ascending")]), added, removed)
    if deleted_changed:
        _replace(lake, item, DELETED_DIR, pa.concat_tables(deleted_parts), added, removed)
    return DocumentsMerged(added, removed, written, dropped, superseded)


def _read(lake: Lake, path: str | None, schema: pa.Schema) -> pa.Table:
    if path is None:
        return schema.empty_table()
    return pq.read_table(lake.path(path), filesystem=lake.fs, partitioning=None, schema=schema)


def _replace(lake: Lake, item: DocumentMergeTask, table: str, body: pa.Table,
             added: list[TableFile], removed: list[str]) -> None:
    """Write ``body`` as the bucket's new file of ``table`` (none when empty), replacing its old one."""
    if table in item.existing:
        removed.append(item.existing[table])
    if body.num_rows:
        rel = f"{table}/bucket={item.bucket:03d}/part-{item.run_id}.parquet"
        write_parquet_atomic(lake.fs, lake.path(rel), body, compression="zstd")
        added.append(TableFile(rel, table, item.bucket, body.num_rows))


# -- the driver's part -------------------------------------------------------------------------
@dataclass
class DocumentCounts:
    """What one ETL run did with Nightscout documents (part of its report)."""

    read: int = 0  # versions read from landed segments
    rejected: int = 0  # of which unusable (reasons in ``rejections``)
    rejections: dict[str, int] = field(default_factory=dict)
    superseded: int = 0  # versions older than the lake's or the load's newest (or equal)
    written: dict[str, int] = field(default_factory=dict)  # table -> documents new or updated
    deleted: dict[str, int] = field(default_factory=dict)  # table -> documents deleted
    in_lake: dict[str, int] = field(default_factory=dict)  # table -> documents after the run


def merge_document_tables(lake: Lake, base: Snapshot, run_id: str,
                          staged: dict[str, dict[int, list[str]]], counts: DocumentCounts,
                          progress=print) -> dict[str, TableFile]:
    """Stage 2 over every bucket with staged versions (``staged``: table -> bucket -> files),
    as Ray tasks; the lake's table files afterwards, ``counts`` updated."""
    files = dict(base.table_files)
    buckets = sorted({b for by_bucket in staged.values() for b in by_bucket})
    if not buckets:
        return files
    progress(f"etl: merging documents of {len(buckets)} buckets")
    tasks = [DocumentMergeTask(lake.uri, run_id, b, {t: staged[t][b] for t in staged if b in staged[t]},
                               base.bucket_tables(b)) for b in buckets]
    for out in run_tasks(merge_documents, tasks):
        for path in out.removed:
            files.pop(path)
        files.update({f.path: f for f in out.added})
        counts.superseded += out.superseded
        for total, part in ((counts.written, out.written), (counts.deleted, out.deleted)):
            for name, n in part.items():
                if n:
                    total[name] = total.get(name, 0) + n
    return files


__all__ = ["DocumentCounts", "DocumentMergeTask", "DocumentVersions", "DocumentsMerged",
           "merge_document_tables", "merge_documents", "newest_versions", "parse_documents",
           "read_documents", "version_schema"]
