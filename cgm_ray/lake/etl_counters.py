"""Prometheus counters of the ETL (Ray metrics), counted inside its tasks (long-lived workers export them)."""

from __future__ import annotations

from functools import cache


class EtlCounters:
    """Counters ``cgm_etl_*``: readings loaded and duplicate, rows and files rejected."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.counters = {
            "readings_loaded": metrics.Counter(
                "cgm_etl_readings_loaded", "distinct readings added to the lake"),
            "readings_duplicate": metrics.Counter(
                "cgm_etl_readings_duplicate", "readings skipped: already in the lake or the load"),
            "rows_rejected": metrics.Counter(
                "cgm_etl_rows_rejected", "input rows failing validation (counted by reason in "
                "the run report)"),
            "files_loaded": metrics.Counter("cgm_etl_files_loaded", "input files loaded"),
            "files_rejected": metrics.Counter(
                "cgm_etl_files_rejected", "input files rejected whole (corrupt, truncated, ...)"),
        }

    def count(self, **values: int) -> None:
        """Add to the named counters (Ray counters refuse zero increments: skipped)."""
        for name, value in values.items():
            if value:
                self.counters[name].inc(value)


@cache
def etl_counters() -> EtlCounters:
    """This worker's ETL counters (created once per process)."""
    return EtlCounters()
