"""Insulin and carbohydrate per day (cgm_ray.glucose.insulin_totals), against hand-computed sums.

The schedule used throughout runs 0.5 U/h from 00:00, 1.0 from 06:00 and 0.8 from 22:00:
6 x 0.5 + 16 x 1.0 + 2 x 0.8 = 20.6 U a day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.insulin_totals import BasalSchedule, TempBasals, basal_by_day, daily_totals

H = 3_600_000
DAY = 24 * H
D0 = 1_709_251_200_000  # 2024-03-01T00:00Z
SCHEDULE = BasalSchedule(np.array([0, 6 * 3600, 22 * 3600]), np.array([0.5, 1.0, 0.8]))
NONE = TempBasals.none()


def temps(*rows: tuple[float, float, float, float]) -> TempBasals:
    """Temp basals from (start ms, duration min, rate U/h, percent) rows; NaN = not given."""
    start, duration, rate, pct = (np.array(c, dtype=float) for c in zip(*rows))
    return TempBasals(start.astype(np.int64), duration, rate, pct)


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_schedule_alone_gives_its_daily_sum():
    np.testing.assert_allclose(basal_by_day(SCHEDULE, NONE, D0, 2), [20.6, 20.6])


def test_a_temp_basal_replaces_the_schedule_while_it_runs():
    # 07:00-08:00 at 2.0 instead of 1.0: one unit more.
    got = basal_by_day(SCHEDULE, temps((D0 + 7 * H, 60, 2.0, np.nan)), D0, 2)
    np.testing.assert_allclose(got, [21.6, 20.6])


def test_the_next_temp_basal_cuts_the_running_one_short():
    # 0 U/h from 10:00 for 2 h, replaced at 11:00 by 2.0 for 30 min; 11:30-12:00 is scheduled:
    # -1.0 (10-11) + (1.0 - 0.5) (11:00-11:30) = -0.5. Without the cut it would be -1.0.
    got = basal_by_day(SCHEDULE, temps((D0 + 11 * H, 30, 2.0, np.nan), (D0 + 10 * H, 120, 0.0, np.nan)),
                       D0, 1)
    np.testing.assert_allclose(got, [20.1])


def test_a_temp_basal_of_no_duration_ends_the_one_running():
    # 2.0 from 13:00 for an hour, ended at 13:15: a quarter hour at +1.0.
    got = basal_by_day(SCHEDULE, temps((D0 + 13 * H, 60, 2.0, np.nan), (D0 + 13.25 * H, 0, np.nan, np.nan)),
                       D0, 1)
    np.testing.assert_allclose(got, [20.85])


def test_a_percent_temp_basal_scales_the_schedule_across_midnight():
    # -50 % from 23:00 for 2 h: 23-24 at 0.4 instead of 0.8, 00-01 at 0.25 instead of 0.5.
    got = basal_by_day(SCHEDULE, temps((D0 + 23 * H, 120, np.nan, -50.0)), D0, 2)
    np.testing.assert_allclose(got, [20.2, 20.35])


def test_an_absolute_rate_wins_over_a_percent():
    got = basal_by_day(SCHEDULE, temps((D0 + 7 * H, 60, 3.0, -50.0)), D0, 1)
    np.testing.assert_allclose(got, [22.6])


def test_the_first_rate_also_runs_from_midnight_to_the_first_entry():
    # As Nightscout: 00-06 at the first rate (1.0), not the previous evening's 2.0.
    late_start = BasalSchedule(np.array([6 * 3600, 18 * 3600]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(basal_by_day(late_start, NONE, D0, 1), [6 + 12 + 12.0])


def test_the_schedule_runs_on_the_profiles_local_time():
    # Paris is UTC+1 in early March: local noon is 11:00Z. 0 U/h from 11:30Z for an hour
    # replaces the local afternoon rate 2.0: 36 - 2 (taking the schedule as UTC: 36 - 1.5).
    paris = BasalSchedule(np.array([0, 12 * 3600]), np.array([1.0, 2.0]), "Europe/Paris")
    np.testing.assert_allclose(basal_by_day(paris, NONE, D0, 1), [36.0])
    np.testing.assert_allclose(basal_by_day(paris, temps((D0 + 11.5 * H, 60, 0.0, np.nan)), D0, 1),
                               [34.0])


def test_schedule_pieces_follow_daylight_saving_time():
    # Clocks go forward in Paris on 2024-03-31: local noon is 11:00Z on the 30th, 10:00Z on the 31st.
    paris = BasalSchedule(np.array([0, 12 * 3600]), np.array([1.0, 2.0]), "Europe/Paris")
    start, rate = paris.pieces(utc_ms("2024-03-30T00:00"), utc_ms("2024-04-01T00:00"))
    noon = start[rate == 2.0]
    assert utc_ms("2024-03-30T11:00") in noon and utc_ms("2024-03-31T10:00") in noon
    assert utc_ms("2024-03-31T22:00") in start[rate == 1.0]  # midnight of April 1st, UTC+2
    assert start[0] <= utc_ms("2024-03-30T00:00")


def test_daily_totals_count_amounts_in_their_day():
    bolus_ms = np.array([D0 + 8 * H, D0 + 12 * H, D0 + DAY + 19 * H, D0 + 2 * DAY, D0 - 1])
    bolus_u = np.array([4.0, np.nan, 5.5, 9.0, 9.0])  # the last two fall outside the 2 days
    carbs_ms = np.array([D0 + 8 * H, D0 + DAY + 19 * H])
    totals = daily_totals(D0, 2, bolus_ms, bolus_u, carbs_ms, np.array([45.0, 60.0]), SCHEDULE, NONE)
    np.testing.assert_allclose(totals.day_start_ms, [D0, D0 + DAY])
    np.testing.assert_allclose(totals.bolus_u, [4.0, 5.5])
    np.testing.assert_allclose(totals.basal_u, [20.6, 20.6])
    np.testing.assert_allclose(totals.carbs_g, [45.0, 60.0])
    np.testing.assert_allclose(totals.total_u, [24.6, 26.1])
    assert totals.days == 2
    assert totals.per_day(totals.total_u) == pytest.approx(25.35)
    assert totals.per_day(totals.carbs_g) == pytest.approx(52.5)
    assert totals.bolus_percent == pytest.approx(100 * 9.5 / 50.7)


def test_basal_is_unknown_without_a_schedule():
    totals = daily_totals(D0, 1, np.array([D0 + H]), np.array([3.0]), np.zeros(0, np.int64),
                          np.zeros(0), None, temps((D0 + H, 30, 1.0, np.nan)))
    assert np.isnan(totals.basal_u).all() and np.isnan(totals.total_u).all()
    assert totals.bolus_u.tolist() == [3.0] and np.isnan(totals.bolus_percent)


@pytest.mark.parametrize("build, field", [
    (lambda: BasalSchedule(np.array([3600, 0]), np.array([1.0, 1.0])), "basal.start_s"),
    (lambda: BasalSchedule(np.array([0]), np.array([-1.0])), "basal.rate_u_per_h"),
    (lambda: BasalSchedule(np.array([0]), np.array([1.0]), "Mars/Olympus"), "timezone"),
    (lambda: BasalSchedule(np.zeros(0), np.zeros(0)), "basal"),
    (lambda: TempBasals(np.array([D0]), np.array([30.0, 30.0]), np.array([1.0]), np.array([np.nan])),
     "duration_min"),
    (lambda: TempBasals(np.array([D0]), np.array([-5.0]), np.array([1.0]), np.array([np.nan])),
     "duration_min"),
    (lambda: daily_totals(D0 + H, 1, *[np.zeros(0)] * 4, None, NONE), "first_day_ms"),
    (lambda: daily_totals(D0, 0, *[np.zeros(0)] * 4, None, NONE), "days"),
])
def test_bad_input_names_the_field(build, field):
    with pytest.raises(ConfigError) as raised:
        build()
    assert raised.value.field == field
