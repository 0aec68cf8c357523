"""Plots of a search: best-so-far curve, Pareto front, metric distributions, benchmark summaries.

Every function draws with matplotlib's object-oriented API on its own :class:`Figure` (Agg canvas,
never ``pyplot``), so plotting works without a display, from threads, and leaves no global state
behind. Each saves one PNG with fixed metadata (the same data gives the same file) and returns its
path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.pareto import pareto_mask
from nasforge.trial import Objective, Trial, TrialStatus

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colour-blind-friendly colours (Okabe & Ito) used across the report.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_GREY = "#9a9a9a"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out


def _label(objective: Objective) -> str:
    arrow = "higher" if objective.direction == "maximize" else "lower"
    return f"{objective.metric} ({arrow} is better)"


def finished_in_order(trials: Sequence[Trial]) -> list[Trial]:
    """Finished trials in the order they ended (trial number breaks ties and fills gaps)."""
    done = [t for t in trials if t.status.finished and t.status is not TrialStatus.INFEASIBLE]
    return sorted(done, key=lambda t: (t.finished_at if t.finished_at is not None else math.inf,
                                       t.number))


def best_so_far(scores: Sequence[float | None]) -> np.ndarray:
    """Running maximum of 'higher is better' scores; NaN until the first score (None = no value)."""
    out = np.full(len(scores), np.nan)
    best = -math.inf
    for i, s in enumerate(scores):
        if s is not None and s > best:
            best = s
        if best > -math.inf:
            out[i] = best
    return out


def _count_axis(ax: Axes, values: np.ndarray) -> None:
    """Log scale when values span orders of magnitude (params, FLOPs); 200k-style tick labels
    for large numbers either way."""
    from matplotlib.ticker import EngFormatter

    lo, hi = float(np.min(values)), float(np.max(values))
    if lo > 0 and hi / lo > 100:
        ax.set_xscale("log")
    if hi >= 1e4:
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _clip_outliers(ax: Axes, vals: np.ndarray, objective: Objective) -> np.ndarray:
    """Limit the y axis to where most trials are (the worst 5% may fall outside once there are
    20 or more trials); returns the mask of values inside the limits."""
    if vals.size < 20:
        return np.ones(vals.size, dtype=bool)
    maximize = objective.direction == "maximize"
    lo, hi = np.percentile(vals, [5, 100] if maximize else [0, 95])
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    ax.set_ylim(lo, hi)
    inside: np.ndarray = (vals >= lo) & (vals <= hi)
    return inside


def plot_best_so_far(trials: Sequence[Trial], objective: Objective, path: str | Path,
                     title: str = "", dpi: int = 110) -> Path:
    """Every trial's value of ``objective`` (dots) and the best value so far (line), against the
    number of finished trials."""
    from matplotlib.ticker import MaxNLocator

    order = finished_in_order(trials)
    scores = [objective.score(t) for t in order]
    if all(s is None for s in scores):
        raise ConfigError(f"no successful trial has a value for {objective.metric!r} to plot")
    x = np.arange(1, len(order) + 1)
    curve = objective.sign * best_so_far(scores)
    fig = _figure(7.0, 4.0)
    ax: Axes = fig.add_subplot(1, 1, 1)
    ok = [i for i, s in enumerate(scores) if s is not None]
    vals = objective.sign * np.array([scores[i] for i in ok], dtype=float)
    shown = _clip_outliers(ax, vals, objective)
    ax.scatter(x[ok][shown], vals[shown], s=14, color=_GREY, alpha=0.7, label="trial", zorder=2)
    if not shown.all():  # far-off trials (e.g. degenerate cells) sit on the edge, not squash it
        lo, hi = ax.get_ylim()
        edge = lo if objective.direction == "maximize" else hi
        ax.scatter(x[ok][~shown], np.full(int((~shown).sum()), edge), s=22, clip_on=False,
                   marker="v" if objective.direction == "maximize" else "^", color=_GREY,
                   label=f"off the axis ({int((~shown).sum())})", zorder=2)
    failed = [i for i, t in enumerate(order) if t.status is TrialStatus.FAILED]
    if failed:
        # At the worst value shown: failures are worse than any result.
        y0 = float(vals[shown].min() if objective.direction == "maximize" else vals[shown].max())
        ax.scatter(x[failed], [y0] * len(failed), marker="x", s=18, color=COLORS[1],
                   label="failed", zorder=2)
    ax.step(x, curve, where="post", color=COLORS[0], linewidth=2, label="best so far", zorder=3)
    # The star marks the trial that found the final best value (the curve's last step).
    first = int(np.argmax(curve == curve[-1]))
    ax.scatter([x[first]], [curve[first]], marker="*", s=160, color=COLORS[4],
               edgecolor="black", linewidth=0.6, label=f"best: {curve[-1]:.4g}", zorder=4)
    ax.set_xlabel("trials finished")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_label(objective))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title or f"Best {objective.metric} so far")
    return _save(fig, path, dpi)


def plot_pareto(trials: Sequence[Trial], objectives: Sequence[Objective], path: str | Path,
                title: str = "", dpi: int = 110) -> Path:
    """Trials in objective space with the Pareto front of all objectives highlighted.

    Two objectives give one panel; more give one panel per pair with the primary objective
    (front membership is always computed on all objectives together).
    """
    objs = list(objectives)
    if len(objs) < 2:
        raise ConfigError(f"a Pareto front needs at least 2 objectives, got {len(objs)}")
    pts = [t for t in trials if t.ok and all(t.value(o.metric) is not None for o in objs)]
    if not pts:
        raise ConfigError("no successful trial has values for all objectives "
                          f"({', '.join(o.metric for o in objs)})")
    values = np.array([[t.value(o.metric) for o in objs] for t in pts], dtype=float)
    signs = np.array([o.sign for o in objs])
    front = pareto_mask(values, [o.direction for o in objs])
    pairs = [(0, j) for j in range(1, len(objs))][:3]
    fig = _figure(5.2 * len(pairs), 4.2)
    for k, (a, b) in enumerate(pairs):
        ax: Axes = fig.add_subplot(1, len(pairs), k + 1)
        ax.scatter(values[~front, b], values[~front, a], s=14, color=_GREY, alpha=0.7,
                   label="dominated")
        fx, fy = values[front, b], values[front, a]
        order = np.argsort(fx)
        ax.scatter(fx, fy, s=30, color=COLORS[1], edgecolor="black", linewidth=0.5,
                   label=f"Pareto-optimal ({int(front.sum())} trials)", zorder=3)
        if len(pairs) == 1:  # the staircase is only meaningful when the plot shows every objective
            ax.step(fx[order], fy[order], where="post" if signs[a] * signs[b] < 0 else "pre",
                    color=COLORS[1], alpha=0.6)
        ax.set_xlabel(_label(objs[b]))
        ax.set_ylabel(_label(objs[a]))
        _count_axis(ax, values[:, b])
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title or "Objective space")
    return _save(fig, path, dpi)


def plot_distributions(trials: Sequence[Trial], metrics: Sequence[str], path: str | Path,
                       title: str = "", dpi: int = 110, columns: int = 3) -> Path:
    """One histogram per metric over the successful trials."""
    from matplotlib.ticker import MaxNLocator

    data = {m: np.array([v for t in trials if t.ok for v in [t.value(m)] if v is not None])
            for m in metrics}
    data = {m: v for m, v in data.items() if v.size}
    if not data:
        raise ConfigError(f"no successful trial has any of the metrics {list(metrics)}")
    cols = min(columns, len(data))
    rows = math.ceil(len(data) / cols)
    fig = _figure(3.6 * cols, 2.8 * rows)
    for k, (name, vals) in enumerate(data.items()):
        ax: Axes = fig.add_subplot(rows, cols, k + 1)
        bins = min(30, max(5, int(math.sqrt(vals.size)) * 2))
        if float(np.ptp(vals)) == 0.0:
            bins = 1
        ax.hist(vals, bins=bins, color=COLORS[k % len(COLORS)], alpha=0.85, edgecolor="white")
        ax.set_title(name, fontsize="medium")
        ax.set_ylabel("trials", fontsize="small")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize="small")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "Metric distributions (successful trials)")
    return _save(fig, path, dpi)


def plot_anytime_dict(anytime: Mapping[str, Any], path: str | Path, title: str = "",
                      dpi: int = 110) -> Path:
    """Anytime curves stored in a benchmark's JSON (``{"axis", "grid", "mean", "sem"}``): the mean
    incumbent per strategy with a 95% band of the mean."""
    try:
        grid = np.asarray(anytime["grid"], dtype=float)
        means = {k: np.asarray(v, dtype=float) for k, v in anytime["mean"].items()}
        sems = {k: np.asarray(anytime.get("sem", {}).get(k, np.zeros_like(v)), dtype=float)
                for k, v in means.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"malformed anytime curves: {exc}") from None
    fig = _figure(7.0, 4.2)
    ax: Axes = fig.add_subplot(1, 1, 1)
    for k, (name, m) in enumerate(means.items()):
        color = COLORS[k % len(COLORS)]
        band = 1.96 * np.nan_to_num(sems[name])
        ax.plot(grid, m, color=color, label=name)
        ax.fill_between(grid, m - band, m + band, color=color, alpha=0.2)
    axis = str(anytime.get("axis", "cost"))
    ax.set_xlabel("simulated training seconds" if axis == "cost" else "queries")
    ax.set_ylabel(str(anytime.get("metric", "reported accuracy (%)")))
    finite = (np.concatenate([m[np.isfinite(m)] for m in means.values()]) if means
              else np.zeros(0))
    if finite.size:  # start where the curves get interesting, not at the first query
        lo, hi = float(np.percentile(finite, 5)), float(np.max(finite))
        pad = 0.1 * (hi - lo + 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "Anytime performance (mean over seeds)")
    return _save(fig, path, dpi)


def plot_final_boxes(finals: Mapping[str, Sequence[float | None]], path: str | Path, title: str = "",
                     ylabel: str = "reported accuracy (%)", dpi: int = 110) -> Path:
    """Box plot (with every run as a dot) of each strategy's final result."""
    items = [(k, np.asarray([v for v in vs if v is not None and math.isfinite(v)], dtype=float))
             for k, vs in finals.items()]
    items = [(k, v) for k, v in items if v.size]
    if not items:
        raise ConfigError("no finite final results to plot")
    fig = _figure(max(4.0, 1.6 * len(items) + 2), 4.0)
    ax: Axes = fig.add_subplot(1, 1, 1)
    ax.boxplot([v for _, v in items], showfliers=False)
    ax.set_xticks(range(1, len(items) + 1), [k for k, _ in items])
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    for i, (_, v) in enumerate(items):
        jitter = rng.uniform(-0.12, 0.12, size=v.size)
        ax.scatter(i + 1 + jitter, v, s=8, alpha=0.5, color=COLORS[i % len(COLORS)], zorder=3)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title or "Final result per run")
    return _save(fig, path, dpi)


# ---------------------------------------------------------------------------------- multi-fidelity
def _top_fidelity_best(trials: Sequence[Trial], objective: Objective) -> Trial | None:
    """The best OK trial among those at the highest fidelity any scored trial reached (the
    experiment's own rule: a one-epoch result is no rival for a fully trained one)."""
    best: Trial | None = None
    best_key = (-math.inf, -math.inf, 0)
    for t in trials:
        s = objective.score(t)
        if s is None:
            continue
        key = (-math.inf if t.fidelity is None else float(t.fidelity), s, -t.number)
        if key > best_key:
            best, best_key = t, key
    return best


def _rung_color(rung: int | None, count: int) -> Any:
    """Rungs are ordered, so a sequential colour map (viridis, without its pale yellow end): low
    rungs dark blue, high rungs green. Unscheduled trials get the report's blue."""
    if rung is None:
        return COLORS[0]
    from matplotlib import colormaps

    return colormaps["viridis"](0.05 + 0.7 * rung / max(count - 1, 1))


def _fidelity_text(fidelity: float | None) -> str:
    return "?" if fidelity is None else f"{fidelity:g}"


def plot_learning_curves(trials: Sequence[Trial], objective: Objective, path: str | Path,
                         rungs: Sequence[float] = (), ylabel: str = "reported value",
                         title: str = "", dpi: int = 110) -> Path:
    """Every trial's learning curve on one plot, saved as a PNG (see
    :func:`learning_curves_figure`)."""
    return _save(learning_curves_figure(trials, objective, rungs, ylabel, title), path, dpi)


def learning_curves_figure(trials: Sequence[Trial], objective: Objective,
                           rungs: Sequence[float] = (), ylabel: str = "reported value",
                           title: str = "") -> Figure:
    """Every trial's learning curve (the values it reported per step) on one plot.

    Completed trials are solid lines, coloured by rung under a scheduler; pruned trials are grey
    dashed lines with an ``x`` where they were stopped; failed ones grey dotted. The best trial
    (at the highest fidelity reached) is drawn thick, with a star at its end.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from nasforge.report.curves import learning_curve, pruned_at, rung_of

    drawn = [(t, c) for t in trials for c in [learning_curve(t)] if c]
    if not drawn:
        raise ConfigError("no trial reported a learning curve (values passed to ctx.report)")
    best = _top_fidelity_best([t for t, _ in drawn], objective)
    many = len(drawn) > 150
    count = max([len(rungs)] + [(rung_of(t) or 0) + 1 for t, _ in drawn])
    fig = _figure(7.6, 4.4)
    ax: Axes = fig.add_subplot(1, 1, 1)
    handles: dict[str, Any] = {}
    # Lower rungs first, so that the (fewer) promoted curves lie on top; the best one last.
    order = sorted(drawn, key=lambda tc: (tc[0] is best, rung_of(tc[0]) or 0, tc[0].number))
    for t, curve in order:
        xs = np.array([s for s, _ in curve], dtype=float)
        ys = np.array([v for _, v in curve], dtype=float)
        marker = "." if len(curve) == 1 else None
        rung = rung_of(t)
        gid = f"trial-{t.number}"  # names the line (tests and SVG exports can find it)
        if t.status is TrialStatus.PRUNED:
            ax.plot(xs, ys, linestyle="--", linewidth=0.9, color=_GREY, alpha=0.5 if many else 0.8,
                    marker=marker, zorder=2, gid=gid)
            handles.setdefault("pruned", Line2D([], [], linestyle="--", color=_GREY, label="pruned"))
            stop = pruned_at(t)
            at = [i for i, s in enumerate(xs) if s == stop] if stop is not None else []
            i = at[-1] if at else len(xs) - 1
            ax.scatter([xs[i]], [ys[i]], marker="x", s=26, color=COLORS[1], linewidth=1.2,
                       zorder=3, gid=f"pruned-{t.number}")
            handles.setdefault("pruned at", Line2D([], [], linestyle="", marker="x",
                                                   color=COLORS[1], label="pruned here"))
        elif t.status is TrialStatus.OK and t is not best:
            color = _rung_color(rung, count)
            ax.plot(xs, ys, linewidth=1.1, color=color, alpha=0.45 if many else 0.75,
                    marker=marker, zorder=2, gid=gid)
            if rung is None:
                label = "completed"
            else:
                fid = rungs[rung] if rung < len(rungs) else t.fidelity
                label = f"rung {rung} (fidelity {_fidelity_text(fid)})"
            handles.setdefault(f"ok{rung}", Line2D([], [], color=color, label=label))
        elif t is best:
            ax.plot(xs, ys, linewidth=2.4, color="black", marker=marker, zorder=4, gid=gid)
            ax.scatter([xs[-1]], [ys[-1]], marker="*", s=170, color=COLORS[4], edgecolor="black",
                       linewidth=0.6, zorder=5)
            handles["best"] = Line2D([], [], color="black", linewidth=2.4, marker="*",
                                     markerfacecolor=COLORS[4], markersize=11,
                                     label=f"best: trial {t.number} ({ys[-1]:.4g})")
        else:  # failed, infeasible, still running
            ax.plot(xs, ys, linestyle=":", linewidth=0.9, color=_GREY, marker=marker, zorder=1,
                    gid=gid)
            handles.setdefault("other", Line2D([], [], linestyle=":", color=_GREY,
                                               label="failed / running"))
    ok_keys = sorted((k for k in handles if k.startswith("ok")), key=lambda k: (len(k), k))
    keys = [*ok_keys, *[k for k in ("pruned", "pruned at", "other", "best") if k in handles]]
    ax.legend(handles=[handles[k] for k in keys], loc="best", fontsize="small")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Learning curves ({len(drawn)} trials)")
    return fig


def plot_rungs(trials: Sequence[Trial], objective: Objective, path: str | Path,
               rungs: Sequence[float] = (), title: str = "", dpi: int = 110) -> Path:
    """The distribution of ``objective`` at each rung, saved as a PNG (see :func:`rungs_figure`)."""
    return _save(rungs_figure(trials, objective, rungs, title), path, dpi)


def rungs_figure(trials: Sequence[Trial], objective: Objective, rungs: Sequence[float] = (),
                 title: str = "") -> Figure:
    """The distribution of ``objective`` at each rung of a multi-fidelity schedule.

    One box per rung over its completed trials (every trial a dot), pruned trials as grey ``x``
    at the last value they reported, and a thin line from each promoted trial to its promotion.
    """
    from matplotlib.lines import Line2D

    from nasforge.report.curves import learning_curve, parent_of, rung_of

    by_rung: dict[int, list[Trial]] = {}
    for t in trials:
        k = rung_of(t)
        if k is not None:
            by_rung.setdefault(k, []).append(t)
    for k in range(len(rungs)):
        by_rung.setdefault(k, [])
    metric = objective.metric
    values = {t.number: v for ts in by_rung.values() for t in ts if t.ok
              for v in [t.value(metric)] if v is not None and math.isfinite(v)}
    if not values:
        raise ConfigError(f"no trial of a rung has a value for {metric!r} to plot")
    ks = sorted(by_rung)
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    x_of: dict[int, float] = {}
    y_of = dict(values)  # completed trials at their value, pruned ones at their last report
    fig = _figure(max(5.0, 1.5 * len(ks) + 2.5), 4.4)
    ax: Axes = fig.add_subplot(1, 1, 1)
    boxes = [(k, [values[t.number] for t in by_rung[k] if t.number in values]) for k in ks]
    boxes = [(k, v) for k, v in boxes if v]
    ax.boxplot([v for _, v in boxes], positions=[k for k, _ in boxes], widths=0.5,
               showfliers=False, zorder=1)
    handles: list[Any] = []
    for k in ks:
        color = _rung_color(k, max(ks) + 1)
        ts = by_rung[k]
        ok = [t for t in ts if t.number in values]
        for t in ok:
            x_of[t.number] = k + float(rng.uniform(-0.16, 0.16))
        ax.scatter([x_of[t.number] for t in ok], [values[t.number] for t in ok], s=14,
                   color=color, alpha=0.8, zorder=3, gid=f"rung-{k}-ok")
        pruned = [(t, c[-1][1]) for t in ts if t.status is TrialStatus.PRUNED
                  for c in [learning_curve(t)] if c]
        for t, v in pruned:
            x_of[t.number], y_of[t.number] = k + float(rng.uniform(-0.16, 0.16)), v
        if pruned:
            ax.scatter([x_of[t.number] for t, _ in pruned], [v for _, v in pruned], marker="x",
                       s=20, color=_GREY, zorder=2, gid=f"rung-{k}-pruned")
    for t in (t for ts in by_rung.values() for t in ts):
        p = parent_of(t)
        if p is not None and p in x_of and t.number in x_of:
            ax.plot([x_of[p], x_of[t.number]], [y_of[p], y_of[t.number]], color=_GREY,
                    alpha=0.45, linewidth=0.8, zorder=1,
                    linestyle="--" if t.number not in values else "-",
                    gid=f"promotion-{p}-{t.number}")
    handles.append(Line2D([], [], linestyle="", marker="o", color=_rung_color(0, 1),
                          markersize=4, label="completed trial"))
    if any(t.status is TrialStatus.PRUNED for ts in by_rung.values() for t in ts):
        handles.append(Line2D([], [], linestyle="", marker="x", color=_GREY,
                              label="pruned (last reported value)"))
    if any(parent_of(t) is not None for ts in by_rung.values() for t in ts):
        handles.append(Line2D([], [], color=_GREY, alpha=0.6, label="promotion"))
    best = _top_fidelity_best([t for ts in by_rung.values() for t in ts], objective)
    if best is not None and best.number in x_of:
        ax.scatter([x_of[best.number]], [values[best.number]], marker="*", s=170,
                   color=COLORS[4], edgecolor="black", linewidth=0.6, zorder=4)
        handles.append(Line2D([], [], linestyle="", marker="*", markerfacecolor=COLORS[4],
                              markeredgecolor="black", markersize=11,
                              label=f"best: trial {best.number} ({values[best.number]:.4g})"))

    def tick(k: int) -> str:
        fid = rungs[k] if k < len(rungs) else None
        if fid is None:
            fids = {float(t.fidelity) for t in by_rung[k] if t.fidelity is not None}
            fid = fids.pop() if len(fids) == 1 else None
        return f"rung {k}\nfidelity {_fidelity_text(fid)}\n{len(by_rung[k])} trial(s)"

    ax.set_xticks(ks, [tick(k) for k in ks])
    ax.set_xlim(min(ks) - 0.6, max(ks) + 0.6)
    ax.set_ylabel(_label(objective))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_title(title or f"{metric} at each rung")
    return fig


__all__ = [
    "COLORS",
    "best_so_far",
    "finished_in_order",
    "learning_curves_figure",
    "plot_anytime_dict",
    "plot_best_so_far",
    "plot_distributions",
    "plot_final_boxes",
    "plot_learning_curves",
    "plot_pareto",
    "plot_rungs",
    "rungs_figure",
]
