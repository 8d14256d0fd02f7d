"""Deepwire's own helper modules (engine.blocks.helpers), as an exported model.py defines them: recognised by
their exact source, each becomes the block it was written for."""
from __future__ import annotations

from torch import nn

from ..registry import helper_module
from ..values import Unsupported


@helper_module("Normalization")
def normalization(t, n, m):
    shape = t.sample(n.args[0])
    stats = tuple(m.mean.shape)
    if m.eps != 1e-7 or len(stats) != len(shape):
        raise Unsupported("has statistics Deepwire's Normalization cannot hold")
    rank = len(shape)
    for axis in [rank - 1] + list(range(rank)):
        if stats == tuple(d if i == axis else 1 for i, d in enumerate(shape)):
            return t.layer(n, "Normalization", {"axis": -1 if axis == rank - 1 else axis}, m.state_dict())
    raise Unsupported(f"keeps statistics of shape {stats}, which is not one axis of {shape}")


@helper_module("PositionalEmbedding")
def positional_embedding(t, n, m):
    shape = t.sample(n.args[0])
    learned = isinstance(m.weight, nn.Parameter)
    if tuple(m.weight.shape) != tuple(shape):
        raise Unsupported(f"has a table of {tuple(m.weight.shape)} for inputs of {shape}; Deepwire's positional "
                          "table is as long as the sequence")
    return t.layer(n, "PositionalEmbedding", {"kind": "learned" if learned else "sinusoidal"}, m.state_dict())


# helpers without weights: the block of the same name, with these parameters
WEIGHTLESS = {
    "RandomFlip": lambda m: {"mode": m.mode},
    "RandomRotation": lambda m: {"degrees": float(m.degrees)},
    "RandomTranslation": lambda m: {"height_factor": float(m.height_factor), "width_factor": float(m.width_factor)},
    "RandomCrop": lambda m: {"padding": int(m.padding)},
    "GaussianNoise": lambda m: {"stddev": float(m.stddev)},
}


def weightless(name: str, params):
    def handle(t, n, m):
        return t.layer(n, name, params(m), {})
    return handle


for _name, _params in WEIGHTLESS.items():
    helper_module(_name)(weightless(_name, _params))


@helper_module("LayerNorm2d")
def layer_norm_2d(t, n, m):
    return t.layer(n, "LayerNorm2d", {"eps": float(m.eps)}, m.state_dict())


@helper_module("LayerScale")
def layer_scale(t, n, m):
    shape = t.sample(n.args[0])
    layout = "channels_last" if m.gamma.dim() == 1 and len(shape) != 1 or len(shape) == 1 else "channels_first"
    return t.layer(n, "LayerScale", {"layout": layout}, m.state_dict())


@helper_module("ClassToken")
def class_token(t, n, m):
    return t.layer(n, "ClassToken", {}, m.state_dict())


@helper_module("StochasticDepth")
def stochastic_depth(t, n, m):
    return t.layer(n, "StochasticDepth", {"p": float(m.p), "mode": m.mode}, {})
