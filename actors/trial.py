"""Running a trial (`simulators.trial`): every (arm, patient shard) a Ray task, or all in-process.

The reference controllers (oref0_reference's Node worker, loop_reference's PyLoopKit) decide
patient by patient and are slow, so an arm is split into patient shards that run in parallel as
Ray tasks, each writing its own folder and closing the controller it started; the driver merges
the folders and compares the arms. Shards are exact (`Scenario.cohort`), so the split changes
nothing in the results. With one shard per arm everything runs in this process, without Ray.
On a cluster the output folder must be one every node writes to (a shared filesystem).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simulators.trial import ShardOutcome, TrialResult, TrialSpec, finish_trial, plan_shards, simulate_shard


def run_trial(spec: TrialSpec, out: Path, progress: Callable[[ShardOutcome], None] = lambda _: None
              ) -> TrialResult:
    """Simulate every arm of ``spec`` into ``out`` and compare them; ``progress`` hears of each
    finished shard. With ``spec.shards > 1`` Ray must be initialised (``cgm_ray.cli.ray_runtime``)."""
    shards = plan_shards(spec, out)
    outcomes = []
    if spec.shards == 1:
        for shard in shards:
            outcomes.append(simulate_shard(shard, spec.warmup_min))
            progress(outcomes[-1])
        return finish_trial(spec, out, outcomes)

    import ray

    task = ray.remote(num_cpus=1)(simulate_shard)
    pending = [task.remote(shard, spec.warmup_min) for shard in shards]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            outcomes.append(ray.get(done[0]))
            progress(outcomes[-1])
    finally:
        for ref in pending:  # after an error: a cancelled task still runs its finally, closing its controller
            ray.cancel(ref)
    return finish_trial(spec, out, outcomes)
