"""The Nightscout documents of one partition's patients, in memory, newest first.

Plain Python (no Ray, no I/O): ``serve_apps.partition_core`` puts every version this store
produces into a write-ahead log before acknowledging it, and replays the log into a fresh
store after a restart (``apply``), so the two always agree. Documents are found by
``identifier``, by ``_id`` and, for treatments, by (``created_at``, ``eventType``), the three
identities Nightscout upserts on (identifier first, as ``upsertQueryFor`` does). Deletes are
soft, as in API v3: the document stays, with ``isValid: false``, so ``history`` reports it.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from cgm_ray.schema import DOCUMENT_SCHEMA
from serve_apps.nightscout.documents import Document
from serve_apps.nightscout.query import Filter, matches


@dataclass(frozen=True)
class Version:
    """One stored version of a document: what the log holds and the reads return."""

    patient_id: str
    collection: str
    identifier: str
    date_ms: int
    srv_modified_ms: int
    is_valid: bool
    document: dict[str, Any]


@dataclass
class Shelf:
    """One patient's documents of one collection."""

    docs: dict[str, dict] = field(default_factory=dict)  # identifier -> document (deleted too)
    by_oid: dict[str, str] = field(default_factory=dict)  # _id -> identifier
    by_event: dict[tuple[int, str], str] = field(default_factory=dict)  # treatments' v1 key
    order: list[tuple[int, str]] = field(default_factory=list)  # (date_ms, identifier), valid
    modified_ms: int = 0

    def resolve(self, doc: Document) -> str | None:
        """The identifier an upload of ``doc`` replaces, if any (identifier, _id, event key)."""
        if doc.identifier in self.docs:
            return doc.identifier
        oid = self.by_oid.get(doc.fields["_id"])
        if oid is not None:
            return oid
        return self.by_event.get(doc.event_key) if doc.event_key else None

    def put(self, document: dict) -> dict | None:
        """Store a version; returns the one it replaced (None if new)."""
        ident = document["identifier"]
        old = self.docs.get(ident)
        if old is not None:
            self._unindex(old)
        self.docs[ident] = document
        self.by_oid[document["_id"]] = ident
        if document.get("isValid", True):
            bisect.insort(self.order, (document["date"], ident))
            if "eventType" in document and "created_at" in document:
                self.by_event[(document["date"], document["eventType"])] = ident
        self.modified_ms = max(self.modified_ms, document["srvModified"])
        return old

    def _unindex(self, old: dict) -> None:
        key = (old["date"], old["identifier"])
        i = bisect.bisect_left(self.order, key)
        if i < len(self.order) and self.order[i] == key:
            del self.order[i]
        self.by_oid.pop(old["_id"], None)
        if self.by_event.get((old["date"], old.get("eventType", ""))) == old["identifier"]:
            del self.by_event[(old["date"], old["eventType"])]

    def restore(self, ident: str, old: dict | None) -> None:
        """Undo a ``put`` whose log append failed."""
        current = self.docs.get(ident)
        if current is not None:
            self._unindex(current)
            del self.docs[ident]
        if old is not None:
            self.put(old)


class DocumentStore:
    """Documents by patient and collection, with a server clock for ``srvModified``.

    ``srvModified`` is strictly increasing within a partition, so a client asking for the
    history after the newest value it has seen never misses a change made in the same
    millisecond.
    """

    def __init__(self, max_per_shelf: int = 20_000) -> None:
        self.shelves: dict[tuple[str, str], Shelf] = {}
        self.max_per_shelf = max_per_shelf
        self.clock_ms = 0

    def _tick(self, now_ms: int) -> int:
        self.clock_ms = max(now_ms, self.clock_ms + 1)
        return self.clock_ms

    def shelf(self, patient_id: str, collection: str) -> Shelf:
        return self.shelves.setdefault((patient_id, collection), Shelf())

    # -- writes (each returns the versions to log, and how to undo them) ----------------
    def upsert(self, patient_id: str, docs: list[Document], now_ms: int
               ) -> tuple[list[Version], list[tuple[Shelf, str, dict | None]]]:
        """Create or replace documents; a document keeps its first ``srvCreated``."""
        versions, undo = [], []
        for doc in docs:
            shelf = self.shelf(patient_id, doc.collection)
            replaces = shelf.resolve(doc)
            previous = shelf.docs.get(replaces) if replaces else None
            stamp = self._tick(now_ms)
            document = dict(doc.fields)
            if previous is not None:
                document["identifier"] = previous["identifier"]
                document["_id"] = previous["_id"]
            document["srvCreated"] = (previous or {}).get("srvCreated", stamp)
            document["srvModified"] = stamp
            document.pop("isValid", None)
            old = shelf.put(document)
            undo.append((shelf, document["identifier"], old))
            versions.append(self._version(patient_id, doc.collection, document))
        return versions, undo

    def delete(self, patient_id: str, collection: str, identifiers: list[str], now_ms: int
               ) -> tuple[list[Version], list[tuple[Shelf, str, dict | None]]]:
        """Soft-delete documents (by identifier or ``_id``); unknown ones are skipped."""
        shelf = self.shelf(patient_id, collection)
        versions, undo = [], []
        for key in identifiers:
            ident = key if key in shelf.docs else shelf.by_oid.get(key)
            current = shelf.docs.get(ident) if ident else None
            if current is None or not current.get("isValid", True):
                continue
            document = {**current, "isValid": False, "srvModified": self._tick(now_ms)}
            old = shelf.put(document)
            undo.append((shelf, document["identifier"], old))
            versions.append(self._version(patient_id, collection, document))
        return versions, undo

    @staticmethod
    def rollback(undo: list[tuple[Shelf, str, dict | None]]) -> None:
        for shelf, ident, old in reversed(undo):
            shelf.restore(ident, old)

    def evict(self) -> None:
        """Forget the oldest documents of shelves over ``max_per_shelf`` (the lake has them);
        a profile shelf keeps its newest, which is what ``profile/current`` serves."""
        for shelf in self.shelves.values():
            while len(shelf.order) > self.max_per_shelf:
                _, ident = shelf.order[0]
                shelf._unindex(shelf.docs.pop(ident))

    @staticmethod
    def _version(patient_id: str, collection: str, document: dict) -> Version:
        return Version(patient_id, collection, document["identifier"], document["date"],
                       document["srvModified"], document.get("isValid", True), document)

    # -- the write-ahead log -------------------------------------------------------------
    @staticmethod
    def log_rows(versions: list[Version]) -> pa.RecordBatch:
        """Versions as one batch of ``DOCUMENT_SCHEMA`` rows."""
        return pa.RecordBatch.from_pydict({
            "patient_id": [v.patient_id for v in versions],
            "collection": [v.collection for v in versions],
            "identifier": [v.identifier for v in versions],
            "date_ms": [v.date_ms for v in versions],
            "srv_modified_ms": [v.srv_modified_ms for v in versions],
            "is_valid": [v.is_valid for v in versions],
            "document": [json.dumps(v.document, separators=(",", ":")) for v in versions],
        }, schema=DOCUMENT_SCHEMA)

    def apply(self, batch: pa.RecordBatch) -> int:
        """Replay logged versions (in log order, so the newest wins); returns rows applied."""
        rows = batch.to_pydict()
        for pid, col, doc in zip(rows["patient_id"], rows["collection"], rows["document"]):
            document = json.loads(doc)
            self.shelf(pid, col).put(document)
            self.clock_ms = max(self.clock_ms, document["srvModified"])
        return batch.num_rows

    # -- reads ---------------------------------------------------------------------------
    def get(self, patient_id: str, collection: str, key: str) -> dict | None:
        """A document by identifier or ``_id`` (deleted ones too), or None."""
        shelf = self.shelves.get((patient_id, collection))
        if shelf is None:
            return None
        ident = key if key in shelf.docs else shelf.by_oid.get(key)
        return shelf.docs.get(ident) if ident else None

    def find(self, patient_id: str, collection: str, filters: list[Filter], limit: int,
             skip: int = 0, newest_first: bool = True) -> list[dict]:
        """Valid documents matching ``filters``, by date, at most ``limit`` after ``skip``."""
        shelf = self.shelves.get((patient_id, collection))
        if shelf is None or limit <= 0:
            return []
        out: list[dict] = []
        ordered = reversed(shelf.order) if newest_first else iter(shelf.order)
        for _, ident in ordered:
            doc = shelf.docs[ident]
            if matches(doc, filters):
                if skip:
                    skip -= 1
                    continue
                out.append(doc)
                if len(out) >= limit:
                    break
        return out

    def history(self, patient_id: str, collection: str, since_ms: int, limit: int) -> list[dict]:
        """Documents changed after ``since_ms`` (deleted ones too), oldest change first."""
        shelf = self.shelves.get((patient_id, collection))
        if shelf is None:
            return []
        changed = [d for d in shelf.docs.values() if d["srvModified"] > since_ms]
        changed.sort(key=lambda d: d["srvModified"])
        return changed[:limit]

    def last_modified(self, patient_id: str) -> dict[str, int]:
        """The newest ``srvModified`` of each of a patient's collections."""
        return {col: shelf.modified_ms for (pid, col), shelf in self.shelves.items()
                if pid == patient_id and shelf.modified_ms}
