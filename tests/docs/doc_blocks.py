"""Pull runnable code out of Markdown (README, user guide) and run it like a user would.

A Markdown file becomes a list of :class:`Step` s, in document order: each ```python block is one
step (run as a script), and each line of a ```bash block that starts with ``nasforge`` is one
step (run as the ``nasforge`` command). Other shell lines (``export``, ``./run.sh ...``,
``pip install``) are set-up the test environment does itself, so they are skipped, and so are
blocks whose info string says ``no-test`` (```` ```python no-test ````).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
#: Info-string word that keeps a block out of the tests (e.g. it needs CIFAR-10 or a GPU):
#: ```python no-test
NO_TEST = "no-test"


@dataclass(frozen=True)
class Step:
    """One thing to run: ``kind`` is "python" (``code`` is a script) or "nasforge" (``argv``)."""

    kind: str
    line: int
    code: str = ""
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"line {self.line}: " + (" ".join(self.argv) if self.argv
                                         else self.code.strip().splitlines()[0])


def _shell_lines(block: str) -> list[tuple[int, str]]:
    """Logical lines of a shell block (backslash continuations joined), with line offsets."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for i, raw in enumerate(block.splitlines()):
        if not pending:
            start = i
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def extract_steps(markdown: str) -> list[Step]:
    """The runnable steps of a Markdown text, in order."""
    steps: list[Step] = []
    for m in _FENCE.finditer(markdown):
        lang, info, body = m.group(1).lower(), m.group(2).split(), m.group(3)
        if NO_TEST in info:
            continue
        first = markdown.count("\n", 0, m.start(3)) + 1
        if lang in ("python", "py"):
            steps.append(Step("python", first, code=body))
        elif lang in ("bash", "sh", "shell", "console"):
            for offset, line in _shell_lines(body):
                text = line.strip().removeprefix("$ ").strip()
                if not text.startswith("nasforge ") and text != "nasforge":
                    continue  # set-up lines: export, ./run.sh search, ./run.sh test, pip ...
                argv = shlex.split(text, comments=True)
                steps.append(Step("nasforge", first + offset, argv=tuple(argv)))
    return steps


def nasforge_command() -> list[str]:
    """How to run the ``nasforge`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("nasforge")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "nasforge.cli.main"]


def run_step(step: Step, cwd: Path, env: dict[str, str], timeout: float = 600
             ) -> subprocess.CompletedProcess[str]:
    """Run one step in ``cwd`` as a separate process."""
    if step.kind == "python":
        script = cwd / f"_doc_block_{step.line}.py"
        script.write_text(step.code)
        argv = [sys.executable, script.name]
    else:
        argv = nasforge_command() + list(step.argv[1:])
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def doc_env(**extra: str) -> dict[str, str]:
    """The environment doc steps run in: one torch thread each (shared CI cores), no colour."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_COLOR": "1",
                "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"})
    env.update(extra)
    return env


_DRIVER = """\
import runpy, sys, traceback
for i, path in enumerate(sys.argv[1:]):
    try:
        runpy.run_path(path, run_name="__main__")
    except BaseException:
        traceback.print_exc()
        print(f"DOC-BLOCK-FAILED {i}", file=sys.stderr)
        sys.exit(1)
"""


def run_python_steps(steps: list[Step], cwd: Path, env: dict[str, str], timeout: float = 600
                     ) -> tuple[Step | None, subprocess.CompletedProcess[str]]:
    """Run Python steps one after another in one interpreter (each in a fresh namespace, so
    importing torch is paid once); returns the failing step (or None) and the process result."""
    paths = []
    for step in steps:
        script = cwd / f"_doc_block_{step.line}.py"
        script.write_text(step.code)
        paths.append(script.name)
    res = subprocess.run([sys.executable, "-c", _DRIVER, *paths], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=timeout, check=False)
    failed = re.search(r"DOC-BLOCK-FAILED (\d+)", res.stderr)
    return (steps[int(failed.group(1))] if failed else None), res
