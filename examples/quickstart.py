"""Quickstart: search, report, export and retrain from Python.

Regularized evolution over NAS-Bench-201 cells, each candidate trained briefly on Fashion-MNIST;
then the HTML report, the best architecture as files, and the best network retrained longer.

    python examples/quickstart.py          # about two minutes on two CPU cores
    NASFORGE_EXAMPLE_SMALL=1 python examples/quickstart.py   # a few seconds (what the tests run)

Needs the Fashion-MNIST files (Debian: `apt-get install dataset-fashion-mnist`, or set
$NASFORGE_DATA to a folder holding them).
"""

import logging
import os
from pathlib import Path

import nasforge
from nasforge.export import export_architectures, load_checkpoint, retrain
from nasforge.report.html import write_report

SMALL = os.environ.get("NASFORGE_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("NASFORGE_EXAMPLE_OUT", "runs/quickstart"))

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # nasforge logs, no prints

space = nasforge.create_space("nb201")
strategy = nasforge.create_strategy("rea", space, seed=0, population_size=4, sample_size=2)
evaluator = nasforge.create_evaluator(
    "train",
    dataset="fashion_mnist",
    epochs=1 if SMALL else 2,
    train_subset=256 if SMALL else 2000,
    val_subset=128 if SMALL else 1000,
    build_kwargs={"C": 4, "N": 1} if SMALL else {"C": 8, "N": 1},
)
experiment = nasforge.Experiment(
    space, strategy, evaluator,
    budget=nasforge.Budget(max_trials=3 if SMALL else 10),
    storage=str(OUT / "search.db"),  # run the script again: it resumes, nothing is redone
)
experiment.run()

best = experiment.best()
assert best is not None, "no trial finished"
print(f"best: {space.to_string(best.arch)}  accuracy {best.metrics['accuracy']:.2f}%")

report = write_report(OUT / "search.db", OUT / "report.html")
print(f"report: {report.html}")

exported = export_architectures(OUT / "search.db", OUT / "best", top=1)
result = retrain(
    exported[0].json_path, OUT / "final",
    epochs=1 if SMALL else 5,
    train_subset=256 if SMALL else None,  # None: the whole training split
    val_size=128 if SMALL else None,  # None: 10% of it held out for validation
    test_subset=256 if SMALL else None,
)
print(f"retrained: test accuracy {result.metrics['test_accuracy']:.2f}% -> {result.checkpoint}")

model, checkpoint = load_checkpoint(result.checkpoint)  # a plain torch.nn.Module, eval mode
print(type(model).__name__, f"{int(checkpoint['metrics']['params']):,} parameters")
