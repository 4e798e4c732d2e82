"""Running the ingest on this machine's Ray: the HTTP proxy mode, a free port, ``serve.run``.

The command line (``cgm-ray serve``), the demo, the benchmarks and the tests start the
ingest through ``start_ingest``; a cluster deploys ``configs/serve.yaml`` instead.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

# Serve's HTTP proxy modes (shared/docs/ray-notes.md): the default Python proxy tops out at
# a few hundred requests/s on 2 cores; HAProxy mode is ~4x faster. Set before Ray starts.
# In HAProxy mode, RAY_SERVE_THROUGHPUT_OPTIMIZED also runs replica code, the handle router
# and the replica's own loop on one event loop (no cross-thread hops per call), sends handle
# calls over gRPC and buffers access logs: ~20% less ingress CPU per request, measured.
PROXY_ENV = {
    "python": {},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1",
                "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
                "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"},
}
Proxy = Literal["python", "haproxy"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def use_proxy(proxy: Proxy) -> None:
    """Select Serve's HTTP proxy mode; must run before Ray starts in this process."""
    os.environ.update(PROXY_ENV[proxy])


def start_ingest(host: str, port: int, args: dict) -> str:
    """Run Serve with the ingest app (``args``: ``serve_apps.config.IngestConfig`` fields)
    on the Ray this process is connected to; return the API's base URL."""
    from ray import serve

    from serve_apps.app import build

    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    serve.run(build(args), name="ingest", route_prefix="/")
    return f"http://{host}:{port}"
