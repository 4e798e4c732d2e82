"""A simulated patient's programmed therapy, and the same therapy as a Nightscout profile.

``programmed_therapy`` reads what each patient of a simulation has programmed in their pump
(or pen routine): the basal rate as the patient programmed it (with their basal error), the
titrated carb ratio and correction factor, the glucose targets and the insulin's duration of
action. In a closed loop these are the loop's own schedules (``ClosedLoop.schedules``); in
open loop the targets are the correction target of ``therapy.target_mgdl``.

``nightscout_profile`` turns one patient's row into a Nightscout profile document (what
Loop uploads to ``/api/v1/profile``): ``defaultProfile``, ``startDate``, ``units`` and
``store.{name}`` with ``dia`` and the schedules ``carbratio``, ``sens``, ``basal``,
``target_low``, ``target_high`` as ``{time: "HH:MM", value, timeAsSeconds}`` items. The
simulator's schedules are flat (one value a day), so each schedule is one item at midnight.
It is pure: the same therapy and start give the same document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from simulators.controllers.basal_bolus import BasalBolus
from simulators.controllers.interface import Schedules
from simulators.engine import Simulation

PROFILE_NAME = "Default"  # Loop's name for its one profile
PROFILE_UNITS = "mg/dl"  # every simulated value is in mg/dL
PROFILE_TIMEZONE = "UTC"  # scenario clocks (meal times of day) are UTC


@dataclass(frozen=True)
class ProgrammedTherapy:
    """Each patient's programmed therapy; row i of every array is patient ``names[i]``."""

    names: tuple[str, ...]
    schedules: Schedules
    dia_h: float  # duration of insulin action of the (algorithm's) insulin model


def programmed_therapy(sim: Simulation) -> ProgrammedTherapy:
    """What the patients of ``sim`` have programmed: the loop's schedules, or in open loop the
    programmed basal, carb ratio, correction factor and the correction target."""
    names = tuple(sim.cohort.names)
    if sim.loop is not None:
        return ProgrammedTherapy(names, sim.loop.schedules, sim.loop.controller.dia_h)
    target_mgdl = np.full(len(names), float(sim.therapy.target_mgdl))
    return ProgrammedTherapy(names, Schedules(
        basal_u_per_h=sim.basal_u_per_min * 60.0, isf_mgdl_per_u=sim.cohort.cf_mgdl_per_u,
        cr_g_per_u=sim.cohort.cr_g_per_u, target_low_mgdl=target_mgdl,
        target_high_mgdl=target_mgdl.copy()), BasalBolus.dia_h)


def _flat(value: float, digits: int) -> list[dict]:
    """A one-item schedule: ``value`` from midnight on."""
    return [{"time": "00:00", "value": round(float(value), digits), "timeAsSeconds": 0}]


def nightscout_profile(therapy: ProgrammedTherapy, row: int, start_ms: int,
                       profile_name: str = PROFILE_NAME) -> dict:
    """Patient ``row``'s therapy as a Nightscout profile document starting at ``start_ms``."""
    s = therapy.schedules
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return {
        "defaultProfile": profile_name,
        "startDate": start.replace("+00:00", "Z"),
        "mills": start_ms,
        "units": PROFILE_UNITS,
        "store": {profile_name: {
            "dia": therapy.dia_h,
            "carbratio": _flat(s.cr_g_per_u[row], 1),
            "sens": _flat(s.isf_mgdl_per_u[row], 1),
            "basal": _flat(s.basal_u_per_h[row], 3),
            "target_low": _flat(s.target_low_mgdl[row], 0),
            "target_high": _flat(s.target_high_mgdl[row], 0),
            "timezone": PROFILE_TIMEZONE,
            "units": PROFILE_UNITS,
        }},
    }
