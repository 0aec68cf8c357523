"""A watchdog that stops a private Ray completely when its driver ends, even by ``kill -9``.

Why: ``ray.init()`` starts the GCS and a raylet as the driver's children, and Ray's own reaper
stops them when the driver dies, but the processes the raylet starts (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``, idle workers) were seen alive a minute after a ``kill -9`` of the driver.

How: the executor starts this file as a separate process (its own session, so a signal to the
driver's process group does not reach it) with the pids of Ray's root processes, and keeps the
write end of a pipe open. Every ``POLL`` seconds the watchdog records the roots' descendants
(pid and start time, so that a reused pid is never killed). When the pipe reaches end of file (the
driver shut Ray down, or died) it kills every recorded process that is still the same process,
plus any descendant they started since the last poll, and exits.

The file uses the standard library only and reads ``/proc`` (Linux); elsewhere it only waits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

POLL = 1.0
Key = tuple[int, str]  # (pid, start time in clock ticks since boot)


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return children
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(pid)
    return children


def descendants(roots: set[Key]) -> set[Key]:
    """``roots`` (those still alive) and every process below them, as (pid, start time)."""
    children = _children_map()
    found: set[Key] = set()
    stack = [pid for pid, start in roots if _start_time(pid) == start]
    while stack:
        pid = stack.pop()
        start = _start_time(pid)
        if start is None or (pid, start) in found:
            continue
        found.add((pid, start))
        stack.extend(children.get(pid, ()))
    return found


def kill_all(known: set[Key]) -> int:
    """SIGKILL each process of ``known`` (and its descendants) that is still the same process."""
    killed = 0
    for _ in range(3):  # a dying parent may still start a child: sweep until nothing is left
        alive = descendants(known)
        if not alive:
            break
        known |= alive
        for pid, _start in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.2)
    return killed


def watch(roots: list[int], pipe: int = 0) -> None:
    """Record the descendants of ``roots`` until ``pipe`` closes, then kill what is left."""
    known: set[Key] = {(pid, s) for pid in roots if (s := _start_time(pid)) is not None}
    closed = threading.Event()

    def wait_for_eof() -> None:
        try:
            while os.read(pipe, 4096):
                pass
        except OSError:
            pass
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    while not closed.wait(POLL):
        known |= descendants(known)
    kill_all(known)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    watch([int(a) for a in sys.argv[1:]])
