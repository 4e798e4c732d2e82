"""Noise-free trajectories agree with simglucose 0.2.11 (dopri5) within 0.5 mg/dL."""

from __future__ import annotations

import csv

import numpy as np

from simulators.engine import Simulation
from simulators.meals import FixedMeals
from simulators.models import get_model
from simulators.population import reference_cohort
from simulators.scenario import parse_scenario
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

TOLERANCE_MGDL = 0.5


def _columns(path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_open_loop_three_patients(simglucose_ref):
    ref = _columns(simglucose_ref / "open_loop_3patients.csv")
    names = ["adult#001", "adolescent#001", "child#001"]
    scenario = parse_scenario({
        "duration_min": 1441, "patients": names, "model": "uva_padova", "sensor": {"model": "ideal"},
        "therapy": {"basal": "steady_state", "bolus": "carb_ratio"},
        "meals": [{"minute": 420, "grams": 50}, {"minute": 720, "grams": 70},
                  {"minute": 1080, "grams": 80}],
    })
    sim = scenario.build()
    steps = list(sim.run(scenario.duration_min, trace=True))
    gsub = np.concatenate([s.gsub_mgdl for s in steps], axis=1)
    bg = np.concatenate([s.bg_mgdl for s in steps], axis=1)
    readings = np.concatenate([s.readings.glucose_mgdl for s in steps])
    for i, name in enumerate(names):
        sel = ref["patient"] == name
        err_gsub = np.abs(gsub[i] - ref["gsub_mgdl"][sel].astype(float)).max()
        err_bg = np.abs(bg[i] - ref["bg_plasma_mgdl"][sel].astype(float)).max()
        assert err_gsub < TOLERANCE_MGDL and err_bg < TOLERANCE_MGDL, (name, err_gsub, err_bg)
    assert len(readings) == 3 * 1441  # the ideal sensor reads every minute


def test_replayed_basal_bolus_day_reproduces_all_states(simglucose_ref):
    ref = _columns(simglucose_ref / "adult001_bb_noisefree_1min_fullstate.csv")
    cho = ref["CHO_eaten_g_per_min"].astype(float)
    insulin = ref["insulin_U_per_min"].astype(float)
    eat = np.flatnonzero(cho > 0)
    meals = FixedMeals(tuple(int(m) for m in eat), tuple(cho[eat]), (False,) * len(eat))
    sim = Simulation(get_model("uva_padova"), reference_cohort(["adult#001"]), meals,
                     Therapy(bolus="none"), get_sensor("ideal"))
    states = np.empty((len(cho), 13))
    gsub_end = np.empty(len(cho))
    for minute, rate in enumerate(insulin):
        sim.basal_u_per_min = np.array([rate])
        sim.advance(1)
        states[minute] = sim.x[0]
        gsub_end[minute] = sim.x[0, 12] / sim.cohort.params["Vg"][0]
    expected = np.stack([ref[f"x{j}_end"].astype(float) for j in range(13)], axis=1)
    assert np.abs(gsub_end - ref["Gsub_mgdl_end"].astype(float)).max() < TOLERANCE_MGDL
    scale = np.abs(expected).max(axis=0) + 1e-9
    assert (np.abs(states - expected).max(axis=0) / scale).max() < 1e-3
