"""The sink contract: where a shard delivers each window of readings (and, on request, treatments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Window:
    """What one shard produced for simulated minutes [t0_min, t1_min).

    ``treatments`` and ``loop`` (``actors.window_events``) are filled only for a sink that
    ``wants_treatments``; ``loop`` only in a closed loop.
    """

    shard: int
    t0_min: int
    t1_min: int
    start_ms: int  # wall-clock time of simulated minute 0
    readings: pa.Table  # cgm_ray.schema.READING_SCHEMA
    treatments: pa.Table | None = None  # cgm_ray.schema.TREATMENT_SCHEMA
    loop: pa.Table | None = None  # actors.window_events.LOOP_PERIOD_SCHEMA


@dataclass(frozen=True)
class Delivery:
    """What the sink acknowledged of a window: readings, and other documents (treatments,
    device status, profiles) for the sinks that send them."""

    acked: int
    failed: int = 0
    documents_acked: int = 0
    documents_failed: int = 0


class Sink(Protocol):
    """Delivers windows. Re-delivering a window (after a shard restart) must not duplicate."""

    wants_treatments: bool  # the shard fills Window.treatments and Window.loop

    def deliver(self, window: Window) -> Delivery: ...

    def close(self) -> None: ...
