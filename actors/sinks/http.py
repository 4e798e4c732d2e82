"""HTTP sink: readings POSTed to the ingest API in batches, with retries that never duplicate.

Each window is split into batches of ``batch_size`` readings sent as Arrow IPC streams
(``POST {url}/api/v2/readings``), at most ``concurrency`` in flight. 408, 429, 5xx and
connection errors are retried with exponential backoff; since the ingest deduplicates on
(sensor, timestamp), a retry of a batch that was in fact stored adds nothing. A batch still
failing after ``max_retries`` counts as failed (the shard reports it; nothing is silently
dropped).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import urllib.error
import urllib.request

import aiohttp
import pyarrow as pa
import pyarrow.ipc as ipc

from actors.sinks.base import Delivery, Window
from cgm_ray.errors import ConfigError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def admin_headers(secret_env: str = "API_SECRET") -> dict[str, str]:
    """The Nightscout-style ``api-secret`` header for the secret in ``secret_env``."""
    return {"api-secret": hashlib.sha1(os.environ.get(secret_env, "").encode()).hexdigest()}


def check_target(url: str, secret_env: str = "API_SECRET", timeout_s: float = 5.0) -> None:
    """Fail fast, naming the problem, when the ingest at ``url`` cannot take readings."""
    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(urllib.request.Request(
                f"{base}/api/v2/stats", headers=admin_headers(secret_env)), timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        reason = "the API secret is not accepted" if exc.code in (401, 403) else f"HTTP {exc.code}"
        raise ConfigError("target", f"{base}: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError("target", f"cannot reach {base}: {getattr(exc, 'reason', exc)}") from None


def admin_call(url: str, path: str, secret_env: str = "API_SECRET", method: str = "GET",
               timeout_s: float = 30.0) -> object:
    """JSON answer of an admin endpoint of the ingest at ``url`` (e.g. ``/api/v2/stats``)."""
    request = urllib.request.Request(f"{url.rstrip('/')}{path}", method=method,
                                     headers=admin_headers(secret_env))
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return json.load(resp)


def alerts_fired(url: str, secret_env: str = "API_SECRET") -> int:
    """Alerts the ingest at ``url`` has fired so far (summed over its partitions)."""
    return sum(p.get("alerts_fired", 0) for p in admin_call(url, "/api/v2/stats", secret_env))


class HttpSink:
    """Delivers windows to an ingest API at ``url``."""

    def __init__(self, url: str, secret_env: str = "API_SECRET", batch_size: int = 5000,
                 concurrency: int = 4, timeout_s: float = 30.0, max_retries: int = 8,
                 backoff_s: float = 0.2) -> None:
        self.url = url.rstrip("/") + "/api/v2/readings"
        self.headers = {"content-type": ARROW_STREAM, **admin_headers(secret_env)}
        self.batch_size, self.concurrency = batch_size, concurrency
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None

    def deliver(self, window: Window) -> Delivery:
        table = landing_columns(window.readings)
        batches = [table.slice(k, self.batch_size) for k in range(0, table.num_rows, self.batch_size)]
        results = self._loop.run_until_complete(self._send_all(batches))
        acked = sum(n for n, ok in zip((b.num_rows for b in batches), results) if ok)
        return Delivery(acked=acked, failed=table.num_rows - acked)

    async def _send_all(self, batches: list[pa.Table]) -> list[bool]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        gate = asyncio.Semaphore(self.concurrency)

        async def send(batch: pa.Table) -> bool:
            async with gate:
                return await self._post(_ipc(batch))

        return list(await asyncio.gather(*(send(b) for b in batches)))

    async def _post(self, body: bytes) -> bool:
        for attempt in range(self.max_retries + 1):
            try:
                async with self._session.post(self.url, data=body, headers=self.headers) as r:
                    if r.status == 200:
                        await r.read()
                        return True
                    if r.status not in RETRY_STATUS:
                        return False  # refused for a reason a retry cannot fix
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(min(5.0, self.backoff_s * 2 ** attempt))
        return False

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()


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
