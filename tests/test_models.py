"""Every physiology model passes the same contract checks (cf. gymnasium's env checker)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from simulators.engine import Simulation
from simulators.meals import FixedMeals, RandomDailyMeals
from simulators.models import MODELS, get_model
from simulators.population import reference_cohort, sample_cohort
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

NAMES = ["adult#001", "adolescent#003", "child#002"]


def _trace(sim: Simulation, n_min: int) -> np.ndarray:
    return np.concatenate([s.gsub_mgdl for s in sim.run(n_min, trace=True)], axis=1)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_steady_state_holds_without_meals(model):
    sim = Simulation(get_model(model), reference_cohort(NAMES), FixedMeals((), (), ()),
                     Therapy(), get_sensor("ideal"))
    g = _trace(sim, 720)
    assert np.abs(g - g[:, :1]).max() < 0.05


@pytest.mark.parametrize("model", sorted(MODELS))
def test_meal_raises_and_insulin_lowers_glucose(model):
    cohort = reference_cohort(NAMES)
    meal_only = Simulation(get_model(model), cohort, FixedMeals((60,), (60.0,), (True,)),
                           Therapy(bolus="none"), get_sensor("ideal"))
    with_bolus = Simulation(get_model(model), cohort, FixedMeals((60,), (60.0,), (True,)),
                            Therapy(), get_sensor("ideal"))
    g_meal, g_bolus = _trace(meal_only, 300), _trace(with_bolus, 300)
    assert np.all(g_meal.max(axis=1) > g_meal[:, 0] + 20)
    assert np.all(g_bolus.max(axis=1) < g_meal.max(axis=1))
    assert np.all(g_bolus[:, -1] < g_meal[:, -1])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_vectorised_equals_one_by_one_bit_for_bit(model):
    cohort = sample_cohort(40, seed=5)
    def run(c):
        sim = Simulation(get_model(model), c, RandomDailyMeals(3), Therapy(correction=True),
                         get_sensor("dexcom_g6"), seed=3, staggered_sensors=True)
        steps = list(sim.run(1440, chunk_min=90, trace=True))
        return (np.concatenate([s.gsub_mgdl for s in steps], axis=1),
                np.concatenate([s.readings.glucose_mgdl for s in steps]))
    g_all, r_all = run(cohort)
    for i in (0, 17, 39):
        g_one, r_one = run(cohort.take(slice(i, i + 1)))
        np.testing.assert_array_equal(g_all[i], g_one[0])
    shards = [run(cohort.take(slice(a, b))) for a, b in ((0, 13), (13, 40))]
    np.testing.assert_array_equal(np.concatenate([s[0] for s in shards]), g_all)


def test_chunking_and_checkpoint_resume_do_not_change_results():
    cohort = sample_cohort(20, seed=9)
    def make():
        return Simulation(get_model("uva_padova"), cohort, RandomDailyMeals(1),
                          Therapy(late_bolus_prob=0.5, missed_bolus_prob=0.2),
                          get_sensor("libre3"), seed=1, staggered_sensors=True)
    whole = make()
    ref = [whole.advance(2000, trace=True)]
    first = make()
    parts = [first.advance(700, trace=True)]
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    parts += list(resumed.run(1300, chunk_min=37, trace=True))
    np.testing.assert_array_equal(np.concatenate([p.gsub_mgdl for p in parts], axis=1),
                                  ref[0].gsub_mgdl)
    for field in ("minute", "glucose_mgdl", "session"):
        np.testing.assert_array_equal(
            np.sort(np.concatenate([getattr(p.readings, field) for p in parts])),
            np.sort(getattr(ref[0].readings, field)))


def test_unknown_model_names_the_field():
    with pytest.raises(ConfigError, match="model"):
        get_model("hovorka2099")


def uva_reference_kernel(model: str):
    """The scalar-RHS kernel ``make_advance`` compiles for a UVA/Padova variant."""
    from simulators.integrator import make_advance
    from simulators.models import uva_padova

    s2013 = model == "uva_padova_s2013"
    return make_advance(uva_padova.derivatives_s2013 if s2013 else uva_padova.derivatives,
                        uva_padova.gsub_mgdl, uva_padova.bg_mgdl,
                        uva_padova.N_STATES_S2013 if s2013 else uva_padova.N_STATES,
                        uva_padova.RESCUE_STATE, uva_padova.RESCUE_MG_PER_G)


@pytest.mark.parametrize("model", ["uva_padova", "uva_padova_s2013"])
@pytest.mark.parametrize("treat_lows", [False, True])
def test_vectorised_uva_kernel_matches_the_scalar_reference_kernel(model, treat_lows):
    """The SIMD production kernel computes what the readable scalar equations say."""
    from simulators.therapy import HypoTreatment

    cohort = sample_cohort(70, seed=2)  # more than one 64-patient block, one part-filled
    # Over-bolused (carb ratio x0.7) so that lows, rescues and the S2013 terms all occur.
    cohort = replace(cohort, cr_g_per_u=cohort.cr_g_per_u * 0.7)
    hypo = HypoTreatment(below_mgdl=70.0 if treat_lows else 0.0)
    def make():
        return Simulation(get_model(model), cohort, RandomDailyMeals(4),
                          Therapy(correction=True, late_bolus_prob=0.3), get_sensor("ideal"),
                          hypo_treatment=hypo)
    fast, slow = make(), make()
    slow.model = replace(slow.model, advance=uva_reference_kernel(model))
    steps_fast = list(fast.run(1440, trace=True))
    steps_slow = list(slow.run(1440, trace=True))
    g_fast = np.concatenate([s.gsub_mgdl for s in steps_fast], axis=1)
    g_slow = np.concatenate([s.gsub_mgdl for s in steps_slow], axis=1)
    assert g_fast.min() < 70  # the comparison covers lows
    # S2013's kinks at Gt = 0 (Uid reads max(Gt, 0); masses may not fall below 0), which its
    # raised insulin action reaches, let rounding pick the branch: ~1e-7 mg/dL apart.
    s2013 = model == "uva_padova_s2013"
    np.testing.assert_allclose(g_fast, g_slow, rtol=0, atol=1e-6 if s2013 else 1e-8)
    np.testing.assert_allclose(fast.x, slow.x, rtol=1e-7 if s2013 else 1e-10,
                               atol=1e-7 if s2013 else 1e-10)
    np.testing.assert_allclose(fast.meal_state, slow.meal_state, rtol=1e-10)
    np.testing.assert_array_equal(fast.hypo_state, slow.hypo_state)
    if treat_lows:
        for a, b in zip(steps_fast, steps_slow):
            for field in ("patient", "minute", "grams"):
                np.testing.assert_array_equal(getattr(a.rescues, field), getattr(b.rescues, field))
        assert sum(len(s.rescues) for s in steps_fast) > 0
