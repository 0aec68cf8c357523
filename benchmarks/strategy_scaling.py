"""How a strategy's own time per ask + tell, and its state save/load time, grow with the number of
trials it has seen (NAS-Bench-201 space).

    .venv/bin/python benchmarks/strategy_scaling.py [--trials 100,1000,10000] [--cap 60]
        [--strategies random,tpe,...] [--window 20] [--json out.json]

Each strategy runs one long sequential ask -> evaluate -> tell loop (the NAS-Bench-201 table as
evaluator when it is found, else a deterministic hash of the architecture) and we time only its
``ask()`` and ``tell()`` calls, in wall and CPU time. The strategies' loops are interleaved trial
by trial (trial n of each, in rotating order, before trial n + 1 of any), so a change in the
machine's load hits all of them alike. "ms at N" is the median over the ``window`` trials that end
at trial N (spread in the JSON), i.e. what one more trial costs once N are known; "load at N" is
the median of ``--load-repeats`` timed ``json.loads`` + ``load_state_dict`` of the state written at
trial N (what a resume pays), with the state's size.

A strategy stops once its own time passes ``--cap`` seconds (default 60): a strategy whose asks
cost O(N) needs O(N^2) in all to reach N, so the slow ones are cut and marked "capped at M"
(the last milestone reached is still reported, with the per-trial time at the cap for reference).
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path
from typing import Any

from _measure import Clock, Stopwatch, clock_spreads, load_window, timed

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


class Runner:
    """One strategy's long sequential run, advanced one trial at a time (so that several runs can
    be interleaved), timing only its ``ask()`` and ``tell()``, in wall and CPU time."""

    def __init__(self, name: str, metric: Any, seed: int = 0) -> None:
        self.name, self.metric, self.seed = name, metric, seed
        self.space = nasforge.create_space("nb201")
        self.strat = nasforge.create_strategy(name, self.space, seed=seed)
        self.clocks: list[Clock] = []
        self.own = 0.0  # wall seconds of asks and tells so far (the cap's measure)
        self.out: dict[str, Any] = {"strategy": name, "ms": {}, "load_s": {}, "state_mb": {}, "capped_at": None}

    def step(self) -> None:
        n = len(self.clocks) + 1
        with Stopwatch() as asking:
            arch = self.strat.ask()
        trial = Trial(number=n - 1, arch=arch, status=TrialStatus.OK, metrics=self.metric(arch))
        with Stopwatch() as telling:
            self.strat.tell(trial)
        clock = Clock(asking.clock.wall + telling.clock.wall, asking.clock.cpu + telling.clock.cpu)
        self.clocks.append(clock)
        self.own += clock.wall

    def milestone(self, window: int, load_repeats: int) -> None:
        """Record the per-trial time over the last ``window`` trials and the state's load time."""
        n = len(self.clocks)
        self.out["ms"][n] = {k: v.to_dict() for k, v in clock_spreads(self.clocks[-window:], 1e3).items()}
        text = json.dumps(self.strat.state_dict())

        def load() -> Clock:
            fresh = nasforge.create_strategy(self.name, self.space, seed=self.seed + 1)
            return timed(lambda: fresh.load_state_dict(json.loads(text)))[1]

        self.out["load_s"][n] = {
            k: v.to_dict() for k, v in clock_spreads([load() for _ in range(load_repeats)]).items()
        }
        self.out["state_mb"][n] = len(text) / 1e6


def scale_runs(
    names: list[str], metric: Any, milestones: list[int], window: int, cap: float, load_repeats: int
) -> list[dict[str, Any]]:
    """Run every strategy to the last milestone or its time cap, interleaved: trial ``n`` of
    every live strategy runs before trial ``n + 1`` of any, in rotating order, so a change in the
    machine's load hits every strategy alike."""
    runners = [Runner(name, metric) for name in names]
    live = list(range(len(runners)))
    for n in range(1, milestones[-1] + 1):
        for i in [live[(j + n) % len(live)] for j in range(len(live))] if live else []:
            runners[i].step()
        for i in list(live):
            r = runners[i]
            if n in milestones:
                r.milestone(window, load_repeats)
            if r.own > cap and n < milestones[-1]:
                r.out["capped_at"] = n
                r.out["ms_at_cap"] = {k: v.to_dict() for k, v in clock_spreads(r.clocks[-window:], 1e3).items()}
                live.remove(i)
        if not live:
            break
    for r in runners:
        r.out["own_s"] = r.own
    return [r.out for r in runners]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data(), help="nb201 directory")
    parser.add_argument(
        "--trials", default="100,1000,10000", help="comma-separated milestones (default 100,1000,10000)"
    )
    parser.add_argument("--window", type=int, default=20, help="trials averaged at each milestone (default 20)")
    parser.add_argument(
        "--cap", type=float, default=60.0, help="seconds of a strategy's own time before it is cut (default 60)"
    )
    parser.add_argument("--load-repeats", type=int, default=3, help="timed state loads at each milestone (default 3)")
    parser.add_argument("--strategies", default=None, help="comma-separated names (default: every registered strategy)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    milestones = sorted(int(t) for t in args.trials.split(","))
    names = args.strategies.split(",") if args.strategies else nasforge.list_strategies()
    source, metric = make_metric(args.data)
    print(
        f"Own time per ask + tell (ms wall/CPU, median of the {args.window} trials ending at N) "
        f"and state load time (s, median of {args.load_repeats}) / size (MB) at N trials; "
        f"NAS-Bench-201 space, metric: {source}; strategies interleaved trial by trial; cap "
        f"{args.cap:.0f} s of own time per strategy."
    )
    head = (
        f"{'strategy':13s}" + "".join(f" {'ms@' + str(m):>13s} {'load@' + str(m):>14s}" for m in milestones) + "  note"
    )
    print(head)
    print("-" * len(head))
    with load_window() as load:
        results = scale_runs(names, metric, milestones, args.window, args.cap, args.load_repeats)
    for r in results:
        cells = ""
        for m in milestones:
            if m in r["ms"]:
                ms = r["ms"][m]
                cells += (
                    f" {ms['wall']['median']:6.2f}/{ms['cpu']['median']:<6.2f}"
                    f" {r['load_s'][m]['wall']['median']:7.3f}/{r['state_mb'][m]:5.1f}MB"
                )
            else:
                cells += f" {'-':>13s} {'-':>14s}"
        note = (
            f"capped at {r['capped_at']} trials ({r['ms_at_cap']['wall']['median']:.1f} ms/trial there)"
            if r["capped_at"]
            else ""
        )
        print(f"{r['strategy']:13s}{cells}  {note}", flush=True)
    print(f"load average {load['before']} -> {load['after']}; the spreads (IQR, min-max) are in the JSON")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"milestones": milestones, "cap_s": args.cap, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
