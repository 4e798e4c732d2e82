"""A small client of the cgm-ray ingest HTTP API (standard library only).

What the fleet, the demo and the command line ask of a running ingest: is it there and does
it take our secret, its admin endpoints' JSON, and how many alerts it has fired. The
secret travels as Nightscout's ``api-secret`` header, the SHA1 of the secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cgm_ray.errors import ConfigError


def admin_headers(secret_env: str = "API_SECRET") -> dict[str, str]:
    """The Nightscout-style ``api-secret`` header for the secret in ``secret_env``."""
    return {"api-secret": hashlib.sha1(os.environ.get(secret_env, "").encode()).hexdigest()}


def _probe(base: str, path: str, headers: dict[str, str], timeout_s: float, credential: str) -> None:
    """GET ``base + path``; a ConfigError naming the problem unless it answers 2xx."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}{path}", headers=headers),
                                    timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        reason = f"the {credential} is not accepted" if exc.code in (401, 403) else f"HTTP {exc.code}"
        raise ConfigError("target", f"{base}: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError("target", f"cannot reach {base}: {getattr(exc, 'reason', exc)}") from None


def check_target(url: str, secret_env: str = "API_SECRET", timeout_s: float = 5.0) -> None:
    """Fail fast, naming the problem, when the ingest at ``url`` cannot take readings."""
    _probe(url.rstrip("/"), "/api/v2/stats", admin_headers(secret_env), timeout_s, "API secret")


def check_nightscout(url: str, headers: dict[str, str], params: dict[str, str],
                     timeout_s: float = 5.0) -> None:
    """Fail fast when the Nightscout-compatible site at ``url`` is not there or refuses these
    credentials (``GET /api/v1/status.json``, which a site that denies anonymous reads guards)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    credential = "token" if "token" in params else "API secret"
    _probe(url.rstrip("/"), f"/api/v1/status.json{query}", headers, timeout_s, credential)


def admin_call(url: str, path: str, secret_env: str = "API_SECRET", method: str = "GET",
               timeout_s: float = 30.0, body: Any = None) -> Any:
    """JSON answer of the ingest at ``url`` to an admin's request (e.g. ``/api/v2/stats``),
    with ``body`` sent as JSON when given."""
    headers = admin_headers(secret_env)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    request = urllib.request.Request(f"{url.rstrip('/')}{path}", data=data, method=method,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return json.load(resp)


def alerts_fired(url: str, secret_env: str = "API_SECRET") -> int:
    """Alerts the ingest at ``url`` has fired so far (summed over its partitions)."""
    return sum(p.get("alerts_fired", 0) for p in admin_call(url, "/api/v2/stats", secret_env))
