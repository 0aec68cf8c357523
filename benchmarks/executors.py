"""Executors compared: trials per minute and overhead per trial for inline, the process pool, and
Ray on one node and on two nodes.

Every case is a search of ``--trials`` trials whose evaluation sleeps ``--trial-seconds``: a fixed
cost that does not compete for the machine's cores, so what differs between the cases is the
executor's own work (queueing, pickling the job, the round trip to a worker and back, storage).
Each case runs in a fresh subprocess; its steady state is timed from the first finished trial to
the last, so start-up (spawning workers, joining Ray) is reported apart:

* trials per minute = 60 * (n - 1) / span;
* overhead per trial = span * workers / (n - 1) - trial seconds (what a worker spends per trial
  besides the evaluation);
* driver CPU per trial over the same span.

The cases run interleaved (``_measure.interleaved``: each repeat runs every case once, in rotating
order); the figures are medians over repeats with IQR, min-max and n.

Ray needs a two-node cluster that talks over loopback only. The benchmark makes one inside a
private network and pid namespace (``unshare -n -p -f --mount-proc``, as root): it re-runs itself
there, starts a head node (2 CPUs and a custom resource ``head``) and a worker node (1 CPU) with
token authentication, runs all cases, and stops Ray (the pid namespace ends every process of it
anyway). "ray 1 node" pins both workers to the head with ``resources={"head": 1}``; "ray 2 nodes"
lets ``SPREAD`` place one worker on each node. Without namespaces (not root) the Ray cases are
skipped with the reason.

    nice -n 10 .venv/bin/python benchmarks/executors.py --quick      # ~5 minutes on 2 busy cores
    nice -n 10 .venv/bin/python benchmarks/executors.py --no-ray --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _measure

HERE = Path(__file__).resolve()
PORT = 6379
CASES = ("inline", "process x2", "ray 1 node x2", "ray 2 nodes x2")


class Sleep:
    """An evaluation that costs ``seconds`` of wall time and no CPU."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, arch: Any, ctx: Any) -> dict[str, float]:
        time.sleep(self.seconds)
        return {"accuracy": float(len(arch.to_json()) % 97)}


def make_executor(case: str, address: str | None) -> Any:
    from nasforge.experiment import InlineExecutor, ProcessExecutor, RayExecutor

    if case == "inline":
        return InlineExecutor()
    if case == "process x2":
        return ProcessExecutor(workers=2)
    if case == "ray 1 node x2":
        return RayExecutor(address=address, workers=2, resources={"head": 1})
    if case == "ray 2 nodes x2":
        return RayExecutor(address=address, workers=2)
    raise SystemExit(f"unknown case {case!r}; allowed: {', '.join(CASES)}")


def run_case(case: str, address: str | None, trials: int, seconds: float) -> dict[str, Any]:
    """One search in this process; the steady-state timing of its finished trials."""
    import nasforge
    from nasforge.evaluators.function import FunctionEvaluator
    from nasforge.experiment import Budget, Event, EventKind, Experiment, MemoryStorage

    finishes: list[tuple[float, float]] = []

    def on_event(event: Event) -> None:
        if event.kind in (EventKind.TRIAL_FINISHED, EventKind.TRIAL_FAILED):
            finishes.append((time.perf_counter(), time.process_time()))

    space = nasforge.create_space("nb201")
    executor = make_executor(case, address)
    t0 = time.perf_counter()
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=0),
                     FunctionEvaluator(Sleep(seconds)), budget=Budget(max_trials=trials),
                     storage=MemoryStorage(), executor=executor, seed=0, device="cpu",
                     callbacks=[on_event]).run()
    failed = [t for t in exp.trials if not t.ok]
    if failed:
        raise SystemExit(f"{case}: {len(failed)} trial(s) failed, e.g. {failed[0].error}")
    (w0, c0), (w1, c1) = finishes[0], finishes[-1]
    n = len(finishes) - 1
    nodes = sorted({str(t.info.get("node")) for t in exp.trials if t.info.get("node")})
    return {"case": case, "workers": executor.capacity, "trials": len(finishes),
            "startup_s": w0 - t0, "span_s": w1 - w0, "per_min": 60.0 * n / (w1 - w0),
            "overhead_ms": 1e3 * ((w1 - w0) * executor.capacity / n - seconds),
            "driver_cpu_ms": 1e3 * (c1 - c0) / n, "nodes": nodes}


def case_in_subprocess(case: str, address: str | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE), "--case", case, "--trials", str(args.trials),
           "--trial-seconds", str(args.trial_seconds)]
    if address:
        cmd += ["--address", address]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"case {case!r} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------ the cluster
def start_cluster(home: Path) -> None:
    """Head (2 CPUs, resource ``head``) + worker node (1 CPU) on 127.0.0.1, token auth on."""
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1", HOME=str(home))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        os.environ.pop(var, None)
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", f"--port={PORT}", "--num-cpus=2",
                    '--resources={"head": 100}', "--include-dashboard=false", *common],
                   check=True, capture_output=True, timeout=400)
    subprocess.run([ray, "start", f"--address=127.0.0.1:{PORT}", "--num-cpus=1", *common],
                   check=True, capture_output=True, timeout=400,
                   env=dict(os.environ, RAY_AUTH_MODE="token"))


def stop_cluster() -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def measure(args: argparse.Namespace, address: str | None, skipped: dict[str, str]) -> None:
    names = [c for c in CASES if c not in skipped]
    results = _measure.interleaved(
        {c: (lambda c=c: case_in_subprocess(c, address if c.startswith("ray") else None, args))
         for c in names},
        repeats=args.repeats, warmup=0,
        on_repeat=lambda i, r: print(f"  repeat {i + 1}: " + ", ".join(
            f"{c} {v['per_min']:.0f}/min" for c, v in r.items()), flush=True))
    figures: dict[str, Any] = {"trials": args.trials, "trial_seconds": args.trial_seconds,
                               "repeats": args.repeats, "load_after": _measure.load_average(),
                               "skipped": skipped, "cases": {}}
    print(f"\n{args.trials} trials of {args.trial_seconds:g} s each, median over {args.repeats} "
          f"interleaved repeats (load average now {_measure.load_average()})")
    for c in names:
        runs = results[c]
        per_min = _measure.summarize([r["per_min"] for r in runs])
        overhead = _measure.summarize([r["overhead_ms"] for r in runs])
        cpu = _measure.summarize([r["driver_cpu_ms"] for r in runs])
        startup = _measure.summarize([r["startup_s"] for r in runs])
        nodes = sorted({len(r["nodes"]) for r in runs})
        figures["cases"][c] = {"per_min": per_min.to_dict(), "overhead_ms": overhead.to_dict(),
                               "driver_cpu_ms": cpu.to_dict(), "startup_s": startup.to_dict(),
                               "nodes_used": nodes, "runs": runs}
        print(f"  {c:15s} {per_min.text('.0f', 'trials/min')}\n"
              f"  {'':15s} overhead {overhead.text('.1f', 'ms/trial')} (wall)\n"
              f"  {'':15s} driver CPU {cpu.text('.2f', 'ms/trial')}; start-up "
              f"{startup.text('.1f', 's')}" + (f"; nodes used {nodes}" if c.startswith("ray")
                                               else ""))
    for c, why in skipped.items():
        print(f"  {c:15s} skipped: {why}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
        print(f"figures written to {args.out}")


def namespaces_allowed() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"no namespaces here: {probe.stderr.strip()[:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--trial-seconds", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="16 trials of 0.25 s, 3 repeats (the figures in docs/benchmarks.md)")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", metavar="JSON", help="write the figures to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a subprocess
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.trials, args.trial_seconds, args.repeats = 16, 0.25, 3
    if args.case:
        print(json.dumps(run_case(args.case, args.address, args.trials, args.trial_seconds)))
        return
    if args.no_ray:
        measure(args, None, {c: "--no-ray" for c in CASES if c.startswith("ray")})
        return
    if not args.inside:
        why = namespaces_allowed()
        if why is not None:
            measure(args, None, {c: why for c in CASES if c.startswith("ray")})
            return
        out = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable,
                              str(HERE), "--inside", *sys.argv[1:]])
        raise SystemExit(out.returncode)
    with tempfile.TemporaryDirectory(prefix="nasforge-bench-") as home:
        try:
            print("starting a two-node Ray cluster on loopback (private namespace) ...", flush=True)
            start_cluster(Path(home))
            measure(args, f"127.0.0.1:{PORT}", {})
        finally:
            stop_cluster()


if __name__ == "__main__":
    main()
