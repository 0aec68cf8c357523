"""The driver of the multi-node test (run by ray_multinode.sh): a search on the Ray cluster at
ADDRESS, stored in DB; each trial drops a marker file naming its node when it starts, so the script knows when
to kill a node or this driver. Run again with the same arguments, it resumes.

    python ray_cluster_driver.py ADDRESS DB MARKER_DIR TRIALS [--no-hold]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nasforge
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, RayExecutor
from nasforge.space.architecture import Architecture


def main() -> None:
    address, db, marks, trials = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    hold = sys.argv[5:] != ["--no-hold"]
    marks.mkdir(exist_ok=True)

    def slow(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        (marks / f"started-{ctx.trial_number}-{node}-{time.time():.3f}").touch()
        # Hold until a trial has started on each node (bounded): a node whose worker is still
        # importing torch must not miss the whole budget on a slow machine.
        deadline = time.time() + (150 if hold else 0)
        while len({m.name.split("-")[2] for m in marks.iterdir()}) < 2 and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(1.5)
        return {"accuracy": float(len(arch.to_json()) % 97)}

    space = nasforge.create_space("nb201")
    Experiment(space, nasforge.create_strategy("random", space, seed=0), FunctionEvaluator(slow),
               budget=Budget(max_trials=trials), storage=db, retries=1, seed=0, device="cpu",
               executor=RayExecutor(address=address, workers=2, num_cpus=1)).run()


if __name__ == "__main__":
    main()
