"""Each diagnostic kind names the node that causes it and says how to fix it."""
import pytest

from engine.analysis import analyse
from engine.graph import Graph, build


def kinds(graph):
    return {(d.kind, graph.node(d.node_id).name if d.node_id else None) for d in analyse(graph).diagnostics}


def diag(graph, kind):
    found = [d for d in analyse(graph).diagnostics if d.kind == kind]
    assert found, f"no {kind} in {[d.message for d in analyse(graph).diagnostics]}"
    return found[0]


def chain(*rows):
    return build("m", list(rows))


def test_conv_after_flat_input_says_insert_a_reshape():
    g = chain(("input", "Input", {"shape": [784]}), ("conv1", "Conv2d", {}), ("out", "Output", {}))
    d = diag(g, "shape")
    assert d.message == ("Conv2d 'conv1' needs a (C, H, W) input but receives (784,): insert a Reshape to (C, H, W)")
    assert g.node(d.node_id).name == "conv1"


def test_cycle_marks_every_node_on_it():
    g = chain(("input", "Input", {"shape": [4]}), ("a", "Linear", {}), ("b", "Linear", {}), ("out", "Output", {}))
    data = g.to_dict()
    data["edges"].append({"src": g.find("b").id, "dst": g.find("a").id, "port": 1})
    g = Graph.from_dict(data)
    assert {("cycle", "a"), ("cycle", "b")} <= kinds(g)
    assert "remove one of its wires" in diag(g, "cycle").message


def test_unconnected_input_and_missing_query_key_value_port():
    g = Graph()
    g.add_node("Linear", "lonely")
    assert ("unconnected-input", "lonely") in kinds(g)
    g = chain(("input", "Input", {"shape": [5, 8]}),
              ("attn", "MultiheadAttention", {"mode": "query_key_value", "num_heads": 2}), ("out", "Output", {}))
    d = diag(g, "unconnected-input")
    assert "'key' input" in d.message and "attn" in d.message


def test_no_input_and_no_output():
    g = Graph()
    g.add_node("Linear", "dense")
    found = kinds(g)
    assert ("no-input", None) in found and ("no-output", None) in found
    assert "after Linear 'dense'" in diag(g, "no-output").message


def test_dangling_branch_is_a_warning_not_an_error():
    g = chain(("input", "Input", {"shape": [4]}), ("dense", "Linear", {}), ("out", "Output", {}))
    side = g.add_node("Linear", "side")
    g.connect(g.find("input").id, side, 0)
    analysis = analyse(g)
    assert analysis.ok
    assert [(d.kind, d.severity) for d in analysis.for_node(side)] == [("dangling", "warning")]
    assert analysis.total_params == 4 * 128 + 128  # the ignored branch does not count


def test_port_arity_for_merges_and_extra_wires():
    g = chain(("input", "Input", {"shape": [4]}), ("add", "Add", {}), ("out", "Output", {}))
    assert "needs at least 2 inputs but has 1" in diag(g, "port-arity").message
    g = chain(("input", "Input", {"shape": [4]}), ("dense", "Linear", {}), ("out", "Output", {}))
    g.connect(g.find("input").id, g.find("dense").id, 1)
    assert ("port-arity", "dense") in kinds(g)


def test_merge_shape_mismatch_names_both_shapes():
    g = build("m", [("input", "Input", {"shape": [4]}), ("a", "Linear", {"units": 3}),
                    ("b", "Linear", {"units": 5}), ("sum", "Add", {}), ("out", "Output", {})],
              [("input", "a"), ("input", "b"), ("a", "sum"), ("b", "sum"), ("sum", "out")])
    d = diag(g, "merge-shape")
    assert "Add 'sum'" in d.message and "(3,) and (5,)" in d.message


def test_kernel_larger_than_input():
    g = chain(("input", "Input", {"shape": [1, 4, 4]}), ("conv", "Conv2d", {"kernel_size": 7}), ("out", "Output", {}))
    assert "kernel 7 is larger than the input (1, 4, 4)" in diag(g, "kernel-too-large").message


@pytest.mark.parametrize("params,fragment", [
    ({"units": 0}, "units must be at least 1"),
    ({"units": "many"}, "units must be a whole number"),
    ({"units": 2.5}, "whole number"),
    ({"activation": "swish"}, "activation must be one of"),
    ({"colour": "red"}, "unknown parameter"),
])
def test_invalid_parameter_values(params, fragment):
    g = chain(("input", "Input", {"shape": [4]}), ("dense", "Linear", params), ("out", "Output", {}))
    d = diag(g, "invalid-param")
    assert d.message.startswith("Linear 'dense':") and fragment in d.message


def test_heads_must_divide_embedding_and_same_padding_needs_stride_1():
    g = chain(("input", "Input", {"shape": [5, 10]}), ("attn", "MultiheadAttention", {"num_heads": 3}),
              ("out", "Output", {}))
    assert "num_heads=3 must divide the embedding size 10" in diag(g, "invalid-param").message
    g = chain(("input", "Input", {"shape": [1, 8, 8]}), ("conv", "Conv2d", {"padding": "same", "stride": 2}),
              ("out", "Output", {}))
    assert "stride 1" in diag(g, "invalid-param").message


def test_token_ids_into_a_non_embedding_block():
    g = chain(("tokens", "Input", {"shape": [16], "dtype": "int64"}), ("dense", "Linear", {}), ("out", "Output", {}))
    d = diag(g, "token-ids")
    assert "Linear 'dense' receives token ids" in d.message and "Embedding" in d.message
    g = chain(("x", "Input", {"shape": [16]}), ("emb", "Embedding", {}), ("out", "Output", {}))
    assert "needs token ids" in diag(g, "dtype").message


def test_unknown_block_type_in_a_file():
    data = {"format_version": 1, "nodes": [{"id": "a", "name": "odd", "type": "Quantum"}], "edges": []}
    assert ("unknown-block", "odd") in kinds(Graph.from_dict(data))


def test_errors_downstream_of_an_error_are_not_repeated():
    g = chain(("input", "Input", {"shape": [784]}), ("conv", "Conv2d", {}), ("dense", "Linear", {}),
              ("out", "Output", {}))
    assert [d.kind for d in analyse(g).diagnostics] == ["shape"]


# ----------------------------------------------------------------------------- advice declared by the blocks

def _seq(kind, **params):
    return chain(("input", "Input", {"shape": [10, 4]}), ("rnn", kind, params), ("out", "Output", {}))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_dropout_advice_comes_from_the_block(kind):
    d = diag(_seq(kind, dropout=0.2), "no-effect")
    assert d.severity == "warning"
    assert d.message == (f"{kind} 'rnn': dropout only acts between stacked layers; set num_layers > 1 "
                         "or add a Dropout block after it")
    assert "no-effect" not in {k for k, _ in kinds(_seq(kind, dropout=0.2, num_layers=2))}
    assert "no-effect" not in {k for k, _ in kinds(_seq(kind))}
    from engine.blocks import REGISTRY
    assert REGISTRY[kind].advice({"dropout": 0.2, "num_layers": 1}, [])


def test_any_block_may_declare_advice_and_a_broken_one_is_contained(monkeypatch):
    import dataclasses

    from engine.blocks import REGISTRY

    linear = REGISTRY["Linear"]
    monkeypatch.setitem(REGISTRY, "Linear", dataclasses.replace(
        linear, advice=lambda p, ins: [("wide", f"{p['units']} units after {ins[0]}")]))
    g = chain(("input", "Input", {"shape": [8]}), ("dense", "Linear", {"units": 3}), ("out", "Output", {}))
    assert diag(g, "wide").message == "Linear 'dense': 3 units after (8,)"
    monkeypatch.setitem(REGISTRY, "Linear", dataclasses.replace(linear, advice=lambda p, ins: 1 / 0))
    assert diag(g, "internal").severity == "warning"


def test_the_token_bound_is_the_embeddings_own():
    from engine.analysis import token_bound
    from engine.blocks import REGISTRY

    g = chain(("input", "Input", {"shape": [12], "dtype": "int64"}),
              ("emb", "Embedding", {"num_embeddings": 50, "embedding_dim": 8}), ("out", "Output", {}))
    input_id = next(n.id for n in g.nodes() if n.type == "Input")
    assert token_bound(g, analyse(g), input_id) == ("emb", 50)
    assert REGISTRY["Embedding"].token_bound({"num_embeddings": 7}) == 7
    assert all(b.token_bound(b.defaults()) is None for t, b in REGISTRY.items() if t != "Embedding")
    flat = chain(("input", "Input", {"shape": [12]}), ("out", "Output", {}))
    assert token_bound(flat, analyse(flat), next(n.id for n in flat.nodes() if n.type == "Input")) is None


def test_example_token_ids_of_an_export_fit_every_embedding_that_reads_them():
    """Two Embeddings on one token Input: the training check names the first, the export's example ids
    stay below the smaller bound (both read what the blocks declare)."""
    from engine.analysis import token_bound, token_bounds
    from engine.export import _token_bound
    from engine.graph import Graph

    g = Graph("two tables")
    ids = g.add_node("Input", "ids", {"shape": [6], "dtype": "int64"})
    big = g.add_node("Embedding", "big", {"num_embeddings": 40, "embedding_dim": 4})
    small = g.add_node("Embedding", "small", {"num_embeddings": 9, "embedding_dim": 4})
    add = g.add_node("Add", "add")
    g.connect(ids, big, 0)
    g.connect(ids, small, 0)
    g.connect(big, add, 0)
    g.connect(small, add, 1)
    g.connect(add, g.add_node("Output", "out"), 0)
    a = analyse(g)
    assert token_bounds(g, a, ids) == [("big", 40), ("small", 9)]
    assert token_bound(g, a, ids) == ("big", 40)
    assert _token_bound(g, a, ids) == 9
