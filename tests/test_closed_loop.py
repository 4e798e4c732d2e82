"""The closed loop: insulin tracker, pump, safety layer, real controllers, checkpoints and configs.

The controllers themselves are tested in ``tests/test_oref0.py`` (the port against oref0) and
``tests/test_loop_reference.py``; here they run inside the engine (`simulators.closed_loop`).
"""

from __future__ import annotations

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from simulators.closed_loop import Decisions
from simulators.controllers.insulin import TICKS, InsulinModel, InsulinTracker
from simulators.controllers.interface import (
    CANCEL_TEMP,
    NEVER_MIN,
    PERIOD_MIN,
    AidSettings,
    LoopInput,
    LoopOutput,
)
from simulators.controllers.oref0 import insulin_on_board, temp_basal_pulses
from simulators.controllers.pid import Pid
from simulators.engine import Simulation
from simulators.meals import FixedMeals
from simulators.models import get_model
from simulators.population import reference_cohort
from simulators.pump import MAX_TEMP_MIN, Pump, PumpSpec
from simulators.scenario import parse_scenario
from simulators.sensor import get_sensor
from simulators.therapy import Therapy

NAMES = ["adult#001", "adolescent#003", "child#002"]
SIX = ["adult#001", "adult#004", "adolescent#003", "adolescent#008", "child#002", "child#006"]
UNBOLUSED = FixedMeals((40, 200), (40.0, 60.0), (False, False))  # glucose moves, no bolus at all


def _floor05(x):
    return np.floor(np.asarray(x) / 0.05 + 1e-9) * 0.05


# --- 1. the insulin tracker against oref0's own IOB ------------------------------------------------

BASAL = np.array([1.0, 0.6, 1.5])  # U/h; multiples of 0.1 U/h (see the test's docstring)
HISTORY_MIN = 8 * 60
BOLUSES = [(0, 32, 2.0), (1, 30, 2.0)]  # (patient, minute, U): a meal bolus mid-slot, an SMB-like one
TEMPS = [  # (patient, start minute, duration min, rate U/h)
    (0, 60, 30, 2.5), (0, 120, 60, 0.0), (0, 240, 45, 1.6),
    (1, 90, 60, 0.0), (1, 200, 30, 2.4),
    (2, 20, 30, 3.0), (2, 100, 90, 0.0), (2, 250, 60, 2.0),
]


def _oref0_ticks(now: int) -> tuple[np.ndarray, ...]:
    """``insulin_on_board`` at minute ``now`` from the pump history up to ``now``, as oref0 sees it:
    boluses at their minute, temp basals (the running one up to now) as `temp_basal_pulses`."""
    units, times = [], []
    for p in range(len(BASAL)):
        u = [np.array([b]) for q, m, b in BOLUSES if q == p and m < now]
        t = [np.array([float(m)]) for q, m, b in BOLUSES if q == p and m < now]
        for q, start, duration, rate in TEMPS:
            if q == p and start < now:
                pu, pt = temp_basal_pulses(rate - BASAL[p], start, min(duration, now - start))
                u.append(pu)
                t.append(pt)
        units.append(np.concatenate(u) if u else np.zeros(0))
        times.append(np.concatenate(t) - now if t else np.zeros(0))
    k = max(1, *(len(u) for u in units))
    dose, when = np.zeros((len(BASAL), k)), np.zeros((len(BASAL), k))
    for p, (u, t) in enumerate(zip(units, times)):
        dose[p, :len(u)], when[p, :len(t)] = u, t
    return insulin_on_board(dose, when, BASAL)


def test_insulin_tracker_matches_oref0_iob_of_the_same_doses():
    """The tracker puts each 5-min slot's net insulin at the slot's middle; oref0 sums the doses at
    their minute (temps as 0.05 U pulses, ages rounded to the minute, IOB to 0.001 U). Tolerances:

    - IOB 0.04 U: a dose moved by at most 2.5 min changes IOB by at most units x the curve's
      steepest IOB decline (0.0061 /min): 0.031 U for the 2 U bolus at a slot start, 0.006 U for
      the one 2 min into its slot; temps add < 0.02 U (oref0 pulses a running temp's part to
      0.05 U: 5 min of +1 U/h is 0.1 U to oref0, 0.083 U delivered). Measured: 0.035 U.
    - activity 10 % of the 2 U bolus's peak (1.2e-3 U/min): moved 2.5 min at its start, where
      activity rises fastest (S/tau^2 = 2.1e-4 /min^2 per U), it differs by 1.07e-3 U/min
      (measured: 0.97e-3).
    - zero-temp IOB: the IOB tolerance plus one 0.05 U pulse: oref0's zero temp starts 1 min from
      now in 0.05 U pulses (every 3 min at 1 U/h), the tracker's in one pulse mid-slot, so by
      any tick they have withheld up to one pulse more or less (measured: 0.060 U). oref0 rounds
      each 30-min part of a temp to 0.05 U, so the basals and temps here are multiples of 0.1 U/h
      (elsewhere oref0 is off the delivered insulin by up to 0.025 U per 30 min).
    """
    model = InsulinModel(5.0, 75.0)
    tracker = InsulinTracker.new(model, BASAL)
    per_minute = np.repeat(BASAL[:, None], HISTORY_MIN, axis=1)
    for p, start, duration, rate in TEMPS:
        per_minute[p, start:start + duration] = rate
    peak_activity = 2.0 * model.pulse_curves()[1].max()
    tol = {"iob": 0.04, "activity": 0.1 * peak_activity, "zero_temp_iob": 0.04 + 0.05,
           "zero_temp_activity": 0.1 * peak_activity}
    worst = dict.fromkeys(tol, 0.0)
    for now in range(PERIOD_MIN, HISTORY_MIN + 1, PERIOD_MIN):  # a decision after every period
        slot = slice(now - PERIOD_MIN, now)
        net = (per_minute[:, slot].mean(axis=1) - BASAL) * PERIOD_MIN / 60.0
        for p, m, u in BOLUSES:
            net[p] += u if now - PERIOD_MIN <= m < now else 0.0
        tracker.add_period(net)
        ours = tracker.on_board()
        ref = dict(zip(tol, _oref0_ticks(now)))
        for key in tol:
            got = getattr(ours, {"iob": "iob_u", "activity": "activity_u_per_min",
                                 "zero_temp_iob": "zero_temp_iob_u",
                                 "zero_temp_activity": "zero_temp_activity_u_per_min"}[key])
            assert got.shape == ref[key].shape == (len(BASAL), TICKS)
            worst[key] = max(worst[key], float(np.abs(got - ref[key]).max()))
        if now == 35:  # the boluses are on board, the zero temps take basal away
            assert (ref["iob"][:2, 0] > 1.9).all() and (ref["zero_temp_iob"][:, -1] < -1.0).all()
    for key in tol:
        assert worst[key] < tol[key], (key, worst[key], tol[key])
    # the tracker's IOB ends where oref0's does: everything but the last hours has decayed
    np.testing.assert_allclose(tracker.on_board().iob_u[:, 0], _oref0_ticks(HISTORY_MIN)[0][:, 0],
                               atol=0.02)


def test_insulin_tracker_state_restores_and_zero_temp_is_net_of_the_schedule():
    model = InsulinModel(5.0, 75.0)
    a = InsulinTracker.new(model, BASAL)
    for net in (np.array([2.0, 0.0, -0.1]), np.array([0.0, 0.5, 0.0]), np.zeros(3)):
        a.add_period(net)
    b = InsulinTracker.new(model, BASAL)
    b.future_iob_u, b.future_activity_u_per_min = a.future_iob_u.copy(), a.future_activity_u_per_min.copy()
    b.refresh()
    for x, y in zip(vars(a.on_board()).values(), vars(b.on_board()).values()):
        np.testing.assert_array_equal(x, y)
    fresh = InsulinTracker.new(model, BASAL).on_board()
    assert (fresh.iob_u == 0).all() and fresh.zero_temp_iob_u[:, 0].tolist() == [0, 0, 0]
    assert (np.diff(fresh.zero_temp_iob_u, axis=1) <= 0).all()  # a zero temp only takes insulin away
    # twice the basal withholds twice the insulin
    np.testing.assert_allclose(fresh.zero_temp_iob_u[2], 1.5 * fresh.zero_temp_iob_u[0], rtol=1e-12)


# --- 2. the pump ------------------------------------------------------------------------------------

def test_pump_rounds_down_caps_and_counts_temps():
    pump = Pump.new(PumpSpec(), 5)
    scheduled = np.array([1.0, 1.0, 1.0, 0.8, 1.0])
    cap = np.array([4.0, 4.0, 2.33, 4.0, 4.0])
    pump.set_temps(100, np.array([1.234, 0.049, 9.0, -2.0, 0.7]), np.array([30.0, 30, 30, 30, 0]), cap)
    # rounded down to 0.05 U/h, capped (at the cap rounded down), never negative; 0.7 stays 0.7
    np.testing.assert_allclose(pump.rate_u_per_h(100, scheduled), [1.2, 0.0, 2.3, 0.0, 1.0], atol=1e-12)
    assert pump.capped_temps == 1
    pump.set_temps(100, np.array([0.7, 0.3, 5.0, 0.1 + 0.2, 2.0]), np.array([0.0, 0, 0, 0, 30]), cap)
    np.testing.assert_allclose(pump.rate_u_per_h(100, scheduled), [1.2, 0.0, 2.3, 0.0, 2.0], atol=1e-12)
    assert pump.capped_temps == 1  # a zero duration keeps the running temp: nothing asked, nothing cut
    pump.set_temps(105, np.full(5, 0.1 + 0.2), np.full(5, 30.0), cap)
    np.testing.assert_allclose(pump.rate_u_per_h(105, scheduled), np.full(5, 0.3), atol=1e-12)
    # a temp runs until its duration ends, then the schedule is back
    np.testing.assert_allclose(pump.rate_u_per_h(134, scheduled), np.full(5, 0.3), atol=1e-12)
    np.testing.assert_array_equal(pump.rate_u_per_h(135, scheduled), scheduled)
    np.testing.assert_array_equal(pump.remaining_min(130), np.full(5, 5))
    np.testing.assert_array_equal(pump.remaining_min(140), np.zeros(5))
    # CANCEL_TEMP ends it now, only where asked
    pump.set_temps(110, np.zeros(5), np.array([CANCEL_TEMP, 0, CANCEL_TEMP, 0, 0]), cap)
    np.testing.assert_allclose(pump.rate_u_per_h(110, scheduled), [1.0, 0.3, 1.0, 0.3, 0.3], atol=1e-12)
    assert pump.remaining_min(110).tolist() == [0, 25, 0, 25, 25]
    # the longest temp a pump accepts
    pump.set_temps(120, np.full(5, 0.5), np.full(5, 10 * 1440.0), cap)
    assert pump.remaining_min(120).tolist() == [MAX_TEMP_MIN] * 5
    # checkpoint
    other = Pump.new(PumpSpec(), 5)
    other.load_state_dict(pump.state_dict())
    np.testing.assert_array_equal(other.rate_u_per_h(200, scheduled), pump.rate_u_per_h(200, scheduled))
    assert (other.capped_temps, other.capped_boluses) == (pump.capped_temps, pump.capped_boluses)


def test_pump_rounds_down_and_caps_boluses():
    pump = Pump.new(PumpSpec(), 6)
    max_bolus = np.full(6, 15.0)
    got = pump.bolus_u(np.array([1.234, 0.049, 20.0, -1.0, 0.7, 0.1 + 0.2]), max_bolus)
    np.testing.assert_allclose(got, [1.2, 0.0, 15.0, 0.0, 0.7, 0.3], atol=1e-12)
    assert pump.capped_boluses == 1
    got = pump.bolus_u(np.array([15.0, 14.99, 100.0, 0, 0, 0]), max_bolus)
    np.testing.assert_allclose(got, [15.0, 14.95, 15.0, 0, 0, 0], atol=1e-12)
    assert pump.capped_boluses == 2  # exactly the max is not cut
    coarse = Pump.new(PumpSpec(bolus_increment_u=0.1, basal_increment_u_per_h=0.025), 1)
    np.testing.assert_allclose(coarse.bolus_u(np.array([1.29]), np.array([15.0])), [1.2], atol=1e-12)
    coarse.set_temps(0, np.array([1.29]), np.array([30.0]), np.array([5.0]))
    np.testing.assert_allclose(coarse.rate_u_per_h(0, np.array([1.0])), [1.275], atol=1e-12)


# --- 3. the safety layer in the engine --------------------------------------------------------------

class Scripted:
    """A controller answering ``answer(loop)``: (rate, duration, bolus) arrays, or anything else as is."""

    name = "scripted"
    closes_loop = True
    dia_h = 5.0
    peak_min = 75.0

    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls = 0

    def decide(self, loop: LoopInput) -> LoopOutput:
        self.calls += 1
        answer = self.answer(loop)
        if not isinstance(answer, tuple):  # anything else is passed on as the answer
            return answer
        rate, duration, bolus = answer
        n = len(loop.cob_g)
        return LoopOutput(np.asarray(rate, dtype=float), np.asarray(duration, dtype=float),
                          np.asarray(bolus, dtype=float), np.zeros(n, np.int8), np.empty((n, 0)))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def _constant(rate_u_per_h=None, multiple=None, bolus_u=0.0):
    def answer(loop: LoopInput):
        n = len(loop.cob_g)
        rate = np.full(n, rate_u_per_h) if multiple is None else multiple * loop.schedules.basal_u_per_h
        return rate, np.full(n, 30.0), np.full(n, bolus_u)
    return answer


def _raise(loop: LoopInput):
    raise RuntimeError("controller bug")


def _sim(controller=None, meals=UNBOLUSED, aid=AidSettings(), names=NAMES, **kw):
    return Simulation(get_model("uva_padova_s2013"), reference_cohort(names), meals, Therapy(),
                      get_sensor("ideal"), controller=controller, aid=aid, **kw)


def _run(sim, n_min, chunk_min=60):
    steps = list(sim.run(n_min, chunk_min=chunk_min, trace=True))
    decisions = Decisions.concat([s.decisions for s in steps]) if steps[0].decisions else None
    return np.concatenate([s.bg_mgdl for s in steps], axis=1), decisions, steps


def _readings(steps):
    """(patient, minute, glucose) of every reading, by patient then minute."""
    r = [np.concatenate([getattr(s.readings, k) for s in steps])
         for k in ("patient", "minute", "glucose_mgdl")]
    order = np.lexsort((r[1], r[0]))
    return [x[order] for x in r]


def test_a_controller_that_always_raises_runs_the_open_loop():
    n_min = 6 * 60
    g_open, none, _ = _run(_sim(), n_min)
    controller = Scripted(_raise)
    sim = _sim(controller)
    g, d, _ = _run(sim, n_min)
    assert none is None and sim.loop is not None
    periods = len(NAMES) * n_min // PERIOD_MIN
    c = sim.loop.counts
    assert c.failures == c.periods == periods and controller.calls == n_min // PERIOD_MIN
    assert c.suspends == c.iob_limited == 0
    assert d.fallback.all() and (d.reason == -1).all() and (d.auto_bolus_u == 0).all()
    np.testing.assert_array_equal(d.basal_u_per_h, np.repeat(sim.loop.schedules.basal_u_per_h[:, None],
                                                              n_min // PERIOD_MIN, axis=1))
    assert g_open.max() > 250  # unbolused meals: glucose moves
    np.testing.assert_allclose(g, g_open, rtol=0, atol=1e-9)  # measured: bit-identical


def test_a_failing_decision_cancels_the_running_temp():
    """Every other decision sets a 30-min temp of twice the basal, the ones between raise: the
    temp does not run on through a failed period, the scheduled basal does."""
    def answer(loop: LoopInput):
        if loop.minute % 10:
            raise RuntimeError("every other period")
        return _constant(multiple=2.0)(loop)

    sim = _sim(Scripted(answer), meals=FixedMeals((), (), ()))
    _, d, _ = _run(sim, 120)
    scheduled = sim.loop.schedules.basal_u_per_h[:, None]
    failed = d.minute % 10 == 5
    np.testing.assert_array_equal(d.fallback, np.broadcast_to(failed, d.fallback.shape))
    np.testing.assert_array_equal(d.basal_u_per_h[:, failed], np.broadcast_to(scheduled, (3, failed.sum())))
    np.testing.assert_allclose(d.basal_u_per_h[:, ~failed],
                               np.broadcast_to(_floor05(2 * scheduled), (3, (~failed).sum())), atol=1e-12)
    assert sim.loop.counts.failures == 3 * failed.sum()


def _wrong_shape(loop):
    n = len(loop.cob_g)
    return np.ones(n + 1), np.full(n + 1, 30.0), np.zeros(n + 1)


def _column(loop):
    n = len(loop.cob_g)
    return np.ones((n, 1)), np.full((n, 1), 30.0), np.zeros((n, 1))


def _bad_value(field: int, row: int = 1, value: float = np.nan):
    """A temp of twice the basal for everyone, with ``value`` in one patient's ``field``."""
    def answer(loop):
        n = len(loop.cob_g)
        out = [2.0 * loop.schedules.basal_u_per_h, np.full(n, 30.0), np.zeros(n)]
        out[field] = out[field].copy()
        out[field][row] = value
        return tuple(out)
    return answer


@pytest.mark.parametrize("answer, bad_rows", [
    (_wrong_shape, [0, 1, 2]), (_column, [0, 1, 2]), (lambda loop: None, [0, 1, 2]),
    (_bad_value(0), [1]), (_bad_value(1), [1]), (_bad_value(2), [1]), (_bad_value(0, 0, np.inf), [0]),
], ids=["too-long", "column", "none", "nan-rate", "nan-duration", "nan-bolus", "inf-rate"])
def test_wrong_shapes_and_non_finite_answers_are_failures(answer, bad_rows):
    n_min = 60
    sim = _sim(Scripted(answer), meals=FixedMeals((), (), ()))
    _, d, _ = _run(sim, n_min)
    periods = n_min // PERIOD_MIN
    bad = np.isin(np.arange(3), bad_rows)
    assert sim.loop.counts.failures == len(bad_rows) * periods
    np.testing.assert_array_equal(d.fallback, np.repeat(bad[:, None], periods, axis=1))
    scheduled = sim.loop.schedules.basal_u_per_h
    np.testing.assert_array_equal(d.basal_u_per_h[bad], np.repeat(scheduled[bad, None], periods, axis=1))
    if not bad.all():  # the others got their temp of twice the basal
        np.testing.assert_allclose(d.basal_u_per_h[~bad], np.repeat(_floor05(2 * scheduled[~bad])[:, None],
                                                                    periods, axis=1), atol=1e-12)
    assert (d.auto_bolus_u == 0).all() and (d.reason[bad] == -1).all()


def test_max_basal_and_max_iob_hold_a_controller_that_asks_for_50_u_per_h():
    n_min = 6 * 60
    sim = _sim(Scripted(_constant(50.0)), aid=AidSettings(max_iob_u=1.5))
    _, d, _ = _run(sim, n_min)
    lim, sched = sim.loop.limits, sim.loop.schedules
    np.testing.assert_allclose(lim.max_basal_u_per_h, AidSettings().max_basal_multiple * sched.basal_u_per_h)
    c = sim.loop.counts
    assert sim.loop.pump.capped_temps == c.periods == 3 * n_min // PERIOD_MIN  # every request was cut
    low = d.glucose_mgdl < lim.suspend_below_mgdl[:, None]
    over = d.iob_u >= lim.max_iob_u[:, None]
    capped = np.broadcast_to(_floor05(lim.max_basal_u_per_h)[:, None], d.basal_u_per_h.shape)
    assert (~over & ~low).sum() > 20 and (over & ~low).sum() > 20  # measured: 108 and 108
    np.testing.assert_allclose(d.basal_u_per_h[~over & ~low], capped[~over & ~low], atol=1e-12)
    scheduled = np.broadcast_to(sched.basal_u_per_h[:, None], d.basal_u_per_h.shape)
    np.testing.assert_array_equal(d.basal_u_per_h[over & ~low], scheduled[over & ~low])
    assert (d.basal_u_per_h[low] == 0).all()
    assert c.iob_limited == (over & ~low).sum() and c.failures == 0
    assert d.iob_u.max() < 1.5 + 4 * 5 / 60 * sched.basal_u_per_h.max()  # one capped period past it


def test_max_iob_trims_an_automatic_bolus_and_max_bolus_caps_it():
    def answer(loop):
        n = len(loop.cob_g)
        bolus = np.array([3.0, 40.0, 0.3]) if loop.minute == 0 else np.zeros(n)
        return np.zeros(n), np.zeros(n), bolus

    sim = _sim(Scripted(answer), meals=FixedMeals((), (), ()), aid=AidSettings(max_iob_u=1.52))
    _, d, steps = _run(sim, 10)
    np.testing.assert_allclose(d.auto_bolus_u[:, 0], [1.5, 1.5, 0.3], atol=1e-12)  # room 1.52 -> 1.5 U
    assert (d.auto_bolus_u[:, 1] == 0).all()
    assert sim.loop.counts.iob_limited == 2 and sim.loop.pump.capped_boluses == 1  # 40 U > 15 U
    b = steps[0].boluses  # delivered at the decision's minute
    assert b.minute.tolist() == [0, 0, 0] and np.allclose(b.units, [1.5, 1.5, 0.3])
    assert d.iob_u[:, 1] == pytest.approx([1.5, 1.5, 0.3], abs=0.01)  # and on board 5 min later


def test_low_glucose_suspend_overrides_a_high_temp_and_an_automatic_bolus():
    """50 U/h all along drives glucose down; below the threshold it also asks for a bolus."""
    threshold = 90.0

    def answer(loop):
        rate, duration, _ = _constant(50.0)(loop)
        return rate, duration, np.where(loop.glucose_mgdl < threshold, 0.5, 0.0)

    sim = _sim(Scripted(answer), aid=AidSettings(suspend_below_mgdl=threshold, max_iob_u=100.0,
                                                 max_basal_multiple=4.0))
    _, d, _ = _run(sim, 6 * 60)
    low = d.glucose_mgdl < threshold
    assert low.sum() > 20 and (~low).sum() > 20  # measured: 30 and 186 patient-periods
    assert (d.basal_u_per_h[low] == 0).all() and (d.auto_bolus_u == 0).all()
    capped = np.broadcast_to(_floor05(sim.loop.limits.max_basal_u_per_h)[:, None], d.basal_u_per_h.shape)
    np.testing.assert_allclose(d.basal_u_per_h[~low], capped[~low], atol=1e-12)
    assert sim.loop.counts.suspends == low.sum()


# --- 4. real controllers end to end -----------------------------------------------------------------

def _scenario(algorithm: str, patients=SIX, duration_min=1440, seed=3, **settings):
    return parse_scenario({
        "duration_min": duration_min, "patients": patients, "seed": seed,
        "sensor": {"model": "dexcom_g6", "start": "staggered"},
        "therapy": {"controller": {"algorithm": algorithm, **settings}}})


@pytest.fixture(scope="module")
def open_loop_day():
    sim = _scenario("basal_bolus").build()
    assert sim.loop is None  # basal_bolus does not close the loop: the open-loop engine runs
    return _run(sim, 1440, chunk_min=1440)[0]


@pytest.mark.parametrize("algorithm", ["pid", "oref0"])
def test_controllers_close_the_loop_over_a_day_of_random_meals(algorithm, open_loop_day):
    scenario = _scenario(algorithm)
    assert not scenario.behaviour_params().ideal  # random meals: realistic patients
    sim = scenario.build()
    g, d, steps = _run(sim, 1440)
    c = sim.loop.counts
    assert c.failures == 0 and c.periods == len(SIX) * 288
    np.testing.assert_array_equal(d.minute, np.arange(0, 1440, PERIOD_MIN))
    assert d.basal_u_per_h.shape == (len(SIX), 288) and not d.fallback.any()
    for x in (g, d.basal_u_per_h, d.auto_bolus_u, d.iob_u, d.cob_g):
        assert np.isfinite(x).all()
    seen = ~np.isnan(d.glucose_mgdl)
    assert seen.mean() > 0.9  # staggered sensors: a few warm-ups and dropouts
    # the loop acted: temps above and below the schedule
    sched = sim.loop.schedules.basal_u_per_h[:, None]
    assert (d.basal_u_per_h > sched + 0.05).mean() > 0.1 and (d.basal_u_per_h == 0).mean() > 0.05
    # measured (seed 3): mean 144 (pid) and 152 (oref0) vs 168 mg/dL open loop; > 180 mg/dL
    # 17 % and 19 % of the time vs 29 %
    assert g.mean() < open_loop_day.mean() - 10
    assert (g > 180).mean() < (open_loop_day > 180).mean()
    # what the loop says is on board is what the pump delivered: rebuild it from the decisions
    tracker = InsulinTracker.new(InsulinModel(sim.loop.controller.dia_h, sim.loop.controller.peak_min),
                                 sim.loop.schedules.basal_u_per_h)
    boluses = np.zeros_like(d.basal_u_per_h)
    for s in steps:
        np.add.at(boluses, (s.boluses.patient, s.boluses.minute // PERIOD_MIN), s.boluses.units)
    assert boluses.sum() > 0
    for k in range(d.minute.size):
        np.testing.assert_allclose(d.iob_u[:, k], tracker.on_board().iob_u[:, 0], rtol=0, atol=1e-9)
        tracker.add_period((d.basal_u_per_h[:, k] - sched[:, 0]) * PERIOD_MIN / 60 + boluses[:, k])


class Recorder:
    """A controller that keeps what it was shown (copies) and lets another one decide."""

    def __init__(self, inner) -> None:
        self.inner, self.seen = inner, []
        self.name, self.closes_loop, self.dia_h, self.peak_min = "recorder", True, inner.dia_h, inner.peak_min

    def decide(self, loop: LoopInput) -> LoopOutput:
        self.seen.append({
            "minute": loop.minute, "glucose": loop.cgm_mgdl[:, -1].copy(), "age": loop.cgm_age_min.copy(),
            "delivered": loop.delivered_u[:, -1].copy(), "bolus": loop.bolus_u[:, -1].copy(),
            "carbs": loop.announced_carbs_g[:, -1].copy(), "carbs_6h": loop.carbs_6h_g.copy(),
            "cob": loop.cob_g.copy(), "bolus_age": loop.last_bolus_age_min.copy(),
            "carbs_age": loop.last_carbs_age_min.copy(), "temp_min": loop.temp_remaining_min.copy(),
            "history": loop.cgm_mgdl.shape})
        return self.inner.decide(loop)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.inner.load_state_dict(state)


@pytest.mark.parametrize("sensor", ["dexcom_g6", "libre3", "libre2_history"])
def test_the_controller_sees_the_readings_deliveries_and_announced_carbs(sensor):
    """Readings every 5, 1 and 15 min after a 2 h, 1 h and 1 h warm-up; a bolused 50 g meal at 152."""
    recorder = Recorder(Pid())
    spec = get_sensor(sensor)
    meal = FixedMeals((152,), (50.0,), (True,))
    sim = Simulation(get_model("uva_padova_s2013"), reference_cohort(NAMES), meal, Therapy(), spec, seed=1,
                     controller=recorder)
    _, d, steps = _run(sim, 240)
    patient, minute, glucose = _readings(steps)
    assert minute.min() >= spec.warmup_min
    cr = sim.cohort.cr_g_per_u
    seen = {k: np.array([s[k] for s in recorder.seen]) for k in recorder.seen[0] if k != "history"}  # (P, N)
    assert recorder.seen[0]["history"] == (3, 72)
    np.testing.assert_array_equal(seen["minute"], d.minute)
    for k, m in enumerate(d.minute):
        for i in range(3):
            last = np.flatnonzero((patient == i) & (minute >= m - PERIOD_MIN) & (minute < m))
            if len(last):  # the newest slot holds the period's last reading; nan when it had none
                assert seen["glucose"][k, i] == np.float64(glucose[last[-1]]) == d.glucose_mgdl[i, k]
                assert seen["age"][k, i] == m - minute[last[-1]]
            else:
                assert np.isnan(seen["glucose"][k, i]) and np.isnan(d.glucose_mgdl[i, k])
    warming = d.minute <= spec.warmup_min
    assert np.isnan(seen["glucose"][warming]).all() and (seen["age"][warming] > 1e5).all()
    gaps = np.isnan(d.glucose_mgdl[:, ~warming]).mean()
    assert gaps == pytest.approx({"dexcom_g6": 0, "libre3": 0, "libre2_history": 2 / 3}[sensor], abs=0.02)
    np.testing.assert_array_equal(d.reason == 0, np.isnan(d.glucose_mgdl))  # PID: NO_CGM without a reading
    # PID sets a 30-min temp when it sees glucose: 25 min of it are left at the next decision
    saw = ~np.isnan(d.glucose_mgdl[:, :-1].T)
    assert (seen["temp_min"][1:][saw] == 25).all() and saw.sum() > 20
    # what the pump delivered in the last period, boluses included
    bolus = np.zeros_like(d.basal_u_per_h)
    for s in steps:
        np.add.at(bolus, (s.boluses.patient, s.boluses.minute // PERIOD_MIN), s.boluses.units)
    assert (bolus[:, 30] > 2).all() and bolus.sum() == bolus[:, 30].sum()  # the meal bolus, minute 152
    np.testing.assert_allclose(seen["delivered"][1:].T,
                               d.basal_u_per_h[:, :-1] * PERIOD_MIN / 60 + bolus[:, :-1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(seen["bolus"][1:].T, bolus[:, :-1])
    # the carbs the patient counted, when they bolused (ideal patients: exactly the meal)
    np.testing.assert_allclose(seen["carbs"][31], 50.0, rtol=1e-9)
    assert (seen["carbs"][np.arange(48) != 31] == 0).all()
    np.testing.assert_allclose(seen["carbs_6h"][31:], 50.0, rtol=1e-9)
    assert (seen["carbs_6h"][:31] == 0).all()
    since = np.broadcast_to((d.minute[31:] - 152.5)[:, None], (17, 3))  # from the middle of its period
    np.testing.assert_array_equal(seen["carbs_age"][31:], since)
    np.testing.assert_array_equal(seen["bolus_age"][31:], seen["carbs_age"][31:])
    assert (seen["bolus_age"][:31] == NEVER_MIN).all()
    # announced carbs absorb at oref0's slowest rate (8 mg/dL per 5 min) until none are left
    absorb = 8.0 * cr / sim.cohort.cf_mgdl_per_u
    np.testing.assert_allclose(seen["cob"][31:], np.maximum(50.0 - absorb * np.arange(17)[:, None], 0.0),
                               rtol=1e-9)
    np.testing.assert_array_equal(d.cob_g, seen["cob"].T)


# --- 5. checkpoints and 6. chunks -------------------------------------------------------------------

def _assert_same(a_steps, b_steps):
    for x, y in zip(_readings(a_steps), _readings(b_steps)):
        np.testing.assert_array_equal(x, y)
    da = Decisions.concat([s.decisions for s in a_steps])
    db = Decisions.concat([s.decisions for s in b_steps])
    for k in vars(da):
        np.testing.assert_array_equal(getattr(da, k), getattr(db, k), err_msg=k)


@pytest.mark.parametrize("algorithm, settings", [("oref0", {}), ("oref0", {"enable_smb": True}),
                                                 ("pid", {})], ids=["oref0", "oref0-smb", "pid"])
def test_checkpoint_resumes_bit_identically(algorithm, settings):
    """Checkpoint 2 h 5 min in (mid-hour: sensitivity changes at hours), run 2 h on; a fresh
    simulation resumed from the checkpoint runs the same 2 h."""
    scenario = _scenario(algorithm, patients=NAMES, **settings)
    first = scenario.build()
    list(first.run(125))
    state = first.state_dict()
    snapshot = {k: np.array(v, copy=True) for k, v in state.items()}
    tail = list(first.run(120))
    for k, v in state.items():  # a snapshot: running on does not change it
        np.testing.assert_array_equal(v, snapshot[k], err_msg=k)
    assert any(len(s.readings) for s in tail)
    resumed = scenario.build()
    resumed.load_state_dict(state)
    again = list(resumed.run(120, chunk_min=30))
    _assert_same(tail, again)
    assert resumed.minute == first.minute and resumed.loop.counts == first.loop.counts
    if algorithm == "pid":  # the integral is state: without it the decisions differ
        assert np.abs(state["loop_controller_integral_u_h"]).max() > 0
        partial = scenario.build()
        partial.load_state_dict({k: v for k, v in state.items() if "integral" not in k})
        d = Decisions.concat([s.decisions for s in partial.run(120)])
        assert not np.array_equal(d.basal_u_per_h,
                                  Decisions.concat([s.decisions for s in tail]).basal_u_per_h)


def test_closed_loop_results_do_not_depend_on_chunks():
    scenario = _scenario("oref0", patients=NAMES, duration_min=240, enable_smb=True)
    runs = [list(scenario.build().run(240, chunk_min=chunk)) for chunk in (60, 5, 35, 240)]
    for other in runs[1:]:
        _assert_same(runs[0], other)
    assert len(runs[1]) == 48 and len(runs[0]) == 4


# --- 7. bad configuration ---------------------------------------------------------------------------

def test_bad_controller_settings_name_their_field():
    base = {"duration_min": 60, "patients": ["adult#001"]}
    with pytest.raises(ConfigError) as e:
        parse_scenario({**base, "therapy": {"controller": {"algorithm": "pid", "kp_per_h": -1}}})
    # the path carries the union's tag: therapy.controller.pid.kp_per_h
    assert e.value.field.startswith("therapy.controller.") and e.value.field.endswith(".kp_per_h")
    assert "kp_per_h" in str(e.value) and "greater than or equal to 0" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_scenario({**base, "therapy": {"controller": {"algorithm": "magic"}}})
    assert e.value.field == "therapy.controller.algorithm" and "algorithm" in str(e.value)
    with pytest.raises(ConfigError) as e:  # settings of another algorithm are not silently ignored
        parse_scenario({**base, "therapy": {"controller": {"algorithm": "oref0", "kp_per_h": 1}}})
    assert "kp_per_h" in e.value.field
    ok = parse_scenario({**base, "therapy": {"controller": {"algorithm": "pid", "kp_per_h": 1.5}}})
    assert ok.build().loop.controller.gains.kp_per_h == 1.5


def test_a_closed_loop_advances_whole_decision_periods():
    sim = _sim(Scripted(_constant(multiple=1.0)), meals=FixedMeals((), (), ()))
    with pytest.raises(ValueError, match="n_min"):
        sim.advance(3)
    with pytest.raises(ValueError, match="n_min"):
        list(sim.run(60, chunk_min=7))
    assert sim.minute == 0
    sim.advance(10)
    assert sim.minute == 10 and sim.loop.counts.periods == 2 * len(NAMES)
    _sim(meals=FixedMeals((), (), ())).advance(3)  # the open loop takes any minutes
