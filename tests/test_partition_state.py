"""A partition's state without Ray: deduplication, rollback of undurable readings, refusals."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest

from cgm_ray.schema import EARLIEST_TS_MS
from serve_apps.config import IngestConfig
from serve_apps.partition_core import PartitionCore
from serve_apps.partition_state import PartitionState, SensorConflict, UnknownSensors
from serve_apps.replies import PartitionWrite, Rejection
from serve_apps.validation import ReadingBatch, check_batch

T0 = 1_790_000_000_000
MIN = 60_000


def readings(*rows: tuple[str, str, int, float]):
    """A batch as the ingress hands it to a partition (``LANDING_SCHEMA``)."""
    patients, sensors, ts, glucose = (list(c) for c in zip(*rows))
    batch = ReadingBatch(patient_id=patients, sensor_id=sensors, ts_ms=ts, glucose_mgdl=glucose)
    return check_batch(batch, T0 + 86_400_000, 300, EARLIEST_TS_MS, 50_000)


def sgvs(state: PartitionState, patient: str) -> list[tuple[int, int]]:
    return [(e["date"], e["sgv"]) for e in state.entries(patient, 1000)]


def test_a_repeat_within_a_batch_is_stored_once_and_other_sensors_are_not_repeats():
    state = PartitionState(hot_readings=12)
    new, _, _, rows = state.admit(readings(("p", "s1", T0, 100), ("p", "s1", T0, 101),
                                           ("p", "s2", T0, 102), ("p", "s1", T0 + 5 * MIN, 103)))
    assert new.num_rows == 3 and rows.tolist() == [0, 2, 3]
    assert sgvs(state, "p") == [(T0 + 5 * MIN, 103), (T0, 100), (T0, 102)]


def test_readings_already_stored_are_duplicates_in_later_batches_but_late_ones_are_new():
    state = PartitionState(hot_readings=12)
    state.admit(readings(("p", "s", T0, 100), ("p", "s", T0 + 10 * MIN, 110)))
    new, _, _, rows = state.admit(readings(("p", "s", T0 + 10 * MIN, 110), ("p", "s", T0, 100),
                                           ("p", "s", T0 + 5 * MIN, 105),  # late, not stored
                                           ("p", "s", T0 + 15 * MIN, 115)))
    assert rows.tolist() == [2, 3]
    assert new.column("ts_ms").to_pylist() == [T0 + 5 * MIN, T0 + 15 * MIN]
    assert [g for _, g in sgvs(state, "p")] == [115, 110, 105, 100]


def test_new_readings_go_to_their_patients_subscribers_only_while_subscribed():
    state = PartitionState(hot_readings=12)
    watching, other = state.subscribe("p"), state.subscribe("q")
    new, _, _, _ = state.admit(readings(("p", "s1", T0, 100), ("r", "s3", T0, 90)))
    state.publish_readings(new)
    assert [(kind, e["sgv"]) for kind, e in [watching.get_nowait()]] == [("reading", 100)]
    assert watching.empty() and other.empty()
    state.unsubscribe("p", watching)
    new, _, _, _ = state.admit(readings(("p", "s1", T0 + 5 * MIN, 110), ("q", "s2", T0, 95)))
    state.publish_readings(new)
    assert watching.empty() and other.get_nowait()[1]["sgv"] == 95
    state.unsubscribe("q", other)
    state.publish_readings(state.admit(readings(("q", "s2", T0 + 5 * MIN, 96)))[0])
    assert other.empty()


def test_rollback_forgets_only_the_undone_readings():
    state = PartitionState(hot_readings=12)
    _, _, undo, _ = state.admit(readings(("p", "s", T0 + 20 * MIN, 120)))
    state.admit(readings(("p", "s", T0 + 5 * MIN, 105)))  # durable meanwhile
    state.rollback(undo)
    assert sgvs(state, "p") == [(T0 + 5 * MIN, 105)]
    slot = state.sensors["s"].slot
    assert state.max_ts[slot] == T0 + 5 * MIN
    new, *_ = state.admit(readings(("p", "s", T0 + 20 * MIN, 120)))  # a retry stores it
    assert new.num_rows == 1


def test_unknown_and_conflicting_sensors_are_refused():
    state = PartitionState(auto_register=False)
    with pytest.raises(UnknownSensors, match="unknown sensors: s9"):
        state.admit(readings(("p", "s9", T0, 100)))
    state.register_sensor("s1", "p")
    with pytest.raises(SensorConflict, match="'s1' belongs to another patient"):
        state.admit(readings(("q", "s1", T0, 100)))


@pytest.fixture
def core(tmp_path):
    return PartitionCore(0, IngestConfig(data_dir=str(tmp_path / "ingest"),
                                         landing_dir=str(tmp_path / "landing")))


def test_a_failed_log_write_is_rolled_back_and_a_retry_stores_it(core):
    batch = readings(("p", "s", T0, 100), ("p", "s", T0 + 5 * MIN, 95))
    shutil.rmtree(core.wal.dir)  # the log's disk is gone: the append cannot be made durable

    async def ingest_twice():
        with pytest.raises(OSError):
            await core.ingest(batch)
        assert core.state.entries("p") == []  # nothing undurable is served or deduplicated
        core.wal.dir.mkdir(parents=True)
        return await core.ingest(batch)

    reply = asyncio.run(ingest_twice())
    assert isinstance(reply, PartitionWrite)
    assert (reply.accepted, reply.duplicates, reply.accepted_rows.tolist()) == (2, 0, [0, 1])
    assert core.wal.appended_rows == 2


def test_ingest_refusals_are_rejections_and_store_nothing(tmp_path):
    config = IngestConfig(data_dir=str(tmp_path / "i"), landing_dir=str(tmp_path / "l"),
                          auto_register=False)
    core = PartitionCore(0, config)
    reply = asyncio.run(core.ingest(readings(("p", "s", T0, 100))))
    assert reply == Rejection(422, "unknown sensors: s")
    assert core.register("s", "p", {}).patient_id == "p"
    reply = asyncio.run(core.ingest(readings(("q", "s", T0, 100))))
    assert reply == Rejection(409, "sensor 's' belongs to another patient")
    assert core.wal.appended_rows == 0


def test_the_registry_is_saved_atomically_and_reloaded(tmp_path, core):
    info = core.register("g7", "p", {"model": "dexcom_g7", "cohort": "trial-1"})
    assert info.as_json()["model"] == "dexcom_g7" and "slot" not in info.as_json()
    assert core.register("g7", "intruder", {}) == Rejection(409, "sensor 'g7' belongs to another patient")
    core.set_settings("p", {"low_mgdl": 70})
    folder = core.registry_path.parent
    assert [p.name for p in folder.iterdir()] == ["p000.json"]  # no temporary file left
    saved = json.loads(core.registry_path.read_text())
    assert saved["cohorts"] == {"p": "trial-1"} and saved["settings"]["p"]["low_mgdl"] == 70
    core.close()  # as a process that exits
    again = PartitionCore(0, core.config)
    assert again.state.sensors["g7"].model == "dexcom_g7"
    assert again.state.patients["p"].settings.low_mgdl == 70


def test_snoozing_a_patient_never_seen_is_a_404_not_an_error(core):
    assert core.snooze("nobody", "high", 30) == Rejection(404, "no sensors for patient 'nobody'")
    core.register("s", "p", {})
    assert core.snooze("p", "high", 30) is None
    slot = core.state.sensors["s"].slot
    assert np.any(core.state.alerts.snoozed_until[slot] > 0)


def test_the_partition_is_co_located_only_alone_with_one_ingress_replica():
    from cgm_ray.config import validate
    from cgm_ray.errors import ConfigError

    assert validate(IngestConfig, {}).colocate_partition is True
    assert validate(IngestConfig, {"partitions": 2}).colocate_partition is False
    assert validate(IngestConfig, {"ingress_replicas": 2}).colocate_partition is False
    assert validate(IngestConfig, {"colocate_partition": False}).colocate_partition is False
    for several in ({"partitions": 2}, {"ingress_replicas": 3}):
        with pytest.raises(ConfigError, match=r"colocate_partition: .*needs partitions = 1 and "
                           r"ingress_replicas = 1"):
            validate(IngestConfig, {**several, "colocate_partition": True})
