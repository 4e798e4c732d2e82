"""Gymnasium environments: the official checker, reproducible resets, the vector env."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from simulators.gym_env import ENV_ID


def test_env_passes_the_gymnasium_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gym.make(ENV_ID, patient="adolescent#002").unwrapped)


def test_reset_with_seed_is_reproducible_and_seeds_differ():
    env = gym.make(ENV_ID)
    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(60):
            obs, *_ = env.step(np.array([1.0], np.float32))
            out.append(obs)
        return np.array(out)
    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def test_vector_env_steps_all_patients_and_autoresets():
    env = gym.make_vec(ENV_ID, num_envs=6, vectorization_mode="vector_entry_point",
                       episode_min=60)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (6, 12)
    truncated_seen = False
    for _ in range(14):
        obs, reward, terminated, truncated, info = env.step(
            np.full((6, 1), 1.0, np.float32))
        assert obs.shape == (6, 12) and reward.shape == (6,)
        truncated_seen |= bool(truncated.all())
    assert truncated_seen
    assert np.all((info["bg_mgdl"] > 40) & (info["bg_mgdl"] < 400))
