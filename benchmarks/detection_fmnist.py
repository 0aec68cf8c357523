"""Detection search on composed Fashion-MNIST scenes: random search against REA, and the
hand-designed backbone, at a fixed budget of trials (each trained the same number of epochs).

    nice -n 15 .venv/bin/python benchmarks/detection_fmnist.py [--trials 8] [--seeds 1] [--first-seed 0]
        [--epochs 3] [--train-images 128] [--val-images 48] [--canvas 128] [--batch-size 16]
        [--lr 2e-3] [--population 4] [--threads 1] [--json out.json]

Space: ``detection`` with the ``object_detection`` preset's ops and decisions, scaled for small
scenes on two CPU cores: anchors 16/32/64 (strides 4/8/16), 5-8 backbone layers of 16-64 filters,
FPN 32 or 64 channels, 1 or 2 head convs. Evaluator: ``detection`` (AdamW at peak ``--lr``,
batches of ``--batch-size``, one-cycle schedule,
``--epochs`` epochs on ``--train-images`` ``--canvas``-pixel scenes from Fashion-MNIST's training
split; mAP on ``--val-images`` scenes made from the first half of its test split). Every search
gets ``--trials`` trials (REA: population ``--population``, tournaments of half of it); the best
trial's mAP@[.5:.95] and mAP@.5 are reported, with the mean wall and CPU seconds per trial (CPU:
this process's user + system time, all threads). The hand-designed backbone (``VGG_RETINANET``,
the space's reference: plain 3x3 convs widening, no skips, the most head convs offered) is trained
the same way with the same seeds (``--first-seed`` .. ``--first-seed + --seeds - 1``; separate
seeds can run as separate processes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import nasforge


def make_space() -> nasforge.SearchSpace:
    return nasforge.create_space(
        preset="object_detection", anchor_scales=[16, 32, 64], min_layers=5, max_layers=8,
        filters=[16, 32, 64], fpn_channels=[32, 64], head_convs=[1, 2])


def make_evaluator(args: argparse.Namespace) -> nasforge.Evaluator:
    return nasforge.create_evaluator("detection", epochs=args.epochs, train_images=args.train_images,
                                     val_images=args.val_images, canvas=args.canvas,
                                     batch_size=args.batch_size, lr=args.lr)


def search(strategy: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    space = make_space()
    options = ({"population_size": args.population, "sample_size": max(2, args.population // 2)}
               if strategy == "rea" else {})
    cpu = time.process_time()
    exp = nasforge.Experiment(space, nasforge.create_strategy(strategy, space, seed=seed, **options),
                              make_evaluator(args),
                              objectives=["map"], budget=nasforge.Budget(max_trials=args.trials),
                              storage=None, seed=seed, device="cpu")
    exp.run()
    ok = [t for t in exp.trials if t.status.value == "ok"]
    best = max(ok, key=lambda t: t.metrics["map"])
    return {"strategy": strategy, "seed": seed, "trials": len(exp.trials), "best_map": best.metrics["map"],
            "best_map_50": best.metrics["map_50"],
            "seconds_per_trial": statistics.mean(float(t.duration or 0.0) for t in ok),
            "cpu_seconds_per_trial": (time.process_time() - cpu) / len(exp.trials),
            "best_arch": space.to_string(best.arch)}


def reference(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from nasforge.evaluators.base import EvalContext

    space = make_space()
    evaluator = make_evaluator(args).bind(space)
    evaluator.check_ready()  # the scenes are made before the clocks start, as in a search
    start, cpu = time.time(), time.process_time()
    result = evaluator.evaluate(space.from_string("VGG_RETINANET"), EvalContext(seed=seed))
    return {"strategy": "hand-designed", "seed": seed, "trials": 1, "best_map": result.metrics["map"],
            "best_map_50": result.metrics["map_50"], "seconds_per_trial": time.time() - start,
            "cpu_seconds_per_trial": time.process_time() - cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=128)
    p.add_argument("--val-images", type=int, default=48)
    p.add_argument("--canvas", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args()
    # One torch thread: on two shared cores the tiny detectors run several times faster than on
    # two threads that contend with each other (measured on 64 scenes of 64 pixels, 3-4
    # epochs: about 3 CPU seconds on one thread, 20-35 on two).
    torch.set_num_threads(args.threads)
    rows = []
    start = time.process_time()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for method in ("hand-designed", "random", "rea"):
            r = reference(seed, args) if method == "hand-designed" else search(method, seed, args)
            rows.append(r)
            print(f"{r['strategy']:>13} seed {r['seed']}: mAP {r['best_map']:.3f}  mAP@.5 {r['best_map_50']:.3f}  "
                  f"{r['seconds_per_trial']:.1f} s ({r['cpu_seconds_per_trial']:.1f} CPU s)/trial "
                  f"over {r['trials']} trial(s)", flush=True)
    print(f"total CPU seconds: {time.process_time() - start:.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows, "cpu_seconds": time.process_time() - start},
                      f, indent=2)


if __name__ == "__main__":
    main()
