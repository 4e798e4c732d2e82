"""One process per partition: a second holder waits, then is refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from serve_apps.config import IngestConfig
from serve_apps.partition_core import PartitionCore
from serve_apps.partition_lock import PartitionInUse, PartitionLock

HOLD = """
import sys, time
from pathlib import Path
from serve_apps.partition_lock import PartitionLock
lock = PartitionLock(Path(sys.argv[1]), "partition 0")
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_holder_is_refused_naming_the_first_and_the_way_out(tmp_path):
    path = tmp_path / "p000.lock"
    first = PartitionLock(path, "partition 0")
    started = time.monotonic()
    with pytest.raises(PartitionInUse, match=rf"partition 0: held by another process \(pid "
                                             rf"{os.getpid()}\) for 0.3 s; .*colocate_partition"):
        PartitionLock(path, "partition 0", wait_s=0.3)
    assert time.monotonic() - started >= 0.3  # it waited for the holder to let go
    first.release()
    PartitionLock(path, "partition 0", wait_s=0.3).release()


def test_the_lock_is_taken_over_once_its_holder_is_killed(tmp_path):
    path = tmp_path / "p000.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(PartitionInUse, match=rf"pid {holder.pid}\)"):
            PartitionLock(path, "partition 0", wait_s=0.3)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        PartitionLock(path, "partition 0", wait_s=5).release()  # the kernel let it go
    finally:
        holder.kill()
        holder.wait(10)


def test_two_cores_of_one_partition_cannot_run_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr("serve_apps.partition_lock.WAIT_S", 0.3)
    config = IngestConfig(data_dir=str(tmp_path / "ingest"), landing_dir=str(tmp_path / "landing"))
    first = PartitionCore(0, config)
    with pytest.raises(PartitionInUse, match=r"partition 0 \(.*ingest\): held"):
        PartitionCore(0, config)
    PartitionCore(1, config).close()  # another partition of the same data is its own
    first.close()
    PartitionCore(0, config).close()
