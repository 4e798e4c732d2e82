"""Shared test fixtures: the reference data in tests/data (see tests/data/README.md), a Ray runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SIMGLUCOSE_REF = DATA / "simglucose"  # simglucose 0.2.11 trajectories (MIT)
IGLU_REF = DATA / "iglu"  # iglu's example data and iglu-python 0.4.3's values on it (GPL-2.0-only)
IGLU_CSV = IGLU_REF / "example_data_5_subject.csv"


@pytest.fixture(scope="session")
def simglucose_ref() -> Path:
    return SIMGLUCOSE_REF


@pytest.fixture(scope="module")
def ray_runtime():
    """A private local Ray for one test module (2 CPUs, a small object store), shut down after."""
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=300_000_000,
             include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
