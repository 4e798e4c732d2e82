"""The sensor fleet (issue #3): exact delivery, a shard killed mid-run, control, bad configs.

Every fleet here runs on one Ray runtime for the module. What a fleet delivers into its
Parquet landing area is compared, reading for reading, with an uninterrupted in-process
``Simulation`` of the same scenario.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
import ray

from actors.config import FleetConfig, parse_fleet_config
from actors.fleet import Fleet, FleetStatus, expected_minutes
from cgm_ray.cli import main
from cgm_ray.errors import ConfigError
from simulators.encoding import readings_table

Reading = tuple[str, int, float]  # sensor_id, ts_ms, glucose_mgdl


def fleet_config(root: Path, n: int = 400, duration_min: int = 1440, **fleet) -> FleetConfig:
    """A staggered Dexcom G6 fleet of ``n`` sampled patients landing under ``root``."""
    return parse_fleet_config({
        "scenario": {"duration_min": duration_min, "patients": {"n": n, "seed": 3},
                     "sensor": {"model": "dexcom_g6", "start": "staggered"}, "seed": 5,
                     "therapy": {"correction": True, "late_bolus_prob": 0.2}},
        "sink": {"kind": "parquet", "path": str(root / "landing")},
        "shards": 2, "speedup": "max", "tick_min": 5, **fleet,
    })


def expected_readings(config: FleetConfig, until_min: int | None = None) -> list[Reading]:
    """The readings of an uninterrupted in-process run over the fleet's simulated interval."""
    scenario = config.scenario
    sim = scenario.build()
    minutes = expected_minutes(config) if until_min is None else until_min
    tables = [readings_table(step.readings, sim.cohort, scenario.start_ms, sim.sensor.name)
              for step in sim.run(minutes)]
    return rows(pa.concat_tables(tables))


def rows(table: pa.Table) -> list[Reading]:
    return list(zip(table["sensor_id"].to_pylist(), table["ts_ms"].to_pylist(),
                    table["glucose_mgdl"].to_pylist()))


def landed(config: FleetConfig) -> list[Reading]:
    """Every reading in the fleet's landing area (hive-partitioned Parquet)."""
    path = Path(config.sink.path)
    if not path.exists():
        return []
    return rows(pads.dataset(path, format="parquet", partitioning="hive").to_table())


def assert_exactly(got: list[Reading], expected: list[Reading]) -> None:
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicate readings"
    assert len(expected) == len(set(expected)) and expected
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} unexpected readings"


def wait_until(fleet: Fleet, done, timeout_s: float = 60.0) -> FleetStatus:
    """Poll the fleet's status until ``done(status)`` (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = fleet.status()
        if done(status):
            return status
        assert status.state not in ("failed", "finished"), (status.state, status.error)
        time.sleep(0.02)
    raise AssertionError(f"timed out; last status {fleet.status()}")


def test_fleet_delivers_exactly_the_in_process_readings(ray_runtime, tmp_path_factory):
    config = fleet_config(tmp_path_factory.mktemp("complete"))
    fleet = Fleet(config).start()
    status = fleet.wait(120)
    fleet.stop()
    assert status.state == "finished", status.error
    assert status.minute == status.duration_min == 1440 and status.lag_min == 0
    expected = expected_readings(config)
    assert status.produced == status.acked == len(expected) and status.failed == 0
    assert_exactly(landed(config), expected)
    files = [p for p in Path(config.sink.path).rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".parquet" and p.parent.name.startswith("date=2026-01-0")
                         for p in files)


def test_killed_shard_resumes_from_its_checkpoint(ray_runtime, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    # 1,440 simulated minutes in ~6 s: the kill lands well inside the run.
    config = fleet_config(root, speedup=14_400, checkpoint_dir=str(root / "checkpoints"),
                          checkpoint_every_min=30)
    fleet = Fleet(config).start()
    before = wait_until(fleet, lambda s: s.state == "running" and s.minute >= 40)
    assert before.minute < 1200, "the run got too far before the kill"
    ray.kill(fleet.shards[0], no_restart=False)
    status = fleet.wait(120)
    assert status.state == "finished", status.error
    restored = status.shards[0].restored_from_min
    assert restored is not None and 30 <= restored < status.duration_min
    assert status.shards[1].restored_from_min is None
    expected = expected_readings(config)
    assert status.acked == len(expected)  # counters resume with the state
    assert_exactly(landed(config), expected)
    fleet.stop()


def test_pause_resume_stop(ray_runtime, tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    config = fleet_config(root, n=200, duration_min=14_400, speedup=7_200)  # 2 sim-h per s
    fleet = Fleet(config).start()
    wait_until(fleet, lambda s: s.state == "running" and s.minute > 0)
    fleet.pause()
    time.sleep(0.5)  # the round in flight completes
    paused = fleet.status()
    time.sleep(1.0)
    assert fleet.status().minute == paused.minute and fleet.status().state == "paused"
    fleet.resume()
    wait_until(fleet, lambda s: s.state == "running" and s.minute > paused.minute, 30)
    status = fleet.stop()
    assert status.state == "stopped" and 0 < status.minute < status.duration_min
    assert {s.minute for s in status.shards} == {status.minute}
    assert status.acked == status.produced
    # Whatever was delivered up to the stop is exactly the start of the full run.
    assert_exactly(landed(config), expected_readings(config, until_min=status.minute))


def run_then_extend(config: dict, longer_min: int):
    """Run a 240-min fleet to its end, then the same fleet longer: every shard resumes at 240."""
    fleet = Fleet(parse_fleet_config(config)).start()
    first = fleet.wait(60)
    fleet.stop()
    assert first.state == "finished", first.error
    longer = parse_fleet_config({**config, "scenario": {**config["scenario"], "duration_min": longer_min}})
    fleet = Fleet(longer).start()
    second = fleet.wait(60)
    fleet.stop()
    assert second.state == "finished", second.error
    assert [s.restored_from_min for s in second.shards] == [240, 240]
    return longer, second


def test_fresh_sensors_warm_up_and_a_run_resumes_from_its_checkpoints(ray_runtime,
                                                                       tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    fresh = {"scenario": {"duration_min": 240, "patients": {"n": 50, "seed": 1},
                          "sensor": {"model": "dexcom_g6", "start": "fresh"}},
             "sink": {"path": str(root / "landing")}, "speedup": "max", "shards": 2,
             "checkpoint_dir": str(root / "checkpoints"), "checkpoint_every_min": 60}
    longer, second = run_then_extend(fresh, 480)  # windows in the 2 h warm-up hold nothing
    expected = expected_readings(longer)
    assert min(ts for _, ts, _ in expected) >= longer.scenario.start_ms + 120 * 60_000
    assert second.acked == len(expected)
    assert_exactly(landed(longer), expected)
    other = parse_fleet_config({**fresh, "scenario": {**fresh["scenario"], "seed": 9}})
    with pytest.raises(ConfigError, match="checkpoint_dir: .*different fleet"):
        Fleet(other)


def test_a_closed_loop_fleet_resumes_its_loops_from_checkpoints(ray_runtime, tmp_path_factory):
    """oref0 in every patient's loop: a run resumed from checkpoints (pump, insulin on board, CGM
    history in the state) lands exactly what an uninterrupted in-process run produces."""
    root = tmp_path_factory.mktemp("loop")
    loop = {"scenario": {"duration_min": 240, "patients": {"n": 20, "seed": 3}, "seed": 3,
                         "therapy": {"controller": {"algorithm": "oref0"}}},
            "sink": {"path": str(root / "landing")}, "speedup": "max", "shards": 2,
            "checkpoint_dir": str(root / "checkpoints"), "checkpoint_every_min": 60}
    longer, second = run_then_extend(loop, 600)
    expected = expected_readings(longer)
    assert second.acked == len(expected) > 0
    assert_exactly(landed(longer), expected)


def test_shards_export_ray_metrics(ray_runtime, tmp_path_factory):
    # Three shards: the shard="2" series are this fleet's alone (the others run two).
    config = fleet_config(tmp_path_factory.mktemp("metrics"), n=90, duration_min=240, shards=3)
    fleet = Fleet(config).start()
    status = fleet.wait(60)
    assert status.state == "finished", status.error
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    wanted = {"ray_cgm_fleet_readings_produced_total", "ray_cgm_fleet_readings_delivered_total",
              "ray_cgm_fleet_delivery_latency_ms_count", "ray_cgm_fleet_sim_lag_min"}
    deadline, found = time.monotonic() + 20, {}
    while set(found) != wanted and time.monotonic() < deadline:  # exported every few seconds
        time.sleep(1)
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        found = {m[1]: float(m[2]) for m in re.finditer(
            r'^(\w+)\{[^}]*shard="2"[^}]*\} (\S+)$', text, re.M) if m[1] in wanted}
    fleet.stop()
    assert set(found) == wanted, f"missing metrics: {wanted - set(found)}"
    assert found["ray_cgm_fleet_readings_produced_total"] == status.shards[2].produced > 0
    assert found["ray_cgm_fleet_readings_delivered_total"] == status.shards[2].acked
    assert found["ray_cgm_fleet_delivery_latency_ms_count"] == status.shards[2].windows


BASE = {"scenario": {"duration_min": 60, "patients": {"n": 10}}, "sink": {"path": "out/x"}}


@pytest.mark.parametrize("change, field", [
    ({"scenario": {"duration_min": 60, "patients": {"n": 0}}}, "scenario.patients.n"),
    ({"scenario": {"duration_min": 60, "patients": {"n": 5}, "sensor": {"model": "g99"}}},
     "scenario.sensor.model"),
    ({"scenario": {"duration_min": 60, "patients": ["adult#001", "adult#042"]}},
     "scenario.patients[1]"),
    ({"scenario": {"duration_min": 0, "patients": {"n": 5}}}, "scenario.duration_min"),
    ({"speedup": 0}, "speedup"),
    ({"speedup": -288}, "speedup"),
    ({"speedup": "fast"}, "speedup"),
    ({"shards": 11}, "shards"),
    ({"tick_min": 5, "checkpoint_every_min": 12}, "checkpoint_every_min"),
    ({"scenario": {"duration_min": 60, "patients": {"n": 5}, "therapy": {"controller": {"algorithm": "pid"}}},
      "tick_min": 3, "checkpoint_every_min": 3}, "tick_min"),
    ({"sink": {"kind": "kafka", "path": "x"}}, "sink.kind"),
])
def test_bad_fleet_configs_name_the_field(change, field):
    with pytest.raises(ConfigError) as err:
        parse_fleet_config({**BASE, **change})
    assert err.value.field == field


GARBLED = "scenario: {duration_min: [60\nsink: x"


@pytest.mark.parametrize("args, says", [
    (["loadtest", "--sensors", "0", "--duration", "5"], "--sensors"),
    (["loadtest", "--sensors", "10", "--duration", "0"], "--duration"),
    (["fleet", "{missing}"], "cannot read file"),
    (["fleet", "{garbled}"], "malformed YAML"),
    (["fleet", "{zero}"], "scenario.patients.n"),
])
def test_cli_refuses_bad_input_with_exit_code_2(tmp_path, capsys, args, says):
    files = {"missing": tmp_path / "nope.yaml", "garbled": tmp_path / "garbled.yaml",
             "zero": tmp_path / "zero.yaml"}
    files["garbled"].write_text(GARBLED)
    files["zero"].write_text("scenario: {duration_min: 60, patients: {n: 0}}\n"
                             "sink: {path: out/x}\n")
    started = time.monotonic()
    assert main([a.format(**files) for a in args]) == 2
    assert time.monotonic() - started < 10  # refused up front: no Ray start, no hang
    err = capsys.readouterr().err.strip()
    assert err.startswith("cgm-ray: error: ") and says in err.splitlines()[0]
    assert "Traceback" not in err
    if "{garbled}" not in args:
        assert "\n" not in err


def test_garbled_config_error_is_one_line(tmp_path, capsys):
    (tmp_path / "garbled.yaml").write_text(GARBLED)
    assert main(["fleet", str(tmp_path / "garbled.yaml")]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
