"""Any policy in the loop: a Gymnasium-trained agent or a plain function, at cohort scale.

The policy sees what `simulators.gym_env.T1DVectorEnv` observes: the last ``history`` CGM
readings per patient, oldest first, in mg/dL (float32, (N, history)), a missing reading repeating
the one before it. It answers what the env's action is: an insulin rate in U/h per patient. So
an agent trained on the env runs unchanged over a whole cohort. The rate runs as a 30-min temp
renewed every 5 min; the patient's own meal boluses continue (the env's ``auto_bolus=True``), and
the engine's safety layer (suspend, max IOB, max basal) applies as for every controller.

A policy is a callable ``policy(observations) -> rates`` or an object with Stable-Baselines3's
``predict(observations, deterministic=True) -> (actions, state)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import IntEnum
from typing import Any

import numpy as np

from cgm_ray.errors import ConfigError
from simulators.controllers.interface import LoopInput, LoopOutput

TEMP_MIN = 30
FRESH_READING_MIN = 30  # the policy acts while its newest reading is younger than this


class PolicyReason(IntEnum):
    NO_CGM = 0  # no reading yet: the running temp continues
    RATE = 1  # the policy's rate


def load_policy(path: str, field: str = "policy") -> Callable[[np.ndarray], Any] | Any:
    """``module:attribute`` imported; a ConfigError naming ``field`` when it cannot be."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(field, f"must be 'module:attribute', got {path!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(field, f"cannot load {path!r}: {exc}") from None
    if not (callable(found) or hasattr(found, "predict")):
        raise ConfigError(field, f"{path!r} is neither callable nor has predict()")
    return found


def observations(cgm_mgdl: np.ndarray, history: int) -> np.ndarray:
    """The env's observation: the last ``history`` slots, each gap holding the reading before it.

    Gaps before a patient's first reading (sensor warm-up) are zeros, as the env starts.
    """
    seen = ~np.isnan(cgm_mgdl)
    index = np.where(seen, np.arange(cgm_mgdl.shape[1])[None, :], 0)
    np.maximum.accumulate(index, axis=1, out=index)
    filled = np.take_along_axis(cgm_mgdl, index, axis=1)[:, -history:]
    return np.nan_to_num(filled, nan=0.0).astype(np.float32)


class PolicyController:
    """A policy deciding the insulin rate of every patient from its CGM history."""

    name = "policy"
    closes_loop = True
    dia_h = 5.0
    peak_min = 75.0
    reasons = PolicyReason

    def __init__(self, policy: Callable[[np.ndarray], Any] | Any, history: int = 12) -> None:
        self.policy, self.history = policy, history

    def decide(self, loop: LoopInput) -> LoopOutput:
        n = len(loop.cob_g)
        obs = observations(loop.cgm_mgdl, self.history)
        if hasattr(self.policy, "predict"):
            actions = self.policy.predict(obs, deterministic=True)[0]
        else:
            actions = self.policy(obs)
        rate = np.asarray(actions, dtype=np.float64).reshape(n)  # a wrong shape raises: contained
        seen = ~np.isnan(loop.glucose_mgdl) | (loop.cgm_age_min < FRESH_READING_MIN)
        return LoopOutput(np.maximum(rate, 0.0), np.where(seen, float(TEMP_MIN), 0.0), np.zeros(n),
                          np.where(seen, PolicyReason.RATE, PolicyReason.NO_CGM).astype(np.int8),
                          np.empty((n, 0)))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """The policy's own state, if any, is not checkpointed: policies are taken as stateless."""
