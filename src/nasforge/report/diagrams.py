"""Architecture diagrams with matplotlib (no graphviz): DARTS cells, NAS-Bench-201 cells, macro
and elastic networks, saved as PNG and/or SVG.

Every space describes how it is drawn: :meth:`SearchSpace.graph(arch, part=None)
<nasforge.space.base.SearchSpace.graph>` returns a plain dict (None for a space that cannot be
drawn), and :attr:`~nasforge.space.base.SearchSpace.graph_parts` lists the parts drawn
separately::

    {"title": "Normal cell", "layout": "dag" | "chain",
     "nodes": [{"id": "0", "label": "c_{k-2}", "kind": "input" | "node" | "output"}, ...],
     "edges": [{"src": "0", "dst": "2", "label": "sep_conv_3x3", "kind": "" | "skip"}, ...]}

This module knows no space by name. :func:`draw` turns that dict into a picture: ``dag`` graphs
are laid out in layers left to right (longest path from the inputs, crossings reduced by
barycentre ordering); edges that jump over a layer bend around the nodes in between, and edge
labels are moved along their edges until they do not overlap. ``chain`` graphs
(whole networks) are a top-down column with skip connections routed on lanes beside it (see
:func:`_skip_routes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasforge.errors import ConfigError, unknown
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace

FORMATS: tuple[str, ...] = ("png", "svg")
LAYOUTS: tuple[str, ...] = ("dag", "chain")
_NODE_COLORS = {"input": "#cfe2f3", "node": "#fff2cc", "output": "#d9ead3"}
# Colour-blind-friendly palette (Okabe & Ito) for edge operations.
Point = tuple[float, float]
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
            "#999999", "#F0E442")


@dataclass(frozen=True)
class GraphNode:
    """A node of an architecture graph."""

    id: str
    label: str
    kind: str = "node"


@dataclass(frozen=True)
class GraphEdge:
    """A directed, optionally labelled edge; ``kind="skip"`` marks skip connections."""

    src: str
    dst: str
    label: str = ""
    kind: str = ""


@dataclass
class ArchGraph:
    """Nodes and labelled edges of one drawable architecture (or one cell)."""

    title: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    layout: str = "dag"
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchGraph:
        """Read a space's ``graph()`` dict, checking that edges name known nodes."""
        try:
            nodes = [GraphNode(str(n["id"]), str(n.get("label", n["id"])),
                               str(n.get("kind", "node"))) for n in data["nodes"]]
            edges = [GraphEdge(str(e["src"]), str(e["dst"]), str(e.get("label", "")),
                               str(e.get("kind", ""))) for e in data["edges"]]
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"a graph needs 'nodes' with ids and 'edges' with src/dst ({exc})"
            ) from None
        ids = {n.id for n in nodes}
        bad = [f"{e.src}->{e.dst}" for e in edges if e.src not in ids or e.dst not in ids]
        if bad:
            raise ConfigError(f"graph edges name unknown nodes: {', '.join(bad)}")
        layout = str(data.get("layout", "dag"))
        if layout not in LAYOUTS:
            raise unknown("graph layout", layout, LAYOUTS)
        return cls(str(data.get("title", "")), nodes, edges, layout)


# ---------------------------------------------------------------------------- graphs of spaces
def arch_graph(space: SearchSpace, arch: Architecture, part: str | None = None) -> ArchGraph:
    """The drawable graph of ``arch`` (or of its ``part``), from the space's ``graph()`` hook."""
    space.validate(arch)
    data = space.graph(arch, part=part)
    if data is None:
        raise ConfigError(f"space {space.name!r} cannot be drawn: it has no graph "
                          "(its graph(arch) method returns None)")
    return ArchGraph.from_dict(data)


# ---------------------------------------------------------------------------- layouts
def _layers(graph: ArchGraph) -> dict[str, int]:
    """Longest-path layer of every node (sources in layer 0)."""
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    layer: dict[str, int] = {}

    def visit(node: str, stack: frozenset[str]) -> int:
        if node in layer:
            return layer[node]
        if node in stack:
            raise ConfigError(f"graph has a cycle through node {node!r}")
        layer[node] = 1 + max((visit(p, stack | {node}) for p in preds[node]), default=-1)
        return layer[node]

    for n in graph.nodes:
        visit(n.id, frozenset())
    # Outputs go to the last layer, so the picture always ends with them.
    last = max(layer.values(), default=0)
    for n in graph.nodes:
        if n.kind == "output":
            layer[n.id] = max(last, layer[n.id])
    return layer


def layout_dag(graph: ArchGraph, dx: float = 4.4, dy: float = 2.0) -> dict[str, Point]:
    """Layered left-to-right positions; node order in each layer by barycentre of neighbours."""
    layer = _layers(graph)
    count = max(layer.values(), default=0) + 1
    columns = [[n.id for n in graph.nodes if layer[n.id] == k] for k in range(count)]
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    succs: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)

    tallest = max((len(c) for c in columns), default=1)

    def rank(col: list[str]) -> dict[str, float]:
        # Spread every column over the tallest one's height: fewer steep, crowded edges.
        if len(col) == 1:
            return {col[0]: 0.0}
        step = (tallest - 1) / (len(col) - 1)
        return {v: i * step - (tallest - 1) / 2 for i, v in enumerate(col)}

    pos_rank: dict[str, float] = {}
    for col in columns:
        pos_rank.update(rank(col))
    # A few down/up sweeps of the barycentre heuristic (Sugiyama et al., 1981).
    for sweep in range(4):
        order = range(1, count) if sweep % 2 == 0 else range(count - 2, -1, -1)
        for k in order:
            neigh = preds if sweep % 2 == 0 else succs
            col = columns[k]
            bary = {
                v: (sum(pos_rank[u] for u in neigh[v]) / len(neigh[v]) if neigh[v] else pos_rank[v])
                for v in col
            }
            before = {v: i for i, v in enumerate(col)}
            col.sort(key=lambda v: (bary[v], before[v]))
            pos_rank.update(rank(col))
    return {v: (k * dx, -pos_rank[v] * dy) for k, col in enumerate(columns) for v in col}


def layout_chain(graph: ArchGraph, dy: float = 1.0) -> dict[str, Point]:
    """A top-down column in the order the nodes are listed."""
    return {n.id: (0.0, -i * dy) for i, n in enumerate(graph.nodes)}


# ---------------------------------------------------------------------------- drawing
def _colors(graph: ArchGraph) -> dict[str, str]:
    ops = sorted({e.label for e in graph.edges if e.label})
    return {op: _PALETTE[i % len(_PALETTE)] for i, op in enumerate(ops)}


def _point_segment_distance(p: tuple[float, float], a: tuple[float, float],
                            b: tuple[float, float]) -> float:
    ax, ay = a
    bx, by = b
    px, py = p
    vx, vy = bx - ax, by - ay
    length2 = vx * vx + vy * vy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * vx + (py - ay) * vy) / length2))
    return math.hypot(px - (ax + t * vx), py - (ay + t * vy))


def _control(a: Point, b: Point, rad: float) -> Point:
    """Control point of matplotlib's ``arc3`` curve from ``a`` to ``b`` (equal-aspect axes)."""
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    return mx + rad * (b[1] - a[1]), my - rad * (b[0] - a[0])


def _bezier(a: Point, b: Point, rad: float, t: float) -> Point:
    """Point at ``t`` of the ``arc3`` curve from ``a`` to ``b`` (a quadratic Bezier)."""
    cx, cy = _control(a, b, rad)
    u = 1 - t
    return (u * u * a[0] + 2 * u * t * cx + t * t * b[0],
            u * u * a[1] + 2 * u * t * cy + t * t * b[1])


def _sub_curve(a: Point, b: Point, rad: float, t0: float, t1: float) -> tuple[Point, Point, Point]:
    """Start, control and end point of the part ``[t0, t1]`` of the curve (blossoming)."""
    c = _control(a, b, rad)
    w0, w1, w2 = (1 - t0) * (1 - t1), (1 - t0) * t1 + t0 * (1 - t1), t0 * t1
    mid = (w0 * a[0] + w1 * c[0] + w2 * b[0], w0 * a[1] + w1 * c[1] + w2 * b[1])
    return _bezier(a, b, rad, t0), mid, _bezier(a, b, rad, t1)


def _leave_box(a: Point, b: Point, rad: float, centre: Point, half: Point, entering: bool) -> float:
    """The ``t`` where the curve crosses the box around ``centre`` (bisection)."""

    def inside(t: float) -> bool:
        x, y = _bezier(a, b, rad, t)
        return abs(x - centre[0]) <= half[0] and abs(y - centre[1]) <= half[1]

    end = 1.0 if entering else 0.0
    if not inside(end):  # the curve does not end in this box: nothing to trim
        return end
    lo, hi = (0.5, 1.0) if entering else (0.0, 0.5)
    for _ in range(30):
        mid = (lo + hi) / 2
        if inside(mid) == entering:
            hi = mid
        else:
            lo = mid
    return lo if entering else hi


@dataclass
class EdgeShape:
    """How one edge is drawn: its end points, curvature (``arc3`` rad), colour, label centre."""

    edge: GraphEdge
    start: tuple[float, float]
    end: tuple[float, float]
    rad: float
    color: str
    label_at: tuple[float, float] | None = None
    #: A skip connection of a chain: the corners of its routed path (start, out to its lane,
    #: along the lane, back in to the end), drawn as straight segments; None for curves.
    route: list[tuple[float, float]] | None = None
    #: The lane of a routed skip: 0, 1, ... from the column outwards; even lanes right, odd left.
    lane: int | None = None


_FONT = 10.0
_CHAR_W = 0.125  # data units per character of a label at _FONT - 1 points and _SCALE
_SCALE = 0.62  # inches per data unit
_BOX_H = 0.55


def label_half_size(text: str) -> tuple[float, float]:
    """Half width and half height (data units) of the box an edge label occupies."""
    return _CHAR_W * len(text) / 2 + 0.1, 0.24


_RADS = (0.3, -0.3, 0.45, -0.45, 0.6, -0.6, 0.75, -0.75)


@dataclass(frozen=True)
class _Bent:
    """A bent edge: its curvature, x-range, length and end nodes."""

    rad: float
    lo: float
    hi: float
    length: float
    ends: frozenset[str]


def _bend_score(cand: float, a: Point, b: Point, others: Sequence[Point], here: _Bent,
                bent: Sequence[_Bent]) -> float:
    """How good curvature ``cand`` is: clearance from other nodes, minus crossing penalties."""
    clear = min((math.dist(_bezier(a, b, cand, t / 10), o) for o in others for t in range(1, 10)),
                default=9.0)
    penalty = 0.0
    for other in bent:
        if (other.rad > 0) != (cand > 0):
            continue
        if other.lo < here.lo < other.hi < here.hi or here.lo < other.lo < here.hi < other.hi:
            penalty += 1.0  # the two arcs would cross
        elif other.ends & here.ends and abs(cand) < abs(other.rad) + 0.1:
            penalty += 0.5  # a shared endpoint: the longer arc (bent later) must curve more
    return min(clear, 1.2) - penalty - 0.05 * abs(cand)


def _bends(graph: ArchGraph, pos: Mapping[str, Point]) -> dict[int, float]:
    """Curvature (matplotlib ``arc3`` rad) of every edge that must not be a straight line.

    Edges that would run through other nodes bend around them. Shorter edges are bent first, so
    longer arcs that share an endpoint on the same side curve more and stay outside them; arcs on
    one side whose spans partly overlap would cross, so the other side is preferred. Parallel
    edges (same two nodes, e.g. a NASNet node reading one input twice) fan out around that.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for k, e in enumerate(graph.edges):
        if not (graph.layout == "chain" and e.kind == "skip"):
            groups.setdefault((e.src, e.dst), []).append(k)
    todo = []
    for (src, dst), members in groups.items():
        a, b = pos[src], pos[dst]
        others = [pos[n.id] for n in graph.nodes if n.id not in (src, dst)]
        if any(_point_segment_distance(o, a, b) < _BOX_H * 1.2 for o in others):
            todo.append((math.dist(a, b), members[0], others))
    base: dict[int, float] = {}
    bent: list[_Bent] = []
    for length, k, others in sorted(todo, key=lambda item: (item[0], item[1])):
        e = graph.edges[k]
        a, b = pos[e.src], pos[e.dst]
        here = _Bent(0.0, min(a[0], b[0]), max(a[0], b[0]), length, frozenset((e.src, e.dst)))
        rad = max(_RADS, key=lambda cand: _bend_score(cand, a, b, others, here, bent))
        base[k] = rad
        bent.append(_Bent(rad, here.lo, here.hi, length, here.ends))
    rads: dict[int, float] = {}
    for members in groups.values():
        centre = base.get(members[0], 0.0)
        for i, k in enumerate(members):
            rads[k] = centre + 0.3 * (i - (len(members) - 1) / 2)
    return rads


_SKIP_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                "#e377c2", "#bcbd22", "#7f7f7f")
_LANE_GAP = 0.32  # data units between neighbouring lanes
_PORT_SPAN = 0.8  # of the box height over which a side's skip ends are spread


def _skip_routes(graph: ArchGraph, pos: Mapping[str, Point], box_w: Mapping[str, float]
                 ) -> dict[int, EdgeShape]:
    """Orthogonal routes of a chain's skip connections, so that deep networks stay readable.

    Skips are stacked by span: shorter ones first, each on the innermost lane where it overlaps
    no skip already there, not even at an end node (interval colouring, so two skips on one lane
    never share a stretch of the column or look like one skip that branches). Lanes alternate
    between the right (even) and the left (odd) side of the column, and the ends of the skips
    that meet one node on one side get separate ports spread over the box's height, so no two
    arrows share an end point. Each lane has its own colour.
    """
    skips = [k for k, e in enumerate(graph.edges) if e.kind == "skip"]
    order = sorted(skips, key=lambda k: (abs(pos[graph.edges[k].src][1] - pos[graph.edges[k].dst][1]), k))
    lanes: list[list[tuple[float, float]]] = []
    lane_of: dict[int, int] = {}
    for k in order:
        e = graph.edges[k]
        lo, hi = sorted((pos[e.src][1], pos[e.dst][1]))
        lane = next((i for i, taken in enumerate(lanes)
                     if all(hi < t_lo or lo > t_hi for t_lo, t_hi in taken)), len(lanes))
        if lane == len(lanes):
            lanes.append([])
        lanes[lane].append((lo, hi))
        lane_of[k] = lane
    # Ports: on each node and side, the skip ends ordered by lane (inner lanes nearer the top).
    ends: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for k in skips:
        e, side = graph.edges[k], lane_of[k] % 2
        ends.setdefault((e.src, side), []).append((lane_of[k], k))
        ends.setdefault((e.dst, side), []).append((lane_of[k], k))
    port: dict[tuple[str, int], float] = {}
    for (node, side), items in ends.items():
        items.sort()
        for i, (_, k) in enumerate(items):
            frac = 0.0 if len(items) == 1 else i / (len(items) - 1) - 0.5
            port[(node, k)] = pos[node][1] - frac * _PORT_SPAN * _BOX_H * (1 if side == 0 else -1)
    half = max(box_w.values(), default=1.0) / 2
    out: dict[int, EdgeShape] = {}
    for k in skips:
        e, lane = graph.edges[k], lane_of[k]
        sign = 1.0 if lane % 2 == 0 else -1.0
        edge_x = pos[e.src][0] + sign * half
        lane_x = pos[e.src][0] + sign * (half + _LANE_GAP * (lane // 2 + 1))
        y0, y1 = port[(e.src, k)], port[(e.dst, k)]
        route = [(edge_x, y0), (lane_x, y0), (lane_x, y1), (edge_x, y1)]
        out[k] = EdgeShape(e, route[0], route[-1], 0.0, _SKIP_COLORS[lane % len(_SKIP_COLORS)],
                           route=route, lane=lane)
    return out


def geometry(graph: ArchGraph) -> tuple[dict[str, Point], dict[str, float], list[EdgeShape]]:
    """Node positions and widths, and each edge's curvature and label position."""
    chain = graph.layout == "chain"
    pos = graph.positions or (layout_dag(graph) if not chain else layout_chain(graph))
    box_w = {n.id: max(0.9, _CHAR_W * len(n.label) + 0.5) for n in graph.nodes}
    if chain:
        box_w = dict.fromkeys(box_w, max(box_w.values(), default=1.0))
    colors = _colors(graph)
    # Obstacles for labels: node boxes first, then labels as they are placed.
    placed = [(pos[n.id][0], pos[n.id][1], box_w[n.id] / 2 + 0.1, _BOX_H / 2 + 0.1)
              for n in graph.nodes]

    def overlap(cx: float, cy: float, hw: float, hh: float) -> float:
        return sum(max(0.0, min(cx + hw, px + pw) - max(cx - hw, px - pw))
                   * max(0.0, min(cy + hh, py + ph) - max(cy - hh, py - ph))
                   for px, py, pw, ph in placed)

    rads = _bends(graph, pos)
    routes = _skip_routes(graph, pos, box_w) if chain else {}
    shapes: list[EdgeShape] = []
    for k, e in enumerate(graph.edges):
        a, b = pos[e.src], pos[e.dst]
        if chain and e.kind == "skip":
            shapes.append(routes[k])
            continue
        rad = rads.get(k, 0.0)
        shape = EdgeShape(e, a, b, rad, colors.get(e.label, "#555555"))
        if e.label:
            # The first spot along the edge where the label covers the least of nodes and labels.
            hw, hh = label_half_size(e.label)
            spots = (0.5, 0.62, 0.38, 0.72, 0.28, 0.8, 0.2)
            best = min(
                (overlap(*_bezier(a, b, rad, t), hw, hh), i, _bezier(a, b, rad, t))
                for i, t in enumerate(spots)
            )
            shape.label_at = best[2]
            placed.append((best[2][0], best[2][1], hw, hh))
        shapes.append(shape)
    return pos, box_w, shapes


def render(graph: ArchGraph) -> Any:
    """A matplotlib Figure of ``graph`` (not attached to pyplot, so nothing leaks between calls)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    pos, box_w, shapes = geometry(graph)
    # Bounds: node boxes, sampled points of every curve, and label boxes.
    xs: list[float] = []
    ys: list[float] = []
    for n in graph.nodes:
        cx, cy = pos[n.id]
        xs += [cx - box_w[n.id] / 2, cx + box_w[n.id] / 2]
        ys += [cy - _BOX_H / 2, cy + _BOX_H / 2]
    for sh in shapes:
        points = sh.route or [_bezier(sh.start, sh.end, sh.rad, k / 10) for k in range(11)]
        xs += [p[0] for p in points]
        ys += [p[1] for p in points]
        if sh.label_at is not None:
            hw, hh = label_half_size(sh.edge.label)
            xs += [sh.label_at[0] - hw, sh.label_at[0] + hw]
            ys += [sh.label_at[1] - hh, sh.label_at[1] + hh]
    x0, x1 = min(xs) - 0.4, max(xs) + 0.4
    y0, y1 = min(ys) - 0.4, max(ys) + (1.2 if graph.title else 0.4)
    fig = Figure(figsize=((x1 - x0) * _SCALE, (y1 - y0) * _SCALE))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    if graph.title:
        ax.text((x0 + x1) / 2, y1 - 0.55, graph.title, ha="center", va="center",
                fontsize=_FONT + 2, fontweight="bold")
    for n in graph.nodes:
        cx, cy = pos[n.id]
        w = box_w[n.id]
        ax.add_patch(FancyBboxPatch(
            (cx - w / 2, cy - _BOX_H / 2), w, _BOX_H, boxstyle="round,pad=0.08,rounding_size=0.2",
            facecolor=_NODE_COLORS.get(n.kind, "#eeeeee"), edgecolor="#333333", linewidth=1.2,
            zorder=3,
        ))
        ax.text(cx, cy, n.label, ha="center", va="center", fontsize=_FONT, zorder=4)
    for sh in shapes:
        if sh.route is not None:
            # A routed skip: straight segments, an arrowhead into the later layer's box side.
            codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(sh.route) - 1)
            ax.add_patch(FancyArrowPatch(
                path=MplPath(sh.route, codes), arrowstyle="-|>,head_length=0.6,head_width=0.3",
                mutation_scale=14, color=sh.color,
                linewidth=1.1, alpha=0.9, zorder=2, joinstyle="miter", gid=f"skip-{sh.edge.src}-{sh.edge.dst}",
            ))
            continue
        skip = sh.edge.kind == "skip" and graph.layout == "chain"
        t0, t1 = 0.0, 1.0
        if not skip:
            # Start and end the arrow on the node boxes' borders, so the heads stay visible.
            pad = 0.12
            t0 = _leave_box(sh.start, sh.end, sh.rad, pos[sh.edge.src],
                            (box_w[sh.edge.src] / 2 + pad, _BOX_H / 2 + pad), entering=False)
            t1 = _leave_box(sh.start, sh.end, sh.rad, pos[sh.edge.dst],
                            (box_w[sh.edge.dst] / 2 + pad, _BOX_H / 2 + pad), entering=True)
        p0, c, p1 = _sub_curve(sh.start, sh.end, sh.rad, t0, t1)
        path = MplPath([p0, c, p1], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
        ax.add_patch(FancyArrowPatch(
            path=path, arrowstyle="-|>", mutation_scale=9 if skip else 14, color=sh.color,
            linewidth=0.8 if skip else 1.6, alpha=0.6 if skip else 1.0, zorder=1 if skip else 2,
        ))
        if sh.label_at is not None:
            ax.text(sh.label_at[0], sh.label_at[1], sh.edge.label, ha="center", va="center",
                    fontsize=_FONT - 1, color=sh.color, zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.9})
    return fig


def _targets(path: str | Path, formats: Sequence[str] | None) -> list[Path]:
    p = Path(path)
    suffix = p.suffix.lower().lstrip(".")
    if formats is None:
        formats = [suffix] if suffix else list(FORMATS)
    out = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise unknown("picture format", fmt, FORMATS)
        out.append(p.with_suffix("." + fmt) if suffix != fmt else p)
    return out


def draw_graph(graph: ArchGraph, path: str | Path, formats: Sequence[str] | None = None,
               dpi: int = 120) -> list[Path]:
    """Save ``graph`` as a picture; returns the files written.

    The format comes from the file suffix (``.png``/``.svg``); without a suffix, or with
    ``formats``, one file per format is written beside ``path``.
    """
    targets = _targets(path, formats)
    fig = render(graph)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Fixed metadata so the same graph gives the same file (docs images stay diff-free).
        if target.suffix == ".svg":
            import matplotlib

            # Text stays text (searchable, small); a fixed salt keeps element ids stable.
            with matplotlib.rc_context({"svg.hashsalt": "nasforge", "svg.fonttype": "none"}):
                fig.savefig(target, format="svg", metadata={"Date": None})
        else:
            fig.savefig(target, format="png", dpi=dpi, metadata={"Software": None})
    return targets


def draw(space: SearchSpace, arch: Architecture, path: str | Path, part: str | None = None,
         formats: Sequence[str] | None = None, dpi: int = 120) -> list[Path]:
    """Draw ``arch`` of ``space`` to ``path`` (``part``: e.g. ``"reduce"`` for a DARTS cell)."""
    return draw_graph(arch_graph(space, arch, part), path, formats, dpi)


__all__ = [
    "FORMATS",
    "ArchGraph",
    "EdgeShape",
    "GraphEdge",
    "GraphNode",
    "arch_graph",
    "draw",
    "draw_graph",
    "geometry",
    "label_half_size",
    "layout_chain",
    "layout_dag",
    "render",
]
