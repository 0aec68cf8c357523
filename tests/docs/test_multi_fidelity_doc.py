"""docs/multi-fidelity.md: its Python example runs and ends with a verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import doc_env, extract_steps, run_python_steps

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "multi-fidelity.md"


@pytest.mark.slow
def test_multi_fidelity_example_runs(tmp_path: Path, fashion_mnist_dir: Path) -> None:
    steps = [s for s in extract_steps(DOC.read_text()) if s.kind == "python"]
    assert steps
    failed, res = run_python_steps(steps, tmp_path, doc_env())
    where = failed.describe() if failed is not None else "(no block reported)"
    assert res.returncode == 0, (f"docs/multi-fidelity.md {where} failed:\n"
                                 f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    assert "the baseline" in res.stdout  # the verdict's sentence
