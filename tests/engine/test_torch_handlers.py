"""The PyTorch importer's handler registry (engine/importers/torch_fx/registry.py): every layer type the importer
supports has its handler, a handler registered for a new module type imports it with its weights, and what no
handler takes is refused by name."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from engine.compiler import compile_graph
from engine.importers import ModelImportError, import_torch
from engine.importers.torch_fx import registry

# (module type, a module of it, one sample's input shape, the block it becomes; None: no block of its own)
SUPPORTED_MODULES = [
    (nn.ReLU, nn.ReLU, (8,), "Activation"),
    (nn.GELU, nn.GELU, (8,), "Activation"),
    (nn.Sigmoid, nn.Sigmoid, (8,), "Activation"),
    (nn.Tanh, nn.Tanh, (8,), "Activation"),
    (nn.Softmax, lambda: nn.Softmax(dim=-1), (8,), "Activation"),
    (nn.LeakyReLU, nn.LeakyReLU, (8,), "Activation"),
    (nn.SiLU, nn.SiLU, (8,), "Activation"),
    (nn.ELU, nn.ELU, (8,), "Activation"),
    (nn.ReLU6, nn.ReLU6, (8,), "Activation"),
    (nn.Hardtanh, lambda: nn.Hardtanh(0.0, 6.0), (8,), "Activation"),
    (nn.Hardswish, nn.Hardswish, (8,), "Activation"),
    (nn.Hardsigmoid, nn.Hardsigmoid, (8,), "Activation"),
    (nn.Mish, nn.Mish, (8,), "Activation"),
    (nn.Softplus, nn.Softplus, (8,), "Activation"),
    (nn.Softsign, nn.Softsign, (8,), "Activation"),
    (nn.SELU, nn.SELU, (8,), "Activation"),
    (nn.PReLU, lambda: nn.PReLU(2), (2, 6, 6), "PReLU"),
    (nn.Identity, nn.Identity, (8,), None),
    (nn.Linear, lambda: nn.Linear(8, 3), (8,), "Linear"),
    (nn.Conv1d, lambda: nn.Conv1d(2, 3, 3), (2, 8), "Conv1d"),
    (nn.Conv2d, lambda: nn.Conv2d(2, 3, 3), (2, 6, 6), "Conv2d"),
    (nn.ConvTranspose2d, lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (2, 4, 4), "ConvTranspose2d"),
    (nn.ConvTranspose1d, lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), (2, 8), "ConvTranspose1d"),
    (nn.MaxPool1d, lambda: nn.MaxPool1d(2), (2, 8), "MaxPool1d"),
    (nn.MaxPool2d, lambda: nn.MaxPool2d(2), (2, 6, 6), "MaxPool2d"),
    (nn.AvgPool1d, lambda: nn.AvgPool1d(2), (2, 8), "AvgPool1d"),
    (nn.AvgPool2d, lambda: nn.AvgPool2d(2), (2, 6, 6), "AvgPool2d"),
    (nn.AdaptiveAvgPool1d, lambda: nn.AdaptiveAvgPool1d(1), (2, 8), "AdaptiveAvgPool1d"),
    (nn.AdaptiveAvgPool2d, lambda: nn.AdaptiveAvgPool2d(1), (2, 6, 6), "AdaptiveAvgPool2d"),
    (nn.AdaptiveMaxPool1d, lambda: nn.AdaptiveMaxPool1d(3), (2, 8), "AdaptiveMaxPool1d"),
    (nn.AdaptiveMaxPool2d, lambda: nn.AdaptiveMaxPool2d(1), (2, 6, 6), "AdaptiveMaxPool2d"),
    (nn.GroupNorm, lambda: nn.GroupNorm(2, 4), (4, 6, 6), "GroupNorm"),
    (nn.InstanceNorm1d, lambda: nn.InstanceNorm1d(2, affine=True), (2, 8), "InstanceNorm"),
    (nn.InstanceNorm2d, lambda: nn.InstanceNorm2d(2), (2, 6, 6), "InstanceNorm"),
    (nn.Upsample, lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (2, 4, 4), "Upsample2d"),
    (nn.ZeroPad1d, lambda: nn.ZeroPad1d((1, 2)), (2, 8), "ZeroPad1d"),
    (nn.ZeroPad2d, lambda: nn.ZeroPad2d((1, 2, 0, 1)), (2, 4, 4), "ZeroPad2d"),
    (nn.ConstantPad1d, lambda: nn.ConstantPad1d(1, 0.0), (2, 8), "ZeroPad1d"),
    (nn.ConstantPad2d, lambda: nn.ConstantPad2d(1, 0.0), (2, 4, 4), "ZeroPad2d"),
    (nn.BatchNorm1d, lambda: nn.BatchNorm1d(8), (8,), "BatchNorm"),
    (nn.BatchNorm2d, lambda: nn.BatchNorm2d(2), (2, 6, 6), "BatchNorm"),
    (nn.LayerNorm, lambda: nn.LayerNorm(8), (5, 8), "LayerNorm"),
    (nn.Dropout, lambda: nn.Dropout(0.2), (8,), "Dropout"),
    (nn.Flatten, nn.Flatten, (2, 3, 3), "Flatten"),
    (nn.Unflatten, lambda: nn.Unflatten(1, (2, 4)), (8,), "Reshape"),
    (nn.Embedding, lambda: nn.Embedding(10, 4), (5,), "Embedding"),
    (nn.RNN, lambda: nn.RNN(4, 6, batch_first=True), (5, 4), "RNN"),
    (nn.LSTM, lambda: nn.LSTM(4, 6, batch_first=True), (5, 4), "LSTM"),
    (nn.GRU, lambda: nn.GRU(4, 6, batch_first=True), (5, 4), "GRU"),
    (nn.MultiheadAttention, lambda: nn.MultiheadAttention(8, 2, batch_first=True), (5, 8), "MultiheadAttention"),
    (nn.TransformerEncoderLayer, lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), (5, 8),
     "TransformerEncoderLayer"),
    (nn.TransformerEncoder, lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                                         enable_nested_tensor=False), (5, 8),
     "TransformerEncoderLayer"),
]
SUPPORTED_FUNCTIONS = [F.relu, torch.relu, F.gelu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softmax,
                       torch.softmax, F.leaky_relu, F.silu, F.elu, torch.add, torch.mul, torch.sub, torch.div,
                       torch.cat, torch.concat, torch.concatenate, torch.reshape, torch.flatten, torch.squeeze,
                       torch.unsqueeze, torch.mean, torch.permute, torch.transpose, F.dropout, F.max_pool1d,
                       F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                       F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.relu6, F.hardtanh, F.hardswish, F.hardsigmoid,
                       F.mish, F.softplus, F.softsign, F.selu, torch.selu, F.interpolate, F.pad, torch.sum,
                       torch.amax, torch.chunk, torch.split, torch.unbind, torch._assert]
SUPPORTED_METHODS = ["relu", "sigmoid", "tanh", "softmax", "add", "mul", "sub", "div", "add_", "mul_", "view",
                     "reshape", "flatten", "squeeze", "unsqueeze", "mean", "permute", "transpose", "size",
                     "contiguous", "clone", "detach", "float", "selu", "sum", "amax", "chunk", "split", "unbind",
                     "dim", "ndimension", "numel"]
HELPER_MODULES = ["Normalization", "PositionalEmbedding", "RandomFlip", "RandomRotation", "RandomTranslation",
                  "RandomCrop", "GaussianNoise", "LayerNorm2d", "LayerScale", "ClassToken", "StochasticDepth"]


class Wrapper(nn.Module):
    """One layer; a recurrent or attention layer's output is reduced to a tensor as forward usually does."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        if isinstance(self.layer, nn.RNNBase):
            return self.layer(x)[0]
        if isinstance(self.layer, nn.MultiheadAttention):
            return self.layer(x, x, x)[0]
        return self.layer(x)


def test_every_supported_type_has_a_handler():
    missing = [kind.__name__ for kind, *_ in SUPPORTED_MODULES if registry.module_handler(kind) is None]
    assert missing == []
    assert [f for f in SUPPORTED_FUNCTIONS if f not in registry.FUNCTIONS] == []
    assert [m for m in SUPPORTED_METHODS if m not in registry.METHODS] == []
    assert sorted(registry.HELPER_MODULES) == sorted(HELPER_MODULES)
    assert sorted(registry.HELPER_FUNCTIONS) == ["bidirectional_last", "causal_mask"]


def test_subclasses_are_handled_only_where_registered_for_them():
    class MyIdentity(nn.Identity):
        pass

    class MyLinear(nn.Linear):
        pass

    assert registry.module_handler(MyIdentity) is registry.module_handler(nn.Identity)
    assert registry.module_handler(nn.LSTM) is registry.module_handler(nn.RNNBase)   # one handler for RNN/LSTM/GRU
    assert registry.module_handler(MyLinear) is None
    assert registry.module_handler(NonDynamicallyQuantizableLinear) is None   # a Linear subclass of torch's own
    with pytest.raises(ValueError, match="already has a handler"):
        registry.module(nn.Linear)(lambda t, n, m: None)


@pytest.mark.parametrize("kind, make, shape, block", SUPPORTED_MODULES, ids=[k.__name__ for k, *_ in SUPPORTED_MODULES])
def test_each_supported_module_imports_as_its_block(kind, make, shape, block):
    torch.manual_seed(0)
    model = Wrapper(make())
    assert type(model.layer) is kind
    result = import_torch(model, input_shape=shape)   # also checks the graph reproduces the module's outputs
    types = [n.type for n in result.graph.nodes() if n.type not in ("Input", "Output")]
    if block is None:
        assert types == []
    else:
        assert block in types
    own = {k: v for k, v in model.state_dict().items()}
    assert sum(v.numel() for v in result.weights.values()) == sum(v.numel() for v in own.values())


# ----------------------------------------------------------------------------- a handler added by a test

class Dense(nn.Module):
    """A user's own layer: a Linear under other names, which torch.fx would otherwise trace into its parts."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in))
        self.b = nn.Parameter(torch.randn(n_out))

    def forward(self, x):
        return x @ self.w.t() + self.b


class UsesDense(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = Dense(8, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(torch.relu(self.dense(x)))


def dense_handler(t, n, m):
    return t.layer(n, "Linear", {"units": m.w.shape[0], "bias": True}, {"weight": m.w, "bias": m.b})


def test_a_registered_handler_imports_a_custom_module_with_its_weights():
    torch.manual_seed(0)
    model = UsesDense()
    with pytest.raises(ModelImportError, match="used directly in forward"):
        import_torch(model, input_shape=(8,))
    registry.module(Dense)(dense_handler)
    try:
        result = import_torch(model, input_shape=(8,))
    finally:
        registry.unregister_module(Dense)
    nodes = {n.name: n for n in result.graph.nodes()}
    assert nodes["dense"].type == "Linear" and nodes["dense"].params["units"] == 5
    assert nodes["dense"].params["activation"] == "relu"   # the relu after it folds in, as after an nn.Linear
    assert torch.equal(result.weights["dense.weight"], model.dense.w.detach())
    compiled = compile_graph(result.graph)
    compiled.load_state_dict(result.weights, strict=True)
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(compiled.eval()(x), model.eval()(x), atol=1e-5)
    # unregistered: gone from the registry, and the model is refused again
    assert Dense not in registry.MODULES and registry.module_handler(Dense) is None
    with pytest.raises(ModelImportError, match="used directly in forward"):
        import_torch(model, input_shape=(8,))


def test_a_registered_function_handler_is_used_and_unregisters():
    class Negate(nn.Module):
        def forward(self, x):
            return torch.neg(x)

    with pytest.raises(ModelImportError, match=r"neg has no Deepwire block"):
        import_torch(Negate(), input_shape=(4,))

    @registry.function(torch.neg)
    def negate(t, n):
        return t.add("Rescaling", "negate", {"scale": -1.0, "offset": 0.0}, [t.value(n.args[0])], None, n)

    try:
        result = import_torch(Negate(), input_shape=(4,))
    finally:
        registry.unregister_function(torch.neg)
    assert [n.type for n in result.graph.nodes()] == ["Input", "Rescaling", "Output"]
    assert torch.neg not in registry.FUNCTIONS


# ----------------------------------------------------------------------------- what no handler takes

def test_an_unsupported_module_is_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.act = nn.Hardshrink()

        def forward(self, x):
            return self.act(self.fc(x))

    with pytest.raises(ModelImportError, match=r"1 operation has no Deepwire block: .*Hardshrink \(self\.act\) has "
                                               r"no Deepwire block"):
        import_torch(Net())


def test_a_subclass_of_a_known_module_is_not_taken_for_it():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = NonDynamicallyQuantizableLinear(8, 4)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ModelImportError, match=r"NonDynamicallyQuantizableLinear \(self\.fc\) has no Deepwire block"):
        import_torch(Net(), input_shape=(8,))


def test_an_unknown_module_called_with_two_inputs_is_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bi = nn.Bilinear(8, 8, 3)

        def forward(self, x):
            return self.bi(x, x)

    with pytest.raises(ModelImportError, match=r"Bilinear \(self\.bi\) is called with extra arguments"):
        import_torch(Net(), input_shape=(8,))
