"""The README's examples run as written: every ```python block, and every ``nasforge`` line of the
```bash blocks, in order, in one fresh directory (``./run.sh search``/``./run.sh test`` and other
set-up lines are skipped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from doc_blocks import Step, doc_env, extract_steps, run_step

ROOT = Path(__file__).resolve().parents[2]
# $NASFORGE_README checks another file the same way (e.g. a draft of the README's examples).
README = Path(os.environ.get("NASFORGE_README", ROOT / "README.md"))


def run_markdown(path: Path, cwd: Path, env: dict[str, str]) -> list[Step]:
    """Run every step of the Markdown file at ``path``; fail with the step's output."""
    steps = extract_steps(path.read_text())
    for step in steps:
        res = run_step(step, cwd, env)
        assert res.returncode == 0, (
            f"{path.name} {step.describe()} failed (exit {res.returncode}):\n"
            f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    return steps


SAMPLE = '''# Demo

```bash
./run.sh search        # set-up: skipped
./run.sh test
export SOMETHING=1
nasforge spaces --json spaces.json   # a comment
$ nasforge init \\
    demo.yaml
```

```python
import json
names = [s["name"] for s in json.load(open("spaces.json"))["spaces"]]
assert "nb201" in names
open("python-ran.txt", "w").write("ok")
```

```yaml
space: not-run
```

```python no-test
raise SystemExit("blocks marked no-test are not run")
```
'''


def test_extractor_on_a_temporary_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(SAMPLE)
    steps = extract_steps(readme.read_text())
    assert [s.kind for s in steps] == ["nasforge", "nasforge", "python"]
    assert steps[0].argv == ("nasforge", "spaces", "--json", "spaces.json")
    assert steps[1].argv == ("nasforge", "init", "demo.yaml")  # continuation and "$ " prompt
    assert steps[0].line == 7 and steps[2].line == 13
    # Run it (without the init step, to pay for one nasforge start only).
    runnable = tmp_path / "RUN.md"
    runnable.write_text(SAMPLE.replace("$ nasforge init \\\n    demo.yaml\n", ""))
    work = tmp_path / "work"
    work.mkdir()
    assert len(run_markdown(runnable, work, doc_env())) == 2
    assert (work / "python-ran.txt").read_text() == "ok"
    # A failing step fails the test, naming its line.
    runnable.write_text("text\n\n```python\nraise SystemExit(3)\n```\n")
    with pytest.raises(AssertionError, match="line 4"):
        run_markdown(runnable, work, doc_env())


@pytest.mark.slow
def test_readme_examples_run(tmp_path: Path, fashion_mnist_dir: Path, nb201_dir: Path) -> None:
    steps = extract_steps(README.read_text())
    assert steps, f"{README} has no ```python blocks or `nasforge` commands to check"
    env = doc_env(NASFORGE_DATA=str(fashion_mnist_dir), NASFORGE_NB201=str(nb201_dir))
    env.pop("NASFORGE_EXAMPLE_SMALL", None)
    run_markdown(README, tmp_path, env)
    assert os.listdir(tmp_path)
