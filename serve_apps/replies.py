"""What travels between the ingress and its partitions: small frozen dataclasses.

A Serve handle call pickles its result, so replies are plain values, not exceptions: an
error raised in a replica reaches the caller wrapped in Ray's own error types (and is
reserved here for "storage did not answer"), while a refusal the partition decided on is
an ordinary ``Rejection`` value the ingress tells apart with ``isinstance``. Plain Python:
no Ray or HTTP, so the seam is tested without a cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["PartitionStats", "PartitionWrite", "Rejection", "WriteCounts", "UNAVAILABLE"]

REASON_PHRASES = {400: "Bad Request", 404: "Not Found", 409: "Conflict",
                  422: "Unprocessable Entity", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request refused with HTTP ``status`` for ``reason``; nothing of it was stored."""

    status: int
    reason: str

    @property
    def phrase(self) -> str:
        """The HTTP reason phrase of ``status`` ("Conflict", ...)."""
        return REASON_PHRASES.get(self.status, "Error")


# A partition that did not answer (or whose log append failed): retrying may succeed.
UNAVAILABLE = Rejection(503, "storage did not confirm the write; retry")


@dataclass(frozen=True, slots=True)
class PartitionWrite:
    """A partition's answer to one ``ingest`` call: everything in it is durable.

    ``accepted_rows`` are the row numbers (of the table sent) that were new; the other
    rows were already stored and are counted as duplicates.
    """

    accepted: int
    duplicates: int
    accepted_rows: np.ndarray


@dataclass(slots=True)
class WriteCounts:
    """One request's readings: how many were new and how many were already stored."""

    accepted: int = 0
    duplicates: int = 0

    def add(self, accepted: int, duplicates: int) -> None:
        self.accepted += accepted
        self.duplicates += duplicates

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates}


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """A partition's counters (``GET /api/v2/stats`` lists one per partition)."""

    partition: int
    sensors: int
    patients: int
    replayed: int
    wal_rows: int
    wal_commits: int
    wal_fsync: str  # how the log syncs: io_uring, linux_aio, loop (or "not started")
    alerts_fired: int
    alerts_fired_by_type: dict[str, int]
    webhooks_delivered: int
    webhooks_failed: int
    documents_replayed: int = 0  # Nightscout document versions replayed at start
    document_rows: int = 0  # document versions logged since start

    def as_json(self) -> dict:
        return asdict(self)
