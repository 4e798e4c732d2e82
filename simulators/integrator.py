"""Fixed-step RK4 over many patients, one compiled kernel per physiology model.

Why this integrator: inputs (meals at 5 g/min, insulin) are piecewise constant per
minute, so each minute is integrated with ``substeps`` classical RK4 steps of constant
input, the same input convention as simglucose's one-minute dopri5 calls. Against
simglucose 0.2.11 (dopri5, rtol 1e-6) the largest error over the reference days is
measured by ``tests/test_reference_accuracy.py`` and reported in the module docstring
of ``simulators.engine``. The loop is patient-outer (each patient's 13 states stay in
cache for the whole chunk) and runs in parallel over patients with numba ``prange``;
each patient's arithmetic is independent of the others, so results are bit-identical
however the population is sharded.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit, prange

# Columns of the per-patient meal state carried between chunks.
PLANNED_G, MEAL_START_QSTO_MG, MEAL_EATEN_G, LAST_EATEN_G = range(4)
N_MEAL_STATE = 4
EAT_RATE_G_PER_MIN = 5.0

# Columns of the per-patient therapy row used for correction boluses.
CF_MGDL_PER_U, TARGET_MGDL, CORRECT_ABOVE_MGDL = range(3)


def make_advance(derivatives: Callable, gsub_mgdl: Callable, bg_mgdl: Callable,
                 n_states: int) -> Callable:
    """Compile the chunk-advance kernel for a model given by its scalar functions."""

    @njit(cache=True, error_model="numpy", fastmath=True)
    def rk4_minute(x, p, cho_mg, insulin_u, dbar_mg, h, substeps, k1, k2, k3, k4, tmp):
        for _ in range(substeps):
            derivatives(x, p, cho_mg, insulin_u, dbar_mg, k1)
            for j in range(n_states):
                tmp[j] = x[j] + 0.5 * h * k1[j]
            derivatives(tmp, p, cho_mg, insulin_u, dbar_mg, k2)
            for j in range(n_states):
                tmp[j] = x[j] + 0.5 * h * k2[j]
            derivatives(tmp, p, cho_mg, insulin_u, dbar_mg, k3)
            for j in range(n_states):
                tmp[j] = x[j] + h * k3[j]
            derivatives(tmp, p, cho_mg, insulin_u, dbar_mg, k4)
            for j in range(n_states):
                x[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j])

    @njit(cache=True, parallel=True, error_model="numpy", fastmath=True)
    def advance(x, p, meal, therapy, basal_u_per_min, t0, n_min, substeps,
                meal_ptr, meal_min, meal_g, bolus_ptr, bolus_min, bolus_u, bolus_correct,
                gsub_out, bg_out):
        h = 1.0 / substeps
        for i in prange(x.shape[0]):
            xi = x[i].copy()
            pi = p[i]
            k1 = np.empty(n_states)
            k2 = np.empty(n_states)
            k3 = np.empty(n_states)
            k4 = np.empty(n_states)
            tmp = np.empty(n_states)
            planned, qsto0, eaten, last = meal[i, 0], meal[i, 1], meal[i, 2], meal[i, 3]
            mi, mend = meal_ptr[i], meal_ptr[i + 1]
            bi, bend = bolus_ptr[i], bolus_ptr[i + 1]
            for m in range(n_min):
                t = t0 + m
                gsub = gsub_mgdl(xi, pi)
                gsub_out[i, m] = gsub
                bg_out[i, m] = bg_mgdl(xi, pi)
                while mi < mend and meal_min[mi] == t:
                    planned += meal_g[mi]
                    mi += 1
                insulin = basal_u_per_min[i]
                while bi < bend and bolus_min[bi] == t:
                    units = bolus_u[bi]
                    if bolus_correct[bi] and gsub > therapy[i, CORRECT_ABOVE_MGDL]:
                        units += (gsub - therapy[i, TARGET_MGDL]) / therapy[i, CF_MGDL_PER_U]
                    insulin += max(units, 0.0)  # delivered within this one minute
                    bi += 1
                to_eat = min(EAT_RATE_G_PER_MIN, planned) if planned > 0.0 else 0.0
                planned -= to_eat
                if to_eat > 0.0:
                    if last <= 0.0:  # a new meal starts: remember the stomach content
                        qsto0 = xi[0] + xi[1]
                        eaten = 0.0
                    eaten += to_eat
                last = to_eat
                dbar_mg = qsto0 + 1000.0 * eaten
                rk4_minute(xi, pi, to_eat * 1000.0, insulin, dbar_mg, h, substeps,
                           k1, k2, k3, k4, tmp)
            x[i] = xi
            meal[i, 0], meal[i, 1], meal[i, 2], meal[i, 3] = planned, qsto0, eaten, last

    return advance
