"""Open-loop therapy as a controller: the scheduled basal and the patient's own boluses.

It never changes what the pump delivers, so the engine runs it without decision periods
(``closes_loop`` is False): the result is the open-loop simulation itself, bit for bit.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from simulators.controllers.interface import LoopInput, LoopOutput


class BasalBolusReason(IntEnum):
    SCHEDULED = 0  # the scheduled basal runs


class BasalBolus:
    """Fixed basal plus carb-ratio boluses (simglucose's BBController, with patient habits)."""

    name = "basal_bolus"
    closes_loop = False
    dia_h = 5.0
    peak_min = 75.0
    reasons = BasalBolusReason

    def decide(self, loop: LoopInput) -> LoopOutput:
        return LoopOutput.keep(len(loop.cob_g), BasalBolusReason.SCHEDULED)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Stateless: nothing to restore."""
