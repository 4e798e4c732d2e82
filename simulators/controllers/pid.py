"""A PID controller on CGM glucose, in units of correction insulin, with insulin feedback.

The error is the CGM distance to target in units of insulin, ``e = (G - target) / ISF``, so one
set of gains suits every patient. Every 5 min it sets a 30-min temp basal of

    scheduled basal + kp * e + ki * integral(e dt) + kd * de/dt - kf * IOB   (U/h)

The insulin-feedback term (``kf``; Steil's ePID and Medtronic's PID-IFB use the same idea)
subtracts the net insulin on board, so a correction already given is not given again; the
integral is clamped (anti-windup) and frozen while the rate sits at a limit. The engine adds
low-glucose suspend and max IOB on top (`simulators.closed_loop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from simulators.controllers.interface import PERIOD_MIN, LoopInput, LoopOutput

TEMP_MIN = 30  # each decision sets a 30-min temp; the next one, 5 min later, replaces it


class PidReason(IntEnum):
    NO_CGM = 0  # no reading in the last period: the running temp continues
    TEMP = 1  # a temp between zero and the max basal
    ZERO = 2  # the PID asks for less than nothing: zero temp
    AT_MAX = 3  # the PID asks for more than the max basal


@dataclass(frozen=True)
class PidGains:
    """Gains per hour on the correction error (U of insulin); defaults sized on the reference cohort."""

    kp_per_h: float = 0.5
    ki_per_h2: float = 0.05
    kd: float = 0.5  # hours: U/h of rate per U/h of error change
    kf_per_h: float = 0.5
    integral_limit_u_h: float = 2.0


class Pid:
    """A vectorised PID over N patients; its integral is the state it carries."""

    name = "pid"
    closes_loop = True
    dia_h = 5.0
    peak_min = 75.0
    reasons = PidReason

    def __init__(self, gains: PidGains = PidGains()) -> None:
        self.gains = gains
        self.integral_u_h: np.ndarray | None = None

    def decide(self, loop: LoopInput) -> LoopOutput:
        g = self.gains
        n = len(loop.cob_g)
        if self.integral_u_h is None:
            self.integral_u_h = np.zeros(n)
        s = loop.schedules
        glucose = loop.glucose_mgdl
        seen = ~np.isnan(glucose)
        error_u = np.where(seen, (glucose - s.target_low_mgdl) / s.isf_mgdl_per_u, 0.0)
        previous = loop.cgm_mgdl[:, -2]
        slope_u_per_h = np.where(seen & ~np.isnan(previous),
                                 (glucose - previous) / PERIOD_MIN * 60.0 / s.isf_mgdl_per_u, 0.0)
        rate = (s.basal_u_per_h + g.kp_per_h * error_u + g.ki_per_h2 * self.integral_u_h
                + g.kd * slope_u_per_h - g.kf_per_h * loop.insulin.iob_u[:, 0])
        cap = loop.limits.max_basal_u_per_h
        inside = seen & (rate > 0) & (rate < cap)  # anti-windup: integrate only off the limits
        self.integral_u_h = np.clip(self.integral_u_h + np.where(inside, error_u * PERIOD_MIN / 60.0, 0.0),
                                    -g.integral_limit_u_h, g.integral_limit_u_h)
        reason = np.select([~seen, rate <= 0, rate >= cap], [PidReason.NO_CGM, PidReason.ZERO,
                                                            PidReason.AT_MAX], PidReason.TEMP)
        return LoopOutput(np.clip(rate, 0.0, cap), np.where(seen, float(TEMP_MIN), 0.0), np.zeros(n),
                          reason.astype(np.int8), np.empty((n, 0)))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self.integral_u_h is None else {"integral_u_h": self.integral_u_h.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.integral_u_h = np.array(state["integral_u_h"]) if "integral_u_h" in state else None
