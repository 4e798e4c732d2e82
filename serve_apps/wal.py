"""Write-ahead log with group commit: a reading is acknowledged only once it is on disk.

Concurrent ``append`` calls queue their record batches; one writer task writes everything
queued as Arrow IPC stream batches and calls ``fdatasync`` once for the group, then releases
all of them, so the sync's cost is shared by every request that arrived meanwhile. The sync
runs in a kernel worker (``serve_apps.kernel_fsync``) while the event loop goes on serving,
and the requests arriving meanwhile form the next group; where the kernel grants no ring
(or with ``fsync="loop"``) it is a blocking call on the loop. The log is a sequence of
segment files; a segment is closed after ``segment_max_bytes`` or ``segment_max_age_s`` and
moved (atomically) into the landing directory the lake ETL loads. ``replay`` yields every
durable batch of the landed and open segments, stopping cleanly at a torn tail left by a
crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.ipc as ipc

from serve_apps.kernel_fsync import KernelFsync

SEGMENT_SUFFIX = ".arrows"


class WriteAheadLog:
    """One writer's log (a partition's), in ``directory``; closed segments go to ``landing``.

    ``fsync``: "kernel" syncs through a kernel ring, off the event loop (a blocking call
    where no ring is granted); "loop" always blocks the loop. ``fsync_backend`` says which
    is in use once the first append has started the writer.
    """

    def __init__(self, directory: str | Path, landing: str | Path, name: str,
                 schema: pa.Schema, segment_max_bytes: int = 64 << 20,
                 segment_max_age_s: float = 60.0,
                 fsync: Literal["kernel", "loop"] = "kernel") -> None:
        self.dir, self.landing, self.name, self.schema = Path(directory), Path(landing), name, schema
        self.fsync = fsync
        self.fsync_backend = "not started"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.landing.mkdir(parents=True, exist_ok=True)
        self.segment_max_bytes, self.segment_max_age_s = segment_max_bytes, segment_max_age_s
        self._queue: list[tuple[pa.RecordBatch, asyncio.Future]] = []
        self._wakeup: asyncio.Event | None = None
        self._writer_task: asyncio.Task | None = None
        self._file = self._stream = None
        self._segment_path: Path | None = None
        self._segment_opened = 0.0
        self._roll_requested = False
        self._roll_waiters: list[asyncio.Future] = []
        self.commits = self.appended_rows = 0

    # -- segments ----------------------------------------------------------------------
    def _segments(self, where: Path) -> list[Path]:
        return sorted(where.glob(f"{self.name}-*{SEGMENT_SUFFIX}"))

    def _open_segment(self) -> None:
        seq = 1 + max((int(p.stem.rsplit("-", 1)[1]) for p in
                       self._segments(self.dir) + self._segments(self.landing)), default=0)
        self._segment_path = self.dir / f"{self.name}-{seq:012d}{SEGMENT_SUFFIX}"
        self._file = open(self._segment_path, "wb")
        self._stream = ipc.new_stream(self._file, self.schema)
        _fsync_dir(self.dir)  # the new file's name is durable before anything in it is acked
        self._segment_opened = time.monotonic()

    def _close_segment(self) -> None:
        """Finish the open segment and move it to the landing area."""
        if self._stream is None:
            return
        self._stream.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._segment_path, self.landing / self._segment_path.name)
        _fsync_dir(self.landing)
        self._stream = self._file = self._segment_path = None

    def _abandon_segment(self) -> None:
        """After a failed write or sync, land the open segment's durable prefix and start the
        next group in a new segment: after a failed fsync the kernel may have marked pages
        clean that never reached the disk, so acknowledged batches must not follow them in
        one file (a replay stops at the first torn batch). If landing fails too (the disk
        is failing), ``recover`` lands the segment at the next start."""
        path = self._segment_path
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._stream = self._file = self._segment_path = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._land_durable_prefix(path)

    def recover(self) -> None:
        """Land segments a previous process left open (their durable prefix)."""
        for path in self._segments(self.dir):
            self._land_durable_prefix(path)

    def _land_durable_prefix(self, path: Path) -> None:
        """Rewrite an open segment's complete batches (a torn tail cut off), sync the copy,
        move it into the landing area, and only then delete the original."""
        batches = list(_read_durable(path))
        tmp = path.with_suffix(".recovering")
        with open(tmp, "wb") as fh:
            with ipc.new_stream(fh, self.schema) as out:
                for batch in batches:
                    out.write_batch(batch)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.landing / path.name)
        _fsync_dir(self.landing)
        path.unlink(missing_ok=True)

    def landed(self) -> list[Path]:
        """This log's landed segments, oldest first."""
        return self._segments(self.landing)

    def replay(self, since_seq: int = 0) -> Iterator[pa.RecordBatch]:
        """Every durable batch in landed segments (sequence number >= ``since_seq``)."""
        for path in self._segments(self.landing):
            if int(path.stem.rsplit("-", 1)[1]) >= since_seq:
                yield from _read_durable(path)

    # -- appends -----------------------------------------------------------------------
    async def append(self, batch: pa.RecordBatch) -> None:
        """Return once ``batch`` is durable (written and fsynced)."""
        loop = asyncio.get_running_loop()
        if self._writer_task is None:
            self._wakeup = asyncio.Event()
            self._writer_task = loop.create_task(self._writer())
        done = loop.create_future()
        self._queue.append((batch, done))
        self._wakeup.set()
        await done

    async def _writer(self) -> None:
        """Commit everything queued since the last commit as one group, then wait for more."""
        ring = (KernelFsync.open(asyncio.get_running_loop()) if self.fsync == "kernel"
                else None)
        self.fsync_backend = ring.backend if ring is not None else "loop"
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                group, self._queue = self._queue, []
                roll, self._roll_requested = self._roll_requested, False
                rolled, self._roll_waiters = self._roll_waiters, []
                waiters = [f for _, f in group] + rolled
                try:
                    if group:
                        await self._write_group([b for b, _ in group], ring)
                    if roll:
                        self._close_segment()
                except Exception as exc:  # every waiter learns its data is not durable
                    self._abandon_segment()
                    for fut in waiters:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            if ring is not None:
                ring.close()

    async def _write_group(self, batches: list[pa.RecordBatch], ring: KernelFsync | None) -> None:
        if self._stream is None:
            self._open_segment()
        for batch in batches:
            self._stream.write_batch(batch)
            self.appended_rows += batch.num_rows
        self._file.flush()
        if ring is None:
            os.fdatasync(self._file.fileno())
        else:
            await ring.fdatasync(self._file.fileno())
        self.commits += 1
        if (self._file.tell() >= self.segment_max_bytes
                or time.monotonic() - self._segment_opened >= self.segment_max_age_s):
            self._close_segment()

    async def roll(self) -> None:
        """Land the open segment once everything appended before this call is in it."""
        if self._writer_task is None:
            self._close_segment()
            return
        done = asyncio.get_running_loop().create_future()
        self._roll_waiters.append(done)
        self.request_roll()
        await done

    def request_roll(self) -> None:
        """Ask the writer to close the open segment (a timer calls this for idle logs)."""
        if self._writer_task is None:
            self._close_segment()
            return
        self._roll_requested = True
        self._wakeup.set()


def _read_durable(path: Path) -> Iterator[pa.RecordBatch]:
    """The complete batches of a segment, stopping at a torn tail."""
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError):
        return
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError):
            return


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
