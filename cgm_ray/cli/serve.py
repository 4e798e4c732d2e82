"""``cgm-ray serve`` (local Ray + the ingest app on 127.0.0.1) and ``cgm-ray token``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from cgm_ray.cli.ray_runtime import add_dashboard_option, announce_dashboard, init_ray, join_hint
from cgm_ray.errors import ConfigError
from serve_apps.local import PROXY_ENV, Proxy, use_proxy
from serve_apps.local import start_ingest as start_app


def start_ingest(host: str, port: int, args: dict, proxy: Proxy = "haproxy",
                 address: str | None = None, dashboard_port: int | None = None) -> str:
    """Select the proxy, start Ray (or join ``address``; with ``dashboard_port``, a local
    Ray's dashboard there, announced) and the ingest app; its base URL."""
    use_proxy(proxy)
    announce_dashboard(init_ray(address, dashboard_port))
    return start_app(host, port, args)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the ingest, storage and alert API until interrupted."""
    secret = os.environ.get("API_SECRET")
    if not secret or len(secret) < 12:
        raise ConfigError("API_SECRET", "set the environment variable to a secret of at least "
                          "12 characters (clients send its SHA1 as the api-secret header)")
    url = start_ingest(args.host, args.port, {
        "partitions": args.partitions, "data_dir": args.data_dir,
        "landing_dir": args.landing_dir, "documents_landing_dir": args.documents_landing_dir,
        "units": args.units, "lake_dir": args.lake, "rate_limit_per_s": args.rate_limit,
        "patient_rate_limit_per_s": args.patient_rate_limit}, args.proxy, args.address,
        args.dashboard_port)
    import ray

    print(f"cgm-ray ingest listening on {url} (OpenAPI docs: {url}/docs); Ctrl-C stops it",
          flush=True)
    address = ray.get_runtime_context().gcs_address
    print(f"Ray at {address}; fleet and loadtest join it: {join_hint(address)}",
          file=sys.stderr, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    from ray import serve

    serve.shutdown()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a role token signed with $API_SECRET, and the web app's link that signs in with it."""
    from urllib.parse import quote

    from serve_apps.auth import Authenticator

    try:
        token = Authenticator(os.environ.get("API_SECRET")).make_token(args.role, args.subject)
    except ValueError as exc:
        raise ConfigError("API_SECRET" if "secret" in str(exc) else "--role", str(exc)) from None
    print(token)
    print(f"web app: {args.url.rstrip('/')}/?token={quote(token)}", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``token`` on the ``cgm-ray`` parser."""
    serve = sub.add_parser("serve", help="run the ingest/alert API locally",
                           description=cmd_serve.__doc__)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--partitions", type=int, default=1,
                       help="stateful partitions by patient (one per ~2 cores)")
    serve.add_argument("--data-dir", default="out/ingest")
    serve.add_argument("--landing-dir", default="out/lake/landing/ingest")
    serve.add_argument("--documents-landing-dir", default="out/lake/landing/documents",
                       help="where closed logs of Nightscout treatments, device statuses and "
                       "profiles land for the lake")
    serve.add_argument("--lake", default="out/lake",
                       help="the lake whose readings the web app's history, reports and cohort "
                       "panel show before the hot ones")
    serve.add_argument("--rate-limit", type=float, default=1000.0, metavar="PER_S",
                       help="requests/s per credential and ingress replica (burst 2x)")
    serve.add_argument("--patient-rate-limit", type=float, default=1.0, metavar="PER_S",
                       help="writes/s per patient for requests about one patient (burst 30)")
    serve.add_argument("--units", choices=["mg/dl", "mmol"], default="mg/dl",
                       help="display units of the Nightscout routes")
    serve.add_argument("--proxy", choices=sorted(PROXY_ENV), default="haproxy")
    serve.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    add_dashboard_option(serve)
    serve.set_defaults(func=cmd_serve)
    token = sub.add_parser("token", help="make a role-scoped API token",
                           description=cmd_token.__doc__)
    token.add_argument("--role", required=True,
                       choices=["admin", "uploader", "patient", "caregiver", "clinician"])
    token.add_argument("--subject", required=True,
                       help="patient id (uploader, patient), patient ids separated by commas (caregiver), "
                       "cohort (clinician) or *")
    token.add_argument("--url", default="http://127.0.0.1:8000",
                       help="the server's base URL, for the web app's link")
    token.set_defaults(func=cmd_token)


__all__ = ["add_commands", "start_ingest"]
