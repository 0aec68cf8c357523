"""Run trials on a Ray cluster: one long-lived actor per worker, each holding the evaluator.

Actors (rather than tasks) make the evaluator travel once per worker: it is put in Ray's object
store once and each actor deserializes it in its constructor. Each actor runs one trial at a time
and reserves ``num_cpus``/``num_gpus`` for its lifetime, so Ray places workers where the resources
are. An actor that dies (its process was killed, segfaulted or ran out of memory, or its node went
away) costs the trial it was running; the executor starts a replacement. A trial that runs past its
timeout is stopped by killing its actor. See ``docs/ray.md`` for running on a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.experiment import ray_reaper
from nasforge.experiment.executors import (
    Executor,
    ExecutorError,
    JobOutcome,
    TrialJob,
    limit_threads,
    run_job,
    threads_per_worker,
    timeout_result,
)
from nasforge.experiment.ray_auth import (
    explain_join_failure,
    restore_auth_mode,
    use_token_if_available,
)
from nasforge.trial import Result


class _RayWorker:
    """The actor body (wrapped with ``ray.remote`` at start, so importing this needs no Ray)."""

    def __init__(self, evaluator: Evaluator, threads: int) -> None:
        limit_threads(threads)
        self.evaluator = evaluator

    def where(self) -> dict[str, Any]:
        """Where this worker runs: its node (address and Ray node id) and process id."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {"node": f"{ray.util.get_node_ip_address()}/{node[:8]}", "node_id": node,
                "pid": os.getpid()}

    def run(self, job: TrialJob) -> JobOutcome:
        return run_job(self.evaluator, job)


@dataclass(eq=False)
class _Slot:
    actor: Any
    ready_ref: Any  # resolves once the actor has loaded the evaluator
    ready_at: float | None = None
    pid: int | None = None
    node: str | None = None  # "IP/node-id prefix" once the worker said where it runs
    node_id: str | None = None
    job: TrialJob | None = None
    ref: Any = None
    sent_at: float = 0.0


#: Ray's switch for multi-node networking; "0" keeps every Ray socket on 127.0.0.1.
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _force_loopback() -> Callable[[], None]:
    """Make the Ray started next bind (and be reached at) 127.0.0.1 only; return the undo.

    Ray's daemons read the variable when they start; the driver's copy of the flag is read when
    ``ray`` is imported, so it is also set directly in case Ray was imported before. The undo
    (at shutdown) matters for a process that later joins a real multi-node cluster.
    """
    from ray._private import ray_constants

    old_env, old_flag = os.environ.get(_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False

    def undo() -> None:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(_CLUSTER_ENV, None)
        else:
            os.environ[_CLUSTER_ENV] = old_env

    return undo


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor 'ray' needs Ray; install it with `pip install 'nasforge[ray]'`"
        ) from None
    return ray


class RayExecutor(Executor):
    """Runs trials on Ray actors, ``workers`` at a time.

    ``address``: None starts a local Ray for this run (bound to 127.0.0.1) unless Ray is already
    initialized or ``RAY_ADDRESS`` is set; ``"auto"`` joins the cluster running on this machine;
    ``"ray://HOST:PORT"`` connects through Ray Client. ``num_cpus``/``num_gpus`` are reserved per
    worker (per trial in flight; fractional GPUs share a GPU). ``resources`` adds custom Ray
    resources per trial (e.g. ``{"big_memory": 1}`` to run only on nodes started with
    ``--resources='{"big_memory": 4}'``). ``workers=None`` fills the cluster's CPUs (or GPUs).
    ``runtime_env`` and ``init_options`` go to ``ray.init`` when this executor calls it.
    """

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        runtime_env: dict[str, Any] | None = None,
        init_options: dict[str, Any] | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                    or workers < 1):
            raise ConfigError(f"workers must be an integer >= 1 or None, got {workers!r}")
        if address is not None and address != "auto" and not address.startswith("ray://") \
                and ":" not in address:
            raise ConfigError(
                f"Ray address {address!r} is not allowed; use None (local Ray), 'auto', "
                "'ray://HOST:PORT' or 'HOST:PORT'"
            )
        if not num_cpus >= 0 or not num_gpus >= 0 or num_cpus + num_gpus <= 0:
            raise ConfigError(
                f"num_cpus={num_cpus!r} and num_gpus={num_gpus!r} must be >= 0, not both 0"
            )
        self.workers = workers
        self.capacity = workers or 1
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.runtime_env = runtime_env
        self.init_options = dict(init_options or {})
        bad = {k: v for k, v in (resources or {}).items()
               if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float))
               or not v > 0 or k in ("CPU", "GPU")}
        if bad:
            raise ConfigError(
                f"custom Ray resources {bad!r} are not allowed: give names (not 'CPU'/'GPU', "
                "which are num_cpus/num_gpus) with amounts > 0"
            )
        self.resources = {k: float(v) for k, v in (resources or {}).items()}
        self._ray: Any = None
        self._owns_ray = False
        self._slots: list[_Slot] = []
        self._queue: list[TrialJob] = []
        self._evaluator_ref: Any = None
        self._actor_cls: Any = None
        self._failed_starts = 0
        self._undo_loopback: Callable[[], None] | None = None
        self._undo_auth: Callable[[], None] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self.actors_started = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, evaluator: Evaluator) -> None:
        super().start(evaluator)
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            self._connect(ray)
        if self.workers is None:
            res = ray.cluster_resources()
            by_cpu = int(res.get("CPU", 0) // self.num_cpus) if self.num_cpus else 10**9
            by_gpu = int(res.get("GPU", 0) // self.num_gpus) if self.num_gpus else 10**9
            self.capacity = max(1, min(by_cpu, by_gpu))
        self._evaluator_ref = ray.put(evaluator)  # serialized once for all workers
        # SPREAD: workers go to different nodes while there is room, so trials share no node's
        # cores or memory bandwidth when they need not, and a lost node costs fewer trials.
        self._actor_cls = ray.remote(_RayWorker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0,
            max_concurrency=1, scheduling_strategy="SPREAD", resources=self.resources,
        )
        self._queue = []
        self._slots = [self._new_slot() for _ in range(self.capacity)]

    def _connect(self, ray: Any) -> None:
        """``ray.init``: a private Ray on loopback, or a join of the cluster at the address."""
        client = self.address is not None and self.address.startswith("ray://")
        # Ray Client forwards init options to the server; keep its defaults there.
        opts: dict[str, Any] = {} if client else {"include_dashboard": False,
                                                  "logging_level": "warning"}
        private = self.address is None and not os.environ.get("RAY_ADDRESS")
        if private:
            cores = os.cpu_count() or 1
            need = int(-(-(self.workers or cores) * self.num_cpus // 1))
            opts["num_cpus"] = max(cores, need)
            opts["_node_ip_address"] = "127.0.0.1"
        opts.update(self.init_options)
        # A private Ray for this run is reachable from this machine only; a join uses the
        # cluster's token when there is one (Ray itself does that for "auto" only).
        self._undo_loopback = _force_loopback() if private else None
        # (ray.init of a private Ray switches this process to token mode: undone at shutdown.)
        self._undo_auth = restore_auth_mode() if private else use_token_if_available()
        # "local" and not None: with None, ray.init joins a cluster that `ray start` left running
        # on this machine (its address file in /tmp/ray) and then refuses num_cpus.
        address = "local" if private else self.address
        try:
            ray.init(address=address, runtime_env=self.runtime_env, **opts)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            self._restore_env()
            where = self.address or os.environ.get("RAY_ADDRESS")
            raise ExecutorError(explain_join_failure(where, exc)) from exc
        self._owns_ray = True
        if private:
            self._reaper = _start_reaper(ray)

    def _new_slot(self) -> _Slot:
        threads = max(1, int(self.num_cpus)) if self.num_cpus >= 1 else threads_per_worker(1)
        actor = self._actor_cls.remote(self._evaluator_ref, threads)
        self.actors_started += 1
        return _Slot(actor=actor, ready_ref=actor.where.remote())

    def shutdown(self) -> None:
        if self._ray is None:
            return
        for s in self._slots:
            # Already dead, or the cluster is gone: nothing left to stop.
            with contextlib.suppress(Exception):
                self._ray.kill(s.actor, no_restart=True)
        self._slots = []
        self._queue = []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False
            self._restore_env()
        if self._reaper is not None:
            # End of file on its pipe: it kills whatever of the private Ray is still alive.
            with contextlib.suppress(OSError):
                assert self._reaper.stdin is not None
                self._reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(15)
            self._reaper = None

    def _restore_env(self) -> None:
        for undo in (self._undo_loopback, self._undo_auth):
            if undo is not None:
                undo()
        self._undo_loopback = self._undo_auth = None

    # ------------------------------------------------------------------ jobs
    @property
    def in_flight(self) -> int:
        return len(self._queue) + sum(1 for s in self._slots if s.job is not None)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers known to be up (tests use them to kill one)."""
        return [s.pid for s in self._slots if s.pid is not None]

    def submit(self, job: TrialJob) -> None:
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        for s in self._slots:
            if not self._queue:
                return
            if s.job is None:
                job = self._queue.pop(0)
                s.job, s.sent_at, s.ref = job, time.time(), s.actor.run.remote(job)

    def _replace(self, s: _Slot) -> None:
        with contextlib.suppress(Exception):  # already dead
            self._ray.kill(s.actor, no_restart=True)
        self._slots[self._slots.index(s)] = self._new_slot()

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        ray = self._ray
        exc_mod = ray.exceptions
        died_errors = (exc_mod.RayActorError, exc_mod.WorkerCrashedError, exc_mod.ObjectLostError)
        outcomes: list[JobOutcome] = []
        end = None if timeout is None else time.time() + timeout
        while not outcomes and self.in_flight:
            now = time.time()
            limit = None if end is None else max(0.0, end - now)
            for s in self._slots:  # the timeout clock starts once the worker is up
                if s.job is not None and s.job.timeout is not None and s.ready_at is not None:
                    left = max(s.sent_at, s.ready_at) + s.job.timeout - now
                    limit = max(0.0, left) if limit is None else max(0.0, min(limit, left))
            refs = {s.ref: s for s in self._slots if s.ref is not None}
            pings = {s.ready_ref: s for s in self._slots if s.ready_at is None}
            ready, _ = ray.wait(list(refs) + list(pings), num_returns=1, timeout=limit)
            if ready:  # collect everything else that is done too
                ready, _ = ray.wait(list(refs) + list(pings), num_returns=len(refs) + len(pings),
                                    timeout=0)
            # Pings first: a fresh worker's first result may arrive with its ping, and the ping
            # says where the worker runs. A dead actor fails both in one round: handled once.
            for ref in sorted(ready, key=lambda r: r not in pings):
                s = pings[ref] if ref in pings else refs[ref]
                if s not in self._slots:
                    continue
                if ref in pings:
                    self._on_ping(s, ref, outcomes, died_errors)
                    continue
                if s.job is None or s.ref != ref:
                    continue
                job = s.job
                try:
                    outcome: JobOutcome = ray.get(ref)
                except died_errors as exc:
                    self._on_death(s, outcomes, self._death_text(s, exc))
                    continue
                except exc_mod.RayTaskError as exc:
                    outcome = JobOutcome(job.number, Result.failed(str(exc)), s.sent_at,
                                         time.time())
                s.job, s.ref = None, None
                outcomes.append(dataclasses.replace(outcome, where=self._where(s)))
            now = time.time()
            for s in list(self._slots):
                late = s.job
                if (late is not None and late.timeout is not None and s.ready_at is not None
                        and now - max(s.sent_at, s.ready_at) >= late.timeout):
                    outcomes.append(JobOutcome(late.number, timeout_result(late.timeout),
                                               s.sent_at, now, where=self._where(s)))
                    self._replace(s)
            self._dispatch()
            if end is not None and time.time() >= end:
                break
        return outcomes

    def _on_ping(self, s: _Slot, ref: Any, outcomes: list[JobOutcome],
                 died_errors: tuple[type[BaseException], ...]) -> None:
        """The worker said where it runs (it is up), or it died before or while saying so."""
        ray = self._ray
        try:
            where = ray.get(ref)
        except (*died_errors, ray.exceptions.RayTaskError) as exc:
            if s.job is not None:
                # The ping and the job fail together when the worker dies mid-trial (the ping
                # may come first): that is a death during the trial.
                self._on_death(s, outcomes, self._death_text(s, exc))
                return
            # A worker that cannot start (evaluator not loadable there, no resources left)
            # must not be respawned forever: give up with the reason.
            self._failed_starts += 1
            if self._failed_starts > 2 * self.capacity + 2:
                raise ExecutorError(
                    f"Ray workers keep failing to start; the last error: {exc}"
                ) from exc
            self._on_death(s, outcomes, f"Ray worker failed to start: {exc}")
            return
        s.pid, s.node, s.node_id = int(where["pid"]), str(where["node"]), str(where["node_id"])
        s.ready_at = time.time()
        self._failed_starts = 0

    def _where(self, s: _Slot) -> dict[str, Any]:
        return {"node": s.node, "worker": s.pid} if s.pid is not None else {}

    def _node_lost(self, s: _Slot) -> bool:
        """Whether the worker's node is gone: Ray says so, or its raylet refuses connections.

        Ray marks a node dead only after its health checks fail (tens of seconds), while the
        actor's error arrives at once ("temporarily unavailable"); a raylet that no longer
        accepts connections tells the node's loss from the death of one worker process.
        """
        if s.node_id is None:
            return False
        try:
            nodes = self._ray.nodes()
        except Exception:  # the cluster itself is unreachable: not this node's story
            return False
        node = next((n for n in nodes if n.get("NodeID") == s.node_id), None)
        if node is None or not node.get("Alive", True):
            return True
        host, port = node.get("NodeManagerAddress"), node.get("NodeManagerPort")
        if not host or not port:
            return False
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                return False
        except OSError:
            return True

    def _death_text(self, s: _Slot, exc: BaseException) -> str:
        who = f"Ray worker {s.pid} on node {s.node}" if s.pid else "a Ray worker"
        what = f"trial {s.job.number}" if s.job is not None else "no trial"
        return f"{who} died while running {what}: {death_reason(exc, self._node_lost(s))}"

    def _on_death(self, s: _Slot, outcomes: list[JobOutcome], why: str) -> None:
        if s.job is not None:
            outcomes.append(JobOutcome(s.job.number, Result.failed(why), s.sent_at, time.time(),
                                       worker_died=True, where=self._where(s)))
        self._replace(s)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "capacity": self.capacity, "address": self.address,
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": self.resources}


def death_reason(exc: BaseException, node_lost: bool) -> str:
    """What killed a Ray worker, from Ray's error and whether its node is gone.

    Ray does not pass on a killed worker's signal; its message separates a clean exit (with its
    code), the memory monitor's kill and an end of connection (a signal: ``kill -9``, the kernel's
    out-of-memory killer, or a crash such as a segfault).
    """
    text = str(exc)
    low = text.lower()
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if node_lost or "node has died" in low or "its node is dead" in low:
        return ("its node was lost (the machine went down or left the network, or its raylet "
                "was stopped)")
    oom = getattr(_ray_exceptions(), "OutOfMemoryError", None)
    if (oom is not None and isinstance(exc, oom)) or "memory monitor" in low \
            or "running low on memory" in low:
        return "out of memory (Ray's memory monitor killed it)"
    code = re.search(r"exits? with an exit code (-?\d+)", text)
    if code:
        return f"exit code {code.group(1)}"
    # Its node is up (checked first), so a closed connection means its process ended.
    if ("connection error code" in low or "unexpectedly" in low or "is unavailable" in low
            or "temporarily unavailable" in low):
        return ("killed by a signal (kill -9, the kernel's out-of-memory killer, or a crash such "
                "as a segmentation fault)")
    return f"{type(exc).__name__}: {first}"


def _ray_exceptions() -> Any:
    try:
        import ray.exceptions
    except ImportError:
        return None
    return ray.exceptions


def _start_reaper(ray: Any) -> subprocess.Popen[bytes] | None:
    """Start the watchdog of the private Ray just started (see :mod:`ray_reaper`)."""
    try:
        node = ray._private.worker._global_node
        roots = [info.process.pid for infos in node.all_processes.values() for info in infos
                 if getattr(info, "process", None) is not None]
    except AttributeError:  # another Ray version: nothing to watch
        return None
    if not roots or not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen([sys.executable, ray_reaper.__file__, *map(str, roots)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
