"""The physiology-model contract: parameters in, derivatives out, a basal steady state.

A model is a scalar numba right-hand side plus two output functions (interstitial and
plasma glucose); ``simulators.integrator.make_advance`` compiles them into the parallel
chunk kernel the engine calls. Models differ only here, so every model runs through the
same engine, sensor, therapy and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulators.population import Cohort



@dataclass(frozen=True)
class PhysiologyModel:
    """One glucose-insulin model, ready to integrate."""

    name: str
    state_names: tuple[str, ...]
    param_names: tuple[str, ...]
    advance: Callable  # see simulators.integrator.make_advance
    build_params: Callable[[Cohort], dict[str, np.ndarray]]
    initial_state: Callable[[Cohort], np.ndarray]
    basal_u_per_min: Callable[[dict[str, np.ndarray]], np.ndarray]

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    def param_matrix(self, cohort: Cohort) -> np.ndarray:
        """Per-patient parameter rows [N, P] in the kernel's column order."""
        params = self.build_params(cohort)
        return np.ascontiguousarray(np.stack([params[k] for k in self.param_names], axis=1),
                                    dtype=np.float64)
