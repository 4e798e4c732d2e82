"""Parquet sink: each window becomes one file in the lake's landing area.

Files are named by (shard, window start) and written atomically (temporary name, then
rename), so a window re-delivered after a shard restart replaces its file with identical
content instead of adding a duplicate. Layout: ``{path}/date=YYYY-MM-DD/
fleet-s{shard}-m{minute}.parquet`` (date of the window start, UTC). Temporary files start
with a dot, which dataset readers skip, so a shard killed mid-write leaves no half file
that a reader of the landing area would count.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from actors.sinks.base import Delivery, Window


class ParquetSink:
    """Writes windows to a local directory or any pyarrow filesystem URI (s3://...)."""

    def __init__(self, path: str) -> None:
        self.fs, self.root = pafs.FileSystem.from_uri(path) if "://" in path else (
            pafs.LocalFileSystem(), path)
        self.fs.create_dir(self.root, recursive=True)

    def file_path(self, window: Window) -> str:
        day = datetime.fromtimestamp((window.start_ms + window.t0_min * 60_000) / 1000,
                                     tz=timezone.utc).strftime("%Y-%m-%d")
        return f"{self.root}/date={day}/fleet-s{window.shard:05d}-m{window.t0_min:010d}.parquet"

    def deliver(self, window: Window) -> Delivery:
        if window.readings.num_rows == 0:
            return Delivery(acked=0)
        final = self.file_path(window)
        folder, name = final.rsplit("/", 1)
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(window.readings, tmp, filesystem=self.fs)
        self.fs.move(tmp, final)
        return Delivery(acked=window.readings.num_rows)

    def close(self) -> None:
        """Nothing is buffered."""
