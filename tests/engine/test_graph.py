"""The graph model: edits, events, refusals, and the JSON round trip."""
import json

import pytest

from engine.graph import FORMAT_VERSION, FormatError, Graph, GraphError, build
from engine.templates import load_template


def test_json_round_trip_keeps_ids_names_params_positions_and_wires():
    graph = load_template("residual_cnn")
    graph.rename(graph.find("stem").id, "Stem conv")
    again = Graph.from_json(graph.to_json())
    assert again.to_dict() == graph.to_dict()
    assert again.find("Stem conv").id == graph.find("Stem conv").id
    assert {(e.src, e.dst, e.port) for e in again.edges()} == {(e.src, e.dst, e.port) for e in graph.edges()}
    new_id = again.add_node("Linear")
    assert new_id not in graph.node_ids()  # fresh ids never reuse a loaded one


def test_saved_file_names_its_format_version():
    """Format 1 without modules (older Deepwire opens it), 2 with them (older Deepwire refuses it
    and asks for an update, rather than dropping the modules on the next save)."""
    data = json.loads(Graph("m").to_json())
    assert data["format_version"] == 1
    graph = Graph("m")
    graph.add_module("Block", Graph("Block"))
    assert json.loads(graph.to_json())["format_version"] == FORMAT_VERSION == 2


def test_newer_format_asks_to_update_and_older_is_refused_clearly():
    data = Graph("m").to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(FormatError, match="newer Deepwire"):
        Graph.from_dict(data)
    data["format_version"] = 0
    with pytest.raises(FormatError, match="older"):
        Graph.from_dict(data)


def test_names_are_unique_and_default_from_the_block():
    g = Graph()
    a, b = g.add_node("Linear"), g.add_node("Linear")
    assert g.node(a).name == "dense_1" and g.node(b).name == "dense_2"
    assert g.rename(b, "dense_1") == "dense_2"  # taken: it keeps a unique variant
    assert g.rename(a, "first") == "first" and g.rename(b, "first") == "first_1"
    assert g.rename(b, "  my\n layer ") == "my layer"
    with pytest.raises(GraphError):
        g.rename(a, "   ")


def test_connect_refuses_cycles_self_loops_and_taken_ports():
    g = build("m", [("a", "Input", {"shape": [4]}), ("b", "Linear", {}), ("c", "Linear", {})])
    a, b, c = (g.find(n).id for n in "abc")
    with pytest.raises(GraphError, match="cycle"):
        g.connect(c, b, 1)
    with pytest.raises(GraphError, match="cycle"):
        g.connect(b, b, 1)
    with pytest.raises(GraphError, match="already connected"):
        g.connect(a, c, 0)
    with pytest.raises(GraphError):
        g.add_node("NoSuchBlock")


def test_remove_node_drops_its_wires_and_events_describe_every_change():
    g = build("m", [("a", "Input", {"shape": [4]}), ("b", "Linear", {}), ("c", "Output", {})])
    events = []
    g.subscribe(lambda name, payload: events.append(name))
    b = g.find("b").id
    g.set_params(b, {"units": 3})
    g.move(b, (10, 20))
    g.remove_node(b)
    assert events == ["params_changed", "node_moved", "edge_removed", "edge_removed", "node_removed"]
    assert g.edges() == [] and len(g) == 2


def test_a_file_may_hold_what_a_user_drew_wrongly():
    """Cycles, unknown types and bad values load, so analysis can point at them."""
    data = {"format_version": 1, "nodes": [
        {"id": "a", "name": "a", "type": "Linear", "params": {"units": -1}},
        {"id": "b", "name": "b", "type": "Mystery"},
    ], "edges": [{"src": "a", "dst": "b", "port": 0}, {"src": "b", "dst": "a", "port": 0}]}
    g = Graph.from_dict(data)
    assert len(g) == 2 and len(g.edges()) == 2


def test_repeated_names_in_a_file_are_made_unique():
    data = {"format_version": 1, "nodes": [{"id": "a", "name": "x", "type": "Linear"},
                                           {"id": "b", "name": "x", "type": "Linear"}], "edges": []}
    g = Graph.from_dict(data)
    assert sorted(n.name for n in g.nodes()) == ["x", "x_1"]


def test_add_node_at_an_index_keeps_every_other_order():
    g = Graph()
    ids = [g.add_node("Linear") for _ in range(6)]
    add = g.add_node("Add")
    g.connect(ids[4], add, 0)
    g.connect(ids[1], add, 1)   # add's inputs: ids[4] before ids[1], against the node order
    g.connect(ids[0], ids[3], 0)
    g.connect(ids[0], ids[2], 0)  # ids[0]'s consumers: ids[3] before ids[2]
    g.connect(ids[2], ids[5], 0)
    g.nx.graph["note"] = "kept"

    def orders():
        return ({n: list(g.nx.succ[n]) for n in g.nx}, {n: list(g.nx.pred[n]) for n in g.nx}, g.edges())

    before = orders()
    g.add_node("Dropout", node_id="back", index=2)
    assert g.node_ids() == ids[:2] + ["back"] + ids[2:] + [add]
    succ, pred, edges = orders()
    assert succ.pop("back") == [] and pred.pop("back") == []
    assert (succ, pred, edges) == before
    assert list(g.nx.pred[add]) == [ids[4], ids[1]] and g.inputs_of(add) == {0: ids[4], 1: ids[1]}
    assert g.nx.graph["note"] == "kept" and g.index_of("back") == 2
    g.add_node("Dropout", node_id="first", index=0)
    assert g.node_ids()[0] == "first" and g.edges() == before[2]


def test_one_layout_places_layers_left_to_right_and_refuses_cycles():
    import random

    import networkx as nx

    from engine.graph import layered_layout

    rng = random.Random(3)
    for _ in range(30):
        g = Graph()
        ids = [g.add_node("Linear", pos=(0.0, float(rng.choice([0, 0, 5, -5])))) for _ in range(rng.randint(1, 12))]
        for dst in range(1, len(ids)):
            for src in rng.sample(range(dst), min(dst, rng.randint(0, 2))):
                g.connect(ids[src], ids[dst], len(g.inputs_of(ids[dst])))
        depth = {}
        for n in nx.topological_sort(g.nx):
            depth[n] = max((depth[p] + 1 for p in g.nx.predecessors(n)), default=0)
        positions = layered_layout(g, 10.0, 4.0)
        assert set(positions) == set(ids)
        for n in ids:
            assert positions[n][0] == depth[n] * 10.0
        for col in set(depth.values()):
            layer = [n for n in ids if depth[n] == col]   # node order
            layer.sort(key=lambda n: g.node(n).pos[1])     # stable: ties keep the node order
            assert [positions[n][1] for n in layer] == [(row - (len(layer) - 1) / 2) * 4.0
                                                        for row in range(len(layer))]
    loop = Graph.from_dict({"format_version": 1, "nodes": [{"id": "a", "name": "a", "type": "Linear"},
                                                           {"id": "b", "name": "b", "type": "Linear"}],
                            "edges": [{"src": "a", "dst": "b"}, {"src": "b", "dst": "a"}]})
    with pytest.raises(GraphError, match="cycle"):
        layered_layout(loop)
