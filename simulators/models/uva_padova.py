"""UVA/Padova T1D model (Dalla Man et al. 2007; the 2008 academic simulator, "S2008").

Thirteen states per patient, equations as in ``shared/docs/cgm-domain.md`` section 1 and
simglucose 0.2.11, the accuracy reference. The right-hand side is a scalar numba function
over one patient's contiguous parameter row; the integrator (``simulators.integrator``)
runs it over all patients in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

STATE_NAMES = (
    "qsto1_mg", "qsto2_mg", "qgut_mg", "gp_mg_per_kg", "gt_mg_per_kg", "ip_pmol_per_kg",
    "x_pmol_per_l", "i1_pmol_per_l", "id_pmol_per_l", "il_pmol_per_kg", "isc1_pmol_per_kg",
    "isc2_pmol_per_kg", "gs_mg_per_kg",
)

# Parameter columns, in the order of the per-patient row the kernel reads.
PARAM_NAMES = (
    "BW", "kabs", "kmax", "kmin", "b", "d", "f", "kp1", "kp2", "kp3", "Fsnc", "ke1", "ke2",
    "k1", "k2", "Vm0", "Vmx", "Km0", "m1", "m2", "m4", "m30", "ka1", "ka2", "kd", "Vi",
    "Ib", "p2u", "ki", "ksc", "Vg", "u2ss",
)
(BW, KABS, KMAX, KMIN, B, D, F, KP1, KP2, KP3, FSNC, KE1, KE2, K1, K2, VM0, VMX, KM0, M1,
 M2, M4, M30, KA1, KA2, KD, VI, IB, P2U, KI, KSC, VG, U2SS) = range(len(PARAM_NAMES))

N_STATES = len(STATE_NAMES)


@njit(cache=True, error_model="numpy", fastmath=True)
def derivatives(x: np.ndarray, p: np.ndarray, cho_mg_per_min: float,
                insulin_u_per_min: float, dbar_mg: float, dx: np.ndarray) -> None:
    """Write dx/dt (per minute) of one patient into ``dx``.

    ``dbar_mg`` is the size of the meal being digested (stomach content at meal start plus
    what has been eaten of it), which shapes gastric emptying.
    """
    u = insulin_u_per_min * 6000.0 / p[BW]  # pmol/kg/min
    qsto = x[0] + x[1]
    if dbar_mg > 0.0:
        aa = 5.0 / (2.0 * dbar_mg * (1.0 - p[B]))
        cc = 5.0 / (2.0 * dbar_mg * p[D])
        # tanh(y1) - tanh(y2) + 2 == 2/(1+e^-2y1) + 2/(1+e^2y2): two exps, cheaper than tanh.
        kempt = p[KMIN] + (p[KMAX] - p[KMIN]) * (
            1.0 / (1.0 + np.exp(-2.0 * aa * (qsto - p[B] * dbar_mg)))
            + 1.0 / (1.0 + np.exp(2.0 * cc * (qsto - p[D] * dbar_mg))))
    else:
        kempt = p[KMAX]
    dx[0] = -p[KMAX] * x[0] + cho_mg_per_min
    dx[1] = p[KMAX] * x[0] - kempt * x[1]
    dx[2] = kempt * x[1] - p[KABS] * x[2]

    ra = p[F] * p[KABS] * x[2] / p[BW]
    egp = max(p[KP1] - p[KP2] * x[3] - p[KP3] * x[8], 0.0)
    e = p[KE1] * (x[3] - p[KE2]) if x[3] > p[KE2] else 0.0
    dx[3] = egp + ra - p[FSNC] - e - p[K1] * x[3] + p[K2] * x[4]
    uid = (p[VM0] + p[VMX] * x[6]) * x[4] / (p[KM0] + x[4])
    dx[4] = -uid + p[K1] * x[3] - p[K2] * x[4]

    insulin = x[5] / p[VI]
    dx[5] = -(p[M2] + p[M4]) * x[5] + p[M1] * x[9] + p[KA1] * x[10] + p[KA2] * x[11]
    dx[6] = -p[P2U] * x[6] + p[P2U] * (insulin - p[IB])
    dx[7] = -p[KI] * (x[7] - insulin)
    dx[8] = -p[KI] * (x[8] - x[7])
    dx[9] = -(p[M1] + p[M30]) * x[9] + p[M2] * x[5]
    dx[10] = u - (p[KA1] + p[KD]) * x[10]
    dx[11] = p[KD] * x[10] - p[KA2] * x[11]
    dx[12] = -p[KSC] * x[12] + p[KSC] * x[3]
    # Masses cannot go negative: their derivatives stop while they are below zero.
    for j in (3, 4, 5, 9, 10, 11, 12):
        if x[j] < 0.0:
            dx[j] = 0.0


@njit(cache=True, error_model="numpy", fastmath=True)
def gsub_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Subcutaneous (interstitial) glucose, what a CGM measures."""
    return x[12] / p[VG]


@njit(cache=True, error_model="numpy", fastmath=True)
def bg_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Plasma glucose."""
    return x[3] / p[VG]


def basal_u_per_min(params: dict[str, np.ndarray]) -> np.ndarray:
    """Basal insulin rate that holds each patient at its steady state: u2ss*BW/6000."""
    return params["u2ss"] * params["BW"] / 6000.0
