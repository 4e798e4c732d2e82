"""The ingest's request coalescer: batch sizes, waits, calls in flight, errors, cancellation."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from serve_apps.coalescer import Coalescer


class Writer:
    """A fake ``write``: records each batch, answers ``item * 10``, can block or fail."""

    def __init__(self, fail_on: int | None = None, gated: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event() if gated else None  # writes wait until it is set
        self.fail_on = fail_on  # a batch containing this item raises

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_on in items:
                raise RuntimeError("log append failed")
            return [item * 10 for item in items]
        finally:
            self.running -= 1


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def submit_all(coalescer: Coalescer, items: range) -> list[asyncio.Future]:
    """Submit each item from a task of its own (so that one can be cancelled)."""
    return [asyncio.ensure_future(coalescer.submit(i)) for i in items]


def test_concurrent_requests_share_one_write_and_get_their_own_results():
    async def main():
        writer = Writer()
        coalescer = Coalescer(writer, max_size=256, max_wait_s=0.005, max_in_flight=2)
        results = await asyncio.gather(*(coalescer.submit(i) for i in range(7)))
        return writer, results

    writer, results = run(main())
    assert results == [i * 10 for i in range(7)]
    assert writer.batches == [list(range(7))]


def test_a_full_batch_goes_at_once_and_the_rest_after_the_wait():
    async def main():
        writer = Writer()
        coalescer = Coalescer(writer, max_size=4, max_wait_s=0.2, max_in_flight=2)
        started = time.perf_counter()
        full = asyncio.gather(*(coalescer.submit(i) for i in range(4)))
        first = await full
        full_s = time.perf_counter() - started
        rest = await asyncio.gather(*(coalescer.submit(i) for i in range(4, 6)))
        return writer, first + rest, full_s, time.perf_counter() - started

    writer, results, full_s, total_s = run(main())
    assert results == [i * 10 for i in range(6)]
    assert writer.batches == [[0, 1, 2, 3], [4, 5]]
    assert full_s < 0.1 <= 0.2 <= total_s


def test_batches_are_at_most_max_size():
    async def main():
        writer = Writer()
        coalescer = Coalescer(writer, max_size=4, max_wait_s=0.005, max_in_flight=8)
        return writer, await asyncio.gather(*(coalescer.submit(i) for i in range(10)))

    writer, results = run(main())
    assert results == [i * 10 for i in range(10)]
    assert writer.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_lone_request_waits_max_wait_then_goes_alone():
    async def main():
        writer = Writer()
        coalescer = Coalescer(writer, max_size=256, max_wait_s=0.05, max_in_flight=2)
        started = time.perf_counter()
        result = await coalescer.submit(3)
        return writer, result, time.perf_counter() - started

    writer, result, waited_s = run(main())
    assert (result, writer.batches) == (30, [[3]])
    assert 0.05 <= waited_s < 1


def test_at_most_max_in_flight_writes_and_the_waiting_requests_go_together_after():
    async def main():
        writer = Writer(gated=True)
        coalescer = Coalescer(writer, max_size=2, max_wait_s=0.001, max_in_flight=2)
        tasks = submit_all(coalescer, range(4))
        await asyncio.sleep(0.02)  # two full batches in flight
        tasks += submit_all(coalescer, range(4, 7))
        await asyncio.sleep(0.02)  # their wait is over, but no write is free
        stuck = (coalescer.in_flight, coalescer.pending, len(writer.batches))
        writer.gate.set()
        return writer, stuck, await asyncio.gather(*tasks)

    writer, stuck, results = run(main())
    assert stuck == (2, 3, 2)
    assert results == [i * 10 for i in range(7)]
    assert writer.batches == [[0, 1], [2, 3], [4, 5], [6]]
    assert writer.most_running == 2


def test_an_exception_fails_every_request_of_its_batch_and_no_other():
    async def main():
        writer = Writer(fail_on=2)
        coalescer = Coalescer(writer, max_size=3, max_wait_s=0.005, max_in_flight=2)
        first = await asyncio.gather(*(coalescer.submit(i) for i in range(6)),
                                     return_exceptions=True)
        after = await coalescer.submit(7)  # the coalescer still works
        return writer, first, after

    writer, results, after = run(main())
    assert writer.batches[:2] == [[0, 1, 2], [3, 4, 5]]
    assert all(isinstance(r, RuntimeError) for r in results[:3])
    assert results[3:] == [30, 40, 50]
    assert after == 70


def test_a_wrong_number_of_results_fails_the_batch():
    async def short(items: list[int]) -> list[int]:
        return items[1:]

    async def main():
        coalescer = Coalescer(short, max_size=8, max_wait_s=0.001, max_in_flight=2)
        return await asyncio.gather(*(coalescer.submit(i) for i in range(3)),
                                    return_exceptions=True)

    results = run(main())
    assert all(isinstance(r, ValueError) and "2 results for 3 items" in str(r) for r in results)


@pytest.mark.parametrize("cancelled", [{1}, {0, 1, 2, 3}])
def test_requests_cancelled_while_waiting_are_left_out_and_the_others_answered(cancelled):
    async def main():
        writer = Writer()
        coalescer = Coalescer(writer, max_size=256, max_wait_s=0.02, max_in_flight=2)
        tasks = submit_all(coalescer, range(4))
        await asyncio.sleep(0)
        for k in cancelled:
            tasks[k].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        after = await coalescer.submit(5)  # the coalescer still works
        return writer, done, after, coalescer.pending

    writer, done, after, pending = run(main())
    kept = [k for k in range(4) if k not in cancelled]
    assert writer.batches == ([kept] if kept else []) + [[5]]
    assert [done[k] for k in kept] == [k * 10 for k in kept]
    assert all(isinstance(done[k], asyncio.CancelledError) for k in cancelled)
    assert (after, pending) == (50, 0)


def test_a_request_cancelled_during_its_write_does_not_break_the_others():
    async def main():
        writer = Writer(gated=True)
        coalescer = Coalescer(writer, max_size=3, max_wait_s=0.001, max_in_flight=2)
        tasks = submit_all(coalescer, range(3))
        await asyncio.sleep(0.01)  # in flight
        tasks[0].cancel()
        writer.gate.set()
        return writer, await asyncio.gather(*tasks, return_exceptions=True)

    writer, done = run(main())
    assert writer.batches == [[0, 1, 2]]  # written all the same: it cannot be taken back
    assert isinstance(done[0], asyncio.CancelledError) and done[1:] == [10, 20]


def test_under_random_concurrent_load_every_request_gets_its_own_result():
    async def main():
        writer = Writer(fail_on=-1)
        coalescer = Coalescer(writer, max_size=16, max_wait_s=0.002, max_in_flight=2)
        rng = random.Random(7)

        async def client(c: int) -> list[tuple[int, int | None]]:
            got: list[tuple[int, int | None]] = []  # (item, its answer; None: failed)
            for k in range(40):
                item = -1 if rng.random() < 0.02 else c * 1000 + k
                await asyncio.sleep(rng.random() * 0.002)
                try:
                    got.append((item, await coalescer.submit(item)))
                except RuntimeError:
                    got.append((item, None))
            return got

        return writer, [pair for got in await asyncio.gather(*(client(c) for c in range(50)))
                        for pair in got]

    writer, answers = run(main())
    assert max(len(b) for b in writer.batches) <= 16 and writer.most_running <= 2
    assert sorted(i for b in writer.batches for i in b) == sorted(item for item, _ in answers)
    failed = {i for b in writer.batches if -1 in b for i in b}
    assert failed and len(failed) < len(answers) / 2
    for item, answer in answers:
        assert answer == (None if item in failed else item * 10)


@pytest.mark.parametrize("kwargs", [{"max_size": 0}, {"max_in_flight": 0}, {"max_wait_s": -1}])
def test_limits_must_make_sense(kwargs):
    limits = {"max_size": 4, "max_wait_s": 0.005, "max_in_flight": 2} | kwargs
    with pytest.raises(ValueError):
        Coalescer(Writer(), **limits)
