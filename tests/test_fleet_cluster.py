"""The fleet on a multi-node cluster: shards spread over nodes and survive losing one.

A ``ray.cluster_utils.Cluster`` (a head and two one-CPU workers, all on this machine) runs a
fleet checkpointing to a shared directory; a worker node holding a shard is removed mid-run
and every expected reading must still land exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
import ray
from ray.cluster_utils import Cluster

from actors.config import parse_fleet_config
from actors.fleet import Fleet, expected_minutes
from simulators.encoding import readings_table

NODE_STORE_BYTES = 80_000_000


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE_STORE_BYTES, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE_BYTES)
               for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def readings(table: pa.Table) -> list[tuple[str, int, float]]:
    return list(zip(table["sensor_id"].to_pylist(), table["ts_ms"].to_pylist(),
                    table["glucose_mgdl"].to_pylist()))


def test_fleet_survives_losing_a_node(cluster, tmp_path_factory):
    cluster, workers = cluster
    root = tmp_path_factory.mktemp("cluster")
    config = parse_fleet_config({
        "scenario": {"duration_min": 1440, "patients": {"n": 300, "seed": 11},
                     "sensor": {"model": "dexcom_g7", "start": "staggered"}, "seed": 2},
        "sink": {"kind": "parquet", "path": str(root / "landing")},
        "shards": "auto", "speedup": 14_400, "tick_min": 5,  # a simulated day in ~6 s
        "checkpoint_dir": str(root / "checkpoints"), "checkpoint_every_min": 30,
    })
    fleet = Fleet(config)
    nodes = ray.get([s.node_id.remote() for s in fleet.shards], timeout=60)
    by_id = {w.node_id: w for w in workers}
    assert sorted(nodes) == sorted(by_id), "one shard per worker CPU, none on the 0-CPU head"

    fleet.start()
    deadline = time.monotonic() + 60
    while not ((status := fleet.status()).state == "running" and status.minute >= 40):
        assert status.state in ("starting", "running"), status.error
        assert time.monotonic() < deadline, "the fleet made no progress"
        time.sleep(0.02)
    assert status.minute < 1200, "the run got too far before the node was removed"
    cluster.remove_node(by_id[nodes[0]], allow_graceful=False)  # as if the node crashed

    status = fleet.wait(120)
    fleet.stop()
    assert status.state == "finished", status.error
    assert ray.get(fleet.shards[0].node_id.remote(), timeout=30) != nodes[0]
    assert status.shards[0].restored_from_min is not None
    assert status.shards[1].restored_from_min is None

    sim = config.scenario.build()
    expected = readings(pa.concat_tables([
        readings_table(step.readings, sim.cohort, config.scenario.start_ms, sim.sensor.name)
        for step in sim.run(expected_minutes(config))]))
    got = readings(pads.dataset(Path(config.sink.path), format="parquet",
                                partitioning="hive").to_table())
    assert len(got) == len(set(got)), "duplicate readings"
    assert set(got) == set(expected) and status.acked == len(expected)
