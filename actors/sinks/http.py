"""HTTP sink: readings POSTed to the ingest API in batches, with retries that never duplicate.

Each window is split into batches of ``batch_size`` readings sent as Arrow IPC streams
(``POST {url}/api/v2/readings``) by a ``Poster`` (``actors.sinks.posting``: at most
``concurrency`` in flight, 408/429/5xx and connection errors retried with backoff). Since the
ingest deduplicates on (sensor, timestamp), a retry of a batch that was in fact stored adds
nothing. A batch still failing after ``max_retries`` counts as failed (the shard reports it;
nothing is silently dropped).
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.ipc as ipc

from actors.sinks.base import Delivery, Window
from actors.sinks.posting import Poster, Request
from cgm_ray.client import admin_headers
from cgm_ray.schema import ARROW_STREAM


class HttpSink:
    """Delivers windows to an ingest API at ``url``."""

    wants_treatments = False

    def __init__(self, url: str, secret_env: str = "API_SECRET", batch_size: int = 5000,
                 concurrency: int = 4, timeout_s: float = 30.0, max_retries: int = 8,
                 backoff_s: float = 0.2) -> None:
        self.url = url.rstrip("/") + "/api/v2/readings"
        self.headers = {"content-type": ARROW_STREAM, **admin_headers(secret_env)}
        self.batch_size = batch_size
        self.poster = Poster(concurrency, timeout_s, max_retries, backoff_s)

    def deliver(self, window: Window) -> Delivery:
        table = landing_columns(window.readings)
        batches = [table.slice(k, self.batch_size) for k in range(0, table.num_rows, self.batch_size)]
        results = self.poster.post_all([Request(self.url, _ipc(b), self.headers) for b in batches])
        acked = sum(b.num_rows for b, ok in zip(batches, results) if ok)
        return Delivery(acked=acked, failed=table.num_rows - acked)

    def close(self) -> None:
        self.poster.close()


def landing_columns(readings: pa.Table) -> pa.Table:
    """The reading columns the ingest takes, ids as plain strings."""
    return pa.table({
        "patient_id": readings.column("patient_id").cast(pa.string()),
        "sensor_id": readings.column("sensor_id").cast(pa.string()),
        "ts_ms": readings.column("ts_ms"), "glucose_mgdl": readings.column("glucose_mgdl"),
        "range_flag": readings.column("range_flag"),
    })


def _ipc(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    with ipc.new_stream(buf, table.schema) as writer:
        writer.write_table(table)
    return buf.getvalue()
