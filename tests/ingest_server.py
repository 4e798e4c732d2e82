"""A real ingest server for tests: Ray + Serve on 127.0.0.1, on a free port."""

from __future__ import annotations

import hashlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from serve_apps.local import free_port

SECRET = "test-secret-0123456789"
ADMIN = {"api-secret": hashlib.sha1(SECRET.encode()).hexdigest()}


def stored_keys(root: Path) -> Counter:
    """(sensor, ts) of every durable reading in the ingest's logs under ``root``."""
    import pyarrow as pa

    from serve_apps.wal import SEGMENT_SUFFIX, _read_durable

    keys: Counter = Counter()
    for path in root.rglob(f"*{SEGMENT_SUFFIX}"):
        for batch in _read_durable(path):
            t = pa.Table.from_batches([batch])
            keys.update(zip(t.column("sensor_id").to_pylist(), t.column("ts_ms").to_pylist()))
    return keys


def log_replica(colocated: bool) -> str:
    """The deployment whose replica holds partition 0's log: the ingress's if the partition
    is co-located with it (``IngestConfig.colocate_partition``), else the partition's own."""
    return "Ingress" if colocated else "Partition000"


@contextmanager
def ingest_server(tmp: Path, **config):
    """Yield the base URL of a running ingest app; stop Serve and Ray afterwards."""
    import os

    import ray
    from ray import serve

    from serve_apps.app import build

    os.environ["API_SECRET"] = SECRET
    port = free_port()
    ray.init(address="local", num_cpus=2, object_store_memory=300_000_000,
             include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build({"data_dir": str(tmp / "ingest"), "landing_dir": str(tmp / "landing"),
                         "documents_landing_dir": str(tmp / "documents"),
                         "lake_dir": str(tmp / "lake"),
                         # tests post far faster than a device; test_rate_limits.py keeps it
                         "patient_rate_limit_per_s": 1e6,
                         "timer_period_s": 1.0, **config}), name="ingest", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
