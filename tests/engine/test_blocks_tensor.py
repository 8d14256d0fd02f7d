"""Merges that broadcast, reductions, slices, selections and learned tensors of issue #16:
analysis and torch agree (test_blocks.py runs CASES), and each compiled block computes what its
PyTorch equivalent computes."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import Graph

# (block type, input shapes, params): run by test_blocks.test_block_forward_matches_analysis
CASES: list = [
    ("Add", [(4, 1, 1), (4, 5, 6)], {}),
    ("Add", [(6,), (5, 6)], {}),
    ("Add", [(3, 1), (1, 4), (2, 3, 4)], {}),
    ("Multiply", [(8, 5, 5), (8, 1, 1)], {}),
    ("Multiply", [(7, 4), (4,)], {}),
    ("Reduce", [(3, 5, 6)], {"dims": [1, 2]}),
    ("Reduce", [(5, 6)], {"op": "sum", "dims": [0], "keepdims": True}),
    ("Reduce", [(3, 5, 6)], {"op": "max", "dims": [-1]}),
    ("Reduce", [(4, 6)], {"dims": [0, 1], "keepdims": True}),
    ("Slice", [(8, 5, 5)], {"dim": 0, "start": 2, "stop": 5}),
    ("Slice", [(6, 9)], {"start": -4}),
    ("Slice", [(3, 4, 10)], {"dim": 2, "start": 1, "stop": -1, "step": 3}),
    ("Select", [(9, 8)], {}),
    ("Select", [(3, 4, 5)], {"dim": -1, "index": -2}),
    ("ChannelShuffle", [(6, 4, 4)], {"groups": 3}),
    ("ChannelShuffle", [(8, 10)], {"groups": 4}),
    ("ClassToken", [(6, 8)], {}),
    ("ClassToken", [(6, 8)], {"init": "trunc_normal"}),
    ("LayerScale", [(6, 8)], {}),
    ("LayerScale", [(4, 5, 5)], {"init_value": 1e-6, "layout": "channels_first"}),
    ("LayerScale", [(7,)], {"layout": "channels_first"}),
    ("StochasticDepth", [(4, 5, 5)], {"p": 0.2}),
    ("StochasticDepth", [(6, 8)], {"p": 0.5, "mode": "batch"}),
]


def block_graph(type_name, shapes, params):
    g = Graph("tensor block")
    block = g.add_node(type_name, "block", params)
    for port, shape in enumerate(shapes):
        g.connect(g.add_node("Input", f"in{port}", {"shape": list(shape)}), block, port)
    g.connect(block, g.add_node("Output", "out"), 0)
    return g, block


def run(type_name, shapes, params, *xs):
    """The compiled one-block model (in evaluation) applied to `xs`, and the model."""
    model = compile_graph(block_graph(type_name, shapes, params)[0]).eval()
    return model(*xs), model


def error_of(type_name, shapes, params) -> str:
    g, block = block_graph(type_name, shapes, params)
    analysis = analyse(g)
    errors = [d.message for d in analysis.for_node(block) if d.severity == "error"]
    assert errors, f"{type_name} {shapes} {params} should not be accepted"
    return errors[0]


# ----------------------------------------------------------------------------- broadcasting merges

@pytest.mark.parametrize("type_name,op", [("Add", torch.add), ("Multiply", torch.mul)])
def test_merges_broadcast_like_torch_with_the_batch_kept_apart(type_name, op):
    # squeeze-and-excitation: (C, 1, 1) x (C, H, W)
    s, x = torch.randn(2, 4, 1, 1), torch.randn(2, 4, 5, 6)
    y, _ = run(type_name, [(4, 1, 1), (4, 5, 6)], {}, s, x)
    assert torch.allclose(y, op(s, x))
    # (C,) gating of (T, C): the gate of each sample applies to every step of that sample
    g, seq = torch.randn(3, 6), torch.randn(3, 5, 6)
    y, _ = run(type_name, [(6,), (5, 6)], {}, g, seq)
    assert torch.allclose(y, op(g.unsqueeze(1), seq))


def test_equal_shapes_generate_the_same_code_as_before():
    source, _ = generate(block_graph("Add", [(3, 4), (3, 4)], {})[0])
    assert "x = in0 + in1  # (B, 3, 4)" in source
    source, _ = generate(block_graph("Multiply", [(6,), (5, 6)], {})[0])
    assert "in0[:, None] * in1" in source


@pytest.mark.parametrize("type_name", ["Add", "Multiply"])
def test_shapes_that_cannot_broadcast_are_named_with_a_fix(type_name):
    message = error_of(type_name, [(4, 5, 6), (3, 5, 6)], {})
    assert "(4, 5, 6) and (3, 5, 6)" in message
    assert "broadcast" in message and "Reshape" in message


# ----------------------------------------------------------------------------- tensor ops

def test_reduce_computes_torch_reductions():
    x = torch.randn(2, 3, 5, 6)
    y, _ = run("Reduce", [(3, 5, 6)], {"dims": [1, 2]}, x)
    assert torch.allclose(y, x.mean(dim=(2, 3)))
    y, _ = run("Reduce", [(3, 5, 6)], {"op": "sum", "dims": [0], "keepdims": True}, x)
    assert torch.allclose(y, x.sum(dim=1, keepdim=True))
    y, _ = run("Reduce", [(3, 5, 6)], {"op": "max", "dims": [-1, 0]}, x)
    assert torch.equal(y, x.amax(dim=(1, 3)))


def test_reduce_refuses_repeated_dims_and_reducing_everything():
    assert "twice" in error_of("Reduce", [(3, 5)], {"dims": [1, -1]})
    assert "every dimension" in error_of("Reduce", [(3, 5)], {"dims": [0, 1]})
    assert "dim 3 does not exist" in error_of("Reduce", [(3, 5)], {"dims": [3]})


@pytest.mark.parametrize("shape,params,expected", [
    ((8, 5, 5), {"dim": 0, "start": 2, "stop": 5}, lambda x: x[:, 2:5]),
    ((6, 9), {"start": -4}, lambda x: x[:, :, -4:]),
    ((3, 4, 10), {"dim": 2, "start": 1, "stop": -1, "step": 3}, lambda x: x[..., 1:-1:3]),
    ((3, 4, 10), {"dim": 1, "step": 2}, lambda x: x[:, :, ::2]),
])
def test_slice_is_python_slicing(shape, params, expected):
    x = torch.randn((2,) + shape)
    y, _ = run("Slice", [shape], params, x)
    assert torch.equal(y, expected(x))


def test_slice_generated_code_reads_like_indexing_and_empty_slices_are_refused():
    source, _ = generate(block_graph("Slice", [(8, 5, 5)], {"dim": 1, "start": 2, "stop": 5})[0])
    assert "x[:, :, 2:5]" in source
    assert "selects nothing" in error_of("Slice", [(8, 5)], {"dim": 0, "start": 5, "stop": 3})


def test_select_takes_the_class_token():
    x = torch.randn(2, 9, 8)
    y, _ = run("Select", [(9, 8)], {}, x)
    assert torch.equal(y, x[:, 0])
    x = torch.randn(2, 3, 4, 5)
    y, _ = run("Select", [(3, 4, 5)], {"dim": 1, "index": -1}, x)
    assert torch.equal(y, x.select(2, -1))
    assert "index 9 is outside" in error_of("Select", [(9, 8)], {"index": 9})
    assert "Slice" in error_of("Select", [(8,)], {})


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1).repeat(2, 1, 2, 2)
    y, _ = run("ChannelShuffle", [(6, 2, 2)], {"groups": 3}, x)
    assert y[0, :, 0, 0].tolist() == [0, 2, 4, 1, 3, 5]
    assert torch.equal(y, nn.ChannelShuffle(3)(x))
    assert "must divide the 6 channels" in error_of("ChannelShuffle", [(6, 2, 2)], {"groups": 4})


# ----------------------------------------------------------------------------- learned tensors

def test_class_token_is_a_trained_parameter_prepended_to_the_sequence():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 8)
    y, model = run("ClassToken", [(6, 8)], {"init": "trunc_normal"}, x)
    token = model.state_dict()["block.token"]
    assert token.shape == (1, 1, 8) and token.abs().max() <= 0.04 and token.abs().sum() > 0
    assert torch.equal(y[:, 1:], x) and torch.equal(y[:, 0], token[0].expand(3, 8))
    _, zero = run("ClassToken", [(6, 8)], {}, x)
    assert torch.count_nonzero(zero.block.token) == 0
    model.train()
    model(x)[:, 0].sum().backward()
    assert torch.equal(model.block.token.grad, torch.full((1, 1, 8), 3.0))


def test_class_token_then_positional_embedding_is_vit_pos_embed():
    g = Graph("vit stem")
    ids = [g.add_node("Input", "patches", {"shape": [16, 8]}), g.add_node("ClassToken", "cls"),
           g.add_node("PositionalEmbedding", "pos"), g.add_node("Select", "take"), g.add_node("Output", "out")]
    for a, b in zip(ids, ids[1:]):
        g.connect(a, b, 0)
    analysis = analyse(g)
    assert analysis.ok and analysis.param_counts[ids[2]] == 17 * 8
    model = compile_graph(g, analysis)
    assert model.pos.weight.shape == (17, 8)
    assert model(torch.randn(2, 16, 8)).shape == (2, 8)


@pytest.mark.parametrize("shape,params,gamma_shape", [
    ((6, 8), {"init_value": 0.1}, (8,)),
    ((4, 5, 5), {"init_value": 1e-6, "layout": "channels_first"}, (4, 1, 1)),
])
def test_layer_scale_is_a_trained_per_channel_scale(shape, params, gamma_shape):
    x = torch.randn((2,) + shape)
    y, model = run("LayerScale", [shape], params, x)
    gamma = model.state_dict()["block.gamma"]
    assert gamma.shape == gamma_shape and torch.all(gamma == params["init_value"])
    assert torch.allclose(y, x * params["init_value"])
    with torch.no_grad():
        model.block.gamma.copy_(torch.arange(1.0, gamma.numel() + 1).view(gamma_shape))
    channels = torch.arange(1.0, gamma.numel() + 1)
    expected = x * (channels.view(-1, 1, 1) if len(gamma_shape) == 3 else channels)
    assert torch.allclose(model(x), expected)
    model(x).sum().backward()
    assert model.block.gamma.grad is not None and model.block.gamma.grad.abs().sum() > 0


def test_stochastic_depth_is_identity_in_evaluation_and_drops_whole_samples_in_training():
    x = torch.randn(64, 4, 3, 3) + 5
    y, model = run("StochasticDepth", [(4, 3, 3)], {"p": 0.5}, x)
    assert torch.equal(y, x)
    model.train()
    torch.manual_seed(0)
    y = model(x)
    dropped = (y == 0).flatten(1).all(dim=1)
    kept = torch.isclose(y, x * 2).flatten(1).all(dim=1)
    assert torch.all(dropped | kept) and 10 < dropped.sum() < 54   # each sample whole: dropped or scaled
    _, batch = run("StochasticDepth", [(4, 3, 3)], {"p": 0.5, "mode": "batch"}, x)
    batch.train()
    outs = [batch(x) for _ in range(20)]
    assert all(torch.equal(o, 2 * x) or torch.count_nonzero(o) == 0 for o in outs)
    assert sum(p.numel() for p in model.parameters()) == 0


def test_learned_tensors_train_with_an_optimiser():
    g = Graph("scaled tokens")
    ids = [g.add_node("Input", "x", {"shape": [5, 4]}), g.add_node("ClassToken", "cls"),
           g.add_node("LayerScale", "scale", {"init_value": 0.5}), g.add_node("Output", "out")]
    for a, b in zip(ids, ids[1:]):
        g.connect(a, b, 0)
    model = compile_graph(g)
    assert set(model.state_dict()) == {"cls.token", "scale.gamma"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = (model(torch.randn(4, 5, 4)) - 1).pow(2).mean()
    loss.backward()
    optimiser.step()
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("type_name,shapes,params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_blocks_script_and_export_to_onnx(type_name, shapes, params):
    """What the exporters need: TorchScript and ONNX both take every block (nn.ChannelShuffle would not)."""
    model = compile_graph(block_graph(type_name, shapes, params)[0]).eval()
    xs = tuple(torch.randn((2,) + tuple(s)) for s in shapes)
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(*xs), model(*xs))
    torch.onnx.export(model, xs, io.BytesIO(), dynamo=False, opset_version=17)
