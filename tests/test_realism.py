"""The default virtual population behaves like real people with type 1 diabetes on open-loop
therapy: its medians by age group fall in the published ranges, and nobody sits below
54 mg/dL for hours (``cgm_ray.glucose.outcomes``; the notebook
``04_population_validation.ipynb`` shows the same population beside the cohorts)."""

from __future__ import annotations

import pytest

from cgm_ray.glucose.outcomes import MAX_LONG_LOW_DAY_PERCENT, OPEN_LOOP_BARS, check_bars
from simulators.outcomes import population_outcomes
from simulators.scenario import parse_scenario

# The notebook's population: the scenario defaults, 600 sampled patients, 14 days.
DEFAULT_POPULATION = {"duration_min": 14 * 1440, "patients": {"n": 600, "seed": 2026}, "seed": 7}


@pytest.fixture(scope="module")
def outcomes():
    return population_outcomes(parse_scenario(DEFAULT_POPULATION))


def test_the_default_population_is_realistic_and_counter_regulates(outcomes):
    scenario = parse_scenario(DEFAULT_POPULATION)
    assert scenario.model == "uva_padova_s2013"
    assert scenario.behaviour_params().hypo_below_mgdl > 0


def test_medians_by_age_group_fall_in_the_published_open_loop_ranges(outcomes):
    checks = check_bars(outcomes.medians())
    assert len(checks) == len(OPEN_LOOP_BARS)  # every group and metric was measured
    failed = [f"{c.bar.age_group} {c.bar.metric}: {c.median:.2f} not in "
              f"[{c.bar.low:g}, {c.bar.high:g}]" for c in checks if not c.holds]
    assert not failed, failed


def test_adolescents_do_worse_than_adults(outcomes):
    medians = outcomes.medians()
    assert medians[("adolescent", "in_range_70_180")] < medians[("adult", "in_range_70_180")]


def test_no_patient_day_sits_four_hours_below_54(outcomes):
    assert outcomes.patient_days.sum() >= 600 * 14
    assert outcomes.long_low_day_percent < MAX_LONG_LOW_DAY_PERCENT
    assert outcomes.long_low_days.sum() == 0
