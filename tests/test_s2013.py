"""UVA/Padova S2013 (glucagon, hypoglycaemia risk) and the kernel's hypo treatment.

The vectorised S2013 kernel against its scalar equations is in ``tests/test_models.py``
(``test_vectorised_uva_kernel_matches_the_scalar_reference_kernel``), beside S2008's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numba import njit

from simulators.engine import Simulation
from simulators.meals import FixedMeals
from simulators.models import get_model
from simulators.models import uva_padova as uva
from simulators.population import REFERENCE_NAMES, reference_cohort
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

MEALS = FixedMeals((420, 720, 1080), (50.0, 70.0, 80.0), (True, True, True))
NAMES = ["adult#001", "adolescent#003", "child#002", "adult#007"]


def s2013(**overrides):
    """The S2013 model with some S2013 parameters overridden for every patient."""
    params = lambda c: uva.s2013_params(c.params, overrides)  # noqa: E731
    return replace(get_model("uva_padova_s2013"), build_params=params,
                   initial_state=lambda c: uva.s2013_initial_state(c.x0, params(c)))


def run(model, cohort, meals, n_min=1440, therapy=Therapy(correction=True), **kw):
    sim = Simulation(model, cohort, meals, therapy, get_sensor("ideal"), **kw)
    steps = list(sim.run(n_min, trace=True))
    return sim, steps, np.concatenate([s.bg_mgdl for s in steps], axis=1)


def overdosed(names, units):
    """Reference patients who bolus ``units`` at minute 60 for a crumb of food (CR = 0.01/U)."""
    cohort = reference_cohort(names)
    return (replace(cohort, cr_g_per_u=np.full(len(names), 0.01 / units)),
            FixedMeals((60,), (0.01,), (True,)))


def test_s2013_without_glucagon_and_risk_is_s2008():
    cohort = reference_cohort(NAMES)
    _, _, g08 = run(get_model("uva_padova"), cohort, MEALS)
    sim, _, g13 = run(s2013(xi=0.0, r3=0.0), cohort, MEALS)
    assert g08.max() > 200 and g08.min() < 70  # meals and boluses moved glucose (66-203)
    np.testing.assert_allclose(g13, g08, rtol=0, atol=1e-9)
    assert sim.x[:, uva.H].min() >= 60.0  # the glucagon system ran, it just acted on nothing


def test_s2013_rests_at_the_s2008_basal_state():
    cohort = reference_cohort(list(REFERENCE_NAMES))
    sim, _, g = run(get_model("uva_padova_s2013"), cohort, FixedMeals((), (), ()))
    assert np.abs(g - cohort.params["Gb"][:, None]).max() < 1e-6
    x0 = get_model("uva_padova_s2013").initial_state(cohort)
    np.testing.assert_allclose(sim.x, x0, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(x0[:, uva.H], 60.0)
    np.testing.assert_array_equal(x0[:, uva.SRHS], 0.2 * 60.0)


def test_counter_regulation_lifts_glucose_after_an_insulin_overdose():
    """10 U at minute 60: S2008 patients whose plasma glucose crosses zero stay there (its
    masses stop at zero, the sensor floor for days); S2013 comes back above 50 mg/dL, and
    sooner with glucagon than without (sigma = 0: no secretion response)."""
    names = ["adolescent#003", "child#001"]
    cohort, meals = overdosed(names, 10.0)
    _, _, g08 = run(get_model("uva_padova"), cohort, meals)
    sim, _, g13 = run(get_model("uva_padova_s2013"), cohort, meals)
    _, _, g_no_glucagon = run(s2013(sigma=0.0), cohort, meals)
    assert (g08[:, 240:] < 50).all()  # down by 4 h and never back within the day
    assert (g13[:, 150:240] < 50).all()  # S2013 goes as low
    back = [240 + np.flatnonzero(g[240:] >= 50)[0] for g in g13]
    back_without = [240 + np.flatnonzero(g[240:] >= 50)[0] for g in g_no_glucagon]
    assert max(back) < 10 * 60  # measured 596 and 558 min
    assert all(b + 60 <= bw for b, bw in zip(back, back_without))  # measured 88 and 122 min later
    assert (g13[:, -1] > 100).all()


def test_glucagon_rises_in_hypoglycaemia_and_returns_to_basal():
    cohort, meals = overdosed(["adolescent#003", "child#002"], 5.0)
    sim = Simulation(get_model("uva_padova_s2013"), cohort, meals, Therapy(), get_sensor("ideal"))
    h = []
    for _ in range(24 * 4):
        sim.advance(15)
        h.append(sim.x[:, uva.H].copy())
    h = np.array(h)
    assert (h.max(axis=0) > 1.5 * 60).all()  # measured peaks 1.9x and 2.1x basal
    assert (h.max(axis=0) < 4 * 60).all()
    np.testing.assert_allclose(h[-1], 60.0, atol=0.5)


def test_risk_term_deepens_lows():
    cohort, meals = overdosed(["adult#001", "adolescent#001"], 10.0)
    _, _, g_risk = run(get_model("uva_padova_s2013"), cohort, meals)
    _, _, g_flat = run(s2013(r3=0.0), cohort, meals)
    assert (g_risk.min(axis=1) < g_flat.min(axis=1) - 10).all()  # measured 27 vs 68, 35 vs 50


@njit
def _logs(z):
    out = np.empty_like(z)
    for i in range(z.size):
        out[i] = uva.log_vec(z[i])
    return out


@njit
def _risks(g, gb):
    out = np.empty_like(g)
    for i in range(g.size):
        out[i] = uva._risk(g[i], gb, 60.0)
    return out


def test_vectorisable_log_and_the_risk_function():
    z = np.concatenate([np.linspace(1e-3, 1e3, 100_001), np.exp(np.linspace(-300, 300, 2001))])
    np.testing.assert_allclose(_logs(z), np.log(z), rtol=1e-15, atol=1e-15)
    g = np.array([20.0, 60.0, 80.0, 112.0, 113.0, 137.0, 138.0, 300.0])
    f = np.log(np.maximum(g, 60.0)) ** 1.084 - 5.381
    expected = np.where(f < 0, 10 * f * f, 0.0)
    np.testing.assert_allclose(_risks(g, 138.0), expected, rtol=1e-12, atol=1e-12)
    assert _risks(np.array([100.0]), 90.0)[0] == 0.0  # nothing at or above Gb


def test_unknown_s2013_parameter_is_refused():
    with pytest.raises(ValueError, match="sigmaa"):
        uva.s2013_params(reference_cohort(["adult#001"]).params, {"sigmaa": 1.0})


# --- Hypo treatment in the kernel (ADA 15-15 rule) ----------------------------------------

from simulators.integrator import CLOCK0_MIN, NIGHT_DELAY_MIN  # noqa: E402
from simulators.meals import RandomDailyMeals  # noqa: E402
from simulators.therapy import HypoTreatment  # noqa: E402

ADA = HypoTreatment(below_mgdl=70.0)
OD_NAMES = ["adolescent#003", "child#001", "adolescent#001"]


def rescues_of(steps):
    """(patient, minute, grams) of every rescue in ``steps``, by patient then minute."""
    patient, minute, grams = (np.concatenate([getattr(s.rescues, f) for s in steps])
                              for f in ("patient", "minute", "grams"))
    order = np.lexsort((minute, patient))
    return patient[order], minute[order], grams[order]


def trace(steps, field="gsub_mgdl"):
    return np.concatenate([getattr(s, field) for s in steps], axis=1)


def test_hypo_treatment_off_changes_nothing():
    cohort, meals = overdosed(OD_NAMES, 10.0)
    _, plain, _ = run(get_model("uva_padova"), cohort, meals)
    off = HypoTreatment(below_mgdl=0.0, rescue_g=99.0, night_delay_min=(5, 9))
    _, with_off, _ = run(get_model("uva_padova"), cohort, meals, hypo_treatment=off)
    np.testing.assert_array_equal(trace(with_off), trace(plain))
    assert all(s.rescues is None for s in plain + with_off)


@pytest.mark.parametrize("model", ["uva_padova", "uva_padova_s2013"])
def test_ada_rule_treats_a_daytime_low_every_15_minutes(model):
    cohort = reference_cohort(OD_NAMES)
    cohort = replace(cohort, cr_g_per_u=np.full(len(OD_NAMES), 0.01 / 10.0))
    meals = FixedMeals((600,), (0.01,), (True,))  # 10 U at 10:00
    _, untreated, g0 = run(get_model(model), cohort, meals, therapy=Therapy())
    _, treated, g1 = run(get_model(model), cohort, meals, therapy=Therapy(), hypo_treatment=ADA)
    patient, minute, grams = rescues_of(treated)
    gsub = trace(treated)
    assert set(grams) <= {15.0, 30.0}
    for i in range(len(OD_NAMES)):
        mine = minute[patient == i]
        assert mine[0] == np.flatnonzero(gsub[i] < 70)[0]  # awake: at once
        assert (np.diff(mine) >= 15).all()
        assert (gsub[i, mine] < 70).all()
    # measured untreated 0 and 0, treated 46 and 35 (S2008), 31 and 25 (S2013)
    assert g0[:2].min(axis=1).max() < 1 and g1[:2].min() > 20


def test_a_night_low_waits_for_the_sleeper():
    cohort, meals = overdosed(OD_NAMES, 10.0)  # 10 U at 01:00
    sim, steps, _ = run(get_model("uva_padova"), cohort, meals, therapy=Therapy(),
                        hypo_treatment=ADA)
    delay = sim.behaviour_rows[:, NIGHT_DELAY_MIN]
    assert ((delay >= 0) & (delay <= 60)).all() and len(set(delay)) > 1  # drawn per patient
    patient, minute, _ = rescues_of(steps)
    gsub = trace(steps)
    for i in range(len(OD_NAMES)):
        low = np.flatnonzero(gsub[i] < 70)[0]
        assert minute[patient == i][0] == low + delay[i]
    awake = HypoTreatment(below_mgdl=70.0, night_min=(0, 0))  # no night
    _, steps, _ = run(get_model("uva_padova"), cohort, meals, therapy=Therapy(),
                      hypo_treatment=awake)
    patient, minute, _ = rescues_of(steps)
    for i in range(len(OD_NAMES)):
        assert minute[patient == i][0] == np.flatnonzero(trace(steps)[i] < 70)[0]


def test_overtreating_is_a_per_rescue_draw():
    cohort, meals = overdosed(OD_NAMES, 10.0)
    def grams(p):
        h = HypoTreatment(below_mgdl=70.0, overtreat_prob=p)
        return rescues_of(run(get_model("uva_padova"), cohort, meals, hypo_treatment=h)[1])[2]
    assert set(grams(0.0)) == {15.0} and set(grams(1.0)) == {30.0}
    g = grams(0.5)
    assert {15.0, 30.0} == set(g)
    np.testing.assert_array_equal(grams(0.5), g)  # the same draws again


def test_rescues_resume_exactly_from_a_checkpoint_and_do_not_depend_on_the_shard():
    cohort, meals = overdosed(OD_NAMES, 10.0)
    def make(c=cohort):
        return Simulation(get_model("uva_padova_s2013"), c, meals, Therapy(),
                          get_sensor("dexcom_g6"), seed=4, hypo_treatment=ADA)
    whole = list(make().run(1440, chunk_min=60, trace=True))
    first = make()
    parts = list(first.run(150, chunk_min=50, trace=True))  # a night rescue is pending
    state = first.state_dict()
    assert (state["hypo_state"][:, 1] > 150).any()
    resumed = make()
    resumed.load_state_dict(state)
    parts += list(resumed.run(1290, chunk_min=43, trace=True))
    np.testing.assert_array_equal(trace(parts), trace(whole))
    for a, b in zip(rescues_of(parts), rescues_of(whole)):
        np.testing.assert_array_equal(a, b)
    alone = list(make(cohort.take(slice(1, 2))).run(1440, chunk_min=90, trace=True))
    np.testing.assert_array_equal(trace(alone)[0], trace(whole)[1])
    p, m, g = rescues_of(whole)
    np.testing.assert_array_equal(rescues_of(alone)[1], m[p == 1])
    np.testing.assert_array_equal(rescues_of(alone)[2], g[p == 1])


def test_the_clock_follows_the_meal_plan_start():
    cohort = reference_cohort(["adult#001"])
    sim = Simulation(get_model("uva_padova"), cohort, RandomDailyMeals(1, start_minute_of_day=480),
                     Therapy(), get_sensor("ideal"), hypo_treatment=ADA)
    assert sim.behaviour_rows[0, CLOCK0_MIN] == 480
