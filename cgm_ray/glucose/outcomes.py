"""What real people with type 1 diabetes achieve, as data: published cohorts and the bars a
virtual population is held to.

The sources are those of ``shared/docs/realism-and-control.md`` (table "What real open-loop
T1D looks like"); the bars turn them into ranges for the medians of a simulated population by
age group. Open-loop (MDI or pump, no automated delivery) is what the default population
represents, so its bars come from open-loop cohorts; closed-loop figures are listed for
comparison only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedOutcome:
    """One figure of one published cohort (a median with its IQR, or a mean with its SD)."""

    cohort: str
    source: str  # first author, journal, year, doi
    who: str  # age group and therapy as the paper describes them
    metric: str  # a glucose-metrics column: in_range_70_180, below_70, below_54, cv, ...
    value: float  # percent
    spread: str  # "IQR 41-65", "SD 12", "" when not reported
    n: int | None
    closed_loop: bool = False


PUBLISHED: tuple[PublishedOutcome, ...] = (
    PublishedOutcome("DIAMOND", "Beck, JAMA 2017, doi:10.1001/jama.2016.19975",
                     "adults, MDI, HbA1c 8.6 %", "in_range_70_180", 46.0, "SD 12 (mean)", 158),
    PublishedOutcome("REPLACE-BG", "Aleppo, Diabetes Care 2017, doi:10.2337/dc16-2482",
                     "adults, pump + CGM, HbA1c 7.0 %", "in_range_70_180", 64.0, "63-65 (arms)",
                     226),
    PublishedOutcome("Steno Copenhagen", "Diabetes Care 2023, doi:10.2337/dc23-1137",
                     "adults, MDI", "in_range_70_180", 54.0, "", 3184),
    PublishedOutcome("Steno Copenhagen", "Diabetes Care 2023, doi:10.2337/dc23-1137",
                     "adults, pump", "in_range_70_180", 54.9, "", 3184),
    PublishedOutcome("Steno Copenhagen", "Diabetes Care 2023, doi:10.2337/dc23-1137",
                     "adults, sensor-augmented pump", "in_range_70_180", 62.9, "", 3184),
    PublishedOutcome("Cherubini", "Cherubini, DTT 2020, doi:10.1089/dia.2020.0031",
                     "children < 18, four therapy groups", "in_range_70_180", 55.0,
                     "medians 49-61 by group", 666),
    PublishedOutcome("Real-world CGM", "PMC10877396", "T1D, MDI or pump", "cv", 37.0,
                     "36-38 by group", 22006),
    PublishedOutcome("Control-IQ one year", "Breton & Kovatchev, DTT 2021",
                     "all ages, AID", "in_range_70_180", 73.6, "", 9451, closed_loop=True),
    PublishedOutcome("Loop observational", "Lum, DTT 2021", "ages 1-71, AID",
                     "in_range_70_180", 73.0, "SD 13 (mean)", 558, closed_loop=True),
)


@dataclass(frozen=True)
class Bar:
    """The range the median of ``metric`` must fall in for ``age_group`` (percent)."""

    age_group: str
    metric: str
    low: float
    high: float
    why: str

    def holds(self, median: float) -> bool:
        return self.low <= median <= self.high


def _bars(group: str, tir: tuple[float, float], why: str) -> tuple[Bar, ...]:
    return (
        Bar(group, "in_range_70_180", *tir, why),
        Bar(group, "below_70", 1.0, 6.0, "open-loop cohorts: TBR<70 a few percent"),
        Bar(group, "below_54", 0.0, 1.5, "consensus target < 1 %; most cohorts near it"),
        Bar(group, "cv", 33.0, 45.0, "real-world CV 36-38 % (n = 22,006)"),
    )


# Adolescents do worst (T1D Exchange: mean HbA1c 9.3 % at 15-18 years, about 35-45 % TIR by
# Beck 2019's HbA1c-TIR relation); children sit in Cherubini's 49-61 % with a margin.
OPEN_LOOP_BARS: tuple[Bar, ...] = (
    *_bars("adult", (45.0, 65.0), "DIAMOND 46 %, Steno MDI 54 % / pump 55-63 %"),
    *_bars("adolescent", (30.0, 58.0), "below adults: HbA1c 9.3 % at 15-18 years"),
    *_bars("child", (42.0, 65.0), "Cherubini: medians 49-61 % by therapy"),
)

# Tails: no real patient sits below 54 mg/dL for hours untreated.
MAX_LONG_LOW_DAY_PERCENT = 1.0  # patient-days with a run >= 4 h below 54 mg/dL
LONG_LOW_MGDL, LONG_LOW_MIN = 54.0, 240


@dataclass(frozen=True)
class BarCheck:
    """One bar against a simulated median."""

    bar: Bar
    median: float

    @property
    def holds(self) -> bool:
        return self.bar.holds(self.median)


def check_bars(medians: Mapping[tuple[str, str], float],
               bars: tuple[Bar, ...] = OPEN_LOOP_BARS) -> list[BarCheck]:
    """Each bar whose (age group, metric) median is known, checked."""
    return [BarCheck(b, medians[(b.age_group, b.metric)]) for b in bars
            if (b.age_group, b.metric) in medians]
