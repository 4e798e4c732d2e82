"""The fleet's Prometheus telemetry as Ray metrics (exported with a ``ray_`` prefix, by shard)."""

from __future__ import annotations

from ray.util import metrics

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


class ShardTelemetry:
    """Counters and gauges one shard actor reports."""

    def __init__(self, shard: int) -> None:
        tags = ("shard",)
        self._tags = {"shard": str(shard)}
        self.produced = metrics.Counter("cgm_fleet_readings_produced",
                                        "CGM readings the shard simulated", tags)
        self.delivered = metrics.Counter("cgm_fleet_readings_delivered",
                                         "readings the sink acknowledged", tags)
        self.failed = metrics.Counter("cgm_fleet_readings_failed",
                                      "readings the sink could not deliver", tags)
        self.latency = metrics.Histogram("cgm_fleet_delivery_latency_ms",
                                         "time to deliver one window of readings",
                                         LATENCY_BOUNDARIES_MS, tags)
        self.lag = metrics.Gauge("cgm_fleet_sim_lag_min",
                                 "simulated minutes the shard is behind its clock target", tags)

    def window(self, produced: int, acked: int, failed: int, latency_ms: float) -> None:
        """Record one delivered window (Ray counters refuse increments of 0)."""
        if produced:
            self.produced.inc(produced, self._tags)
        if acked:
            self.delivered.inc(acked, self._tags)
        if failed:
            self.failed.inc(failed, self._tags)
        self.latency.observe(latency_ms, self._tags)

    def set_lag(self, minutes: int) -> None:
        self.lag.set(minutes, self._tags)
