"""Detection search on composed Fashion-MNIST scenes: random search against REA, and the
hand-designed backbone, at a fixed budget of trials (each trained the same number of epochs).

    nice -n 10 .venv/bin/python benchmarks/detection_fmnist.py [--trials 8] [--seeds 1]
        [--epochs 3] [--train-images 128] [--val-images 48] [--json out.json]

Space: ``detection`` with the ``object_detection`` preset's ops and decisions, scaled for 128-pixel
scenes on two CPU cores: anchors 16/32/64 (strides 4/8/16), 5-8 backbone layers of 16-64 filters,
FPN 32 or 64 channels, 1 or 2 head convs. Evaluator: ``detection`` (AdamW, one-cycle schedule,
``--epochs`` epochs on ``--train-images`` scenes from Fashion-MNIST's training split; mAP on
``--val-images`` scenes made from its test split). Every search gets ``--trials`` trials; the
best trial's mAP@[.5:.95] and mAP@.5 are reported, with the mean wall seconds per trial. The
hand-designed backbone (the space's reference: plain 3x3 convs widening, no skips, 4 head convs
when offered) is trained the same way with seeds ``0 .. --seeds-1``.
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


def search(strategy: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    space = make_space()
    evaluator = nasforge.create_evaluator("detection", epochs=args.epochs, train_images=args.train_images,
                                          val_images=args.val_images)
    exp = nasforge.Experiment(space, nasforge.create_strategy(strategy, space, seed=seed), evaluator,
                              objectives=["map"], budget=nasforge.Budget(max_trials=args.trials),
                              storage=None, seed=seed, device="cpu")
    exp.run()
    ok = [t for t in exp.trials if t.status.value == "ok"]
    best = max(ok, key=lambda t: t.metrics["map"])
    return {"strategy": strategy, "seed": seed, "trials": len(exp.trials), "best_map": best.metrics["map"],
            "best_map_50": best.metrics["map_50"],
            "seconds_per_trial": statistics.mean(float(t.duration or 0.0) for t in ok),
            "best_arch": space.to_string(best.arch)}


def reference(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from nasforge.evaluators.base import EvalContext

    space = make_space()
    evaluator = nasforge.create_evaluator("detection", epochs=args.epochs, train_images=args.train_images,
                                          val_images=args.val_images).bind(space)
    start = time.time()
    result = evaluator.evaluate(space.reference_architecture(), EvalContext(seed=seed))
    return {"strategy": "hand-designed", "seed": seed, "trials": 1, "best_map": result.metrics["map"],
            "best_map_50": result.metrics["map_50"], "seconds_per_trial": time.time() - start}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=128)
    p.add_argument("--val-images", type=int, default=48)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    for seed in range(args.seeds):
        for method in ("hand-designed", "random", "rea"):
            r = reference(seed, args) if method == "hand-designed" else search(method, seed, args)
            rows.append(r)
            print(f"{r['strategy']:>13} seed {r['seed']}: mAP {r['best_map']:.3f}  mAP@.5 {r['best_map_50']:.3f}  "
                  f"{r['seconds_per_trial']:.1f} s/trial over {r['trials']} trial(s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
