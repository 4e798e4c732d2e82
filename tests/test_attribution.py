"""Coalesced writes: each request's counts and refusals, from one call per partition."""

from __future__ import annotations

import asyncio

import numpy as np
import pyarrow as pa
import pytest

from cgm_ray.sharding import shard_of
from serve_apps.batching import coalesce, write_coalesced
from serve_apps.replies import UNAVAILABLE, PartitionWrite, Rejection, WriteCounts

N = 4


def patient_on(partition: int, tag: str = "") -> str:
    """A patient id that ``shard_of`` routes to ``partition`` (of N)."""
    return next(p for k in range(1000) if shard_of(p := f"pat{tag}-{k}", N) == partition)


def request(*rows: tuple[str, str, int]) -> pa.Table:
    patients, sensors, ts = zip(*rows)
    return pa.table({"patient_id": list(patients), "sensor_id": list(sensors),
                     "ts_ms": pa.array(ts, pa.int64())})


class Partitions:
    """Fake partitions: (sensor, ts) deduplication, sensor ownership, failures on demand."""

    def __init__(self, failing: set[int] = frozenset(), n: int = N) -> None:
        self.n = n
        self.stored: dict[int, set[tuple[str, int]]] = {}
        self.sensor_owner: dict[str, str] = {}
        self.failing = failing
        self.calls: list[tuple[int, int]] = []  # (partition, rows sent)

    async def send(self, k: int, table: pa.Table) -> PartitionWrite | Rejection:
        self.calls.append((k, table.num_rows))
        await asyncio.sleep(0)
        if k in self.failing:
            raise RuntimeError("log append failed")
        rows = list(zip(table.column("patient_id").to_pylist(),
                        table.column("sensor_id").to_pylist(), table.column("ts_ms").to_pylist()))
        for patient, sensor, _ in rows:
            if shard_of(patient, self.n) != k:
                return Rejection(500, "a row reached the wrong partition")
            if self.sensor_owner.get(sensor, patient) != patient:
                return Rejection(409, f"sensor {sensor!r} belongs to another patient")
        stored = self.stored.setdefault(k, set())
        new = []
        for i, (patient, sensor, ts) in enumerate(rows):
            self.sensor_owner[sensor] = patient
            if (sensor, ts) not in stored:
                stored.add((sensor, ts))
                new.append(i)
        return PartitionWrite(len(new), len(rows) - len(new), np.array(new, np.int64))


def write(tables, partitions, n=N):
    return asyncio.run(write_coalesced(tables, n, partitions.send))


def counts(result) -> tuple[int, int]:
    assert isinstance(result, WriteCounts), result
    return result.accepted, result.duplicates


def test_requests_sharing_one_partition_get_exact_counts_from_one_call():
    fake = Partitions(n=1)
    write([request(("p", "s", 0), ("p", "s", 5))], fake, n=1)  # stored before
    first = request(("p", "s", 10), ("p", "s", 15), ("p", "s", 20))
    second = request(("p", "s", 10), ("p", "s", 15), ("p", "s", 25))  # two race the first
    third = request(("p", "s", 0), ("p", "s", 5))
    fake.calls.clear()
    results = write([first, second, third], fake, n=1)
    assert [counts(r) for r in results] == [(3, 0), (1, 2), (0, 2)]
    assert fake.calls == [(0, 8)]


def test_requests_spanning_partitions_get_their_rows_counted_once_each():
    a, b, c = patient_on(0), patient_on(1), patient_on(3)
    fake = Partitions()
    write([request((b, "sb", 1))], fake)
    r0 = request((a, "sa", 1), (b, "sb", 1), (b, "sb", 2), (a, "sa", 1))  # one repeat
    r1 = request((b, "sb", 3), (c, "sc", 1))
    fake.calls.clear()
    results = write([r0, r1], fake)
    assert [counts(r) for r in results] == [(2, 2), (2, 0)]
    assert sorted(fake.calls) == [(0, 2), (1, 3), (3, 1)]


def test_a_failing_partition_fails_only_the_requests_that_touched_it():
    a, b = patient_on(0), patient_on(2)
    fake = Partitions(failing={2})
    results = write([request((a, "sa", 1)), request((a, "sa", 2), (b, "sb", 1)),
                     request((b, "sb", 2))], fake)
    assert counts(results[0]) == (1, 0)
    assert results[1] == UNAVAILABLE and results[2] == UNAVAILABLE
    assert results[1].status == 503 and results[1].phrase == "Service Unavailable"
    assert fake.stored[0] == {("sa", 1), ("sa", 2)}  # durable, though request 1 is refused


def test_a_refused_shared_table_is_retried_per_request_and_refuses_only_the_offender():
    a, intruder = patient_on(1, "a"), patient_on(1, "i")
    fake = Partitions()
    write([request((a, "sensor-of-a", 1))], fake)
    honest = request((a, "sensor-of-a", 2), (a, "sensor-of-a", 3))
    offender = request((intruder, "sensor-of-a", 9))
    also_honest = request((a, "sensor-of-a", 1))
    fake.calls.clear()
    results = write([honest, offender, also_honest], fake)
    assert counts(results[0]) == (2, 0) and counts(results[2]) == (0, 1)
    assert results[1] == Rejection(409, "sensor 'sensor-of-a' belongs to another patient")
    assert results[1].phrase == "Conflict"
    assert sorted(fake.calls) == [(1, 1), (1, 1), (1, 2), (1, 4)]  # shared, then one each
    assert ("sensor-of-a", 9) not in fake.stored[1]


def test_a_single_request_refusal_is_not_retried():
    a, intruder = patient_on(1, "a"), patient_on(1, "i")
    fake = Partitions()
    write([request((a, "sx", 1))], fake)
    fake.calls.clear()
    (result,) = write([request((intruder, "sx", 2))], fake)
    assert isinstance(result, Rejection) and result.status == 409
    assert fake.calls == [(1, 1)]


def test_a_request_keeps_its_first_refusal():
    a, b = patient_on(0), patient_on(3)
    fake = Partitions(failing={3})
    write([request((a, "sa", 1))], fake)
    (result,) = write([request((patient_on(0, "x"), "sa", 2), (b, "sb", 1))], fake)
    assert isinstance(result, Rejection) and result.status == 409  # partition 0 answers first


@pytest.mark.parametrize("partitions", [1, 2, 5])
def test_coalesce_routes_every_row_once_to_its_owner(partitions):
    tables = [request(*[(f"p{k % 7}", f"s{k}", k) for k in range(start, start + 9)])
              for start in (0, 9, 18)]
    batch = coalesce(tables, partitions)
    rows = np.sort(np.concatenate([r for _, r in batch.groups]))
    assert rows.tolist() == list(range(27))
    assert batch.owner.tolist() == [0] * 9 + [1] * 9 + [2] * 9
    patients = batch.table.column("patient_id").to_pylist()
    for k, r in batch.groups:
        assert {shard_of(patients[i], partitions) for i in r} == {k}
    if partitions == 1:
        assert batch.rows_of(batch.groups[0][1]) is batch.table  # no copy on the hot path


def test_the_plain_python_modules_import_without_ray():
    import subprocess
    import sys

    modules = ["serve_apps.batching", "serve_apps.replies", "serve_apps.rate_limit",
               "serve_apps.validation", "serve_apps.partition_state", "serve_apps.partition_core",
               "serve_apps.wal", "serve_apps.openapi_docs", "serve_apps.auth", "serve_apps.config"]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
