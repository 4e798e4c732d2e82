"""`cgm-ray trial`: arms on the same patients, their files, the paired statistics, bad files by
field, and patient shards on Ray giving the metrics of one run."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from scipy.stats import wilcoxon

from cgm_ray.cli import main
from cgm_ray.glucose.paired import compare_arms, paired_test, spread
from cgm_ray.schema import READING_SCHEMA, TREATMENT_SCHEMA
from simulators.encoding import OUTPUT_FILES
from simulators.trial import TRIAL_METRICS

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the scenarios' default start
SMALL = {
    "name": "small",
    "scenario": {"duration_min": 1440, "patients": {"n": 6, "seed": 5}, "seed": 3},
    "arms": {"open": {"controller": {"algorithm": "basal_bolus"}},
             "oref0": {"controller": {"algorithm": "oref0"}},
             "pid": {"controller": {"algorithm": "pid", "kp_per_h": 0.5}}},
    "warmup_min": 120,
}


def write_trial(tmp_path, spec: dict, name: str = "trial.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_small_trial_writes_metrics_comparison_and_each_arms_lake_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["trial", str(write_trial(tmp_path, SMALL)), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "TIR 70-180 %" in printed and f"outputs in {out}" in printed
    assert printed.rstrip().splitlines()[-1].strip() == f"{out / 'pid'}/"

    metrics = pq.read_table(out / "metrics.parquet")
    assert metrics.num_rows == 3 * 6
    assert metrics.column_names == ["arm", "patient_id", "age_group", "readings", *TRIAL_METRICS]
    assert metrics.column("arm").to_pylist() == ["open"] * 6 + ["oref0"] * 6 + ["pid"] * 6
    ids = metrics.column("patient_id").to_pylist()
    assert ids[:6] == ids[6:12] == ids[12:]  # the same patients in every arm

    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [(r["metric"], r["arm"]) for r in rows] == [(m, a) for m in TRIAL_METRICS
                                                       for a in ("open", "oref0", "pid")]
    assert {r["reference"] for r in rows} == {"open"} and all(r["p_value"] == "" for r in rows[::3])
    assert all(0 <= float(r["p_value"]) <= 1 for k, r in enumerate(rows) if k % 3)
    loop = {r["arm"]: r for r in csv.DictReader((out / "loop_counts.csv").open())}
    assert loop["open"]["periods"] == "" and int(loop["oref0"]["periods"]) == 6 * 1440 // 5

    patients = {arm: pq.read_table(out / arm / "patients.parquet") for arm in ("open", "oref0", "pid")}
    assert patients["open"].equals(patients["oref0"]) and patients["open"].num_rows == 6
    readings = pq.read_table(out / "oref0" / "readings.parquet")
    assert readings.schema.equals(READING_SCHEMA)  # as `cgm-ray simulate` writes them
    assert pq.read_table(out / "oref0" / "treatments.parquet").schema.equals(TREATMENT_SCHEMA)
    # The metrics are of the readings after the warm-up, recomputed here from the arm's file.
    first = metrics.filter(pc.equal(metrics.column("arm"), "oref0")).slice(0, 1).to_pylist()[0]
    mine = readings.filter(pc.and_(pc.equal(readings.column("patient_id").cast("string"),
                                            first["patient_id"]),
                                   pc.greater_equal(readings.column("ts_ms"), START_MS + 120 * 60_000)))
    glucose = mine.column("glucose_mgdl").to_numpy().astype(float)
    assert first["readings"] == len(glucose) > 200
    assert first["in_range_70_180"] == pytest.approx(100 * np.mean((glucose >= 70) & (glucose <= 180)))
    assert first["mean"] == pytest.approx(glucose.mean())


def test_paired_statistics_match_scipy_and_the_exact_distribution():
    reference = np.arange(10.0)
    differences = np.array([1.5, -2.0, 3.0, 4.5, 5.0, 6.0, -0.5, 8.0, 9.0, 10.0])
    test = paired_test(reference, reference + differences)
    assert test.n_pairs == 10 and test.diff_median == pytest.approx(np.median(differences))
    assert test.p_value == pytest.approx(wilcoxon(differences).pvalue)
    # Five positive differences: two-sided exact p = 2 / 2**5.
    assert paired_test(np.zeros(5), np.arange(1.0, 6.0)).p_value == pytest.approx(0.0625)
    s = spread(np.array([4.0, 1.0, np.nan, 3.0, 2.0]))
    assert (s.median, s.q25, s.q75, s.n) == (2.5, 1.75, 3.25, 4)


def test_identical_arms_differ_by_zero_with_p_one_and_no_warning():
    values = np.array([55.0, 61.2, 70.4, np.nan, 80.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference, same = compare_arms("in_range_70_180", {"a": values, "b": values.copy()})
    assert reference.vs_reference is None and reference.spread == same.spread
    assert same.vs_reference.n_pairs == 4  # the patient without a value is left out
    assert (same.vs_reference.diff_median, same.vs_reference.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("change, field", [
    ({"arms": {"open": {"controller": {"algorithm": "basal_bolus"}},
               "oref0": {"controller": {"algorithm": "oref0", "kp_per_h": 1.0}}}},
     "arms.oref0.controller.kp_per_h"),
    ({"arms": {"pid": {"controller": {"algorithm": "pid", "kp_per_h": -1}}, "open": SMALL["arms"]["open"]}},
     "arms.pid.controller.kp_per_h"),
    ({"arms": {"x": {"controller": {"algorithm": "nope"}}, "y": {"controller": {"algorithm": "pid"}}}},
     "arms.x.controller.algorithm"),
    ({"arms": {"only": {"controller": {"algorithm": "pid"}}}}, "arms"),
    ({"arms": {"Big Arm": {"controller": {"algorithm": "pid"}}, "b": {"controller": {"algorithm": "pid"}}}},
     "arms"),
    ({"warmup_min": 1440}, "warmup_min"),
    ({"shards": 7}, "shards"),
    ({"scenario": {"duration_min": 1442, "patients": {"n": 6}}}, "scenario.duration_min"),
    ({"scenario": {"duration_min": 1440, "patients": {"n": 6}, "meals": [{"minute": 0, "grams": -5}]}},
     "scenario.meals.0.grams"),
    ({"scenario": {"duration_min": 1440, "patients": {"n": 6},
                   "therapy": {"controller": {"algorithm": "pid"}}}}, "scenario.therapy.controller"),
    ({"name": "../up"}, "name"),
])
def test_bad_trial_files_name_the_field_with_exit_code_2(tmp_path, capsys, change, field):
    path = write_trial(tmp_path, {**SMALL, **change})
    assert main(["trial", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cgm-ray: error: {field}: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_two_shards_on_ray_give_the_metrics_and_files_of_one_run(tmp_path, ray_runtime):
    spec = {**SMALL, "scenario": {**SMALL["scenario"], "patients": {"n": 5, "seed": 5}},
            "arms": {"open": SMALL["arms"]["open"], "pid": SMALL["arms"]["pid"]}}
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["trial", str(write_trial(tmp_path, spec, "one.yaml")), "--out", str(one), "--quiet"]) == 0
    assert main(["trial", str(write_trial(tmp_path, {**spec, "shards": 2}, "two.yaml")), "--out", str(two),
                 "--quiet"]) == 0
    assert pq.read_table(two / "metrics.parquet").equals(pq.read_table(one / "metrics.parquet"))
    assert (two / "comparison.csv").read_text() == (one / "comparison.csv").read_text()
    assert (two / "loop_counts.csv").read_text() == (one / "loop_counts.csv").read_text()
    for arm in ("open", "pid"):
        assert sorted(p.name for p in (two / arm).iterdir()) == sorted(f"{f}.parquet" for f in OUTPUT_FILES)
        merged, whole = (pq.read_table(d / arm / "patients.parquet") for d in (two, one))
        assert merged.equals(whole)
        for name in ("readings", "treatments"):  # the same rows, in shard order rather than time order
            merged, whole = (sorted(map(repr, pq.read_table(d / arm / f"{name}.parquet").to_pylist()))
                             for d in (two, one))
            assert merged == whole and len(merged) > 0, (arm, name)


def test_oref0_reference_shards_on_ray_agree_with_the_port_and_stop_their_node_workers(tmp_path, ray_runtime):
    import shutil

    import psutil

    from simulators.controllers.oref0_reference import WORKER_JS, default_node_dir

    if shutil.which("node") is None or not (default_node_dir() / "node_modules/oref0/package.json").is_file():
        pytest.skip("the real oref0 needs Node.js and `make node-deps`")
    scenario = {"duration_min": 60, "patients": {"n": 2, "seed": 5}, "sensor": {"model": "ideal"}}
    spec = {**SMALL, "scenario": scenario, "warmup_min": 0,
            "arms": {"port": {"controller": {"algorithm": "oref0"}},
                     "js": {"controller": {"algorithm": "oref0_reference"}}}, "shards": 2}
    out = tmp_path / "out"
    assert main(["trial", str(write_trial(tmp_path, spec)), "--out", str(out), "--quiet"]) == 0
    loop = {r["arm"]: r for r in csv.DictReader((out / "loop_counts.csv").open())}
    assert loop["js"]["failures"] == "0" and int(loop["js"]["periods"]) == 2 * 60 // 5
    metrics = pq.read_table(out / "metrics.parquet")
    port, js = (metrics.filter(pc.equal(metrics.column("arm"), arm)) for arm in ("port", "js"))
    for name in TRIAL_METRICS:  # the port decides as oref0 does
        np.testing.assert_allclose(js.column(name).to_numpy(), port.column(name).to_numpy(), rtol=0.01)
    ours = {p.pid for p in psutil.Process().children(recursive=True)}  # Ray's processes and theirs
    workers = [p for p in psutil.process_iter(["cmdline"])
               if p.pid in ours and str(WORKER_JS) in " ".join(p.info["cmdline"] or ())]
    assert not workers, "a Ray task left its oref0 worker running"
