"""The layer contract: imports point down only, and the base and glucose layers stay light.

The contracts themselves live in ``pyproject.toml`` ([tool.importlinter]); import-linter reads
every import statement, including those inside functions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("ray", "gymnasium", "matplotlib", "simulators", "actors", "serve_apps")


def test_import_contracts_are_kept():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("module", ["cgm_ray.glucose.metrics", "cgm_ray.glucose.alerts",
                                    "cgm_ray.schema", "cgm_ray.fs", "cgm_ray.client",
                                    "cgm_ray.sharding", "cgm_ray.config"])
def test_light_modules_load_nothing_heavy(module):
    """What a Serve replica or a notebook gets from the base: no Ray, gym, plots or simulator."""
    code = (f"import sys, json; import {module}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    loaded = set(json.loads(done.stdout))
    assert not loaded & set(HEAVY), f"{module} loads {sorted(loaded & set(HEAVY))}"


def test_the_gym_environment_registers_on_import_of_its_module():
    code = ("import gymnasium as gym, simulators.gym_env; "
            "print(gym.make('cgm_ray/T1D-v0').unwrapped.__class__.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip() == "T1DEnv"
