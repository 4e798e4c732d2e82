"""Running a fleet to the end: start it, watch it, stop it, and report what it delivered.

``run_fleet`` is what the command line and the demo call; it returns a typed
``FleetReport``, and shows progress with a ``ProgressLine`` when given one.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import TextIO

import numpy as np
import ray

from actors.config import FleetConfig
from actors.fleet import Fleet, FleetStatus
from actors.run_series import RunSeries, write_report
from cgm_ray.client import alerts_fired

PROGRESS_EVERY_S = 1.0
LOG_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class LatencyMs:
    """Window delivery latency percentiles in ms (None when nothing was delivered)."""

    p50: float | None
    p95: float | None
    p99: float | None


@dataclass
class FleetReport:
    """What one fleet run did (``--json`` prints it as an object with these keys)."""

    state: str  # finished, stopped or failed
    error: str | None
    sensors: int
    shards: int
    nodes: int
    simulated_min: int
    startup_s: float
    duration_s: float
    readings_sent: int
    readings_acked: int
    readings_failed: int
    readings_per_s: float
    latency_ms: LatencyMs
    lag_min: int
    alerts_received: int  # alerts the ingest fired meanwhile (0 unless an http sink)
    documents_acked: int  # treatments, device status, profiles (a Nightscout sink; else 0)
    documents_failed: int
    report_html: str | None = None  # the run over time (``actors.run_series``), if written

    @property
    def ok(self) -> bool:
        """Ran to its end (or its wall-clock limit) without an error."""
        return self.state in ("finished", "stopped") and not self.error

    def as_dict(self) -> dict:
        return asdict(self)


class ProgressLine:
    """Prints a fleet's progress to ``stream``: one line rewritten in place on a terminal,
    a line every few seconds in a log file (``every_s`` says how often to call it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr  # the stderr of the call, not of the import
        self.stream, self.tty = stream, stream.isatty()
        self.every_s = PROGRESS_EVERY_S if self.tty else LOG_PROGRESS_EVERY_S
        self._last = (time.monotonic(), 0)

    def __call__(self, status: FleetStatus) -> None:
        now = time.monotonic()
        rate = ((status.acked - max(self._last[1], status.start_acked))
                / max(now - self._last[0], 1e-9))
        print(("\r" if self.tty else "") + f"sim {status.minute:>7}/{status.duration_min} min | "
              f"{status.acked:>12,} readings ({rate:>9,.0f}/s) | "
              f"{status.failed:,} failed | lag {status.lag_min} min",
              end="" if self.tty else "\n", file=self.stream, flush=True)
        self._last = (now, status.acked)

    def close(self) -> None:
        """End the line rewritten in place."""
        if self.tty:
            print(file=self.stream)


def run_fleet(config: FleetConfig, progress: ProgressLine | None = None,
              max_wall_s: float | None = None, report_dir: str | None = None,
              title: str = "cgm-ray fleet run") -> FleetReport:
    """Run a fleet to completion (or ``max_wall_s`` of wall clock, or Ctrl-C), showing
    ``progress`` as it goes, and with ``report_dir`` write the run over time there
    (``report.html``, ``report.png``, ``series.json``). Ray must be initialised."""
    sink = config.sink
    http = sink.kind == "http"
    alerts_before = alerts_fired(sink.url, sink.secret_env) if http else 0
    fleet = Fleet(config).start()
    nodes = len(set(ray.get([shard.node_id.remote() for shard in fleet.shards])))
    every_s = progress.every_s if progress is not None else PROGRESS_EVERY_S
    series = RunSeries()
    try:
        while True:
            status = fleet.wait(every_s)
            if report_dir is not None and status.state != "starting":
                series.sample(status, alerts_fired(sink.url, sink.secret_env) - alerts_before
                              if http else 0)
            if progress is not None:
                progress(status)
            if status.state in ("finished", "failed"):
                break
            if max_wall_s is not None and status.wall_s >= max_wall_s:
                break
    except KeyboardInterrupt:
        pass
    status = fleet.stop()
    if progress is not None:
        progress.close()
    latencies = np.concatenate([np.asarray(s.latency_ms, float) for s in status.shards] or [[]])
    p50, p95, p99 = ([float(v) for v in np.percentile(latencies, [50, 95, 99])]
                     if len(latencies) else [None] * 3)
    report = FleetReport(
        state=status.state, error=status.error, sensors=status.sensors,
        shards=len(status.shards), nodes=nodes, simulated_min=status.minute,
        startup_s=round(status.startup_s, 3), duration_s=round(status.wall_s, 3),
        readings_sent=status.produced, readings_acked=status.acked,
        readings_failed=status.failed,
        readings_per_s=(round((status.acked - status.start_acked) / status.wall_s, 1)
                        if status.wall_s else 0.0),
        latency_ms=LatencyMs(p50, p95, p99), lag_min=status.lag_min,
        alerts_received=alerts_fired(sink.url, sink.secret_env) - alerts_before if http else 0,
        documents_acked=status.documents_acked, documents_failed=status.documents_failed,
    )
    if report_dir is not None:
        series.sample(status, report.alerts_received)
        report.report_html = str(write_report(series, report.as_dict(), report_dir, title))
    return report
