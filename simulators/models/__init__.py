"""Physiology models behind one interface, by name."""

from __future__ import annotations

from cgm_ray.errors import ConfigError
from simulators.integrator import make_advance
from simulators.models import bergman, uva_padova
from simulators.models.base import PhysiologyModel

MODELS: dict[str, PhysiologyModel] = {
    "uva_padova": PhysiologyModel(
        name="uva_padova", state_names=uva_padova.STATE_NAMES,
        param_names=uva_padova.PARAM_NAMES,
        advance=uva_padova.advance,
        build_params=lambda cohort: cohort.params, initial_state=lambda cohort: cohort.x0,
        basal_u_per_min=uva_padova.basal_u_per_min,
    ),
    "uva_padova_s2013": PhysiologyModel(
        name="uva_padova_s2013", state_names=uva_padova.STATE_NAMES_S2013,
        param_names=uva_padova.PARAM_NAMES_S2013,
        advance=uva_padova.advance,  # the same kernel: 16 states select the S2013 terms
        build_params=lambda cohort: uva_padova.s2013_params(cohort.params),
        initial_state=lambda cohort: uva_padova.s2013_initial_state(
            cohort.x0, uva_padova.s2013_params(cohort.params)),
        basal_u_per_min=uva_padova.basal_u_per_min,
    ),
    "bergman": PhysiologyModel(
        name="bergman", state_names=bergman.STATE_NAMES, param_names=bergman.PARAM_NAMES,
        advance=make_advance(bergman.derivatives, bergman.gsub_mgdl, bergman.bg_mgdl,
                             len(bergman.STATE_NAMES), bergman.RESCUE_STATE,
                             bergman.RESCUE_MG_PER_G),
        build_params=bergman.build_params, initial_state=bergman.initial_state,
        basal_u_per_min=bergman.basal_u_per_min,
    ),
}


def get_model(name: str, field: str = "model") -> PhysiologyModel:
    """The model registered under ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(field, f"unknown model {name!r}; known: {sorted(MODELS)}") from None
