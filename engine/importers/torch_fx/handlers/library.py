"""Layers of model libraries (timm, torchvision) that compute what a Deepwire block computes, recognised by their
qualified class name (Deepwire never imports the library): they are leaves of the trace, so their forward's
internals (F.batch_norm on buffers, x.ndim checks, fused attention) are never translated piece by piece. The
import's output check proves each mapping on the user's model."""
from __future__ import annotations

from torch import nn

from ..registry import library_module
from ..values import Unsupported
from . import activations
from .layers import batch_norm_params, layer_norm, linear


@library_module("timm.layers.norm.LayerNorm", "timm.layers.norm.LayerNormFp32")
def timm_layer_norm(t, n, m):
    return layer_norm(t, n, m)


@library_module("timm.layers.linear.Linear")
def timm_linear(t, n, m):
    return linear(t, n, m)


@library_module("timm.layers.norm.LayerNorm2d", "timm.layers.norm.LayerNorm2dFp32",
                "torchvision.models.convnext.LayerNorm2d")
def layer_norm_2d(t, n, m):
    shape = t.sample(n.args[0])
    if len(shape) != 3 or tuple(m.normalized_shape) != shape[:1] or not m.elementwise_affine or m.bias is None:
        raise Unsupported(f"normalises {tuple(m.normalized_shape)} of a {shape} input without a learned scale and "
                          "shift; Deepwire's LayerNorm2d normalises the channels of (C, H, W)")
    return t.layer(n, "LayerNorm2d", {"eps": float(m.eps)}, m.state_dict())


@library_module("timm.layers.norm_act.BatchNormAct2d")
def batch_norm_act(t, n, m):
    """BatchNorm2d, then its dropout and activation (timm's BatchNormAct2d)."""
    src = t.layer(n, "BatchNorm", batch_norm_params(m), m.state_dict())
    drop = getattr(m, "drop", None)
    if isinstance(drop, nn.Dropout) and drop.p:
        src = t.add("Dropout", f"{t.module_name(n.target)}_drop", {"p": float(drop.p)}, [src], None, n)
    elif drop is not None and not isinstance(drop, (nn.Identity, nn.Dropout)):
        raise Unsupported(f"drops with {type(drop).__name__}, which has no Deepwire block")
    act = getattr(m, "act", None)
    return src if act is None else activations.of_module(t, n, act, src)


@library_module("torchvision.ops.stochastic_depth.StochasticDepth")
def stochastic_depth(t, n, m):
    if not m.p:
        return t.value(n.args[0])
    return t.layer(n, "StochasticDepth", {"p": float(m.p), "mode": m.mode})


@library_module("timm.layers.drop.DropPath")
def drop_path(t, n, m):
    if not m.drop_prob:
        return t.value(n.args[0])
    if not getattr(m, "scale_by_keep", True):
        raise Unsupported("with scale_by_keep=False has no Deepwire block")
    return t.layer(n, "StochasticDepth", {"p": float(m.drop_prob), "mode": "row"})


@library_module("timm.layers.attention.Attention", extra_args=True)
def timm_attention(t, n, m):
    """timm's self-attention: one qkv Linear (q, k and v stacked, as nn.MultiheadAttention's in_proj) and proj."""
    if n.kwargs.get("attn_mask") is not None or n.kwargs.get("is_causal") or len(n.args) > 1:
        raise Unsupported("is given a mask, which only Deepwire's causal attention takes")
    extras = [name for name in ("q_norm", "k_norm", "norm") if not isinstance(getattr(m, name, None), (nn.Identity,
                                                                                                       type(None)))]
    if extras or getattr(m, "gate", None) is not None:
        raise Unsupported(f"with {', '.join(extras) or 'a gate'} has no Deepwire block")
    dim = m.qkv.in_features
    if m.qkv.out_features != 3 * dim or m.proj.in_features != dim or m.proj.out_features != dim \
            or abs(m.scale - m.head_dim ** -0.5) > 1e-12:
        raise Unsupported("with a head size, output size or scale other than nn.MultiheadAttention's has no "
                          "Deepwire block")
    has_bias = m.qkv.bias is not None or m.proj.bias is not None
    weights = {"in_proj_weight": m.qkv.weight, "out_proj.weight": m.proj.weight}
    if has_bias:
        weights["in_proj_bias"] = m.qkv.bias if m.qkv.bias is not None else m.qkv.weight.new_zeros(3 * dim)
        weights["out_proj.bias"] = m.proj.bias if m.proj.bias is not None else m.proj.weight.new_zeros(dim)
    src = t.add("MultiheadAttention", t.module_name(n.target),
                {"num_heads": m.num_heads, "mode": "self", "causal": False, "dropout": float(m.attn_drop.p),
                 "bias": has_bias}, [t.value(n.args[0])], weights, n)
    if m.proj_drop.p:
        src = t.add("Dropout", f"{t.module_name(n.target)}_drop", {"p": float(m.proj_drop.p)}, [src], None, n)
    return src
