"""Reports on finished searches: method comparisons with statistics, anytime curves and plots."""

from nasforge.report.compare import (
    AnytimeCurves,
    Comparison,
    MethodStats,
    PairTest,
    Protocol,
    RunResult,
    anytime_curves,
    compare,
    compare_pair,
    confidence_interval,
    plot_anytime,
    run_one,
    summarize,
)

__all__ = [
    "AnytimeCurves",
    "Comparison",
    "MethodStats",
    "PairTest",
    "Protocol",
    "RunResult",
    "anytime_curves",
    "compare",
    "compare_pair",
    "confidence_interval",
    "plot_anytime",
    "run_one",
    "summarize",
]
