"""The oref0 port: its rules on hand-made states, and its agreement with the real oref0 in Node.

The parity tests run oref0 0.7.1 itself (``make node-deps`` installs it into ``.node/``) on
thousands of random, physiologically consistent decision states and hold the port to the bar of
issue 12: >= 99 % of decisions within 0.05 U/h of oref0's temp-basal rate, identical suspends.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from simulators.controllers import (
    N_TICKS,
    Oref0Profile,
    Oref0Reason,
    Oref0State,
    determine_basal,
    insulin_on_board,
    to_devicestatus,
)
from simulators.controllers.oref0_reference import (
    Oref0Reference,
    Oref0ReferenceError,
    effective_rate,
    oref0_inputs,
)
from simulators.oref0_parity import (
    FEATURES,
    closed_loop_decisions,
    compare,
    compare_iob,
    random_decisions,
    subset,
)

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the real oref0 runs in Node.js")


def _profile(**overrides) -> Oref0Profile:
    base = dict(current_basal_u_per_h=1.0, sens_mgdl_per_u=50.0, carb_ratio_g_per_u=10.0,
                min_bg_mgdl=100.0, max_bg_mgdl=100.0, max_iob_u=3.0, max_basal_u_per_h=3.0,
                max_daily_basal_u_per_h=1.0)
    return Oref0Profile(**(base | overrides))


def _state(glucose, delta=0.5, iob_u=0.0, temp=(0.0, 0.0), **overrides) -> Oref0State:
    """States with a flat IOB curve (no insulin acting) unless given; glucose may be an array."""
    glucose = np.atleast_1d(np.asarray(glucose, dtype=float))
    n = glucose.size
    zeros = np.zeros((n, N_TICKS))
    base = dict(glucose_mgdl=glucose, delta_mgdl=np.full(n, delta), short_avgdelta_mgdl=np.full(n, delta),
                long_avgdelta_mgdl=np.full(n, delta), iob_u=zeros + iob_u, activity_u_per_min=zeros,
                zero_temp_iob_u=zeros + iob_u, zero_temp_activity_u_per_min=zeros,
                temp_rate_u_per_h=np.full(n, temp[0]), temp_remaining_min=np.full(n, temp[1]))
    return Oref0State(**(base | overrides))


# --- the port on its own ------------------------------------------------------------------------


def test_low_glucose_suspends_with_a_zero_temp_of_30_to_120_min():
    d = determine_basal(_state([55.0, 62.0]), _profile())  # threshold = 100 - 0.5 * 60 = 70
    assert d.reason.tolist() == [Oref0Reason.LOW_GLUCOSE_SUSPEND] * 2
    assert d.rate_u_per_h.tolist() == [0.0, 0.0] and d.suspended.all() and d.enacted.all()
    assert ((d.duration_min >= 30) & (d.duration_min <= 120) & (d.duration_min % 30 == 0)).all()


def test_high_glucose_high_temp_is_capped_at_the_max_safe_basal():
    # min(max_basal 3, 3 x max daily 1.0, 4 x current 1.0) = 3 U/h
    d = determine_basal(_state(300.0, delta=2.0), _profile())
    assert d.reason[0] == Oref0Reason.HIGH_TEMP and d.rate_u_per_h[0] == 3.0 and d.duration_min[0] == 30
    d = determine_basal(_state(300.0, delta=2.0), _profile(max_daily_safety_multiplier=2.0))
    assert d.rate_u_per_h[0] == 2.0


def test_max_iob_holds_basal():
    d = determine_basal(_state(250.0, delta=2.0, iob_u=4.0), _profile(sens_mgdl_per_u=20.0))
    assert d.reason[0] == Oref0Reason.IOB_ABOVE_MAX and d.rate_u_per_h[0] == 1.0


def test_a_running_temp_within_20_percent_is_left_alone():
    d = determine_basal(_state(300.0, delta=2.0, temp=(2.8, 25.0)), _profile())
    assert not d.enacted[0] and d.rate_u_per_h[0] == 2.8 and d.duration_min[0] == 25.0


def test_flat_cgm_cancels_a_high_temp_unless_in_simulator_mode():
    flat = dict(delta=0.0, temp=(2.5, 20.0))
    d = determine_basal(_state(180.0, **flat), _profile())
    assert d.reason[0] == Oref0Reason.CGM_ERROR_NEUTRAL and d.rate_u_per_h[0] == 1.0
    d = determine_basal(_state(180.0, **flat), _profile(flat_cgm_check=False))
    assert d.reason[0] != Oref0Reason.CGM_ERROR_NEUTRAL


def test_exercise_temp_target_of_160_halves_basal():
    # in range at 160 (min = max = 160): oref0 sets the (sensitivity-adjusted) basal as temp
    exercise = _profile(min_bg_mgdl=160.0, max_bg_mgdl=160.0, temptarget_set=True,
                        high_temptarget_raises_sensitivity=True)
    d = determine_basal(_state(165.0, delta=-0.5), exercise)
    assert d.reason[0] == Oref0Reason.FALLING_FASTER_THAN_EXPECTED or d.reason[0] == Oref0Reason.IN_RANGE
    assert d.rate_u_per_h[0] == 0.5
    d = determine_basal(_state(165.0, delta=-0.5), dataclasses.replace(exercise, temptarget_set=False))
    assert d.rate_u_per_h[0] == 1.0


def test_rates_round_to_the_pump_steps():
    profile = _profile(current_basal_u_per_h=0.4, max_basal_u_per_h=5.0)
    glucose = np.linspace(101.0, 140.0, 40)
    for x23, step in ((False, 0.05), (True, 0.025)):
        rates = determine_basal(_state(glucose, delta=1.0), dataclasses.replace(profile, pump_x23_x54=x23))
        below_1 = rates.rate_u_per_h[rates.rate_u_per_h < 1]
        np.testing.assert_allclose(below_1 / step, np.round(below_1 / step), atol=1e-9)


def test_vectorised_equals_one_by_one():
    state, profile = random_decisions(200, seed=5, features="smb")
    together = determine_basal(state, profile)
    for i in range(0, 200, 17):
        alone = determine_basal(subset(state, [i]), _profile_subset(profile, i))
        assert alone.rate_u_per_h[0] == together.rate_u_per_h[i]
        assert alone.reason[0] == together.reason[i] and alone.smb_u[0] == together.smb_u[i]


def _profile_subset(profile: Oref0Profile, i: int) -> Oref0Profile:
    def pick(v):
        a = np.asarray(v)
        return a[[i]] if a.ndim else v
    return dataclasses.replace(profile, **{f.name: pick(getattr(profile, f.name))
                                           for f in dataclasses.fields(profile)})


def test_insulin_on_board_of_a_bolus_decays_over_dia_and_activity_sums_to_it():
    dose = np.array([[2.0]])
    iob, activity, zt_iob, zt_activity = insulin_on_board(dose, np.array([[0.0]]), 0.0)
    assert iob[0, 0] == 2.0 and iob[0, -1] < 0.2 and (np.diff(iob[0]) <= 0).all()
    assert activity[0].argmax() * 5 == 75  # rapid-acting peak
    assert abs(activity[0].sum() * 5 - (2.0 - iob[0, -1])) < 0.1
    # a zero temp of 1 U/h for 4 h removes ~4 U, less what is still on board at 4 h
    _, _, zt_iob, _ = insulin_on_board(np.zeros((1, 1)), np.zeros((1, 1)), 1.0)
    assert -4.0 < zt_iob[0, -1] < -1.5


def test_devicestatus_has_the_openaps_shape():
    state = _state([55.0, 300.0], delta=2.0)
    d = determine_basal(state, _profile())
    record = to_devicestatus(d, state, 0, "2026-01-01T00:00:00Z")
    assert record["device"].startswith("openaps://")
    suggested, enacted = record["openaps"]["suggested"], record["openaps"]["enacted"]
    assert suggested["rate"] == 0.0 and enacted["received"] is True and "predBGs" not in enacted
    assert suggested["reason"] == "LOW_GLUCOSE_SUSPEND" and 13 <= len(suggested["predBGs"]["IOB"]) <= N_TICKS
    assert set(record["openaps"]["iob"]) == {"iob", "activity", "timestamp"}
    fast = determine_basal(state, _profile(), predictions=False)
    assert "predBGs" not in to_devicestatus(fast, state, 1, "2026-01-01T00:00:00Z")["openaps"]["suggested"]


# --- the real oref0 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    if NODE is None:
        pytest.skip("node is not installed: the real oref0 runs in Node.js")
    with Oref0Reference() as ref:
        yield ref


@needs_node
@pytest.mark.parametrize("features", FEATURES)
def test_port_matches_oref0(reference, features):
    state, profile = random_decisions(3000, seed=12, features=features)
    report, port, results = compare(state, profile, reference)
    assert report.reference_errors == 0
    assert report.fraction_within_0_05 >= 0.99, report.mismatches[:10]
    assert report.suspend_agreement == 1.0 and report.lgs_agreement == 1.0
    assert report.smb_agreement == 1.0 and report.eventual_bg_agreement >= 0.99
    assert report.pred_agreement >= 0.99  # the predicted-glucose curves too
    # the states exercise every kind of decision, not just one
    seen = set(port.reason.tolist())
    assert {Oref0Reason.LOW_GLUCOSE_SUSPEND, Oref0Reason.LOW_TEMP, Oref0Reason.HIGH_TEMP,
            Oref0Reason.IN_RANGE, Oref0Reason.IOB_ABOVE_MAX, Oref0Reason.CGM_ERROR_KEEP} <= seen
    assert 0.05 < port.suspended.mean() < 0.6 and port.enacted.mean() < 0.98
    if features == "smb":
        assert Oref0Reason.SMB_LOW_TEMP in seen and (port.smb_u > 0).mean() > 0.05


@needs_node
def test_port_matches_oref0_on_closed_loop_states(reference):
    """The inputs of every decision of a closed-loop run (the port deciding), through both."""
    state, profile = closed_loop_decisions(4, 0.5, seed=3, features="smb")
    report, port, _ = compare(state, profile, reference)
    assert report.decisions == 4 * 144 and report.reference_errors == 0
    assert report.fraction_within_0_05 >= 0.99, report.mismatches[:10]
    assert report.suspend_agreement == 1.0 and report.smb_agreement == 1.0
    assert len(set(port.reason.tolist())) >= 3  # the loop visits several rules, not one


@needs_node
def test_insulin_on_board_matches_oref0_lib_iob(reference):
    """Pump histories through oref0's own IOB code: equal to its rounding (0.001 U, 0.0001 U/min)."""
    report = compare_iob(300, seed=3, reference=reference)
    assert report.max_iob_error_u <= 0.001 + 1e-9 and report.max_zero_temp_iob_error_u <= 0.001 + 1e-9
    assert report.max_activity_error_u_per_min <= 1e-4 + 1e-9
    assert report.max_zero_temp_activity_error_u_per_min <= 1e-4 + 1e-9


@needs_node
def test_reference_reports_what_it_was_asked(reference):
    state, profile = random_decisions(3, seed=1)
    results = reference.run([oref0_inputs(state, profile, i) for i in range(3)])
    assert len(results) == 3 and all("reason" in r for r in results)
    # an oref0 error comes back in its place, not as a crash
    broken = oref0_inputs(state, profile, 0)
    del broken["profile"]["current_basal"]
    assert "error" in reference.run([broken])[0]


def test_effective_rate_follows_the_pump():
    assert effective_rate({"rate": 0.0, "duration": 30}, 1.5, 20, 1.0) == 0.0
    assert effective_rate({"reason": "keep"}, 1.5, 20, 1.0) == 1.5
    assert effective_rate({"reason": "keep"}, 0.0, 0, 1.0) == 1.0
    assert effective_rate({"rate": 0.0, "duration": 0}, 1.5, 20, 1.0) == 1.0  # a cancel


def test_missing_package_is_a_clear_error(tmp_path):
    if NODE is None:
        with pytest.raises(Oref0ReferenceError, match="node"):
            Oref0Reference(node_dir=tmp_path)
        return
    with pytest.raises(Oref0ReferenceError, match="make node-deps"):
        Oref0Reference(node_dir=tmp_path)


@needs_node
def test_worker_is_ended_on_close_and_a_slow_reply_times_out():
    import psutil

    ref = Oref0Reference()
    pid = ref.pid
    assert psutil.pid_exists(pid)
    ref.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(Oref0ReferenceError, match="closed"):
        ref.run([])

    ref = Oref0Reference()
    ref.timeout_s = 1e-4
    state, profile = random_decisions(2000, seed=1)
    with pytest.raises(Oref0ReferenceError, match="did not answer"):
        ref.run([oref0_inputs(state, profile, i) for i in range(2000)])
    assert ref.pid is None  # killed and forgotten
