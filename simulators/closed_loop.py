"""The loop around N patients: what the AID system knows, its decisions, and what the pump delivers.

Every 5-min period the engine asks `ClosedLoop.start_period` for the period's basal rates and
boluses and reports back with `end_period`. In between, the controller sees only what a real
system would: CGM readings (with sensor noise, dropouts and warm-up), its own pump history, the
carbs the patient entered (their estimate, only for meals they bolused) and its insulin model.

Safety that real AID systems have is enforced here, whatever the controller answers:
- a controller that raises or answers in the wrong shape falls back to the scheduled basal for the
  period (no temp, no automatic bolus); each such period is counted in ``failures``;
- low-glucose suspend: below ``limits.suspend_below_mgdl`` no basal and no automatic bolus;
- max IOB: with insulin on board at the limit no more than the scheduled basal, and automatic
  boluses only up to the limit;
- the pump's own increments and max basal/bolus (`simulators.pump`).

The patient's own boluses go through the pump's bolus wizard: the carb part as they counted it,
plus (when they correct) (CGM - target)/ISF minus positive insulin on board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.controllers.insulin import InsulinModel, InsulinTracker
from simulators.controllers.interface import (
    HISTORY_SLOTS,
    NEVER_MIN,
    PERIOD_MIN,
    Controller,
    Limits,
    LoopInput,
    LoopOutput,
    Schedules,
)
from simulators.integrator import CF_MGDL_PER_U, CORRECT_ABOVE_MGDL, TARGET_MGDL
from simulators.pump import Pump, PumpSpec
from simulators.sensor import Readings
from simulators.therapy import BolusEvents

MIN_CARB_IMPACT_MGDL_PER_5MIN = 8.0  # oref0's min_5m_carbimpact: the slowest carb absorption


class SlotHistory:
    """The last ``slots`` values per patient, oldest first, as a zero-copy view.

    Each value is written twice into a buffer of twice the length, so the window ending at the
    newest slot is always one contiguous slice.
    """

    def __init__(self, n: int, slots: int = HISTORY_SLOTS, fill: float = 0.0) -> None:
        self.slots = slots
        self.buffer = np.full((n, 2 * slots), fill)
        self.head = 0

    def push(self, values: np.ndarray) -> None:
        self.buffer[:, self.head] = values
        self.buffer[:, self.head + self.slots] = values
        self.head = (self.head + 1) % self.slots

    def view(self) -> np.ndarray:
        return self.buffer[:, self.head:self.head + self.slots]


@dataclass
class LoopCounts:
    """What the safety layer did, in patient-periods."""

    periods: int = 0
    failures: int = 0  # controller raised or answered wrongly: scheduled basal instead
    suspends: int = 0  # low-glucose suspend overrode the controller
    iob_limited: int = 0  # max IOB cut a temp or an automatic bolus


@dataclass(frozen=True)
class Decisions:
    """The loop's decisions in a step: one column per period (``minute`` (P,), the rest (N, P))."""

    minute: np.ndarray
    glucose_mgdl: np.ndarray  # the CGM value the decision saw (nan: none)
    basal_u_per_h: np.ndarray  # the rate the pump ran in the period
    auto_bolus_u: np.ndarray  # automatic bolus (SMB) delivered at the period's start
    reason: np.ndarray  # int8, the controller's reason code
    fallback: np.ndarray  # bool: the controller failed, scheduled basal ran
    iob_u: np.ndarray
    cob_g: np.ndarray

    @staticmethod
    def concat(parts: list[Decisions]) -> Decisions:
        return Decisions(*(np.concatenate([getattr(p, k) for p in parts], axis=-1)
                           for k in vars(parts[0])))


@dataclass(frozen=True)
class _Period:
    """What ``start_period`` decided, kept for ``end_period``."""

    minute: int
    rate_u_per_h: np.ndarray
    auto_bolus_u: np.ndarray
    announced_g: np.ndarray
    glucose_mgdl: np.ndarray
    reason: np.ndarray
    fallback: np.ndarray
    iob_u: np.ndarray


class ClosedLoop:
    """A controller, its pump and its view of N patients, advanced one period at a time."""

    def __init__(self, controller: Controller, schedules: Schedules, limits: Limits,
                 pump: PumpSpec = PumpSpec()) -> None:
        n = len(schedules.basal_u_per_h)
        self.controller, self.schedules, self.limits = controller, schedules, limits
        self.pump = Pump.new(pump, n)
        model = InsulinModel(controller.dia_h, controller.peak_min)
        self.insulin = InsulinTracker.new(model, schedules.basal_u_per_h)
        self.cgm = SlotHistory(n, fill=np.nan)
        self.delivered = SlotHistory(n)
        self.boluses = SlotHistory(n)
        self.carbs = SlotHistory(n)
        self.cob_g = np.zeros(n)
        self.carbs_6h_g = np.zeros(n)
        self.last_bolus_minute = np.full(n, -NEVER_MIN)
        self.last_carbs_minute = np.full(n, -NEVER_MIN)
        self.last_reading_minute = np.full(n, -int(NEVER_MIN), np.int64)
        self.counts = LoopCounts()
        self._absorb_g = MIN_CARB_IMPACT_MGDL_PER_5MIN * schedules.cr_g_per_u / schedules.isf_mgdl_per_u
        self._period: _Period | None = None

    def __len__(self) -> int:
        return len(self.cob_g)

    def loop_input(self, minute: int) -> LoopInput:
        """What the AID system knows at ``minute`` (the start of a period)."""
        basal = self.schedules.basal_u_per_h
        return LoopInput(
            minute=minute, cgm_mgdl=self.cgm.view(),
            cgm_age_min=minute - self.last_reading_minute,
            delivered_u=self.delivered.view(), bolus_u=self.boluses.view(),
            temp_rate_u_per_h=self.pump.rate_u_per_h(minute, basal),
            temp_remaining_min=self.pump.remaining_min(minute),
            insulin=self.insulin.on_board(), announced_carbs_g=self.carbs.view(),
            carbs_6h_g=self.carbs_6h_g, cob_g=self.cob_g,
            last_bolus_age_min=np.minimum(minute - self.last_bolus_minute, NEVER_MIN),
            last_carbs_age_min=np.minimum(minute - self.last_carbs_minute, NEVER_MIN),
            schedules=self.schedules, limits=self.limits)

    def _decide(self, loop: LoopInput) -> tuple[LoopOutput, np.ndarray]:
        """The controller's answer, or the scheduled basal where it failed (second value)."""
        n = len(self)
        try:
            out = self.controller.decide(loop)
            shapes = {a.shape for a in (out.temp_rate_u_per_h, out.temp_duration_min, out.bolus_u,
                                        out.reason)}
            if shapes != {(n,)}:
                raise ValueError(f"{self.controller.name} answered shapes {shapes}, not ({n},)")
            bad = ~(np.isfinite(out.temp_rate_u_per_h) & np.isfinite(out.temp_duration_min)
                    & np.isfinite(out.bolus_u))
        except Exception:  # noqa: BLE001 - any controller bug is contained and counted
            out, bad = LoopOutput.keep(n, -1), np.ones(n, bool)
        if bad.any():
            self.counts.failures += int(bad.sum())
            self.pump.cancel_temps(bad)
            out = LoopOutput(np.where(bad, 0.0, out.temp_rate_u_per_h),
                             np.where(bad, 0.0, out.temp_duration_min),
                             np.where(bad, 0.0, out.bolus_u), np.where(bad, -1, out.reason).astype(np.int8),
                             out.predicted_mgdl)
        return out, bad

    def start_period(self, minute: int, patient_boluses: BolusEvents, therapy_rows: np.ndarray
                     ) -> tuple[np.ndarray, BolusEvents]:
        """Decide at ``minute``: the basal U/min of the period and every bolus to deliver in it."""
        loop = self.loop_input(minute)
        out, fallback = self._decide(loop)
        glucose = loop.glucose_mgdl
        iob_u = loop.insulin.iob_u[:, 0]
        scheduled = self.schedules.basal_u_per_h
        self.pump.set_temps(minute, out.temp_rate_u_per_h, out.temp_duration_min,
                            self.limits.max_basal_u_per_h)
        rate = self.pump.rate_u_per_h(minute, scheduled)
        auto_bolus = self.pump.bolus_u(out.bolus_u, self.limits.max_bolus_u)
        # Safety: low-glucose suspend, then max IOB (a missing reading suspends nothing).
        low = glucose < self.limits.suspend_below_mgdl
        self.counts.suspends += int((low & ((rate > 0) | (auto_bolus > 0))).sum())
        rate = np.where(low, 0.0, rate)
        auto_bolus = np.where(low, 0.0, auto_bolus)
        room_u = np.maximum(self.limits.max_iob_u - iob_u, 0.0)
        over = (auto_bolus > room_u) | ((iob_u >= self.limits.max_iob_u) & (rate > scheduled))
        self.counts.iob_limited += int(over.sum())
        auto_bolus = np.minimum(auto_bolus, self.pump.deliverable_u(room_u, self.limits.max_bolus_u))
        rate = np.where(iob_u >= self.limits.max_iob_u, np.minimum(rate, scheduled), rate)
        self.counts.periods += len(self)

        wizard = self._bolus_wizard(patient_boluses, glucose, iob_u, therapy_rows)
        auto = np.nonzero(auto_bolus > 0)[0]
        patient = np.concatenate([wizard.patient, auto])
        when = np.concatenate([wizard.minute, np.full(len(auto), minute, np.int64)])
        order = np.lexsort((when, patient))
        units = np.concatenate([wizard.units, auto_bolus[auto]])
        delivered = BolusEvents(patient[order], when[order], units[order], np.zeros(len(order), bool))
        carb_part = patient_boluses.units
        announced = np.bincount(patient_boluses.patient, carb_part * self.schedules.cr_g_per_u[
            patient_boluses.patient], minlength=len(self))
        self._period = _Period(minute, rate, auto_bolus, announced, glucose, out.reason, fallback, iob_u)
        return rate / 60.0, delivered

    def _bolus_wizard(self, boluses: BolusEvents, glucose: np.ndarray, iob_u: np.ndarray,
                      therapy_rows: np.ndarray) -> BolusEvents:
        """The patient's boluses as the pump computes them: counted carbs, plus IOB-aware corrections."""
        row = boluses.patient
        g = glucose[row]
        correct = boluses.correct & (g > therapy_rows[row, CORRECT_ABOVE_MGDL])
        correction = np.where(correct, (g - therapy_rows[row, TARGET_MGDL]) / therapy_rows[row, CF_MGDL_PER_U]
                              - np.maximum(iob_u[row], 0.0), 0.0)
        units = self.pump.bolus_u(boluses.units + np.maximum(correction, 0.0), self.limits.max_bolus_u[row])
        keep = units > 0
        return BolusEvents(row[keep], boluses.minute[keep], units[keep], np.zeros(int(keep.sum()), bool))

    def end_period(self, readings: Readings, delivered: BolusEvents) -> Decisions:
        """Record the period just simulated: its readings, deliveries and announced carbs."""
        p = self._period
        assert p is not None, "end_period without start_period"
        n = len(self)
        newest = np.full(n, np.nan)
        if len(readings):  # readings are sorted by patient then minute: keep each one's last
            last = np.r_[readings.patient[1:] != readings.patient[:-1], True]
            newest[readings.patient[last]] = readings.glucose_mgdl[last]
            self.last_reading_minute[readings.patient[last]] = readings.minute[last]
        self.cgm.push(newest)
        bolus = np.bincount(delivered.patient, delivered.units, minlength=n)
        self.boluses.push(bolus)
        self.delivered.push(p.rate_u_per_h * PERIOD_MIN / 60.0 + bolus)
        self.insulin.add_period((p.rate_u_per_h - self.schedules.basal_u_per_h) * PERIOD_MIN / 60.0 + bolus)
        self.carbs_6h_g += p.announced_g - self.carbs.view()[:, 0]  # the oldest slot leaves the window
        self.carbs.push(p.announced_g)
        middle = p.minute + PERIOD_MIN / 2
        self.last_bolus_minute[bolus > 0] = middle
        self.last_carbs_minute[p.announced_g > 0] = middle
        cob = self.cob_g.copy()
        self.cob_g = np.maximum(self.cob_g - self._absorb_g, 0.0) + p.announced_g
        self._period = None
        col = np.newaxis
        return Decisions(np.array([p.minute]), p.glucose_mgdl[:, col], p.rate_u_per_h[:, col],
                         p.auto_bolus_u[:, col], p.reason[:, col], p.fallback[:, col], p.iob_u[:, col],
                         cob[:, col])

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything the loop carries between periods (for checkpoints)."""
        state = {f"pump_{k}": v for k, v in self.pump.state_dict().items()}
        state |= {f"controller_{k}": v for k, v in self.controller.state_dict().items()}
        for name in ("cgm", "delivered", "boluses", "carbs"):
            history: SlotHistory = getattr(self, name)
            state[f"{name}_buffer"] = history.buffer.copy()
            state[f"{name}_head"] = np.array(history.head)
        c = self.counts
        return state | {"future_iob_u": self.insulin.future_iob_u.copy(),
                        "future_activity": self.insulin.future_activity_u_per_min.copy(),
                        "cob_g": self.cob_g.copy(), "carbs_6h_g": self.carbs_6h_g.copy(),
                        "last_bolus_minute": self.last_bolus_minute.copy(),
                        "last_carbs_minute": self.last_carbs_minute.copy(),
                        "last_reading_minute": self.last_reading_minute.copy(),
                        "counts": np.array([c.periods, c.failures, c.suspends, c.iob_limited])}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Resume from ``state_dict()``'s output."""
        self.pump.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("pump_")})
        self.controller.load_state_dict({k[11:]: v for k, v in state.items()
                                         if k.startswith("controller_")})
        for name in ("cgm", "delivered", "boluses", "carbs"):
            history: SlotHistory = getattr(self, name)
            history.buffer = np.array(state[f"{name}_buffer"], dtype=np.float64)
            history.head = int(state[f"{name}_head"])
        self.insulin.future_iob_u = np.array(state["future_iob_u"], dtype=np.float64)
        self.insulin.future_activity_u_per_min = np.array(state["future_activity"], dtype=np.float64)
        self.insulin.refresh()
        self.cob_g = np.array(state["cob_g"], dtype=np.float64)
        self.carbs_6h_g = np.array(state["carbs_6h_g"], dtype=np.float64)
        self.last_bolus_minute = np.array(state["last_bolus_minute"], dtype=np.float64)
        self.last_carbs_minute = np.array(state["last_carbs_minute"], dtype=np.float64)
        self.last_reading_minute = np.array(state["last_reading_minute"], dtype=np.int64)
        self.counts = LoopCounts(*(int(v) for v in state["counts"]))
