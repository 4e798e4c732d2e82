"""``--units`` on ``cgm-ray metrics``, ``cohort`` and ``report``: in mmol/L the glucose-valued
metrics are the mg/dL figures divided by 18.0182 and every other figure is the same; range
labels and axes read in mmol/L; the lake stays in mg/dL; a unit we do not know is refused
naming ``--units``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cgm_ray.cli import main
from cgm_ray.cli import metrics as metrics_cli
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.grid import NS_PER_MIN
from cgm_ray.glucose.metrics import GLUCOSE_VALUED_METRICS, METRIC_COLUMNS, range_text
from cgm_ray.glucose.targets import CONSENSUS_TARGETS
from cgm_ray.glucose.units import glucose_text, parse_units
from cgm_ray.lake.report import BANDS, render_report
from cgm_ray.lake.store import Lake
from tests.conftest import IGLU_CSV
from tests.lake_data import etl
from tests.test_report import T0_NS, _synthetic_days, _tables

MGDL_PER_MMOL = 18.0182  # written out here, not imported: the test checks the factor too


def _same(a: object, b: object) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("text, units", [("mg/dL", "mg/dl"), ("mg/dl", "mg/dl"), ("MG/DL", "mg/dl"),
                                         ("mmol/L", "mmol"), ("mmol/l", "mmol"), ("mmol", "mmol"),
                                         (" MMOL ", "mmol")])
def test_unit_spellings_accepted(text, units):
    assert parse_units(text) == units


@pytest.mark.parametrize("text", ["mmol/mol", "mg", "", "mg/dL/min", "18.0182"])
def test_other_units_refused_naming_the_option(text):
    with pytest.raises(ConfigError) as err:
        parse_units(text)
    assert err.value.field == "--units" and "mg/dL or mmol/L" in err.value.message


def test_thresholds_and_ranges_as_printed():
    assert [glucose_text(g, "mmol") for g in (54, 70, 180, 250)] == ["3.0", "3.9", "10.0", "13.9"]
    assert glucose_text(180, "mmol", 1) == "10.1" and glucose_text(70, "mmol", -1) == "3.8"
    assert glucose_text(180, "mg/dl", 1) == "181" and glucose_text(70, "mg/dl") == "70"
    assert range_text("in_range_70_180", "mmol") == "3.9-10.0 mmol/L"
    assert range_text("in_range_70_180") == "70-180 mg/dL"
    assert range_text("below_54", "mmol") == "<3.0 mmol/L" and range_text("above_250") == ">250 mg/dL"
    assert [b.text("mmol") for b in BANDS] == [">13.9 mmol/L", "10.1-13.9 mmol/L", "3.9-10.0 mmol/L",
                                               "3.0-3.8 mmol/L", "<3.0 mmol/L"]
    assert [b.text("mg/dl") for b in BANDS] == [">250 mg/dL", "181-250 mg/dL", "70-180 mg/dL",
                                                "54-69 mg/dL", "<54 mg/dL"]
    assert [t.label_in("mmol") for t in CONSENSUS_TARGETS][:2] == ["Time 3.9-10.0 mmol/L", "Time <3.9 mmol/L"]
    assert CONSENSUS_TARGETS[0].label == "Time 70-180 mg/dL"


def test_glucose_valued_metrics_are_metric_columns():
    assert set(GLUCOSE_VALUED_METRICS) < set(METRIC_COLUMNS)
    assert {"mean", "median", "sd", "mage", "modd", "conga1", "conga24"} == set(GLUCOSE_VALUED_METRICS)


@pytest.mark.parametrize("ext", ["json", "csv", "parquet"])
def test_metrics_in_mmol_are_the_mgdl_figures_divided(tmp_path, capsys, ext):
    assert main(["metrics", str(IGLU_CSV), "--out", str(tmp_path / f"mgdl.{ext}")]) == 0
    assert main(["metrics", str(IGLU_CSV), "--out", str(tmp_path / f"mmol.{ext}"), "--units", "mmol/L"]) == 0
    assert "(glucose values in mmol/L)" in capsys.readouterr().out
    if ext == "json":
        mgdl, mmol = (json.loads((tmp_path / f"{u}.json").read_text()) for u in ("mgdl", "mmol"))
    else:
        read = pq.read_table if ext == "parquet" else pacsv.read_csv
        mgdl, mmol = (read(tmp_path / f"{u}.{ext}").to_pylist() for u in ("mgdl", "mmol"))
    assert len(mgdl) == len(mmol) == 5 and list(mgdl[0]) == list(mmol[0])  # same names, same order
    for a, b in zip(mgdl, mmol):
        for name in METRIC_COLUMNS:
            if name in GLUCOSE_VALUED_METRICS and a[name] is not None:
                assert b[name] == pytest.approx(a[name] / MGDL_PER_MMOL, rel=1e-12), name
            else:
                assert _same(a[name], b[name]), name
    if ext == "parquet":
        assert pq.read_schema(tmp_path / "mmol.parquet").metadata[b"glucose_units"] == b"mmol/L"


def test_metrics_in_mmol_hand_checked(tmp_path):
    """A day alternating 90 and 180 mg/dL: mean 135 mg/dL = 7.4924 mmol/L (135 / 18.0182), SD
    45.08 mg/dL = 2.502 mmol/L; all of it in 70-180 (bounds inclusive), in either unit."""
    n = 288
    time = [str(np.datetime64(T0_NS + 5 * k * NS_PER_MIN, "ns").astype("datetime64[s]")).replace("T", " ")
            for k in range(n)]
    pacsv.write_csv(pa.table({"id": ["a"] * n, "time": time, "gl": [90.0, 180.0] * (n // 2)}),
                    tmp_path / "in.csv")
    row = metrics_cli.run(tmp_path / "in.csv", tmp_path / "out.json", units="mmol").to_pylist()[0]
    assert row["mean"] == pytest.approx(7.4924, abs=5e-5)
    assert row["sd"] == pytest.approx(45.0 * math.sqrt(n / (n - 1)) / 18.0182, rel=1e-9)
    assert row["in_range_70_180"] == 100.0 and row["below_70"] == 0.0


@pytest.mark.parametrize("command", [
    ["metrics", str(IGLU_CSV), "--out", "{tmp}/m.json"],
    ["cohort", "--lake", "{tmp}/no-lake"],
    ["report", "--lake", "{tmp}/no-lake", "--patient", "p1", "--out", "{tmp}/r"],
])
def test_bad_units_refused_in_one_line_naming_the_option(tmp_path, capsys, command):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    assert main([*argv, "--units", "mmol/mol"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--units" in err and "mmol/mol" in err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_report_in_mmol(tmp_path):
    """The synthetic days of test_report: mean (216*120 + 14*60 + 58*200)/288 = 133.19 mg/dL =
    7.39 mmol/L; time in ranges the same; labels, statistics and attributes in mmol/L."""
    time_ns, gl = _synthetic_days()
    attributes = {"correction_factor_mgdl_per_u": 45.0, "weight_kg": 70.0}
    mgdl = render_report("p1", time_ns, gl, tmp_path / "mgdl", attributes)
    mmol = render_report("p1", time_ns, gl, tmp_path / "mmol", attributes, units="mmol")
    assert (mgdl.glucose_units, mmol.glucose_units) == ("mg/dL", "mmol/L")
    assert mmol.metrics["mean"] == pytest.approx(7.3922, abs=5e-5)
    for name in METRIC_COLUMNS:
        if name in GLUCOSE_VALUED_METRICS:
            assert mmol.metrics[name] == pytest.approx(mgdl.metrics[name] / MGDL_PER_MMOL, rel=1e-12), name
        else:
            assert _same(mmol.metrics[name], mgdl.metrics[name]), name
    page = mmol.html.read_text(encoding="utf-8")
    tables = _tables(page)
    stats = tables["Glucose statistics"]
    assert stats["Mean glucose"] == ["7.4 mmol/L"]
    assert stats["Standard deviation (SD)"] == [f"{mgdl.metrics['sd'] / MGDL_PER_MMOL:.1f} mmol/L"]
    assert stats["Coefficient of variation (CV)"] == [f"{mgdl.metrics['cv']:.1f} %"]
    assert tables["Consensus targets"]["Time 3.9-10.0 mmol/L"] == ["75.0 %", "> 70 %", "Met"]
    assert tables["Consensus targets"]["Time <3.9 mmol/L"] == ["4.9 %", "< 4 %", "Not met"]
    assert tables["Patient"]["Correction factor"] == ["2.5 mmol/L per U"]  # 45 / 18.0182
    assert tables["Patient"]["Weight"] == ["70.0 kg"]
    assert "target range\n3.9-10.0 mmol/L" in page and "mg/dL" not in page
    assert "Level 1 hypoglycaemia (<3.9 mmol/L)" in tables["Episodes"]
    assert "mmol" not in mgdl.html.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def iglu_lake(ray_runtime, tmp_path_factory):
    """A lake of iglu's 5 subjects (adults with type 2 diabetes), with an age group each."""
    root = tmp_path_factory.mktemp("units")
    rows = pacsv.read_csv(IGLU_CSV)
    ts_ms = rows["time"].cast(pa.timestamp("ms")).cast(pa.int64())
    ids = rows["id"].cast(pa.string())
    pq.write_table(pa.table({"patient_id": ids, "sensor_id": ids, "ts_ms": ts_ms,
                             "glucose_mgdl": rows["gl"].cast(pa.float32()),
                             "range_flag": pa.array(np.zeros(rows.num_rows, np.int8))}),
                   root / "readings.parquet")
    subjects = sorted(set(ids.to_pylist()))
    pq.write_table(pa.table({"patient_id": subjects, "age_group": ["adult"] * len(subjects)}),
                   root / "patients.parquet")
    etl(root / "lake", "--import", str(root / "readings.parquet"),
        "--patients", str(root / "patients.parquet"))
    return root


def _stdout(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def test_cohort_in_mmol(iglu_lake):
    lake = str(iglu_lake / "lake")
    argv = ["cohort", "--lake", lake, "--group-by", "age_group", "--json"]
    mgdl = json.loads(_stdout(argv))
    mmol = json.loads(_stdout([*argv, "--units", "mmol", "--out", str(iglu_lake / "mmol.json")]))
    assert json.loads((iglu_lake / "mmol.json").read_text()) == mmol
    assert (mgdl["glucose_units"], mmol["glucose_units"]) == ("mg/dL", "mmol/L")
    assert mgdl["patients"] == mmol["patients"] == 5
    for column in ("all", "age_group"):
        for value, a in mgdl["groups"][column].items():
            b = mmol["groups"][column][value]
            assert a["targets_met_percent"] == b["targets_met_percent"]
            assert set(a["metrics"]) == set(b["metrics"]) >= {"mean", "mage", "cv", "in_range_70_180"}
            for name, quantiles in a["metrics"].items():
                for q, v in quantiles.items():
                    if name in GLUCOSE_VALUED_METRICS:
                        assert b["metrics"][name][q] == pytest.approx(v / MGDL_PER_MMOL, abs=1e-4), name
                    else:
                        assert b["metrics"][name][q] == v, name
    # The lake's own copy stays in mg/dL.
    store = Lake(lake)
    stored = json.loads(store.read_text(store.path("cohort", "all_all_full", "summary.json")))
    assert stored["groups"] == mgdl["groups"] and "glucose_units" not in stored

    table = _stdout(["cohort", "--lake", lake, "--units", "mmol/L"]).splitlines()
    mean = mgdl["groups"]["all"]["all"]["metrics"]["mean"]["median"]
    assert table[1].split()[:3] == ["all", "5", f"{mean / MGDL_PER_MMOL:.1f}"]
    assert table[2] == "(mean glucose in mmol/L; TIR 3.9-10.0 mmol/L, TBR <3.9 mmol/L, TAR >10.0 mmol/L)"


def test_report_command_in_mmol(iglu_lake):
    lake = str(iglu_lake / "lake")
    pages = {}
    for units in ("mg/dL", "MMOL/L"):
        out = iglu_lake / units.replace("/", "_")
        _stdout(["report", "--lake", lake, "--patient", "Subject 2", "--out", str(out), "--units", units])
        pages[units] = _tables(next(out.glob("*.html")).read_text(encoding="utf-8"))
        assert next(out.glob("*.pdf")).read_bytes()[:4] == b"%PDF"
    mgdl, mmol = pages["mg/dL"], pages["MMOL/L"]
    mean_mgdl = float(mgdl["Glucose statistics"]["Mean glucose"][0].removesuffix(" mg/dL"))
    mean_mmol = float(mmol["Glucose statistics"]["Mean glucose"][0].removesuffix(" mmol/L"))
    assert mean_mmol == pytest.approx(mean_mgdl / MGDL_PER_MMOL, abs=0.05 + 0.5 / MGDL_PER_MMOL)
    assert mmol["Glucose statistics"]["Coefficient of variation (CV)"] == \
        mgdl["Glucose statistics"]["Coefficient of variation (CV)"]
    assert [row[0] for row in mmol["Consensus targets"].values()] == \
        [row[0] for row in mgdl["Consensus targets"].values()]
    assert re.fullmatch(r"Time 3\.9-10\.0 mmol/L", list(mmol["Consensus targets"])[1])
