"""``python -m nasforge`` is the same command line as the ``nasforge`` script."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_nasforge_runs_the_cli() -> None:
    res = subprocess.run([sys.executable, "-m", "nasforge", "spaces", "--json"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "nb201" in res.stdout
    res = subprocess.run([sys.executable, "-m", "nasforge", "search", "--space", "no_such_space"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2 and "no_such_space" in res.stderr  # errors as the script gives them
