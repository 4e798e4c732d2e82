"""The peer of the single-reading benchmark: Ray Serve with nothing of cgm-ray behind it.

One FastAPI route at the ingest's path that parses the JSON body and answers 200, deployed as
the ingest's ingress is (same proxy mode, ``max_ongoing_requests``, no access log, no CPUs
reserved): what Serve itself can do on this machine, against which
``bench_ingest.py --compare-trivial`` sets the ingest's requests/s. No ``from __future__ import
annotations``: Serve reads each route's ``self`` and ``Request`` from its live signature.
"""

import json
import sys

from fastapi import FastAPI, Request
from ray import cloudpickle, serve

app = FastAPI()


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0},
                  logging_config={"enable_access_log": False})
@serve.ingress(app)
class Trivial:
    """Parses a reading batch and answers as the ingest does, storing nothing."""

    @app.post("/api/v2/readings")
    async def post_readings(self, request: Request) -> dict:
        body = json.loads(await request.body())
        return {"accepted": len(body["ts_ms"]), "duplicates": 0}


def start_trivial(host: str, port: int) -> str:
    """Run the trivial app on the Ray this process is connected to; its base URL."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # replicas cannot import it
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    serve.run(Trivial.bind(), name="trivial", route_prefix="/")
    return f"http://{host}:{port}"
