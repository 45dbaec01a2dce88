import pytest

from structs import CycleError, Graph


def test_bfs_dfs():
    g = Graph.from_edges([("a", "b"), ("a", "c"), ("b", "d")])
    assert g.bfs("a") == ["a", "b", "c", "d"]
    assert g.dfs("a") == ["a", "b", "d", "c"]


def test_topological_sort():
    g = Graph.from_edges([("shirt", "tie"), ("tie", "jacket"), ("trousers", "shoes")])
    order = g.topological_sort()
    assert order.index("shirt") < order.index("tie") < order.index("jacket")


def test_topological_sort_cycle_raises():
    g = Graph.from_edges([("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")])
    with pytest.raises(CycleError) as info:
        g.topological_sort()
    assert set(info.value.cycle) == {"a", "b", "c"}


def test_shortest_path():
    g = Graph.from_edges([("a", "b", 1), ("b", "c", 1), ("a", "c", 5)])
    assert g.shortest_path("a", "c") == (2, ["a", "b", "c"])


def test_shortest_path_undirected():
    g = Graph.from_edges([("x", "y", 2), ("y", "z", 2)], directed=False)
    assert g.shortest_path("z", "x") == (4, ["z", "y", "x"])


def test_components_include_isolated_nodes():
    g = Graph.from_edges([("a", "b"), ("c", "d")], directed=False)
    g.add_node("lonely")
    assert g.connected_components() == [["a", "b"], ["c", "d"], ["lonely"]]


def test_components_directed_edges_count_both_ways():
    g = Graph.from_edges([("a", "b"), ("c", "b")])
    assert g.connected_components() == [["a", "b", "c"]]


def test_reversed():
    g = Graph.from_edges([("a", "b", 3)])
    assert g.reversed().edges() == [("b", "a", 3)]
