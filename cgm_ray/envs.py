"""Gymnasium registration of the cgm-ray environments (done on ``import cgm_ray``)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "cgm_ray/T1D-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="simulators.gym_env:T1DEnv",
                 vector_entry_point="simulators.gym_env:T1DVectorEnv")
