"""CGM metrics maths: pure numpy functions over glucose arrays (mg/dL)."""

from __future__ import annotations

import numpy as np


def risk_index(glucose_mgdl: np.ndarray) -> np.ndarray:
    """Kovatchev's symmetric risk r(G) = 10*f(G)^2, f = 1.509*((ln G)^1.084 - 5.381).

    0 at 112.5 mg/dL, about 100 at 20 or 600 mg/dL; LBGI/HBGI are its means over the
    readings below/above 112.5.
    """
    g = np.clip(glucose_mgdl, 1.0, None)
    return 10.0 * (1.509 * (np.log(g) ** 1.084 - 5.381)) ** 2
