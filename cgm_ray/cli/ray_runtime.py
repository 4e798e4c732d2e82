"""Connecting the command line to Ray: an existing cluster, or a fresh embedded local one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LOCAL_OBJECT_STORE_BYTES = 300_000_000  # plenty for cgm-ray's jobs; /dev/shm need not be big
DASHBOARD_PORT = 8265  # Ray's own default


def init_ray(address: str | None = None, dashboard_port: int | None = None) -> str | None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``, set inside Ray jobs), else start
    a private local Ray: never a stray cluster that happens to be running on this machine.

    Returns the dashboard URL when there is one (``dashboard_port`` starts it there, on
    127.0.0.1, for a local Ray; it costs a few seconds and a few hundred MB: the long-running
    commands ask for it, unless told ``--no-dashboard``).
    """
    import ray

    if ray.is_initialized():
        return None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = ray.init(address=address, log_to_driver=False)
    else:
        context = ray.init(address="local", include_dashboard=dashboard_port is not None,
                           dashboard_host="127.0.0.1", dashboard_port=dashboard_port or DASHBOARD_PORT,
                           log_to_driver=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    url = context.dashboard_url
    return f"http://{url}" if url and "://" not in url else url or None


def add_dashboard_option(parser: argparse.ArgumentParser) -> None:
    """``--dashboard-port`` and ``--no-dashboard``, for the long-running commands that start
    the dashboard by default: ``args.dashboard_port`` is its port, or None for none."""
    parser.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT, metavar="PORT",
                        help=f"the Ray dashboard's port on 127.0.0.1 (default {DASHBOARD_PORT})")
    parser.add_argument("--no-dashboard", dest="dashboard_port", action="store_const", const=None,
                        help="do not start the Ray dashboard (for a local Ray)")


def _token_auth() -> bool:
    """Whether the Ray this process started or joined uses token authentication. Ray turns
    it on for a local cluster when a token exists, and then sets RAY_AUTH_MODE=token in the
    driver's environment, so this holds after ``init_ray``."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def sign_in_hint() -> str:
    """How to sign in to the dashboard, naming where the token is (Ray's own order:
    $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH names, then ~/.ray/auth_token), never the
    token itself."""
    if not _token_auth():
        return "no sign-in: this Ray has no token authentication"
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "sign in with the token in $RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return f"sign in with the token in {path} (`ray get-auth-token` prints it)"


def join_hint(address: str) -> str:
    """How another cgm-ray command joins this Ray: a driver joining a cluster sends its token
    only when RAY_AUTH_MODE=token says so."""
    return f"{'RAY_AUTH_MODE=token ' if _token_auth() else ''}cgm-ray loadtest --address {address} ..."


def announce_dashboard(url: str | None) -> None:
    """Print where the dashboard is and how to sign in (stderr: stdout may be JSON)."""
    if url:
        print(f"Ray dashboard: {url} ({sign_in_hint()})", file=sys.stderr, flush=True)
