"""A stateful ingest partition: the patients hashed to it, their log, readings and alerts.

One replica per partition deployment, so a patient's state is never split between
replicas; Serve restarts a failed replica, which recovers its write-ahead log: every
acknowledged reading is replayed into the ring buffers, so nothing acknowledged is lost,
and deduplication keeps re-sent readings from being stored twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from ray import serve

from cgm_ray.glucose.alerts import AlertSettings
from cgm_ray.schema import LANDING_SCHEMA
from serve_apps.config import IngestConfig
from serve_apps.metrics import IngestMetrics
from serve_apps.partition_state import PartitionState, SensorConflict, UnknownSensors
from serve_apps.wal import WriteAheadLog
from serve_apps.webhooks import Webhooks

KEEPALIVE_S = 15.0
REPLAY_HORIZON_S = 2 * 86_400  # landed segments younger than this rebuild the hot state


def now_ms() -> int:
    return int(time.time() * 1000)


class PartitionCore:
    """The partition's logic around a ``PartitionState`` (used by the deployment below)."""

    def __init__(self, index: int, config: IngestConfig) -> None:
        self.index, self.config = index, config
        self.state = PartitionState(config.hot_readings, config.auto_register)
        base = Path(config.data_dir)
        self.registry_path = base / "registry" / f"p{index:03d}.json"
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        self.wal = WriteAheadLog(base / "wal" / f"p{index:03d}", config.landing_dir,
                                 f"p{index:03d}", LANDING_SCHEMA, config.segment_max_bytes,
                                 config.segment_max_age_s)
        self.metrics = IngestMetrics(index)
        self.alerts_fired: Counter[str] = Counter()  # fired alerts by type
        self.newest_ts_ms = 0  # the clock of signal-loss checks in "readings" mode
        self.webhooks = Webhooks()
        self._webhook_tasks: set[asyncio.Task] = set()
        self._load_registry()
        self.wal.recover()
        self.replayed = self._replay()

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
        tmp = self.registry_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.registry_path)

    def _replay(self) -> int:
        """Rebuild rings and alert states from the log (events are not re-published)."""
        horizon = time.time() - REPLAY_HORIZON_S
        rows = 0
        for path in sorted(Path(self.config.landing_dir).glob(f"p{self.index:03d}-*.arrows")):
            if path.stat().st_mtime < horizon:
                continue
            seq = int(path.stem.rsplit("-", 1)[1])
            for batch in self.wal.replay(since_seq=seq):
                table = pa.Table.from_batches([batch])
                new, slots, _, _ = self.state.admit(table)
                self.state.alerts.evaluate(slots, new.column("ts_ms").to_numpy(),
                                           new.column("glucose_mgdl").to_numpy())
                if new.num_rows:
                    self.newest_ts_ms = max(self.newest_ts_ms,
                                            pc.max(new.column("ts_ms")).as_py())
                rows += new.num_rows
            break  # replay(since_seq) covered this and every later segment
        return rows

    async def ingest(self, table: pa.Table) -> dict:
        """Store new readings durably, then evaluate alerts.

        Returns the counts and the row numbers of ``table`` that were new, or an error
        (unknown or conflicting sensors) for which nothing was stored.
        """
        try:
            new, slots, undo, rows = self.state.admit(table)
        except UnknownSensors as exc:
            return {"error": str(exc), "status": 422}
        except SensorConflict as exc:
            return {"error": str(exc), "status": 409}
        if new.num_rows:
            try:
                await self.wal.append(new.combine_chunks().to_batches()[0])
            except Exception:
                self.state.rollback(undo)
                raise
            self._count_alerts(self.state.evaluate(slots, new))
            self.newest_ts_ms = max(self.newest_ts_ms, pc.max(new.column("ts_ms")).as_py())
        self.metrics.ingested(new.num_rows, table.num_rows - new.num_rows)
        return {"accepted": new.num_rows, "duplicates": table.num_rows - new.num_rows,
                "accepted_rows": rows}

    def _count_alerts(self, events: list[dict]) -> None:
        """Count alert events and hand them to the patients' webhooks (if any)."""
        self.metrics.alerts(events)
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
        clock_ms = now_ms() if self.config.signal_loss_clock == "wall" else self.newest_ts_ms
        if clock_ms:
            self._count_alerts(self.state.check_time(clock_ms))
        if self.wal._segment_path is not None and \
                time.monotonic() - self.wal._segment_opened >= self.config.segment_max_age_s:
            self.wal.request_roll()

    def register(self, sensor_id: str, patient_id: str, attrs: dict) -> dict:
        cohort = attrs.pop("cohort", None)
        try:
            info = self.state.register_sensor(sensor_id, patient_id, **attrs)
        except SensorConflict as exc:
            return {"error": str(exc)}
        if cohort is not None:
            self.state.patients_cohort[patient_id] = cohort
        self._save_registry()
        return {k: v for k, v in vars(info).items() if k != "slot"}

    def set_settings(self, patient_id: str, settings: dict) -> None:
        self.state.set_settings(patient_id, AlertSettings(**settings))
        self._save_registry()

    async def stream(self, patient_id: str):
        """Alert events of a patient as they happen (SSE payloads); None is a keep-alive."""
        q = self.state.subscribe(patient_id)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield None
        finally:
            self.state.unsubscribe(patient_id, q)


@serve.deployment(num_replicas=1, max_ongoing_requests=2000, health_check_period_s=5.0,
                  logging_config={"enable_access_log": False},
                  ray_actor_options={"num_cpus": 0})
class Partition:
    """Serve wrapper: one replica per partition (state must not be split)."""

    def __init__(self, index: int, config: dict) -> None:
        self.core = PartitionCore(index, IngestConfig(**config))
        self._last_tick = 0.0

    async def ingest(self, table: pa.Table) -> dict:
        return await self.core.ingest(table)

    def entries(self, patient_id: str, count: int, since_ms: int | None,
                until_ms: int | None) -> list[dict]:
        return self.core.state.entries(patient_id, count, since_ms, until_ms)

    def cohort(self, patient_id: str) -> str | None:
        return self.core.state.patients_cohort.get(patient_id)

    def sensors(self, patient_id: str) -> list[dict]:
        return self.core.state.sensor_status(patient_id, now_ms())

    def alert_history(self, patient_id: str, limit: int) -> list[dict]:
        patient = self.core.state.patients.get(patient_id)
        return [] if patient is None else list(patient.history)[-limit:][::-1]

    def snooze(self, patient_id: str, alert: str, minutes: int) -> None:
        self.core.state.snooze(patient_id, alert, minutes, now_ms())

    def register(self, sensor_id: str, patient_id: str, attrs: dict) -> dict:
        return self.core.register(sensor_id, patient_id, attrs)

    def set_settings(self, patient_id: str, settings: dict) -> None:
        self.core.set_settings(patient_id, settings)

    async def flush(self) -> None:
        """Land the open log segment now (the ETL loads only landed segments)."""
        await self.core.wal.roll()

    def stats(self) -> dict:
        return {"partition": self.core.index, "sensors": len(self.core.state.sensors),
                "patients": len(self.core.state.patients), "replayed": self.core.replayed,
                "wal_rows": self.core.wal.appended_rows, "wal_commits": self.core.wal.commits,
                "alerts_fired": self.core.alerts_fired.total(),
                "alerts_fired_by_type": dict(self.core.alerts_fired),
                "webhooks_delivered": self.core.webhooks.delivered,
                "webhooks_failed": self.core.webhooks.failed}

    async def stream(self, patient_id: str):
        async for event in self.core.stream(patient_id):
            yield event

    async def check_health(self) -> None:
        """Serve calls this every few seconds: it also drives the partition's timers."""
        if time.monotonic() - self._last_tick >= self.core.config.timer_period_s:
            self._last_tick = time.monotonic()
            self.core.tick()
