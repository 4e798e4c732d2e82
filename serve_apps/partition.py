"""A stateful ingest partition: the patients hashed to it, their log, readings and alerts.

``LocalPartition`` is a partition's operations as the ingress awaits them, over a
``serve_apps.partition_core.PartitionCore`` in the caller's process. It runs in one of two
places, chosen by ``IngestConfig.colocate_partition``:

- inside the single ingress replica (co-located): a write is a method call, with no handle
  call, serialisation or second replica on its path;
- in a ``Partition`` deployment of its own, one replica per partition, which the ingress
  reaches through ``RemotePartition`` (a handle with the same methods).

Either way a patient's state is never split between replicas, and Serve restarts a failed
replica, which recovers its write-ahead log: every acknowledged reading is replayed into
the ring buffers, so nothing acknowledged is lost, and deduplication keeps re-sent readings
from being stored twice. Replies are the dataclasses of ``serve_apps.replies``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pyarrow as pa
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from serve_apps import heap
from serve_apps.arrow_wire import from_ipc, to_ipc
from serve_apps.config import IngestConfig
from serve_apps.glucose_period import GlucoseSeries
from serve_apps.nightscout.documents import Document
from serve_apps.nightscout.query import Filter
from serve_apps.partition_core import PartitionCore, now_ms
from serve_apps.partition_state import SensorInfo
from serve_apps.replies import PartitionStats, PartitionWrite, Rejection
from serve_apps.telemetry import IngestTelemetry

__all__ = ["LocalPartition", "Partition", "PartitionClient", "RemotePartition"]

Event = tuple[str, dict] | None  # a stream's ("reading" | "alert", record); None: keep-alive


class LocalPartition:
    """One partition's operations, awaited by the ingress, over a core in this process.

    Every method is a coroutine so that the ingress awaits a co-located partition and a
    remote one alike; they run on the caller's event loop, like the log's writer.
    """

    def __init__(self, index: int, config: IngestConfig) -> None:
        self.core = PartitionCore(index, config, IngestTelemetry(index))
        heap.collect_on_schedule()
        self._last_tick = 0.0

    async def ingest(self, table: pa.Table) -> PartitionWrite | Rejection:
        """A coalesced write (``PartitionCore.ingest``)."""
        return await self.core.ingest(table)

    async def entries(self, patient_id: str, count: int, since_ms: int | None,
                      until_ms: int | None) -> list[dict]:
        return self.core.state.entries(patient_id, count, since_ms, until_ms)

    async def hot_series(self, patient_id: str) -> GlucoseSeries:
        return self.core.state.hot_series(patient_id)

    async def cohort_series(self, cohort: str) -> dict[str, GlucoseSeries]:
        state = self.core.state
        return {p: state.hot_series(p) for p in state.cohort_patients(cohort)}

    async def cohort(self, patient_id: str) -> str | None:
        return self.core.state.patients_cohort.get(patient_id)

    async def sensors(self, patient_id: str) -> list[dict]:
        self.core.settle()  # their active alerts
        return self.core.state.sensor_status(patient_id, now_ms())

    async def alert_history(self, patient_id: str, limit: int) -> list[dict]:
        self.core.settle()
        patient = self.core.state.patients.get(patient_id)
        return [] if patient is None else list(patient.history)[-limit:][::-1]

    async def snooze(self, patient_id: str, alert: str, minutes: int) -> Rejection | None:
        return self.core.snooze(patient_id, alert, minutes)

    async def register(self, sensor_id: str, patient_id: str,
                       attrs: dict) -> SensorInfo | Rejection:
        return self.core.register(sensor_id, patient_id, attrs)

    async def set_settings(self, patient_id: str, settings: dict) -> None:
        self.core.set_settings(patient_id, settings)

    async def put_documents(self, patient_id: str, docs: list[Document]) -> list[dict]:
        return await self.core.put_documents(patient_id, docs)

    async def delete_documents(self, patient_id: str, collection: str, keys: list[str]) -> int:
        return await self.core.delete_documents(patient_id, collection, keys)

    async def find_documents(self, patient_id: str, collection: str, filters: list[Filter],
                             limit: int, skip: int = 0, newest_first: bool = True) -> list[dict]:
        return self.core.documents.find(patient_id, collection, filters, limit, skip,
                                        newest_first)

    async def get_document(self, patient_id: str, collection: str, key: str) -> dict | None:
        return self.core.documents.get(patient_id, collection, key)

    async def document_history(self, patient_id: str, collection: str, since_ms: int,
                               limit: int) -> list[dict]:
        return self.core.documents.history(patient_id, collection, since_ms, limit)

    async def last_modified(self, patient_id: str) -> dict[str, int]:
        return self.core.documents.last_modified(patient_id)

    async def flush(self) -> None:
        """Land the open log segments now (the ETL loads only landed segments)."""
        await self.core.wal.roll()
        await self.core.document_wal.roll()

    async def stats(self) -> PartitionStats:
        return self.core.stats()

    async def stream(self, patient_id: str) -> AsyncIterator[Event]:
        async for event in self.core.stream(patient_id):
            yield event

    def tick_if_due(self) -> None:
        """The timers (``PartitionCore.tick``) once per ``timer_period_s``, and the heap
        settled (``serve_apps.heap``); the replica's health checks call this, Serve's only
        periodic call into a replica."""
        if time.monotonic() - self._last_tick >= self.core.config.timer_period_s:
            self._last_tick = time.monotonic()
            self.core.tick()
            heap.settle()


@serve.deployment(num_replicas=1, max_ongoing_requests=2000, health_check_period_s=5.0,
                  logging_config={"enable_access_log": False},
                  ray_actor_options={"num_cpus": 0})
class Partition(LocalPartition):
    """A partition in a replica of its own (one per partition: state must not be split)."""

    def __init__(self, index: int, config: dict) -> None:
        super().__init__(index, IngestConfig(**config))

    async def ingest_ipc(self, batch_ipc: bytes) -> PartitionWrite | Rejection:
        """A coalesced write, as ``serve_apps.arrow_wire`` sends it."""
        return await self.ingest(from_ipc(batch_ipc))

    async def check_health(self) -> None:
        """Serve calls this every few seconds: it also drives the partition's timers."""
        self.tick_if_due()


class RemotePartition:
    """A ``Partition`` deployment through its handle, with ``LocalPartition``'s methods.

    Each call is forwarded as is (``handle.<method>.remote``); only a write (sent as Arrow
    IPC, see ``serve_apps.arrow_wire``) and the event stream are called differently.
    """

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        return getattr(self._handle, name).remote

    async def ingest(self, table: pa.Table) -> PartitionWrite | Rejection:
        return await self._handle.ingest_ipc.remote(to_ipc(table))

    def stream(self, patient_id: str) -> AsyncIterator[Event]:
        return cast(DeploymentResponseGenerator,  # what a stream=True call returns
                    self._handle.options(stream=True).stream.remote(patient_id))

    def tick_if_due(self) -> None:
        """Nothing: the partition's own replica drives its timers."""


PartitionClient = LocalPartition | RemotePartition  # what the ingress holds per partition
