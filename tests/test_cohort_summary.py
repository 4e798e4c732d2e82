"""The clinician view's panel of a cohort over a period, and how a period's readings are put
together from the lake and the hot history (pure)."""

from __future__ import annotations

import numpy as np

from serve_apps.cohort_summary import summarise, worst_first
from serve_apps.glucose_period import GlucoseSeries, Period, PeriodReadings, combine

MIN = 60_000


def _hot(glucose: list[float]) -> PeriodReadings:
    ts = 5 * MIN * np.arange(len(glucose), dtype=np.int64)
    return PeriodReadings(GlucoseSeries(ts, np.array(glucose, dtype=float)), 0, len(glucose))


def test_each_patient_gets_the_consensus_panel_and_the_targets_missed():
    rows = summarise({"a": _hot([50.0, 52, 60, 75, 90, 110]), "b": _hot([120.0] * 4),
                      "empty": _hot([])})
    by_id = {r.patient_id: r for r in rows}
    assert set(by_id) == {"a", "b"}  # a patient without readings has no row
    a = by_id["a"]
    assert (a.readings, a.hours, a.in_range_70_180, a.below_70, a.below_54) == (6, 0.4, 50.0, 50.0, 33.3)
    assert a.targets_missed == ["tir", "tbr70", "tbr54"] and a.source == "hot"
    assert by_id["b"].targets_missed == [] and by_id["b"].cv == 0.0
    assert [r.patient_id for r in worst_first(rows)] == ["a", "b"]


def test_a_period_takes_the_lake_then_only_newer_hot_readings_inside_it():
    lake = GlucoseSeries(np.array([10, 20, 30]) * MIN, np.array([100.0, 110, 120]))
    hot = GlucoseSeries(np.array([45, 25, 30, 40, 99]) * MIN, np.array([150.0, 1, 2, 140, 9]))
    got = combine(lake, hot, Period(0, 50 * MIN))
    assert got.series.ts_ms.tolist() == [10 * MIN, 20 * MIN, 30 * MIN, 40 * MIN, 45 * MIN]
    assert got.series.glucose_mgdl.tolist() == [100.0, 110, 120, 140, 150]
    assert (got.lake_readings, got.hot_readings, got.source) == (3, 2, "lake+hot")
    only_hot = combine(None, hot, Period(26 * MIN, 46 * MIN))
    assert only_hot.series.ts_ms.tolist() == [30 * MIN, 40 * MIN, 45 * MIN] and only_hot.source == "hot"
    assert combine(None, None, Period(0, 1)).source == "none"
