"""CGM metrics: agreement with iglu-python 0.4.3 on iglu's example data, hand-computed cases, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cgm_ray.cli import metrics as metrics_cli
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_MIN, DayGrid, day_grid, group_readings, typical_interval_min
from cgm_ray.glucose.metrics import (
    agp_percentiles,
    ea1c_percent,
    glucose_metrics,
    gmi_percent,
    gri_zone,
)
from cgm_ray.glucose.risk import risk_index
from tests.conftest import IGLU_CSV, IGLU_REF

IGLU_EXPECTED = IGLU_REF / "expected_iglu_python_0.4.3.json"
T0_NS = np.datetime64("2024-03-01T00:00:00", "ns").astype(np.int64)


@pytest.fixture(scope="module")
def iglu_data() -> tuple[Path, dict]:
    return IGLU_CSV, json.loads(IGLU_EXPECTED.read_text())["metrics"]


@pytest.fixture(scope="module")
def iglu_metrics(iglu_data) -> dict[str, dict[str, float]]:
    readings = metrics_cli.read_readings(iglu_data[0])
    computed = glucose_metrics(readings)
    return {name: dict(zip(readings.ids.tolist(), values.tolist())) for name, values in computed.items()}


def _expected_names() -> list[str]:
    return sorted(json.loads(IGLU_EXPECTED.read_text())["metrics"])


@pytest.mark.parametrize("key", _expected_names())
def test_every_iglu_metric_agrees(iglu_data, iglu_metrics, key):
    """JSON key ``in_range_percent:in_range_70_180`` is our column ``in_range_70_180``."""
    expected = iglu_data[1][key]
    got = iglu_metrics[key.split(":")[-1]]
    assert set(got) == set(expected)
    for subject, value in expected.items():
        assert got[subject] == pytest.approx(value, rel=1e-3, abs=1e-6), (key, subject)


def _one_subject(gl_mgdl, step_min: float = 5.0, start_min: float = 0.0):
    gl = np.asarray(gl_mgdl, dtype=float)
    time_ns = T0_NS + ((start_min + step_min * np.arange(len(gl))) * NS_PER_MIN).astype(np.int64)
    return group_readings(np.full(len(gl), "s"), time_ns, gl)


def _single(readings) -> dict[str, object]:
    return {name: values[0] for name, values in glucose_metrics(readings).items()}


def test_gmi_and_ea1c_formulas():
    assert gmi_percent(np.array([154.0])) == pytest.approx([3.31 + 0.02392 * 154])
    assert ea1c_percent(np.array([154.0])) == pytest.approx([(46.7 + 154) / 28.7])
    m = _single(_one_subject([100, 200] * 20))
    assert m["mean"] == 150 and m["gmi"] == pytest.approx(3.31 + 0.02392 * 150)


def test_risk_indices_of_constant_glucose():
    low = _single(_one_subject([80.0] * 30))
    f = 1.509 * (np.log(80.0) ** 1.084 - 5.381)
    assert low["lbgi"] == pytest.approx(10 * f ** 2) == pytest.approx(risk_index(np.array([80.0]))[0])
    assert low["hbgi"] == 0.0
    assert low["sd"] == 0.0 and low["cv"] == 0.0
    high = _single(_one_subject([250.0] * 30))
    assert high["lbgi"] == 0.0 and high["hbgi"] == pytest.approx(risk_index(np.array([250.0]))[0])
    assert risk_index(np.array([112.5]))[0] == pytest.approx(0.0, abs=1e-3)


def test_range_edges_follow_iglu():
    """In-range bounds are inclusive (70 and 180 are in range); below/above are strict."""
    m = _single(_one_subject([54, 70, 180, 250, 53, 251, 140, 63]))
    assert m["in_range_70_180"] == pytest.approx(100 * 3 / 8)  # 70, 180 and 140; not 63
    assert m["in_range_63_140"] == pytest.approx(100 * 3 / 8)
    assert m["below_54"] == pytest.approx(100 / 8) and m["below_70"] == pytest.approx(300 / 8)
    assert m["above_180"] == pytest.approx(200 / 8) and m["above_250"] == pytest.approx(100 / 8)
    gri = 3.0 * 12.5 + 2.4 * 25.0 + 1.6 * 12.5 + 0.8 * 12.5  # 127.5, capped at 100
    assert m["gri"] == 100.0 and gri > 100 and m["gri_zone"] == "E"


def test_gri_zones_and_cap():
    assert list(gri_zone(np.array([0, 20, 20.5, 40, 60, 80, 80.1, 100]))) == list("AABBCDEE")
    assert _single(_one_subject([40.0] * 20))["gri"] == 100.0


def test_grade_and_m_value_of_constant_glucose():
    m = _single(_one_subject([90.0] * 20))
    assert m["m_value"] == 0.0
    assert m["grade"] == pytest.approx(425 * (np.log10(np.log10(90 / 18)) + 0.16) ** 2)
    assert m["j_index"] == pytest.approx(0.001 * 90 ** 2)


def test_grid_interpolates_and_leaves_long_gaps_missing():
    time_min = np.array([2.0, 7.0, 12.0, 72.0, 77.0])  # a 60-minute gap after 12 min
    time_ns = T0_NS + (time_min * NS_PER_MIN).astype(np.int64)
    grid = day_grid(time_ns, np.array([100.0, 110.0, 120.0, 180.0, 190.0]))
    assert grid.dt0_min == 5 and grid.gl_mgdl.shape == (1, 288)
    gl = grid.gl_mgdl[0]  # slot k is (k+1)*5 minutes after midnight
    assert gl[0] == pytest.approx(106.0) and gl[1] == pytest.approx(116.0)
    assert np.all(np.isnan(gl[2:14]))  # 15 .. 70 min: strictly inside the 12-72 min gap
    assert gl[14] == pytest.approx(186.0)  # 75 min
    assert np.all(np.isnan(gl[15:]))  # after the last reading


def test_typical_interval_is_the_truncated_mode():
    time_ns = T0_NS + np.cumsum([0, 299, 299, 300, 299, 600]) * 1_000_000_000
    assert typical_interval_min(time_ns) == 4  # mode 4 min 59 s, truncated as iglu does


def test_agp_percentiles_pool_days():
    days = np.array([[100.0] * 288, [200.0] * 288, [300.0] * 288])
    minutes, values = agp_percentiles(DayGrid(days, int(T0_NS), 5))
    assert minutes[0] == 5 and minutes[-1] == 1440
    np.testing.assert_allclose(values[0], [110, 150, 200, 250, 290])


def test_cli_run_writes_one_row_per_subject(iglu_data, iglu_metrics, tmp_path):
    for ext in ("csv", "parquet", "json"):
        out = tmp_path / f"metrics.{ext}"
        table = metrics_cli.run(iglu_data[0], out)
        assert out.is_file() and table.num_rows == 5
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["id"] for r in rows] == [f"Subject {k}" for k in range(1, 6)]
    assert rows[1]["mage"] == pytest.approx(iglu_metrics["mage"]["Subject 2"])
    parquet = pq.read_table(tmp_path / "metrics.parquet")
    assert "conga24" in parquet.column_names and "gri_zone" in parquet.column_names
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith('"id","mean"')


def test_cli_reads_parquet_input(iglu_data, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pacsv.read_csv(iglu_data[0]), src)
    table = metrics_cli.run(src, tmp_path / "out.csv")
    assert table.num_rows == 5


def test_cli_errors_name_the_problem(tmp_path):
    bad_cols = tmp_path / "cols.csv"
    bad_cols.write_text("id,timestamp,gl\na,2024-01-01 00:00:00,100\n")
    with pytest.raises(ConfigError, match="time"):
        metrics_cli.run(bad_cols, tmp_path / "o.csv")
    bad_time = tmp_path / "time.csv"
    bad_time.write_text("id,time,gl\na,yesterday noon,100\na,2024-01-01 00:05:00,110\n")
    with pytest.raises(ConfigError, match="column time"):
        metrics_cli.run(bad_time, tmp_path / "o.csv")
    good = tmp_path / "good.csv"
    good.write_text("id,time,gl\na,2024-01-01 00:00:00,100\na,2024-01-01 00:05:00,110\n")
    with pytest.raises(ConfigError, match="--out"):
        metrics_cli.run(good, tmp_path / "o.xlsx")
    with pytest.raises(ConfigError, match="not found"):
        metrics_cli.run(tmp_path / "missing.csv", tmp_path / "o.csv")


def test_add_commands_registers_metrics():
    parser = argparse.ArgumentParser()
    metrics_cli.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["metrics", "in.csv", "--out", "out.json"])
    assert args.func is metrics_cli.cmd_metrics and args.out == "out.json"
