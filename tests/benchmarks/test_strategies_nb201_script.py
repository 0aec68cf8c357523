"""benchmarks/strategies_nb201.py: the JSON written after every row, and --resume / --saved-only,
which let the hours-long 200-seed run stop and continue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "strategies_nb201.py"


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False
    )


def run(*args: str) -> str:
    done = script(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_resume_reuses_saved_rows_and_saved_only_leaves_the_rest_out(nb201_dir: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "s.json")
    common = ["--data", str(nb201_dir), "--seeds", "2", "--jobs", "1", "--timing-seeds", "1", "--json", out]
    first = run(*common, "--strategies", "random,rea", "--no-variants")
    saved = json.loads(Path(out).read_text())
    assert saved["complete"] is True and [r["strategy"] for r in saved["rows"]] == ["random", "rea"]
    # Every seed's incumbent after each of the 100 queries is kept.
    assert all(len(s["incumbent"]) == 100 for s in saved["comparisons"]["rea"]["per_seed"]["by_queries"])

    # A listed row that the file lacks is left out with --saved-only, and the saved rows are reused.
    partial = run(*common, "--strategies", "random,ga", "--no-variants", "--resume", "--saved-only")
    assert f"random: from {out}" in partial and f"ga: not in {out} yet, left out" in partial
    assert "\nga " not in partial and "\nrandom " in partial

    # --resume computes only the missing row; the reused row's figures are those of the first run.
    resumed = run(*common, "--strategies", "random,ga", "--no-variants", "--resume")
    assert f"random: from {out}" in resumed and "done ga" in resumed
    line = next(x for x in first.splitlines() if x.startswith("random "))
    again = next(x for x in resumed.splitlines() if x.startswith("random "))
    assert again.split()[:9] == line.split()[:9]  # the accuracy columns (not the timing)


def test_resume_refuses_a_file_of_other_seeds(nb201_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    out.write_text(json.dumps({"seeds": 3, "data": "elsewhere", "rows": [], "comparisons": {}}))
    done = script("--data", str(nb201_dir), "--seeds", "2", "--strategies", "random", "--json", str(out), "--resume")
    assert done.returncode != 0 and "holds 3 seeds" in done.stderr
