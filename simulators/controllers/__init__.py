"""Insulin-dosing controllers (automated insulin delivery algorithms), vectorised over patients.

- `oref0`: a compiled port of OpenAPS oref0 0.7.1 ``determine-basal`` (temp basals, low-glucose
  suspend, optional SMB and UAM), one call for N patients.
- `oref0_reference`: the real oref0 (npm package, installed by ``make node-deps`` into ``.node/``)
  in a long-lived Node worker fed batches of decisions as JSON lines; the parity reference.
- `oref0_parity`: physiologically consistent random decision states and the comparison of the
  port against the reference (used by ``tests/test_oref0.py`` and ``benchmarks/bench_controllers.py``).
"""

from simulators.controllers.oref0 import (
    N_TICKS,
    Oref0Decision,
    Oref0Profile,
    Oref0Reason,
    Oref0State,
    determine_basal,
    insulin_on_board,
    to_devicestatus,
)

__all__ = [
    "N_TICKS",
    "Oref0Decision",
    "Oref0Profile",
    "Oref0Reason",
    "Oref0State",
    "determine_basal",
    "insulin_on_board",
    "to_devicestatus",
]
