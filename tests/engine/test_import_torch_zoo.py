"""Models written the way torchvision and timm write them, imported with their weights (issue #16).

No timm or torchvision here: small look-alike classes. Some are traced piece by piece (a LayerNorm subclass
whose forward permutes, an SE gate, a class token); others pose as a library's class by its qualified name
(`__module__`/`__qualname__`), which the importer recognises without importing the library."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.compiler import compile_graph
from engine.importers import ModelImportError, import_torch


def library_class(cls: type, module: str, name: str) -> type:
    """`cls` as if it were defined in the library module `module` under `name`."""
    cls.__module__, cls.__qualname__, cls.__name__ = module, name, name
    return cls


def imported(model: nn.Module, shape: tuple[int, ...]) -> list[str]:
    """Import `model`, check the graph reproduces it within 1e-5 (relative) and return its block types (the
    top level's, then those inside its modules: the source's submodules are kept as modules)."""
    torch.manual_seed(0)
    model.eval()
    result = import_torch(model, input_shape=shape)
    compiled = compile_graph(result.graph)
    compiled.load_state_dict(result.weights, strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = model(x), compiled.eval()(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))
    return [n.type for g in (result.graph, *result.graph.modules.values()) for n in g.nodes()]


# ----------------------------------------------------------------------------- normalisation layers

class LayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNeXt LayerNorm2d, written out: traced into permute, F.layer_norm, permute."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class TimmLayerNorm2d(LayerNorm2d):
    pass


library_class(TimmLayerNorm2d, "timm.layers.norm", "LayerNorm2d")


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNormAct2d: BatchNorm2d's forward copied out (x.ndim check, F.batch_norm on its buffers),
    then an activation."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.Hardswish()

    def forward(self, x):
        torch._assert(x.ndim == 4, "expected 4D input")
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         0.1, self.eps)
        return self.act(self.drop(x))


library_class(BatchNormAct2d, "timm.layers.norm_act", "BatchNormAct2d")


def randomised_statistics(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_a_layer_norm_subclass_that_permutes_is_traced_into_blocks():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), LayerNorm2d(8, eps=1e-6), nn.Conv2d(8, 4, 1))
    types = imported(model, (3, 10, 10))
    assert types.count("Permute") == 2 and "LayerNorm" in types


def test_library_norm_layers_are_known_by_their_class_name():
    model = randomised_statistics(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), BatchNormAct2d(8),
                                                TimmLayerNorm2d(8, eps=1e-6)))
    types = imported(model, (3, 10, 10))
    assert types == ["Input", "Conv2d", "BatchNorm", "Activation", "LayerNorm2d", "Output"]


# ----------------------------------------------------------------------------- CNN building blocks

class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: a (C, 1, 1) gate times the (C, H, W) input."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.activation, self.scale_activation = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class MobileBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                       nn.Hardswish())
        self.se = SqueezeExcitation(16, 4)
        self.project = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return x + self.project(self.se(self.depthwise(self.expand(x))))


def test_an_inverted_residual_with_a_squeeze_excitation_gate():
    types = imported(randomised_statistics(MobileBlock()), (8, 8, 8))
    assert "DepthwiseConv2d" in types and "Multiply" in types and "AdaptiveAvgPool2d" in types


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: half the channels through a branch, then the channel shuffle of view/transpose."""

    def __init__(self):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        x = torch.cat((x1, self.branch(x2)), dim=1)
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(b, -1, h, w)


def test_chunk_and_channel_shuffle():
    types = imported(ShuffleUnit(), (8, 5, 5))
    assert types.count("Slice") == 2 and "Concatenate" in types


class DenseLayer(nn.Module):
    """DenseNet: the first layer concatenates a list of one tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        inputs = [x]
        return torch.cat([x, self.conv(torch.cat(inputs, 1))], 1)


class GhostModule(nn.Module):
    """GhostNet: cheap features concatenated, then the first out_chs channels kept."""

    def __init__(self):
        super().__init__()
        self.primary = nn.Conv2d(4, 3, 1)
        self.cheap = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.out_chs = 5

    def forward(self, x):
        x1 = self.primary(x)
        out = torch.cat([x1, self.cheap(x1)], dim=1)
        return out[:, :self.out_chs, :, :]


def test_one_tensor_cat_and_a_channel_slice():
    assert "Concatenate" in imported(DenseLayer(), (4, 6, 6))
    assert "Slice" in imported(GhostModule(), (4, 6, 6))


class VGGHead(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2, ceil_mode=True))
        self.avgpool = nn.AdaptiveAvgPool2d((size, size))
        self.classifier = nn.Linear(4 * size * size, 3)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_adaptive_pooling_to_its_own_size_adds_nothing():
    assert "AdaptiveAvgPool2d" not in imported(VGGHead(4), (3, 7, 7))   # ceil(7 / 2) = 4 already
    assert "AdaptiveAvgPool2d" in imported(VGGHead(2), (3, 7, 7))


class StochasticDepth(nn.Module):
    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):   # torchvision.ops.StochasticDepth (the identity in evaluation)
        return x


library_class(StochasticDepth, "torchvision.ops.stochastic_depth", "StochasticDepth")


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: a (C, 1, 1) layer_scale parameter times the branch, stochastic depth."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), LayerNorm2d(dim, eps=1e-6),
                                   nn.Conv2d(dim, 2 * dim, 1), nn.GELU(), nn.Conv2d(2 * dim, dim, 1))
        self.layer_scale = nn.Parameter(torch.rand(dim, 1, 1))
        self.stochastic_depth = StochasticDepth(0.1, "row")

    def forward(self, x):
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


def test_convnext_block_with_layer_scale_and_stochastic_depth():
    types = imported(CNBlock(), (8, 6, 6))
    assert "LayerScale" in types and "StochasticDepth" in types


# ----------------------------------------------------------------------------- a vision transformer

class Attention(nn.Module):
    """timm's Attention, as its class name says: one qkv Linear, fused attention, proj."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm, self.k_norm, self.norm = nn.Identity(), nn.Identity(), nn.Identity()
        self.gate = None
        self.attn_drop, self.proj, self.proj_drop = nn.Dropout(0.0), nn.Linear(dim, dim), nn.Dropout(0.0)

    def forward(self, x, attn_mask=None, is_causal=False):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


library_class(Attention, "timm.layers.attention", "Attention")


class ViT(nn.Module):
    """A ViT as timm writes one: patch conv, flatten(2).transpose(1, 2), class token, position table, blocks
    with pre-norm attention and MLP, the token's output; forward takes an optional mask."""

    def __init__(self, dim: int = 16, depth: int = 2):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(dim, eps=1e-6), "attn": Attention(dim, 4), "norm2": nn.LayerNorm(dim, eps=1e-6),
            "mlp": nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Linear(2 * dim, dim)),
        }) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 5)

    def forward(self, x, attn_mask=None):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = x + block["attn"](block["norm1"](x), attn_mask=attn_mask)
            x = x + block["mlp"](block["norm2"](x))
        return self.head(self.norm(x)[:, 0])


def test_a_vision_transformer_with_a_class_token():
    types = imported(ViT(), (3, 16, 16))
    for block in ("ClassToken", "PositionalEmbedding", "MultiheadAttention", "Select"):
        assert block in types
    assert types.count("MultiheadAttention") == 2


def test_a_parameter_used_otherwise_is_named():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x @ self.table

    with pytest.raises(ModelImportError, match=r"self\.table directly \(a parameter or buffer used directly in "
                                               r"forward has no block\)"):
        import_torch(Odd(), input_shape=(4,))
