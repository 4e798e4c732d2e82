"""fdatasync through io_uring and Linux AIO: completions on the event loop, errors as OSError."""

from __future__ import annotations

import asyncio
import os

import pytest

from serve_apps.kernel_fsync import KernelFsync

BACKENDS = ("io_uring", "linux_aio")


def _ring(loop: asyncio.AbstractEventLoop, backend: str) -> KernelFsync:
    ring = KernelFsync.open(loop, (backend,))
    if ring is None:
        pytest.skip(f"this kernel ({os.uname().release}) or its seccomp filter refuses {backend}")
    return ring


@pytest.mark.parametrize("backend", BACKENDS)
def test_syncs_complete_on_the_loop_while_it_runs_other_work(tmp_path, backend):
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        ring = _ring(loop, backend)
        fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
        ticks = 0

        async def other_work() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = loop.create_task(other_work())
        try:
            for k in range(50):
                os.write(fd, b"reading %d\n" % k)
                await ring.fdatasync(fd)
        finally:
            ticker.cancel()
            ring.close()
            os.close(fd)
        return ticks, os.path.getsize(tmp_path / "log")

    ticks, size = asyncio.run(main())
    assert size == sum(len(b"reading %d\n" % k) for k in range(50))
    assert ticks >= 50  # the loop ran the other task while each sync was in the kernel


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_sync_is_an_oserror(backend):
    async def main() -> None:
        ring = _ring(asyncio.get_running_loop(), backend)
        read_end, write_end = os.pipe()  # a pipe cannot be synced: EINVAL
        try:
            with pytest.raises(OSError, match="fdatasync"):
                await ring.fdatasync(read_end)
            with pytest.raises(OSError, match="fdatasync"):
                await ring.fdatasync(write_end + 1000)  # not open: EBADF
        finally:
            ring.close()
            os.close(read_end)
            os.close(write_end)

    asyncio.run(main())


def test_close_stops_watching_the_ring():
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        ring = _ring(loop, "io_uring")
        ring.close()
        return loop.remove_reader(ring._context.fileno)  # False: nothing left registered

    assert asyncio.run(main()) is False


def test_no_backend_granted_means_none():
    async def main() -> KernelFsync | None:
        return KernelFsync.open(asyncio.get_running_loop(), backends=())

    assert asyncio.run(main()) is None
