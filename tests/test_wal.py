"""Write-ahead log: group commit, durability across a crash, segment landing, torn tails,
failed syncs, and how it syncs (a kernel worker or the event loop)."""

from __future__ import annotations

import asyncio
import os
import time

import pyarrow as pa
import pytest

from cgm_ray.schema import EARLIEST_TS_MS
from serve_apps.config import IngestConfig
from serve_apps.kernel_fsync import KernelFsync
from serve_apps.partition_core import PartitionCore
from serve_apps.replies import PartitionStats
from serve_apps.validation import ReadingBatch, check_batch
from serve_apps.wal import WriteAheadLog

SCHEMA = pa.schema([("sensor_id", pa.string()), ("ts_ms", pa.int64())])


def _granted_ring() -> str:
    """The ring this kernel grants a process ("loop": none)."""
    async def main() -> str:
        ring = KernelFsync.open(asyncio.get_running_loop())
        if ring is None:
            return "loop"
        ring.close()
        return ring.backend

    return asyncio.run(main())


def _batch(sensor: str, n: int, start: int = 0) -> pa.RecordBatch:
    return pa.record_batch([pa.array([sensor] * n), pa.array(range(start, start + n), pa.int64())],
                           schema=SCHEMA)


@pytest.mark.parametrize("fsync", ["kernel", "loop"])
def test_concurrent_appends_share_fsyncs_and_survive_a_restart(tmp_path, fsync):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA, fsync=fsync)

    async def main():
        await asyncio.gather(*(wal.append(_batch(f"s{k}", 10)) for k in range(200)))

    asyncio.run(main())
    assert wal.appended_rows == 2000 and wal.commits < 200  # grouped
    assert wal.fsync_backend == (_granted_ring() if fsync == "kernel" else "loop")
    # a new process: recover the open segment, then replay everything acknowledged
    again = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA)
    again.recover()
    rows = sum(b.num_rows for b in again.replay())
    assert rows == 2000
    assert not list((tmp_path / "wal").iterdir())


def test_torn_tail_keeps_the_durable_prefix(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA)

    async def main():
        for k in range(5):
            await wal.append(_batch("s", 100, start=100 * k))

    asyncio.run(main())
    (segment,) = list((tmp_path / "wal").iterdir())
    with open(segment, "ab") as fh:  # a crash in the middle of the next write
        fh.write(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage")
    again = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA)
    again.recover()
    assert sum(b.num_rows for b in again.replay()) == 500


@pytest.mark.parametrize("fsync", ["kernel", "loop"])
def test_segments_roll_into_the_landing_area(tmp_path, fsync):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA,
                        segment_max_bytes=2_000, fsync=fsync)

    async def main():
        for k in range(20):
            await wal.append(_batch("s", 50, start=50 * k))
        wal.request_roll()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    landed = sorted(os.listdir(tmp_path / "landing"))
    assert len(landed) > 1 and not os.listdir(tmp_path / "wal")
    ts = [t for b in WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA).replay()
          for t in b.column("ts_ms").to_pylist()]
    assert ts == list(range(1000))


def test_roll_lands_everything_appended_before_it(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA)

    async def main():
        appends = [asyncio.ensure_future(wal.append(_batch(f"s{k}", 10))) for k in range(50)]
        await asyncio.sleep(0)  # queued, not necessarily written yet
        await wal.roll()
        await asyncio.gather(*appends)

    asyncio.run(main())
    assert not os.listdir(tmp_path / "wal")  # nothing left open
    rows = sum(b.num_rows for b in WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0",
                                                  SCHEMA).replay())
    assert rows == 500


@pytest.mark.parametrize("fsync", ["kernel", "loop"])
def test_a_failed_sync_fails_its_appends_and_later_ones_go_to_a_new_segment(tmp_path, fsync):
    wal = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA, fsync=fsync)

    async def main() -> None:
        await wal.append(_batch("s", 10))
        read_end, write_end = os.pipe()
        os.dup2(write_end, wal._file.fileno())  # the segment's descriptor is now a pipe:
        try:  # its write succeeds, its sync fails (EINVAL), as a disk's EIO would
            with pytest.raises(OSError):
                await wal.append(_batch("s", 10, start=10))
        finally:
            os.close(read_end)
            os.close(write_end)
        await wal.append(_batch("s", 10, start=20))

    asyncio.run(main())
    # the failed segment's durable prefix landed at once; the batch after it is in a new file
    assert len(os.listdir(tmp_path / "landing")) == len(os.listdir(tmp_path / "wal")) == 1
    assert [t for b in wal.replay() for t in b.column("ts_ms").to_pylist()] == list(range(10))
    again = WriteAheadLog(tmp_path / "wal", tmp_path / "landing", "p0", SCHEMA)
    again.recover()
    ts = [t for b in again.replay() for t in b.column("ts_ms").to_pylist()]
    assert ts == list(range(10)) + list(range(20, 30))  # every acknowledged reading, in order


@pytest.mark.parametrize("fsync", ["kernel", "loop"])
def test_the_partition_stats_say_how_its_log_syncs(tmp_path, fsync):
    core = PartitionCore(0, IngestConfig(data_dir=str(tmp_path / "ingest"),
                                         landing_dir=str(tmp_path / "landing"), wal_fsync=fsync))
    now_ms = int(time.time() * 1000)
    table = check_batch(ReadingBatch(patient_id=["p"], sensor_id=["s"], ts_ms=[now_ms],
                                     glucose_mgdl=[120.0]), now_ms, 300, EARLIEST_TS_MS, 10)

    async def main() -> PartitionStats:
        assert (await core.ingest(table)).accepted == 1
        return core.stats()

    try:
        stats = asyncio.run(main())
    finally:
        core.close()
    assert (stats.wal_rows, stats.wal_commits) == (1, 1)
    assert stats.wal_fsync == (_granted_ring() if fsync == "kernel" else "loop")
