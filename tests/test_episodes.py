"""Hypo/hyperglycaemia episodes (2023 consensus): hand-built 5-minute series with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cgm_ray.cli import metrics as metrics_cli
from cgm_ray.glucose.episodes import (
    EPISODE_COLUMNS,
    episode_metrics,
    episodes_from_grid,
    long_low_days,
)
from cgm_ray.glucose.grid import NS_PER_MIN, DayGrid, group_readings
from cgm_ray.glucose.metrics import METRIC_COLUMNS, glucose_metrics, reading_metrics
from tests.conftest import IGLU_CSV

T0_NS = np.datetime64("2024-03-01T00:00:00", "ns").astype(np.int64)
PAD = [100.0] * 12  # an hour in range before and after each pattern


def _readings(gl_mgdl, step_min: float = 5.0):
    """One subject sampled every ``step_min`` from midnight; NaN readings are dropped (a gap)."""
    gl = np.asarray(gl_mgdl, dtype=float)
    time_ns = T0_NS + (step_min * np.arange(len(gl)) * NS_PER_MIN).astype(np.int64)
    return group_readings(np.full(len(gl), "s"), time_ns, gl)


def _episodes(*pattern) -> dict[str, float]:
    """Episode columns of one subject whose 5-min readings are PAD + pattern + PAD."""
    gl = [*PAD, *(value for part in pattern for value in part), *PAD]
    return {name: values[0] for name, values in episode_metrics(_readings(gl)).items()}


def _minutes(value_mgdl: float, minutes: int) -> list[float]:
    return [value_mgdl] * (minutes // 5)


def test_columns_are_count_rate_and_duration_per_type():
    assert len(EPISODE_COLUMNS) == 15 and len(set(EPISODE_COLUMNS)) == 15
    for kind in ("hypo_l1", "hypo_l2", "hypo_ext", "hyper_l1", "hyper_l2"):
        for suffix in ("", "_per_day", "_duration_min"):
            assert f"episodes_{kind}{suffix}" in EPISODE_COLUMNS
    assert METRIC_COLUMNS[-len(EPISODE_COLUMNS):] == EPISODE_COLUMNS


def test_ten_minute_dip_is_no_event():
    m = _episodes(_minutes(60, 10))
    assert m["episodes_hypo_l1"] == 0 and m["episodes_hypo_l1_per_day"] == 0
    assert math.isnan(m["episodes_hypo_l1_duration_min"])


def test_twenty_minute_dip_is_one_event_of_twenty_minutes():
    m = _episodes(_minutes(60, 20))
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 20
    assert m["episodes_hypo_l2"] == 0 and m["episodes_hypo_ext"] == 0


def test_fifteen_minutes_is_enough_and_threshold_values_are_not_beyond():
    assert _episodes(_minutes(69.9, 15))["episodes_hypo_l1_duration_min"] == 15
    assert _episodes(_minutes(70, 60))["episodes_hypo_l1"] == 0
    assert _episodes(_minutes(180, 60))["episodes_hyper_l1"] == 0


def test_short_excursion_back_does_not_end_the_event():
    m = _episodes(_minutes(60, 20), _minutes(100, 10), _minutes(60, 20))
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 50


def test_fifteen_minutes_back_ends_the_event():
    for back_min in (15, 20):
        m = _episodes(_minutes(60, 20), _minutes(100, back_min), _minutes(60, 20))
        assert m["episodes_hypo_l1"] == 2 and m["episodes_hypo_l1_duration_min"] == 20, back_min


def test_event_includes_a_short_dip_before_its_end():
    """The duration runs to the last point beyond the threshold before the 15 minutes back."""
    m = _episodes(_minutes(60, 20), _minutes(100, 10), _minutes(60, 5))
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 35


def test_long_hypo_is_also_extended():
    m = _episodes(_minutes(60, 150))
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 150
    assert m["episodes_hypo_ext"] == 1 and m["episodes_hypo_ext_duration_min"] == 150


def test_extended_needs_more_than_120_consecutive_minutes():
    assert _episodes(_minutes(60, 120))["episodes_hypo_ext"] == 0
    assert _episodes(_minutes(60, 125))["episodes_hypo_ext"] == 1
    split = _episodes(_minutes(60, 90), _minutes(100, 10), _minutes(60, 90))
    assert split["episodes_hypo_l1_duration_min"] == 190 and split["episodes_hypo_ext"] == 0
    late = _episodes(_minutes(60, 30), _minutes(100, 10), _minutes(60, 130))
    assert late["episodes_hypo_l1_duration_min"] == 170
    assert late["episodes_hypo_ext"] == 1 and late["episodes_hypo_ext_duration_min"] == 130


def test_level_2_inside_level_1():
    m = _episodes(_minutes(60, 10), _minutes(45, 20), _minutes(60, 10))
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 40
    assert m["episodes_hypo_l2"] == 1 and m["episodes_hypo_l2_duration_min"] == 20
    twice = _episodes(_minutes(45, 20), _minutes(60, 20), _minutes(45, 20))
    assert twice["episodes_hypo_l1"] == 1 and twice["episodes_hypo_l2"] == 2


def test_hyper_levels():
    m = _episodes(_minutes(200, 30), _minutes(260, 15), _minutes(200, 30), _minutes(100, 60),
                  _minutes(190, 20))
    assert m["episodes_hyper_l1"] == 2 and m["episodes_hyper_l1_duration_min"] == (75 + 20) / 2
    assert m["episodes_hyper_l2"] == 1 and m["episodes_hyper_l2_duration_min"] == 15
    assert m["episodes_hypo_l1"] == 0


def test_gap_splits_an_event():
    """Readings stop for 60 min (> 45 min: missing grid points) inside a 90-minute hypo."""
    whole = _episodes(_minutes(60, 90))
    split = _episodes(_minutes(60, 30), [np.nan] * 11, _minutes(60, 30))
    assert whole["episodes_hypo_l1"] == 1 and whole["episodes_hypo_l1_duration_min"] == 90
    assert split["episodes_hypo_l1"] == 2 and split["episodes_hypo_l1_duration_min"] == 30


def test_event_open_at_a_gap_or_the_end_lasts_to_its_last_point_beyond():
    at_gap = _episodes(_minutes(60, 20), _minutes(100, 10), [np.nan] * 11)
    assert at_gap["episodes_hypo_l1"] == 1 and at_gap["episodes_hypo_l1_duration_min"] == 20
    at_end = {name: values[0] for name, values in
              episode_metrics(_readings([*PAD, *_minutes(60, 20), *_minutes(100, 10)])).items()}
    assert at_end["episodes_hypo_l1"] == 1 and at_end["episodes_hypo_l1_duration_min"] == 20


def test_rate_is_per_day_of_gridded_data():
    """Readings 00:00 day 1 to 00:00 day 3: grid points 00:05 .. 48:00, exactly 2 days."""
    day = np.full(288, 100.0)
    day[100:106] = 60.0  # 30 min
    day[200:204] = 250.5  # 20 min, hyper level 1 and 2
    m = {name: values[0] for name, values in
         episode_metrics(_readings([*day, *day, 100.0])).items()}
    assert m["episodes_hypo_l1"] == 2 and m["episodes_hypo_l1_per_day"] == 1.0
    assert m["episodes_hyper_l2"] == 2 and m["episodes_hyper_l2_per_day"] == 1.0
    half_missing = day.copy()
    half_missing[150:] = np.nan  # readings end at 12:25 on day 2
    m = {name: values[0] for name, values in
         episode_metrics(_readings([*day, *half_missing])).items()}
    assert m["episodes_hypo_l1_per_day"] == pytest.approx(2 / ((288 + 149) * 5 / 1440))


def test_fifteen_minute_sampling_needs_one_point():
    m = {name: values[0] for name, values in
         episode_metrics(_readings([100.0] * 8 + [60.0] + [100.0] * 8, step_min=15)).items()}
    assert m["episodes_hypo_l1"] == 1 and m["episodes_hypo_l1_duration_min"] == 15


def test_subject_with_one_time_is_nan():
    readings = group_readings(np.array(["a", "a", "b", "b"]),
                              np.array([T0_NS, T0_NS, T0_NS, T0_NS + 5 * NS_PER_MIN]),
                              np.array([60.0, 60.0, 100.0, 100.0]))
    m = episode_metrics(readings)
    assert all(np.isnan(m[name][0]) for name in EPISODE_COLUMNS)
    assert m["episodes_hypo_l1"][1] == 0


def _reference_events(gl: np.ndarray, below: bool, threshold: float, open_pts: int,
                      end_pts: int) -> list[int]:
    """Event lengths in grid points by walking the grid point by point (the definition, slowly)."""
    lengths, first, last, run_beyond, run_back = [], None, None, 0, 0
    for i, value in enumerate(gl):
        beyond = value < threshold if below else value > threshold
        run_beyond, run_back = (run_beyond + 1, 0) if beyond else (0, run_back + 1)
        if np.isnan(value):
            run_back = 0
        if beyond and first is None and run_beyond >= open_pts:
            first = i - run_beyond + 1
        if beyond and first is not None:
            last = i
        if first is not None and (np.isnan(value) or run_back >= end_pts):
            lengths.append(last - first + 1)
            first = None
    if first is not None:
        lengths.append(last - first + 1)
    return lengths


def test_random_grids_agree_with_a_point_by_point_walk():
    rng = np.random.default_rng(7)
    kinds = {"hypo_l1": (True, 70, 3), "hypo_l2": (True, 54, 3), "hypo_ext": (True, 70, 25),
             "hyper_l1": (False, 180, 3), "hyper_l2": (False, 250, 3)}
    for _ in range(40):
        gl = 120 + np.cumsum(rng.normal(0, 12, 2 * 288))
        gl[rng.random(len(gl)) < 0.01] = np.nan
        got = episodes_from_grid(DayGrid(gl.reshape(2, 288), 0, 5))
        for kind, (below, threshold, open_pts) in kinds.items():
            lengths = _reference_events(gl, below, threshold, open_pts, 3)
            assert got[f"episodes_{kind}"] == len(lengths), kind
            if lengths:
                assert got[f"episodes_{kind}_duration_min"] == pytest.approx(5 * np.mean(lengths))
            days = np.count_nonzero(np.isfinite(gl)) * 5 / 1440
            assert got[f"episodes_{kind}_per_day"] == pytest.approx(len(lengths) / days)


@pytest.fixture(scope="module")
def iglu_readings():
    return metrics_cli.read_readings(IGLU_CSV)


def test_glucose_metrics_on_iglu_data_has_the_episode_columns(iglu_readings):
    computed = glucose_metrics(iglu_readings)
    assert tuple(computed) == METRIC_COLUMNS
    standalone = episode_metrics(iglu_readings)
    for name in EPISODE_COLUMNS:
        values = computed[name]
        assert values.shape == (5,) and values.dtype == float
        assert np.all(np.isfinite(values) | np.isnan(values))
        np.testing.assert_array_equal(values, standalone[name])
    for kind in ("hypo_l1", "hypo_l2", "hypo_ext", "hyper_l1", "hyper_l2"):
        count = computed[f"episodes_{kind}"]
        assert np.all((count >= 0) & (count == np.round(count)))
        assert np.all(np.isnan(computed[f"episodes_{kind}_duration_min"]) == (count == 0))
    assert np.all(computed["episodes_hyper_l1"] > 0)


def test_reading_metrics_is_the_reading_level_subset(iglu_readings):
    fast = reading_metrics(iglu_readings)
    full = glucose_metrics(iglu_readings)
    assert list(fast) == [name for name in METRIC_COLUMNS if name in fast]
    assert {"mean", "sd", "cv", "gmi", "ea1c", "in_range_70_180", "below_54", "above_250",
            "lbgi", "hbgi", "gri", "gri_zone", "j_index", "grade", "m_value"} <= set(fast)
    assert not set(fast) & {"median", "adrr", "mage", "modd", *EPISODE_COLUMNS}
    for name, values in fast.items():
        np.testing.assert_array_equal(values, full[name])


def test_long_low_days_counts_runs_of_four_hours_below_54():
    step = 5 * NS_PER_MIN
    t = np.arange(3 * 288) * step
    first = np.full(len(t), 120.0)
    first[300:348] = 45.0  # exactly 4 h (48 readings) from 01:00 on day 2
    first[600:647] = 45.0  # 3 h 55 min: one reading short
    second = np.full(len(t), 120.0)
    second[10:70] = 40.0  # 5 h on day 1 ...
    second[40] = np.nan  # ... across a missing reading (a 10-min gap does not break it)
    third = np.full(len(t), 120.0)
    third[10:70] = 40.0
    third[40] = 60.0  # ... a reading at or above 54 does
    readings = group_readings(np.repeat([0, 1, 2], len(t)), np.tile(t, 3),
                              np.concatenate([first, second, third]))
    days, long_low = long_low_days(readings)
    assert days.tolist() == [3, 3, 3]
    assert long_low.tolist() == [1, 1, 0]
