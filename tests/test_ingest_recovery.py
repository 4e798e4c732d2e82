"""Acknowledged readings survive a killed replica holding the log and an app restart, once each.

Both ways of running the one partition: in its own deployment, and co-located with the
ingress (whose replica then holds the log, so that is the replica killed).
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.ingest_server import ADMIN, ingest_server, log_replica, stored_keys

MIN = 60_000


@pytest.fixture(scope="module", params=[False, True], ids=["partition-deployment", "colocated"])
def server(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("recovery")
    with ingest_server(tmp, partitions=1, colocate_partition=request.param) as base:
        yield base, tmp, request.param


def _batch(k: int, base_ms: int) -> dict:
    sensors = [f"rs-{j}" for j in range(20)]
    return {"patient_id": ["rec"] * 20, "sensor_id": sensors,
            "ts_ms": [base_ms + k * 5 * MIN] * 20, "glucose_mgdl": [100.0 + k % 50] * 20}


def _kill_log_replica(colocated: bool) -> None:
    """Kill the replica that holds the partition's log: the ingress's if co-located."""
    import ray

    holder = log_replica(colocated)
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if f"#{holder}#" in actor["name"]:
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
            return
    raise AssertionError(f"no {holder} replica found")


def test_killed_partition_loses_no_acknowledged_reading(server):
    url, tmp, colocated = server
    base_ms = int(time.time() * 1000) - 3 * 86_400_000
    acked: list[dict] = []
    stop = threading.Event()

    def post_forever():
        k = 0
        while not stop.is_set() and k < 2000:
            batch = _batch(k, base_ms)
            try:
                r = requests.post(f"{url}/api/v2/readings", json=batch, headers=ADMIN, timeout=10)
            except requests.RequestException:
                continue  # retry the same batch: idempotent
            if r.status_code == 200:
                acked.append(batch)
                k += 1
            elif r.status_code >= 500:
                time.sleep(0.05)  # not acknowledged: retry the same batch
            else:
                raise AssertionError(r.text)

    poster = threading.Thread(target=post_forever, daemon=True)
    poster.start()
    time.sleep(3)
    before = len(acked)
    _kill_log_replica(colocated)
    deadline = time.monotonic() + 60
    while len(acked) < before + 50 and time.monotonic() < deadline:
        time.sleep(0.2)  # writes resume once Serve has replaced the replica
    stop.set()
    poster.join(30)
    assert len(acked) >= before + 50, "writes did not resume after the replica was replaced"
    stored = stored_keys(tmp)
    expected = {(s, t) for b in acked for s, t in zip(b["sensor_id"], b["ts_ms"])}
    assert expected <= set(stored)
    assert max(stored.values()) == 1, "a reading was stored twice"


def test_app_restart_replays_the_log_and_keeps_deduplicating(server):
    from ray import serve

    from serve_apps.app import build

    url, tmp, colocated = server
    base_ms = int(time.time() * 1000) - 86_400_000
    batch = {"patient_id": ["replay"] * 3, "sensor_id": ["rp"] * 3,
             "ts_ms": [base_ms, base_ms + 5 * MIN, base_ms + 10 * MIN], "glucose_mgdl": [90, 95, 99]}
    reply = requests.post(f"{url}/api/v2/readings", json=batch, headers=ADMIN, timeout=30)
    assert reply.json()["accepted"] == 3
    serve.delete("ingest")
    serve.run(build({"data_dir": str(tmp / "ingest"), "landing_dir": str(tmp / "landing"),
                     "partitions": 1, "colocate_partition": colocated}),
              name="ingest", route_prefix="/")
    again = requests.post(f"{url}/api/v2/readings", json=batch, headers=ADMIN, timeout=30).json()
    assert again == {"accepted": 0, "duplicates": 3}
    entries = requests.get(f"{url}/api/v1/entries.json", headers=ADMIN, timeout=30,
                           params={"patient": "replay", "count": 10}).json()
    assert [e["sgv"] for e in entries] == [99, 95, 90]
    assert max(stored_keys(tmp).values()) == 1
