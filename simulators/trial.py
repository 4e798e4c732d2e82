"""In-silico trials: several arms (controllers, or one controller's settings) on the same patients.

A trial file is a base scenario and its arms; each arm is the base with its own
``therapy.controller``. Every arm simulates the same sampled cohort with the same seed, so the
patients, their meals, habits, hypo treatments and sensor noise are the same and only the dosing
differs: each patient is their own control, and the arms are compared patient by patient
(`cgm_ray.glucose.paired`). Patients [lo, hi) of a scenario are the same rows whether simulated
alone or with the rest (`Scenario.cohort`), so an arm split into shards gives exactly the metrics
of one run.

The metrics are the consensus panel (Battelino 2019) of each patient's CGM readings after
``warmup_min``: the first hours show the sensor's warm-up and a loop with no history yet, not the
therapy. They come from `cgm_ray.glucose.metrics.basic_metrics`, as ``cgm-ray cohort`` computes
them. Running is plain Python here; ``actors.trial`` runs the (arm, shard) pairs as Ray tasks.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from cgm_ray.config import Strict, read_mapping, validate
from cgm_ray.errors import ConfigError
from cgm_ray.glucose.metrics import basic_metrics
from cgm_ray.glucose.paired import ArmOutcome, compare_arms
from simulators.closed_loop import LoopCounts
from simulators.controllers.interface import PERIOD_MIN
from simulators.controllers.registry import ControllerSpec
from simulators.encoding import OUTPUT_FILES, OutputWriter
from simulators.engine import DEFAULT_CHUNK_MIN, Simulation
from simulators.scenario import Scenario, parse_scenario

DEFAULT_WARMUP_MIN = 1440
ARM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
SHARDS_DIR = "_shards"  # an arm's shard folders while they run; "_" keeps `cgm-ray etl` out of them
# The panel compared, by iglu's column names (as `cgm-ray cohort` names them), with their labels.
TRIAL_METRICS: dict[str, str] = {
    "in_range_70_180": "TIR 70-180 %",
    "below_70": "TBR <70 %",
    "below_54": "TBR <54 %",
    "above_180": "TAR >180 %",
    "above_250": "TAR >250 %",
    "mean": "mean mg/dL",
    "cv": "CV %",
    "gmi": "GMI %",
}


class Arm(Strict):
    controller: ControllerSpec = Field(description="this arm's therapy.controller: {algorithm: ..., ...}")


class TrialSpec(Strict):
    """A trial as written in a file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="names the default output folder, out/trial/<name>")
    scenario: Scenario = Field(description="the base scenario every arm shares (without therapy.controller)")
    arms: dict[str, Arm] = Field(description="arm name -> its controller; the first arm is the reference")
    warmup_min: int = Field(DEFAULT_WARMUP_MIN, ge=0, description="simulated first, left out of the metrics")
    shards: int = Field(1, ge=1, le=10_000, description="patient shards per arm; above 1, Ray tasks")

    @field_validator("arms")
    @classmethod
    def _two_named_arms(cls, v: dict[str, Arm]) -> dict[str, Arm]:
        if len(v) < 2:
            raise ValueError(f"list at least 2 arms to compare, got {len(v)}")
        bad = [name for name in v if not ARM_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"arm names are lower-case letters, digits, _ and - (each names a folder), "
                             f"not {bad}")
        return v

    def arm_scenarios(self) -> dict[str, Scenario]:
        """Each arm's scenario: the base with the arm's controller, in the file's order."""
        base = self.scenario
        return {name: base.model_copy(update={"therapy": base.therapy.model_copy(
            update={"controller": arm.controller})}) for name, arm in self.arms.items()}

    def shard_ranges(self) -> list[tuple[int, int]]:
        """Patient index ranges [lo, hi) of each shard, as equal as possible."""
        n = self.scenario.n_patients
        bounds = [n * k // self.shards for k in range(self.shards + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


def parse_trial(data: object) -> TrialSpec:
    """Validate a trial mapping; errors name the offending field."""
    if isinstance(data, dict) and isinstance(data.get("scenario"), dict):
        scenario = data["scenario"]
        if isinstance(scenario.get("therapy"), dict) and "controller" in scenario["therapy"]:
            raise ConfigError("scenario.therapy.controller", "each arm sets its own "
                              "(arms.<name>.controller), the base scenario none")
        try:  # scenario-level checks (patient names, sensor model)
            parse_scenario(scenario)
        except ConfigError as exc:
            raise ConfigError(f"scenario.{exc.field}", exc.message) from None
    spec = validate(TrialSpec, data)
    duration = spec.scenario.duration_min
    if duration % PERIOD_MIN:
        raise ConfigError("scenario.duration_min", f"must be a multiple of {PERIOD_MIN} min (a closed "
                          f"loop decides every {PERIOD_MIN} min), got {duration}")
    if spec.warmup_min >= duration:
        raise ConfigError("warmup_min", f"must be shorter than scenario.duration_min ({duration}), "
                          f"got {spec.warmup_min}")
    if spec.shards > spec.scenario.n_patients:
        raise ConfigError("shards", f"must be at most the number of patients "
                          f"({spec.scenario.n_patients}), got {spec.shards}")
    return spec


def load_trial(path: str | Path) -> TrialSpec:
    """Read a YAML or JSON trial file."""
    return parse_trial(read_mapping(path))


@dataclass(frozen=True)
class TrialShard:
    """One arm on patients [lo, hi), its lake files written to ``folder``."""

    arm: str
    scenario: Scenario
    lo: int
    hi: int
    folder: Path


@dataclass(frozen=True)
class ShardOutcome:
    """What a shard gave: per-patient metrics, and what its loop's safety layer did."""

    arm: str
    lo: int
    hi: int
    folder: Path
    metrics: pa.Table  # one row per patient: arm, patient_id, age_group, readings, TRIAL_METRICS
    loop: LoopCounts | None  # over the whole run, warm-up included; None: open loop
    seconds: float


def plan_shards(spec: TrialSpec, out: Path) -> list[TrialShard]:
    """Every (arm, shard) of the trial. With one shard an arm writes straight into ``out/<arm>``,
    with more each writes into ``out/<arm>/_shards/<k>`` and `finish_trial` merges them."""
    ranges = spec.shard_ranges()
    return [TrialShard(arm, scenario, lo, hi,
                       out / arm if len(ranges) == 1 else out / arm / SHARDS_DIR / f"{k:05d}")
            for arm, scenario in spec.arm_scenarios().items() for k, (lo, hi) in enumerate(ranges)]


def simulate_shard(shard: TrialShard, warmup_min: int, chunk_min: int = DEFAULT_CHUNK_MIN) -> ShardOutcome:
    """Simulate one arm on patients [lo, hi): write its lake files, return its patients' metrics.

    A controller with a worker process (oref0_reference's Node) is closed however the run ends.
    """
    started = time.perf_counter()
    scenario = shard.scenario
    sim = scenario.build(scenario.cohort(shard.lo, shard.hi))
    rows, glucose = [], []
    try:
        with OutputWriter(sim, scenario.start_ms, shard.folder) as writer:
            for step in sim.run(scenario.duration_min, chunk_min=chunk_min):
                writer.write(step)
                after = step.readings.minute >= warmup_min
                rows.append(step.readings.patient[after])
                glucose.append(step.readings.glucose_mgdl[after])
    finally:
        _close_controller(sim)
    table = patient_metrics(shard.arm, sim, np.concatenate(rows), np.concatenate(glucose))
    loop = replace(sim.loop.counts) if sim.loop is not None else None
    return ShardOutcome(shard.arm, shard.lo, shard.hi, shard.folder, table, loop,
                        time.perf_counter() - started)


def _close_controller(sim: Simulation) -> None:
    """Stop the worker process of a controller that has one (``close()``: oref0_reference's Node)."""
    close = getattr(sim.loop.controller, "close", None) if sim.loop is not None else None
    if close is not None:
        close()


def patient_metrics(arm: str, sim: Simulation, row: np.ndarray, glucose_mgdl: np.ndarray) -> pa.Table:
    """The trial's metrics of each patient of ``sim`` from their readings (cohort ``row``, mg/dL)."""
    n = len(sim)
    panel = basic_metrics(row, glucose_mgdl.astype(np.float64), n)
    return pa.table({
        "arm": [arm] * n, "patient_id": list(sim.cohort.names), "age_group": list(sim.cohort.age_group),
        "readings": np.bincount(row, minlength=n), **{name: panel[name] for name in TRIAL_METRICS}})


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: where its files are, every patient's metrics and the arms compared."""

    out: Path
    arms: tuple[str, ...]  # the first is the reference
    metrics: pa.Table  # one row per patient per arm (metrics.parquet)
    outcomes: list[ArmOutcome]  # per metric of TRIAL_METRICS, per arm (comparison.csv)
    loop: dict[str, LoopCounts | None]  # per arm, summed over its shards (loop_counts.csv)
    simulated_s: dict[str, float]  # per arm, summed over its shards
    files: list[Path]  # metrics.parquet, comparison.csv, loop_counts.csv, then each arm's folder

    @property
    def n_patients(self) -> int:
        return self.metrics.num_rows // len(self.arms)


def finish_trial(spec: TrialSpec, out: Path, outcomes: list[ShardOutcome]) -> TrialResult:
    """Merge each arm's shard folders, compare the arms and write the trial's tables to ``out``."""
    arms = tuple(spec.arms)
    order = {arm: k for k, arm in enumerate(arms)}
    outcomes = sorted(outcomes, key=lambda o: (order[o.arm], o.lo))
    if spec.shards > 1:
        for arm in arms:
            merge_shard_folders([o.folder for o in outcomes if o.arm == arm], out / arm)
            shutil.rmtree(out / arm / SHARDS_DIR)
    metrics = pa.concat_tables([o.metrics for o in outcomes])
    compared = compare_trial_arms(metrics, arms)
    loop = {arm: _sum_counts([o.loop for o in outcomes if o.arm == arm]) for arm in arms}
    files = [out / "metrics.parquet", out / "comparison.csv", out / "loop_counts.csv"]
    pq.write_table(metrics, files[0])
    write_comparison_csv(compared, files[1])
    write_loop_csv(loop, files[2])
    return TrialResult(out, arms, metrics, compared, loop,
                       {arm: sum(o.seconds for o in outcomes if o.arm == arm) for arm in arms},
                       files + [out / arm for arm in arms])


def merge_shard_folders(parts: list[Path], dest: Path) -> None:
    """Each lake file of the shard folders ``parts`` as one file in ``dest``, in the parts' order.

    Streams row groups, so a big arm is never held in memory at once.
    """
    for name in OUTPUT_FILES:
        files = [part / f"{name}.parquet" for part in parts]
        with pq.ParquetWriter(dest / f"{name}.parquet", pq.read_schema(files[0])) as writer:
            for file in files:
                for batch in pq.ParquetFile(file).iter_batches():
                    writer.write_batch(batch)


def _sum_counts(counts: list[LoopCounts | None]) -> LoopCounts | None:
    if counts[0] is None:
        return None
    return LoopCounts(*(sum(getattr(c, k) for c in counts if c is not None) for k in vars(counts[0])))


def compare_trial_arms(metrics: pa.Table, arms: tuple[str, ...]) -> list[ArmOutcome]:
    """Every metric of TRIAL_METRICS compared across ``arms``, patient by patient."""
    by_arm = {arm: metrics.filter(pc.equal(metrics.column("arm"), arm)) for arm in arms}
    reference = by_arm[arms[0]].column("patient_id")
    for arm, table in by_arm.items():
        if not table.column("patient_id").equals(reference):
            raise ValueError(f"arm {arm} simulated other patients than arm {arms[0]}")
    return [outcome for metric in TRIAL_METRICS for outcome in compare_arms(
        metric, {arm: table.column(metric).to_numpy() for arm, table in by_arm.items()})]


COMPARISON_COLUMNS = ("metric", "arm", "reference", "patients", "median", "q25", "q75", "pairs",
                      "diff_median", "p_value")


def write_comparison_csv(outcomes: list[ArmOutcome], path: Path) -> None:
    """One row per (metric, arm); the reference arm's paired columns are empty."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(COMPARISON_COLUMNS)
        reference = outcomes[0].arm
        for o in outcomes:
            s, t = o.spread, o.vs_reference
            paired = ("", "", "") if t is None else (t.n_pairs, t.diff_median, t.p_value)
            out.writerow((o.metric, o.arm, reference, s.n, s.median, s.q25, s.q75, *paired))


def write_loop_csv(loop: dict[str, LoopCounts | None], path: Path) -> None:
    """What each arm's safety layer did, in patient-periods (empty for an open loop)."""
    fields = tuple(vars(LoopCounts()))
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("arm", *fields))
        for arm, counts in loop.items():
            out.writerow((arm, *(("",) * len(fields) if counts is None else
                                 (getattr(counts, k) for k in fields))))


def comparison_table(outcomes: list[ArmOutcome]) -> str:
    """The comparison as a text table: metric, arm, median [IQR], median paired difference, p."""
    lines = [f"{'metric':<14}{'arm':<20}{'median [IQR]':>24}{'diff median':>13}{'p':>10}"]
    previous = None
    for o in outcomes:
        s, t = o.spread, o.vs_reference
        label = TRIAL_METRICS[o.metric] if o.metric != previous else ""
        previous = o.metric
        cell = f"{s.median:.1f} [{s.q25:.1f}-{s.q75:.1f}]"
        paired = "" if t is None else f"{t.diff_median:>+13.2f}{t.p_value:>10.2g}"
        lines.append(f"{label:<14}{o.arm:<20}{cell:>24}{paired}")
    return "\n".join(lines)
