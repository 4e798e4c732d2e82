"""Keeping Python's full garbage collections short in a process that holds a partition.

A partition's long-lived state (a record per sensor and patient, alert history) makes every
full collection walk it, and with the partition inside the ingress that pause stops every
request: after the benchmark's batched loads (20,000 sensors), single-reading p99 was 51-58 ms,
and 18-22 ms with the collector off (``bench_ingest.py --seconds 10``, alternating runs).
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect what is garbage now, then move every surviving object out of the collector's
    reach (``gc.freeze``), so later collections walk only what is newer.

    Called once per timer period, each full collection here walks one period's objects.
    Frozen objects are still freed by reference counting; only a reference cycle formed
    among them later would never be collected, and a partition's state forms none.
    """
    gc.collect()
    gc.freeze()
