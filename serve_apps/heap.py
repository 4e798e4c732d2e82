"""Python's garbage collector on a schedule, in a process that holds a partition.

A partition's long-lived state (a record per sensor and patient, alert history) makes every
full collection walk it, and with the partition inside the ingress that pause stops every
request: after the benchmark's batched loads (20,000 sensors), single-reading p99 was 51-58 ms,
and 18-22 ms with the collector off (``bench_ingest.py --seconds 10``, alternating runs).
So the process collects once per timer period (``settle``), and the collector's own young
passes are made rare (``collect_on_schedule``).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "collect_on_schedule", "settle"]

# Net allocations between the collector's own young passes (CPython's default: 700). In a
# 15-second run at 2,800 single readings/s the default ran ~2,400 young passes, 0.42 s of
# the event loop (3%); with this, 5 (0.013 s).
YOUNG_THRESHOLD = 10_000


def collect_on_schedule() -> None:
    """Leave collecting to ``settle`` once per timer period: the collector's own passes
    become rare, so a reference cycle that becomes garbage lives about a period at most."""
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)


def settle() -> None:
    """Collect what is garbage now, then move every surviving object out of the collector's
    reach (``gc.freeze``), so later collections walk only what is newer.

    Called once per timer period, each full collection here walks one period's objects.
    Frozen objects are still freed by reference counting; only a reference cycle formed
    among them later would never be collected, and a partition's state forms none.
    """
    gc.collect()
    gc.freeze()
