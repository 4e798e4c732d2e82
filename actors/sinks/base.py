"""The sink contract: where a shard delivers each window of readings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Window:
    """The readings one shard produced for simulated minutes [t0_min, t1_min)."""

    shard: int
    t0_min: int
    t1_min: int
    start_ms: int  # wall-clock time of simulated minute 0
    readings: pa.Table  # cgm_ray.schema.READING_SCHEMA


@dataclass(frozen=True)
class Delivery:
    """What the sink acknowledged of a window."""

    acked: int
    failed: int = 0


class Sink(Protocol):
    """Delivers windows. Re-delivering a window (after a shard restart) must not duplicate."""

    def deliver(self, window: Window) -> Delivery: ...

    def close(self) -> None: ...
