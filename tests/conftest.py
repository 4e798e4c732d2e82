"""Shared test fixtures: the read-only reference material in ../shared, a Ray runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def simglucose_ref() -> Path:
    path = SHARED / "reference" / "simglucose"
    if not path.is_dir():
        pytest.skip(f"reference data absent: {path} (the ../shared folder beside the repo)")
    return path


@pytest.fixture(scope="module")
def ray_runtime():
    """A private local Ray for one test module (2 CPUs, a small object store), shut down after."""
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=300_000_000,
             include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
