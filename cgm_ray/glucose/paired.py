"""Paired comparison of trial arms: the same patients under each arm, each their own control.

For one metric, every arm is summarised by the median and interquartile range over its
patients, and every arm but the first (the reference) is compared with the reference patient by
patient: the median of the differences (arm - reference) and the two-sided Wilcoxon signed-rank
p-value, a paired test that does not assume normal differences. As scipy does by default,
patients with no difference are left out of the test; when every difference is zero there is
nothing to test and p is 1. A patient whose value is NaN in either arm (no readings) is left out
of the pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range over patients (NaN values left out)."""

    median: float
    q25: float
    q75: float
    n: int  # patients with a value


@dataclass(frozen=True)
class PairedTest:
    """One arm against the reference on the patients with a value in both."""

    n_pairs: int
    diff_median: float  # arm - reference
    p_value: float  # two-sided Wilcoxon signed-rank; 1.0 when every difference is zero


@dataclass(frozen=True)
class ArmOutcome:
    """One metric in one arm: its spread, and (not for the reference arm) the paired test."""

    metric: str
    arm: str
    spread: Spread
    vs_reference: PairedTest | None


def spread(values: np.ndarray) -> Spread:
    """Median and IQR of ``values`` (NaN for all of them when none is finite)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return Spread(np.nan, np.nan, np.nan, 0)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return Spread(float(median), float(q25), float(q75), len(values))


def paired_test(reference: np.ndarray, other: np.ndarray) -> PairedTest:
    """``other`` against ``reference``, patient by patient (the same order in both)."""
    reference, other = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if reference.shape != other.shape:
        raise ValueError(f"paired values need the same patients: {reference.shape} vs {other.shape}")
    diff = (other - reference)[~(np.isnan(reference) | np.isnan(other))]
    if not len(diff):
        return PairedTest(0, np.nan, np.nan)
    p_value = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    return PairedTest(len(diff), float(np.median(diff)), p_value)


def compare_arms(metric: str, values_by_arm: Mapping[str, np.ndarray]) -> list[ArmOutcome]:
    """Every arm's outcome on ``metric``; the first arm is the reference the others are tested against.

    ``values_by_arm`` holds one value per patient, the patients in the same order in every arm.
    """
    arms = list(values_by_arm)
    if len(arms) < 2:
        raise ValueError(f"a comparison needs at least 2 arms, got {arms}")
    reference = values_by_arm[arms[0]]
    return [ArmOutcome(metric, arm, spread(values),
                       None if k == 0 else paired_test(reference, values))
            for k, (arm, values) in enumerate(values_by_arm.items())]
