"""Alert rules: thresholds, hysteresis, rates, AR2 forecast, staleness, snooze, expiry."""

from __future__ import annotations

import numpy as np

from cgm_ray.glucose.alerts import AlertEngine, AlertSettings, AlertType
from cgm_ray.glucose.trend import ar2_forecast, direction

T0 = 1_767_225_600_000  # 2026-01-01
MIN = 60_000


def _feed(engine, slot, values, start_min=0, step_min=5):
    out = []
    for k, g in enumerate(values):
        ts = T0 + (start_min + k * step_min) * MIN
        out += engine.evaluate(np.array([slot]), np.array([ts]), np.array([float(g)]))
    return [(e.type, e.state) for e in out]


def test_ar2_matches_the_nightscout_test_vectors():
    got = np.round(ar2_forecast([80, 100, 110, 200], [70, 85, 100, 210]))
    np.testing.assert_array_equal(got, [[64, 60, 58, 57, 56, 56], [76, 70, 67, 65, 63, 63],
                                        [94, 89, 87, 85, 84, 84], [217, 221, 224, 225, 225, 224]])


def test_trend_arrow_edges():
    assert list(direction([-3.5, -2, -1, 1, 2, 3.5, 3.6, np.nan])) == [
        "DoubleDown", "SingleDown", "FortyFiveDown", "Flat", "FortyFiveUp", "SingleUp",
        "DoubleUp", "NOT COMPUTABLE"]


def test_levels_fire_once_and_resolve_with_hysteresis():
    e = AlertEngine()
    s = e.add_slot(AlertSettings())
    events = _feed(e, s, [170, 178, 183, 190, 186, 178, 176, 174])  # slow: no rate alerts
    assert events == [(AlertType.HIGH, "fired"), (AlertType.HIGH, "resolved")]
    events = _feed(e, s, [270, 250], start_min=100)
    assert (AlertType.URGENT_HIGH, "fired") in events
    assert (AlertType.HIGH, "fired") in events  # 250 is high, no longer urgent (below 255)


def test_urgent_low_supersedes_low_and_predicted_low_fires_first():
    e = AlertEngine()
    s = e.add_slot(AlertSettings())
    events = _feed(e, s, [100, 85, 75, 62, 50])
    fired = [t for t, state in events if state == "fired"]
    assert fired.index(AlertType.URGENT_LOW_SOON) < fired.index(AlertType.URGENT_LOW)
    assert AlertType.LOW in fired
    assert (AlertType.LOW, "resolved") in events  # urgent low took over


def test_fall_and_rise_rates():
    e = AlertEngine()
    s = e.add_slot(AlertSettings())
    assert (AlertType.FALL, "fired") in _feed(e, s, [200, 185, 170])  # -3 mg/dL/min
    e2 = AlertEngine()
    s2 = e2.add_slot(AlertSettings())
    assert (AlertType.RISE, "fired") in _feed(e2, s2, [100, 112])  # +2.4 mg/dL/min


def test_snooze_silences_and_disabled_types_never_fire():
    e = AlertEngine()
    s = e.add_slot(AlertSettings(disabled=["rise"]))
    e.snooze(s, AlertType.HIGH, T0 + 60 * MIN)
    events = _feed(e, s, [150, 200, 200])
    assert (AlertType.HIGH, "fired") not in events and (AlertType.RISE, "fired") not in events


def test_signal_loss_warns_then_urgent_then_clears_on_data():
    e = AlertEngine()
    s = e.add_slot(AlertSettings())
    _feed(e, s, [120])
    assert e.check_time(T0 + 10 * MIN) == []
    assert [(x.type, x.state) for x in e.check_time(T0 + 16 * MIN)] == [(AlertType.STALE, "fired")]
    states = [(x.type, x.state) for x in e.check_time(T0 + 31 * MIN)]
    assert (AlertType.STALE_URGENT, "fired") in states and (AlertType.STALE, "resolved") in states
    assert (AlertType.STALE_URGENT, "resolved") in _feed(e, s, [121], start_min=35)


def test_sensor_expiring_fires_a_day_before():
    e = AlertEngine()
    s = e.add_slot(AlertSettings())
    e.configure(s, AlertSettings(), expires_ms=T0 + 48 * 60 * MIN)
    assert e.check_time(T0) == []
    fired = e.check_time(T0 + 25 * 60 * MIN)
    assert [(x.type, x.state) for x in fired] == [(AlertType.SENSOR_EXPIRING, "fired")]


def test_batches_evaluate_like_single_readings_across_many_slots():
    rng = np.random.default_rng(0)
    values = rng.normal(140, 60, size=(50, 12)).clip(40, 400)
    one, batch = AlertEngine(), AlertEngine()
    for _ in range(50):
        one.add_slot(AlertSettings())
        batch.add_slot(AlertSettings())
    singles = []
    for k in range(50):
        for j in range(12):
            singles += one.evaluate(np.array([k]), np.array([T0 + j * 5 * MIN]), values[k, j:j + 1])
    slots = np.repeat(np.arange(50), 12)
    ts = np.tile(T0 + np.arange(12) * 5 * MIN, 50)
    perm = rng.permutation(len(slots))
    batched = batch.evaluate(slots[perm], ts[perm], values.ravel()[perm])
    key = lambda e: (e.slot, e.ts_ms, e.type, e.state)  # noqa: E731
    assert sorted(map(key, singles)) == sorted(map(key, batched))
