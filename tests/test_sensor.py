"""The CGM sensor model: noise statistics, sampling, life cycle, flags and dropouts."""

from __future__ import annotations

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from simulators import sensor as sensors
from simulators.sensor import SensorState, get_sensor


def _read(spec, gsub, seed=0, staggered=False, t0=0):
    keys = np.arange(1, gsub.shape[0] + 1, dtype=np.int64)
    state = SensorState.new(spec, keys, seed, staggered)
    return sensors.sample(spec, state, gsub, t0, keys, seed)


def test_noise_matches_the_published_statistics():
    """Johnson-transform noise: mean ~+0.9, SD ~11.7 mg/dL, lag-1 ~0.69 at 15 min."""
    n_sensors, minutes = 400, 15 * 400
    flat = np.full((n_sensors, minutes), 120.0)
    r = _read(get_sensor("guardian_rt"), flat)
    err = (r.glucose_mgdl.astype(float) - 120.0).reshape(n_sensors, -1)
    err15 = err[:, ::3]  # every 15 min
    lag1 = np.mean([np.corrcoef(e[:-1], e[1:])[0, 1] for e in err15])
    assert abs(err.mean() - 0.9) < 0.6, err.mean()
    assert abs(err.std() - 11.7) < 1.0, err.std()
    assert abs(lag1 - 0.69) < 0.05, lag1


@pytest.mark.parametrize("name, period", [("libre3", 1), ("dexcom", 3), ("dexcom_g6", 5),
                                          ("libre2_history", 15)])
def test_sample_period_and_warmup(name, period):
    spec = get_sensor(name, dropout_per_hour=0.0)
    r = _read(spec, np.full((3, 600), 150.0))
    per_patient = r.minute[r.patient == 0]
    assert per_patient[0] == spec.warmup_min
    assert set(np.diff(per_patient)) == {period}


def test_ideal_sensor_is_exact_every_minute():
    gsub = np.linspace(80, 250, 2 * 90).reshape(2, 90)
    r = _read(get_sensor("ideal"), gsub)
    np.testing.assert_allclose(r.glucose_mgdl, gsub.ravel().astype(np.float32))


def test_expiry_replaces_the_sensor_with_a_new_session_and_warmup():
    spec = get_sensor("dexcom_g6", dropout_per_hour=0.0)
    life, warm = spec.life_min, spec.warmup_min
    r = _read(spec, np.full((1, life + 300), 120.0))
    assert set(r.session) == {0, 1}
    second = r.minute[r.session == 1]
    assert second[0] == life + warm
    assert not np.any((r.minute >= life) & (r.minute < life + warm))


def test_low_and_high_are_flagged_at_the_reporting_limits():
    spec = get_sensor("dexcom_g6", dropout_per_hour=0.0, warmup_min=0, noise=False)
    gsub = np.array([[30.0] * 10, [500.0] * 10, [120.0] * 10])
    r = _read(spec, gsub)
    assert set(r.range_flag[r.patient == 0]) == {-1} and set(r.glucose_mgdl[r.patient == 0]) == {40}
    assert set(r.range_flag[r.patient == 1]) == {1} and set(r.glucose_mgdl[r.patient == 1]) == {400}
    assert set(r.range_flag[r.patient == 2]) == {0}


def test_dropouts_leave_gaps_at_the_configured_rate():
    spec = get_sensor("dexcom_g6", warmup_min=0, life_min=0, dropout_per_hour=0.05,
                      dropout_mean_min=30.0)
    minutes = 20 * 1440
    r = _read(spec, np.full((50, minutes), 120.0))
    expected = 50 * minutes // 5
    lost = 1 - len(r) / expected
    # ~0.05 episodes/h x ~32 min each: about 2.6 % of readings missing
    assert 0.01 < lost < 0.06, lost


def test_bad_sensor_settings_name_the_field():
    with pytest.raises(ConfigError, match="sensor.sample_min"):
        get_sensor("dexcom_g6", sample_min=7)
    with pytest.raises(ConfigError, match="sensor.model"):
        get_sensor("nosuch")
