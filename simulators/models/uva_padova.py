"""UVA/Padova T1D model: the 2008 academic simulator ("S2008") and its S2013 additions.

S2008 (Dalla Man et al. 2007): thirteen states per patient, equations as in
``shared/docs/cgm-domain.md`` section 1 and simglucose 0.2.11, the accuracy reference.

S2013 (Dalla Man et al., JDST 2014;8(1):26-34, appendix; ``shared/docs/realism-and-control.md``)
adds three states, glucagon H [pg/mL], its delayed action XH [pg/mL] and the static glucagon
secretion SRHs [pg/mL/min], and two terms:

- EGP = kp1 - kp2*Gp - kp3*Id + xi*XH (still floored at 0);
- Uid = [Vm0 + Vmx*X*(1 + r3*risk(G))]*Gt/(Km0 + Gt), risk(G) = 10*f(max(G, Gth))^2
  below min(Gb, 112.5 mg/dL), else 0, f(G) = ln(G)^r1 - r2 (Kovatchev's risk, r1 = 1.084,
  r2 = 5.381); G is plasma glucose Gp/Vg. This term deepens lows.
- dH/dt = -n*H + SRHs + delta*max(-dG/dt, 0);
  dSRHs/dt = -rho*[SRHs - (SRHb + sigma*max(Gth - G, 0)/(max(I - Ib, 0) + 1))];
  dXH/dt = -kH*XH + kH*max(H - Hb, 0); SRHb = n*Hb, I = Ip/Vi [pmol/L].

Departures from the paper. The first three keep the S2008 basal state the S2013 basal state
(H = Hb, XH = 0, SRHs = SRHb at G = Gb, no meal, basal insulin):
- the risk is Kovatchev's low branch only, 0 where f(G) >= 0 (G >= 112.5 mg/dL) as well as
  above Gb. The paper's 10*f(G)^2 up to Gb jumps from 10*f(Gb)^2 (0.6 at Gb = 138) to 0 at
  Gb, where patients rest: the right-hand side then flips with rounding (the scalar and
  SIMD kernels drifted apart within hours), and insulin action would rise as glucose nears
  basal from below. Every reference patient has Gb > 112.5, so the risk is continuous;
- the static secretion rises only below the threshold Gth (``max(Gth - G, 0)``); the paper's
  linear term also lowers secretion above Gth, but glucagon below Hb has no effect on EGP
  (XH follows max(H - Hb, 0)), so only the timing of a later rise would differ;
- the insulin threshold of the secretion term is Ith = Ib (as loopinsight1 does);
- Uid reads max(Gt, 0): with insulin action raised up to 10-fold by the risk term, an RK4
  stage can overshoot Gt below zero, and Gt/(Km0 + Gt) explodes as Gt nears -Km0 (seen
  at X ~ 1000 pmol/L: Gt jumped to 4,900 mg/kg in one minute);
- non-negative masses (Gp, Gt, ...) may not fall further while below zero, but may rise
  again: S2008 (and simglucose) stop the derivative altogether, which leaves a patient whose
  plasma glucose crossed zero there for ever (a sensor floor for days); S2008 keeps that rule
  so it stays identical to simglucose.

Parameter values (``S2013_DEFAULTS``): the paper publishes none for the glucagon system.
Every value below is a GUESS from the two open implementations that also guess
(hpeuscher/loopinsight1 ``UvaPadova_T1DMS.ts``, SmartCGMS ``uva_padova_S2013``), except r1
and r2, which are Kovatchev's published risk constants. The same values serve every patient;
``s2013_params`` takes per-patient arrays to override them.

The right-hand side (``derivatives``, ``derivatives_s2013``: one source, ``_scalar_rhs``) is
a scalar numba function over one patient's parameter row: the readable statement of the
model, which the generic integrator (``simulators.integrator.make_advance``) compiles into
the reference kernel.

``advance`` (bottom of this file) is the production kernel: the same equations and RK4,
evaluated structure-of-arrays across blocks of 64 patients so LLVM widens them to
AVX-512/AVX2, with a polynomial exp (numba has no SVML). It agrees with the reference
kernel to ~1e-12 mg/dL (``tests/test_models.py``) and is about 4.5x faster (40,000
patient-days/s on 2 cores at 10k patients against 8,900). S2013 runs through the same
source with its terms switched on (``rk4_block``): one thread does 12,900-13,700 S2013
patient-days per CPU-second against 20,800-21,800 for S2008 (benchmarks/bench_simulator.py's
day, 10k patients, three runs); the two logs and the exp of the risk are most of the cost.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from simulators.integrator import (
    HYPO_BELOW_MGDL,
    N_MEAL_STATE,
    NOT_DUE,
    PLANNED_G,
    RESCUE_DUE_MIN,
    minute_inputs,
    rescue_carbs_g,
)

STATE_NAMES = (
    "qsto1_mg", "qsto2_mg", "qgut_mg", "gp_mg_per_kg", "gt_mg_per_kg", "ip_pmol_per_kg",
    "x_pmol_per_l", "i1_pmol_per_l", "id_pmol_per_l", "il_pmol_per_kg", "isc1_pmol_per_kg",
    "isc2_pmol_per_kg", "gs_mg_per_kg",
)
STATE_NAMES_S2013 = STATE_NAMES + ("h_pg_per_ml", "xh_pg_per_ml", "srhs_pg_per_ml_min")
N_STATES = len(STATE_NAMES)
N_STATES_S2013 = len(STATE_NAMES_S2013)
H, XH, SRHS = range(N_STATES, N_STATES_S2013)

# Parameter columns, in the order of the per-patient row the kernel reads.
PARAM_NAMES = (
    "BW", "kabs", "kmax", "kmin", "b", "d", "f", "kp1", "kp2", "kp3", "Fsnc", "ke1", "ke2",
    "k1", "k2", "Vm0", "Vmx", "Km0", "m1", "m2", "m4", "m30", "ka1", "ka2", "kd", "Vi",
    "Ib", "p2u", "ki", "ksc", "Vg", "u2ss",
)
(BW, KABS, KMAX, KMIN, B, D, F, KP1, KP2, KP3, FSNC, KE1, KE2, K1, K2, VM0, VMX, KM0, M1,
 M2, M4, M30, KA1, KA2, KD, VI, IB, P2U, KI, KSC, VG, U2SS) = range(len(PARAM_NAMES))
N_PARAMS = len(PARAM_NAMES)

# A hypo rescue (glucose tablets, juice) lands in the liquid-phase stomach Qsto2, which
# empties at kmax when no meal is being digested: over the 30 reference patients 15 g then
# raise plasma glucose by a median 24 mg/dL at 15 min, 44 at 30 and 60 at the peak (70 min);
# eaten as a meal (solid stomach, meal-size-scaled emptying) only 4, 14 and 39 (peak after
# 2.5 h), and put straight into the gut 76 mg/dL within 15 min. Clinically 15 g of glucose
# raise it by roughly 30-50 mg/dL within 15-30 min (the basis of the 15-15 rule).
RESCUE_STATE = 1
RESCUE_MG_PER_G = 1000.0

# S2013 columns, after the S2008 ones. Units: glucose mg/dL, glucagon pg/mL, time min.
# Gb, first, is the patient's own basal glucose (the risk is 0 at and above it).
S2013_DEFAULTS = {
    "Gth": 60.0,  # glucose threshold of glucagon secretion and of the risk plateau (paper, doc)
    "r3": 1.509,  # GUESS, loopinsight1 "rgamma"; risk is 10x insulin action at 60 mg/dL
    "Hb": 60.0,  # GUESS, loopinsight1 (read off Dalla Man 2014 Fig. 5; SmartCGMS 30), pg/mL
    "n": 0.2,  # GUESS, loopinsight1 "nH" 1/min: glucagon half-life 3.5 min (Lv 2013: 5.2)
    "rho": 0.5,  # GUESS, loopinsight1 1/min (SmartCGMS 0.12)
    # GUESS, 7-15x the open guesses (loopinsight1 0.2, SmartCGMS 0.4): with I in pmol/L the
    # insulin divisor max(I - Ib, 0) + 1 is ~100 during a bolus-induced low, where their
    # values keep glucagon within 2 % of basal. With 3, glucagon peaks at 1.1-2.6x basal as
    # the insulin wanes (tests/test_s2013.py), a preserved response; sigma = 0 models the
    # absent response of long-standing T1D.
    "sigma": 3.0,  # pg/mL/min per mg/dL
    "delta": 0.1,  # GUESS, loopinsight1 (SmartCGMS 0.08), pg/mL per mg/dL
    "xi": 0.02,  # GUESS, SmartCGMS (loopinsight1 0.01), mg/kg/min per pg/mL
    "kH": 0.05,  # GUESS, SmartCGMS 1/min (loopinsight1 0.1): ~20 min glucagon action delay
}
S2013_PARAM_NAMES = ("Gb",) + tuple(S2013_DEFAULTS)
PARAM_NAMES_S2013 = PARAM_NAMES + S2013_PARAM_NAMES
(GB, GTH, R3, HB, N_H, RHO, SIGMA, DELTA, XI, KH) = range(N_PARAMS, len(PARAM_NAMES_S2013))
N_PARAMS_S2013 = len(PARAM_NAMES_S2013)
RISK_R1, RISK_R2 = 1.084, 5.381  # Kovatchev et al. 1997 symmetrisation constants


@njit(cache=True, inline="always", error_model="numpy")
def _risk(g, gb, gth):
    """S2013 hypoglycaemia risk of plasma glucose ``g``: 10*f(max(G, Gth))^2 while f < 0.

    Kovatchev's low-glucose branch: 0 from 112.5 mg/dL (where f = 0) up, and 0 at and above
    Gb. Written with the vectorisable ``exp_vec``/``log_vec`` (below) so the scalar and the
    SIMD kernels evaluate the same function; both agree with libm to ~1e-15.
    """
    gr = g if g > gth else gth
    gr = gr if gr < gb else gb  # the logs only ever see [Gth, Gb]
    f = exp_vec(RISK_R1 * log_vec(log_vec(gr))) - RISK_R2
    return 10.0 * f * f if (f < 0.0 and g < gb) else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _glucagon(x13, x14, x15, g, dg_dt, insulin, n, rho, sigma, delta, kh, hb, gth, ib):
    """d(H, XH, SRHs)/dt of the S2013 glucagon system (see the module docstring)."""
    drop = -dg_dt if dg_dt < 0.0 else 0.0
    d13 = -n * x13 + x15 + delta * drop
    above = x13 - hb if x13 > hb else 0.0
    d14 = -kh * x14 + kh * above
    low = gth - g if g < gth else 0.0
    excess_i = insulin - ib if insulin > ib else 0.0
    d15 = -rho * (x15 - (n * hb + sigma * low / (excess_i + 1.0)))
    return d13, d14, d15


@njit(cache=True, inline="always", error_model="numpy")
def _scalar_rhs(x, p, cho_mg_per_min, insulin_u_per_min, dbar_mg, dx, s2013):
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
    egp = p[KP1] - p[KP2] * x[3] - p[KP3] * x[8]
    vmx_x = p[VMX] * x[6]
    if s2013:
        egp += p[XI] * x[XH]
        vmx_x *= 1.0 + p[R3] * _risk(x[3] / p[VG], p[GB], p[GTH])
    egp = max(egp, 0.0)
    e = p[KE1] * (x[3] - p[KE2]) if x[3] > p[KE2] else 0.0
    dx[3] = egp + ra - p[FSNC] - e - p[K1] * x[3] + p[K2] * x[4]
    gt = max(x[4], 0.0) if s2013 else x[4]
    uid = (p[VM0] + vmx_x) * gt / (p[KM0] + gt)
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
    # Masses cannot go negative: S2008 stops their derivatives while they are below zero,
    # S2013 only stops them from falling further.
    for j in (3, 4, 5, 9, 10, 11, 12):
        if x[j] < 0.0:
            dx[j] = max(dx[j], 0.0) if s2013 else 0.0
    if s2013:
        dx[H], dx[XH], dx[SRHS] = _glucagon(
            x[H], x[XH], x[SRHS], x[3] / p[VG], dx[3] / p[VG], insulin, p[N_H], p[RHO],
            p[SIGMA], p[DELTA], p[KH], p[HB], p[GTH], p[IB])


@njit(cache=True, error_model="numpy")
def derivatives(x: np.ndarray, p: np.ndarray, cho_mg_per_min: float,
                insulin_u_per_min: float, dbar_mg: float, dx: np.ndarray) -> None:
    """Write dx/dt (per minute) of one S2008 patient into ``dx``.

    ``dbar_mg`` is the size of the meal being digested (stomach content at meal start plus
    what has been eaten of it), which shapes gastric emptying.
    """
    _scalar_rhs(x, p, cho_mg_per_min, insulin_u_per_min, dbar_mg, dx, False)


@njit(cache=True, error_model="numpy")
def derivatives_s2013(x: np.ndarray, p: np.ndarray, cho_mg_per_min: float,
                      insulin_u_per_min: float, dbar_mg: float, dx: np.ndarray) -> None:
    """``derivatives`` with the S2013 terms: 16 states, ``PARAM_NAMES_S2013`` columns."""
    _scalar_rhs(x, p, cho_mg_per_min, insulin_u_per_min, dbar_mg, dx, True)


@njit(cache=True, error_model="numpy")
def gsub_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Subcutaneous (interstitial) glucose, what a CGM measures."""
    return x[12] / p[VG]


@njit(cache=True, error_model="numpy")
def bg_mgdl(x: np.ndarray, p: np.ndarray) -> float:
    """Plasma glucose."""
    return x[3] / p[VG]


def s2013_params(params: dict[str, np.ndarray],
                 overrides: dict[str, np.ndarray | float] | None = None) -> dict[str, np.ndarray]:
    """S2008 parameters plus the S2013 columns: ``S2013_DEFAULTS`` unless overridden.

    ``overrides`` maps an S2013 name to one value or a per-patient array (a behaviour or
    population config fills these); Gb is always the patient's own.
    """
    n = len(params["BW"])
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(S2013_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown S2013 parameters {sorted(unknown)}; known: {S2013_PARAM_NAMES}")
    out = dict(params)
    for name, default in S2013_DEFAULTS.items():
        out[name] = np.broadcast_to(np.asarray(overrides.get(name, default), dtype=np.float64),
                                    (n,)).copy()
    return out


def s2013_initial_state(x0: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """The S2008 basal state plus glucagon at rest: H = Hb, XH = 0, SRHs = SRHb = n*Hb."""
    hb = params["Hb"]
    return np.concatenate([x0, np.stack([hb, np.zeros_like(hb), params["n"] * hb], axis=1)],
                          axis=1)


def basal_u_per_min(params: dict[str, np.ndarray]) -> np.ndarray:
    """Basal insulin rate that holds each patient at its steady state: u2ss*BW/6000."""
    return params["u2ss"] * params["BW"] / 6000.0


# ---------------------------------------------------------------------------------------
# SIMD block kernel: the same model and RK4, vectorised across patients.
# ---------------------------------------------------------------------------------------
# Patients are processed in blocks of BLOCK lanes held structure-of-arrays in one flat
# work array W (row r of lane j at W[r * BLOCK + j]); BLOCK is a compile-time constant so
# every access is at a constant offset and LLVM vectorises the lane loop with no runtime
# alias checks and no remainder loop. Every lane runs the same instructions, so a
# patient's result does not depend on which other patients share its block (a short
# last block is padded with copies of its last patient, whose results are discarded).

BLOCK = 64
_FM = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}  # no reassoc: keeps exp exact

# exp without libm: a libm call inside the lane loop would stop its vectorisation. Cody-
# Waite range reduction, degree-11 Taylor polynomial on |r| <= ln2/2, 2^n built from the
# exponent bits. Relative error < 1e-14 on the clamped range [-700, 700]; beyond it the
# sigmoids 1/(1+exp(y)) are exactly 0 or 1 to double precision anyway.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # 0x3FE62E42FEE00000: n*_LN2_HI is exact for |n| < 2^11
_LN2_LO = 1.9082149292705877e-10
_EXP_CLAMP = 700.0


@intrinsic
def _bits_to_f64(typingctx, bits):
    """Reinterpret an int64 as the float64 with the same bits (a no-op in registers)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always", error_model="numpy")
def exp_vec(z: float) -> float:
    """exp(z), vectorisable; z is clamped to [-700, 700]."""
    # Conditional expressions, not min/max: those are out-of-line calls that stop the
    # loop vectoriser before LLVM inlines them.
    z = z if z > -_EXP_CLAMP else -_EXP_CLAMP
    z = z if z < _EXP_CLAMP else _EXP_CLAMP
    n = np.floor(z * _LOG2E + 0.5)
    r = (z - n * _LN2_HI) - n * _LN2_LO  # |r| <= ln2/2
    p = 2.505210838544172e-08  # 1/11!
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.755731922398589e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_to_f64((np.int64(n) + 1023) << 52)


@intrinsic
def _f64_to_bits(typingctx, value):
    """Reinterpret a float64 as the int64 with the same bits (a no-op in registers)."""
    if not isinstance(value, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


_SQRT2 = 1.4142135623730951
_MANTISSA = (1 << 52) - 1
_ONE_BITS = 1023 << 52


@njit(cache=True, inline="always", error_model="numpy")
def log_vec(z: float) -> float:
    """ln(z) for positive normal z, vectorisable (no libm call); relative error < 1e-15.

    z = 2^e * m with m in [sqrt(1/2), sqrt(2)); ln(m) = 2*atanh(s), s = (m-1)/(m+1),
    |s| < 0.172, summed to s^21 (the next term is below 1e-18).
    """
    bits = _f64_to_bits(z)
    e = (bits >> 52) - 1023
    m = _bits_to_f64((bits & _MANTISSA) | _ONE_BITS)  # in [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1 if big else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    q = 1.0 / 21.0
    q = q * s2 + 1.0 / 19.0
    q = q * s2 + 1.0 / 17.0
    q = q * s2 + 1.0 / 15.0
    q = q * s2 + 1.0 / 13.0
    q = q * s2 + 1.0 / 11.0
    q = q * s2 + 1.0 / 9.0
    q = q * s2 + 1.0 / 7.0
    q = q * s2 + 1.0 / 5.0
    q = q * s2 + 1.0 / 3.0
    q = q * s2 + 1.0
    fe = np.float64(e)
    return fe * _LN2_HI + (2.0 * s * q + fe * _LN2_LO)


# Rows of W: 13 states, derived parameters, per-minute inputs, then the S2013 states and
# parameters (left unused by S2008 lanes).
(R_KMAX, R_KMIN, R_DK, R_KABS, R_FKABS_BW, R_KP1, R_KP2, R_KP3, R_FSNC, R_KE1, R_KE2,
 R_K1, R_K2, R_VM0, R_VMX, R_KM0, R_INV_VI, R_M1, R_M2M4, R_KA1, R_KA2, R_P2U, R_IB,
 R_KI, R_M2, R_M1M30, R_KA1KD, R_KD, R_KSC, R_VG) = range(N_STATES, N_STATES + 30)
N_DERIVED = R_VG + 1 - N_STATES
(R_CHO, R_U, R_A1, R_BD, R_A2, R_DD, R_HASMEAL) = range(R_VG + 1, R_VG + 8)
(R_H, R_XH, R_SRHS) = range(R_HASMEAL + 1, R_HASMEAL + 4)
R_GB = R_SRHS + 1  # then the other S2013 parameters in PARAM_NAMES_S2013 order
N_ROWS = R_GB + len(S2013_PARAM_NAMES)


@njit(cache=True, error_model="numpy")
def load_lane(w, j, x, p):
    """Copy one patient's state and derived parameters into lane ``j`` of ``w``."""
    for k in range(N_STATES):
        w[k * BLOCK + j] = x[k]
    d = (
        p[KMAX], p[KMIN], p[KMAX] - p[KMIN], p[KABS], p[F] * p[KABS] / p[BW], p[KP1],
        p[KP2], p[KP3], p[FSNC], p[KE1], p[KE2], p[K1], p[K2], p[VM0], p[VMX], p[KM0],
        1.0 / p[VI], p[M1], p[M2] + p[M4], p[KA1], p[KA2], p[P2U], p[IB], p[KI], p[M2],
        p[M1] + p[M30], p[KA1] + p[KD], p[KD], p[KSC], p[VG],
    )
    for k in range(N_DERIVED):
        w[(N_STATES + k) * BLOCK + j] = d[k]
    for r in range(R_CHO, N_ROWS):
        w[r * BLOCK + j] = 0.0
    if x.shape[0] == N_STATES_S2013:
        for k in range(N_STATES, N_STATES_S2013):
            w[(R_H + k - N_STATES) * BLOCK + j] = x[k]
        for k in range(len(S2013_PARAM_NAMES)):
            w[(R_GB + k) * BLOCK + j] = p[GB + k]


@njit(cache=True, error_model="numpy")
def set_inputs(w, j, p, cho_mg, insulin_u, dbar_mg):
    """Per-minute inputs of lane ``j`` (constant over the minute)."""
    w[R_CHO * BLOCK + j] = cho_mg
    w[R_U * BLOCK + j] = insulin_u * 6000.0 / p[BW]
    if dbar_mg > 0.0:
        aa = 5.0 / (2.0 * dbar_mg * (1.0 - p[B]))
        cc = 5.0 / (2.0 * dbar_mg * p[D])
        w[R_A1 * BLOCK + j] = -2.0 * aa
        w[R_BD * BLOCK + j] = p[B] * dbar_mg
        w[R_A2 * BLOCK + j] = 2.0 * cc
        w[R_DD * BLOCK + j] = p[D] * dbar_mg
        w[R_HASMEAL * BLOCK + j] = 1.0
    else:
        w[R_A1 * BLOCK + j] = 0.0
        w[R_BD * BLOCK + j] = 0.0
        w[R_A2 * BLOCK + j] = 0.0
        w[R_DD * BLOCK + j] = 0.0
        w[R_HASMEAL * BLOCK + j] = 0.0


@njit(cache=True, inline="always", error_model="numpy", fastmath=_FM)
def _nonneg(x, d, s2013):
    """A mass's derivative while the mass is below zero (see the module docstring)."""
    if s2013:
        return d if (x >= 0.0 or d > 0.0) else 0.0
    return 0.0 if x < 0.0 else d


@njit(cache=True, inline="always", error_model="numpy", fastmath=_FM)
def _rhs(w, j, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, s2013):
    """Branch-free ``_scalar_rhs`` for lane ``j`` (selects instead of branches)."""
    kmax = w[R_KMAX * BLOCK + j]
    kabs = w[R_KABS * BLOCK + j]
    qsto = x0 + x1
    e1 = exp_vec(w[R_A1 * BLOCK + j] * (qsto - w[R_BD * BLOCK + j]))
    e2 = exp_vec(w[R_A2 * BLOCK + j] * (qsto - w[R_DD * BLOCK + j]))
    kempt_meal = w[R_KMIN * BLOCK + j] + w[R_DK * BLOCK + j] * (1.0 / (1.0 + e1) + 1.0 / (1.0 + e2))
    kempt = kempt_meal if w[R_HASMEAL * BLOCK + j] > 0.5 else kmax
    d0 = -kmax * x0 + w[R_CHO * BLOCK + j]
    d1 = kmax * x0 - kempt * x1
    d2 = kempt * x1 - kabs * x2

    k1 = w[R_K1 * BLOCK + j]
    k2 = w[R_K2 * BLOCK + j]
    ra = w[R_FKABS_BW * BLOCK + j] * x2
    egp = w[R_KP1 * BLOCK + j] - w[R_KP2 * BLOCK + j] * x3 - w[R_KP3 * BLOCK + j] * x8
    vmx_x = w[R_VMX * BLOCK + j] * x6
    vg = w[R_VG * BLOCK + j]
    gb = w[R_GB * BLOCK + j]
    gth = w[(R_GB + GTH - GB) * BLOCK + j]
    if s2013:
        egp += w[(R_GB + XI - GB) * BLOCK + j] * x14
        vmx_x *= 1.0 + w[(R_GB + R3 - GB) * BLOCK + j] * _risk(x3 / vg, gb, gth)
    egp = egp if egp > 0.0 else 0.0
    ke2 = w[R_KE2 * BLOCK + j]
    e = w[R_KE1 * BLOCK + j] * (x3 - ke2) if x3 > ke2 else 0.0
    d3 = egp + ra - w[R_FSNC * BLOCK + j] - e - k1 * x3 + k2 * x4
    gt = (x4 if x4 > 0.0 else 0.0) if s2013 else x4
    uid = (w[R_VM0 * BLOCK + j] + vmx_x) * gt / (w[R_KM0 * BLOCK + j] + gt)
    d4 = -uid + k1 * x3 - k2 * x4

    m1 = w[R_M1 * BLOCK + j]
    ka1 = w[R_KA1 * BLOCK + j]
    ka2 = w[R_KA2 * BLOCK + j]
    kd = w[R_KD * BLOCK + j]
    ki = w[R_KI * BLOCK + j]
    p2u = w[R_P2U * BLOCK + j]
    ksc = w[R_KSC * BLOCK + j]
    ib = w[R_IB * BLOCK + j]
    insulin = x5 * w[R_INV_VI * BLOCK + j]
    d5 = -w[R_M2M4 * BLOCK + j] * x5 + m1 * x9 + ka1 * x10 + ka2 * x11
    d6 = -p2u * x6 + p2u * (insulin - ib)
    d7 = -ki * (x7 - insulin)
    d8 = -ki * (x8 - x7)
    d9 = -w[R_M1M30 * BLOCK + j] * x9 + w[R_M2 * BLOCK + j] * x5
    d10 = w[R_U * BLOCK + j] - w[R_KA1KD * BLOCK + j] * x10
    d11 = kd * x10 - ka2 * x11
    d12 = -ksc * x12 + ksc * x3
    d3 = _nonneg(x3, d3, s2013)
    d4 = _nonneg(x4, d4, s2013)
    d5 = _nonneg(x5, d5, s2013)
    d9 = _nonneg(x9, d9, s2013)
    d10 = _nonneg(x10, d10, s2013)
    d11 = _nonneg(x11, d11, s2013)
    d12 = _nonneg(x12, d12, s2013)
    d13 = d14 = d15 = 0.0
    if s2013:
        d13, d14, d15 = _glucagon(
            x13, x14, x15, x3 / vg, d3 / vg, insulin, w[(R_GB + N_H - GB) * BLOCK + j],
            w[(R_GB + RHO - GB) * BLOCK + j], w[(R_GB + SIGMA - GB) * BLOCK + j],
            w[(R_GB + DELTA - GB) * BLOCK + j], w[(R_GB + KH - GB) * BLOCK + j],
            w[(R_GB + HB - GB) * BLOCK + j], gth, ib)
    return d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15


@njit(cache=True, inline="always", error_model="numpy", fastmath=_FM)
def _rk4_lanes(w, h, substeps, s2013):
    """``substeps`` RK4 steps of every lane; ``s2013`` is a constant where this is inlined.

    The states and the four stages are written out as scalars on purpose: a loop over a
    state array would keep them in memory, while scalars stay in vector registers and LLVM
    widens the lane loop across patients (measured 4.5x faster than the array version).
    With ``s2013`` False the glucagon states are constant zeros, which LLVM folds away.
    """
    hh = 0.5 * h
    h6 = h / 6.0
    for _ in range(substeps):
        for j in range(BLOCK):
            x0 = w[0 * BLOCK + j]
            x1 = w[1 * BLOCK + j]
            x2 = w[2 * BLOCK + j]
            x3 = w[3 * BLOCK + j]
            x4 = w[4 * BLOCK + j]
            x5 = w[5 * BLOCK + j]
            x6 = w[6 * BLOCK + j]
            x7 = w[7 * BLOCK + j]
            x8 = w[8 * BLOCK + j]
            x9 = w[9 * BLOCK + j]
            x10 = w[10 * BLOCK + j]
            x11 = w[11 * BLOCK + j]
            x12 = w[12 * BLOCK + j]
            x13 = w[R_H * BLOCK + j] if s2013 else 0.0
            x14 = w[R_XH * BLOCK + j] if s2013 else 0.0
            x15 = w[R_SRHS * BLOCK + j] if s2013 else 0.0
            a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15 = _rhs(
                w, j, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
                s2013)
            b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15 = _rhs(
                w, j, x0 + hh * a0, x1 + hh * a1, x2 + hh * a2, x3 + hh * a3, x4 + hh * a4,
                x5 + hh * a5, x6 + hh * a6, x7 + hh * a7, x8 + hh * a8, x9 + hh * a9,
                x10 + hh * a10, x11 + hh * a11, x12 + hh * a12, x13 + hh * a13,
                x14 + hh * a14, x15 + hh * a15, s2013)
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15 = _rhs(
                w, j, x0 + hh * b0, x1 + hh * b1, x2 + hh * b2, x3 + hh * b3, x4 + hh * b4,
                x5 + hh * b5, x6 + hh * b6, x7 + hh * b7, x8 + hh * b8, x9 + hh * b9,
                x10 + hh * b10, x11 + hh * b11, x12 + hh * b12, x13 + hh * b13,
                x14 + hh * b14, x15 + hh * b15, s2013)
            d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15 = _rhs(
                w, j, x0 + h * c0, x1 + h * c1, x2 + h * c2, x3 + h * c3, x4 + h * c4,
                x5 + h * c5, x6 + h * c6, x7 + h * c7, x8 + h * c8, x9 + h * c9,
                x10 + h * c10, x11 + h * c11, x12 + h * c12, x13 + h * c13, x14 + h * c14,
                x15 + h * c15, s2013)
            w[0 * BLOCK + j] = x0 + h6 * (a0 + 2.0 * b0 + 2.0 * c0 + d0)
            w[1 * BLOCK + j] = x1 + h6 * (a1 + 2.0 * b1 + 2.0 * c1 + d1)
            w[2 * BLOCK + j] = x2 + h6 * (a2 + 2.0 * b2 + 2.0 * c2 + d2)
            w[3 * BLOCK + j] = x3 + h6 * (a3 + 2.0 * b3 + 2.0 * c3 + d3)
            w[4 * BLOCK + j] = x4 + h6 * (a4 + 2.0 * b4 + 2.0 * c4 + d4)
            w[5 * BLOCK + j] = x5 + h6 * (a5 + 2.0 * b5 + 2.0 * c5 + d5)
            w[6 * BLOCK + j] = x6 + h6 * (a6 + 2.0 * b6 + 2.0 * c6 + d6)
            w[7 * BLOCK + j] = x7 + h6 * (a7 + 2.0 * b7 + 2.0 * c7 + d7)
            w[8 * BLOCK + j] = x8 + h6 * (a8 + 2.0 * b8 + 2.0 * c8 + d8)
            w[9 * BLOCK + j] = x9 + h6 * (a9 + 2.0 * b9 + 2.0 * c9 + d9)
            w[10 * BLOCK + j] = x10 + h6 * (a10 + 2.0 * b10 + 2.0 * c10 + d10)
            w[11 * BLOCK + j] = x11 + h6 * (a11 + 2.0 * b11 + 2.0 * c11 + d11)
            w[12 * BLOCK + j] = x12 + h6 * (a12 + 2.0 * b12 + 2.0 * c12 + d12)
            if s2013:
                w[R_H * BLOCK + j] = x13 + h6 * (a13 + 2.0 * b13 + 2.0 * c13 + d13)
                w[R_XH * BLOCK + j] = x14 + h6 * (a14 + 2.0 * b14 + 2.0 * c14 + d14)
                w[R_SRHS * BLOCK + j] = x15 + h6 * (a15 + 2.0 * b15 + 2.0 * c15 + d15)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def rk4_block(w, h, substeps, s2013):
    """One minute of ``substeps`` RK4 steps for all BLOCK lanes of ``w`` (vectorised).

    One inlined copy of the lane loop per model variant, each compiled with its flag as a
    constant, so S2008 pays nothing for the S2013 terms.
    """
    if s2013:
        _rk4_lanes(w, h, substeps, True)
    else:
        _rk4_lanes(w, h, substeps, False)


OUT_MIN = 32  # minutes of outputs buffered per block before the transpose into [N, T]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def outputs_block(w, obuf, slot):
    """Interstitial and plasma glucose of all lanes into row pair ``slot`` of ``obuf``."""
    base = 2 * slot * BLOCK
    for j in range(BLOCK):
        obuf[base + j] = w[12 * BLOCK + j] / w[R_VG * BLOCK + j]
        obuf[base + BLOCK + j] = w[3 * BLOCK + j] / w[R_VG * BLOCK + j]


@njit(cache=True, error_model="numpy")
def _flush_outputs(obuf, nslots, m0, i0, nl, gsub_out, bg_out):
    for j in range(nl):
        for s in range(nslots):
            gsub_out[i0 + j, m0 + s] = obuf[2 * s * BLOCK + j]
            bg_out[i0 + j, m0 + s] = obuf[(2 * s + 1) * BLOCK + j]


@njit(cache=True, error_model="numpy")
def _advance_block(i0, i1, x, p, meal, therapy, basal_u_per_min, t0, n_min, substeps,
                   meal_ptr, meal_min, meal_g, bolus_ptr, bolus_min, bolus_u, bolus_correct,
                   behaviour, hypo, keys, seed, gsub_out, bg_out, rescue_out):
    nl = i1 - i0
    h = 1.0 / substeps
    big = np.iinfo(np.int64).max
    s2013 = x.shape[1] == N_STATES_S2013
    n_states = N_STATES_S2013 if s2013 else N_STATES
    w = np.empty(N_ROWS * BLOCK)
    obuf = np.empty(2 * OUT_MIN * BLOCK)
    meal_state = np.zeros((N_MEAL_STATE, BLOCK))
    cursor = np.zeros((4, BLOCK), dtype=np.int64)
    # A lane is "steady" when its inputs of the last minute (no food, basal insulin) hold
    # again unless an event is due; steady lanes skip the bookkeeping until next_event.
    steady = np.zeros(BLOCK, dtype=np.bool_)
    next_event = np.zeros(BLOCK, dtype=np.int64)
    treats = False  # any patient of the block treats lows (else skip that check)
    for j in range(BLOCK):
        i = min(i0 + j, i1 - 1)  # pad lanes repeat the last patient, inputs stay zero
        load_lane(w, j, x[i], p[i])
    for j in range(nl):
        i = i0 + j
        for k in range(N_MEAL_STATE):
            meal_state[k, j] = meal[i, k]
        cursor[0, j] = meal_ptr[i]
        cursor[1, j] = meal_ptr[i + 1]
        cursor[2, j] = bolus_ptr[i]
        cursor[3, j] = bolus_ptr[i + 1]
        treats = treats or behaviour[i, HYPO_BELOW_MGDL] > 0.0
    slot = 0
    m0 = 0
    for m in range(n_min):
        t = t0 + m
        for j in range(nl):
            i = i0 + j
            gsub = w[12 * BLOCK + j] / p[i, VG]
            # (the cheap part of rescue_carbs_g's test first: most lanes are not low)
            if treats and (gsub < behaviour[i, HYPO_BELOW_MGDL]
                           or hypo[i, RESCUE_DUE_MIN] != NOT_DUE):
                grams = rescue_carbs_g(hypo, behaviour, i, t, gsub, keys[i], seed)
                if grams > 0.0:
                    w[RESCUE_STATE * BLOCK + j] += grams * RESCUE_MG_PER_G
                    rescue_out[i, m] = grams
            if steady[j] and t < next_event[j]:
                continue
            cho, insulin, dbar = minute_inputs(
                meal_state, cursor, j, i, t, gsub, w[j] + w[BLOCK + j], basal_u_per_min,
                therapy, meal_min, meal_g, bolus_min, bolus_u, bolus_correct)
            set_inputs(w, j, p[i], cho, insulin, dbar)
            # Steady from the next minute on if nothing is being eaten or delivered now.
            steady[j] = cho == 0.0 and meal_state[PLANNED_G, j] <= 0.0 \
                and insulin == basal_u_per_min[i]
            nxt = big
            if cursor[0, j] < cursor[1, j]:
                nxt = meal_min[cursor[0, j]]
            if cursor[2, j] < cursor[3, j]:
                nxt = min(nxt, bolus_min[cursor[2, j]])
            next_event[j] = nxt
        outputs_block(w, obuf, slot)
        slot += 1
        if slot == OUT_MIN:
            _flush_outputs(obuf, slot, m0, i0, nl, gsub_out, bg_out)
            m0 += slot
            slot = 0
        rk4_block(w, h, substeps, s2013)
    _flush_outputs(obuf, slot, m0, i0, nl, gsub_out, bg_out)
    for j in range(nl):
        i = i0 + j
        for k in range(N_STATES):
            x[i, k] = w[k * BLOCK + j]
        for k in range(N_STATES, n_states):
            x[i, k] = w[(R_H + k - N_STATES) * BLOCK + j]
        for k in range(N_MEAL_STATE):
            meal[i, k] = meal_state[k, j]


@njit(cache=True, parallel=True, error_model="numpy")
def advance(x, p, meal, therapy, basal_u_per_min, t0, n_min, substeps,
            meal_ptr, meal_min, meal_g, bolus_ptr, bolus_min, bolus_u, bolus_correct,
            behaviour, hypo, keys, seed, gsub_out, bg_out, rescue_out):
    """``simulators.integrator.make_advance`` kernel for this model, SIMD across patients.

    The state width picks the variant: 13 states run S2008, 16 run S2013 (whose parameter
    rows then carry the ``PARAM_NAMES_S2013`` columns).
    """
    n = x.shape[0]
    if x.shape[1] == N_STATES_S2013 and p.shape[1] < N_PARAMS_S2013:
        raise ValueError("S2013 states need S2013 parameter rows")
    for b in prange((n + BLOCK - 1) // BLOCK):
        _advance_block(b * BLOCK, min(n, (b + 1) * BLOCK), x, p, meal, therapy,
                       basal_u_per_min, t0, n_min, substeps, meal_ptr, meal_min, meal_g,
                       bolus_ptr, bolus_min, bolus_u, bolus_correct, behaviour, hypo, keys,
                       seed, gsub_out, bg_out, rescue_out)
