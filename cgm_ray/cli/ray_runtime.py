"""Connecting the command line to Ray: an existing cluster, or a fresh embedded local one."""

from __future__ import annotations

import os

LOCAL_OBJECT_STORE_BYTES = 300_000_000  # plenty for cgm-ray's jobs; /dev/shm need not be big


def init_ray(address: str | None = None, dashboard: bool = False) -> str | None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``, set inside Ray jobs), else start
    a private local Ray: never a stray cluster that happens to be running on this machine.

    Returns the dashboard URL when there is one (``dashboard`` starts it, on 127.0.0.1, for
    a local Ray; it costs a few seconds and a few hundred MB, so only the demo asks for it).
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
