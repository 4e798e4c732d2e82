"""Insulin-dosing controllers (automated insulin delivery algorithms), vectorised over patients.

- `interface`: the seam with the closed-loop engine (`LoopInput` -> `LoopOutput`, the `Controller`
  protocol, the AID targets and limits); `insulin`: insulin on board from oref0's exponential curve.
- `basal_bolus` (open loop), `pid`, `oref0_loop` (the oref0 port and the real oref0 in the loop),
  `loop_reference` (Loop via PyLoopKit), `policy` (any Gymnasium policy); `registry` names them
  for scenario files.
- `oref0`: a compiled port of OpenAPS oref0 0.7.1 ``determine-basal`` (temp basals, low-glucose
  suspend, optional SMB and UAM), one call for N patients.
- `oref0_reference`: the real oref0 (npm package, installed by ``make node-deps`` into ``.node/``)
  in a long-lived Node worker fed batches of decisions as JSON lines; the parity reference
  (`simulators.oref0_parity` compares the two).
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
