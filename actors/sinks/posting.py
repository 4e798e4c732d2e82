"""POSTing with retries that never duplicate, shared by the HTTP sinks.

A ``Poster`` owns an event loop and an aiohttp session (a shard actor is synchronous, so each
``post_all`` runs the loop until its requests are answered). At most ``concurrency`` requests
are in flight. 408, 429, 5xx and connection errors are retried with exponential backoff (capped
at 5 s); a request still failing after ``max_retries``, or refused for a reason a retry cannot
fix (any other 4xx), counts as failed. Retrying is safe only because every server these sinks
talk to deduplicates what they send (readings on (sensor, timestamp), Nightscout documents on
their identity), so a retry of a request that was in fact stored adds nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class Request:
    """One POST: where, what, with which headers and query parameters."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)


class Poster:
    """Sends batches of requests, retried with backoff, from synchronous code."""

    def __init__(self, concurrency: int = 4, timeout_s: float = 30.0, max_retries: int = 8,
                 backoff_s: float = 0.2) -> None:
        self.concurrency, self.max_retries, self.backoff_s = concurrency, max_retries, backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None

    def post_all(self, requests: list[Request]) -> list[bool]:
        """Send ``requests``; True where the server accepted one (a 2xx answer)."""
        return self._loop.run_until_complete(self._send_all(requests)) if requests else []

    async def _send_all(self, requests: list[Request]) -> list[bool]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        gate = asyncio.Semaphore(self.concurrency)

        async def send(request: Request) -> bool:
            async with gate:
                return await self._post(request)

        return list(await asyncio.gather(*(send(r) for r in requests)))

    async def _post(self, request: Request) -> bool:
        assert self._session is not None
        for attempt in range(self.max_retries + 1):
            try:
                async with self._session.post(request.url, data=request.body, headers=request.headers,
                                              params=request.params) as r:
                    await r.read()
                    if 200 <= r.status < 300:
                        return True
                    if r.status not in RETRY_STATUS:
                        return False  # refused for a reason a retry cannot fix
            except (TimeoutError, aiohttp.ClientError):
                pass
            if attempt < self.max_retries:
                await asyncio.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** attempt))
        return False

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()
