"""Scenario files (YAML or JSON): who is simulated, for how long, eating what, dosing how.

The schema is pydantic, so a bad file is reported by field ("meals.1.grams: Input should be
greater than or equal to 0") before anything runs. ``Scenario.build()`` turns it into a
ready ``Simulation``. The README documents every field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cgm_ray.config import Strict, read_mapping, validate
from cgm_ray.errors import ConfigError
from simulators.behaviour import Behaviour, BehaviourParams, PatientBehaviour, draw
from simulators.controllers.interface import PERIOD_MIN, Controller
from simulators.controllers.registry import BasalBolusConfig, ControllerSpec
from simulators.engine import Simulation
from simulators.meals import FixedMeals, MealPlan, RandomDailyMeals
from simulators.models import get_model
from simulators.population import (
    AGE_GROUPS,
    FIRST_SAMPLED_KEY,
    Cohort,
    reference_cohort,
    sample_cohort,
)
from simulators.sensor import SensorSpec, get_sensor
from simulators.stability import stable_cohort
from simulators.therapy import HypoTreatment, Therapy
from simulators.titration import titrate

POPULATION_KEY_SPACE = 10_000_000  # most patients in one population


class Meal(Strict):
    minute: int = Field(ge=0, description="start, minutes from the scenario start")
    grams: float = Field(ge=0, le=500, description="carbohydrate, eaten at 5 g/min")
    bolus: bool = True


class RandomMeals(Strict):
    random: Literal["daily"] = "daily"


class PopulationSpec(Strict):
    n: int = Field(ge=1, le=POPULATION_KEY_SPACE)
    seed: int = Field(0, ge=0, le=10**9, description="also sets the patients' identities")
    groups: tuple[Literal["adolescent", "adult", "child"], ...] = AGE_GROUPS
    titrate: bool = Field(True, description="tune each carb ratio in silico (simulators.titration)")
    stability_check: bool = Field(
        True, description="re-draw patients that sit below 40 mg/dL for 2 h in a 2-day ideal "
        "run with their titrated therapy (simulators.population.unstable_patients)")


class SensorConfig(Strict):
    model: str = "dexcom_g6"
    start: Literal["fresh", "staggered"] = "fresh"


class TherapyConfig(Strict):
    basal: Literal["steady_state", "none"] = "steady_state"
    bolus: Literal["carb_ratio", "none"] = "carb_ratio"
    correction: bool = False
    target_mgdl: float = Field(140.0, ge=70, le=250)
    correct_above_mgdl: float = Field(150.0, ge=70, le=400)
    missed_bolus_prob: float = Field(0.0, ge=0, le=1)
    late_bolus_prob: float = Field(0.0, ge=0, le=1)
    late_bolus_delay_min: tuple[int, int] = (15, 60)
    controller: ControllerSpec = Field(
        default_factory=BasalBolusConfig, description="the insulin-dosing algorithm: "
        "{algorithm: basal_bolus|pid|oref0|oref0_reference|loop_reference|policy, ...settings}; "
        "basal_bolus is open loop")

    @field_validator("late_bolus_delay_min")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1]:
            raise ValueError("must be [low, high] with 0 <= low <= high")
        return v


class Scenario(Strict):
    """A simulation scenario as written in a file."""

    duration_min: int = Field(ge=1, le=10 * 365 * 1440)
    patients: list[str] | PopulationSpec
    model: Literal["uva_padova_s2013", "uva_padova", "bergman"] = Field(
        "uva_padova_s2013", description="S2013 counter-regulates (glucagon); uva_padova is "
        "the 2008 model simglucose implements")
    sensor: SensorConfig = SensorConfig()
    therapy: TherapyConfig = TherapyConfig()
    meals: list[Meal] | RandomMeals = RandomMeals()
    behaviour: Behaviour | None = Field(
        None, description="patients' habits (simulators.behaviour); default: realistic with "
        "random meals, ideal with a written meal list (the list says what is eaten and bolused)")
    seed: int = 0
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    substeps: int = Field(1, ge=1, le=16, description="RK4 steps per simulated minute")

    @field_validator("patients")
    @classmethod
    def _some(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("list at least one patient")
        return v

    @property
    def start_ms(self) -> int:
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
        return int(start.timestamp() * 1000)

    @property
    def n_patients(self) -> int:
        p = self.patients
        return p.n if isinstance(p, PopulationSpec) else len(p)

    def cohort(self, lo: int = 0, hi: int | None = None, titrated: bool = True) -> Cohort:
        """Patients [lo, hi) of this scenario: a shard is the same patients as in the whole.

        ``titrated=False`` skips the carb-ratio titration of sampled patients (for callers
        that restore the titrated therapy from a checkpoint) where it can: with
        ``population.stability_check`` the check needs the titrated therapy to decide who
        is re-drawn, so it runs anyway and the same patients come back.
        """
        hi = self.n_patients if hi is None else hi
        if isinstance(self.patients, PopulationSpec):
            p = self.patients
            # Each seed owns its own key range, so populations never share patient or sensor ids.
            first = FIRST_SAMPLED_KEY + p.seed * POPULATION_KEY_SPACE + lo
            sampled = sample_cohort(hi - lo, p.seed, p.groups, first_key=first)
            if not p.titrate:
                return sampled
            if p.stability_check:
                return stable_cohort(sampled, p.seed, p.groups,
                                     lambda c: titrate(c, self.model), self.model)
            return titrate(sampled, self.model) if titrated else sampled
        return reference_cohort(self.patients[lo:hi])

    def sensor_spec(self) -> SensorSpec:
        return get_sensor(self.sensor.model)

    @property
    def start_minute_of_day(self) -> int:
        return int((self.start_ms // 60_000) % 1440)

    def behaviour_params(self) -> BehaviourParams:
        """The behaviour in force: the section as written, else the default by meal plan."""
        section = self.behaviour
        if section is None:
            random = isinstance(self.meals, RandomMeals)
            section = Behaviour(preset="realistic" if random else "ideal")
        return section.params()

    def patient_behaviour(self, cohort: Cohort) -> PatientBehaviour | None:
        """Each patient's habits (None for ideal patients); keyed by (seed, patient key)."""
        params = self.behaviour_params()
        if params.ideal:
            return None
        return draw(params, cohort.keys, cohort.age_group, self.seed, self.start_minute_of_day)

    def meal_plan(self) -> MealPlan:
        if isinstance(self.meals, RandomMeals):
            return RandomDailyMeals(self.seed, start_minute_of_day=self.start_minute_of_day)
        return FixedMeals(tuple(m.minute for m in self.meals), tuple(m.grams for m in self.meals),
                          tuple(m.bolus for m in self.meals))

    def build(self, cohort: Cohort | None = None, controller: Controller | None = None) -> Simulation:
        """A ready simulation (of ``cohort``, a shard of this scenario's, when given).

        ``controller`` replaces the one ``therapy.controller`` builds (with its targets and limits).
        """
        cohort = self.cohort() if cohort is None else cohort
        behaviour = self.patient_behaviour(cohort)
        meals = self.meal_plan() if behaviour is None else behaviour.meal_plan(self.meal_plan())
        params = self.behaviour_params()
        lows = HypoTreatment(below_mgdl=params.hypo_below_mgdl,
                             overtreat_prob=params.hypo_overtreat_prob)
        config = self.therapy.controller
        return Simulation(
            get_model(self.model), cohort, meals,
            Therapy(**self.therapy.model_dump(exclude={"controller"})), self.sensor_spec(),
            seed=self.seed, staggered_sensors=self.sensor.start == "staggered",
            substeps=self.substeps, hypo_treatment=lows, behaviour=behaviour,
            controller=controller if controller is not None else config.build(), aid=config.aid())


def parse_scenario(data: object) -> Scenario:
    """Validate a scenario mapping; errors name the offending field."""
    scenario = validate(Scenario, data)
    scenario.sensor_spec()
    if scenario.therapy.controller.closes_loop and scenario.duration_min % PERIOD_MIN:
        raise ConfigError("duration_min", f"must be a multiple of {PERIOD_MIN} with a closed loop (it "
                          f"decides every {PERIOD_MIN} min), got {scenario.duration_min}")
    if isinstance(scenario.patients, list):
        reference_cohort(scenario.patients)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file."""
    return parse_scenario(read_mapping(path))
