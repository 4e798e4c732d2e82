"""A Gymnasium-style policy in the closed loop: what it observes, what the pump delivers."""

from __future__ import annotations

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from simulators.controllers.policy import observations
from simulators.scenario import parse_scenario

PATIENTS = ["adult#001", "adolescent#002", "child#003"]
SEEN: list[np.ndarray] = []


def one_unit_an_hour(obs: np.ndarray) -> np.ndarray:
    """A callable policy: 1 U/h whatever it sees (and it keeps what it saw)."""
    SEEN.append(obs)
    return np.ones(len(obs))


class HalfOfGlucose:
    """An SB3-like agent: predict() -> (actions (N, 1), state); rate = G / 100 U/h."""

    def predict(self, obs: np.ndarray, deterministic: bool = True):
        assert deterministic
        return obs[:, -1:] / 100.0, None


HALF_OF_GLUCOSE = HalfOfGlucose()


def _run(policy: str, hours: int = 6):
    scenario = parse_scenario({"duration_min": hours * 60, "patients": PATIENTS, "seed": 4,
                               "sensor": {"model": "dexcom_g6"},
                               "therapy": {"controller": {"algorithm": "policy", "policy": policy,
                                                          "history": 6}}})
    sim = scenario.build()
    steps = list(sim.run(scenario.duration_min))
    return sim, steps


def test_observation_is_the_envs_window_with_gaps_filled():
    cgm = np.array([[np.nan, 100.0, np.nan, 120.0],
                    [np.nan, np.nan, np.nan, np.nan],
                    [90.0, np.nan, np.nan, np.nan]])
    obs = observations(cgm, 3)
    assert obs.dtype == np.float32 and obs.shape == (3, 3)
    assert obs[0].tolist() == [100.0, 100.0, 120.0]
    assert obs[1].tolist() == [0.0, 0.0, 0.0]
    assert obs[2].tolist() == [90.0, 90.0, 90.0]  # the reading before the window still holds


def test_a_callable_policy_sets_the_rate_once_the_sensor_reads():
    SEEN.clear()
    sim, steps = _run("tests.test_policy:one_unit_an_hour")
    rate = np.concatenate([s.decisions.basal_u_per_h for s in steps], axis=1)
    glucose = np.concatenate([s.decisions.glucose_mgdl for s in steps], axis=1)
    reading = ~np.isnan(glucose)
    assert sim.loop.counts.failures == 0 and len(SEEN) == 6 * 12
    assert SEEN[0].shape == (3, 6) and not SEEN[0].any()  # G6 warm-up: nothing seen yet
    low = glucose < 70
    cap = np.floor(sim.loop.limits.max_basal_u_per_h / 0.05 + 1e-9) * 0.05
    expect = np.broadcast_to(np.minimum(1.0, cap)[:, None], rate.shape)
    assert np.allclose(rate[reading & ~low], expect[reading & ~low])
    assert np.all(rate[low] == 0.0)  # the suspend wins


def test_an_sb3_style_agent_is_called_through_predict():
    sim, steps = _run("tests.test_policy:HALF_OF_GLUCOSE", hours=4)
    d = steps[-1].decisions
    expect = np.floor(d.glucose_mgdl[:, -1] / 100.0 / 0.05 + 1e-9) * 0.05
    cap = sim.loop.limits.max_basal_u_per_h
    assert np.allclose(d.basal_u_per_h[:, -1], np.minimum(expect, np.floor(cap / 0.05 + 1e-9) * 0.05))


@pytest.mark.parametrize("path, words", [("nowhere", "module:attribute"),
                                         ("tests.test_policy:missing", "cannot load"),
                                         ("tests.test_policy:PATIENTS", "neither callable")])
def test_a_policy_that_cannot_be_used_is_named(path, words):
    with pytest.raises(ConfigError) as err:
        parse_scenario({"duration_min": 60, "patients": PATIENTS,
                        "therapy": {"controller": {"algorithm": "policy", "policy": path}}})
    assert "policy" in err.value.field and words in str(err.value)
