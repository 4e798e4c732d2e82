"""Counter-based random numbers keyed by (seed, patient, stream, counter).

Every random draw in the simulator is a pure function of those four integers, so a
patient's trajectory is bit-identical however the population is sharded, batched or
resumed from a checkpoint: there is no generator state to carry or split. The mixer is
the splitmix64 finaliser (a bijection on 64-bit words), chained over the key parts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, vectorize

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0

# Stream ids: one per independent random process, so draws never collide.
MEAL_TIME = 1
MEAL_AMOUNT = 2
MEAL_PRESENT = 3
BOLUS_MISS = 4
BOLUS_DELAY = 5
SENSOR_NOISE = 6
SENSOR_DROPOUT = 7
SENSOR_DRIFT = 8
SENSOR_STAGGER = 9
POPULATION = 10
BEHAVIOUR_PATIENT = 40  # each patient's habits (simulators.behaviour), counter = parameter
CARB_COUNT = 41
HABIT_MISS = 42
HABIT_LATE = 43
CORRECTION_CHECK = 44
SENSITIVITY_DAY = 45
EXERCISE_DAY = 46  # counters 2*day (is there a session?) and 2*day+1 (its hour)
RESCUE_OVERTREAT = 101  # hypo treatment, drawn inside the kernel
RESCUE_NIGHT_DELAY = 102


@njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def hash4(seed: int, key: int, stream: int, counter: int) -> np.uint64:
    """64 random bits determined by the four integers."""
    h = _mix(np.uint64(seed) + _GOLDEN)
    h = _mix(h ^ np.uint64(key))
    h = _mix(h ^ (np.uint64(stream) * _GOLDEN))
    return _mix(h ^ np.uint64(counter))


@njit(cache=True)
def uniform_scalar(seed: int, key: int, stream: int, counter: int) -> float:
    """Uniform draw in the open interval (0, 1)."""
    return ((hash4(seed, key, stream, counter) >> np.uint64(11)) + 0.5) * _INV_2_53


@njit(cache=True)
def normal_scalar(seed: int, key: int, stream: int, counter: int) -> float:
    """Standard normal draw (Box-Muller on two uniforms of the same counter)."""
    u1 = uniform_scalar(seed, key, stream, 2 * counter)
    u2 = uniform_scalar(seed, key, stream, 2 * counter + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@vectorize(["float64(int64, int64, int64, int64)"], cache=True)
def uniform(seed, key, stream, counter):  # noqa: D103 - numpy ufunc
    return uniform_scalar(seed, key, stream, counter)


@vectorize(["float64(int64, int64, int64, int64)"], cache=True)
def normal(seed, key, stream, counter):  # noqa: D103 - numpy ufunc
    return normal_scalar(seed, key, stream, counter)


uniform.__doc__ = "Vectorised `uniform_scalar`: broadcasts (seed, key, stream, counter)."
normal.__doc__ = "Vectorised `normal_scalar`: broadcasts (seed, key, stream, counter)."
