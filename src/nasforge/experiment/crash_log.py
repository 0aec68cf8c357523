"""A crash record for trials that run inside the driver (the inline executor).

Why: a trial that crashes the whole process (a segmentation fault in a C extension, an abort)
takes the driver with it. On resume the loop re-runs the trials that were running, so the same
trial would crash every resume again. While inline trials run, Python's :mod:`faulthandler`
writes the fatal error into a file beside the database, under a one-line header that names the
running trial. On the next start :func:`read_crash` finds the trial, and the loop records it as
failed with the crash text instead of running it again. A driver ended by ``kill -9`` leaves no
fatal error in the file, so its trial re-runs as before (the kill test relies on that).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
from dataclasses import dataclass
from typing import IO

HEADER = "nasforge inline trial"


@dataclass(frozen=True)
class Crash:
    """The trial that was running when the process crashed, and what faulthandler wrote."""

    number: int
    text: str

    @property
    def headline(self) -> str:
        """The first line of the fatal error (e.g. ``Fatal Python error: Segmentation fault``)."""
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")


class CrashLog:
    """Point faulthandler at ``path`` while trials run in this process; name the running one."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._was_enabled = False

    def open(self) -> None:
        """Start recording (truncates an older record: the loop has read it by now)."""
        self._was_enabled = faulthandler.is_enabled()
        self._file = open(self.path, "w+", encoding="utf-8")  # noqa: SIM115 (kept open)
        faulthandler.enable(self._file, all_threads=True)

    def running(self, number: int) -> None:
        """Trial ``number`` starts now (a few microseconds: no fsync, the kernel keeps it)."""
        f = self._file
        if f is None:
            return
        f.seek(0)
        f.write(f"{HEADER} {number}\n")
        f.truncate()
        f.flush()  # faulthandler writes through the descriptor, after this header

    def close(self) -> None:
        """Stop recording and remove the file (nothing crashed)."""
        if self._file is None:
            return
        faulthandler.disable()
        if self._was_enabled:  # e.g. python -X faulthandler: give it back a stderr
            # (faulthandler cannot say which file it had; a captured sys.stderr has no fileno)
            for stream in [s for s in (sys.stderr, sys.__stderr__) if s is not None]:
                try:
                    faulthandler.enable(stream)
                    break
                except (AttributeError, OSError, ValueError, RuntimeError):
                    continue
        self._file.close()
        self._file = None
        with contextlib.suppress(OSError):
            os.remove(self.path)


def read_crash(path: str) -> Crash | None:
    """The crash recorded at ``path`` by a process that died, or None (no file, or no crash)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    first, _, rest = text.partition("\n")
    if not first.startswith(HEADER) or not rest.strip():
        return None
    try:
        number = int(first[len(HEADER):].strip())
    except ValueError:
        return None
    return Crash(number, rest.strip())
