"""docs/user-guide.md: its Python examples run, it documents everything registered, and its
local links and images exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import doc_env, extract_steps, run_python_steps

import nasforge

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "user-guide.md"


def test_every_registered_name_is_documented() -> None:
    text = GUIDE.read_text()
    missing = [f"{kind} {name!r}" for kind, names in (
        ("space", nasforge.list_spaces()), ("strategy", nasforge.list_strategies()),
        ("evaluator", nasforge.list_evaluators())) for name in names
        if f"`{name}`" not in text]
    assert not missing, (f"docs/user-guide.md does not mention {', '.join(missing)}: add a row "
                         "(what it does, its paper) to the tables under 'Spaces, strategies and "
                         "evaluators'")


def test_every_search_setting_is_documented() -> None:
    from nasforge.config import SearchConfig

    text = GUIDE.read_text()
    missing = [k for k in SearchConfig.model_fields if f"`{k}`" not in text]
    assert not missing, f"docs/user-guide.md (Configuration files) does not list {missing}"


def test_local_links_and_images_exist() -> None:
    text = GUIDE.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert "images/report.png" in targets
    for target in targets:
        if target.startswith(("http://", "https://")):
            continue
        path = (GUIDE.parent / target).resolve()
        assert path.exists(), f"docs/user-guide.md links to {target}, which does not exist"


@pytest.mark.slow
def test_user_guide_python_examples_run(tmp_path: Path) -> None:
    steps = [s for s in extract_steps(GUIDE.read_text()) if s.kind == "python"]
    assert len(steps) >= 4
    failed, res = run_python_steps(steps, tmp_path, doc_env())
    where = failed.describe() if failed is not None else "(no block reported)"
    assert res.returncode == 0, (f"docs/user-guide.md {where} failed:\n"
                                 f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    assert "torch.Size([2, 10])" in res.stdout
