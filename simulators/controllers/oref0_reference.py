"""The real oref0 (npm ``oref0`` 0.7.1) in a long-lived Node worker, fed batches as JSON lines.

``make node-deps`` installs the package into ``.node/`` at the repository root. The worker
(``oref0_worker.js``, shipped next to this module) loads ``determine-basal`` and oref0's own
``tempBasalFunctions`` once, then answers one JSON line (a batch of decisions) with one JSON line
(the ``rT`` objects). Starting Node and loading oref0 takes ~0.1 s; a decision then costs
~0.1 ms, so batches of thousands of decisions are the unit of work.

The port (`simulators.controllers.oref0`) is checked against this reference;
`oref0_inputs` turns the port's inputs into the JSON oref0 reads, so both see the same state.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from simulators.controllers.oref0 import N_TICKS, Oref0Profile, Oref0State, scalar_at

__all__ = ["Oref0Reference", "Oref0ReferenceError", "default_node_dir", "effective_rate", "effective_rates",
           "oref0_inputs"]

WORKER_JS = Path(__file__).with_name("oref0_worker.js")
OREF0_VERSION = "0.7.1"


class Oref0ReferenceError(RuntimeError):
    """Node or the oref0 package is missing, or the worker failed, timed out or answered badly."""


def default_node_dir() -> Path:
    """Where ``make node-deps`` installs oref0: ``$CGM_RAY_NODE_DIR``, else ``.node`` at the repo root."""
    if os.environ.get("CGM_RAY_NODE_DIR"):
        return Path(os.environ["CGM_RAY_NODE_DIR"])
    for parent in Path(__file__).resolve().parents:
        if (parent / ".node" / "node_modules" / "oref0").is_dir():
            return parent / ".node"
    return Path.cwd() / ".node"


class Oref0Reference:
    """One Node process running oref0's determine-basal; use as a context manager.

    ``run(decisions)`` sends a batch of oref0 input dicts (see `oref0_inputs`) and returns the
    ``rT`` dicts in order; a decision oref0 throws on comes back as ``{"error": ...}``. A reply
    slower than ``timeout_s`` kills the worker and raises `Oref0ReferenceError`.
    """

    def __init__(self, node_dir: str | Path | None = None, timeout_s: float = 120.0, node: str = "node"):
        self.timeout_s = timeout_s
        node_bin = shutil.which(node)
        if node_bin is None:
            raise Oref0ReferenceError(f"node ({node!r}) is not on PATH: install Node.js >= 18 to run oref0")
        self.node_dir = Path(node_dir) if node_dir is not None else default_node_dir()
        modules = self.node_dir / "node_modules"
        if not (modules / "oref0" / "package.json").is_file():
            raise Oref0ReferenceError(
                f"the oref0 npm package is not installed in {self.node_dir}: "
                f"run `make node-deps` (npm install --prefix .node oref0@{OREF0_VERSION})")
        # UTC: lib/iob splits temps at basal-schedule times read in the process's time zone
        env = dict(os.environ, NODE_PATH=str(modules), TZ="UTC")
        self._stderr = tempfile.TemporaryFile()
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [node_bin, str(WORKER_JS)], cwd=self.node_dir, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr)
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        hello = self._read_reply()
        self.version = hello.get("oref0")
        if self.version != OREF0_VERSION:
            self.close()
            raise Oref0ReferenceError(f"oref0 {self.version} is installed, the reference is {OREF0_VERSION}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def run(self, decisions: list[dict]) -> list[dict]:
        """determine-basal's ``rT`` for each decision (inputs as `oref0_inputs` builds them)."""
        return self._request("decisions", decisions)

    def iob(self, requests: list[dict]) -> list[dict]:
        """lib/iob's 48 ticks for each of ``requests`` (``{history, profile, clock, autosens}``).

        Each answer has ``iob``, ``activity``, ``zt_iob`` and ``zt_activity`` lists (the
        ``iobWithZeroTemp`` ticks), for checking `insulin_on_board`.
        """
        return self._request("iob", requests)

    def _request(self, kind: str, items: list[dict]) -> list[dict]:
        if self._proc is None:
            raise Oref0ReferenceError("the oref0 worker is closed")
        line = json.dumps({kind: items}, separators=(",", ":")).encode() + b"\n"
        try:
            self._proc.stdin.write(line)
            self._proc.stdin.flush()
        except BrokenPipeError as e:
            raise self._failure("the oref0 worker exited") from e
        results = self._read_reply()["results"]
        if len(results) != len(items):
            raise self._failure(f"the oref0 worker answered {len(results)} of {len(items)} requests")
        return results

    def _read_reply(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise self._failure(f"the oref0 worker did not answer within {self.timeout_s:g} s")
            chunk = os.read(self._proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise self._failure("the oref0 worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "fatal" in reply:
            raise self._failure(reply["fatal"])
        return reply

    def _failure(self, message: str) -> Oref0ReferenceError:
        stderr = b""
        if self._stderr is not None:
            self._stderr.seek(0)
            stderr = self._stderr.read()[-2000:]
        self.close()
        detail = f"; node stderr: {stderr.decode(errors='replace').strip()}" if stderr.strip() else ""
        return Oref0ReferenceError(message + detail)

    def close(self) -> None:
        """End the worker: close its input, then kill it by pid if it has not exited within 2 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._selector.close()
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Oref0Reference:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self._proc.kill()
            self._proc.wait()


def oref0_inputs(state: Oref0State, profile: Oref0Profile, i: int, now_ms: int = 1_700_000_000_000) -> dict:
    """Patient ``i``'s decision as the inputs of oref0's ``determine_basal`` (for `Oref0Reference.run`).

    Times are absolute epoch milliseconds: glucose ``date``, ``lastBolusTime`` and
    ``lastCarbTime`` sit their ages before ``now_ms`` (``currentTime``).
    """
    def scalar(name: str) -> float:
        return float(scalar_at(getattr(state, name), i))

    iob_data = [{"iob": float(state.iob_u[i, k]), "activity": float(state.activity_u_per_min[i, k]),
                 "iobWithZeroTemp": {"iob": float(state.zero_temp_iob_u[i, k]),
                                     "activity": float(state.zero_temp_activity_u_per_min[i, k])}}
                for k in range(N_TICKS)]
    iob_data[0]["lastBolusTime"] = now_ms - scalar("last_bolus_age_min") * 60_000
    return {
        "glucose_status": {
            "glucose": scalar("glucose_mgdl"), "delta": scalar("delta_mgdl"),
            "short_avgdelta": scalar("short_avgdelta_mgdl"), "long_avgdelta": scalar("long_avgdelta_mgdl"),
            "date": now_ms - scalar("glucose_age_min") * 60_000, "noise": scalar("noise"),
            "device": "cgm-ray" if bool(scalar_at(profile.flat_cgm_check, i)) else "fakecgm",
        },
        "currenttemp": {"rate": scalar("temp_rate_u_per_h"), "duration": scalar("temp_remaining_min"),
                        "temp": "absolute"},
        "iob_data": iob_data,
        "profile": profile.to_oref0(i),
        "autosens": {"ratio": scalar("autosens_ratio")},
        "meal_data": {"carbs": scalar("carbs_g"), "mealCOB": scalar("cob_g"),
                      "lastCarbTime": now_ms - scalar("last_carb_age_min") * 60_000,
                      "slopeFromMaxDeviation": scalar("slope_from_max_deviation"),
                      "slopeFromMinDeviation": scalar("slope_from_min_deviation")},
        "microBolusAllowed": bool(scalar_at(state.microbolus_allowed, i)),
        "currentTime": now_ms,
    }


def effective_rate(result: dict, temp_rate_u_per_h: float, temp_remaining_min: float,
                   basal_u_per_h: float) -> float:
    """The basal rate the pump runs after oref0's ``rT``: its new temp, else the running one, else basal.

    A cancel (``duration`` 0) returns to the scheduled basal. This is how a decision compares
    with the port's ``rate_u_per_h`` (`Oref0Decision`).
    """
    if "rate" in result and "duration" in result:
        return float(result["rate"]) if result["duration"] > 0 else float(basal_u_per_h)
    return float(temp_rate_u_per_h) if temp_remaining_min > 0 else float(basal_u_per_h)


def effective_rates(results: list[dict], state: Oref0State, profile: Oref0Profile) -> np.ndarray:
    """`effective_rate` of every result (nan where oref0 reported an error)."""
    out = np.empty(len(results))
    for i, r in enumerate(results):
        out[i] = np.nan if "error" in r else effective_rate(
            r, scalar_at(state.temp_rate_u_per_h, i), scalar_at(state.temp_remaining_min, i),
            scalar_at(profile.current_basal_u_per_h, i))
    return out
