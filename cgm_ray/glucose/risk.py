"""Kovatchev's blood-glucose risk, written once for the metrics, the gym reward and titration.

The symmetrising transform f(G) = (ln G)^1.084 - 5.381 maps 20-600 mg/dL onto about
[-2, 2] with 0 at 112.5 mg/dL (Kovatchev, Diabetes Care 1997); the risk r(G) = 10*(1.509 f)^2
is 0 there and about 100 at either end of the range.
"""

from __future__ import annotations

import numpy as np

RISK_EXPONENT = 1.084
RISK_OFFSET = 5.381
RISK_SCALE = 1.509
RISK_NEUTRAL_MGDL = 112.5  # f(G) = 0: readings below count toward LBGI, above toward HBGI


def symmetrised_bg(glucose_mgdl: np.ndarray) -> np.ndarray:
    """f(G) = (ln G)^1.084 - 5.381, negative below 112.5 mg/dL and positive above."""
    return np.log(glucose_mgdl) ** RISK_EXPONENT - RISK_OFFSET


def risk_index(glucose_mgdl: np.ndarray) -> np.ndarray:
    """r(G) = 10*(1.509 f(G))^2: 0 at 112.5 mg/dL, about 100 at 20 or 600 mg/dL.

    Glucose is clipped at 1 mg/dL so a simulated or corrupt zero gives a large finite risk.
    """
    return 10.0 * (RISK_SCALE * symmetrised_bg(np.clip(glucose_mgdl, 1.0, None))) ** 2
