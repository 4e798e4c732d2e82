"""The ingest application: ``N`` partition deployments behind a stateless ingress, or one
partition inside the single ingress replica (``IngestConfig.colocate_partition``).

``serve deploy configs/serve.yaml`` imports ``serve_apps.app:build`` (an application
builder taking the ``args`` of the config); ``cgm-ray serve`` calls it directly.
"""

from __future__ import annotations

from ray.serve import Application

from cgm_ray.config import validate
from serve_apps.config import IngestConfig
from serve_apps.ingress import Ingress
from serve_apps.partition import Partition


def build(args: dict | None = None) -> Application:
    """The application for these settings (see ``serve_apps.config.IngestConfig``)."""
    config = validate(IngestConfig, args or {})
    raw = config.model_dump()
    partitions = [] if config.colocate_partition else [
        Partition.options(name=f"Partition{k:03d}").bind(k, raw) for k in range(config.partitions)]
    return Ingress.options(num_replicas=config.ingress_replicas).bind(partitions, raw)
