"""Every script in examples/ runs (with NASFORGE_EXAMPLE_SMALL=1: small budgets, seconds each)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import doc_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples_and_each_says_what_it_does() -> None:
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and f"python examples/{path.name}" in doc, \
            f"{path.name} needs a docstring saying what it shows and how to run it"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    text = path.read_text()
    extra = {"NASFORGE_EXAMPLE_SMALL": "1", "NASFORGE_EXAMPLE_OUT": str(tmp_path / "out")}
    # Examples name the data they need; the fixtures skip (with the reason) when it is absent.
    if "NASFORGE_NB201" in text:
        extra["NASFORGE_NB201"] = str(request.getfixturevalue("nb201_dir"))
    if "fashion_mnist" in text:
        extra["NASFORGE_DATA"] = str(request.getfixturevalue("fashion_mnist_dir"))
    res = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=doc_env(**extra),
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"{path.name} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert res.stdout.strip(), f"{path.name} printed nothing"
