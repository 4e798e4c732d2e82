"""The whole pipeline on a 3-node cluster (issue #6): fleet -> ingest -> ETL -> cohort -> report.

A ``ray.cluster_utils.Cluster`` (a zero-CPU head running Serve's controller and proxy, and two
one-CPU workers, all on this machine) runs exactly what ``make demo`` runs: shards on both
workers stream over HTTP into the ingest API, the ETL and cohort jobs run as Ray Data tasks
on the workers, and the lake must hold exactly the readings the ingest acknowledged.
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from cgm_ray.cli.demo import DemoConfig, format_summary, run_pipeline
from cgm_ray.lake.store import Lake

NODE_STORE_BYTES = 80_000_000


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("API_SECRET", "cluster-test-secret")  # the nodes' processes inherit it
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE_STORE_BYTES, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE_BYTES)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_pipeline_on_three_nodes(cluster, tmp_path):
    config = DemoConfig(out=str(tmp_path / "demo"), lake={"buckets": 4},
                        fleet={"tick_min": 60, "batch_size": 5000})
    summary = run_pipeline(config, {"patients": {"n": 120, "seed": 5}, "duration_min": 1440},
                           address=cluster.address, progress=lambda _: None)
    assert summary.shards == 2 and summary.nodes == 2  # one shard on each worker node
    assert summary.readings_acked == summary.readings_sent > 120 * 200
    assert summary.acked_equals_lake and summary.lake_rows == summary.readings_acked
    assert sum(summary.alerts_by_type.values()) > 0

    lake = Lake(summary.lake)
    assert lake.patients().num_rows == 120  # the shards' attribute files were loaded
    metrics = pq.read_table(f"{summary.cohort_dir}/patient_metrics.parquet")
    assert metrics.num_rows == 120 and summary.cohort["patients"] == 120
    groups = summary.cohort["groups"]["age_group"]
    assert sum(g["patients"] for g in groups.values()) == 120
    assert open(summary.report["pdf"], "rb").read(4) == b"%PDF"
    assert json.loads(open(summary.summary_file).read())["lake_rows"] == summary.lake_rows
    text = format_summary(summary)
    assert f"{summary.readings_acked:,} acknowledged by the ingest == " in text
    assert "age_group=adult" in text
