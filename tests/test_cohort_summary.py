"""The clinician view's panel of a cohort's recent readings (pure)."""

from __future__ import annotations

import numpy as np

from serve_apps.cohort_summary import summarise, worst_first


def test_each_patient_gets_the_consensus_panel_and_the_targets_missed():
    rows = summarise({"a": np.array([50.0, 52, 60, 75, 90, 110]), "b": np.array([120.0] * 4),
                      "empty": np.array([])}, {"a": 25 * 60_000, "b": 15 * 60_000, "empty": 0})
    by_id = {r.patient_id: r for r in rows}
    assert set(by_id) == {"a", "b"}  # a patient without readings has no row
    a = by_id["a"]
    assert (a.readings, a.hours, a.in_range_70_180, a.below_70, a.below_54) == (6, 0.4, 50.0, 50.0, 33.3)
    assert a.targets_missed == ["tir", "tbr70", "tbr54"]
    assert by_id["b"].targets_missed == [] and by_id["b"].cv == 0.0
    assert [r.patient_id for r in worst_first(rows)] == ["a", "b"]
