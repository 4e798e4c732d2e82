"""OpenAPS oref0 ``determine-basal`` for N patients in one compiled call.

A port of oref0 0.7.1 (https://github.com/openaps/oref0, MIT licence, (c) the OpenAPS
contributors): ``lib/determine-basal/determine-basal.js``, ``lib/basal-set-temp.js``
(``setTempBasal``, ``getMaxSafeBasal``), ``lib/round-basal.js`` and the exponential insulin curve
of ``lib/iob/calculate.js``. The port follows the JavaScript statement by statement (same
rounding: JavaScript's ``Math.round`` is round-half-up, not Python's half-to-even; same operation
order, so the same floating-point results), one patient per numba ``prange`` iteration. Its
agreement with the real oref0 is measured by ``tests/test_oref0.py`` against the npm package run
in Node (``simulators/controllers/oref0_reference.py``).

Ported: CGM error handling (glucose <= 10 or 38, noise >= 3, stale data, flat CGM), the
sensitivity ratio from autosens or from a temporary target (exercise mode, low targets) and what
it adjusts (basal, ISF, carb-absorption time, targets with ``sensitivity_raises_target`` /
``resistance_lowers_target``), noisy-CGM target raising, BGI / deviation / naive and eventual BG,
the IOB, zero-temp, COB (with remaining-carbs bilinear absorption) and UAM predictions,
minPredBG / minGuardBG / avgPredBG, carbsReq, low-glucose suspend, the low-temp, in-range,
max-IOB and high-temp rules, max safe basal, ``round_basal`` (with the x23/x54 0.025 U/h steps),
and SMB (``enableSMB_always`` / ``_with_COB`` / ``_after_carbs`` / ``_with_temptarget`` /
``_high_bg``, no SMB with high temp targets, max SMB basal minutes, SMB interval, SMB zero/low
temps). `insulin_on_board` is lib/iob's exponential-curve IOB from pump history.

Not ported: ``skip_neutral_temps`` (cancelling temps before the hour), the pump-history
consistency checks that compare the running temp with ``iob_data.lastTemp`` (the simulator's
pump is its own history), the Bolus Wizard (``bwFound`` / A52) SMB rule, the bilinear insulin
curve, and autosens itself (``lib/determine-basal/autosens.js``: the ratio is an input).

Units: glucose in mg/dL, deltas in mg/dL per 5 min, insulin in U, rates in U/h, activity in
U/min (oref0's ``activity``), durations and ages in minutes, carbs in g.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np
from numba import njit, prange

from simulators.controllers.insulin import exponential_curve

N_TICKS = 48  # oref0 predicts 4 h ahead in 5-min ticks: iob_data has 48 entries, predBGs <= 48 values


class Oref0Reason(IntEnum):
    """Which rule of determine-basal made the decision (the branch that returned)."""

    CGM_ERROR_KEEP = 0  # bad/stale/flat CGM: leave the running temp alone
    CGM_ERROR_NEUTRAL = 1  # bad CGM with a high temp running: neutral temp (scheduled basal)
    CGM_ERROR_SHORTEN_ZERO = 2  # bad CGM with a long zero temp: shorten it to 30 min
    LOW_GLUCOSE_SUSPEND = 3  # BG or minGuardBG below threshold: zero temp 30-120 min
    BELOW_MIN_BUT_RISING = 4  # eventual BG < min_bg but rising faster than expected: basal
    NAIVE_BELOW_40 = 5  # eventual BG < min_bg, rising, naive eventual BG < 40: zero temp 30 min
    LOW_TEMP = 6  # eventual BG < min_bg: low temp (or zero temp) to bring it up to target
    FALLING_FASTER_THAN_EXPECTED = 7  # eventual BG >= min_bg but falling faster than expected: basal
    IN_RANGE = 8  # eventual BG or minPredBG below max_bg: basal
    IOB_ABOVE_MAX = 9  # eventual BG high but IOB > max_iob: basal
    SMB_LOW_TEMP = 10  # SMB delivered (or due) with a zero/low temp to cover the worst case
    HIGH_TEMP = 11  # eventual BG high: high temp to bring it down to target


# the codes as plain ints, for the compiled kernel
R_CGM_ERROR_KEEP = int(Oref0Reason.CGM_ERROR_KEEP)
R_CGM_ERROR_NEUTRAL = int(Oref0Reason.CGM_ERROR_NEUTRAL)
R_CGM_ERROR_SHORTEN_ZERO = int(Oref0Reason.CGM_ERROR_SHORTEN_ZERO)
R_LOW_GLUCOSE_SUSPEND = int(Oref0Reason.LOW_GLUCOSE_SUSPEND)
R_BELOW_MIN_BUT_RISING = int(Oref0Reason.BELOW_MIN_BUT_RISING)
R_NAIVE_BELOW_40 = int(Oref0Reason.NAIVE_BELOW_40)
R_LOW_TEMP = int(Oref0Reason.LOW_TEMP)
R_FALLING_FASTER_THAN_EXPECTED = int(Oref0Reason.FALLING_FASTER_THAN_EXPECTED)
R_IN_RANGE = int(Oref0Reason.IN_RANGE)
R_IOB_ABOVE_MAX = int(Oref0Reason.IOB_ABOVE_MAX)
R_SMB_LOW_TEMP = int(Oref0Reason.SMB_LOW_TEMP)
R_HIGH_TEMP = int(Oref0Reason.HIGH_TEMP)


# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Oref0State:
    """What oref0 sees at one decision, per patient (arrays of length N; ticks arrays N x 48).

    The tick arrays are oref0's ``iob_data`` array: insulin on board and activity now and every
    5 min for 4 h assuming the doses already given (tick 0 is now), and the same with a zero
    temp from 1 min ahead (``iobWithZeroTemp``). `insulin_on_board` computes them from doses.
    """

    glucose_mgdl: np.ndarray
    delta_mgdl: np.ndarray  # last 5-min change
    short_avgdelta_mgdl: np.ndarray  # ~15-min average change per 5 min
    long_avgdelta_mgdl: np.ndarray  # ~45-min average change per 5 min
    iob_u: np.ndarray  # (N, 48)
    activity_u_per_min: np.ndarray  # (N, 48)
    zero_temp_iob_u: np.ndarray  # (N, 48)
    zero_temp_activity_u_per_min: np.ndarray  # (N, 48)
    temp_rate_u_per_h: np.ndarray  # running temp basal (0 with duration 0 when none)
    temp_remaining_min: np.ndarray
    carbs_g: np.ndarray | float = 0.0  # carbs entered in the last 6 h (meal_data.carbs)
    cob_g: np.ndarray | float = 0.0  # carbs on board (meal_data.mealCOB)
    last_carb_age_min: np.ndarray | float = 0.0
    slope_from_max_deviation: np.ndarray | float = 0.0  # meal_data deviation slopes (UAM)
    slope_from_min_deviation: np.ndarray | float = 0.0
    last_bolus_age_min: np.ndarray | float = 1e6
    autosens_ratio: np.ndarray | float = 1.0
    glucose_age_min: np.ndarray | float = 0.0
    noise: np.ndarray | float = 0.0  # CGM noise level (xDrip+ 1-4); 0 unknown
    microbolus_allowed: np.ndarray | bool = False


@dataclass(frozen=True)
class Oref0Profile:
    """oref0 profile fields, each a scalar or an array of length N (oref0's defaults)."""

    current_basal_u_per_h: np.ndarray | float
    sens_mgdl_per_u: np.ndarray | float
    carb_ratio_g_per_u: np.ndarray | float
    min_bg_mgdl: np.ndarray | float
    max_bg_mgdl: np.ndarray | float
    max_iob_u: np.ndarray | float = 0.0
    max_basal_u_per_h: np.ndarray | float = 4.0
    max_daily_basal_u_per_h: np.ndarray | float = np.nan  # nan: current_basal_u_per_h
    max_daily_safety_multiplier: np.ndarray | float = 3.0
    current_basal_safety_multiplier: np.ndarray | float = 4.0
    enable_uam: np.ndarray | bool = False
    enable_smb_always: np.ndarray | bool = False
    enable_smb_with_cob: np.ndarray | bool = False
    enable_smb_after_carbs: np.ndarray | bool = False
    enable_smb_high_bg: np.ndarray | bool = False
    enable_smb_high_bg_target_mgdl: np.ndarray | float = 110.0
    max_smb_basal_minutes: np.ndarray | float = 30.0
    max_uam_smb_basal_minutes: np.ndarray | float = 30.0
    smb_interval_min: np.ndarray | float = 3.0
    bolus_increment_u: np.ndarray | float = 0.1
    remaining_carbs_cap_g: np.ndarray | float = 90.0
    remaining_carbs_fraction: np.ndarray | float = 1.0
    sensitivity_raises_target: np.ndarray | bool = True
    resistance_lowers_target: np.ndarray | bool = False
    max_delta_bg_threshold: np.ndarray | float = 0.2
    noisy_cgm_target_multiplier: np.ndarray | float = 1.3
    pump_x23_x54: np.ndarray | bool = False  # Medtronic x23/x54: 0.025 U/h steps below 1 U/h
    flat_cgm_check: np.ndarray | bool = True  # False: oref0's "fakecgm" simulator mode
    # a temporary target is running: min_bg/max_bg are the temp target's (temptargetSet)
    temptarget_set: np.ndarray | bool = False
    high_temptarget_raises_sensitivity: np.ndarray | bool = False  # or exercise_mode
    low_temptarget_lowers_sensitivity: np.ndarray | bool = False
    half_basal_exercise_target_mgdl: np.ndarray | float = 160.0
    autosens_max: np.ndarray | float = 1.2
    allow_smb_with_high_temptarget: np.ndarray | bool = False
    enable_smb_with_temptarget: np.ndarray | bool = False

    def to_oref0(self, i: int) -> dict:
        """Patient ``i``'s profile as oref0's profile JSON (for the reference worker)."""
        v = {f.name: scalar_at(getattr(self, f.name), i) for f in fields(self)}
        max_daily = v["max_daily_basal_u_per_h"]
        return {
            "current_basal": v["current_basal_u_per_h"], "sens": v["sens_mgdl_per_u"],
            "carb_ratio": v["carb_ratio_g_per_u"], "min_bg": v["min_bg_mgdl"], "max_bg": v["max_bg_mgdl"],
            "max_iob": v["max_iob_u"], "max_basal": v["max_basal_u_per_h"],
            "max_daily_basal": v["current_basal_u_per_h"] if math.isnan(max_daily) else max_daily,
            "max_daily_safety_multiplier": v["max_daily_safety_multiplier"],
            "current_basal_safety_multiplier": v["current_basal_safety_multiplier"],
            "enableUAM": bool(v["enable_uam"]), "enableSMB_always": bool(v["enable_smb_always"]),
            "enableSMB_with_COB": bool(v["enable_smb_with_cob"]),
            "enableSMB_after_carbs": bool(v["enable_smb_after_carbs"]),
            "enableSMB_high_bg": bool(v["enable_smb_high_bg"]),
            "enableSMB_high_bg_target": v["enable_smb_high_bg_target_mgdl"],
            "maxSMBBasalMinutes": v["max_smb_basal_minutes"],
            "maxUAMSMBBasalMinutes": v["max_uam_smb_basal_minutes"],
            "SMBInterval": v["smb_interval_min"], "bolus_increment": v["bolus_increment_u"],
            "remainingCarbsCap": v["remaining_carbs_cap_g"],
            "remainingCarbsFraction": v["remaining_carbs_fraction"],
            "sensitivity_raises_target": bool(v["sensitivity_raises_target"]),
            "resistance_lowers_target": bool(v["resistance_lowers_target"]),
            "maxDelta_bg_threshold": v["max_delta_bg_threshold"],
            "noisyCGMTargetMultiplier": v["noisy_cgm_target_multiplier"],
            "model": "554" if v["pump_x23_x54"] else "522",
            "temptargetSet": bool(v["temptarget_set"]),
            "high_temptarget_raises_sensitivity": bool(v["high_temptarget_raises_sensitivity"]),
            "low_temptarget_lowers_sensitivity": bool(v["low_temptarget_lowers_sensitivity"]),
            "half_basal_exercise_target": v["half_basal_exercise_target_mgdl"],
            "autosens_max": v["autosens_max"], "autosens_min": 0.7,
            "allowSMB_with_high_temptarget": bool(v["allow_smb_with_high_temptarget"]),
            "enableSMB_with_temptarget": bool(v["enable_smb_with_temptarget"]),
            "skip_neutral_temps": False, "out_units": "mg/dL", "carbsReqThreshold": 1,
            "curve": "rapid-acting", "dia": 5,
        }


def scalar_at(value, i: int):
    """Element ``i`` of a per-patient field as a plain Python scalar (scalars broadcast)."""
    a = np.asarray(value)
    return a.item() if a.ndim == 0 else a[i].item()


# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Oref0Decision:
    """determine-basal's decisions for N patients.

    ``enacted`` is True where oref0 asks for a new temp basal (``rT.rate``/``rT.duration`` set);
    where it is False oref0 leaves the pump alone, and ``rate_u_per_h``/``duration_min`` are what
    the pump then runs: the running temp, or the scheduled basal (duration 0) if none runs.
    """

    rate_u_per_h: np.ndarray
    duration_min: np.ndarray
    enacted: np.ndarray  # bool
    smb_u: np.ndarray  # microbolus to deliver now (0: none)
    reason: np.ndarray  # Oref0Reason codes (int8)
    eventual_bg_mgdl: np.ndarray
    insulin_req_u: np.ndarray
    min_pred_bg_mgdl: np.ndarray
    min_guard_bg_mgdl: np.ndarray
    carbs_req_g: np.ndarray
    pred_iob_mgdl: np.ndarray  # (N, 48) predBGs.IOB (rounded, clipped to 39..401)
    pred_zt_mgdl: np.ndarray  # (N, 48) predBGs.ZT
    pred_cob_mgdl: np.ndarray  # (N, 48) predBGs.COB, nan rows where oref0 gives none
    pred_uam_mgdl: np.ndarray  # (N, 48) predBGs.UAM, nan rows where oref0 gives none

    @property
    def suspended(self) -> np.ndarray:
        """Where the pump delivers no basal after the decision (a zero temp)."""
        return self.rate_u_per_h == 0.0


# --- the packed layout the kernel reads ----------------------------------------------------

STATE_COLS = ("glucose_mgdl", "delta_mgdl", "short_avgdelta_mgdl", "long_avgdelta_mgdl",
               "temp_rate_u_per_h", "temp_remaining_min", "carbs_g", "cob_g", "last_carb_age_min",
               "slope_from_max_deviation", "slope_from_min_deviation", "last_bolus_age_min",
               "autosens_ratio", "glucose_age_min", "noise", "microbolus_allowed")
(S_BG, S_DELTA, S_SHORT, S_LONG, S_TRATE, S_TDUR, S_CARBS, S_COB, S_CARBAGE, S_SMAX, S_SMIN,
 S_BOLUSAGE, S_RATIO, S_BGAGE, S_NOISE, S_SMBOK) = range(len(STATE_COLS))

_PROFILE_COLS = tuple(f.name for f in fields(Oref0Profile))
(P_BASAL, P_SENS, P_CR, P_MINBG, P_MAXBG, P_MAXIOB, P_MAXBASAL, P_MAXDAILY, P_DAILYMULT, P_CURMULT,
 P_UAM, P_SMB_ALWAYS, P_SMB_COB, P_SMB_CARBS, P_SMB_HIGH, P_SMB_HIGH_TARGET, P_SMB_MINUTES,
 P_UAM_SMB_MINUTES, P_SMB_INTERVAL, P_BOLUS_INC, P_RC_CAP, P_RC_FRACTION, P_SENS_RAISES, P_RES_LOWERS,
 P_MAXDELTA_THR, P_NOISY_MULT, P_X23, P_FLATCHECK, P_TT_SET, P_HIGH_TT_RAISES, P_LOW_TT_LOWERS,
 P_HALF_BASAL_TARGET, P_AUTOSENS_MAX, P_SMB_HIGH_TT, P_SMB_TT) = range(len(_PROFILE_COLS))

(O_RATE, O_DUR, O_ENACTED, O_SMB, O_REASON, O_EVENTUAL, O_INSREQ, O_MINPRED, O_MINGUARD,
 O_CARBSREQ) = range(10)
_N_OUT = 10


def _pack(obj, cols: tuple[str, ...], n: int) -> np.ndarray:
    out = np.empty((n, len(cols)))
    for j, name in enumerate(cols):
        out[:, j] = np.broadcast_to(np.asarray(getattr(obj, name), dtype=np.float64), (n,))
    return out


def pack_profile(profile: Oref0Profile, n: int) -> np.ndarray:
    """The profile as the kernel reads it (N, fields): pack once for a loop whose profile holds."""
    p = _pack(profile, _PROFILE_COLS, n)
    p[:, P_MAXDAILY] = np.where(np.isnan(p[:, P_MAXDAILY]), p[:, P_BASAL], p[:, P_MAXDAILY])
    return p


def state_from_packed(packed: np.ndarray, iob_u: np.ndarray, activity_u_per_min: np.ndarray,
                      zero_temp_iob_u: np.ndarray, zero_temp_activity_u_per_min: np.ndarray) -> Oref0State:
    """An `Oref0State` from its packed columns (``STATE_COLS`` order) and its ticks."""
    cols = {name: packed[:, j] for j, name in enumerate(STATE_COLS)}
    return Oref0State(iob_u=iob_u, activity_u_per_min=activity_u_per_min, zero_temp_iob_u=zero_temp_iob_u,
                      zero_temp_activity_u_per_min=zero_temp_activity_u_per_min, **cols)


def determine_basal(state: Oref0State, profile: Oref0Profile | np.ndarray, predictions: bool = True
                    ) -> Oref0Decision:
    """One oref0 decision for each of the N patients of ``state`` (profile fields broadcast).

    ``profile`` may come packed (`pack_profile`). ``predictions=False`` skips storing the
    predicted-glucose curves (the ``pred_*`` fields are then N x 0): the decisions are the same,
    ~2x faster.
    """
    n = np.asarray(state.glucose_mgdl).shape[0]
    p = profile if isinstance(profile, np.ndarray) else pack_profile(profile, n)
    ticks = [np.broadcast_to(np.asarray(a, dtype=np.float64), (n, N_TICKS))
             for a in (state.iob_u, state.activity_u_per_min, state.zero_temp_activity_u_per_min)]
    return determine_basal_packed(_pack(state, STATE_COLS, n), p, *ticks, predictions=predictions)


def determine_basal_packed(state: np.ndarray, profile: np.ndarray, iob_u: np.ndarray,
                           activity_u_per_min: np.ndarray, zero_temp_activity_u_per_min: np.ndarray,
                           predictions: bool = True) -> Oref0Decision:
    """`determine_basal` on a packed state (N, ``STATE_COLS``) and profile (`pack_profile`)."""
    n = state.shape[0]
    s, p = state, profile
    ticks = [np.ascontiguousarray(a, dtype=np.float64)
             for a in (iob_u, activity_u_per_min, zero_temp_activity_u_per_min)]
    out = np.empty((n, _N_OUT))
    preds = np.empty((n, 4, N_TICKS) if predictions else (n, 0, 0))
    curves = preds if predictions else np.empty((n, 4, 0))
    _determine_basal_kernel(s, p, ticks[0], ticks[1], ticks[2], out, preds)
    return Oref0Decision(
        rate_u_per_h=out[:, O_RATE], duration_min=out[:, O_DUR], enacted=out[:, O_ENACTED] > 0,
        smb_u=out[:, O_SMB], reason=out[:, O_REASON].astype(np.int8),
        eventual_bg_mgdl=out[:, O_EVENTUAL], insulin_req_u=out[:, O_INSREQ],
        min_pred_bg_mgdl=out[:, O_MINPRED], min_guard_bg_mgdl=out[:, O_MINGUARD],
        carbs_req_g=out[:, O_CARBSREQ], pred_iob_mgdl=curves[:, 0], pred_zt_mgdl=curves[:, 1],
        pred_cob_mgdl=curves[:, 2], pred_uam_mgdl=curves[:, 3])


# --- JavaScript arithmetic -----------------------------------------------------------------


@njit(cache=True, inline="always", error_model="numpy")
def _jround(x, digits):
    """oref0's round(value, digits): Math.round(value * 10**digits) / 10**digits (half up)."""
    scale = 10.0 ** digits
    return math.floor(x * scale + 0.5) / scale


@njit(cache=True, inline="always", error_model="numpy")
def _jmin(a, b):
    """Math.min: nan if either is nan."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a < b else b


@njit(cache=True, inline="always", error_model="numpy")
def _jmax(a, b):
    """Math.max: nan if either is nan."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a > b else b


@njit(cache=True, inline="always", error_model="numpy")
def _truthy(x):
    """JavaScript truthiness of a number (0 and nan are false)."""
    return x != 0.0 and not math.isnan(x)


@njit(cache=True, inline="always", error_model="numpy")
def _display(bg):
    """A predBGs value as oref0 shows it: rounded, clipped to 39..401 mg/dL."""
    return _jround(min(401.0, max(39.0, bg)), 0)


@njit(cache=True, inline="always", error_model="numpy")
def _round_basal(rate, x23):
    """lib/round-basal.js: pump rate steps (0.05 U/h, 0.025 below 1 U/h on x23/x54, 0.1 from 10)."""
    if rate < 1.0:
        scale = 40.0 if x23 else 20.0
        return math.floor(rate * scale + 0.5) / scale
    if rate < 10.0:
        return math.floor(rate * 20.0 + 0.5) / 20.0
    return math.floor(rate * 10.0 + 0.5) / 10.0


@njit(cache=True, inline="always", error_model="numpy")
def _max_safe_basal(p):
    """basal-set-temp.js getMaxSafeBasal."""
    return min(p[P_MAXBASAL], p[P_DAILYMULT] * p[P_MAXDAILY], p[P_CURMULT] * p[P_BASAL])


@njit(cache=True, error_model="numpy")
def _set_temp(rate, duration, p, cur_rate, cur_dur, out):
    """basal-set-temp.js setTempBasal: clamp, round, and keep a running temp within 20 %."""
    max_safe = _max_safe_basal(p)
    if rate < 0.0:
        rate = 0.0
    elif rate > max_safe:
        rate = max_safe
    suggested = _round_basal(rate, p[P_X23] > 0)
    if (cur_dur > duration - 10 and cur_dur <= 120 and suggested <= cur_rate * 1.2
            and suggested >= cur_rate * 0.8 and duration > 0):
        _keep(p, cur_rate, cur_dur, out)
        return
    out[O_RATE] = suggested
    out[O_DUR] = duration
    out[O_ENACTED] = 1.0


@njit(cache=True, error_model="numpy")
def _keep(p, cur_rate, cur_dur, out):
    """No new temp: the pump goes on with the running temp, or the scheduled basal."""
    if cur_dur > 0:
        out[O_RATE] = cur_rate
        out[O_DUR] = cur_dur
    else:
        out[O_RATE] = p[P_BASAL]
        out[O_DUR] = 0.0
    out[O_ENACTED] = 0.0


@njit(cache=True, error_model="numpy")
def _basal_or_keep(basal, p, cur_rate, cur_dur, out):
    """The repeated 'temp ~ req: keep, else set current basal as temp' rule."""
    x23 = p[P_X23] > 0
    if cur_dur > 15 and _round_basal(basal, x23) == _round_basal(cur_rate, x23):
        _keep(p, cur_rate, cur_dur, out)
    else:
        _set_temp(basal, 30.0, p, cur_rate, cur_dur, out)


# --- determine-basal -------------------------------------------------------------------------


@njit(cache=True, parallel=True, error_model="numpy")
def _determine_basal_kernel(s, p, iob, act, zt_act, out, preds):
    for i in prange(s.shape[0]):
        out[i, :] = math.nan
        out[i, O_SMB] = 0.0
        preds[i, :, :] = math.nan  # no-op when predictions are not stored
        _decide(s[i], p[i], iob[i], act[i], zt_act[i], out[i], preds[i])


@njit(cache=True, error_model="numpy")
def _enable_smb(s, p, bg, target_bg):
    """determine-basal.js enable_smb (without the Bolus Wizard rule)."""
    tt = p[P_TT_SET] > 0
    if s[S_SMBOK] == 0:
        return False
    if p[P_SMB_HIGH_TT] == 0 and tt and target_bg > 100:
        return False
    if p[P_SMB_ALWAYS] > 0:
        return True
    if p[P_SMB_COB] > 0 and _truthy(s[S_COB]):
        return True
    if p[P_SMB_CARBS] > 0 and _truthy(s[S_CARBS]):
        return True
    if p[P_SMB_TT] > 0 and tt and target_bg < 100:
        return True
    if p[P_SMB_HIGH] > 0 and bg >= p[P_SMB_HIGH_TARGET]:
        return True
    return False


@njit(cache=True, error_model="numpy")
def _decide(s, p, iob, act, zt_act, out, preds):  # one function, in the order of oref0's
    x23 = p[P_X23] > 0
    cur_rate = s[S_TRATE]
    cur_dur = s[S_TDUR]
    bg = s[S_BG]
    delta = s[S_DELTA]
    short_avg = s[S_SHORT]
    long_avg = s[S_LONG]
    noise = s[S_NOISE]
    basal = _round_basal(p[P_BASAL], x23)
    min_ago = _jround(s[S_BGAGE], 1)

    min_delta = _jmin(delta, short_avg)
    min_avg_delta = _jmin(short_avg, long_avg)
    max_delta = _jmax(_jmax(delta, short_avg), long_avg)

    # CGM errors: cancel high temps, shorten long zero temps, else do nothing
    too_flat = (p[P_FLATCHECK] > 0 and bg > 60 and delta == 0 and short_avg > -1 and short_avg < 1
                and long_avg > -1 and long_avg < 1)
    if bg <= 10 or bg == 38 or noise >= 3 or min_ago > 12 or min_ago < -5 or too_flat:
        if cur_rate > basal:
            out[O_RATE] = basal
            out[O_DUR] = 30.0
            out[O_ENACTED] = 1.0
            out[O_REASON] = R_CGM_ERROR_NEUTRAL
        elif cur_rate == 0 and cur_dur > 30:
            out[O_RATE] = 0.0
            out[O_DUR] = 30.0
            out[O_ENACTED] = 1.0
            out[O_REASON] = R_CGM_ERROR_SHORTEN_ZERO
        else:
            _keep(p, cur_rate, cur_dur, out)
            out[O_REASON] = R_CGM_ERROR_KEEP
        return

    min_bg = p[P_MINBG]
    max_bg = p[P_MAXBG]
    target_bg = (min_bg + max_bg) / 2
    max_iob = p[P_MAXIOB]

    # sensitivity ratio, from a temp target (exercise mode) or autosens: basal, ISF, targets
    autosens_ratio = s[S_RATIO]
    tt = p[P_TT_SET] > 0
    normal_target = 100.0
    if (p[P_HIGH_TT_RAISES] > 0 and tt and target_bg > normal_target
            or p[P_LOW_TT_LOWERS] > 0 and tt and target_bg < normal_target):
        half_basal_target = p[P_HALF_BASAL_TARGET] if _truthy(p[P_HALF_BASAL_TARGET]) else 160.0
        c = half_basal_target - normal_target
        if c * (c + target_bg - normal_target) <= 0.0:
            ratio = p[P_AUTOSENS_MAX]
        else:
            ratio = c / (c + target_bg - normal_target)
        ratio = _jround(_jmin(ratio, p[P_AUTOSENS_MAX]), 2)
    else:
        ratio = autosens_ratio
    if _truthy(ratio):
        basal = _round_basal(p[P_BASAL] * ratio, x23)
    if tt:
        pass  # a temp target is not adjusted by autosens
    elif ((p[P_SENS_RAISES] > 0 and autosens_ratio < 1)
          or (p[P_RES_LOWERS] > 0 and autosens_ratio > 1)):
        min_bg = _jround((min_bg - 60) / autosens_ratio, 0) + 60
        max_bg = _jround((max_bg - 60) / autosens_ratio, 0) + 60
        new_target_bg = _jround((target_bg - 60) / autosens_ratio, 0) + 60
        target_bg = _jmax(80.0, new_target_bg)
    if noise >= 2:
        mult = _jmax(1.1, p[P_NOISY_MULT])
        min_bg = _jround(_jmin(200.0, min_bg * mult), 0)
        target_bg = _jround(_jmin(200.0, target_bg * mult), 0)
        max_bg = _jround(_jmin(200.0, max_bg * mult), 0)
    threshold = min_bg - 0.5 * (min_bg - 40)
    sens = _jround(p[P_SENS] / ratio, 1)

    iob_now = iob[0]
    bgi = _jround(-act[0] * sens * 5, 2)
    deviation = _jround(30 / 5 * (min_delta - bgi), 0)
    if deviation < 0:
        deviation = _jround((30 / 5) * (min_avg_delta - bgi), 0)
        if deviation < 0:
            deviation = _jround((30 / 5) * (long_avg - bgi), 0)
    if iob_now > 0:
        naive_eventual_bg = _jround(bg - (iob_now * sens), 0)
    else:
        naive_eventual_bg = _jround(bg - (iob_now * _jmin(sens, p[P_SENS])), 0)
    eventual_bg = naive_eventual_bg + deviation
    expected_delta = _jround(bgi + ((target_bg - eventual_bg) / 24.0), 1)

    enable_smb = _enable_smb(s, p, bg, target_bg)
    enable_uam = p[P_UAM] > 0

    # carb impact, absorption time and remaining carbs
    ci = _jround(min_delta - bgi, 1)
    uci = _jround(min_delta - bgi, 1)
    csf = sens / p[P_CR]
    max_ci = _jround(30 * csf * 5 / 60, 1)
    if ci > max_ci:
        ci = max_ci
    remaining_ca_time_min = 3.0
    if _truthy(ratio):
        remaining_ca_time_min = remaining_ca_time_min / ratio
    remaining_ca_time = remaining_ca_time_min
    carbs = s[S_CARBS]
    cob = s[S_COB]
    if _truthy(carbs):
        remaining_ca_time_min = _jmax(remaining_ca_time_min, cob / 20)
        last_carb_age = _jround(s[S_CARBAGE], 0)
        remaining_ca_time = remaining_ca_time_min + 1.5 * last_carb_age / 60
        remaining_ca_time = _jround(remaining_ca_time, 1)
    total_ci = _jmax(0.0, ci / 5 * 60 * remaining_ca_time / 2)
    total_ca = total_ci / csf
    rc_cap = 90.0
    rc_fraction = 1.0
    if _truthy(p[P_RC_CAP]):
        rc_cap = _jmin(90.0, p[P_RC_CAP])
    if _truthy(p[P_RC_FRACTION]):
        rc_fraction = _jmin(1.0, p[P_RC_FRACTION])
    remaining_carbs = _jmax(0.0, cob - total_ca - carbs * (1 - rc_fraction))
    remaining_carbs = _jmin(rc_cap, remaining_carbs)
    remaining_ci_peak = remaining_carbs * csf * 5 / 60 / (remaining_ca_time / 2)
    slope_from_max = _jround(s[S_SMAX], 2)
    slope_from_min = _jround(s[S_SMIN], 2)
    slope_from_deviations = _jmin(slope_from_max, -slope_from_min / 3)
    if ci == 0:
        cid = 0.0
    else:
        cid = _jmin(remaining_ca_time * 60 / 5 / 2, _jmax(0.0, cob * csf / ci))
    carbs_active = _truthy(cid) or remaining_ci_peak > 0

    # predictions over oref0's iob_data ticks
    min_iob_pred_bg = 999.0
    min_cob_pred_bg = 999.0
    min_uam_pred_bg = 999.0
    min_cob_guard_bg = 999.0
    min_uam_guard_bg = 999.0
    min_iob_guard_bg = 999.0
    min_zt_guard_bg = 999.0
    iob_pred_bg = eventual_bg
    cob_pred_bg = math.nan
    uam_pred_bg = math.nan
    max_iob_pred_bg = bg
    max_cob_pred_bg = bg
    # the predBGs arrays grow together (to at most 48 values) from bg; only their last values are
    # needed, and where the displayed (rounded, clipped) IOB and COB curves first drop below
    # threshold; the curves themselves are stored only when asked for
    store = preds.shape[1] > 0
    last_iob = bg
    last_zt = bg
    last_cob = bg
    last_uam = bg
    below_iob = 0 if _display(bg) < threshold else -1
    below_cob = below_iob
    if store:
        for c in range(4):
            preds[c, 0] = _display(bg)
    n = 1  # length of every predBGs array so far
    for k in range(iob.shape[0]):
        pred_bgi = _jround(-act[k] * sens * 5, 2)
        pred_zt_bgi = _jround(-zt_act[k] * sens * 5, 2)
        pred_dev = ci * (1 - min(1.0, n / (60 / 5)))
        iob_pred_bg = last_iob + pred_bgi + pred_dev
        zt_pred_bg = last_zt + pred_zt_bgi
        # the COB and UAM curves only matter with carbs acting / UAM on (oref0 computes them always)
        if carbs_active:
            pred_ci = _jmax(0.0, _jmax(0.0, ci) * (1 - n / _jmax(cid * 2, 1.0)))
            intervals = _jmin(n, (remaining_ca_time * 12) - n)
            remaining_ci = _jmax(0.0, intervals / (remaining_ca_time / 2 * 12) * remaining_ci_peak)
            cob_pred_bg = last_cob + pred_bgi + _jmin(0.0, pred_dev) + pred_ci + remaining_ci
        if enable_uam:
            pred_uci_slope = _jmax(0.0, uci + (n * slope_from_deviations))
            pred_uci_max = _jmax(0.0, uci * (1 - n / max(3 * 60 / 5, 1.0)))
            pred_uci = _jmin(pred_uci_slope, pred_uci_max)
            uam_pred_bg = last_uam + pred_bgi + _jmin(0.0, pred_dev) + pred_uci
        if n < N_TICKS:
            last_iob = iob_pred_bg
            last_cob = cob_pred_bg
            last_uam = uam_pred_bg
            last_zt = zt_pred_bg
            if below_iob < 0 and _display(iob_pred_bg) < threshold:
                below_iob = n
            if carbs_active and below_cob < 0 and _display(cob_pred_bg) < threshold:
                below_cob = n
            if store:
                preds[0, n] = _display(iob_pred_bg)
                preds[1, n] = _display(zt_pred_bg)
                preds[2, n] = _display(cob_pred_bg)
                preds[3, n] = _display(uam_pred_bg)
            n += 1
        if carbs_active and cob_pred_bg < min_cob_guard_bg:
            min_cob_guard_bg = _jround(cob_pred_bg, 0)
        if enable_uam and uam_pred_bg < min_uam_guard_bg:
            min_uam_guard_bg = _jround(uam_pred_bg, 0)
        if iob_pred_bg < min_iob_guard_bg:
            min_iob_guard_bg = _jround(iob_pred_bg, 0)
        if zt_pred_bg < min_zt_guard_bg:
            min_zt_guard_bg = _jround(zt_pred_bg, 0)
        insulin_peak_5m = (90 / 60) * 12  # minPredBGs count from 90 min (peak + delivery)
        if n > insulin_peak_5m and iob_pred_bg < min_iob_pred_bg:
            min_iob_pred_bg = _jround(iob_pred_bg, 0)
        if iob_pred_bg > max_iob_pred_bg:
            max_iob_pred_bg = iob_pred_bg
        if carbs_active and n > insulin_peak_5m and cob_pred_bg < min_cob_pred_bg:
            min_cob_pred_bg = _jround(cob_pred_bg, 0)
        if carbs_active and cob_pred_bg > max_iob_pred_bg:  # sic: oref0 compares with maxIOBPredBG
            max_cob_pred_bg = cob_pred_bg
        if enable_uam and n > 12 and uam_pred_bg < min_uam_pred_bg:
            min_uam_pred_bg = _jround(uam_pred_bg, 0)

    cob_preds = cob > 0 and (ci > 0 or remaining_ci_peak > 0)
    if cob_preds:
        eventual_bg = _jmax(eventual_bg, _display(last_cob))
    elif store:
        preds[2, :] = math.nan
    if (ci > 0 or remaining_ci_peak > 0) and enable_uam:
        if _truthy(_display(last_uam)):
            eventual_bg = _jmax(eventual_bg, _display(last_uam))
    elif store:
        preds[3, :] = math.nan

    min_iob_pred_bg = _jmax(39.0, min_iob_pred_bg)
    min_cob_pred_bg = _jmax(39.0, min_cob_pred_bg)
    min_uam_pred_bg = _jmax(39.0, min_uam_pred_bg)
    min_pred_bg = _jround(min_iob_pred_bg, 0)

    if carbs != 0:
        fraction_carbs_left = cob / carbs
    else:  # JavaScript: 0/0 is nan, x/0 is +-infinity
        fraction_carbs_left = math.nan if cob == 0 else math.copysign(math.inf, cob)
    if min_uam_pred_bg < 999 and min_cob_pred_bg < 999:
        avg_pred_bg = _jround((1 - fraction_carbs_left) * uam_pred_bg + fraction_carbs_left * cob_pred_bg, 0)
    elif min_cob_pred_bg < 999:
        avg_pred_bg = _jround((iob_pred_bg + cob_pred_bg) / 2, 0)
    elif min_uam_pred_bg < 999:
        avg_pred_bg = _jround((iob_pred_bg + uam_pred_bg) / 2, 0)
    else:
        avg_pred_bg = _jround(iob_pred_bg, 0)
    if min_zt_guard_bg > avg_pred_bg:
        avg_pred_bg = min_zt_guard_bg

    if carbs_active:
        if enable_uam:
            min_guard_bg = (fraction_carbs_left * min_cob_guard_bg
                            + (1 - fraction_carbs_left) * min_uam_guard_bg)
        else:
            min_guard_bg = min_cob_guard_bg
    elif enable_uam:
        min_guard_bg = min_uam_guard_bg
    else:
        min_guard_bg = min_iob_guard_bg
    min_guard_bg = _jround(min_guard_bg, 0)

    min_zt_uam_pred_bg = min_uam_pred_bg
    if min_zt_guard_bg < threshold:
        min_zt_uam_pred_bg = (min_uam_pred_bg + min_zt_guard_bg) / 2
    elif min_zt_guard_bg < target_bg:
        blend_pct = (min_zt_guard_bg - threshold) / (target_bg - threshold)
        blended_min_zt_guard_bg = min_uam_pred_bg * blend_pct + min_zt_guard_bg * (1 - blend_pct)
        min_zt_uam_pred_bg = (min_uam_pred_bg + blended_min_zt_guard_bg) / 2
    elif min_zt_guard_bg > min_uam_pred_bg:
        min_zt_uam_pred_bg = (min_uam_pred_bg + min_zt_guard_bg) / 2
    min_zt_uam_pred_bg = _jround(min_zt_uam_pred_bg, 0)

    if _truthy(carbs):
        if not enable_uam and min_cob_pred_bg < 999:
            min_pred_bg = _jround(_jmax(min_iob_pred_bg, min_cob_pred_bg), 0)
        elif min_cob_pred_bg < 999:
            blended_min_pred_bg = (fraction_carbs_left * min_cob_pred_bg
                                   + (1 - fraction_carbs_left) * min_zt_uam_pred_bg)
            min_pred_bg = _jround(_jmax(_jmax(min_iob_pred_bg, min_cob_pred_bg), blended_min_pred_bg), 0)
        elif enable_uam:
            min_pred_bg = min_zt_uam_pred_bg
        else:
            min_pred_bg = min_guard_bg
    elif enable_uam:
        min_pred_bg = _jround(_jmax(min_iob_pred_bg, min_zt_uam_pred_bg), 0)
    min_pred_bg = _jmin(min_pred_bg, avg_pred_bg)
    if max_cob_pred_bg > bg:
        min_pred_bg = _jmin(min_pred_bg, max_cob_pred_bg)

    # carbsReq (its being non-zero changes the low-temp rule below)
    carbs_req_bg = naive_eventual_bg
    if carbs_req_bg < 40:
        carbs_req_bg = _jmin(min_guard_bg, carbs_req_bg)
    bg_undershoot = threshold - carbs_req_bg
    below = below_cob if cob_preds else below_iob
    minutes_above_threshold = 5.0 * below if below >= 0 else 240.0
    zero_temp_effect = p[P_BASAL] * sens * minutes_above_threshold / 60
    cob_for_carbs_req = _jmax(0.0, cob - 0.25 * carbs)
    carbs_req = _jround((bg_undershoot - zero_temp_effect) / csf - cob_for_carbs_req, 0)

    if enable_smb and min_guard_bg < threshold:
        enable_smb = False
    max_delta_bg_threshold = _jmin(p[P_MAXDELTA_THR], 0.3)
    if max_delta > max_delta_bg_threshold * bg:
        enable_smb = False

    out[O_EVENTUAL] = eventual_bg
    out[O_MINPRED] = min_pred_bg
    out[O_MINGUARD] = min_guard_bg
    out[O_CARBSREQ] = carbs_req
    out[O_INSREQ] = 0.0

    # core dosing logic: the first rule that matches returns
    if bg < threshold and iob_now < -p[P_BASAL] * 20 / 60 and min_delta > 0 and min_delta > expected_delta:
        pass  # IOB already very negative and BG rising faster than predicted: no suspend
    elif bg < threshold or min_guard_bg < threshold:
        bg_undershoot = target_bg - min_guard_bg
        worst_case_insulin_req = bg_undershoot / sens
        duration_req = _jround(60 * worst_case_insulin_req / p[P_BASAL], 0)
        duration_req = _jround(duration_req / 30, 0) * 30
        duration_req = _jmin(120.0, _jmax(30.0, duration_req))
        _set_temp(0.0, duration_req, p, cur_rate, cur_dur, out)
        out[O_REASON] = R_LOW_GLUCOSE_SUSPEND
        return

    if eventual_bg < min_bg:
        if min_delta > expected_delta and min_delta > 0 and not _truthy(carbs_req):
            if naive_eventual_bg < 40:
                _set_temp(0.0, 30.0, p, cur_rate, cur_dur, out)
                out[O_REASON] = R_NAIVE_BELOW_40
                return
            _basal_or_keep(basal, p, cur_rate, cur_dur, out)
            out[O_REASON] = R_BELOW_MIN_BUT_RISING
            return
        out[O_REASON] = R_LOW_TEMP
        insulin_req = 2 * _jmin(0.0, (eventual_bg - target_bg) / sens)
        insulin_req = _jround(insulin_req, 2)
        naive_insulin_req = _jmin(0.0, (naive_eventual_bg - target_bg) / sens)
        naive_insulin_req = _jround(naive_insulin_req, 2)
        if min_delta < 0 and min_delta > expected_delta:
            insulin_req = _jround((insulin_req * (min_delta / expected_delta)), 2)
        out[O_INSREQ] = insulin_req
        rate = basal + (2 * insulin_req)
        rate = _round_basal(rate, x23)
        insulin_scheduled = cur_dur * (cur_rate - basal) / 60
        min_insulin_req = _jmin(insulin_req, naive_insulin_req)
        if insulin_scheduled < min_insulin_req - basal * 0.3:
            _set_temp(rate, 30.0, p, cur_rate, cur_dur, out)
            return
        if cur_dur > 5 and rate >= cur_rate * 0.8:
            _keep(p, cur_rate, cur_dur, out)
            return
        if rate <= 0:
            bg_undershoot = target_bg - naive_eventual_bg
            worst_case_insulin_req = bg_undershoot / sens
            duration_req = _jround(60 * worst_case_insulin_req / p[P_BASAL], 0)
            if duration_req < 0:
                duration_req = 0.0
            else:
                duration_req = _jround(duration_req / 30, 0) * 30
                duration_req = _jmin(120.0, _jmax(0.0, duration_req))
            if duration_req > 0:
                _set_temp(rate, duration_req, p, cur_rate, cur_dur, out)
                return
        _set_temp(rate, 30.0, p, cur_rate, cur_dur, out)
        return

    smb_mode = s[S_SMBOK] > 0 and enable_smb
    if min_delta < expected_delta and not smb_mode:
        _basal_or_keep(basal, p, cur_rate, cur_dur, out)
        out[O_REASON] = R_FALLING_FASTER_THAN_EXPECTED
        return
    if _jmin(eventual_bg, min_pred_bg) < max_bg and not smb_mode:
        _basal_or_keep(basal, p, cur_rate, cur_dur, out)
        out[O_REASON] = R_IN_RANGE
        return
    if iob_now > max_iob:
        _basal_or_keep(basal, p, cur_rate, cur_dur, out)
        out[O_REASON] = R_IOB_ABOVE_MAX
        return

    insulin_req = _jround((_jmin(min_pred_bg, eventual_bg) - target_bg) / sens, 2)
    if insulin_req > max_iob - iob_now:
        insulin_req = max_iob - iob_now
    rate = basal + (2 * insulin_req)
    rate = _round_basal(rate, x23)
    insulin_req = _jround(insulin_req, 3)
    out[O_INSREQ] = insulin_req
    if smb_mode and bg > threshold:
        meal_insulin_req = _jround(cob / p[P_CR], 3)
        if iob_now > meal_insulin_req and iob_now > 0:
            uam_minutes = p[P_UAM_SMB_MINUTES] if _truthy(p[P_UAM_SMB_MINUTES]) else 30.0
            max_bolus = _jround(p[P_BASAL] * uam_minutes / 60, 1)
        else:
            max_bolus = _jround(p[P_BASAL] * p[P_SMB_MINUTES] / 60, 1)
        bolus_increment = p[P_BOLUS_INC] if _truthy(p[P_BOLUS_INC]) else 0.1
        round_smb_to = 1 / bolus_increment
        micro_bolus = math.floor(_jmin(insulin_req / 2, max_bolus) * round_smb_to) / round_smb_to
        worst_case_insulin_req = (target_bg - (naive_eventual_bg + min_iob_pred_bg) / 2) / sens
        duration_req = _jround(60 * worst_case_insulin_req / p[P_BASAL], 0)
        if insulin_req > 0 and micro_bolus < bolus_increment:
            duration_req = 0.0
        smb_low_temp_req = 0.0
        if duration_req <= 0:
            duration_req = 0.0
        elif duration_req >= 30:
            duration_req = _jround(duration_req / 30, 0) * 30
            duration_req = _jmin(60.0, _jmax(0.0, duration_req))
        else:
            smb_low_temp_req = _jround(basal * duration_req / 30, 2)
            duration_req = 30.0
        smb_interval = 3.0
        if _truthy(p[P_SMB_INTERVAL]):
            smb_interval = _jmin(10.0, _jmax(1.0, p[P_SMB_INTERVAL]))
        last_bolus_age = _jround(s[S_BOLUSAGE], 1)
        if last_bolus_age > smb_interval and micro_bolus > 0:
            out[O_SMB] = micro_bolus
        if duration_req > 0:
            out[O_RATE] = smb_low_temp_req
            out[O_DUR] = duration_req
            out[O_ENACTED] = 1.0
            out[O_REASON] = R_SMB_LOW_TEMP
            return

    out[O_REASON] = R_HIGH_TEMP
    max_safe_basal = _max_safe_basal(p)
    if rate > max_safe_basal:
        rate = _round_basal(max_safe_basal, x23)
    insulin_scheduled = cur_dur * (cur_rate - basal) / 60
    if insulin_scheduled >= insulin_req * 2:
        _set_temp(rate, 30.0, p, cur_rate, cur_dur, out)
        return
    if cur_dur == 0:
        _set_temp(rate, 30.0, p, cur_rate, cur_dur, out)
        return
    if cur_dur > 5 and _round_basal(rate, x23) <= _round_basal(cur_rate, x23):
        _keep(p, cur_rate, cur_dur, out)
        return
    _set_temp(rate, 30.0, p, cur_rate, cur_dur, out)


# --- insulin on board (lib/iob, exponential curves) -----------------------------------------


def insulin_on_board(dose_u: np.ndarray, dose_time_min: np.ndarray, basal_u_per_h: np.ndarray | float,
                     dia_h: float = 5.0, peak_min: float = 75.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """oref0's ``iob_data`` ticks from net doses: (iob_u, activity_u_per_min, zero-temp iob, activity).

    ``dose_u`` (N, K) are net insulin pulses: boluses, and temp basals minus the scheduled basal
    (times the autosens ratio) as `temp_basal_pulses` splits them; ``dose_time_min`` (N, K) their
    times relative to now (negative: past). oref0 ends the running temp 1 min from now for its
    projections, so the running temp's pulses run to ``+1`` at the latest. Padding pulses have 0 U.
    Tick ``k`` (time ``5k``) counts the pulses given by then and within DIA, as
    ``lib/iob/total.js`` does, rounded the same way (IOB to 0.001 U, activity to 0.0001 U/min).
    The zero-temp ticks add a zero temp of ``basal_u_per_h`` (the scheduled basal times the
    autosens ratio) for 4 h from 1 min from now (``find_insulin(inputs, 240)``). Curves:
    rapid-acting (peak 75) or ultra-rapid (peak 55); DIA below 5 h is raised to 5 h as oref0 does.
    """
    dose_u = np.ascontiguousarray(dose_u, dtype=np.float64)
    dose_time = np.ascontiguousarray(dose_time_min, dtype=np.float64)
    n = dose_u.shape[0]
    basal = np.ascontiguousarray(np.broadcast_to(np.asarray(basal_u_per_h, dtype=np.float64), (n,)))
    out = np.zeros((4, n, N_TICKS))
    _iob_kernel(dose_u, dose_time, basal, max(dia_h, 5.0), peak_min, out)
    return out[0], out[1], out[2], out[3]


def temp_basal_pulses(net_u_per_h: float, start_min: float, duration_min: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A temp basal's net insulin as oref0's pulses: (units, times in min), for `insulin_on_board`.

    As ``lib/iob/history.js`` with a basal schedule: the temp is cut into 30-min parts (the last
    one shorter), and each part's net insulin (rate minus scheduled basal, rounded to 0.01 U)
    into evenly spaced +-0.05 U pulses. Splits at basal-schedule changes are left to the caller
    (one call per scheduled rate).
    """
    units, times = [], []
    size = -0.05 if net_u_per_h < 0 else 0.05
    offset = 0.0
    while offset < duration_min:
        part = min(30.0, duration_min - offset)
        amount = math.floor(net_u_per_h * part * 10 / 6 + 0.5) / 100
        count = int(math.floor(amount / size + 0.5))
        if count > 0:
            units.append(np.full(count, size))
            times.append(start_min + offset + np.arange(count) * (part / count))
        offset += part
    if not units:
        return np.empty(0), np.empty(0)
    return np.concatenate(units), np.concatenate(times)


@njit(cache=True, parallel=True, error_model="numpy")
def _iob_kernel(dose_u, dose_time, basal, dia_h, peak, out):
    end = dia_h * 60.0
    for i in prange(dose_u.shape[0]):
        # the zero temp from now + 1 min for 240 min, split into 30-min parts of -0.05 U pulses
        zt_amount = math.floor(-basal[i] * 30 * 10 / 6 + 0.5) / 100
        zt_count = int(math.floor(zt_amount / -0.05 + 0.5))
        zt_spacing = 30.0 / zt_count if zt_count > 0 else 0.0
        for k in range(N_TICKS):
            t = 5.0 * k
            iob = 0.0
            act = 0.0
            zt_iob = 0.0
            zt_act = 0.0
            for j in range(dose_u.shape[1]):
                units = dose_u[i, j]
                if units == 0.0:
                    continue
                age = t - dose_time[i, j]
                if age < 0 or age >= end:
                    continue
                di, da = exponential_curve(units, math.floor(age + 0.5), end, peak)
                iob += di
                act += da
            zt_iob = iob
            zt_act = act
            for part in range(8):
                for j in range(zt_count):
                    age = t - (1.0 + 30.0 * part + j * zt_spacing)
                    if age < 0:
                        break
                    di, da = exponential_curve(-0.05, math.floor(age + 0.5), end, peak)
                    zt_iob += di
                    zt_act += da
            out[0, i, k] = math.floor(iob * 1000 + 0.5) / 1000
            out[1, i, k] = math.floor(act * 10000 + 0.5) / 10000
            out[2, i, k] = math.floor(zt_iob * 1000 + 0.5) / 1000
            out[3, i, k] = math.floor(zt_act * 10000 + 0.5) / 10000


# --- Nightscout -------------------------------------------------------------------------------


def uploaded_curve(curve: np.ndarray) -> list[int]:
    """A predBGs curve as oref0 uploads it: without the run of equal values at its end (after 1 h)."""
    values = [int(x) for x in curve if not np.isnan(x)]
    while len(values) > 13 and values[-2] == values[-1]:
        values.pop()
    return values


def to_devicestatus(decision: Oref0Decision, state: Oref0State, i: int, timestamp: str,
                    device: str = "openaps://cgm-ray") -> dict:
    """Patient ``i``'s decision as the Nightscout devicestatus record OpenAPS uploads.

    ``openaps.suggested`` carries what determine-basal returned (``rate``/``duration`` only when
    it asked for a new temp), ``openaps.enacted`` what the pump was told to do (absent when
    nothing was enacted), ``openaps.iob`` the insulin on board now. ``reason`` is the
    `Oref0Reason` name (oref0's own reason is prose). The ZT curve is uploaded whole (oref0 cuts it
    where it rises above target).
    """
    reason = Oref0Reason(int(decision.reason[i]))
    cob = float(scalar_at(state.cob_g, i))
    pred = {"IOB": decision.pred_iob_mgdl[i], "ZT": decision.pred_zt_mgdl[i],
            "COB": decision.pred_cob_mgdl[i], "UAM": decision.pred_uam_mgdl[i]}
    suggested: dict = {
        "temp": "absolute", "bg": float(scalar_at(state.glucose_mgdl, i)), "reason": reason.name,
        "COB": cob, "IOB": float(state.iob_u[i][0]), "timestamp": timestamp,
    }
    curves = {k: uploaded_curve(v) for k, v in pred.items() if v.size and not np.isnan(v[0])}
    if curves:
        suggested["predBGs"] = curves
    if not np.isnan(decision.eventual_bg_mgdl[i]):
        suggested["eventualBG"] = int(decision.eventual_bg_mgdl[i])
        suggested["insulinReq"] = float(decision.insulin_req_u[i])
    if decision.smb_u[i] > 0:
        suggested["units"] = float(decision.smb_u[i])
    record: dict = {"device": device, "created_at": timestamp,
                    "openaps": {"suggested": suggested,
                                "iob": {"iob": float(state.iob_u[i][0]),
                                        "activity": float(state.activity_u_per_min[i][0]),
                                        "timestamp": timestamp}}}
    if decision.enacted[i] or decision.smb_u[i] > 0:
        if decision.enacted[i]:
            suggested["rate"] = float(decision.rate_u_per_h[i])
            suggested["duration"] = float(decision.duration_min[i])
        enacted = {k: v for k, v in suggested.items() if k != "predBGs"}
        enacted.update(received=True, timestamp=timestamp)
        record["openaps"]["enacted"] = enacted
    return record
