"""cgm-ray: distributed CGM simulation, ingest and analytics on Ray.

Importing the package registers the Gymnasium environments ``cgm_ray/T1D-v0``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from cgm_ray import envs as _envs  # noqa: E402,F401  (registers gymnasium ids)
