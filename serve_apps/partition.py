"""A stateful ingest partition: the patients hashed to it, their log, readings and alerts.

One replica per partition deployment, so a patient's state is never split between
replicas; Serve restarts a failed replica, which recovers its write-ahead log: every
acknowledged reading is replayed into the ring buffers, so nothing acknowledged is lost,
and deduplication keeps re-sent readings from being stored twice. The logic is
``serve_apps.partition_core.PartitionCore`` (plain Python); this class only adapts it to
Serve, and its replies are the dataclasses of ``serve_apps.replies``.
"""

from __future__ import annotations

import time

from ray import serve

from serve_apps.arrow_wire import from_ipc
from serve_apps.config import IngestConfig
from serve_apps.glucose_period import GlucoseSeries
from serve_apps.nightscout.documents import Document
from serve_apps.nightscout.query import Filter
from serve_apps.partition_core import PartitionCore, now_ms
from serve_apps.partition_state import SensorInfo
from serve_apps.replies import PartitionStats, PartitionWrite, Rejection
from serve_apps.telemetry import IngestTelemetry


@serve.deployment(num_replicas=1, max_ongoing_requests=2000, health_check_period_s=5.0,
                  logging_config={"enable_access_log": False},
                  ray_actor_options={"num_cpus": 0})
class Partition:
    """Serve wrapper: one replica per partition (state must not be split)."""

    def __init__(self, index: int, config: dict) -> None:
        self.core = PartitionCore(index, IngestConfig(**config), IngestTelemetry(index))
        self._last_tick = 0.0

    async def ingest(self, batch_ipc: bytes) -> PartitionWrite | Rejection:
        """A coalesced write, as ``serve_apps.arrow_wire`` sends it."""
        return await self.core.ingest(from_ipc(batch_ipc))

    def entries(self, patient_id: str, count: int, since_ms: int | None,
                until_ms: int | None) -> list[dict]:
        return self.core.state.entries(patient_id, count, since_ms, until_ms)

    def hot_series(self, patient_id: str) -> GlucoseSeries:
        return self.core.state.hot_series(patient_id)

    def cohort_series(self, cohort: str) -> dict[str, GlucoseSeries]:
        state = self.core.state
        return {p: state.hot_series(p) for p in state.cohort_patients(cohort)}

    def cohort(self, patient_id: str) -> str | None:
        return self.core.state.patients_cohort.get(patient_id)

    def sensors(self, patient_id: str) -> list[dict]:
        return self.core.state.sensor_status(patient_id, now_ms())

    def alert_history(self, patient_id: str, limit: int) -> list[dict]:
        patient = self.core.state.patients.get(patient_id)
        return [] if patient is None else list(patient.history)[-limit:][::-1]

    def snooze(self, patient_id: str, alert: str, minutes: int) -> Rejection | None:
        return self.core.snooze(patient_id, alert, minutes)

    def register(self, sensor_id: str, patient_id: str, attrs: dict) -> SensorInfo | Rejection:
        return self.core.register(sensor_id, patient_id, attrs)

    def set_settings(self, patient_id: str, settings: dict) -> None:
        self.core.set_settings(patient_id, settings)

    async def put_documents(self, patient_id: str, docs: list[Document]) -> list[dict]:
        return await self.core.put_documents(patient_id, docs)

    async def delete_documents(self, patient_id: str, collection: str, keys: list[str]) -> int:
        return await self.core.delete_documents(patient_id, collection, keys)

    def find_documents(self, patient_id: str, collection: str, filters: list[Filter],
                       limit: int, skip: int = 0, newest_first: bool = True) -> list[dict]:
        return self.core.documents.find(patient_id, collection, filters, limit, skip,
                                        newest_first)

    def get_document(self, patient_id: str, collection: str, key: str) -> dict | None:
        return self.core.documents.get(patient_id, collection, key)

    def document_history(self, patient_id: str, collection: str, since_ms: int,
                         limit: int) -> list[dict]:
        return self.core.documents.history(patient_id, collection, since_ms, limit)

    def last_modified(self, patient_id: str) -> dict[str, int]:
        return self.core.documents.last_modified(patient_id)

    async def flush(self) -> None:
        """Land the open log segments now (the ETL loads only landed segments)."""
        await self.core.wal.roll()
        await self.core.document_wal.roll()

    def stats(self) -> PartitionStats:
        return self.core.stats()

    async def stream(self, patient_id: str):
        async for event in self.core.stream(patient_id):
            yield event

    async def check_health(self) -> None:
        """Serve calls this every few seconds: it also drives the partition's timers."""
        if time.monotonic() - self._last_tick >= self.core.config.timer_period_s:
            self._last_tick = time.monotonic()
            self.core.tick()
