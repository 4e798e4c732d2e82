"""One partition's logic: its ``PartitionState``, write-ahead log, registry file and alerts.

Plain Python (no Ray): ``serve_apps.partition`` wraps it in a Serve deployment and hands
it the Ray metrics; tests build it directly. A reading is acknowledged only once the log
has made it durable; readings whose append failed are taken back out of the ring buffers
(``PartitionState.rollback``), so a retry stores them rather than calling them duplicates.

The alert rules run over durable readings in batches (``settle``), not once a write: an
alert round costs ~70 numpy calls whatever its size, so with single-reading uploads (a write
of ~12) it was a tenth of the ingress's CPU (measured by leaving it out). A durable
reading's alerts come at most ``alert_batch_ms`` later, and every read or change of alert
state settles first, so none of them misses an acknowledged reading.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from cgm_ray.fs import write_bytes_atomic
from cgm_ray.glucose.alerts import AlertSettings
from cgm_ray.schema import DOCUMENT_SCHEMA, LANDING_SCHEMA
from serve_apps.config import IngestConfig
from serve_apps.nightscout.documents import Document
from serve_apps.nightscout.store import DocumentStore
from serve_apps.partition_lock import PartitionLock
from serve_apps.partition_state import PartitionState, SensorConflict, SensorInfo, UnknownSensors
from serve_apps.replies import PartitionStats, PartitionWrite, Rejection
from serve_apps.wal import WriteAheadLog
from serve_apps.webhooks import Webhooks

KEEPALIVE_S = 15.0
REPLAY_HORIZON_S = 2 * 86_400  # landed segments younger than this rebuild the hot state
# Documents are few (a closed loop makes ~600 a day) and apps read weeks of them (profiles,
# site changes), so their hot state reaches further back.
DOCUMENT_REPLAY_HORIZON_S = 30 * 86_400


def now_ms() -> int:
    return int(time.time() * 1000)


class Counters(Protocol):
    """What a partition reports to its telemetry (``serve_apps.telemetry.IngestTelemetry``)."""

    def ingested(self, stored: int, duplicates: int) -> None: ...

    def alerts(self, events: list[dict]) -> None: ...


class NoCounters:
    """Counters that count nothing (tests, tools)."""

    def ingested(self, stored: int, duplicates: int) -> None:
        pass

    def alerts(self, events: list[dict]) -> None:
        pass


class PartitionCore:
    """The partition's logic around a ``PartitionState`` (the deployment delegates here)."""

    def __init__(self, index: int, config: IngestConfig, telemetry: Counters | None = None) -> None:
        self.index, self.config = index, config
        base = Path(config.data_dir).resolve()
        self.lock = PartitionLock(base / "locks" / f"p{index:03d}.lock",
                                  f"partition {index} ({base})")
        self.state = PartitionState(config.hot_readings, config.auto_register)
        self.registry_path = base / "registry" / f"p{index:03d}.json"
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        self.wal = WriteAheadLog(base / "wal" / f"p{index:03d}", config.landing_dir,
                                 f"p{index:03d}", LANDING_SCHEMA, config.segment_max_bytes,
                                 config.segment_max_age_s, config.wal_fsync)
        self.documents = DocumentStore(config.max_documents)
        self.document_wal = WriteAheadLog(base / "documents" / f"p{index:03d}",
                                          config.documents_landing_dir, f"p{index:03d}",
                                          DOCUMENT_SCHEMA, config.segment_max_bytes,
                                          config.segment_max_age_s, config.wal_fsync)
        self.telemetry = telemetry or NoCounters()
        self.alerts_fired: Counter[str] = Counter()  # fired alerts by type
        self.newest_ts_ms = 0  # the clock of signal-loss checks in "readings" mode
        self.webhooks = Webhooks()
        self._webhook_tasks: set[asyncio.Task] = set()
        self._unevaluated: list[tuple[np.ndarray, pa.Table]] = []  # durable, rules not run
        self._settle_timer: asyncio.TimerHandle | None = None
        self._load_registry()
        self.wal.recover()
        self.replayed = self._replay()
        self.document_wal.recover()
        self.replayed_documents = sum(
            self.documents.apply(batch) for batch in
            _recent_batches(self.document_wal, DOCUMENT_REPLAY_HORIZON_S))
        self.documents.evict()

    def _load_registry(self) -> None:
        if not self.registry_path.exists():
            return
        saved = json.loads(self.registry_path.read_text())
        for pid, settings in saved.get("settings", {}).items():
            self.state.set_settings(pid, AlertSettings(**settings))
        for pid, cohort in saved.get("cohorts", {}).items():
            self.state.patients_cohort[pid] = cohort
        for info in saved.get("sensors", []):
            self.state.register_sensor(**info)

    def _save_registry(self) -> None:
        data = {
            "settings": {pid: p.settings.model_dump() for pid, p in self.state.patients.items()},
            "cohorts": self.state.patients_cohort,
            "sensors": [{k: v for k, v in vars(s).items() if k not in ("slot", "registered_ms")}
                        for s in self.state.sensors.values()],
        }
        write_bytes_atomic(pafs.LocalFileSystem(), str(self.registry_path),
                           json.dumps(data).encode())

    def _replay(self) -> int:
        """Rebuild rings and alert states from the log (events are not re-published)."""
        rows = 0
        for batch in _recent_batches(self.wal, REPLAY_HORIZON_S):
            table = pa.Table.from_batches([batch])
            new, slots, _, _ = self.state.admit(table)
            self.state.alerts.evaluate(slots, new.column("ts_ms").to_numpy(),
                                       new.column("glucose_mgdl").to_numpy())
            self._advance_clock(new)
            rows += new.num_rows
        return rows

    async def ingest(self, table: pa.Table) -> PartitionWrite | Rejection:
        """Store new readings durably, then evaluate alerts.

        Returns the counts and the row numbers of ``table`` that were new, or a
        ``Rejection`` (unknown sensors: 422, a sensor of another patient: 409) for which
        nothing was stored. Raises if the log could not make the new readings durable;
        they are then forgotten again, so a retry stores them.
        """
        try:
            new, slots, undo, rows = self.state.admit(table)
        except UnknownSensors as exc:
            return Rejection(422, str(exc))
        except SensorConflict as exc:
            return Rejection(409, str(exc))
        if new.num_rows:
            try:
                await self.wal.append(new.combine_chunks().to_batches()[0])
            except Exception:
                self.state.rollback(undo)
                raise
            self.state.publish_readings(new)
            self._unevaluated.append((slots, new))
            if self._settle_timer is None:
                self._settle_timer = asyncio.get_running_loop().call_later(
                    self.config.alert_batch_ms / 1000, self.settle)
            self._advance_clock(new)
        self.telemetry.ingested(new.num_rows, table.num_rows - new.num_rows)
        return PartitionWrite(new.num_rows, table.num_rows - new.num_rows, rows)

    def settle(self) -> None:
        """Run the alert rules over the readings made durable since the last settle, as if
        each write had run them alone (``unseen_by_earlier_writes``)."""
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if not self._unevaluated:
            return
        pending, self._unevaluated = self._unevaluated, []
        slots_by_write = [s for s, _ in pending]
        ts_by_write = [t.column("ts_ms").to_numpy() for _, t in pending]
        slots, ts = np.concatenate(slots_by_write), np.concatenate(ts_by_write)
        glucose = np.concatenate([t.column("glucose_mgdl").to_numpy() for _, t in pending])
        if len(pending) > 1:
            keep = unseen_by_earlier_writes(slots_by_write, ts_by_write)
            if not keep.all():
                slots, ts, glucose = slots[keep], ts[keep], glucose[keep]
        self._count_alerts(self.state.evaluate(slots, ts, glucose))

    def _advance_clock(self, new: pa.Table) -> None:
        """Move the clock of "readings"-mode signal-loss checks to the newest reading stored."""
        if new.num_rows:
            self.newest_ts_ms = max(self.newest_ts_ms, int(new.column("ts_ms").to_numpy().max()))

    async def put_documents(self, patient_id: str, docs: list[Document]) -> list[dict]:
        """Create or replace documents; returns them as stored, once durable.

        Raises if the log could not make them durable; the store is then rolled back, so
        nothing unacknowledged is served and a retry stores them.
        """
        versions, undo = self.documents.upsert(patient_id, docs, now_ms())
        await self._log_documents(versions, undo)
        self.documents.evict()
        return [v.document for v in versions]

    async def delete_documents(self, patient_id: str, collection: str, keys: list[str]) -> int:
        """Soft-delete documents by identifier or ``_id``; returns how many were deleted."""
        versions, undo = self.documents.delete(patient_id, collection, keys, now_ms())
        await self._log_documents(versions, undo)
        return len(versions)

    async def _log_documents(self, versions: list, undo: list) -> None:
        if not versions:
            return
        try:
            await self.document_wal.append(DocumentStore.log_rows(versions))
        except Exception:
            DocumentStore.rollback(undo)
            raise

    def _count_alerts(self, events: list[dict]) -> None:
        """Count alert events and hand them to the patients' webhooks (if any)."""
        self.telemetry.alerts(events)
        self.alerts_fired.update(e["type"] for e in events if e["state"] == "fired")
        hooks: dict[str, list[dict]] = {}
        for e in events:
            url = self.state.patients[e["patient_id"]].settings.webhook_url
            if url:
                hooks.setdefault(url, []).append(e)
        for url, batch in hooks.items():
            task = asyncio.get_running_loop().create_task(self.webhooks.post(url, batch))
            self._webhook_tasks.add(task)
            task.add_done_callback(self._webhook_tasks.discard)

    def tick(self) -> None:
        """Timer work: signal-loss and expiry alerts, and rolling an idle log segment."""
        self.settle()
        clock_ms = now_ms() if self.config.signal_loss_clock == "wall" else self.newest_ts_ms
        if clock_ms:
            self._count_alerts(self.state.check_time(clock_ms))
        for wal in (self.wal, self.document_wal):
            if wal._segment_path is not None and \
                    time.monotonic() - wal._segment_opened >= self.config.segment_max_age_s:
                wal.request_roll()

    def register(self, sensor_id: str, patient_id: str, attrs: dict) -> SensorInfo | Rejection:
        """Register a sensor to a patient (409 if it belongs to another patient)."""
        self.settle()
        cohort = attrs.pop("cohort", None)
        try:
            info = self.state.register_sensor(sensor_id, patient_id, **attrs)
        except SensorConflict as exc:
            return Rejection(409, str(exc))
        if cohort is not None:
            self.state.patients_cohort[patient_id] = cohort
        self._save_registry()
        return info

    def set_settings(self, patient_id: str, settings: dict) -> None:
        self.settle()
        self.state.set_settings(patient_id, AlertSettings(**settings))
        self._save_registry()

    def snooze(self, patient_id: str, alert: str, minutes: int) -> Rejection | None:
        """Silence one alert type of a patient's sensors (404 for a patient never seen)."""
        self.settle()
        if patient_id not in self.state.patients:
            return Rejection(404, f"no sensors for patient {patient_id!r}")
        self.state.snooze(patient_id, alert, minutes, now_ms())
        return None

    def close(self) -> None:
        """Let another process hold this partition (its logs stay as a crash leaves them)."""
        self.lock.release()

    def stats(self) -> PartitionStats:
        self.settle()
        return PartitionStats(
            partition=self.index, sensors=len(self.state.sensors),
            patients=len(self.state.patients), replayed=self.replayed,
            wal_rows=self.wal.appended_rows, wal_commits=self.wal.commits,
            wal_fsync=self.wal.fsync_backend,
            alerts_fired=self.alerts_fired.total(), alerts_fired_by_type=dict(self.alerts_fired),
            webhooks_delivered=self.webhooks.delivered, webhooks_failed=self.webhooks.failed,
            documents_replayed=self.replayed_documents,
            document_rows=self.document_wal.appended_rows)

    async def stream(self, patient_id: str):
        """A patient's events as they happen, ("reading" | "alert", record); None is a
        keep-alive."""
        self.settle()
        q = self.state.subscribe(patient_id)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield None
        finally:
            self.state.unsubscribe(patient_id, q)



def unseen_by_earlier_writes(slots: list[np.ndarray], ts_ms: list[np.ndarray]) -> np.ndarray:
    """Which readings of consecutive writes (slots and times, write by write) are newer than
    every reading of their sensor in the earlier writes: the ones that would drive alerts had
    each write been evaluated alone (within a write, the rules order readings by time)."""
    flat = np.concatenate(slots)
    if len(np.unique(flat)) == len(flat):  # each sensor in one write only: all of them
        return np.ones(len(flat), bool)
    newest: dict[int, int] = {}
    keep: list[bool] = []
    for write_slots, write_ts in zip(slots, ts_ms):
        pairs = list(zip(write_slots.tolist(), write_ts.tolist()))
        keep += [s not in newest or t > newest[s] for s, t in pairs]
        for s, t in pairs:
            newest[s] = max(t, newest.get(s, t))
    return np.array(keep, bool)


def _recent_batches(wal: WriteAheadLog, horizon_s: float):
    """The durable batches of ``wal``'s landed segments from the first one younger than
    ``horizon_s`` on (segments are numbered in the order they were written)."""
    horizon = time.time() - horizon_s
    for path in wal.landed():
        if path.stat().st_mtime >= horizon:
            yield from wal.replay(since_seq=int(path.stem.rsplit("-", 1)[1]))
            return
