"""Multi-objective search on the NAS-Bench-201 table: accuracy against model size.

Every candidate is looked up in the benchmark (no training), so hundreds of trials take seconds.
The result is a Pareto front: architectures no other one beats on both accuracy and size.

    export NASFORGE_NB201=/path/to/nb201     # folder with nb201.csv (see docs/benchmarks.md)
    python examples/multi_objective.py
"""

import os
import sys
from pathlib import Path

import nasforge
from nasforge.report.html import write_report
from nasforge.report.stored import load_experiment

SMALL = os.environ.get("NASFORGE_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("NASFORGE_EXAMPLE_OUT", "runs/multi_objective"))

if not os.environ.get("NASFORGE_NB201"):
    sys.exit("set NASFORGE_NB201 to the folder holding nb201.csv")

objectives = ["accuracy", "min:params"]  # the first one ranks the results
space = nasforge.create_space("nb201")
strategy = nasforge.create_strategy("rea", space, seed=0, objectives=objectives)
evaluator = nasforge.create_evaluator("nb201", dataset="cifar10")  # $NASFORGE_NB201
db = OUT / "search.db"
db.unlink(missing_ok=True)  # start afresh each time
experiment = nasforge.Experiment(
    space, strategy, evaluator, objectives=objectives,
    budget=nasforge.Budget(max_trials=60 if SMALL else 300), storage=str(db),
)
experiment.run()

front = load_experiment(db).pareto_trials()
print(f"{len(front)} architectures on the Pareto front:")
for t in front:
    print(f"  {t.metrics['accuracy']:6.2f}%  {int(t.metrics['params']):>9,} params  "
          f"{space.to_string(t.arch)}")
print("report:", write_report(db, OUT / "report.html").html)
