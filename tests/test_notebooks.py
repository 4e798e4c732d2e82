"""The notebooks in ``notebooks/``: they run top to bottom in a fresh kernel without errors,
their stored copies are executed cleanly (execution counts 1..n in order), and the one that
starts Ray shuts it down.

Each notebook is executed in memory with nbclient, from the notebooks folder as Jupyter
would; the stored file is never rewritten. Ray's daemons (``raylet``, ``gcs_server``) are
found among the kernel's descendants after every cell; those seen must all be gone after the
last cell, while the kernel is still alive (so it is the notebook's ``ray.shutdown()`` that
stopped them, not the kernel's exit).
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# notebook -> whether it starts (and must stop) Ray
CASES = {"01_in_silico_trial.ipynb": False, "02_explore_the_lake.ipynb": True,
         "03_real_vs_virtual.ipynb": False, "04_population_validation.ipynb": False,
         "05_closed_loop.ipynb": False}
RAY_DAEMONS = {"raylet", "gcs_server"}
MAX_BYTES = 600_000
SHUTDOWN_WAIT_S = 20.0


def ray_daemons(pid: int) -> set[psutil.Process]:
    """Live Ray daemons among the descendants of process ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for p in children:
        try:
            if p.name() in RAY_DAEMONS and p.status() != psutil.STATUS_ZOMBIE:
                found.add(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def still_alive(processes: set[psutil.Process], wait_s: float) -> list[str]:
    """Those of ``processes`` still running after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return [f"{p.name()} (pid {p.pid})" for p in alive]
        time.sleep(0.2)


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def errors(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells)
            if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_stored_notebook_is_executed_clean(name):
    path = NOTEBOOKS / name
    assert path.stat().st_size < MAX_BYTES, f"{name} is {path.stat().st_size:,} bytes"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert cells, f"{name} has no code cells"
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), \
        f"{name} was not stored executed top to bottom from a clean kernel: {counts}"
    assert not errors(nb)
    text = path.read_text()
    assert str(ROOT) not in text, f"{name} stores an absolute path of this machine"


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_without_errors(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_LAKE", str(tmp_path / "lake"))  # notebook 02's lake
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a private local Ray, never a cluster
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    last_code = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    seen: set[psutil.Process] = set()
    left_running: list[str] = []

    def after_cell(cell, cell_index, **_):
        kernel_pid = client.km.provisioner.pid
        seen.update(ray_daemons(kernel_pid))
        if cell_index == last_code:  # the kernel is still alive here
            left_running.extend(still_alive(seen | ray_daemons(kernel_pid), SHUTDOWN_WAIT_S))

    client = NotebookClient(nb, kernel_name="python3", timeout=300, record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            on_cell_executed=after_cell)
    client.execute()  # raises CellExecutionError on the first failing cell

    assert not errors(nb)
    assert [c.execution_count for c in code_cells(nb)] == list(range(1, len(code_cells(nb)) + 1))
    if CASES[name]:
        assert seen, f"{name} should start a local Ray (no raylet/gcs_server seen)"
        assert not left_running, f"{name} left Ray running after its last cell: {left_running}"
    else:
        assert not seen, f"{name} should run in-process without Ray"
