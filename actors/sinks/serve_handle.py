"""Serve-handle sink: readings handed to the ingest application inside the Ray cluster.

No HTTP: each window goes as one Arrow table to the ingest's ``write_readings`` through a
Serve deployment handle, with the same validation, deduplication and durability as the
HTTP API. Failures (the app restarting, a partition down) are retried with backoff; a
re-sent window is deduplicated by the ingest, so retries never store a reading twice.
"""

from __future__ import annotations

import time

import pyarrow as pa
from ray import serve

from actors.sinks.base import Delivery, Window
from actors.sinks.http import landing_columns
from serve_apps.replies import Rejection


class ServeHandleSink:
    """Delivers windows to the Serve application ``app_name``."""

    wants_treatments = False

    def __init__(self, app_name: str = "ingest", max_retries: int = 8,
                 backoff_s: float = 0.2) -> None:
        self.app_name, self.max_retries, self.backoff_s = app_name, max_retries, backoff_s
        self._handle = None

    def deliver(self, window: Window) -> Delivery:
        table: pa.Table = landing_columns(window.readings)
        if table.num_rows == 0:
            return Delivery(acked=0)
        for attempt in range(self.max_retries + 1):
            try:
                if self._handle is None:
                    self._handle = serve.get_app_handle(self.app_name)
                reply = self._handle.write_readings.remote(table).result()
            except Exception:  # the app is (re)starting: try again
                self._handle = None
                time.sleep(min(5.0, self.backoff_s * 2 ** attempt))
                continue
            if not isinstance(reply, Rejection):
                return Delivery(acked=table.num_rows)
            if reply.status < 500:
                break  # refused for a reason a retry cannot fix
            time.sleep(min(5.0, self.backoff_s * 2 ** attempt))
        return Delivery(acked=0, failed=table.num_rows)

    def close(self) -> None:
        """Nothing is buffered."""
