"""The history view's profile (pure): the panel, the AGP by local time of day, the daily
profiles by local calendar day, across a change to summer time."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cgm_ray.errors import ConfigError
from cgm_ray.glucose.profile import glucose_profile, local_ms

MIN = 60_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_local_times_follow_the_zone_across_summer_time():
    before, after = _ms("2026-03-29T00:30"), _ms("2026-03-29T01:30")  # Berlin: 01:30 CET, 03:30 CEST
    wall = local_ms(np.array([before, after]), "Europe/Berlin")
    assert ((wall - [before, after]) // MIN).tolist() == [60, 120]
    with pytest.raises(ConfigError, match="tz"):
        local_ms(np.array([before]), "Europe/Atlantis")


def test_the_agp_pools_days_by_local_time_and_the_days_split_at_local_midnight():
    # three days, 5-minute readings: glucose = 100 + the day's index * 10 + hour of the UTC day
    ts = _ms("2026-01-10T00:00") + 5 * MIN * np.arange(3 * 288)
    hour = (ts // (60 * MIN)) % 24
    day = (ts - ts[0]) // (1440 * MIN)
    glucose = 100.0 + day * 10 + hour
    profile = glucose_profile(ts, glucose, "Asia/Kolkata")  # UTC+5:30
    assert profile.readings == 3 * 288 and profile.panel["mean"] == pytest.approx(glucose.mean())
    assert profile.panel["in_range_70_180"] == 100.0 and profile.targets_missed == []
    # local days: the first starts at 05:30 local (UTC midnight), the last ends at 05:25 local
    assert [d.date for d in profile.daily] == ["2026-01-10", "2026-01-11", "2026-01-12", "2026-01-13"]
    assert profile.daily[0].minute_of_day[0] == 330.0
    # the median at local 06:00 (00:30 UTC: 100, 110 and 120 mg/dL on the three days)
    slot = int(np.flatnonzero(profile.agp_minute_of_day == 360)[0])
    assert profile.agp_mgdl[slot, 2] == pytest.approx(110.0)
    with pytest.raises(ConfigError, match="period"):
        glucose_profile(ts[:1], glucose[:1])
