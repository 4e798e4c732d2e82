"""The ingest's Prometheus telemetry as Ray metrics (exported with a ``ray_`` prefix)."""

from __future__ import annotations

from ray.util import metrics

from serve_apps.rate_limit import BucketLevels

LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000]


class IngestTelemetry:
    """Counters of one partition."""

    def __init__(self, partition: int) -> None:
        self._tags = {"partition": str(partition)}
        self._ingested = metrics.Counter("cgm_ingest_readings_stored",
                                         "readings stored durably", ("partition",))
        self._duplicates = metrics.Counter("cgm_ingest_readings_duplicate",
                                           "readings dropped as already stored", ("partition",))
        self._alerts = metrics.Counter("cgm_alerts_fired", "alerts fired, by type",
                                       ("partition", "type"))

    def ingested(self, stored: int, duplicates: int) -> None:
        if stored:
            self._ingested.inc(stored, self._tags)
        if duplicates:
            self._duplicates.inc(duplicates, self._tags)

    def alerts(self, events: list[dict]) -> None:
        for e in events:
            if e["state"] == "fired":
                self._alerts.inc(1, {**self._tags, "type": e["type"]})


class IngressTelemetry:
    """Counters of the HTTP ingress."""

    def __init__(self) -> None:
        self.rejected = metrics.Counter("cgm_ingest_requests_rejected",
                                        "requests refused, by HTTP status", ("status",))
        self.latency = metrics.Histogram("cgm_ingest_request_latency_ms",
                                         "time to make a request's readings durable",
                                         LATENCY_BOUNDARIES_MS,
                                         ("route",))

    def rate_limits(self, per_s: dict[str, float]) -> None:
        """The configured limit of each scope (``credential``, ``patient``), requests/s."""
        self._limit = metrics.Gauge("cgm_ingest_rate_limit_per_s",
                                    "rate limit of each scope, requests/s per key", ("scope",))
        self._keys = metrics.Gauge("cgm_ingest_rate_limit_keys",
                                   "keys with a bucket in use, and those empty (getting 429)",
                                   ("scope", "state"))
        self._lowest = metrics.Gauge("cgm_ingest_rate_limit_lowest_fraction",
                                     "the lowest bucket level as a fraction of its burst",
                                     ("scope",))
        for scope, rate in per_s.items():
            self._limit.set(rate, {"scope": scope})

    def rate_levels(self, scope: str, levels: BucketLevels) -> None:
        """The current level of one scope's buckets."""
        self._keys.set(levels.keys, {"scope": scope, "state": "tracked"})
        self._keys.set(levels.empty, {"scope": scope, "state": "empty"})
        self._lowest.set(levels.lowest_fraction, {"scope": scope})
