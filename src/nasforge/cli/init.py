"""``nasforge init [PATH]``: write a commented starter configuration for ``nasforge search``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasforge.cli.common import console, write_json
from nasforge.errors import ConfigError

DEFAULT_PATH = "nasforge.yaml"


def _names(kind: str) -> str:
    from nasforge.registry import EVALUATORS, SPACES, STRATEGIES

    registry = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS}[kind]
    return ", ".join(registry.names())


def starter_config(path: str | Path = DEFAULT_PATH) -> str:
    """The text of the starter configuration; every key of SearchConfig with a comment.

    It runs as is: regularized evolution over NAS-Bench-201 cells, each trained briefly on
    Fashion-MNIST (about a minute on two CPU cores), stored in ``runs/<file name>.db``.
    """
    stem = Path(path).stem or "nasforge"
    return f"""\
# nasforge search settings. Run it with:   nasforge search --config {path}
#
# Every key also has a command-line flag (budget_trials -> --budget-trials, space_options ->
# --space-option K=V, ...); flags override this file. The settings are stored in the experiment
# database, so `nasforge search --resume runs/{stem}.db` continues the search without this file.
# Then: nasforge report runs/{stem}.db, nasforge export runs/{stem}.db, nasforge train ...

# --- what to search -----------------------------------------------------------------------------
# Search space. Registered: {_names("space")}.
# See docs/user-guide.md for what each one is and its paper.
space: nb201
# Options of the space itself (e.g. for macro: max_layers). nb201 takes none.
space_options: {{}}
# Task preset: a named space configuration (image_classification: macro; object_detection:
# detection). It sets space and space_options (keys given in space_options win). null = none.
preset: null

# Search strategy. Registered: {_names("strategy")}.
strategy: rea
# Options of the strategy; these two are rea's (remove them if you pick another strategy):
# population_size = architectures kept alive, sample_size = tournament size.
strategy_options:
  population_size: 4
  sample_size: 2

# --- how to score a candidate ---------------------------------------------------------------------
# Evaluator (performance estimator). Registered: {_names("evaluator")}.
# train = train each candidate on a dataset; nb201 = look it up in the NAS-Bench-201 table
# (evaluator_options: data: /path/to/nb201, dataset: cifar10) at no training cost.
evaluator: train
# Options of the evaluator; these are train's (any nasforge.train.TrainConfig field works too:
# lr, batch_size, optimizer, weight_decay, ...).
evaluator_options:
  dataset: fashion_mnist   # fashion_mnist, mnist, cifar10, cifar100 (the files must be present)
  data_dir: null           # folder with the dataset files; null = $NASFORGE_DATA, system installs
  epochs: 2                # training epochs per candidate (cheap proxy of the final accuracy)
  train_subset: 2000       # train on this many images (null = the whole training split)
  val_subset: 1000         # score on this many held-out validation images
  build_kwargs:            # passed to space.build: a small network for a quick search
    C: 8                   #   channels of the first stage
    N: 1                   #   cells per stage

# What to optimize: a metric name (maximized), or max:METRIC / min:METRIC. Several objectives
# give a Pareto front (e.g. [accuracy, "min:params"]); the first one ranks the results.
objectives:
  - accuracy
# Hard limits on metrics, e.g. ["params <= 1e6"] (operators <=, <, >=, >). Candidates known to
# break one before training (params, flops) are skipped at no cost.
constraints: []

# --- how long -------------------------------------------------------------------------------------
# The search stops at the first limit reached; null = no limit of that kind.
budget_trials: 10          # number of evaluated candidates
budget_seconds: null       # wall-clock seconds
budget_cost: null          # evaluation seconds (simulated for nb201: the paper's 12000 s budget)

budget_fidelity: null      # training epochs spent in total (a continued promotion counts its extra epochs)

# --- multi-fidelity: cheap evaluations first, full ones for the promising -------------------------
# Scheduler: sh (successive halving), hyperband, asha (asynchronous: workers never wait) or bohb
# (Hyperband filled by the strategy, which learns from each candidate's highest rung); null = every
# candidate gets the same full evaluation. Fidelity = training epochs; promoted candidates continue
# training from where their rung stopped.
scheduler: null
# e.g. {{min_fidelity: 1, max_fidelity: 9, eta: 3}} gives rungs of 1, 3 and 9 epochs.
scheduler_options: {{}}
# Pruner: stop a candidate whose per-epoch validation accuracy falls behind the others':
# median, percentile (percentile: 25), threshold (lower: 15); null = never.
pruner: null
pruner_options: {{}}        # e.g. {{percentile: 25, warmup_steps: 1}}

# --- the result: selection, final training and a verdict against a baseline ----------------------
# true = after the search, re-evaluate the top_k candidates with reeval_seeds fresh seeds (the
# best search score is biased upwards), train the pick and the baseline on train+val with
# final_seeds seeds each, test both on the test split and say whether the search beat the baseline.
final: false
top_k: 3                   # candidates re-evaluated with fresh seeds
reeval_seeds: 2            # fresh seeds per candidate
final_seeds: 3             # seeds of the final training (pick and baseline alike)
final_fidelity: null       # epochs of the final training (null = the search's highest fidelity)
baseline: reference        # the space's hand-designed reference (nb201: ResNet cell), text, or none

# Random seed: the same seed gives the same search (on CPU).
seed: 0

# --- where and how it runs ------------------------------------------------------------------------
# SQLite file for the trials (null = runs/<space>-<strategy>-<evaluator>-seed<seed>.db).
# Running the same command again resumes the search stored there.
storage: runs/{stem}.db
# What a stored trial survives: normal (a crash of the process) or full (also a power loss;
# SQLite synchronous=FULL, an fsync per commit).
durability: normal
# Where trials run: inline (this process), process (a local process pool) or ray (a Ray
# cluster; see docs/ray.md); null = inline for one worker, a process pool for more.
executor: null
# Trials evaluated in parallel.
workers: 1
# Ray cluster to join when executor is ray: auto, or ray://HOST:PORT (null = start a local Ray).
ray_address: null
# CPUs each Ray worker reserves (torch uses that many threads); null = 1.
ray_num_cpus: null
# GPUs each Ray worker reserves (fractions share a GPU, e.g. 0.5); null = none.
ray_num_gpus: null
# Re-run a trial whose worker process died (crash, out of memory) up to this many times.
retries: 0
# Device for training: auto (CUDA when available), cpu, cuda or cuda:N.
device: auto
# Fail a trial that runs longer than this many seconds (null = no limit).
trial_timeout: null
# Also log every trial (metrics, learning curve, architecture) to an MLflow store in this folder
# (DIR/mlflow.db; pip install 'nasforge[mlflow]'); null = no MLflow.
mlflow: null
# Also log every trial to TensorBoard event files in this folder
# (pip install 'nasforge[tensorboard]'); null = no TensorBoard.
tensorboard: null
"""


def register(sub: Any) -> None:
    """Add the ``init`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="write a commented starter configuration for `nasforge search --config`",
        description="Write a YAML file with every setting of `nasforge search`, each with a "
        "comment. It runs as is (a one-minute search on Fashion-MNIST); edit it, then run "
        "`nasforge search --config PATH`.",
    )
    p.add_argument("path", nargs="?", default=DEFAULT_PATH, metavar="PATH",
                   help=f"file to write (default {DEFAULT_PATH})")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the path and settings as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the init command."""
    from nasforge.config import load_yaml_config, make_config

    path = Path(args.path)
    if path.exists() and not args.force:
        raise ConfigError(f"{str(path)!r} already exists; pass --force to overwrite it")
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"the config file should end in .yaml or .yml, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starter_config(args.path))
    cfg = make_config(load_yaml_config(path), str(path))  # the file must load as written
    if not args.quiet and args.json != "-":
        console.print(f"wrote {path}; edit it, then run: nasforge search --config {path}")
    if args.json:
        write_json({"path": str(path), "config": cfg.model_dump(mode="json")}, args.json)
    return 0
