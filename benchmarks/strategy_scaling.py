"""How a strategy's own time per ask + tell, and its state save/load time, grow with the number of
trials it has seen (NAS-Bench-201 space).

    .venv/bin/python benchmarks/strategy_scaling.py [--trials 100,1000,10000] [--cap 60]
        [--strategies random,tpe,...] [--window 20] [--json out.json]

Each strategy runs one long sequential ask -> evaluate -> tell loop (the NAS-Bench-201 table as
evaluator when it is found, else a deterministic hash of the architecture) and we time only its
``ask()`` and ``tell()`` calls. "ms at N" is the mean over the ``window`` trials that end at trial
N, i.e. what one more trial costs once N are known; "load at N" is ``json.loads`` +
``load_state_dict`` of the state written at trial N (what a resume pays), with the state's size.

A strategy stops once its own time passes ``--cap`` seconds (default 60): a strategy whose asks
cost O(N) needs O(N^2) in all to reach N, so the slow ones are cut and marked "capped at M"
(the last milestone reached is still reported, with the per-trial time at the cap for reference).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import nasforge
from nasforge.evaluators.base import EvalContext
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial, TrialStatus

try:  # the sibling script's data lookup (run as a file, benchmarks/ is on sys.path)
    from strategies_nb201 import default_data
except ImportError:  # pragma: no cover - imported from elsewhere
    def default_data() -> str | None:
        return None


def make_metric(data: str | None) -> tuple[str, Any]:
    """(description, arch -> metrics): the NB201 table when available, else a stable hash."""
    space = nasforge.create_space("nb201")
    if data and (Path(data) / "nb201.csv").is_file():
        from nasforge.benchmarks import NB201Table

        ev = nasforge.create_evaluator("nb201", table=NB201Table.load(data)).bind(space)
        return "NAS-Bench-201 table", lambda a: ev.evaluate(a, EvalContext()).metrics

    def fake(arch: Architecture) -> dict[str, float]:
        return {"accuracy": float(zlib.crc32(arch.to_json().encode()) % 10_000) / 100}

    return "hash of the architecture (no NB201 table found)", fake


def scale_run(name: str, metric: Any, milestones: list[int], window: int, cap: float,
              seed: int = 0) -> dict[str, Any]:
    """Run ``name`` until the last milestone or the time cap; time asks, tells and resumes."""
    space = nasforge.create_space("nb201")
    strat = nasforge.create_strategy(name, space, seed=seed)
    times: list[float] = []
    out: dict[str, Any] = {"strategy": name, "ms": {}, "load_s": {}, "state_mb": {},
                           "capped_at": None}
    own = 0.0
    for n in range(1, milestones[-1] + 1):
        t0 = time.perf_counter()
        arch = strat.ask()
        t1 = time.perf_counter()
        trial = Trial(number=n - 1, arch=arch, status=TrialStatus.OK, metrics=metric(arch))
        t2 = time.perf_counter()
        strat.tell(trial)
        t3 = time.perf_counter()
        times.append((t1 - t0) + (t3 - t2))
        own += times[-1]
        if n in milestones:
            out["ms"][n] = 1e3 * float(np.mean(times[-window:]))
            text = json.dumps(strat.state_dict())
            fresh = nasforge.create_strategy(name, space, seed=seed + 1)
            t0 = time.perf_counter()
            fresh.load_state_dict(json.loads(text))
            out["load_s"][n] = time.perf_counter() - t0
            out["state_mb"][n] = len(text) / 1e6
        if own > cap and n < milestones[-1]:
            out["capped_at"] = n
            out["ms_at_cap"] = 1e3 * float(np.mean(times[-window:]))
            break
    out["own_s"] = own
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data(), help="nb201 directory")
    parser.add_argument("--trials", default="100,1000,10000",
                        help="comma-separated milestones (default 100,1000,10000)")
    parser.add_argument("--window", type=int, default=20,
                        help="trials averaged at each milestone (default 20)")
    parser.add_argument("--cap", type=float, default=60.0,
                        help="seconds of a strategy's own time before it is cut (default 60)")
    parser.add_argument("--strategies", default=None,
                        help="comma-separated names (default: every registered strategy)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    milestones = sorted(int(t) for t in args.trials.split(","))
    names = args.strategies.split(",") if args.strategies else nasforge.list_strategies()
    source, metric = make_metric(args.data)
    print(f"Own time per ask + tell (ms, mean of the {args.window} trials ending at N) and state "
          f"load time (s) / size (MB) at N trials; NAS-Bench-201 space, metric: {source}; "
          f"cap {args.cap:.0f} s of own time per strategy.")
    head = f"{'strategy':13s}" + "".join(f" {'ms@' + str(m):>9s} {'load@' + str(m):>14s}"
                                         for m in milestones) + "  note"
    print(head)
    print("-" * len(head))
    results = []
    for name in names:
        r = scale_run(name, metric, milestones, args.window, args.cap)
        results.append(r)
        cells = ""
        for m in milestones:
            if m in r["ms"]:
                cells += f" {r['ms'][m]:9.2f} {r['load_s'][m]:7.3f}/{r['state_mb'][m]:5.1f}MB"
            else:
                cells += f" {'-':>9s} {'-':>14s}"
        note = (f"capped at {r['capped_at']} trials ({r['ms_at_cap']:.1f} ms/trial there)"
                if r["capped_at"] else "")
        print(f"{name:13s}{cells}  {note}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"milestones": milestones, "cap_s": args.cap, "results": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
