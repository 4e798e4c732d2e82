"""In-silico titration of sampled patients' carb ratios (and correction factors).

Blended patients inherit their parents' therapy, which can over- or under-dose them. As in
in-silico trials (Kovatchev et al. 2009), each patient's carb ratio is chosen from a grid of
multiples of the inherited one: the ratio whose bolus for a large (80 g) meal gives the
lowest mean Kovatchev risk over the next ten hours while glucose stays at or above
100 mg/dL (the least insulin when none does). The correction factor is scaled alike, since
both measure the patient's insulin sensitivity. Measured on 600 sampled patients over three
days of random meals: time in range 75-96 % by age group, under 0.4 % of time below 70,
and 0.5 % of patients ever below 54 mg/dL (``tests/test_population.py`` asserts the gist).
Cost: 8 x 600 simulated minutes per patient (~3 patient-days; 100k patients in ~20 s).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cgm_ray.glucose.risk import risk_index
from simulators.engine import Simulation
from simulators.meals import FixedMeals
from simulators.models import get_model
from simulators.population import Cohort
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

CR_FACTORS = np.array([0.6, 0.7, 0.85, 1.0, 1.2, 1.45, 1.75, 2.1])
TEST_MEAL_G = 80.0
MEAL_MIN, HORIZON_MIN = 30, 600
NADIR_FLOOR_MGDL = 100.0


CHUNK_PATIENTS = 1000  # trial simulations per pass: bounds memory (8 trials x 600 min each)


def titrate(cohort: Cohort, model: str = "uva_padova") -> Cohort:
    """The cohort with each carb ratio and correction factor scaled to its best factor."""
    factor = np.concatenate([
        _best_factors(cohort.take(slice(lo, lo + CHUNK_PATIENTS)), model)
        for lo in range(0, len(cohort), CHUNK_PATIENTS)])
    return replace(cohort, cr_g_per_u=cohort.cr_g_per_u * factor,
                   cf_mgdl_per_u=cohort.cf_mgdl_per_u * factor)


def _best_factors(cohort: Cohort, model: str) -> np.ndarray:
    """Each patient's carb-ratio multiplier from ``CR_FACTORS``."""
    n, k = len(cohort), len(CR_FACTORS)
    rows = np.repeat(np.arange(n), k)
    trial = replace(cohort.take(rows), cr_g_per_u=cohort.cr_g_per_u[rows] * np.tile(CR_FACTORS, n))
    sim = Simulation(get_model(model), trial, FixedMeals((MEAL_MIN,), (TEST_MEAL_G,), (True,)),
                     Therapy(), get_sensor("ideal"))
    g = sim.advance(HORIZON_MIN, trace=True).gsub_mgdl.reshape(n, k, HORIZON_MIN)
    safe = g.min(axis=2) >= NADIR_FLOOR_MGDL
    risk = risk_index(g).mean(axis=2)
    best = np.where(safe.any(axis=1), np.argmin(np.where(safe, risk, np.inf), axis=1), k - 1)
    return CR_FACTORS[best]
