"""The fleet controller: shard actors sized to the cluster, driven by one simulated clock.

``Fleet(config)`` creates the shards (spread over nodes, restarted by Ray if they die);
``start()`` runs the clock in a background thread. The clock starts once every shard is
built (``startup_s``), at the minute the shards resumed from (0 without checkpoints); each
tick it asks every shard to catch up to the simulated minute the wall clock allows
(``speedup`` simulated seconds per wall second, or as fast as possible). ``pause``,
``resume``, ``stop`` and ``status`` can be called from any thread while it runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

import ray

from actors.config import FleetConfig
from actors.shard import CheckpointStore, SensorShard, ShardStatus, checkpoint_fingerprint

MAX_SPEED_STEP_MIN = 60  # simulated minutes per round when running as fast as possible
ROUND_TIMEOUT_S = 600.0  # a shard that takes longer than this to answer fails the run
NODE_LABEL = "ray.io/node-id"  # the label every Ray node carries


@dataclass
class FleetStatus:
    """The fleet's progress, summed over shards, with each shard's own."""

    state: str  # created, starting, running, paused, stopped, finished, failed
    target_minute: int
    minute: int  # slowest shard's simulated minute
    duration_min: int
    sensors: int
    produced: int
    acked: int
    failed: int
    wall_s: float  # since the clock started (after start-up)
    lag_min: int
    startup_s: float = 0.0  # from start() until every shard was built
    start_minute: int = 0  # where the clock started: the checkpoints' minute, or 0
    start_acked: int = 0  # readings acked before this run (restored from checkpoints)
    documents_acked: int = 0  # treatments, device status and profiles (Nightscout sinks)
    documents_failed: int = 0
    error: str | None = None
    shards: list[ShardStatus] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class Fleet:
    """Shards of virtual sensors on a Ray cluster (``ray.init`` must have been called)."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        n = config.shards
        if n == "auto":
            n = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = min(n, config.scenario.n_patients)
        actor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(SensorShard)
        self.ranges = config.shard_ranges(n)
        if config.checkpoint_dir:  # a stale checkpoint is a config error, before any actor
            for k, (lo, hi) in enumerate(self.ranges):
                store = CheckpointStore(config.checkpoint_dir, k)
                store.verify(checkpoint_fingerprint(config, lo, hi))
        self.shards = [actor.options(**where).remote(config, k, lo, hi)
                       for k, ((lo, hi), where) in enumerate(zip(self.ranges, placements(n)))]
        self._statuses = [ShardStatus(k, hi - lo, 0) for k, (lo, hi) in enumerate(self.ranges)]
        self._state, self._error = "created", None
        self._target = 0
        self._resume = threading.Event()
        self._resume.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = self._paused_s = self._startup_s = self._pause_at = 0.0
        self._ended: float | None = None  # when the clock thread exited
        self._base_min = self._base_acked = 0  # minute and acked readings the clock started at

    # -- control ---------------------------------------------------------------------
    def start(self) -> Fleet:
        """Run the clock in a background thread (``pause`` has no effect until it is running)."""
        self._thread = threading.Thread(target=self._run, name="cgm-fleet-clock", daemon=True)
        self._state = "starting"
        self._thread.start()
        return self

    def pause(self) -> None:
        if self._state == "running":
            self._state, self._pause_at = "paused", time.monotonic()
            self._resume.clear()

    def resume(self) -> None:
        if self._state == "paused":
            self._paused_s += time.monotonic() - self._pause_at
            self._state = "running"
            self._resume.set()

    def stop(self, timeout_s: float = 60.0) -> FleetStatus:
        """Stop the clock, let shards checkpoint, and return the final status."""
        self._stop.set()
        self._resume.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._state in ("created", "starting", "running", "paused"):
            self._state = "stopped"
        try:
            self._statuses = ray.get([s.close.remote() for s in self.shards], timeout=timeout_s)
        except (ray.exceptions.RayError, TimeoutError):
            pass  # keep the last statuses we saw
        return self.status()

    def wait(self, timeout_s: float | None = None) -> FleetStatus:
        """Block until the run finishes (or ``timeout_s`` passes)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.status()

    def status(self) -> FleetStatus:
        st = self._statuses
        minute = min(s.minute for s in st)
        return FleetStatus(
            state=self._state, target_minute=self._target, minute=minute,
            duration_min=self.config.scenario.duration_min,
            sensors=sum(s.patients for s in st), produced=sum(s.produced for s in st),
            acked=sum(s.acked for s in st), failed=sum(s.failed for s in st),
            wall_s=((self._ended or time.monotonic()) - self._started) if self._started else 0.0,
            lag_min=max(0, self._target - minute), startup_s=self._startup_s,
            start_minute=self._base_min, start_acked=self._base_acked,
            documents_acked=sum(s.documents_acked for s in st),
            documents_failed=sum(s.documents_failed for s in st), error=self._error,
            shards=list(st))

    # -- the clock -------------------------------------------------------------------
    def _clock_target(self) -> int:
        duration, speed = self.config.scenario.duration_min, self.config.speedup
        if speed == "max":
            return min(duration, self._target + MAX_SPEED_STEP_MIN)
        elapsed = time.monotonic() - self._started - self._paused_s
        return min(duration, self._base_min + int(elapsed * speed / 60.0))

    def _run(self) -> None:
        duration = self.config.scenario.duration_min
        tick = self.config.tick_min
        try:
            begun = time.monotonic()
            statuses = ray.get([s.get_status.remote() for s in self.shards],
                               timeout=ROUND_TIMEOUT_S)  # every shard built (or restored)
            self._target = self._base_min = min(s.minute for s in statuses)
            self._base_acked = sum(s.acked for s in statuses)
            self._statuses = statuses
            self._started = time.monotonic()
            self._startup_s = self._started - begun
            if self._state == "starting":
                self._state = "running"
            while not self._stop.is_set():
                self._resume.wait()
                if self._stop.is_set():
                    break
                self._target = self._clock_target()
                refs = [s.advance_to.remote(self._target) for s in self.shards]
                self._statuses = ray.get(refs, timeout=ROUND_TIMEOUT_S)
                if min(s.minute for s in self._statuses) >= duration // tick * tick:
                    self._state = "finished"
                    return
                if self.config.speedup != "max":  # sleep until the next window is due
                    next_min = (self._target // tick + 1) * tick - self._base_min
                    wait_s = (next_min * 60.0 / self.config.speedup
                              - (time.monotonic() - self._started - self._paused_s))
                    self._stop.wait(max(0.0, min(wait_s, 1.0)))
        except Exception as exc:  # surfaced through status(); the CLI exits non-zero
            self._state, self._error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self._ended = time.monotonic()


def placements(n_shards: int) -> list[dict]:
    """Actor options placing each shard: round-robin over the live nodes, one slot per CPU.

    Shards take no CPU (they must fit anywhere when Ray restarts them), and Ray's "SPREAD"
    stacks such actors on one node or a zero-CPU head; a soft node affinity is not kept
    either. A node label selector is, and its fallback (any other node) is where Ray
    restarts the shard when its node is gone.
    """
    nodes = [(node["NodeID"], int(node["Resources"].get("CPU", 0)))
             for node in ray.nodes() if node["Alive"]]
    slots = [node for k in range(max((cpus for _, cpus in nodes), default=0))
             for node, cpus in nodes if cpus > k]
    if not slots:
        return [{"scheduling_strategy": "SPREAD"}] * n_shards
    return [{"label_selector": {NODE_LABEL: node},
             "fallback_strategy": [{"label_selector": {NODE_LABEL: f"!{node}"}}]}
            for node in (slots[k % len(slots)] for k in range(n_shards))]


def expected_minutes(config: FleetConfig) -> int:
    """Simulated minutes a full run covers (whole windows only)."""
    return config.scenario.duration_min // config.tick_min * config.tick_min


__all__ = ["Fleet", "FleetStatus", "expected_minutes"]
