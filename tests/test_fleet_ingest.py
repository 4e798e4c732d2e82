"""The fleet meets the ingest API: every reading POSTed by the shards is stored exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from actors.fleet import Fleet
from cgm_ray.cli import main
from serve_apps.local import free_port
from tests.ingest_server import ingest_server, stored_keys
from tests.test_fleet import expected_readings, fleet_config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-ingest")
    with ingest_server(tmp, partitions=2) as url:
        yield url, tmp


@pytest.mark.parametrize("sink", ["http", "serve"])
def test_fleet_delivers_through_the_ingest_exactly_once(server, tmp_path, sink):
    url, root = server
    before = stored_keys(root)
    seed = {"http": 11, "serve": 12}[sink]  # a different population per run
    config = fleet_config(tmp_path, n=300, duration_min=720,
                          sink={"kind": "http", "url": url, "batch_size": 1000}
                          if sink == "http" else {"kind": "serve", "app_name": "ingest"})
    config = config.model_copy(update={"scenario": config.scenario.model_copy(update={
        "patients": config.scenario.patients.model_copy(update={"seed": seed})})})
    fleet = Fleet(config).start()
    status = fleet.wait(300)
    fleet.stop()
    assert status.state == "finished", status.error
    expected = {(s, t) for s, t, _ in expected_readings(config)}
    stored = stored_keys(root) - before
    assert status.acked == len(expected) and status.failed == 0
    assert expected == set(stored) and max(stored.values()) == 1


def test_unreachable_target_is_a_clear_error_not_a_hang(capsys):
    started = time.monotonic()
    code = main(["loadtest", "--sensors", "10", "--duration", "5",
                 "--target", f"http://127.0.0.1:{free_port()}"])
    assert code == 2 and time.monotonic() - started < 15
    assert "cannot reach" in capsys.readouterr().err


def test_a_load_test_writes_the_run_over_time_beside_its_json(server, tmp_path, capsys):
    url, _ = server
    code = main(["loadtest", "--sensors", "40", "--speedup", "max", "--duration", "6",
                 "--target", url, "--json", "--report", str(tmp_path / "report")])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["readings_acked"] > 0
    page = Path(report["report_html"])
    assert page == tmp_path / "report" / "report.html" and page.exists()
    assert 'src="data:image/png;base64,' in page.read_text()  # the chart, embedded
    assert (page.parent / "report.png").read_bytes().startswith(b"\x89PNG")
    series = json.loads((page.parent / "series.json").read_text())
    assert len(series["wall_s"]) >= 3 and series["acked"] == sorted(series["acked"])
    assert series["acked"][-1] == report["readings_acked"]
