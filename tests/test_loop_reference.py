"""Loop (Tidepool's PyLoopKit) as a controller: hand-made patients, and the translation of the seam.

PyLoopKit is installed by ``make loop-deps`` (``make test`` depends on it); without it these tests
skip and say so.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest

pytest.importorskip("pyloopkit.loop_data_manager",
                    reason="PyLoopKit (pyloopkit-test 0.0.15) is not installed: run `make loop-deps`")

from pyloopkit.dose import DoseType  # noqa: E402
from pyloopkit.loop_data_manager import update  # noqa: E402

from cgm_ray.errors import ConfigError  # noqa: E402
from simulators.controllers.interface import (  # noqa: E402
    CANCEL_TEMP,
    HISTORY_SLOTS,
    NEVER_MIN,
    InsulinOnBoard,
    Limits,
    LoopInput,
    Schedules,
)
from simulators.controllers.loop_reference import (  # noqa: E402
    EPOCH,
    N_PREDICTED,
    LoopReason,
    LoopReference,
    LoopSettings,
    pyloopkit_inputs,
)

BASAL, ISF, TARGET_LOW, TARGET_HIGH, MAX_BASAL, SUSPEND_BELOW = 1.0, 50.0, 100.0, 110.0, 3.0, 70.0
MINUTE = 1000


def _loop(glucose_now, slope_per_5min=0.0, temp=(BASAL, 0.0), bolus_u=None, carbs_g=None,
          iob_u=0.0) -> LoopInput:
    """Patients with linear CGM histories ending at ``glucose_now`` and 6 h of scheduled basal.

    ``bolus_u``/``carbs_g`` are (N, HISTORY_SLOTS) additions to the history.
    """
    glucose = np.atleast_1d(np.asarray(glucose_now, dtype=float))
    n = glucose.size
    slope = np.broadcast_to(np.asarray(slope_per_5min, dtype=float), (n,))
    slots_ago = HISTORY_SLOTS - 1 - np.arange(HISTORY_SLOTS)
    boluses = np.zeros((n, HISTORY_SLOTS)) if bolus_u is None else np.asarray(bolus_u, dtype=float)
    carbs = np.zeros((n, HISTORY_SLOTS)) if carbs_g is None else np.asarray(carbs_g, dtype=float)
    ticks = np.zeros((n, N_PREDICTED))
    full = lambda value: np.full(n, float(value))
    return LoopInput(
        minute=MINUTE, cgm_mgdl=glucose[:, None] - slope[:, None] * slots_ago[None, :], cgm_age_min=full(0),
        delivered_u=BASAL / 12 + boluses, bolus_u=boluses,
        temp_rate_u_per_h=full(temp[0]), temp_remaining_min=full(temp[1]),
        insulin=InsulinOnBoard(ticks + iob_u, ticks, ticks + iob_u, ticks),
        announced_carbs_g=carbs, carbs_6h_g=carbs.sum(axis=1), cob_g=full(0),
        last_bolus_age_min=full(NEVER_MIN), last_carbs_age_min=full(NEVER_MIN),
        schedules=Schedules(full(BASAL), full(ISF), full(10.0), full(TARGET_LOW), full(TARGET_HIGH)),
        limits=Limits(full(MAX_BASAL), full(5.0), full(SUSPEND_BELOW), full(10.0)))


@pytest.fixture(scope="module")
def loop_controller() -> LoopReference:
    return LoopReference()


def test_high_and_rising_without_insulin_on_board_raises_the_basal(loop_controller):
    out = loop_controller.decide(_loop([200.0, 180.0], slope_per_5min=1.0))
    assert (out.reason == LoopReason.TEMP_BASAL).all()
    assert (out.temp_duration_min == 30).all()
    assert (out.temp_rate_u_per_h > BASAL).all() and (out.temp_rate_u_per_h <= MAX_BASAL).all()
    assert (out.bolus_u == 0).all()  # Loop's default strategy: temp basals only


@pytest.mark.parametrize("glucose, rate_u_per_h", [(150.0, 2.8), (118.0, 1.5)])
def test_flat_high_glucose_gets_the_correction_to_the_range_midpoint_over_30_min(loop_controller, glucose,
                                                                                 rate_u_per_h):
    # Loop's rule above the range, with no insulin on board and no trend: (glucose - midpoint) / ISF
    # over 30 min, rounded to the pump's 0.05 U/h (118 mg/dL: 1.52 U/h)
    out = loop_controller.decide(_loop(glucose))
    correction_u = (glucose - (TARGET_LOW + TARGET_HIGH) / 2) / ISF
    assert BASAL + correction_u / 0.5 == pytest.approx(rate_u_per_h, abs=0.025)
    assert out.temp_rate_u_per_h[0] == pytest.approx(rate_u_per_h)


def test_low_and_falling_suspends(loop_controller):
    out = loop_controller.decide(_loop([60.0, 75.0], slope_per_5min=-1.0))
    assert (out.reason == LoopReason.SUSPEND).all()
    assert (out.temp_rate_u_per_h == 0).all() and (out.temp_duration_min == 30).all()
    assert (out.predicted_mgdl[:, 6] < out.predicted_mgdl[:, 0]).all()  # predicted to keep falling


def test_steady_in_range_keeps_the_scheduled_basal(loop_controller):
    out = loop_controller.decide(_loop(105.0))
    assert out.reason[0] == LoopReason.KEEP and out.temp_duration_min[0] == 0


def test_a_running_high_temp_is_kept_when_still_right_and_cancelled_when_not(loop_controller):
    still_high = loop_controller.decide(_loop(150.0, temp=(2.8, 25.0)))
    assert still_high.reason[0] == LoopReason.KEEP and still_high.temp_duration_min[0] == 0
    back_in_range = loop_controller.decide(_loop(105.0, temp=(2.8, 25.0)))
    assert back_in_range.reason[0] == LoopReason.CANCEL_TEMP
    assert back_in_range.temp_duration_min[0] == CANCEL_TEMP


def test_a_recent_bolus_turns_the_high_temp_into_a_suspend(loop_controller):
    # flat 150 alone gets a high temp (above); 2 U given 30 min ago will take it below 70
    bolus_u = np.zeros((1, HISTORY_SLOTS))
    bolus_u[0, -6] = 2.0
    out = loop_controller.decide(_loop(150.0, bolus_u=bolus_u))
    assert out.reason[0] == LoopReason.SUSPEND and out.temp_rate_u_per_h[0] == 0
    assert out.predicted_mgdl[0, -1] < SUSPEND_BELOW < out.predicted_mgdl[0, 0]


def test_announced_carbs_raise_the_basal_before_glucose_rises(loop_controller):
    carbs_g = np.zeros((1, HISTORY_SLOTS))
    carbs_g[0, -1] = 60.0
    out = loop_controller.decide(_loop(110.0, carbs_g=carbs_g))
    assert out.reason[0] == LoopReason.TEMP_BASAL and out.temp_rate_u_per_h[0] > BASAL
    assert np.nanmax(out.predicted_mgdl[0]) > 150.0  # 60 g at 10 g/U and 50 mg/dL/U: +300 mg/dL absorbed


def test_missing_or_stale_cgm_leaves_the_pump_alone(loop_controller):
    loop = _loop([200.0, 200.0, 200.0], slope_per_5min=1.0)
    loop.cgm_mgdl[0] = np.nan
    loop.cgm_mgdl[1, -4:] = np.nan  # newest reading 20 min old: Loop's limit is 15
    loop.cgm_mgdl[2, -3:] = np.nan  # 15 min old: still used
    out = loop_controller.decide(loop)
    assert out.reason.tolist() == [LoopReason.NO_GLUCOSE, LoopReason.STALE_GLUCOSE, LoopReason.TEMP_BASAL]
    assert out.temp_duration_min[:2].tolist() == [0, 0] and (out.bolus_u == 0).all()
    assert np.isnan(out.predicted_mgdl[:2]).all()


def test_prediction_is_on_the_5_min_grid_starting_at_the_newest_reading(loop_controller):
    out = loop_controller.decide(_loop([200.0, 60.0, 105.0], slope_per_5min=[1.0, -1.0, 0.0]))
    assert out.predicted_mgdl.shape == (3, N_PREDICTED)
    assert np.isfinite(out.predicted_mgdl).all()
    assert out.predicted_mgdl[:, 0].tolist() == [200.0, 60.0, 105.0]
    assert out.reason.dtype == np.int8


def test_automatic_bolus_gives_part_of_the_recommended_bolus_and_no_high_temp():
    high = _loop(250.0, slope_per_5min=2.0)
    automatic = LoopReference(LoopSettings(automatic_bolus=True))
    temp_only = LoopReference().decide(high)
    auto = automatic.decide(high)
    recommended_u = update(pyloopkit_inputs(high, 0, LoopSettings()))["recommended_bolus"][0]
    assert auto.reason[0] == LoopReason.BOLUS
    assert 0 < auto.bolus_u[0] <= 0.4 * recommended_u + 1e-9
    assert auto.bolus_u[0] == pytest.approx(0.4 * recommended_u, abs=0.05)
    assert auto.temp_duration_min[0] == 0 or auto.temp_rate_u_per_h[0] <= BASAL
    assert temp_only.bolus_u[0] == 0 and temp_only.temp_rate_u_per_h[0] > BASAL
    capped = automatic.decide(_loop(250.0, slope_per_5min=2.0, iob_u=4.9))
    assert capped.bolus_u[0] <= 0.1  # max_iob_u 5: 0.1 U of headroom


def test_history_becomes_loop_doses_runs_boluses_carbs_and_the_running_temp():
    bolus_u, carbs_g = np.zeros((1, HISTORY_SLOTS)), np.zeros((1, HISTORY_SLOTS))
    bolus_u[0, 60], carbs_g[0, 60] = 1.5, 45.0
    loop = _loop(120.0, temp=(0.0, 20.0), bolus_u=bolus_u, carbs_g=carbs_g)
    loop.delivered_u[0, -6:] = bolus_u[0, -6:]  # a zero temp for the last 30 min
    inputs = pyloopkit_inputs(loop, 0, LoopSettings())
    now = EPOCH + timedelta(minutes=MINUTE)
    assert inputs["time_to_calculate_at"] == now
    assert inputs["glucose_dates"][-1] == now and len(inputs["glucose_values"]) == HISTORY_SLOTS
    assert inputs["dose_types"] == [DoseType.tempbasal, DoseType.tempbasal, DoseType.bolus]
    assert inputs["dose_values"] == pytest.approx([BASAL, 0.0, 1.5])
    assert inputs["dose_start_times"] == [now - timedelta(hours=6), now - timedelta(minutes=30),
                                          now - timedelta(minutes=60)]
    assert inputs["dose_end_times"][:2] == [now - timedelta(minutes=30), now]
    assert inputs["carb_dates"] == [now - timedelta(minutes=60)] and inputs["carb_values"] == [45.0]
    assert inputs["last_temporary_basal"] == [DoseType.tempbasal, now, now + timedelta(minutes=20), 0.0]


def test_pyloopkit_update_runs_on_numpy_2_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = update(pyloopkit_inputs(_loop(180.0, slope_per_5min=1.0), 0, LoopSettings()))
    assert result["recommended_temp_basal"][0] > BASAL
    assert np.isfinite(np.asarray(result["predicted_glucose_values"], dtype=float)).all()


@pytest.mark.parametrize("field, value", [("dia_h", 0.0), ("peak_min", 400.0), ("carb_absorption_min", -1.0),
                                          ("dose_increment_u", 0.0), ("recency_min", 1.0),
                                          ("partial_application_factor", 1.5)])
def test_settings_out_of_range_name_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        LoopSettings(**{field: value})
    assert e.value.field == f"loop.{field}"
