"""One partition's logic: its ``PartitionState``, write-ahead log, registry file and alerts.

Plain Python (no Ray): ``serve_apps.partition`` wraps it in a Serve deployment and hands
it the Ray metrics; tests build it directly. A reading is acknowledged only once the log
has made it durable; readings whose append failed are taken back out of the ring buffers
(``PartitionState.rollback``), so a retry stores them rather than calling them duplicates.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from cgm_ray.fs import write_bytes_atomic
from cgm_ray.glucose.alerts import AlertSettings
from cgm_ray.schema import LANDING_SCHEMA
from serve_apps.config import IngestConfig
from serve_apps.partition_state import PartitionState, SensorConflict, SensorInfo, UnknownSensors
from serve_apps.replies import PartitionStats, PartitionWrite, Rejection
from serve_apps.wal import WriteAheadLog
from serve_apps.webhooks import Webhooks

KEEPALIVE_S = 15.0
REPLAY_HORIZON_S = 2 * 86_400  # landed segments younger than this rebuild the hot state


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
        self.state = PartitionState(config.hot_readings, config.auto_register)
        base = Path(config.data_dir).resolve()
        self.registry_path = base / "registry" / f"p{index:03d}.json"
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        self.wal = WriteAheadLog(base / "wal" / f"p{index:03d}", config.landing_dir,
                                 f"p{index:03d}", LANDING_SCHEMA, config.segment_max_bytes,
                                 config.segment_max_age_s)
        self.telemetry = telemetry or NoCounters()
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
        write_bytes_atomic(pafs.LocalFileSystem(), str(self.registry_path),
                           json.dumps(data).encode())

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
            self._count_alerts(self.state.evaluate(slots, new))
            self.newest_ts_ms = max(self.newest_ts_ms, pc.max(new.column("ts_ms")).as_py())
        self.telemetry.ingested(new.num_rows, table.num_rows - new.num_rows)
        return PartitionWrite(new.num_rows, table.num_rows - new.num_rows, rows)

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
        clock_ms = now_ms() if self.config.signal_loss_clock == "wall" else self.newest_ts_ms
        if clock_ms:
            self._count_alerts(self.state.check_time(clock_ms))
        if self.wal._segment_path is not None and \
                time.monotonic() - self.wal._segment_opened >= self.config.segment_max_age_s:
            self.wal.request_roll()

    def register(self, sensor_id: str, patient_id: str, attrs: dict) -> SensorInfo | Rejection:
        """Register a sensor to a patient (409 if it belongs to another patient)."""
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
        self.state.set_settings(patient_id, AlertSettings(**settings))
        self._save_registry()

    def snooze(self, patient_id: str, alert: str, minutes: int) -> Rejection | None:
        """Silence one alert type of a patient's sensors (404 for a patient never seen)."""
        if patient_id not in self.state.patients:
            return Rejection(404, f"no sensors for patient {patient_id!r}")
        self.state.snooze(patient_id, alert, minutes, now_ms())
        return None

    def stats(self) -> PartitionStats:
        return PartitionStats(
            partition=self.index, sensors=len(self.state.sensors),
            patients=len(self.state.patients), replayed=self.replayed,
            wal_rows=self.wal.appended_rows, wal_commits=self.wal.commits,
            alerts_fired=self.alerts_fired.total(), alerts_fired_by_type=dict(self.alerts_fired),
            webhooks_delivered=self.webhooks.delivered, webhooks_failed=self.webhooks.failed)

    async def stream(self, patient_id: str):
        """Alert events of a patient as they happen (SSE payloads); None is a keep-alive."""
        q = self.state.subscribe(patient_id)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield None
        finally:
            self.state.unsubscribe(patient_id, q)

