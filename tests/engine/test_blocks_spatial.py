"""Convolution, pooling, padding, upsampling, normalisation and activation blocks of issue #16:
analysis and torch agree (test_blocks.py runs CASES), and each compiled block computes what its
PyTorch equivalent computes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.analysis import analyse
from engine.blocks import REGISTRY
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import Graph

NEW_ACTIVATIONS = ("relu6", "hardswish", "hardsigmoid", "mish", "softplus", "softsign", "selu", "gelu_tanh")

# (block type, input shapes, params): run by test_blocks.test_block_forward_matches_analysis
CASES: list = [
    *[("Activation", [(2, 6)], {"function": f}) for f in NEW_ACTIVATIONS],
    ("Linear", [(7,)], {"units": 3, "activation": "hardswish"}),
    ("Conv2d", [(3, 6, 6)], {"filters": 4, "activation": "relu6"}),
    ("PReLU", [(4, 5)], {}),
    ("PReLU", [(3, 5, 5)], {"per_channel": True, "slope": 0.1}),
    ("ZeroPad1d", [(3, 7)], {"left": 0, "right": 2}),
    ("ZeroPad2d", [(2, 5, 6)], {}),
    ("ZeroPad2d", [(2, 5, 6)], {"left": 0, "right": 1, "top": 0, "bottom": 1}),
    ("MaxPool2d", [(3, 8, 8)], {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("MaxPool1d", [(2, 10)], {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", [(2, 7, 7)], {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False}),
    ("AvgPool1d", [(2, 9)], {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("AdaptiveAvgPool2d", [(3, 9, 11)], {"output_size": [7, 7]}),
    ("AdaptiveAvgPool2d", [(3, 4, 4)], {}),
    ("AdaptiveMaxPool2d", [(3, 9, 11)], {"output_size": [2, 3]}),
    ("AdaptiveAvgPool1d", [(3, 12)], {"output_size": 5}),
    ("AdaptiveMaxPool1d", [(3, 12)], {"output_size": 4}),
    ("GlobalMaxPool", [(5, 6, 7)], {}),
    ("GlobalMaxPool", [(5, 6)], {}),
    ("GlobalMaxPool", [(6, 5)], {"layout": "sequence"}),
    ("Upsample2d", [(2, 3, 4)], {}),
    ("Upsample2d", [(2, 3, 4)], {"scale_factor": [2, 3], "mode": "bilinear"}),
    ("Upsample2d", [(2, 3, 4)], {"size": [5, 7], "mode": "bilinear"}),
    ("Upsample1d", [(2, 5)], {"scale_factor": 3}),
    ("Upsample1d", [(2, 5)], {"size": 8, "mode": "bilinear"}),
    ("ConvTranspose1d", [(4, 6)], {"filters": 3, "kernel_size": 3, "stride": 2, "padding": 1,
                                   "output_padding": 1}),
    ("ConvTranspose1d", [(4, 6)], {"filters": 2, "bias": False, "activation": "mish", "init": "xavier_normal"}),
    ("DepthwiseConv2d", [(4, 9, 9)], {}),
    ("DepthwiseConv2d", [(3, 9, 9)], {"depth_multiplier": 2, "kernel_size": 5, "stride": 2, "padding": 2,
                                      "bias": False, "activation": "relu6", "init": "kaiming_normal"}),
    ("SeparableConv2d", [(4, 8, 8)], {"filters": 6}),
    ("SeparableConv2d", [(3, 8, 8)], {"filters": 5, "depth_multiplier": 2, "padding": "same", "bias": False,
                                      "activation": "hardswish", "init": "xavier_uniform"}),
    ("GroupNorm", [(8, 5, 5)], {"num_groups": 4}),
    ("GroupNorm", [(6, 7)], {"num_groups": 3, "affine": False, "eps": 1e-3}),
    ("GroupNorm", [(32,)], {}),
    ("InstanceNorm", [(3, 6, 6)], {}),
    ("InstanceNorm", [(3, 9)], {"affine": True}),
    ("LayerNorm2d", [(4, 3, 5)], {}),
]


def one_block(type_name, shape, params):
    g = Graph("one block")
    block_id = g.add_node(type_name, "block", params)
    src = g.add_node("Input", "x", {"shape": list(shape)})
    g.connect(src, block_id, 0)
    g.connect(block_id, g.add_node("Output", "out"))
    return g


def compiled(type_name, shape, params):
    torch.manual_seed(0)
    return compile_graph(one_block(type_name, shape, params)).eval()


def source(type_name, shape, params):
    return generate(one_block(type_name, shape, params))[0]


def error_of(type_name, shape, params):
    analysis = analyse(one_block(type_name, shape, params))
    assert not analysis.ok
    return analysis.errors[0].message


@pytest.mark.parametrize("name,reference", [
    ("relu6", F.relu6), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid), ("mish", F.mish),
    ("softplus", F.softplus), ("softsign", F.softsign), ("selu", F.selu),
    ("gelu_tanh", nn.GELU(approximate="tanh")),
])
def test_new_activations_compute_torchs(name, reference):
    x = torch.randn(4, 10) * 4
    assert torch.allclose(compiled("Activation", (10,), {"function": name})(x), reference(x))
    linear = compiled("Linear", (10,), {"units": 3, "activation": name})
    assert torch.allclose(linear(x), reference(linear.block(x)))


def test_existing_activation_choices_keep_their_order():
    choices = REGISTRY["Activation"].param_index["function"].choices
    assert choices[:8] == ("relu", "gelu", "sigmoid", "tanh", "softmax", "leaky_relu", "silu", "elu")
    assert REGISTRY["Linear"].param_index["activation"].choices[:9] == ("none",) + choices[:8]


def test_generated_code_reads_like_hand_written_pytorch():
    assert "F.relu6(x)" in source("Activation", (6,), {"function": "relu6"})
    assert 'F.gelu(x, approximate="tanh")' in source("Activation", (6,), {"function": "gelu_tanh"})
    assert "nn.AdaptiveAvgPool2d((7, 7))" in source("AdaptiveAvgPool2d", (3, 9, 9), {"output_size": 7})
    assert "nn.AdaptiveMaxPool1d(4)" in source("AdaptiveMaxPool1d", (3, 9), {"output_size": 4})
    assert "nn.ZeroPad2d((0, 1, 0, 1))" in source("ZeroPad2d", (3, 9, 9), {"left": 0, "top": 0})
    assert "nn.ZeroPad2d(1)" in source("ZeroPad2d", (3, 9, 9), {})
    assert "nn.MaxPool2d(3, stride=2, ceil_mode=True)" in source("MaxPool2d", (3, 9, 9),
                                                                    {"kernel_size": 3, "stride": 2, "ceil_mode": True})
    assert "nn.Upsample(scale_factor=2)" in source("Upsample2d", (3, 4, 4), {})
    assert 'nn.Upsample(size=(5, 7), mode="bilinear")' in source("Upsample2d", (3, 4, 4),
                                                                 {"size": [5, 7], "mode": "bilinear"})
    assert "nn.PReLU(3)" in source("PReLU", (3, 4, 4), {"per_channel": True})
    assert "nn.Conv2d(8, 16, 3, groups=8)" in source("DepthwiseConv2d", (8, 9, 9), {"depth_multiplier": 2})
    assert "nn.Sequential(nn.Conv2d(8, 8, 3, groups=8, bias=False), nn.Conv2d(8, 4, 1))" in \
        source("SeparableConv2d", (8, 9, 9), {"filters": 4})
    assert "nn.GroupNorm(4, 8, eps=1e-05)" in source("GroupNorm", (8, 5, 5), {"num_groups": 4})
    assert "nn.InstanceNorm2d(3, eps=1e-05)" in source("InstanceNorm", (3, 5, 5), {})
    assert "class LayerNorm2d(nn.LayerNorm):" in source("LayerNorm2d", (3, 5, 5), {})


def test_default_pools_generate_the_same_code_as_before():
    assert "nn.MaxPool2d(2)" in source("MaxPool2d", (3, 8, 8), {})
    assert "nn.AvgPool1d(3, stride=1, padding=1)" in source("AvgPool1d", (3, 8), {"kernel_size": 3, "stride": 1,
                                                                                "padding": 1})
    assert "nn.ConvTranspose2d(3, 32, 2, stride=2)" in source("ConvTranspose2d", (3, 8, 8), {})


@pytest.mark.parametrize("kind,nd,ceil,include", [
    ("max", 1, True, True), ("max", 2, True, True), ("avg", 2, True, False), ("avg", 1, False, False),
    ("avg", 2, True, True)])
def test_pool_options_compute_torchs(kind, nd, ceil, include):
    shape = (2, 9) if nd == 1 else (2, 9, 7)
    params = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": ceil}
    if kind == "avg":
        params["count_include_pad"] = include
    model = compiled(f"{kind.capitalize()}Pool{nd}d", shape, params)
    x = torch.randn((3,) + shape)
    options = {"ceil_mode": ceil} | ({"count_include_pad": include} if kind == "avg" else {})
    reference = getattr(F, f"{kind}_pool{nd}d")(x, 3, 2, 1, **options)
    assert torch.allclose(model(x), reference)


def test_adaptive_and_global_max_pools_compute_torchs():
    x = torch.randn(2, 3, 9, 11)
    assert torch.allclose(compiled("AdaptiveAvgPool2d", (3, 9, 11), {"output_size": [7, 7]})(x),
                          nn.AdaptiveAvgPool2d((7, 7))(x))
    assert torch.allclose(compiled("AdaptiveMaxPool2d", (3, 9, 11), {"output_size": [2, 3]})(x),
                          F.adaptive_max_pool2d(x, (2, 3)))
    assert torch.allclose(compiled("AdaptiveAvgPool1d", (3, 11), {"output_size": 4})(x[:, :, 0]),
                          F.adaptive_avg_pool1d(x[:, :, 0], 4))
    assert torch.equal(compiled("GlobalMaxPool", (3, 9, 11), {})(x), x.amax(dim=(2, 3)))
    assert torch.equal(compiled("GlobalMaxPool", (9, 11), {"layout": "sequence"})(x[:, 0]), x[:, 0].amax(dim=1))


def test_zero_padding_then_valid_conv_is_keras_stride_2_same():
    """Keras' Conv2D(padding='same', strides=2) on an even size pads 0 before and 1 after."""
    x = torch.randn(2, 3, 8, 8)
    pad = compiled("ZeroPad2d", (3, 8, 8), {"left": 0, "right": 1, "top": 0, "bottom": 1})
    assert torch.equal(pad(x), F.pad(x, (0, 1, 0, 1)))
    assert pad(x).shape == (2, 3, 9, 9)
    conv = nn.Conv2d(3, 4, 3, stride=2)
    assert conv(pad(x)).shape[-2:] == (4, 4)  # ceil(8 / 2), as Keras 'same'
    pad1 = compiled("ZeroPad1d", (3, 8), {"left": 2, "right": 0})
    assert torch.equal(pad1(x[:, :, 0]), F.pad(x[:, :, 0], (2, 0)))


def test_upsample_computes_torchs():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(compiled("Upsample2d", (3, 4, 5), {"scale_factor": [2, 3]})(x),
                       x.repeat_interleave(2, dim=2).repeat_interleave(3, dim=3))
    assert torch.allclose(compiled("Upsample2d", (3, 4, 5), {"mode": "bilinear"})(x),
                          F.interpolate(x, scale_factor=2, mode="bilinear"))
    assert torch.allclose(compiled("Upsample1d", (3, 5), {"size": 9, "mode": "bilinear"})(x[:, :, 0]),
                          F.interpolate(x[:, :, 0], size=9, mode="linear"))


def test_prelu_learns_one_slope_or_one_per_channel():
    x = torch.randn(2, 3, 4, 4)
    shared = compiled("PReLU", (3, 4, 4), {"slope": 0.1})
    assert torch.allclose(shared(x), F.prelu(x, torch.tensor([0.1])))
    per_channel = compiled("PReLU", (3, 4, 4), {"per_channel": True})
    assert per_channel.block.weight.shape == (3,)
    with torch.no_grad():
        per_channel.block.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(per_channel(x), F.prelu(x, torch.tensor([0.1, 0.2, 0.3])))


def _copy(reference: nn.Module, model: nn.Module) -> nn.Module:
    reference.load_state_dict(model.block.state_dict())
    return reference.eval()


def test_transposed_depthwise_and_separable_convs_compute_torchs():
    x1 = torch.randn(2, 4, 6)
    model = compiled("ConvTranspose1d", (4, 6), {"filters": 3, "kernel_size": 3, "stride": 2, "padding": 1})
    assert torch.allclose(model(x1), _copy(nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1), model)(x1))

    x = torch.randn(2, 3, 9, 9)
    model = compiled("DepthwiseConv2d", (3, 9, 9), {"depth_multiplier": 2, "padding": "same"})
    reference = _copy(nn.Conv2d(3, 6, 3, padding="same", groups=3), model)
    assert torch.allclose(model(x), reference(x), atol=1e-6)

    model = compiled("SeparableConv2d", (3, 9, 9), {"filters": 5, "depth_multiplier": 2, "activation": "relu"})
    depthwise, pointwise = nn.Conv2d(3, 6, 3, groups=3, bias=False), nn.Conv2d(6, 5, 1)
    _copy(nn.Sequential(depthwise, pointwise), model)
    assert torch.allclose(model(x), F.relu(pointwise(depthwise(x))), atol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == 6 * 9 + 6 * 5 + 5  # far fewer than 5 * 3 * 9 + 5


def test_norms_compute_torchs():
    x = torch.randn(4, 8, 5, 5) * 3 + 1
    model = compiled("GroupNorm", (8, 5, 5), {"num_groups": 4})
    with torch.no_grad():
        model.block.weight.normal_()
        model.block.bias.normal_()
    assert torch.allclose(model(x), _copy(nn.GroupNorm(4, 8), model)(x), atol=1e-5)
    assert torch.allclose(compiled("InstanceNorm", (8, 5, 5), {})(x), F.instance_norm(x), atol=1e-5)
    model = compiled("InstanceNorm", (8, 5), {"affine": True})
    assert torch.allclose(model(x[..., 0]), _copy(nn.InstanceNorm1d(8, affine=True), model)(x[..., 0]), atol=1e-5)

    model = compiled("LayerNorm2d", (8, 5, 5), {})
    with torch.no_grad():
        model.block.weight.normal_()
    ln = nn.LayerNorm(8)
    ln.load_state_dict(model.block.state_dict())
    expected = ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_norm_blocks_are_in_the_normalization_category():
    for type_name in ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "LayerNorm2d"):
        assert REGISTRY[type_name].category == "Normalization"


@pytest.mark.parametrize("type_name,shape,params,fragments", [
    ("GroupNorm", (6, 4, 4), {"num_groups": 4}, ["num_groups=4", "6 channels", "(6, 4, 4)", "set num_groups to 2"]),
    ("ZeroPad2d", (12,), {}, ["(C, H, W)", "(12,)", "Reshape"]),
    ("Upsample1d", (3, 4, 4), {}, ["(C, L)", "(3, 4, 4)", "Reshape"]),
    ("AdaptiveAvgPool2d", (3, 8), {}, ["(C, H, W)", "(3, 8)", "Reshape"]),
    ("InstanceNorm", (8,), {}, ["(C, L) or (C, H, W)", "(8,)", "LayerNorm"]),
    ("LayerNorm2d", (5, 8), {}, ["(C, H, W)", "(5, 8)", "use LayerNorm"]),
    ("DepthwiseConv2d", (3, 2, 2), {"kernel_size": 3}, ["kernel 3", "(3, 2, 2)", "smaller kernel"]),
    ("SeparableConv2d", (3, 9, 9), {"padding": "same", "stride": 2}, ["stride 1", "padding as a number"]),
])
def test_shape_errors_name_the_shapes_and_say_what_to_do(type_name, shape, params, fragments):
    message = error_of(type_name, shape, params)
    for fragment in fragments:
        assert fragment in message, message


def test_upsample_size_is_all_or_nothing():
    assert "size" in error_of("Upsample2d", (3, 4, 4), {"size": [5, 0]})
