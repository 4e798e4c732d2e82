"""Fixed-step RK4 over many patients, and the per-minute meal and bolus rules.

Why this integrator: inputs (meals at 5 g/min, insulin) are piecewise constant per
minute, so each minute is integrated with ``substeps`` classical RK4 steps of constant
input, the same input convention as simglucose's one-minute dopri5 calls. With one step
per minute the largest error against simglucose 0.2.11 (dopri5, rtol 1e-6) over its
reference days is 0.0035 mg/dL (adolescent#001; adult#001 0.0005, child#001 0.0024;
two substeps: 0.0011), far inside the 0.5 mg/dL bar that
``tests/test_reference_accuracy.py`` asserts, at a quarter of dopri5's ~20 right-hand-side
calls per minute.

``make_advance`` compiles a generic, patient-by-patient kernel from a model's scalar
right-hand side (Bergman uses it; for UVA/Padova it is the reference the vectorised
kernel is tested against). Each patient's arithmetic is independent of the others, so
results are bit-identical however the population is sharded.

Hypoglycaemia treatment (``rescue_carbs_g``) lives here too, because only the kernels see
glucose minute by minute: the ADA 15-15 rule, with per-patient parameters in a behaviour
row (columns below; ``simulators.therapy.HypoTreatment`` builds it) and a per-patient state
carried between chunks. Its random draws are keyed by (seed, patient key, minute), so a
resumed or re-sharded run treats the same lows the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from simulators.rng import RESCUE_OVERTREAT, uniform_scalar

# Rows of the per-patient meal state carried between chunks (``meal[i, row]``).
PLANNED_G, MEAL_START_QSTO_MG, MEAL_EATEN_G, LAST_EATEN_G = range(4)
N_MEAL_STATE = 4
EAT_RATE_G_PER_MIN = 5.0

# Columns of the per-patient therapy row used for correction boluses.
CF_MGDL_PER_U, TARGET_MGDL, CORRECT_ABOVE_MGDL = range(3)

# Columns of the per-patient behaviour row (``behaviour[i, col]``) for hypo treatment.
(HYPO_BELOW_MGDL, RESCUE_G, RECHECK_MIN, OVERTREAT_PROB, OVERTREAT_G, NIGHT_DELAY_MIN,
 NIGHT_START_MIN, NIGHT_END_MIN, AWAKE_AFTER_RESCUE_MIN, CLOCK0_MIN) = range(10)
N_BEHAVIOUR = 10
# Rows of the per-patient hypo-treatment state carried between chunks (``hypo[i, row]``).
LAST_RESCUE_MIN, RESCUE_DUE_MIN = range(2)
N_HYPO_STATE = 2
NEVER = -1.0e9  # LAST_RESCUE_MIN before any rescue
NOT_DUE = -1.0  # RESCUE_DUE_MIN when no rescue is pending
# Random streams of the hypo treatment (rng stream ids; above simulators.rng's own range).
MINUTES_PER_DAY = 1440


@njit(cache=True, error_model="numpy")
def minute_inputs(meal_state, cursor, j, i, t, gsub, qsto, basal_u_per_min, therapy,
                  meal_min, meal_g, bolus_min, bolus_u, bolus_correct):
    """Meal and bolus bookkeeping of one patient for minute ``t``.

    ``meal_state[:, j]`` holds (planned, qsto0, eaten, last) and ``cursor[:, j]`` (meal
    index, meal end, bolus index, bolus end) of the patient in lane ``j`` (row ``i`` of the
    inputs); both are updated. Announced meals are eaten at 5 g/min; a new meal fixes the
    stomach content the gastric emptying is scaled by (simglucose's convention); boluses
    are delivered within their minute, with a correction above the threshold.
    Returns (carbohydrate mg/min, insulin U/min, meal size Dbar mg).
    """
    planned = meal_state[PLANNED_G, j]
    mi, mend = cursor[0, j], cursor[1, j]
    while mi < mend and meal_min[mi] == t:
        planned += meal_g[mi]
        mi += 1
    insulin = basal_u_per_min[i]
    bi, bend = cursor[2, j], cursor[3, j]
    while bi < bend and bolus_min[bi] == t:
        units = bolus_u[bi]
        if bolus_correct[bi] and gsub > therapy[i, CORRECT_ABOVE_MGDL]:
            units += (gsub - therapy[i, TARGET_MGDL]) / therapy[i, CF_MGDL_PER_U]
        insulin += max(units, 0.0)
        bi += 1
    cursor[0, j] = mi
    cursor[2, j] = bi
    to_eat = min(EAT_RATE_G_PER_MIN, planned) if planned > 0.0 else 0.0
    planned -= to_eat
    qsto0 = meal_state[MEAL_START_QSTO_MG, j]
    eaten = meal_state[MEAL_EATEN_G, j]
    if to_eat > 0.0:
        if meal_state[LAST_EATEN_G, j] <= 0.0:  # a new meal starts: remember the stomach
            qsto0 = qsto
            eaten = 0.0
        eaten += to_eat
    meal_state[PLANNED_G, j] = planned
    meal_state[MEAL_START_QSTO_MG, j] = qsto0
    meal_state[MEAL_EATEN_G, j] = eaten
    meal_state[LAST_EATEN_G, j] = to_eat
    return to_eat * 1000.0, insulin, qsto0 + 1000.0 * eaten


@njit(cache=True, error_model="numpy")
def asleep(row, t):
    """Whether minute ``t`` falls in the patient's night (clock minute 0 = midnight)."""
    tod = (t + row[CLOCK0_MIN]) % MINUTES_PER_DAY
    start, end = row[NIGHT_START_MIN], row[NIGHT_END_MIN]
    return (tod >= start or tod < end) if start > end else (start <= tod < end)


@njit(cache=True, error_model="numpy")
def rescue_carbs_g(hypo, behaviour, i, t, gsub, key, seed):
    """Grams of fast carbohydrate patient ``i`` takes at minute ``t`` (ADA 15-15 rule).

    The patient acts on interstitial glucose ``gsub`` (what the CGM shows, without its
    noise: the sensor is sampled after the kernel, which cannot see the readings). Below
    ``HYPO_BELOW_MGDL`` and at least ``RECHECK_MIN`` after the last rescue, they take
    ``RESCUE_G`` (``OVERTREAT_G`` with probability ``OVERTREAT_PROB``, drawn per rescue).
    At night, unless a rescue was taken within ``AWAKE_AFTER_RESCUE_MIN``, the patient is
    asleep and acts ``NIGHT_DELAY_MIN`` later, and only if still low then. A threshold of 0
    turns the rule off. Updates ``hypo[i]``.
    """
    row = behaviour[i]
    below = row[HYPO_BELOW_MGDL]
    if below <= 0.0:
        return 0.0
    due = hypo[i, RESCUE_DUE_MIN]
    last = hypo[i, LAST_RESCUE_MIN]
    if due != NOT_DUE:  # woken up by a low noticed earlier
        if t < due:
            return 0.0
        hypo[i, RESCUE_DUE_MIN] = NOT_DUE
        if gsub >= below:  # recovered meanwhile: back to sleep
            return 0.0
    else:
        if gsub >= below or t < last + row[RECHECK_MIN]:
            return 0.0
        if row[NIGHT_DELAY_MIN] >= 1.0 and t >= last + row[AWAKE_AFTER_RESCUE_MIN] \
                and asleep(row, t):
            hypo[i, RESCUE_DUE_MIN] = t + row[NIGHT_DELAY_MIN]
            return 0.0
    hypo[i, LAST_RESCUE_MIN] = t
    if uniform_scalar(seed, key, RESCUE_OVERTREAT, t) < row[OVERTREAT_PROB]:
        return row[OVERTREAT_G]
    return row[RESCUE_G]


def make_advance(derivatives: Callable, gsub_mgdl: Callable, bg_mgdl: Callable,
                 n_states: int, rescue_state: int, rescue_mg_per_g: float) -> Callable:
    """Compile the chunk-advance kernel for a model given by its scalar functions.

    The kernel advances every patient ``n_min`` minutes from minute ``t0`` in place
    (``x`` [N, S] states, ``meal`` [N, 4] meal state, ``hypo`` [N, 2] hypo-treatment
    state), reading meal and bolus events as per-patient CSR arrays, and writes
    interstitial and plasma glucose at the start of each minute into ``gsub_out`` and
    ``bg_out`` [N, n_min], and the grams of each hypo rescue into ``rescue_out`` (which
    must come zeroed). A rescue is added at the start of its minute to the state
    ``rescue_state``, ``rescue_mg_per_g`` mg per gram (each model says where fast
    carbohydrate goes, e.g. ``uva_padova.RESCUE_STATE``).
    """

    @njit(error_model="numpy")
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

    @njit(parallel=True, error_model="numpy")
    def advance(x, p, meal, therapy, basal_u_per_min, t0, n_min, substeps,
                meal_ptr, meal_min, meal_g, bolus_ptr, bolus_min, bolus_u, bolus_correct,
                behaviour, hypo, keys, seed, gsub_out, bg_out, rescue_out):
        h = 1.0 / substeps
        for i in prange(x.shape[0]):
            xi = x[i].copy()
            pi = p[i]
            k = np.empty((5, n_states))
            k1, k2, k3, k4, tmp = k[0], k[1], k[2], k[3], k[4]
            meal_state = meal[i].copy().reshape((N_MEAL_STATE, 1))
            cursor = np.array([meal_ptr[i], meal_ptr[i + 1], bolus_ptr[i], bolus_ptr[i + 1]]
                              ).reshape((4, 1))
            for m in range(n_min):
                gsub = gsub_mgdl(xi, pi)
                gsub_out[i, m] = gsub
                bg_out[i, m] = bg_mgdl(xi, pi)
                grams = rescue_carbs_g(hypo, behaviour, i, t0 + m, gsub, keys[i], seed)
                if grams > 0.0:
                    xi[rescue_state] += grams * rescue_mg_per_g
                    rescue_out[i, m] = grams
                cho_mg, insulin_u, dbar_mg = minute_inputs(
                    meal_state, cursor, 0, i, t0 + m, gsub, xi[0] + xi[1], basal_u_per_min,
                    therapy, meal_min, meal_g, bolus_min, bolus_u, bolus_correct)
                rk4_minute(xi, pi, cho_mg, insulin_u, dbar_mg, h, substeps, k1, k2, k3, k4, tmp)
            x[i] = xi
            meal[i] = meal_state[:, 0]

    return advance
