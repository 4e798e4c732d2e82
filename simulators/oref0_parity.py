"""Parity of the oref0 port with the real oref0: random but physiologically consistent decisions.

`random_decisions` draws N decision states the way a looping patient produces them:
- a profile from a total daily dose of 15-80 U (ISF by the 1800 rule, CR by the 500 rule, basal
  45 % of it), targets 80-160 mg/dL, max IOB 0-8 U, max basal 2-5x basal, autosens 0.7-1.3,
  a temporary target on 15 % (80-160 mg/dL);
- six hours of 30-min temp basals (net of the scheduled basal, split into +-0.05 U pulses as
  oref0 does), a running temp (or none), a meal in the last 6 h with its bolus and carbs on
  board, perhaps a correction bolus;
- CGM glucose 40-400 mg/dL, mostly where insulin and carbs on board balance the distance to
  target (as a working loop keeps it), with deltas that follow the insulin effect (BGI) plus carb
  impact and noise; a few states are flat, stale or noisy CGM to exercise the error rules.
IOB and activity ticks come from `insulin_on_board`, and the port and the reference are fed the
same ticks, so the comparison isolates determine-basal.

`compare` runs both and measures a decision by the basal rate the pump runs afterwards (oref0
returning no rate means the running temp continues, or the scheduled basal if none runs: see
`oref0_reference.effective_rate`), and a suspend by that rate being zero.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields, replace

import numpy as np

from simulators.controllers.interface import LoopInput, LoopOutput
from simulators.controllers.oref0 import (
    Oref0Decision,
    Oref0Profile,
    Oref0Reason,
    Oref0State,
    determine_basal,
    insulin_on_board,
    temp_basal_pulses,
    uploaded_curve,
)
from simulators.controllers.oref0_loop import Oref0Controller, Oref0Settings, oref0_view
from simulators.controllers.oref0_reference import Oref0Reference, effective_rates, oref0_inputs
from simulators.scenario import parse_scenario

__all__ = ["FEATURES", "IobParity", "ParityReport", "closed_loop_decisions", "compare", "compare_iob",
           "random_decisions"]

FEATURES = ("basic", "uam", "smb")  # no SMB/UAM (oref0's most common set-up); UAM; SMB and UAM
_LGS_REASON = re.compile(r"minGuardBG -?[\d.]+<")  # the low-glucose-suspend rule's reason text


def random_decisions(n: int, seed: int, features: str = "basic") -> tuple[Oref0State, Oref0Profile]:
    """``n`` random decision states and profiles (see the module docstring); ``features`` in FEATURES."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, not {features!r}")
    rng = np.random.default_rng(seed)
    # settings that go together, from total daily dose: the 1800 and 500 rules, basal 45 % of TDD
    tdd = np.exp(rng.uniform(np.log(15), np.log(80), n))
    basal = np.round(tdd * 0.45 / 24 * rng.uniform(0.8, 1.2, n) * 20) / 20
    ratio = np.where(rng.random(n) < 0.5, 1.0, np.round(rng.uniform(0.7, 1.3, n), 2))
    min_bg = rng.choice([80.0, 90.0, 100.0, 110.0, 120.0], n)
    profile = Oref0Profile(
        current_basal_u_per_h=basal,
        sens_mgdl_per_u=np.round(1800 / tdd * rng.uniform(0.8, 1.2, n)),
        carb_ratio_g_per_u=np.round(500 / tdd * rng.uniform(0.8, 1.2, n) * 2) / 2,
        min_bg_mgdl=min_bg,
        max_bg_mgdl=min_bg + rng.choice([0.0, 10.0, 20.0, 40.0], n),
        max_iob_u=rng.choice([0.0, 1.0, 2.0, 3.0, 5.0, 8.0], n, p=[0.1, 0.15, 0.2, 0.25, 0.2, 0.1]),
        max_basal_u_per_h=np.round(basal * rng.uniform(2, 5, n) * 20) / 20,
        max_daily_basal_u_per_h=np.round(basal * rng.uniform(1, 1.5, n) * 20) / 20,
        max_daily_safety_multiplier=rng.choice([3.0, 3.0, 2.0, 4.0], n),
        current_basal_safety_multiplier=rng.choice([4.0, 4.0, 3.0, 5.0], n),
        enable_uam=features != "basic",
        enable_smb_always=(rng.random(n) < 0.4) if features == "smb" else False,
        enable_smb_with_cob=(rng.random(n) < 0.7) if features == "smb" else False,
        enable_smb_after_carbs=(rng.random(n) < 0.3) if features == "smb" else False,
        enable_smb_high_bg=(rng.random(n) < 0.3) if features == "smb" else False,
        max_smb_basal_minutes=rng.choice([30.0, 60.0, 90.0], n),
        max_uam_smb_basal_minutes=rng.choice([30.0, 60.0], n),
        sensitivity_raises_target=rng.random(n) < 0.7,
        resistance_lowers_target=rng.random(n) < 0.3,
        pump_x23_x54=rng.random(n) < 0.3,
    )
    # a temp target on 15 %: eating soon (80-90) or exercise (120-160), with the settings it uses
    temp_target = rng.random(n) < 0.15
    target = rng.choice([80.0, 90.0, 120.0, 140.0, 160.0], n)
    profile = replace(
        profile, min_bg_mgdl=np.where(temp_target, target, profile.min_bg_mgdl),
        max_bg_mgdl=np.where(temp_target, target, profile.max_bg_mgdl), temptarget_set=temp_target,
        high_temptarget_raises_sensitivity=rng.random(n) < 0.5,
        low_temptarget_lowers_sensitivity=rng.random(n) < 0.3,
        half_basal_exercise_target_mgdl=rng.choice([140.0, 160.0, 180.0], n),
        allow_smb_with_high_temptarget=rng.random(n) < 0.2,
        enable_smb_with_temptarget=(rng.random(n) < 0.5) if features == "smb" else False)

    # meals (in the last 6 h) and doses: 6 h of 30-min temps, a running temp, the meal bolus and
    # perhaps a correction; then oref0's IOB ticks
    has_carbs = rng.random(n) < 0.45
    carbs = np.where(has_carbs, np.round(rng.uniform(10, 100, n)), 0.0)
    carb_age = np.where(has_carbs, np.round(rng.uniform(0, 360, n)), 0.0)
    cr = profile.carb_ratio_g_per_u
    doses: list[tuple[np.ndarray, np.ndarray]] = []
    temp_rate = np.zeros(n)
    temp_remaining = np.zeros(n)
    last_bolus_age = np.full(n, 1e7)
    multiples = np.array([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.5, 2.0, 3.0])
    for i in range(n):
        scheduled = basal[i] * ratio[i]
        parts = [temp_basal_pulses(basal[i] * rng.choice(multiples) - scheduled, start, 30.0)
                 for start in np.arange(-360.0, -30.0, 30.0)]
        if rng.random() < 0.7:  # a temp is running, set 0-29 min ago
            age = float(rng.integers(0, 30))
            duration = 30.0 if rng.random() < 0.8 else float(rng.choice([60.0, 90.0, 120.0]))
            temp_rate[i] = float(np.round(basal[i] * rng.choice(multiples) * 20) / 20)
            temp_remaining[i] = duration - age
            # oref0 projects the running temp only to 1 min from now
            parts.append(temp_basal_pulses(temp_rate[i] - scheduled, -age, age + 1.0))
            parts.append(temp_basal_pulses(basal[i] * rng.choice(multiples) - scheduled, -30.0, 30.0 - age))
        else:
            parts.append(temp_basal_pulses(basal[i] * rng.choice(multiples) - scheduled, -30.0, 30.0))
        bolus_u, bolus_t = [], []
        if has_carbs[i]:  # the meal bolus, 60-110 % of carbs / CR, given around the meal
            bolus_u.append(np.round(carbs[i] / cr[i] * rng.uniform(0.6, 1.1), 1))
            bolus_t.append(min(0.0, -carb_age[i] + rng.uniform(-15, 15)))
        if rng.random() < 0.25:  # a correction bolus
            bolus_u.append(np.round(rng.uniform(0.3, 2.5), 1))
            bolus_t.append(-rng.uniform(0, 300))
        if bolus_u:
            parts.append((np.array(bolus_u), np.array(bolus_t)))
            last_bolus_age[i] = -max(bolus_t)
        units = np.concatenate([u for u, _ in parts])
        doses.append((units, np.concatenate([t for _, t in parts])))
    width = max(len(u) for u, _ in doses)
    dose_u = np.zeros((n, width))
    dose_t = np.zeros((n, width))
    for i, (u, t) in enumerate(doses):
        dose_u[i, :len(u)] = u
        dose_t[i, :len(t)] = t
    iob, activity, zt_iob, zt_activity = insulin_on_board(dose_u, dose_t, basal * ratio)

    # CGM
    absorbed = np.clip(carb_age / np.maximum(180.0, carbs / 20 * 60) * rng.uniform(0.6, 1.4, n), 0, 1)
    cob = np.round(carbs * (1 - absorbed))
    sens_now = profile.sens_mgdl_per_u / ratio
    bgi = -activity[:, 0] * sens_now * 5
    carb_impact = np.where(cob > 0, rng.uniform(0, 10, n), 0.0)
    delta = np.round(bgi + carb_impact + rng.normal(0, 3, n), 2)
    short_avg = np.round(delta + rng.normal(0, 1.5, n), 2)
    long_avg = np.round(short_avg + rng.normal(0, 2, n), 2)
    # glucose: mostly where a working loop keeps it, insulin and carbs on board balancing the
    # distance to target (eventual BG near target, +-40 mg/dL); a quarter anywhere in 40-400
    target = (profile.min_bg_mgdl + profile.max_bg_mgdl) / 2
    balanced = (target + iob[:, 0] * sens_now * rng.uniform(0.8, 1.3, n)
                - cob * sens_now / cr * rng.uniform(0.3, 1.0, n) + rng.normal(0, 40, n))
    anywhere = np.exp(rng.uniform(np.log(40), np.log(400), n))
    glucose = np.round(np.clip(np.where(rng.random(n) < 0.75, balanced, anywhere), 40, 400))
    flat = rng.random(n) < 0.03
    delta[flat] = 0.0
    short_avg[flat] = np.round(rng.uniform(-0.9, 0.9, flat.sum()), 2)
    long_avg[flat] = np.round(rng.uniform(-0.9, 0.9, flat.sum()), 2)
    state = Oref0State(
        glucose_mgdl=glucose,
        delta_mgdl=delta, short_avgdelta_mgdl=short_avg, long_avgdelta_mgdl=long_avg,
        iob_u=iob, activity_u_per_min=activity, zero_temp_iob_u=zt_iob,
        zero_temp_activity_u_per_min=zt_activity,
        temp_rate_u_per_h=temp_rate, temp_remaining_min=temp_remaining,
        carbs_g=carbs, cob_g=cob, last_carb_age_min=carb_age,
        slope_from_max_deviation=np.round(np.where(has_carbs, rng.uniform(-4, 0, n), 0.0), 2),
        slope_from_min_deviation=np.round(np.where(has_carbs, rng.uniform(0, 4, n), 0.0), 2),
        last_bolus_age_min=last_bolus_age,
        autosens_ratio=ratio,
        glucose_age_min=np.where(rng.random(n) < 0.02, rng.uniform(13, 30, n), rng.uniform(0, 5, n)),
        noise=rng.choice([0.0, 1.0, 2.0, 3.0], n, p=[0.9, 0.05, 0.04, 0.01]),
        microbolus_allowed=features == "smb",
    )
    return state, profile


class _RecordingOref0(Oref0Controller):
    """The oref0 port in the loop, keeping every decision's inputs."""

    def __init__(self, settings: Oref0Settings) -> None:
        super().__init__(settings)
        self.views: list[tuple[Oref0State, Oref0Profile]] = []

    def decide(self, loop: LoopInput) -> LoopOutput:
        self.views.append(oref0_view(loop, self.settings))
        return super().decide(loop)


def _stack(parts: list, cls: type, n: int) -> object:
    """Dataclasses of ``n`` patients' fields (arrays, or scalars for all) as one of all their rows."""
    def rows(p: object, name: str) -> np.ndarray:
        v = np.asarray(getattr(p, name))
        return v if v.ndim else np.full(n, v.item())

    return cls(**{f.name: np.concatenate([rows(p, f.name) for p in parts]) for f in fields(cls)})


def closed_loop_decisions(n_patients: int, days: float, seed: int, features: str = "basic"
                          ) -> tuple[Oref0State, Oref0Profile]:
    """The inputs of every oref0 decision of a closed-loop run (sampled patients, default scenario).

    The port decides in the loop; its inputs, in order (period by period, patients within), are
    what `compare` then gives both the port and the real oref0.
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, not {features!r}")
    scenario = parse_scenario({"duration_min": int(days * 1440), "patients": {"n": n_patients, "seed": seed},
                               "seed": seed})
    controller = _RecordingOref0(Oref0Settings(enable_smb=features == "smb", enable_uam=features != "basic"))
    sim = scenario.build(controller=controller)
    for _ in sim.run(scenario.duration_min):
        pass
    states = [v[0] for v in controller.views]
    profiles = [v[1] for v in controller.views]
    return (_stack(states, Oref0State, n_patients),  # type: ignore[return-value]
            _stack(profiles, Oref0Profile, n_patients))


@dataclass(frozen=True)
class ParityReport:
    """The port against the reference over the same decisions."""

    decisions: int
    fraction_within_0_05: float  # |port rate - oref0 rate| <= 0.05 U/h (rates the pump then runs)
    suspend_agreement: float  # same zero-rate (suspend) decision
    lgs_agreement: float  # same low-glucose-suspend rule firing
    enacted_agreement: float  # same "new temp" vs "leave the pump alone"
    smb_agreement: float  # same microbolus within 0.001 U
    eventual_bg_agreement: float  # same eventualBG where both report one
    pred_agreement: float  # same predBGs IOB, COB and UAM curves (as uploaded) where oref0 gives them
    reference_errors: int
    port_s: float  # wall time of the port's call
    reference_s: float
    mismatches: list[int]  # indices of decisions with a rate or suspend disagreement

    def as_bar(self) -> dict:
        """The ``oref0_parity`` entry of ``benchmarks/bench_controllers.py --json``."""
        return {"decisions": self.decisions, "fraction_within_0.05": self.fraction_within_0_05,
                "suspend_agreement": self.suspend_agreement}


def compare(state: Oref0State, profile: Oref0Profile, reference: Oref0Reference,
            batch: int = 1000) -> tuple[ParityReport, Oref0Decision, list[dict]]:
    """Run the port and the reference on the same decisions and measure their agreement."""
    n = state.glucose_mgdl.shape[0]
    t0 = time.perf_counter()
    port = determine_basal(state, profile)
    port_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results: list[dict] = []
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        results += reference.run([oref0_inputs(state, profile, i) for i in range(start, stop)])
    reference_s = time.perf_counter() - t0

    ref_rate = effective_rates(results, state, profile)
    within = np.abs(port.rate_u_per_h - ref_rate) <= 0.05 + 1e-9
    suspend_same = (port.rate_u_per_h == 0) == (ref_rate == 0)
    ref_lgs = np.array([bool(_LGS_REASON.search(r.get("reason", ""))) for r in results])
    ref_enacted = np.array(["rate" in r and "duration" in r for r in results])
    ref_smb = np.array([float(r.get("units", 0.0)) for r in results])
    ref_eventual = np.array([float(r.get("eventualBG", np.nan)) for r in results])
    both = ~np.isnan(ref_eventual) & ~np.isnan(port.eventual_bg_mgdl)
    curves = {"IOB": port.pred_iob_mgdl, "COB": port.pred_cob_mgdl, "UAM": port.pred_uam_mgdl}
    pred_same = [all(uploaded_curve(curves[k][i]) == r["predBGs"][k] for k in curves if k in r["predBGs"])
                 for i, r in enumerate(results) if "predBGs" in r]
    report = ParityReport(
        decisions=n,
        fraction_within_0_05=float(within.mean()),
        suspend_agreement=float(suspend_same.mean()),
        lgs_agreement=float((ref_lgs == (port.reason == Oref0Reason.LOW_GLUCOSE_SUSPEND)).mean()),
        enacted_agreement=float((ref_enacted == port.enacted).mean()),
        smb_agreement=float((np.abs(ref_smb - port.smb_u) < 1e-3).mean()),
        eventual_bg_agreement=float((ref_eventual[both] == port.eventual_bg_mgdl[both]).mean()),
        pred_agreement=float(np.mean(pred_same)) if pred_same else float("nan"),
        reference_errors=sum("error" in r for r in results),
        port_s=port_s, reference_s=reference_s,
        mismatches=[int(i) for i in np.flatnonzero(~within | ~suspend_same)],
    )
    return report, port, results


def subset(state: Oref0State, idx) -> Oref0State:
    """The decisions ``idx`` of ``state`` (for looking at mismatches one by one)."""
    def pick(v):
        a = np.asarray(v)
        return a[idx] if a.ndim else v
    return replace(state, **{f: pick(getattr(state, f)) for f in state.__dataclass_fields__})


@dataclass(frozen=True)
class IobParity:
    """`insulin_on_board` against oref0's lib/iob on the same pump histories (all 48 ticks)."""

    histories: int
    max_iob_error_u: float
    max_activity_error_u_per_min: float
    max_zero_temp_iob_error_u: float
    max_zero_temp_activity_error_u_per_min: float


def compare_iob(n: int, seed: int, reference: Oref0Reference,
                now_ms: int = 1_700_049_600_000) -> IobParity:  # 2023-11-15 12:00 UTC
    """Random 6-h pump histories (30-min temps, a running temp, boluses) through both IOB codes.

    oref0 reads them as Nightscout treatments (``Temp Basal`` rate/duration, ``Bolus`` amount),
    newest first, with a one-rate basal schedule; the port as `temp_basal_pulses` and boluses.
    """
    rng = np.random.default_rng(seed)
    requests, doses = [], []
    basal = np.round(rng.uniform(0.3, 2.5, n) * 20) / 20
    ratio = np.where(rng.random(n) < 0.5, 1.0, np.round(rng.uniform(0.7, 1.3, n), 2))

    def iso(minutes: float) -> str:
        return np.datetime_as_string(np.datetime64(int(now_ms + minutes * 60_000), "ms"), unit="s") + "Z"

    for i in range(n):
        history, parts = [], []
        starts = list(np.arange(-360.0, 0.0, 30.0) + rng.integers(0, 30))
        for k, start in enumerate(starts):
            rate = float(np.round(basal[i] * rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]) * 20) / 20)
            duration = 30.0 if k + 1 < len(starts) else float(rng.choice([30.0, 60.0, 120.0]))
            end = starts[k + 1] if k + 1 < len(starts) else 1.0  # oref0 ends the running temp at +1 min
            history.append({"eventType": "Temp Basal", "rate": rate, "duration": duration,
                            "timestamp": iso(start)})
            parts.append(temp_basal_pulses(rate - basal[i] * ratio[i], start, min(duration, end - start)))
        for _ in range(rng.integers(0, 4)):
            at = -float(rng.integers(0, 360))
            amount = float(np.round(rng.uniform(0.2, 8.0), 1))
            history.append({"_type": "Bolus", "amount": amount, "timestamp": iso(at)})
            parts.append((np.array([amount]), np.array([at])))
        history.sort(key=lambda r: r["timestamp"], reverse=True)
        requests.append({"history": history, "clock": iso(0), "autosens": {"ratio": float(ratio[i])},
                         "profile": {"current_basal": float(basal[i]), "dia": 5, "curve": "rapid-acting",
                                     "basalprofile": [{"i": 0, "start": "00:00:00", "minutes": 0,
                                                       "rate": float(basal[i])}]}})
        doses.append((np.concatenate([u for u, _ in parts]), np.concatenate([t for _, t in parts])))
    width = max(len(u) for u, _ in doses)
    dose_u, dose_t = np.zeros((n, width)), np.zeros((n, width))
    for i, (u, t) in enumerate(doses):
        dose_u[i, :len(u)], dose_t[i, :len(t)] = u, t
    port = insulin_on_board(dose_u, dose_t, basal * ratio)
    ref = reference.iob(requests)
    errors = [r["error"] for r in ref if "error" in r]
    if errors:
        raise RuntimeError(f"oref0 lib/iob failed on {len(errors)} histories: {errors[0]}")
    keys = ("iob", "activity", "zt_iob", "zt_activity")
    diff = [float(np.abs(np.array([r[k] for r in ref]) - p).max()) for k, p in zip(keys, port)]
    return IobParity(n, *diff)
