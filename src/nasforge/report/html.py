"""Self-contained HTML reports of a search (``nasforge report DB``) and of a strategy comparison
(``nasforge report --bench results.json``).

One HTML file holds everything: inline CSS, a few lines of inline JavaScript that sort tables when
a header is clicked (no CDN, no network), and the plots as base64 ``data:`` URIs. The PNGs are
also written to a ``<name>_files/`` folder beside the HTML so they can be reused in papers and
slides.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasforge.errors import ConfigError, NasforgeError, file_error
from nasforge.report import curves, plots, timeline
from nasforge.report.stored import StoredExperiment, load_experiment
from nasforge.trial import Trial

log = logging.getLogger("nasforge.report")


@dataclass
class ReportFiles:
    """What a report wrote: the HTML file and the images saved beside it."""

    html: Path
    images: list[Path] = field(default_factory=list)
    #: Sections that could not be drawn, with the reason (e.g. a space without diagrams).
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (paths as strings)."""
        return {"html": str(self.html), "images": [str(p) for p in self.images],
                "skipped": dict(self.skipped)}


# ---------------------------------------------------------------------------------- HTML pieces
_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 10px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 15px; font-weight: 600; overflow-wrap: anywhere; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; }
.archs { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.arch { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.arch h3 { margin: 0 0 6px; font-size: 15px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.tablewrap { overflow-x: auto; max-height: 720px; overflow-y: auto; border: 1px solid var(--line);
             border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
         vertical-align: top; }
th { background: var(--bg); position: sticky; top: 0; cursor: pointer; user-select: none;
     white-space: nowrap; }
th:hover { color: var(--accent); }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
td.text, th.text { text-align: left; }
td.arch-cell { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
               max-width: 560px; overflow-wrap: anywhere; }
tr.best td { background: #fff8e1; }
.status-failed { color: #b42318; } .status-pruned, .status-infeasible { color: var(--muted); }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""

# Sorting: a click on a header sorts by that column, a second click reverses. Cells carry their
# raw number in data-sort; empty values always sort last.
_JS = """
(function () {
  "use strict";
  function keyOf(cell) {
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "" || raw === "-") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function compare(a, b, dir) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (typeof a === "number" && typeof b === "number") { return dir * (a - b); }
    return dir * String(a).localeCompare(String(b));
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "descending" ? 1 : -1;
    if (!th.hasAttribute("aria-sort") && th.classList.contains("text")) { dir = 1; }
    rows.sort(function (r1, r2) {
      return compare(keyOf(r1.cells[col]), keyOf(r2.cells[col]), dir);
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """Short human form of a number (or ``-`` for missing values)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return "-"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"  # counts (trials, params, FLOPs) read best as whole numbers
    if abs(v) >= 1e5:
        return f"{v:,.0f}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


def _cell(value: Any, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raw = "" if not math.isfinite(float(value)) else repr(float(value))
        return f'<td{attr} data-sort="{_e(raw)}">{_e(fmt(value))}</td>'
    return f"<td{attr}>{_e('' if value is None else value)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], text_cols: Sequence[int] = (),
          row_classes: Sequence[str] | None = None, cell_classes: Mapping[int, str] | None = None,
          table_id: str | None = None) -> str:
    """A sortable HTML table; numbers right-aligned with their raw value kept for sorting."""
    cell_classes = dict(cell_classes or {})
    for c in text_cols:
        cell_classes[c] = (cell_classes.get(c, "") + " text").strip()
    head = "".join(f'<th class="{cell_classes.get(i, "")}" scope="col">{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for k, row in enumerate(rows):
        cls = row_classes[k] if row_classes is not None and row_classes[k] else ""
        cells = "".join(_cell(v, cell_classes.get(i, "")) for i, v in enumerate(row))
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return (f'<div class="tablewrap"><table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def cards(items: Sequence[tuple[str, Any]]) -> str:
    """Key/value summary cards."""
    inner = "".join(f'<div class="card"><div class="k">{_e(k)}</div>'
                    f'<div class="v">{_e(fmt(v))}</div></div>' for k, v in items)
    return f'<div class="cards">{inner}</div>'


def image(path: Path, alt: str, caption: str = "") -> str:
    """An ``<img>`` with the PNG inlined as a base64 data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">{cap}</figure>')


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole HTML document."""
    from nasforge import __version__

    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_e(title)}</h1>\n<p class=\"sub\">{_e(subtitle)}</p>\n"
        + "\n".join(sections)
        + f"\n<footer>Generated by nasforge {_e(__version__)}.</footer>\n</main>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


class _Assets:
    """Collects the images of one report in ``<name>_files/``."""

    def __init__(self, out: Path) -> None:
        self.dir = out.with_name(out.stem + "_files")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise file_error(exc, self.dir, "create the report's image directory") from None
        self.images: list[Path] = []
        self.skipped: dict[str, str] = {}

    def draw(self, name: str, what: str, fn: Callable[[Path], Any]) -> Path | None:
        """Run ``fn(path)`` to draw ``name``.png; a user-level failure skips the section."""
        path = self.dir / f"{name}.png"
        try:
            fn(path)
        except NasforgeError as exc:
            self.skipped[what] = str(exc)
            log.info("report: no %s: %s", what, exc)
            return None
        self.images.append(path)
        return path


def _write(target: Path, text: str) -> None:
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise file_error(exc, target, "write the report") from None


def _out_path(out: str | Path | None, default: str) -> Path:
    p = Path(out) if out is not None else Path(default)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report file must end in .html, got {str(p)!r}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(exc, p.parent, "create the report directory") from None
    return p


# ---------------------------------------------------------------------------------- search report
def _when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _summary(exp: StoredExperiment) -> str:
    counts = exp.status_counts()
    ranked = exp.ranked()
    best = ranked[0] if ranked else None
    started = min((t.started_at for t in exp.trials if t.started_at), default=None)
    ended = max((t.finished_at or 0.0 for t in exp.trials), default=None)
    items: list[tuple[str, Any]] = [
        ("space", exp.space_name + (f" {exp.space_options}" if exp.space_options else "")),
        ("strategy", exp.strategy or "-"),
        ("evaluator", exp.evaluator or "-"),
        ("objectives", ", ".join(f"{o.direction} {o.metric}" for o in exp.objectives)),
        ("constraints", ", ".join(map(str, exp.constraints)) or "none"),
        ("trials", ", ".join(f"{n} {s}" for s, n in counts.items()) or "0"),
        ("evaluation cost", f"{sum(t.cost for t in exp.trials):,.1f} s"),
        ("ran", f"{_when(started)} to {_when(ended)}"),
    ]
    if best is not None:
        items.insert(0, (f"best {exp.objective.metric}", fmt(best.value(exp.objective.metric))))
    scheduler = curves.settings(exp.config, "scheduler")
    pruner = curves.settings(exp.config, "pruner")
    if scheduler is not None:
        items.append(("scheduler", curves.describe_settings(scheduler)))
    if pruner is not None or counts.get("pruned"):
        items.append(("pruner", curves.describe_settings(pruner)))
        items.append(("pruned trials", counts.get("pruned", 0)))
    return "<h2>Summary</h2>" + cards(items)


def _curve_label(exp: StoredExperiment, pruned: bool) -> str:
    """What the learning curves show: the primary objective when a pruner compared it (pruners
    require it) or when every completed curve ends at the trial's value of it."""
    metric = exp.objective.metric
    if pruned:
        return f"{metric} (reported per step)"
    ends = [(c[-1][1], t.value(metric)) for t in exp.ok_trials()
            for c in [curves.learning_curve(t)] if c]
    if ends and all(v is not None and math.isclose(last, v, rel_tol=1e-9, abs_tol=1e-12)
                    for last, v in ends):
        return f"{metric} (reported per step)"
    return "reported value (ctx.report)"


def _verdict_section(stage: Mapping[str, Any]) -> str:
    """The final stage: the verdict first, then the final test and the re-evaluated candidates."""

    def pm(d: Mapping[str, Any]) -> str:
        if d.get("mean") is None:
            return "-"
        return f"{d['mean']:.2f} ± {d.get('std', 0.0):.2f} (n={d.get('n', 0)})"

    verdict = stage.get("verdict", {})
    out = ["<h2>Verdict</h2>", f'<p class="verdict"><strong>{_e(verdict.get("text", ""))}</strong></p>']
    rows = []
    for label in ("chosen", "baseline"):
        side = stage.get("final", {}).get(label)
        if side is None:
            continue
        prof = side.get("profile", {})
        rows.append(["search's pick" if label == "chosen" else "baseline", pm(side),
                     prof.get("params"), prof.get("flops"), prof.get("latency_ms"), side["arch"]])
    fid = stage.get("settings", {}).get("final_fidelity")
    n_train = (stage.get("final", {}).get("chosen") or {}).get("train_images")
    where = f"{n_train:,} training images" if n_train else "the training data"
    out.append(f'<p class="note">Trained on {_e(where)}{f" for {fid:g} epochs" if fid else ""} '
               "with the same recipe and seeds, each tested once per seed on the test split.</p>")
    tested = str(stage.get("settings", {}).get("test_metric", "test_accuracy")).replace("_", " ")
    out.append(table(["", f"{tested} (mean ± std)", "params", "FLOPs", "latency ms",
                      "architecture"], rows, text_cols=[0, 1, 5]))
    cand = [[i, c["trial"], c.get("search_value"), pm(c.get("reevaluated", {})), c["arch"]]
            for i, c in enumerate(stage.get("candidates", []), 1)]
    out.append('<p class="note">Top candidates re-evaluated with fresh seeds and ranked by the '
               "fresh mean (the search value is biased upwards: it was selected for being high).</p>")
    out.append(table(["rank", "trial", "search value", "re-evaluated", "architecture"], cand,
                     text_cols=[3, 4]))
    return "".join(out)


def _curve_sections(exp: StoredExperiment, assets: _Assets) -> list[str]:
    """Learning curves of every trial, and the rungs of a multi-fidelity schedule."""
    out: list[str] = []
    scheduler = curves.settings(exp.config, "scheduler")
    pruner = curves.settings(exp.config, "pruner")
    rungs = curves.rung_fidelities(scheduler)
    scheduled = curves.is_scheduled(exp.trials, exp.config)
    if any(curves.learning_curve(t) for t in exp.trials) or pruner is not None:
        label = _curve_label(exp, pruner is not None)
        path = assets.draw("learning_curves", "learning curves", lambda p: plots.plot_learning_curves(
            exp.trials, exp.objective, p, rungs=rungs, ylabel=label))
        if path is not None:
            pruned = [t for t in exp.trials if curves.pruned_at(t) is not None]
            note = ("Every value each trial reported while it ran"
                    + (", coloured by rung" if scheduled else "")
                    + "; the best trial is drawn thick."
                    + (f" {len(pruned)} pruned trial(s) are grey dashed lines, an x marks the step "
                       "each was stopped at." if pruned else ""))
            out.append("<h2>Learning curves</h2>" + image(path, "learning curves", note))
    if scheduled:
        summary = curves.rung_summary(exp.trials, exp.objective, rungs)
        path = assets.draw("rungs", "rung distributions", lambda p: plots.plot_rungs(
            exp.trials, exp.objective, p, rungs=rungs))
        metric = exp.objective.metric
        rows = [[r.rung, r.fidelity, r.started, r.finished, r.ok, r.pruned, r.failed, r.promoted,
                 r.best_trial, r.best_value] for r in summary]
        section = ("<h2>Rungs</h2><p class=\"note\">Scheduler: "
                   f"{_e(curves.describe_settings(scheduler))}.</p>")
        if path is not None:
            section += image(path, "values at each rung",
                             f"{metric} of the completed trials at each rung (boxes), pruned "
                             "trials at the last value they reported, and lines from each "
                             "promoted trial to its promotion.")
        section += table(["rung", "fidelity", "started", "finished", "ok", "pruned", "failed",
                          "promoted", "best trial", f"best {metric}"], rows, table_id="rungs")
        out.append(section)
    return out


def _arch_cards(exp: StoredExperiment, trials: Sequence[Trial], assets: _Assets) -> str:
    space = exp.space
    parts: Sequence[str | None] = (None,)
    if space is not None and space.graph_parts:
        # Spaces whose architectures have several drawable parts (DARTS: normal and reduction
        # cell) list them in ``graph_parts``: one picture per part.
        parts = space.graph_parts
    out = []
    for rank, t in enumerate(trials, 1):
        figs = []
        if space is not None:
            from nasforge.report.diagrams import draw

            for part in parts:
                name = f"arch{rank}" + (f"_{part}" if part else "")

                def drawing(p: Path, part: str | None = part, t: Trial = t) -> Any:
                    return draw(space, t.arch, p, part=part, dpi=90)

                path = assets.draw(name, "architecture diagrams", drawing)
                if path is not None:
                    figs.append(image(path, f"diagram of trial {t.number}" +
                                      (f" ({part} cell)" if part else "")))
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in t.metrics.items())
        out.append(
            f'<div class="arch"><h3>#{rank}: trial {t.number}</h3>'
            f"<pre>{_e(exp.arch_text(t.arch))}</pre><p class=\"note\">{_e(metrics)}</p>"
            + "".join(figs) + "</div>"
        )
    return '<div class="archs">' + "".join(out) + "</div>"


def _split_constant(exp: StoredExperiment, metrics: Sequence[str],
                    ) -> tuple[list[str], dict[str, float]]:
    """Metrics that vary over the successful trials, and those with one value (not plotted)."""
    varying, constant = [], {}
    for m in metrics:
        values = {v for t in exp.ok_trials() for v in [t.value(m)] if v is not None}
        if len(values) == 1:
            constant[m] = values.pop()
        elif values:
            varying.append(m)
    return varying, constant


def _trial_rows(exp: StoredExperiment, trials: Sequence[Trial], metrics: Sequence[str],
                errors: bool, scheduled: bool = False) -> tuple[list[list[Any]], list[str]]:
    best = exp.ranked()[:1]
    rows, classes = [], []
    for t in trials:
        sched = ([t.fidelity, curves.rung_of(t), curves.parent_of(t), curves.pruned_at(t)]
                 if scheduled else [])
        row = [t.number, t.status.value, *sched, *[t.value(m) for m in metrics], t.cost,
               t.duration, exp.arch_text(t.arch)]
        if errors:
            row.append((t.error or "").splitlines()[0] if t.error else "")
        rows.append(row)
        classes.append("best" if best and t.number == best[0].number else "")
    return rows, classes


def _worker_section(workers: Sequence[timeline.Lane]) -> str:
    """Trials per worker: one bar per trial on each worker's lane (inline SVG, no plotting)."""
    span = max(b for lane in workers for _, _, b, _ in lane.trials) or 1.0
    width, lane_h, left = 720.0, 18, 190
    colors = {"ok": "#4c78a8", "failed": "#e45756", "pruned": "#bab0ac"}
    rows = []
    for i, lane in enumerate(workers):
        y = i * lane_h
        label = f"{lane.node} pid {lane.worker}"
        rows.append(f'<text x="0" y="{y + 13}" font-size="11">{_e(label)}</text>')
        for n, a, b, status in lane.trials:
            x = left + (width - left) * a / span
            w = max(1.0, (width - left) * (b - a) / span)
            rows.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{lane_h - 6}" '
                        f'fill="{colors.get(status, "#f58518")}"><title>trial {n}: {a:.1f}-'
                        f'{b:.1f} s, {_e(status)}</title></rect>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
           f'height="{lane_h * len(workers)}" role="img" aria-label="trials per worker">'
           + "".join(rows) + "</svg>")
    table_rows = [[lane.node, lane.worker, len(lane.trials), f"{100 * lane.busy:.0f}%",
                   timeline.trial_list(lane)] for lane in workers]
    return ("<h2>Trials per worker</h2><p class=\"note\">Where each trial ran (node, worker "
            f"process) over the run's {span:.1f} s; red: failed, grey: pruned.</p>" + svg
            + table(["node", "worker", "trials", "busy", "timeline"], table_rows,
                    text_cols=[0, 4]))


def write_report(db: str | Path, out: str | Path | None = None, *, top: int = 5,
                 diagrams: int = 3, title: str | None = None) -> ReportFiles:
    """Write the HTML report of the experiment stored in ``db``.

    Sections: summary, best-so-far curve of the primary objective, Pareto front (several
    objectives), the ``top`` architectures (the first ``diagrams`` of them drawn), the
    distribution of each metric, the learning curves (when trials reported intermediate values;
    pruned trials drawn apart), the rungs of a multi-fidelity schedule (values at each rung and a
    per-rung table), every trial in a sortable table, and the stored settings.
    ``out`` defaults to ``<db name>.html`` beside the database.
    """
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    exp = load_experiment(db)
    target = _out_path(out, str(Path(db).with_suffix(".html")))
    assets = _Assets(target)
    sections = [_summary(exp)]
    if exp.final_stage is not None:
        sections.append(_verdict_section(exp.final_stage))
    metrics = exp.metric_names()
    ranked = exp.ranked()

    if not exp.trials:
        sections.append('<p class="note">This experiment has no trials yet.</p>')
    path = assets.draw("best_so_far", "best-so-far curve",
                       lambda p: plots.plot_best_so_far(exp.trials, exp.objective, p))
    if path is not None:
        sections.append("<h2>Progress</h2>" + image(
            path, "best-so-far curve",
            f"Each trial's {exp.objective.metric} (grey) and the best value so far (blue), in the "
            "order trials finished."))
    if exp.multi_objective:
        path = assets.draw("pareto_front", "Pareto front",
                           lambda p: plots.plot_pareto(exp.trials, exp.objectives, p))
        if path is not None:
            front = exp.pareto_trials()
            objs = [o.metric for o in exp.objectives]
            rows = [[t.number, *[t.value(m) for m in objs], exp.arch_text(t.arch)] for t in front]
            sections.append(
                "<h2>Pareto front</h2>" + image(
                    path, "Pareto front",
                    "Successful trials in objective space; orange points are not dominated by "
                    "any other trial on all objectives.")
                + f"<p>{len(front)} distinct architecture(s) on the front.</p>"
                + table(["trial", *objs, "architecture"], rows, text_cols=[len(objs) + 1],
                        cell_classes={len(objs) + 1: "arch-cell"}))
    if ranked:
        shown = ranked[:top]
        sections.append(
            f"<h2>Top {len(shown)} architectures by {_e(exp.objective.metric)}</h2>"
            + _arch_cards(exp, shown[:diagrams], assets)
            + (table(["rank", "trial", *metrics, "architecture"],
                     [[i, t.number, *[t.value(m) for m in metrics], exp.arch_text(t.arch)]
                      for i, t in enumerate(shown, 1)],
                     text_cols=[len(metrics) + 2], cell_classes={len(metrics) + 2: "arch-cell"})
               if len(shown) > diagrams else ""))
    varying, constant = _split_constant(exp, metrics)
    if varying:
        path = assets.draw("metrics", "metric distributions",
                           lambda p: plots.plot_distributions(exp.trials, varying, p))
        if path is not None:
            note = "Histograms over the successful trials."
            if constant:
                note += " Same in every trial: " + ", ".join(
                    f"{k} = {fmt(v)}" for k, v in constant.items()) + "."
            sections.append("<h2>Metric distributions</h2>" + image(
                path, "metric distributions", note))
    sections.extend(_curve_sections(exp, assets))
    if exp.trials:
        errors = any(t.error for t in exp.trials)
        scheduled = curves.is_scheduled(exp.trials, exp.config)
        rows, classes = _trial_rows(exp, exp.trials, metrics, errors, scheduled)
        sched = ["fidelity", "rung", "parent", "pruned at"] if scheduled else []
        headers = ["#", "status", *sched, *metrics, "cost s", "time s", "architecture"]
        arch_col = len(headers) - 1
        if errors:
            headers.append("error")
        sections.append(
            f"<h2>All trials ({len(rows)})</h2><p class=\"note\">Click a column header to sort; "
            "the best trial is highlighted.</p>"
            + table(headers, rows, text_cols=[1, arch_col, len(headers) - 1],
                    row_classes=classes, cell_classes={arch_col: "arch-cell"},
                    table_id="trials"))
    workers = timeline.lanes(exp.trials)
    if workers:
        sections.append(_worker_section(workers))
    settings = exp.search_config if exp.search_config is not None else exp.config
    sections.append("<h2>Settings</h2><p class=\"note\">Stored with the experiment"
                    + (f"; resume with <code>nasforge search --resume {_e(exp.path)}</code>"
                       if exp.search_config is not None else "")
                    + f".</p><pre>{_e(json.dumps(settings, indent=2, default=str))}</pre>")
    if assets.skipped:
        sections.append("<h2>Not shown</h2><ul>" + "".join(
            f"<li>{_e(k)}: {_e(v)}</li>" for k, v in assets.skipped.items()) + "</ul>")
    heading = title or f"nasforge report: {exp.path.name}"
    sub = (f"{exp.space_name} space, {exp.strategy or 'unknown'} strategy, "
           f"{exp.evaluator or 'unknown'} evaluator; {len(exp.trials)} trial(s) in {exp.path}")
    _write(target, page(heading, sub, sections))
    log.info("report written to %s (%d image(s))", target, len(assets.images))
    return ReportFiles(target, assets.images, assets.skipped)


# ---------------------------------------------------------------------------------- bench report
def load_bench(path: str | Path) -> dict[str, Any]:
    """Read the JSON ``nasforge bench --json FILE`` wrote, checking its shape."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"benchmark results {str(p)!r} do not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"benchmark results {str(p)!r} are not valid JSON: {exc}") from None
    missing = [k for k in ("protocol", "methods", "runs") if not isinstance(data, dict)
               or k not in data]
    if missing:
        raise ConfigError(f"{str(p)!r} is not the output of `nasforge bench --json`: it lacks "
                          f"{', '.join(map(repr, missing))}")
    return data


def write_bench_report(results: str | Path | Mapping[str, Any], out: str | Path | None = None,
                       *, title: str | None = None) -> ReportFiles:
    """Write the HTML report of a strategy comparison (the JSON of ``nasforge bench``).

    Sections: the protocol, per-strategy statistics (sortable), the test between the two best
    strategies, the anytime curves (when the results include them), the distribution of the
    final results and every run.
    """
    if isinstance(results, Mapping):
        data, source = dict(results), "results"
        default = "bench.html"
    else:
        data, source = load_bench(results), str(results)
        default = str(Path(results).with_suffix(".html"))
    target = _out_path(out, default)
    assets = _Assets(target)
    proto = dict(data.get("protocol") or {})
    sections = ["<h2>Protocol</h2>" + cards([(k, v if v is not None else "-")
                                             for k, v in proto.items()])]
    methods = list(data.get("methods") or [])
    if methods:
        cols = ["rank", "strategy", "runs", "mean", "std", "ci_low", "ci_high", "median", "best",
                "worst", "queries_mean", "cost_mean"]
        rows = [[m.get(c) for c in cols] for m in methods]
        sections.append("<h2>Strategies</h2>" + table(cols, rows, text_cols=[1]))
    test = data.get("test")
    if test:
        sections.append(
            f"<p>{_e(test['a'])} vs {_e(test['b'])}: difference of means "
            f"{_e(fmt(test['mean_diff']))}; Welch's t = {_e(fmt(test['welch_t']))}, "
            f"p = {_e(fmt(test['welch_p']))}; Mann-Whitney U = {_e(fmt(test['mannwhitney_u']))}, "
            f"p = {_e(fmt(test['mannwhitney_p']))} (two-sided).</p>")
    report_metric = proto.get("report", "test_accuracy")
    anytime = data.get("anytime")
    if anytime:
        path = assets.draw("anytime", "anytime curves", lambda p: plots.plot_anytime_dict(
            {**anytime, "metric": f"{report_metric} of the best-by-signal architecture"}, p))
        if path is not None:
            sections.append("<h2>Anytime performance</h2>" + image(
                path, "anytime curves", "Mean over seeds with a 95% band of the mean."))
    else:
        assets.skipped["anytime curves"] = (f"{source} holds no curves (written by an older "
                                            "nasforge bench)")
    runs: Mapping[str, Sequence[Mapping[str, Any]]] = data.get("runs") or {}
    finals = {name: [r.get("final") for r in rs] for name, rs in runs.items()}
    path = assets.draw("finals", "final results", lambda p: plots.plot_final_boxes(
        finals, p, ylabel=f"{report_metric} (%)"))
    if path is not None:
        sections.append("<h2>Final results</h2>" + image(
            path, "final results per strategy",
            f"{report_metric} of each run's best-by-signal architecture."))
    rows = [[name, r.get("seed"), r.get("final"), r.get("signal"), r.get("queries"),
             r.get("cost"), r.get("arch")] for name, rs in runs.items() for r in rs]
    if rows:
        sections.append(f"<h2>All runs ({len(rows)})</h2>" + table(
            ["strategy", "seed", report_metric, "signal", "queries", "cost s", "architecture"],
            rows, text_cols=[0, 6], cell_classes={6: "arch-cell"}))
    if assets.skipped:
        sections.append("<h2>Not shown</h2><ul>" + "".join(
            f"<li>{_e(k)}: {_e(v)}</li>" for k, v in assets.skipped.items()) + "</ul>")
    heading = title or "nasforge benchmark report"
    sub = (f"{proto.get('benchmark', '?')} {proto.get('dataset', '')}: "
           f"{', '.join(runs)}; from {source}")
    _write(target, page(heading, sub, sections))
    return ReportFiles(target, assets.images, assets.skipped)


__all__ = ["ReportFiles", "cards", "fmt", "image", "load_bench", "page", "table",
           "write_bench_report", "write_report"]
