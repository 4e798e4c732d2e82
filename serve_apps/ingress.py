"""The HTTP front door: one Serve deployment combining the cgm-ray v2 and Nightscout routes.

Stateless, so it scales to several replicas; each request is routed to the partition that
owns the patient (``cgm_ray.sharding.shard_of``), and an ingest request is answered only
after every partition it touched has made its readings durable (``serve_apps.batching``).
With one partition and one replica, the replica holds the partition itself (and is then
stateful: see ``serve_apps.partition``).
Handlers read the body themselves (no per-request model binding on the readings path);
``serve_apps.openapi_docs`` documents the bodies and error answers in the OpenAPI schema.
The routes live in mixins (``serve_apps.v2_routes``, ``serve_apps.history_routes``,
``serve_apps.nightscout``, ``serve_apps.web_routes``), registered
on ``serve_apps.http_api.api`` in the order imported here: v2 first. The hot path,
``POST /api/v2/readings``, is handed to its handler past FastAPI (``serve_apps.direct_routes``).
"""

from ray import cloudpickle, serve

from serve_apps import history_routes, v2_routes, web_routes
from serve_apps.direct_routes import DirectRoutes
from serve_apps.history_routes import History
from serve_apps.http_api import api
from serve_apps.nightscout import v1_routes, v3_routes
from serve_apps.nightscout.v1_routes import NightscoutV1
from serve_apps.nightscout.v3_routes import NightscoutV3
from serve_apps.v2_routes import CgmRayV2
from serve_apps.web_routes import WebApp

# Serve ships the app to its replicas pickled. The class-based view (``self`` injected into
# each route) lives on the route functions; those of mixins importable by name would be
# pickled by reference and arrive without it, so their modules go by value.
for _routes in (v2_routes, history_routes, v1_routes, v3_routes, web_routes):
    cloudpickle.register_pickle_by_value(_routes)


# No per-request access log lines: ~3% of the ingress's CPU at a thousand requests a second;
# the request counters and latency histograms carry the same information. Health checks
# every 5 s, as a partition's: they drive a co-located partition's timers.
@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0},
                  health_check_period_s=5.0, logging_config={"enable_access_log": False})
@serve.ingress(api)
class Ingress(CgmRayV2, History, NightscoutV1, NightscoutV3, WebApp):
    """Routes requests to partitions by patient."""

    def __serve_build_asgi_app__(self) -> DirectRoutes:
        """The app this replica serves, built by Serve once the replica is: the FastAPI
        app, with single-reading uploads sent straight to their handler."""
        return DirectRoutes(self.app, {("POST", "/api/v2/readings"): self.post_readings})

    @property
    def docs_path(self) -> str | None:
        """Where the API's docs are, for Serve's status (it looks for a FastAPI app)."""
        return api.docs_url
