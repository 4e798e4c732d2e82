"""Per-credential rate limiting: a token bucket per key (plain Python, clock injectable)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Requests per second per credential, with a burst of twice the rate.

    Each key's bucket starts full (``burst`` tokens) and refills at ``rate`` tokens a
    second up to ``burst``; a request takes one token or is refused.
    """

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate_per_s, 2 * rate_per_s, clock
        self.level: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> bool:
        """Take a token for ``key``; False when its bucket is empty (HTTP 429)."""
        now = self.clock()
        level, last = self.level.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1.0:
            self.level[key] = (level, now)
            return False
        self.level[key] = (level - 1.0, now)
        return True
