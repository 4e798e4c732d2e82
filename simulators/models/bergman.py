"""Bergman minimal model for T1D, a lighter alternative to UVA/Padova (8 states).

Glucose G and remote insulin action X as in Bergman (1979), with the common T1D parameter
set from ``shared/docs/cgm-domain.md`` (p1 0.028735, p2 0.028344 1/min, p3 5.035e-5,
n 5/54 1/min, VI 12 L for 70 kg, Ib 15 mU/L). Meals enter through a two-compartment gut
(Hovorka 2004: tmaxG 40 min, AG 0.8), insulin through two subcutaneous compartments
(tmaxI 55 min), and the CGM sees interstitial glucose lagging plasma by 10 min.
States: gut D1, D2 [mg]; G [mg/dL]; X [1/min]; I [mU/L]; S1, S2 [mU]; Gs [mg/dL].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from simulators.population import Cohort


STATE_NAMES = ("d1_mg", "d2_mg", "g_mgdl", "x_per_min", "i_mu_per_l", "s1_mu", "s2_mu",
               "gs_mgdl")
PARAM_NAMES = ("p1", "p2", "p3", "n", "vi_l", "ib_mu_per_l", "gb_mgdl", "vg_dl", "tmax_g_min",
               "ag", "tmax_i_min", "tau_sc_min")
P1, P2, P3, N_, VI_L, IB, GB, VG_DL, TMAX_G, AG, TMAX_I, TAU_SC = range(len(PARAM_NAMES))

# Hypo rescue carbohydrate lands in the second gut compartment (fast: it skips the first),
# scaled by the gut's bioavailability AG = 0.8 as meals are.
RESCUE_STATE = 1
RESCUE_MG_PER_G = 800.0

_VG_DL_PER_KG = 1.6
_VI_L_PER_KG = 12.0 / 70.0


@njit(cache=True, error_model="numpy")
def derivatives(x: np.ndarray, p: np.ndarray, cho_mg_per_min: float,
                insulin_u_per_min: float, dbar_mg: float, dx: np.ndarray) -> None:
    """Write dx/dt (per minute) of one patient into ``dx``; ``dbar_mg`` is unused."""
    dx[0] = p[AG] * cho_mg_per_min - x[0] / p[TMAX_G]
    dx[1] = (x[0] - x[1]) / p[TMAX_G]
    ra_mgdl = x[1] / p[TMAX_G] / p[VG_DL]
    dx[2] = -p[P1] * (x[2] - p[GB]) - x[3] * x[2] + ra_mgdl
    dx[3] = -p[P2] * x[3] + p[P3] * (x[4] - p[IB])
    dx[4] = -p[N_] * x[4] + x[6] / p[TMAX_I] / p[VI_L]
    dx[5] = insulin_u_per_min * 1000.0 - x[5] / p[TMAX_I]
    dx[6] = (x[5] - x[6]) / p[TMAX_I]
    dx[7] = (x[2] - x[7]) / p[TAU_SC]
    if x[2] < 0.0:
        dx[2] = 0.0


@njit(cache=True)
def gsub_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Interstitial glucose."""
    return x[7]


@njit(cache=True)
def bg_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Plasma glucose."""
    return x[2]


def build_params(cohort: Cohort) -> dict[str, np.ndarray]:
    """Common T1D parameters, scaled by body weight, with each patient's basal glucose."""
    bw = cohort.params["BW"]
    const = lambda v: np.full(len(cohort), v)  # noqa: E731
    return {
        "p1": const(0.028735), "p2": const(0.028344), "p3": const(5.035e-5),
        "n": const(5.0 / 54.0), "vi_l": _VI_L_PER_KG * bw, "ib_mu_per_l": const(15.0),
        "gb_mgdl": cohort.params["Gb"], "vg_dl": _VG_DL_PER_KG * bw, "tmax_g_min": const(40.0),
        "ag": const(0.8), "tmax_i_min": const(55.0), "tau_sc_min": const(10.0),
    }


def basal_u_per_min(params: dict[str, np.ndarray]) -> np.ndarray:
    """Insulin rate holding plasma insulin at Ib: n*Ib*VI mU/min."""
    return params["n"] * params["ib_mu_per_l"] * params["vi_l"] / 1000.0


def initial_state(cohort: Cohort) -> np.ndarray:
    """Basal steady state: fasting glucose Gb, insulin Ib, empty gut."""
    p = build_params(cohort)
    s = basal_u_per_min(p) * 1000.0 * p["tmax_i_min"]
    zeros = np.zeros(len(cohort))
    return np.stack([zeros, zeros, p["gb_mgdl"], zeros, p["ib_mu_per_l"], s, s, p["gb_mgdl"]],
                    axis=1)
