"""Parquet sink: each window becomes one file in the lake's landing area.

Files are named by (shard, window start) and written atomically (temporary name, then
rename), so a window re-delivered after a shard restart replaces its file with identical
content instead of adding a duplicate. Layout: ``{path}/date=YYYY-MM-DD/
fleet-s{shard}-m{minute}.parquet`` (date of the window start, UTC). Temporary files start
with a dot, which dataset readers skip, so a shard killed mid-write leaves no half file
that a reader of the landing area would count.
"""

from __future__ import annotations

from datetime import UTC, datetime

from actors.sinks.base import Delivery, Window
from cgm_ray.fs import open_filesystem, write_parquet_atomic


class ParquetSink:
    """Writes windows to a local directory or any pyarrow filesystem URI (s3://...)."""

    wants_treatments = False

    def __init__(self, path: str) -> None:
        self.fs, self.root = open_filesystem(path)
        self.fs.create_dir(self.root, recursive=True)

    def file_path(self, window: Window) -> str:
        day = datetime.fromtimestamp((window.start_ms + window.t0_min * 60_000) / 1000,
                                     tz=UTC).strftime("%Y-%m-%d")
        return f"{self.root}/date={day}/fleet-s{window.shard:05d}-m{window.t0_min:010d}.parquet"

    def deliver(self, window: Window) -> Delivery:
        if window.readings.num_rows == 0:
            return Delivery(acked=0)
        write_parquet_atomic(self.fs, self.file_path(window), window.readings)
        return Delivery(acked=window.readings.num_rows)

    def close(self) -> None:
        """Nothing is buffered."""
