"""Alert rules run over batches of durable writes (``PartitionCore.settle``), with the
events and state of running them once a write; reads of alert state see every acked write."""

from __future__ import annotations

import asyncio

import numpy as np

from cgm_ray.schema import EARLIEST_TS_MS
from serve_apps.config import IngestConfig
from serve_apps.partition import LocalPartition
from serve_apps.partition_core import PartitionCore, unseen_by_earlier_writes
from serve_apps.validation import ReadingBatch, check_batch

T0 = 1_790_000_000_000
MIN = 60_000


def _table(rows: list[tuple[str, str, int, float]]):
    patients, sensors, ts, glucose = (list(c) for c in zip(*rows))
    return check_batch(ReadingBatch(patient_id=patients, sensor_id=sensors, ts_ms=ts,
                                    glucose_mgdl=glucose), T0 + 30 * 86_400_000, 300,
                       EARLIEST_TS_MS, 50_000)


def _core(tmp_path, name: str, **settings) -> PartitionCore:
    return PartitionCore(0, IngestConfig(data_dir=str(tmp_path / name / "ingest"),
                                         landing_dir=str(tmp_path / name / "landing"),
                                         **settings))


def _events(core: PartitionCore) -> list[tuple]:
    return sorted((e["sensor_id"], e["ts_ms"], e["type"], e["state"])
                  for p in core.state.patients.values() for e in p.history)


def test_readings_seen_in_an_earlier_write_of_the_batch_are_left_out():
    slots = [np.array([1, 2]), np.array([1, 3, 2]), np.array([1])]
    ts = [np.array([100, 100]), np.array([90, 100, 110]), np.array([100])]
    # sensor 1: 90 and the repeated 100 come after 100; sensor 2's 110 is newer; 3 is new
    assert unseen_by_earlier_writes(slots, ts).tolist() == [True, True, False, True, True,
                                                            False]
    assert unseen_by_earlier_writes([np.array([1, 1]), np.array([2])],
                                    [np.array([5, 4]), np.array([1])]).all()


def test_batched_alerts_are_those_of_one_run_a_write(tmp_path):
    """Random writes (lows, highs, fast falls, repeats, late readings) through two cores:
    one settles after every write, the other after a few; same events, same alert state."""
    rng = np.random.default_rng(7)
    alone, batched = _core(tmp_path, "alone"), _core(tmp_path, "batched")

    async def run() -> None:
        clock = {f"s{k}": T0 for k in range(6)}
        for write in range(300):
            rows = []
            for _ in range(int(rng.integers(1, 6))):
                sensor = f"s{int(rng.integers(0, 6))}"
                step = int(rng.choice([-2, 0, 1, 1, 1, 2]))  # late, repeated or new
                clock[sensor] = max(T0, clock[sensor] + step * 5 * MIN)
                glucose = float(rng.choice([45.0, 70.0, 100.0, 150.0, 200.0, 300.0]))
                rows.append((f"p{sensor[-1]}", sensor, clock[sensor], glucose))
            table = _table(rows)
            await alone.ingest(table)
            alone.settle()
            await batched.ingest(table)
            if write % 4 == 3:
                batched.settle()
        batched.settle()

    asyncio.run(run())
    assert len(_events(alone)) > 100
    assert _events(batched) == _events(alone)
    for name in ("active", "last_ts", "prev_ts"):
        assert np.array_equal(getattr(batched.state.alerts, name),
                              getattr(alone.state.alerts, name)), name
    assert batched.alerts_fired == alone.alerts_fired


def test_reads_of_alert_state_wait_for_no_batch(tmp_path):
    """Rules batched for up to a second: an acked low is in the history, the sensor's active
    alerts and the counts at once."""
    config = IngestConfig(data_dir=str(tmp_path / "ingest"),
                          landing_dir=str(tmp_path / "landing"), alert_batch_ms=1000)

    async def run() -> tuple[list[dict], list[dict], int]:
        partition = LocalPartition(0, config)
        await partition.ingest(_table([("p", "s", T0, 120.0)]))
        await partition.ingest(_table([("p", "s", T0 + 20 * MIN, 50.0)]))  # no slope: gap
        history = await partition.alert_history("p", 10)
        sensors = await partition.sensors("p")
        stats = await partition.stats()
        partition.core.close()
        return history, sensors, stats.alerts_fired

    history, sensors, fired = asyncio.run(run())
    assert [(e["type"], e["state"]) for e in history] == [("urgent_low", "fired")]
    assert "urgent_low" in sensors[0]["active_alerts"] and fired == 1


def test_the_rules_run_by_themselves_after_the_batch_window(tmp_path):
    core = _core(tmp_path, "timer", alert_batch_ms=5)

    async def run() -> list[tuple]:
        await core.ingest(_table([("p", "s", T0, 120.0), ("q", "t", T0, 300.0)]))
        before = _events(core)
        await asyncio.sleep(0.05)
        return before

    assert asyncio.run(run()) == []
    assert [e[2:] for e in _events(core)] == [("urgent_high", "fired")]
