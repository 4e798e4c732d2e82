"""A shard actor: many virtual sensors as arrays, advanced on the fleet's clock.

The shard simulates its patients in aligned windows of ``tick_min`` simulated minutes and
hands each window's readings to its sink. It checkpoints (simulation state, titrated
therapy, counters) every ``checkpoint_every_min``; a restarted shard (Ray re-runs
``__init__`` after a crash) resumes from the checkpoint and re-produces the same windows
bit for bit, which idempotent sinks absorb, so nothing is lost or duplicated. A checkpoint
records which fleet wrote it; one left by a different scenario, tick or sharding is refused
rather than resumed into the wrong patients.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numba
import numpy as np
import pyarrow.fs as pafs
import ray

from actors.config import FleetConfig
from actors.sinks import Window, make_sink
from actors.telemetry import ShardTelemetry
from actors.window_events import window_events
from cgm_ray.errors import ConfigError
from cgm_ray.fs import open_filesystem, write_bytes_atomic, write_parquet_atomic
from simulators.encoding import ReadingEncoder, patients_table
from simulators.nightscout_profile import programmed_therapy

LATENCY_SAMPLES = 10_000


@dataclass
class ShardStatus:
    """Progress of one shard."""

    shard: int
    patients: int
    minute: int  # simulated minutes done
    produced: int = 0
    acked: int = 0
    failed: int = 0
    windows: int = 0
    documents_acked: int = 0  # treatments, device status, profiles (Nightscout sinks)
    documents_failed: int = 0
    restored_from_min: int | None = None
    latency_ms: list[float] = field(default_factory=list)  # last LATENCY_SAMPLES deliveries


class CheckpointStore:
    """One ``.npz`` per shard in a local directory or pyarrow filesystem URI, replaced atomically."""

    def __init__(self, root: str, shard: int) -> None:
        self.fs, base = open_filesystem(root)
        self.fs.create_dir(base, recursive=True)
        self.path = f"{base}/shard-{shard:05d}.npz"

    def verify(self, fingerprint: str) -> None:
        """Refuse a checkpoint here that a different fleet (``checkpoint_fingerprint``) wrote."""
        if self.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
            return
        with self.fs.open_input_file(self.path) as fh, np.load(fh) as data:
            found = str(data["fingerprint"]) if "fingerprint" in data.files else None
        if found != fingerprint:
            raise ConfigError("checkpoint_dir", f"{self.path} is the checkpoint of a different "
                              "fleet (scenario, tick_min or shards changed); delete it or "
                              "choose another checkpoint_dir")

    def load(self) -> dict | None:
        if self.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(self.path) as fh:
            with np.load(io.BytesIO(fh.read())) as data:
                return {k: data[k] for k in data.files}

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        np.savez(buf, **state)
        write_bytes_atomic(self.fs, self.path, buf.getvalue())


def checkpoint_fingerprint(config: FleetConfig, lo: int, hi: int) -> str:
    """What a shard's state depends on: the scenario (bar its length), tick and patient range."""
    scenario = config.scenario.model_dump(mode="json", exclude={"duration_min"})
    what = {"scenario": scenario, "tick_min": config.tick_min, "lo": lo, "hi": hi}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


class SensorShard:
    """Patients ``[lo, hi)`` of the fleet's scenario, wearing sensors, on the fleet clock."""

    def __init__(self, config: FleetConfig, shard: int, lo: int, hi: int) -> None:
        numba.set_num_threads(min(config.threads_per_shard, numba.config.NUMBA_NUM_THREADS))
        self.config, self.scenario = config, config.scenario
        self.store = CheckpointStore(config.checkpoint_dir, shard) if config.checkpoint_dir else None
        self.fingerprint = checkpoint_fingerprint(config, lo, hi)
        if self.store:
            self.store.verify(self.fingerprint)
        saved = self.store.load() if self.store else None
        cohort = self.scenario.cohort(lo, hi, titrated=saved is None)
        if saved is not None:  # the titrated therapy is part of the checkpoint
            cohort = replace(cohort, cr_g_per_u=saved["cr_g_per_u"],
                             cf_mgdl_per_u=saved["cf_mgdl_per_u"])
        self.sim = self.scenario.build(cohort)
        self.status = ShardStatus(shard=shard, patients=hi - lo, minute=0)
        if saved is not None:
            self.sim.load_state_dict(saved)
            counters = {k[len("status_"):]: int(v) for k, v in saved.items() if k.startswith("status_")}
            self.status = replace(self.status, **counters, minute=self.sim.minute,
                                  restored_from_min=self.sim.minute)
        if config.attributes_dir and saved is None:
            fs, root = open_filesystem(config.attributes_dir)
            write_parquet_atomic(fs, f"{root}/patients-s{shard:05d}.parquet",
                                 patients_table(self.sim))
        self.sink = make_sink(config.sink, programmed_therapy(self.sim))
        self.encoder = ReadingEncoder(self.sim.cohort, self.scenario.start_ms, self.sim.sensor.name)
        self.telemetry = ShardTelemetry(shard)

    def advance_to(self, minute: int) -> ShardStatus:
        """Simulate and deliver every whole window up to simulated ``minute``."""
        tick = self.config.tick_min
        target = min(minute, self.scenario.duration_min) // tick * tick
        while self.sim.minute < target:
            step = self.sim.advance(tick)
            table = self.encoder.table(step.readings)
            treatments, loop = (window_events(step, self.sim, self.scenario.start_ms)
                                if self.sink.wants_treatments else (None, None))
            started = time.perf_counter()
            delivery = self.sink.deliver(Window(self.status.shard, step.t0, self.sim.minute,
                                                self.scenario.start_ms, table, treatments, loop))
            latency_ms = (time.perf_counter() - started) * 1000
            self.telemetry.window(table.num_rows, delivery.acked, delivery.failed, latency_ms)
            s = self.status
            s.latency_ms = s.latency_ms[-(LATENCY_SAMPLES - 1):] + [latency_ms]
            s.minute, s.windows = self.sim.minute, s.windows + 1
            s.produced, s.acked, s.failed = (s.produced + table.num_rows, s.acked + delivery.acked,
                                             s.failed + delivery.failed)
            s.documents_acked += delivery.documents_acked
            s.documents_failed += delivery.documents_failed
            if self.store and self.sim.minute % self.config.checkpoint_every_min == 0:
                self._checkpoint()
        self.telemetry.set_lag(max(0, minute - self.sim.minute))
        return self.status

    def _checkpoint(self) -> None:
        counters = {f"status_{k}": v for k, v in asdict(self.status).items()
                    if k in ("produced", "acked", "failed", "windows", "documents_acked",
                             "documents_failed")}
        self.store.save({**self.sim.state_dict(), **counters,
                         "fingerprint": np.array(self.fingerprint),
                         "cr_g_per_u": self.sim.cohort.cr_g_per_u,
                         "cf_mgdl_per_u": self.sim.cohort.cf_mgdl_per_u})

    def get_status(self) -> ShardStatus:
        return self.status

    def node_id(self) -> str:
        """The Ray node this shard runs on."""
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        """This shard's process id (for memory accounting)."""
        return os.getpid()

    def close(self) -> ShardStatus:
        """Flush the sink and checkpoint; the shard can be resumed later."""
        if self.store:
            self._checkpoint()
        self.sink.close()
        return self.status
