"""oref0 in the loop: what the closed-loop engine knows, as oref0's inputs, and its answer back.

`oref0_view` turns a `LoopInput` into oref0's ``glucose_status``, ``currenttemp``, ``iob_data``,
``meal_data`` and profile (`Oref0State`, `Oref0Profile`); `Oref0Controller` runs the compiled
port on it for all patients at once, `Oref0ReferenceController` the real oref0 in Node. Both
see the same view, so a closed-loop run can compare them decision by decision.

The deltas follow ``lib/glucose-get-last.js`` on a 5-min grid: ``delta`` is the change since the
previous reading, ``short_avgdelta`` the mean of (now - then) / minutes * 5 over readings 5-15 min
old, ``long_avgdelta`` over 20-40 min. Autosens is off (ratio 1); COB is the engine's carb model
(announced carbs absorbed at oref0's minimum carb impact), not oref0's deviation-based one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit, prange

from simulators.controllers.interface import CANCEL_TEMP, NEVER_MIN, LoopInput, LoopOutput, Schedules
from simulators.controllers.oref0 import (
    S_BG,
    S_BGAGE,
    S_BOLUSAGE,
    S_CARBAGE,
    S_CARBS,
    S_COB,
    S_DELTA,
    S_LONG,
    S_NOISE,
    S_RATIO,
    S_SHORT,
    S_SMAX,
    S_SMBOK,
    S_SMIN,
    S_TDUR,
    S_TRATE,
    STATE_COLS,
    Oref0Decision,
    Oref0Profile,
    Oref0Reason,
    Oref0State,
    determine_basal_packed,
    pack_profile,
    state_from_packed,
)
from simulators.controllers.oref0_reference import Oref0Reference, oref0_inputs


@dataclass(frozen=True)
class Oref0Settings:
    """The oref0 preferences the simulator exposes (oref0's own defaults otherwise)."""

    enable_smb: bool = False  # enableSMB_with_COB / after_carbs: microboluses around meals
    enable_uam: bool = False  # unannounced-meal detection
    record_predictions: bool = False  # keep predBGs (slower; needed for devicestatus uploads)


@njit(cache=True, parallel=True, error_model="numpy")
def _pack_state(cgm, cgm_age, temp_rate, temp_remaining, carbs, cob, carb_age, bolus_age, smb, out):
    """oref0's packed state (``STATE_COLS``) per patient, from the loop's view, in one pass.

    The glucose status is ``lib/glucose-get-last.js`` on the 5-min slots (oldest first): missing
    readings are skipped in the averages; a missing newest reading gives glucose 0 (oref0's "CGM
    error" branch), zero deltas and a glucose age of ``NEVER_MIN``. No temp running: rate 0.
    """
    last = cgm.shape[1] - 1
    for i in prange(cgm.shape[0]):
        now = cgm[i, last]
        seen = not math.isnan(now)
        out[i, S_BG] = now if seen else 0.0
        prev = cgm[i, last - 1]
        out[i, S_DELTA] = now - prev if seen and not math.isnan(prev) else 0.0
        for col, lo, hi in ((S_SHORT, 1, 4), (S_LONG, 4, 9)):
            total = 0.0
            count = 0
            for k in range(lo, hi):
                then = cgm[i, last - k]
                if seen and not math.isnan(then):
                    total += (now - then) / k
                    count += 1
            out[i, col] = total / count if count else 0.0
        out[i, S_TRATE] = temp_rate[i] if temp_remaining[i] > 0 else 0.0
        out[i, S_TDUR] = temp_remaining[i]
        out[i, S_CARBS] = carbs[i]
        out[i, S_COB] = cob[i]
        out[i, S_CARBAGE] = carb_age[i]
        out[i, S_SMAX] = 0.0
        out[i, S_SMIN] = 0.0
        out[i, S_BOLUSAGE] = bolus_age[i]
        out[i, S_RATIO] = 1.0
        out[i, S_BGAGE] = cgm_age[i] if seen else NEVER_MIN
        out[i, S_NOISE] = 0.0
        out[i, S_SMBOK] = 1.0 if smb else 0.0


def packed_state(loop: LoopInput, settings: Oref0Settings) -> np.ndarray:
    """oref0's packed state (N, ``STATE_COLS``) at this decision: the port's input."""
    out = np.empty((len(loop.cob_g), len(STATE_COLS)))
    _pack_state(loop.cgm_mgdl, loop.cgm_age_min.astype(np.float64), loop.temp_rate_u_per_h,
                loop.temp_remaining_min.astype(np.float64), loop.carbs_6h_g, loop.cob_g,
                loop.last_carbs_age_min, loop.last_bolus_age_min, settings.enable_smb, out)
    return out


def oref0_profile(loop: LoopInput, settings: Oref0Settings) -> Oref0Profile:
    """oref0's profile from the pump's schedules and limits."""
    s, lim = loop.schedules, loop.limits
    return Oref0Profile(
        current_basal_u_per_h=s.basal_u_per_h, sens_mgdl_per_u=s.isf_mgdl_per_u,
        carb_ratio_g_per_u=s.cr_g_per_u,
        min_bg_mgdl=s.target_low_mgdl, max_bg_mgdl=s.target_high_mgdl, max_iob_u=lim.max_iob_u,
        max_basal_u_per_h=lim.max_basal_u_per_h, enable_uam=settings.enable_uam,
        enable_smb_with_cob=settings.enable_smb, enable_smb_after_carbs=settings.enable_smb,
        bolus_increment_u=0.05)


def oref0_view(loop: LoopInput, settings: Oref0Settings) -> tuple[Oref0State, Oref0Profile]:
    """oref0's inputs for every patient at this decision, as the real oref0 gets them."""
    ins = loop.insulin
    state = state_from_packed(packed_state(loop, settings), ins.iob_u, ins.activity_u_per_min,
                              ins.zero_temp_iob_u, ins.zero_temp_activity_u_per_min)
    return state, oref0_profile(loop, settings)


def loop_output(decision: Oref0Decision, record_predictions: bool) -> LoopOutput:
    """oref0's answer as the engine's: a new temp where enacted (a zero duration cancels)."""
    duration = np.where(decision.enacted, np.where(decision.duration_min > 0, decision.duration_min,
                                                   CANCEL_TEMP), 0.0)
    predicted = decision.pred_iob_mgdl if record_predictions else np.empty((len(duration), 0))
    return LoopOutput(decision.rate_u_per_h, duration, decision.smb_u, decision.reason, predicted)


class Oref0Controller:
    """The compiled oref0 port (`simulators.controllers.oref0`), one call for all patients."""

    name = "oref0"
    closes_loop = True
    dia_h = 5.0
    peak_min = 75.0  # oref0's rapid-acting exponential curve
    reasons = Oref0Reason

    def __init__(self, settings: Oref0Settings = Oref0Settings()) -> None:
        self.settings = settings
        self._packed: tuple[Schedules, np.ndarray] | None = None

    def decide(self, loop: LoopInput) -> LoopOutput:
        if self._packed is None or self._packed[0] is not loop.schedules:  # the same pump: pack once
            self._packed = (loop.schedules, pack_profile(oref0_profile(loop, self.settings), len(loop.cob_g)))
        ins = loop.insulin
        decision = determine_basal_packed(packed_state(loop, self.settings), self._packed[1], ins.iob_u,
                                          ins.activity_u_per_min, ins.zero_temp_activity_u_per_min,
                                          self.settings.record_predictions)
        return loop_output(decision, self.settings.record_predictions)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Stateless (autosens is off): nothing to restore."""


class ReferenceReason(IntEnum):
    """The real oref0's answers, by what they do (its reason is prose)."""

    KEEP = 0  # no new temp: the running one continues
    TEMP = 1  # a new temp basal (or a cancel)
    SUSPEND = 2  # a zero temp


class Oref0ReferenceController:
    """The real oref0 0.7.1 in a long-lived Node worker, fed this shard's patients in batches.

    The worker starts with the controller, so a machine without Node or the oref0 package fails
    at once (`Oref0ReferenceError`), not period by period. A decision oref0 throws on comes back
    with a nan rate, which the engine counts as a failure for that patient; a worker that dies or
    times out fails the whole period and is restarted at the next one. Slow (per-patient JSON):
    run it over patient shards as Ray tasks or actors, and `close` it.
    """

    name = "oref0_reference"
    closes_loop = True
    dia_h = Oref0Controller.dia_h
    peak_min = Oref0Controller.peak_min
    reasons = ReferenceReason

    def __init__(self, settings: Oref0Settings = Oref0Settings(), timeout_s: float = 60.0,
                 batch: int = 500) -> None:
        self.settings, self.timeout_s, self.batch = settings, timeout_s, batch
        self._worker: Oref0Reference | None = Oref0Reference(timeout_s=timeout_s)

    def decide(self, loop: LoopInput) -> LoopOutput:
        state, profile = oref0_view(loop, self.settings)
        n = len(loop.cob_g)
        if self._worker is None or self._worker.pid is None:
            self._worker = Oref0Reference(timeout_s=self.timeout_s)
        results: list[dict] = []
        for start in range(0, n, self.batch):
            results += self._worker.run([oref0_inputs(state, profile, i)
                                         for i in range(start, min(n, start + self.batch))])
        rate, duration, bolus = np.zeros(n), np.zeros(n), np.zeros(n)
        reason = np.full(n, ReferenceReason.KEEP, np.int8)
        for i, r in enumerate(results):
            if "error" in r:
                rate[i] = np.nan
            elif "rate" in r and "duration" in r:
                rate[i] = r["rate"]
                duration[i] = r["duration"] if r["duration"] > 0 else CANCEL_TEMP
                reason[i] = ReferenceReason.SUSPEND if r["rate"] == 0 and r["duration"] > 0 \
                    else ReferenceReason.TEMP
            bolus[i] = float(r.get("units", 0.0))
        return LoopOutput(rate, duration, bolus, reason, np.empty((n, 0)))

    def close(self) -> None:
        """Stop the Node worker (by its process id)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Stateless: nothing to restore."""
