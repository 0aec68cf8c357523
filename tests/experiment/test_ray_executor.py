"""Experiments on a real local Ray cluster bound to 127.0.0.1 (slow: starting Ray takes ~15 s).

The module starts one head node with ``ray start --head --port=P`` (loopback only:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and ``--node-ip-address=127.0.0.1``), the executor joins it
with ``address="auto"``. At teardown, whatever happens, the processes of that cluster (those
that name its port, and every process below them) are killed by PID: ``ray stop`` would stop
every Ray on the machine, including ones this test did not start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exp_runtime_helpers import Faulty, WorkerProbe

import nasforge
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, InlineExecutor, RayExecutor
from nasforge.experiment.metric_checks import REJECTED
from nasforge.report import timeline
from nasforge.trial import Trial, TrialStatus

# One xdist worker runs the whole module: it shares one Ray cluster (started once) and its
# timing checks assume no second Ray of the suite beside it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray_executor")]

HERE = Path(__file__).resolve().parent


def cluster_processes(port: int) -> set[tuple[int, str]]:
    """The processes of the Ray cluster whose GCS listens on ``port`` (pid, start time)."""
    from nasforge.experiment.ray_reaper import _start_time

    marks = (f"127.0.0.1:{port}".encode(), f"gcs_server_port={port}".encode())
    found: set[tuple[int, str]] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        start = _start_time(int(name))
        if start is not None and any(m in cmd for m in marks):
            found.add((int(name), start))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1 whose workers can import the test helpers."""
    pytest.importorskip("ray")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    port = free_port()
    started: set[tuple[int, str]] = set()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the driver, too, stays on loopback
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before this fixture
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=240)
        started = cluster_processes(port)
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        from nasforge.experiment.ray_reaper import kill_all

        if ray.is_initialized():
            ray.shutdown()
        # By PID, with their descendants (workers rename themselves and name no port).
        kill_all(started | cluster_processes(port))
        assert not cluster_processes(port), "processes of the test's Ray cluster survived"


def make(evaluator: Any, executor: Any, **kwargs: Any) -> Experiment:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("rea", space, seed=2)
    kwargs.setdefault("budget", Budget(max_trials=16))
    return Experiment(space, strategy, evaluator, executor=executor, seed=2, device="cpu",
                      **kwargs)


def rows(trials: list[Trial]) -> list[tuple[Any, ...]]:
    drop = ("pid", "loads", "threads")
    return [(t.number, t.arch.to_json(), t.status.value,
             {k: v for k, v in t.metrics.items() if k not in drop}, t.error) for t in trials]


def test_ray_cluster_gives_the_inline_results(ray_cluster: str) -> None:
    """Two Ray workers, ordered mode, budget and constraints: the trials equal the inline run."""
    constraints = ["params <= 700000", "latency_ms <= 3.5"]
    executor = RayExecutor(workers=2, address="auto")
    on_ray = make(WorkerProbe(), executor, ordered=True, constraints=constraints).run()
    inline = make(WorkerProbe(), InlineExecutor(capacity=2), ordered=True,
                  constraints=constraints).run()
    assert rows(on_ray.trials) == rows(inline.trials)
    evaluated = [t for t in on_ray.trials if not t.info.get(REJECTED)]
    assert len(evaluated) == 16 and all(t.ok or t.status is TrialStatus.INFEASIBLE
                                        for t in evaluated)
    ran = [t for t in evaluated if "pid" in t.metrics]
    assert len({t.metrics["pid"] for t in ran}) == 2 and os.getpid() not in {
        t.metrics["pid"] for t in ran}
    assert all(t.metrics["loads"] == 1 for t in ran)  # the evaluator reached each actor once
    assert all(t.metrics["threads"] == 1 for t in ran)  # num_cpus=1 per worker
    import ray

    assert not ray.is_initialized()  # the executor disconnected; the cluster stays up


def test_ray_worker_killed_mid_trial(ray_cluster: str, tmp_path: Path) -> None:
    """A Ray worker killed mid-trial is replaced: retried once it succeeds, dying every time it
    fails after the retries; a trial past its timeout is stopped; the experiment finishes."""
    fn = Faulty(kill_once_on=(2,), kill_always_on=(5,), hang_on=(7,), marker_dir=str(tmp_path))
    executor = RayExecutor(workers=2, address="auto")
    t0 = time.time()
    exp = make(FunctionEvaluator(fn), executor, retries=1, trial_timeout=3.0,
               budget=Budget(max_trials=9)).run()
    assert time.time() - t0 < 180
    by_number = {t.number: t for t in exp.trials}
    assert len(by_number) == 9
    assert by_number[2].ok and by_number[2].info.get("attempts") == 2
    assert (tmp_path / "killed-2").exists()
    t5 = by_number[5]
    assert t5.status is TrialStatus.FAILED and t5.info.get("attempts") == 2
    assert "died while running trial 5: killed by a signal" in (t5.error or "")
    assert all(t.info.get("node") and t.info.get("worker") for t in exp.trials if t.ok)
    assert by_number[7].status is TrialStatus.FAILED
    assert by_number[7].error == "timeout after 3 s"
    assert all(by_number[n].ok for n in (0, 1, 3, 4, 6, 8))
    assert executor.actors_started >= 2 + 3  # two at start, three replacements


def _ray_sockets(listening: bool) -> list[tuple[str, str, str]]:
    """(local, peer, process) of the TCP sockets that Ray's processes or this driver hold."""
    args = ["ss", "-Htnp"] + (["-l"] if listening else [])
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot list sockets with {' '.join(args)}: {exc}")
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        users = " ".join(fields[5:])
        if any(k in users for k in ("raylet", "gcs_server", "ray::", f"pid={os.getpid()},")):
            rows.append((fields[3], fields[4], users))
    return rows


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host.startswith("127.") or host == "::1"  # "*" and 0.0.0.0 are every interface


def test_ray_talks_only_over_loopback(ray_cluster: str) -> None:
    """The network rule of this project: Ray's servers listen on 127.0.0.1 only, and every
    connection of the cluster and of this driver stays on loopback (checked with ``ss``)."""
    import ray

    ray.init(address="auto", log_to_driver=False)
    try:
        @ray.remote
        def square(x: int) -> int:
            return x * x

        assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
        listening, connected = _ray_sockets(True), _ray_sockets(False)
    finally:
        ray.shutdown()
    assert listening and connected, "no Ray sockets seen: the check would prove nothing"
    bad = [(local, users) for local, _, users in listening if not _loopback(local)]
    assert not bad, f"Ray listens beyond loopback: {bad}"
    bad = [row for row in connected if not (_loopback(row[0]) and _loopback(row[1]))]
    assert not bad, f"connections beyond loopback: {bad}"


@pytest.mark.parametrize("scheduler", ["sh", "hyperband", "asha", "bohb"])
def test_ray_runs_every_scheduler_like_the_inline_executor(ray_cluster: str,
                                                           scheduler: str) -> None:
    """Ordered mode on two Ray workers gives the inline schedule: same rungs, promotions, values,
    with pruning; ASHA keeps both workers busy."""
    from sched_helpers import QS, CurveEvaluator, ListStrategy, QSpace
    from sched_helpers import rows as sched_rows

    from nasforge.experiment.schedulers import create_scheduler

    def run(executor: Any) -> Experiment:
        space = QSpace()
        return Experiment(space, ListStrategy(space, QS), CurveEvaluator(),
                          budget=Budget(max_trials=14), scheduler=create_scheduler(scheduler),
                          pruner="median", executor=executor, ordered=True, seed=0,
                          device="cpu").run()

    inline = run(InlineExecutor(capacity=2))
    on_ray = run(RayExecutor(address=ray_cluster, workers=2, num_cpus=1))
    assert sched_rows(on_ray.trials) == sched_rows(inline.trials)
    assert {t.info["rung"] for t in on_ray.trials} >= {0, 1}
    lanes = timeline.lanes(on_ray.trials)
    assert len(lanes) == 2  # both workers ran trials (node and worker recorded per trial)


def test_private_ray_beside_a_running_cluster_is_its_own(ray_cluster: str) -> None:
    """With no address, the executor starts a Ray of its own even while a `ray start` cluster
    runs on this machine (ray.init(address=None) would join that one, then refuse num_cpus)."""
    import ray

    ray.init(address="auto", log_to_driver=False)
    try:
        cluster_nodes = {n["NodeID"][:8] for n in ray.nodes()}
    finally:
        ray.shutdown()
    env = {"env_vars": {"PYTHONPATH": str(HERE)}}  # the private Ray's workers import the probe
    saved = os.environ.pop("RAY_ADDRESS", None)
    try:
        exp = make(WorkerProbe(), RayExecutor(workers=1, runtime_env=env),
                   budget=Budget(max_trials=2)).run()
    finally:
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved
    ran = [t for t in exp.trials if t.ok]
    assert len(ran) == 2
    nodes = {t.info["node"].split("/")[1] for t in ran}
    assert nodes and not nodes & cluster_nodes, (nodes, cluster_nodes)
    assert not ray.is_initialized()
