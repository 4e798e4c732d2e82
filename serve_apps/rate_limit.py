"""Rate limiting: a token bucket per key (a credential, or a patient), plain Python with an
injectable clock.

Two scopes, so that one shared credential is not a deployment-wide cap: a Nightscout site's
secret is one credential for every uploader, so its bucket is sized above what an ingress
replica serves, and each patient has a bucket of its own, sized for a device (a reading every
5 minutes, backfills in bursts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BucketLevels", "TokenBucket", "retry_after_s"]


@dataclass(frozen=True)
class BucketLevels:
    """The buckets of one scope: how many keys are tracked, how many are empty now (their
    requests get 429), and the lowest level as a fraction of the burst (1.0: none in use)."""

    keys: int
    empty: int
    lowest_fraction: float


class TokenBucket:
    """Requests per second per key, with a burst (default twice the rate).

    Each key's bucket starts full (``burst`` tokens) and refills at ``rate`` tokens a second
    up to ``burst``; a request takes one token or is refused, spending nothing.
    """

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = 2 * rate_per_s if burst is None else max(1.0, burst)
        self.clock = clock
        self.level: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when taken, else the seconds until one will be
        (the 429's ``Retry-After``)."""
        now = self.clock()
        level, last = self.level.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1.0:
            self.level[key] = (level, now)
            return (1.0 - level) / self.rate
        self.level[key] = (level - 1.0, now)
        return 0.0

    def levels(self) -> BucketLevels:
        """The scope's buckets now; keys whose bucket has refilled are forgotten (a new one
        starts full, so nothing changes for them)."""
        now = self.clock()
        empty, lowest = 0, self.burst
        for key, (level, last) in list(self.level.items()):
            level = min(self.burst, level + (now - last) * self.rate)
            if level >= self.burst:
                del self.level[key]
                continue
            empty += level < 1.0
            lowest = min(lowest, level)
        return BucketLevels(len(self.level), empty, lowest / self.burst)


def retry_after_s(wait_s: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
