"""Compare search strategies on NAS-Bench-201 the way papers do: many seeds, honest statistics.

Each strategy runs once per seed under NAS-Bench-201's protocol (search on the 12-epoch
validation accuracy, stop at 12,000 simulated GPU seconds, report the 200-epoch test accuracy
of the best-by-validation architecture). Prints mean, std and 95% confidence interval per
strategy and writes an HTML report with the anytime curves.

    export NASFORGE_NB201=/path/to/nb201
    python examples/compare_strategies.py
"""

import os
import sys
from pathlib import Path

import nasforge
from nasforge.report.compare import Protocol, compare
from nasforge.report.html import write_bench_report

SMALL = os.environ.get("NASFORGE_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("NASFORGE_EXAMPLE_OUT", "runs/compare"))

if not os.environ.get("NASFORGE_NB201"):
    sys.exit("set NASFORGE_NB201 to the folder holding nb201.csv")

strategies = [s for s in ("random", "rea") if s in nasforge.list_strategies()]
protocol = Protocol(benchmark="nb201", dataset="cifar10", max_cost=12_000.0)
comparison = compare(strategies, seeds=4 if SMALL else 50, protocol=protocol, jobs=1 if SMALL else 2)

for s in comparison.stats:
    print(f"{s.rank}. {s.strategy:<10} {s.mean:.2f} +- {s.std:.2f} "
          f"(95% CI {s.ci_low:.2f}-{s.ci_high:.2f}, {s.runs} runs)")
test = comparison.test_top_two()
if test is not None:
    print(f"{test.a} vs {test.b}: Welch p = {test.welch_p:.3g}, Mann-Whitney p = "
          f"{test.mannwhitney_p:.3g}")
print("report:", write_bench_report(comparison.to_dict(), OUT / "compare.html").html)
