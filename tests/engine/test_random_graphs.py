"""Hypothesis draws random graphs: analysis never raises, and every graph it passes compiles
and runs with exactly the analysed output shapes and weight counts."""
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.analysis import analyse
from engine.codegen import CodegenError
from engine.compiler import compile_graph
from engine.graph import Graph

INPUTS = [[12], [6, 5], [2, 9, 9], [3, 10]]
UNARY = {
    1: ["Linear", "Activation", "Dropout", "BatchNorm", "LayerNorm", "Rescaling", "Normalization",
        "GaussianNoise", "Reshape"],
    2: ["Linear", "LSTM", "GRU", "RNN", "Conv1d", "MaxPool1d", "AvgPool1d", "MultiheadAttention",
        "TransformerEncoderLayer", "PositionalEmbedding", "GlobalAvgPool", "Flatten", "Permute", "LayerNorm",
        "BatchNorm"],
    3: ["Conv2d", "MaxPool2d", "AvgPool2d", "ConvTranspose2d", "GlobalAvgPool", "Flatten", "BatchNorm",
        "RandomFlip", "RandomCrop", "RandomRotation", "Activation"],
}


@st.composite
def params_for(draw, type_name, shape):
    small = st.integers(1, 6)
    if type_name == "Linear":
        return {"units": draw(small), "activation": draw(st.sampled_from(["none", "relu", "tanh"]))}
    if type_name in ("LSTM", "GRU", "RNN"):
        return {"hidden_size": draw(small), "return_sequences": draw(st.booleans()),
                "bidirectional": draw(st.booleans()), "num_layers": draw(st.integers(1, 2))}
    if type_name in ("Conv1d", "Conv2d"):
        return {"filters": draw(small), "kernel_size": draw(st.integers(1, 4)),
                "padding": draw(st.sampled_from(["valid", "same", 1])), "stride": 1}
    if type_name in ("MaxPool1d", "AvgPool1d", "MaxPool2d", "AvgPool2d"):
        return {"kernel_size": draw(st.integers(1, 3))}
    if type_name == "ConvTranspose2d":
        return {"filters": draw(small)}
    if type_name == "MultiheadAttention":
        return {"num_heads": draw(st.sampled_from([1, 2, 3, 5])), "causal": draw(st.booleans())}
    if type_name == "TransformerEncoderLayer":
        return {"nhead": draw(st.sampled_from([1, 2, 3, 5])), "dim_feedforward": 8}
    if type_name == "Reshape":
        return {"shape": draw(st.sampled_from([[-1], [2, -1], [3, 4], [5, 5]]))}
    if type_name == "Permute":
        return {"dims": [1, 0]}
    if type_name == "GlobalAvgPool":
        return {"layout": draw(st.sampled_from(["channels_first", "sequence"]))}
    if type_name == "Activation":
        return {"function": draw(st.sampled_from(["relu", "softmax", "gelu"]))}
    return {}


@st.composite
def random_graph(draw):
    g = Graph("random")
    nodes = []  # (id, rank)
    for shape in draw(st.lists(st.sampled_from(INPUTS), min_size=1, max_size=2)):
        nodes.append((g.add_node("Input", params={"shape": shape}), len(shape)))
    for _ in range(draw(st.integers(1, 7))):
        if len(nodes) >= 2 and draw(st.integers(0, 4)) == 0:
            a, b = draw(st.sampled_from(nodes)), draw(st.sampled_from(nodes))
            kind = draw(st.sampled_from(["Add", "Multiply", "Concatenate"]))
            node = g.add_node(kind)
            g.connect(a[0], node, 0)
            g.connect(b[0], node, 1)
            nodes.append((node, a[1]))
            continue
        src, rank = draw(st.sampled_from(nodes))
        type_name = draw(st.sampled_from(UNARY[rank]))
        node = g.add_node(type_name, params=draw(params_for(type_name, None)))
        g.connect(src, node, 0)
        new_rank = {"Flatten": 1, "GlobalAvgPool": 1}.get(type_name, rank)
        if type_name in ("LSTM", "GRU", "RNN") and not g.node(node).params["return_sequences"]:
            new_rank = 1
        if type_name == "Reshape":
            new_rank = len(g.node(node).params["shape"])
        nodes.append((node, new_rank))
    for node_id in list(g.node_ids()):
        if not g.consumers_of(node_id) and g.node(node_id).type != "Input":
            out = g.add_node("Output")
            g.connect(node_id, out)
    return g


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graph())
def test_random_graphs_compile_to_their_analysed_shapes(graph):
    analysis = analyse(graph)  # must never raise
    event("valid" if analysis.ok else "has errors")
    if not analysis.ok:
        try:
            compile_graph(graph, analysis)
        except CodegenError as exc:
            assert exc.diagnostics
        else:
            raise AssertionError("a graph with errors compiled")
        return
    model = compile_graph(graph, analysis)
    xs = [torch.randn((2,) + analysis.specs[i].shape) for i in analysis.inputs if i in analysis.live]
    model.eval()
    with torch.no_grad():
        ys = model(*xs)
    ys = ys if isinstance(ys, tuple) else (ys,)
    assert [tuple(y.shape[1:]) for y in ys] == [analysis.specs[o].shape for o in analysis.outputs]
    assert sum(p.numel() for p in model.parameters()) == analysis.total_params
    # and a round trip through JSON generates the very same source
    again = Graph.from_json(graph.to_json())
    assert compile_graph(again).deepwire_source == model.deepwire_source
