"""Every block compiles, and its real forward output and weight count equal what analysis says."""
import pytest
import torch

from engine.analysis import analyse
from engine.blocks import REGISTRY
from engine.compiler import compile_graph
from engine.graph import Graph
from test_blocks_spatial import CASES as SPATIAL_CASES
from test_blocks_tensor import CASES as TENSOR_CASES

# (block type, input shapes (dtype float unless a tuple (shape, "int64")), params)
CASES = [
    ("Output", [(5,)], {}),
    ("Linear", [(7,)], {}),
    ("Linear", [(4, 7)], {"units": 3, "bias": False, "activation": "softmax", "init": "xavier_uniform"}),
    ("Linear", [(7,)], {"units": 2, "activation": "leaky_relu", "init": "kaiming_normal"}),
    *[("Activation", [(6,)], {"function": f}) for f in
      ("relu", "gelu", "sigmoid", "tanh", "softmax", "leaky_relu", "silu", "elu")],
    ("Dropout", [(3, 4)], {"p": 0.3}),
    ("BatchNorm", [(6,)], {}),
    ("BatchNorm", [(4, 9)], {"eps": 1e-3, "momentum": 0.01}),
    ("BatchNorm", [(3, 5, 5)], {}),
    ("LayerNorm", [(5, 8)], {}),
    ("Embedding", [((12,), "int64")], {"num_embeddings": 50, "embedding_dim": 8, "init": "xavier_normal"}),
    ("Rescaling", [(3, 4, 4)], {"scale": 0.5, "offset": -1.0}),
    ("Normalization", [(6,)], {}),
    ("Normalization", [(3, 4, 4)], {"axis": 0}),
    ("Flatten", [(3, 4, 5)], {}),
    ("Reshape", [(24,)], {"shape": [2, -1, 3]}),
    ("Reshape", [(784,)], {"shape": [1, 28, 28]}),
    ("Permute", [(10, 4)], {"dims": [1, 0]}),
    ("Permute", [(2, 3, 4)], {"dims": [2, 0, 1]}),
    ("Conv1d", [(4, 20)], {"filters": 6, "kernel_size": 5, "stride": 2, "padding": 1}),
    ("Conv1d", [(4, 20)], {"filters": 8, "kernel_size": 4, "padding": "same", "dilation": 2, "groups": 2}),
    ("Conv2d", [(3, 16, 12)], {"filters": 8, "kernel_size": [3, 5], "stride": [2, 1], "padding": [1, 2]}),
    ("Conv2d", [(3, 9, 9)], {"filters": 4, "kernel_size": 4, "padding": "same", "activation": "relu",
                             "bias": False, "init": "kaiming_uniform"}),
    ("Conv2d", [(4, 9, 9)], {"filters": 8, "kernel_size": 3, "dilation": 2, "groups": 4}),
    ("ConvTranspose2d", [(8, 5, 5)], {"filters": 4, "kernel_size": 3, "stride": 2, "padding": 1,
                                       "output_padding": 1}),
    ("ConvTranspose2d", [(8, 5, 5)], {}),
    ("MaxPool1d", [(3, 11)], {}),
    ("AvgPool1d", [(3, 11)], {"kernel_size": 3, "stride": 1, "padding": 1}),
    ("MaxPool2d", [(3, 9, 7)], {"kernel_size": 3, "stride": 2}),
    ("AvgPool2d", [(3, 8, 8)], {"kernel_size": [2, 4]}),
    ("GlobalAvgPool", [(5, 6, 7)], {}),
    ("GlobalAvgPool", [(5, 6)], {}),
    ("GlobalAvgPool", [(6, 5)], {"layout": "sequence"}),
    ("RNN", [(9, 4)], {"hidden_size": 6, "nonlinearity": "relu"}),
    ("RNN", [(9, 4)], {"hidden_size": 6, "return_sequences": True, "bias": False}),
    ("LSTM", [(9, 4)], {"hidden_size": 6, "num_layers": 2, "dropout": 0.1, "init": "orthogonal"}),
    ("LSTM", [(9, 4)], {"hidden_size": 6, "bidirectional": True}),
    ("LSTM", [(9, 4)], {"hidden_size": 6, "bidirectional": True, "return_sequences": True, "num_layers": 3}),
    ("GRU", [(9, 4)], {"hidden_size": 5, "bidirectional": True, "num_layers": 2}),
    ("GRU", [(9, 4)], {"hidden_size": 5, "return_sequences": True}),
    ("MultiheadAttention", [(7, 8)], {"num_heads": 2}),
    ("MultiheadAttention", [(7, 8)], {"num_heads": 4, "causal": True, "dropout": 0.1, "init": "xavier_uniform"}),
    ("MultiheadAttention", [(7, 8), (5, 6), (5, 3)], {"num_heads": 2, "mode": "query_key_value"}),
    ("MultiheadAttention", [(5, 8), (5, 8), (5, 8)], {"num_heads": 2, "mode": "query_key_value",
                                                     "causal": True, "bias": False}),
    ("TransformerEncoderLayer", [(6, 8)], {"nhead": 2, "dim_feedforward": 16}),
    ("TransformerEncoderLayer", [(6, 8)], {"nhead": 4, "activation": "gelu", "norm_first": True, "causal": True}),
    ("PositionalEmbedding", [(6, 8)], {}),
    ("PositionalEmbedding", [(6, 7)], {"kind": "sinusoidal"}),
    ("Add", [(3, 4), (3, 4)], {}),
    ("Add", [(5,), (5,), (5,)], {}),
    ("Multiply", [(2, 3, 3), (2, 3, 3)], {}),
    ("Concatenate", [(3, 4), (3, 2)], {}),
    ("Concatenate", [(3, 4, 4), (5, 4, 4)], {"dim": 0}),
    ("RandomFlip", [(3, 6, 6)], {"mode": "horizontal_and_vertical"}),
    ("RandomRotation", [(3, 6, 6)], {"degrees": 30}),
    ("RandomTranslation", [(1, 6, 6)], {}),
    ("RandomCrop", [(3, 8, 8)], {"padding": 2}),
    ("GaussianNoise", [(5,)], {"stddev": 0.2}),
    *SPATIAL_CASES,
    *TENSOR_CASES,
]


def one_block_graph(type_name, inputs, params):
    g = Graph("one block")
    block_id = g.add_node(type_name, "block", params)
    for port, shape in enumerate(inputs):
        dtype = "float32"
        if isinstance(shape[-1], str):
            shape, dtype = shape
        src = g.add_node("Input", f"in{port}", {"shape": list(shape), "dtype": dtype})
        g.connect(src, block_id, port)
    out = g.add_node("Output", "out")
    g.connect(block_id, out)
    return g, block_id


def sample(spec, batch=3):
    if spec.dtype == "int64":
        return torch.randint(0, 50, (batch,) + spec.shape)
    return torch.randn((batch,) + spec.shape)


def test_every_block_type_has_a_case():
    # Module instances need their project's definitions: tests/engine/test_modules.py
    assert {case[0] for case in CASES} | {"Input", "Module"} == set(REGISTRY)


@pytest.mark.parametrize("type_name,inputs,params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_block_forward_matches_analysis(type_name, inputs, params):
    torch.manual_seed(0)
    graph, block_id = one_block_graph(type_name, inputs, params)
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    model = compile_graph(graph, analysis)
    xs = [sample(analysis.specs[i]) for i in analysis.inputs]
    for mode in (model.train, model.eval):
        mode()
        y = model(*xs)
        if type_name == "Output":  # Input -> Output -> Output: the model returns both
            assert isinstance(y, tuple) and len(y) == 2
            y = y[1]
        assert tuple(y.shape) == (3,) + analysis.specs[block_id].shape
        assert torch.isfinite(y).all()
    assert sum(p.numel() for p in model.parameters()) == analysis.param_counts[block_id]


@pytest.mark.parametrize("type_name", ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomCrop",
                                       "GaussianNoise", "Dropout"])
def test_augmentation_is_identity_in_evaluation_and_active_in_training(type_name):
    case = next(c for c in CASES if c[0] == type_name)
    graph, _ = one_block_graph(*case)
    model = compile_graph(graph)
    x = torch.rand((16,) + tuple(case[1][0]))
    model.eval()
    assert torch.equal(model(x), x)
    model.train()
    torch.manual_seed(1)
    assert not torch.equal(model(x), x)


def test_random_crop_shifts_whole_pixels_and_keeps_values():
    graph, _ = one_block_graph("RandomCrop", [(1, 6, 6)], {"padding": 2})
    model = compile_graph(graph).train()
    x = torch.arange(36.0).reshape(1, 1, 6, 6).repeat(8, 1, 1, 1) + 1
    y = model(x)
    assert set(y.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_causal_attention_does_not_look_ahead():
    graph, _ = one_block_graph("MultiheadAttention", [(6, 8)], {"num_heads": 2, "causal": True})
    model = compile_graph(graph).eval()
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[:, 4:] += 5.0  # changing later steps must not change earlier outputs
    assert torch.allclose(model(x)[:, :4], model(changed)[:, :4], atol=1e-6)
    assert not torch.allclose(model(x)[:, 4:], model(changed)[:, 4:])


def test_bidirectional_last_step_uses_both_final_states():
    graph, block_id = one_block_graph("GRU", [(9, 4)], {"hidden_size": 5, "bidirectional": True})
    model = compile_graph(graph).eval()
    x = torch.randn(2, 9, 4)
    gru = next(m for m in model.modules() if isinstance(m, torch.nn.GRU))
    _, h = gru(x)
    assert torch.allclose(model(x), torch.cat([h[-2], h[-1]], dim=-1), atol=1e-6)


def test_normalization_fit_standardises_training_data():
    graph, _ = one_block_graph("Normalization", [(3, 4, 4)], {"axis": 0})
    model = compile_graph(graph)
    norm = next(m for m in model.modules() if type(m).__name__ == "Normalization")
    data = torch.randn(64, 3, 4, 4) * torch.tensor([1.0, 5.0, 10.0]).view(1, 3, 1, 1) + 7
    norm.fit(data)
    y = model(data)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert "normalization.mean" in " ".join(model.state_dict()) or any("mean" in k for k in model.state_dict())


def test_weight_init_choices_change_the_weights():
    torch.manual_seed(0)
    base = compile_graph(one_block_graph("Linear", [(64,)], {"units": 64})[0])
    torch.manual_seed(0)
    xavier = compile_graph(one_block_graph("Linear", [(64,)], {"units": 64, "init": "xavier_uniform"})[0])
    wb, wx = base.block.weight, xavier.block.weight
    assert not torch.equal(wb, wx)
    assert torch.count_nonzero(xavier.block.bias) == 0
    bound = (6 / (64 + 64)) ** 0.5
    assert wx.abs().max() <= bound


def test_parameter_labels_are_declared_with_the_parameters():
    labels = {(t, p.name): p.display_label for t, b in REGISTRY.items() for p in b.params}
    assert labels[("Dropout", "p")] == "Probability (p)"
    assert labels[("LayerNorm", "eps")] == "Epsilon" and labels[("Input", "dtype")] == "Data type"
    assert labels[("Linear", "init")] == "Initialisation" and labels[("LSTM", "init")] == "Initialisation"
    assert labels[("MultiheadAttention", "num_heads")] == labels[("TransformerEncoderLayer", "nhead")] == "Heads"
    assert labels[("Concatenate", "dim")] == "Dimension" and labels[("Permute", "dims")] == "Dimensions"
    assert labels[("Conv2d", "kernel_size")] == "Kernel size"  # no label: the name made readable
    assert all(label and label[0].isupper() for label in labels.values())
