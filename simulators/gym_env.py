"""Gymnasium environments for insulin-dosing control research.

``T1DEnv`` is one virtual patient; ``T1DVectorEnv`` steps many patients in one compiled
call (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``).

- Action: insulin delivery rate in U/h over the next step (Box [0, max_insulin_u_per_h]).
- Observation: the last ``history`` CGM readings in mg/dL, oldest first (float32); a
  missing reading (dropout) repeats the previous one.
- Reward: minus Kovatchev's risk index of plasma glucose at the end of the step,
  r(G) = 10*(1.509*((ln G)^1.084 - 5.381))^2: 0 at 112.5 mg/dL, ~100 at 20 or 600 mg/dL,
  so the best policy keeps glucose near 112.5 mg/dL without lows.
- Terminated when plasma glucose leaves [20, 600] mg/dL; truncated after
  ``episode_min`` simulated minutes.
- Meals: seeded random daily meals (simglucose's distribution); carbohydrate eaten during
  the step is in ``info["cho_g"]``. With ``auto_bolus=True`` the patient boluses CHO/CR
  for meals and the action only sets the basal rate.

Importing this module registers ``cgm_ray/T1D-v0`` (and its vector entry point). Gymnasium
1.x has no entry-point plugins, so registration is the import, as with ``ale_py``:
``import simulators.gym_env`` then ``gym.make(ENV_ID)``; or, with no import,
``gym.make("simulators.gym_env:cgm_ray/T1D-v0")``.
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from cgm_ray.glucose.risk import risk_index
from simulators.engine import Simulation
from simulators.meals import RandomDailyMeals
from simulators.models import get_model
from simulators.population import REFERENCE_NAMES, reference_cohort
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

BG_LIMITS_MGDL = (20.0, 600.0)


class T1DVectorEnv(VectorEnv):
    """``num_envs`` patients advanced together; per-env autoreset on the next step."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, patients: list[str] | None = None,
                 model: str = "uva_padova", sensor: str = "guardian_rt", step_min: int = 5,
                 history: int = 12, episode_min: int = 1440, max_insulin_u_per_h: float = 30.0,
                 auto_bolus: bool = False) -> None:
        names = list(patients) if patients else [REFERENCE_NAMES[i % len(REFERENCE_NAMES)]
                                                 for i in range(num_envs)]
        if len(names) != num_envs:
            raise ValueError(f"patients: {len(names)} names for num_envs={num_envs}")
        cohort = reference_cohort(names)
        # Distinct keys so that repeated patients still get independent noise and meals.
        self.cohort = replace(cohort, keys=cohort.keys + 1000 * np.arange(num_envs))
        self.model, self.sensor = get_model(model), get_sensor(sensor, field="sensor")
        if step_min % self.sensor.sample_min:
            raise ValueError(f"step_min: {step_min} is not a multiple of the {sensor} sample "
                             f"period ({self.sensor.sample_min} min)")
        self.num_envs, self.step_min, self.history = num_envs, step_min, history
        self.episode_min, self.auto_bolus = episode_min, auto_bolus
        self.single_observation_space = gym.spaces.Box(0.0, 600.0, (history,), np.float32)
        self.single_action_space = gym.spaces.Box(0.0, max_insulin_u_per_h, (1,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._sim: Simulation | None = None

    def _new_sim(self, seed: int) -> None:
        therapy = Therapy(basal="none", bolus="carb_ratio" if self.auto_bolus else "none")
        self._sim = Simulation(self.model, self.cohort, RandomDailyMeals(seed), therapy,
                               replace(self.sensor, warmup_min=0, life_min=0), seed=seed)
        self._basal = self.model.basal_u_per_min(self.model.build_params(self.cohort))
        self._x0 = self._sim.x.copy()
        self._cgm = np.zeros((self.num_envs, self.history), np.float32)
        self._elapsed = np.zeros(self.num_envs, np.int64)
        self._needs_reset = np.zeros(self.num_envs, bool)
        self._advance(self._basal, self.history * self.step_min)  # fill the history

    def _advance(self, insulin_u_per_min: np.ndarray, n_min: int) -> tuple[np.ndarray, np.ndarray]:
        sim = self._sim
        sim.basal_u_per_min = insulin_u_per_min
        meal_before = sim.meal_state[:, 2].copy()
        step = sim.advance(n_min, trace=True)
        r = step.readings
        for i, g in zip(r.patient, r.glucose_mgdl):  # readings in time order per patient
            self._cgm[i] = np.roll(self._cgm[i], -1)
            self._cgm[i, -1] = g
        eaten = sim.meal_state[:, 2] - meal_before
        cho = np.where(eaten >= 0, eaten, sim.meal_state[:, 2])
        return step.bg_mgdl[:, -1], cho

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._new_sim(int(self.np_random.integers(2**31)) if seed is None else seed)
        return self._cgm.copy(), {}

    def step(self, actions: np.ndarray):
        if self._sim is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        rate = np.clip(np.asarray(actions, np.float64).reshape(self.num_envs),
                       0.0, self.single_action_space.high[0]) / 60.0
        resetting = self._needs_reset.copy()
        if resetting.any():  # NEXT_STEP autoreset: these envs start over instead of acting
            self._sim.x[resetting] = self._x0[resetting]
            self._sim.meal_state[resetting] = 0.0
            rate = np.where(resetting, self._basal, rate)
            self._elapsed[resetting] = 0
        bg, cho = self._advance(rate, self.step_min)
        self._elapsed += self.step_min
        reward = np.where(resetting, 0.0, -risk_index(bg))
        terminated = ~resetting & ((bg < BG_LIMITS_MGDL[0]) | (bg > BG_LIMITS_MGDL[1]))
        truncated = ~resetting & ~terminated & (self._elapsed >= self.episode_min)
        self._needs_reset = terminated | truncated
        info = {"bg_mgdl": bg, "cho_g": cho}
        return self._cgm.copy(), reward, terminated, truncated, info


class T1DEnv(gym.Env):
    """One virtual patient (``patient`` names a reference patient); see the module doc."""

    metadata = {"render_modes": []}

    def __init__(self, patient: str = "adult#001", **kwargs) -> None:
        self._vec = T1DVectorEnv(1, [patient], **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self._vec.reset(seed=int(self.np_random.integers(2**31)) if seed is None else seed)
        return obs[0], {}

    def step(self, action):
        obs, reward, terminated, truncated, info = self._vec.step(np.asarray(action).reshape(1, 1))
        return (obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {k: float(v[0]) for k, v in info.items()})


ENV_ID = "cgm_ray/T1D-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=T1DEnv, vector_entry_point=T1DVectorEnv)
