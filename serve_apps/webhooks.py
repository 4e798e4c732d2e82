"""Alert webhooks: each patient's alert events POSTed (JSON list) to the URL they configured.

Delivery runs beside the ingest, never in front of it: an acknowledged reading does not
wait for a webhook. Each POST is retried with backoff on connection errors and 5xx/429;
what still fails is counted (``Partition.stats``), and the events remain in the alert
history and the SSE stream.
"""

from __future__ import annotations

import asyncio

import aiohttp

RETRIES = 3
BACKOFF_S = 0.5
TIMEOUT_S = 10.0


class Webhooks:
    """A partition's webhook sender (one HTTP session, lazily created)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.delivered = self.failed = 0

    async def post(self, url: str, events: list[dict]) -> bool:
        """Deliver ``events`` to ``url``; True once the receiver answered 2xx."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        for attempt in range(RETRIES + 1):
            try:
                async with self._session.post(url, json=events) as resp:
                    if 200 <= resp.status < 300:
                        self.delivered += len(events)
                        return True
                    if resp.status < 500 and resp.status != 429:
                        break  # the receiver refuses them: retrying will not help
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(BACKOFF_S * 2 ** attempt)
        self.failed += len(events)
        return False
