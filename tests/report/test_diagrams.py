"""Architecture diagrams: graphs of every space, readable layouts, PNG/SVG files, CLI."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.errors import ConfigError, UnknownNameError
from nasforge.report.diagrams import (
    ArchGraph,
    arch_graph,
    draw,
    draw_graph,
    geometry,
    label_half_size,
    layout_dag,
)
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.spaces.darts import parse

NB201_TEXT = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
              "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_darts_cells_draw_as_png_and_svg(tmp_path: Path) -> None:
    space = nasforge.create_space("darts")
    arch = space.from_string("DARTS_V2")
    files = draw(space, arch, tmp_path / "v2_normal")
    assert [f.suffix for f in files] == [".png", ".svg"]
    assert files[0].read_bytes().startswith(PNG_MAGIC)
    svg = files[1].read_text()
    assert "<svg" in svg and "sep_conv_3x3" in svg and "dil_conv_3x3" in svg
    reduce_svg = draw(space, arch, tmp_path / "reduce.svg", part="reduce")[0].read_text()
    assert "Reduction cell" in reduce_svg and "max_pool_3x3" in reduce_svg
    assert "dil_conv_3x3" not in reduce_svg


def test_nb201_cells_are_drawn_without_none_edges(tmp_path: Path) -> None:
    space = nasforge.create_space("nb201")
    arch = space.from_string("|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|")
    graph = arch_graph(space, arch)
    assert [(e.src, e.dst, e.label) for e in graph.edges] == [
        ("0", "2", "nor_conv_3x3"), ("0", "3", "skip_connect")]
    assert [n.id for n in graph.nodes] == ["0", "1", "2", "3"]
    assert draw(space, space.from_string(NB201_TEXT), tmp_path / "nb201.png")[0].stat().st_size


def test_whole_networks_draw_as_chains(tmp_path: Path) -> None:
    for name in ("macro", "elastic"):
        space = nasforge.create_space(name)
        graph = arch_graph(space, space.sample(0))
        assert graph.layout == "chain"
        out = draw(space, space.sample(0), tmp_path / f"{name}.png")[0]
        assert out.read_bytes().startswith(PNG_MAGIC)


def test_files_are_reproducible(tmp_path: Path) -> None:
    space = nasforge.create_space("darts")
    arch = space.sample(5)
    a = draw(space, arch, tmp_path / "a")
    b = draw(space, arch, tmp_path / "b")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()


def test_dag_layout_flows_left_to_right() -> None:
    space = nasforge.create_space("darts")
    graph = arch_graph(space, space.from_string("DARTS_V1"))
    pos = layout_dag(graph)
    assert {pos["0"][0], pos["1"][0]} == {0.0}
    assert pos["out"][0] == max(x for x, _ in pos.values())
    assert all(pos[e.src][0] < pos[e.dst][0] for e in graph.edges)


def _boxes_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
                   ) -> bool:
    return abs(a[0] - b[0]) < a[2] + b[2] and abs(a[1] - b[1]) < a[3] + b[3]


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"])
@pytest.mark.parametrize("part", ["normal", "reduce"])
def test_labels_of_published_cells_do_not_overlap(name: str, part: str) -> None:
    space, arch = parse(name)
    graph = arch_graph(space, arch, part)
    pos, box_w, shapes = geometry(graph)
    labels = [(s.label_at[0], s.label_at[1], *label_half_size(s.edge.label))
              for s in shapes if s.label_at is not None]
    assert len(labels) == sum(1 for e in graph.edges if e.label)
    nodes = [(pos[n.id][0], pos[n.id][1], box_w[n.id] / 2, 0.275) for n in graph.nodes]
    for a, b in itertools.combinations(labels, 2):
        assert not _boxes_overlap(a, b), (a, b)
    for label, node in itertools.product(labels, nodes):
        assert not _boxes_overlap(label, node), (label, node)


def test_graph_dicts_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown nodes: a->b"):
        ArchGraph.from_dict({"nodes": [{"id": "a"}], "edges": [{"src": "a", "dst": "b"}]})
    with pytest.raises(ConfigError, match="nodes"):
        ArchGraph.from_dict({"edges": []})
    with pytest.raises(UnknownNameError, match="graph layout"):
        ArchGraph.from_dict({"nodes": [], "edges": [], "layout": "radial"})
    cyclic = ArchGraph.from_dict({"nodes": [{"id": "a"}, {"id": "b"}],
                                  "edges": [{"src": "a", "dst": "b"}, {"src": "b", "dst": "a"}]})
    with pytest.raises(ConfigError, match="cycle"):
        layout_dag(cyclic)


def test_unknown_formats_and_undrawable_spaces(tmp_path: Path) -> None:
    space = nasforge.create_space("darts")
    with pytest.raises(UnknownNameError, match="picture format 'jpg'"):
        draw(space, space.sample(0), tmp_path / "x.jpg")

    class Plain(SearchSpace):
        name = "plain"

        def _declare(self) -> Sequence[Choice]:
            return [Choice("a", (1, 2))]

        def build(self, arch: Architecture, **kwargs: Any) -> Any:
            raise NotImplementedError

    plain = Plain()
    with pytest.raises(ConfigError, match="no graph"):
        draw(plain, plain.sample(0), tmp_path / "p.png")


def test_custom_graph_files(tmp_path: Path) -> None:
    graph = ArchGraph.from_dict({
        "title": "tiny", "nodes": [{"id": "x", "kind": "input"}, {"id": "y", "kind": "output"}],
        "edges": [{"src": "x", "dst": "y", "label": "conv"}]})
    out = draw_graph(graph, tmp_path / "tiny.svg", formats=["svg", "png"])
    assert [p.name for p in out] == ["tiny.svg", "tiny.png"]
    assert all(p.is_file() for p in out)


def test_cli_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "cell.png"
    assert main(["spaces", "draw", "darts", "DARTS_V2", "--part", "reduce", "-o",
                 str(target)]) == 0
    assert target.read_bytes().startswith(PNG_MAGIC)
    assert main(["spaces", "draw", "nb201", "sample:3", "-o", str(tmp_path / "n.svg"),
                 "--json"]) == 0
    assert "n.svg" in capsys.readouterr().out
    assert main(["spaces", "draw", "darts", "DARTS_V2"]) == 2
    assert "needs -o FILE" in capsys.readouterr().err


def _deep_macro() -> tuple[Any, Architecture]:
    from nasforge.spaces.macro import layer_filters, layer_op, layer_skip

    space = nasforge.create_space("macro")
    values: dict[str, Any] = {"num_layers": 18}
    for j in range(18):
        values[layer_op(j)], values[layer_filters(j)] = "nor_conv_3x3", 32
    # Many skips: nested, overlapping, and several sharing end nodes.
    skips = [(0, 2), (0, 9), (1, 4), (2, 11), (2, 14), (3, 5), (3, 9), (5, 7), (6, 11), (8, 13),
             (8, 15), (10, 13), (10, 16), (11, 14), (13, 15), (13, 17), (0, 17)]
    values.update({layer_skip(j, i): True for i, j in skips})
    return space, space.complete(values)


def test_deep_macro_skips_are_routed_on_separate_lanes(tmp_path: Path) -> None:
    space, arch = _deep_macro()
    graph = arch_graph(space, arch)
    pos, box_w, shapes = geometry(graph)
    routed = [sh for sh in shapes if sh.edge.kind == "skip"]
    assert len(routed) == 17 and all(sh.route is not None and len(sh.route) == 4 for sh in routed)
    column_x = pos["L0"][0]
    by_lane: dict[int, list[tuple[float, float]]] = {}
    for sh in routed:
        assert sh.route is not None and sh.lane is not None
        start, out, down, end = sh.route
        # Out of the source's side to the lane, along it, back into the later layer's side.
        assert start[1] == out[1] and out[0] == down[0] and down[1] == end[1] and end[0] == start[0]
        side = 1 if sh.lane % 2 == 0 else -1  # even lanes right of the column, odd lanes left
        assert (out[0] - column_x) * side > box_w["L0"] / 2
        assert abs(start[1] - pos[sh.edge.src][1]) < 0.3 and abs(end[1] - pos[sh.edge.dst][1]) < 0.3
        by_lane.setdefault(sh.lane, []).append(tuple(sorted((start[1], end[1]))))  # type: ignore[arg-type]
    for spans in by_lane.values():  # skips sharing a lane never share any stretch, nor an end node
        for (a_lo, a_hi), (b_lo, b_hi) in itertools.combinations(spans, 2):
            assert a_hi < b_lo or b_hi < a_lo
    ends = [p for sh in routed for p in (sh.route[0], sh.route[-1])]  # type: ignore[index]
    assert len(set(ends)) == len(ends), "two skips end at the same point"
    # Shorter skips sit on inner lanes: the longest skip is on the outermost lane of its side.
    longest = max(routed, key=lambda sh: abs(sh.start[1] - sh.end[1]))
    assert longest.lane == max(sh.lane for sh in routed if sh.lane % 2 == longest.lane % 2)  # type: ignore[operator]
    svg = draw(space, arch, tmp_path / "deep.svg")[0].read_text()
    for sh in routed:  # each skip is its own group: the routed line and a filled arrowhead
        group = svg.split(f'<g id="skip-{sh.edge.src}-{sh.edge.dst}">')[1].split("</g>")[0]
        assert group.count("<path") == 2 and "fill: none" in group.split("<path")[1]
        assert f"stroke: {sh.color}" in group
    assert len({sh.color for sh in routed}) > 5  # lanes are told apart by colour too
