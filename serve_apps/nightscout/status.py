"""The site descriptions Nightscout clients read first: ``status.json`` and ``verifyauth``.

Shapes as cgm-remote-monitor's ``lib/api/status.js`` and ``lib/api/verifyauth.js`` answer;
uploaders (xDrip+, Loop) check ``apiEnabled`` and ``careportalEnabled`` before sending
treatments, and followers take ``settings.units`` and ``settings.thresholds`` for display.
"""

from __future__ import annotations

import time

from cgm_ray import __version__
from cgm_ray.glucose.alerts import AlertSettings
from cgm_ray.glucose.units import GlucoseUnits
from serve_apps.auth import Principal
from serve_apps.nightscout.documents import iso_ms

# Nightscout's default plugins (lib/settings.js), all of which this server feeds.
ENABLED = ["careportal", "boluscalc", "food", "bwp", "cage", "sage", "iage", "bage", "iob",
           "cob", "basal", "bgnow", "delta", "direction", "timeago", "devicestatus", "upbat",
           "errorcodes", "profile", "bolus", "dbsize", "runtimestate", "rawbg", "ar2",
           "treatmentnotify"]


def status(site_name: str, units: GlucoseUnits, principal: Principal) -> dict:
    """``/api/v1/status.json``: the site, its settings and what the caller may do.

    Thresholds are in mg/dL whatever the display units, as in Nightscout's settings.
    """
    alerts = AlertSettings.model_validate({})
    now_ms = int(time.time() * 1000)
    return {
        "status": "ok", "name": site_name, "version": __version__,
        "serverTime": iso_ms(now_ms), "serverTimeEpoch": now_ms, "apiEnabled": True,
        "careportalEnabled": True, "boluscalcEnabled": True,
        "settings": {
            "units": units, "timeFormat": 24, "customTitle": site_name, "theme": "colors",
            "alarmUrgentHigh": True, "alarmHigh": True, "alarmLow": True, "alarmUrgentLow": True,
            "alarmTimeagoWarn": True, "alarmTimeagoWarnMins": 15,
            "alarmTimeagoUrgent": True, "alarmTimeagoUrgentMins": 30,
            "authDefaultRoles": "denied", "enable": ENABLED,
            "thresholds": {"bgHigh": alerts.urgent_high_mgdl, "bgTargetTop": alerts.high_mgdl,
                           "bgTargetBottom": alerts.low_mgdl, "bgLow": alerts.urgent_low_mgdl},
        },
        "extendedSettings": {"devicestatus": {"advanced": True}},
        "authorized": {"sub": principal.name,
                       "permissionGroups": [permissions(principal)]},
        "runtimeState": "loaded",
    }


def permissions(principal: Principal) -> list[str]:
    """The caller's rights as Nightscout's Shiro-style permission strings."""
    if principal.role == "admin":
        return ["*"]
    if principal.role == "uploader":
        return ["api:*:read", "api:*:create", "api:*:update", "api:*:delete"]
    return ["api:*:read"]


def verifyauth(principal: Principal) -> dict:
    """``/api/v1/verifyauth``: whether the credential is accepted and what it allows."""
    return {"canRead": True, "canWrite": principal.role in ("admin", "uploader"),
            "isAdmin": principal.role == "admin", "message": "OK", "rolefound": "FOUND",
            "permissions": "ROLE"}
