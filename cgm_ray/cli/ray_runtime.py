"""Connecting the command line to Ray: an existing cluster, or a fresh embedded local one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LOCAL_OBJECT_STORE_BYTES = 300_000_000  # plenty for cgm-ray's jobs; /dev/shm need not be big


def init_ray(address: str | None = None, dashboard: bool = False) -> str | None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``, set inside Ray jobs), else start
    a private local Ray: never a stray cluster that happens to be running on this machine.

    Returns the dashboard URL when there is one (``dashboard`` starts it, on 127.0.0.1, for
    a local Ray; it costs a few seconds and a few hundred MB: the long-running commands ask
    for it, unless told ``--no-dashboard``).
    """
    import ray

    if ray.is_initialized():
        return None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = ray.init(address=address, log_to_driver=False)
    else:
        context = ray.init(address="local", include_dashboard=dashboard,
                           dashboard_host="127.0.0.1", log_to_driver=False,
                           object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    url = context.dashboard_url
    return f"http://{url}" if url and "://" not in url else url or None


def add_dashboard_option(parser: argparse.ArgumentParser) -> None:
    """``--no-dashboard``, for the long-running commands that start the dashboard by default."""
    parser.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                        help="do not start the Ray dashboard (for a local Ray)")


def sign_in_hint() -> str:
    """How to sign in to the dashboard of a local Ray with token authentication, naming where
    the token is, never the token itself (Ray's own order: $RAY_AUTH_TOKEN, the file
    $RAY_AUTH_TOKEN_PATH names, then ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return "no sign-in (RAY_AUTH_MODE=disabled)"
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "sign in with the token in $RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return f"sign in with the token in {path} (`ray get-auth-token` prints it)"


def announce_dashboard(url: str | None) -> None:
    """Print where the dashboard is and how to sign in (stderr: stdout may be JSON)."""
    if url:
        print(f"Ray dashboard: {url} ({sign_in_hint()})", file=sys.stderr, flush=True)
