"""One process per partition: an exclusive lock on the partition's data.

Two processes holding one partition (two ingress replicas that both hold partition 0, as
Serve autoscaling of a one-partition application would start) would number their log
segments alike and overwrite each other's: acknowledged readings lost. So a partition takes
an ``flock`` on its lock file before it touches its logs. The kernel releases the lock when
the process exits, SIGKILL included, so a replica restarted after a crash takes it at once,
and one started while its predecessor is still stopping waits for it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

__all__ = ["PartitionInUse", "PartitionLock"]

WAIT_S = 30.0  # a predecessor's graceful stop takes up to Serve's 20 s shutdown timeout
POLL_S = 0.2


class PartitionInUse(RuntimeError):
    """Another process holds this partition."""


class PartitionLock:
    """The lock on ``path``, held from construction until ``release`` or the process's end.

    Waits up to ``wait_s`` (default ``WAIT_S``) for another holder to let go, then raises
    ``PartitionInUse`` naming the holder's pid and ``who`` (the partition).
    """

    def __init__(self, path: Path, who: str, wait_s: float | None = None) -> None:
        wait_s = WAIT_S if wait_s is None else wait_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip()
                    self.release()
                    raise PartitionInUse(
                        f"{who}: held by another process (pid {holder or '?'}) for {wait_s:g} s; "
                        "one process per partition: to autoscale the ingress, set "
                        "colocate_partition: false") from None
                time.sleep(POLL_S)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
