"""Layers with weights, and the simple ones around them: each becomes one block, its weights the module's
state_dict unchanged (Deepwire's blocks name their tensors as torch.nn does)."""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..registry import function, module
from ..translate import bind, compact
from ..values import Param, Unsupported
from .tensors import reshape


@module(nn.Identity, subclasses=True, extra_args=True)
def identity(t, n, m):
    return t.value(n.args[0])


@module(nn.Linear)
def linear(t, n, m):
    return t.layer(n, "Linear", {"units": m.out_features, "bias": m.bias is not None}, m.state_dict())


@module(nn.Conv1d, nn.Conv2d)
def conv(t, n, m):
    if m.padding_mode != "zeros":
        raise Unsupported(f"with padding_mode={m.padding_mode!r} has no Deepwire block (only zeros)")
    if isinstance(m.padding, str):
        padding = m.padding
    else:
        padding = "valid" if not any(m.padding) else compact(m.padding)
    nd = 1 if isinstance(m, nn.Conv1d) else 2
    params = {"filters": m.out_channels, "kernel_size": compact(m.kernel_size), "stride": compact(m.stride),
              "padding": padding, "dilation": compact(m.dilation), "groups": m.groups, "bias": m.bias is not None}
    if nd == 2 and m.groups > 1 and m.groups == m.in_channels:   # one filter group per channel
        params = dict(params, depth_multiplier=m.out_channels // m.in_channels)
        del params["filters"], params["groups"]
        return t.layer(n, "DepthwiseConv2d", params, m.state_dict())
    separable = pointwise_after_depthwise(t, n, m)
    if separable is not None:
        return separable
    return t.layer(n, f"Conv{nd}d", params, m.state_dict())


def pointwise_after_depthwise(t, n, m):
    """Deepwire's SeparableConv2d as its export writes it: nn.Sequential(depthwise without bias, 1x1 conv), the
    depthwise block feeding only this one: the two become one SeparableConv2d again."""
    parent_name, _, index = n.target.rpartition(".")
    parent = t.gm.get_submodule(parent_name) if parent_name else None
    if index != "1" or not isinstance(parent, nn.Sequential) or len(parent) != 2 or m.kernel_size != (1, 1) \
            or m.stride != (1, 1) or m.groups != 1 or any(m.padding if not isinstance(m.padding, str) else ()):
        return None
    depthwise = parent[0]
    src = t.value(n.args[0])
    if (not isinstance(depthwise, nn.Conv2d) or depthwise.bias is not None or t.b.type_of(src) != "DepthwiseConv2d"
            or t.b.params_of(src).get("activation") != "none" or len(n.args[0].users) != 1
            or t.b.graph.consumers_of(src) or t.b.graph.node(src).name != t.module_name(parent_name + ".0")):
        return None
    params = {k: v for k, v in t.b.params_of(src).items() if k not in ("init",)}
    params.update(filters=m.out_channels, bias=m.bias is not None)
    weights = {f"0.{k}": v for k, v in depthwise.state_dict().items()}
    weights.update({f"1.{k}": v for k, v in m.state_dict().items()})
    ports = t.b.graph.inputs_of(src)
    inputs = [ports[p] for p in sorted(ports)]
    t.b.graph.remove_node(src)
    t.b.specs.pop(src, None)
    t.b.node_weights.pop(src, None)
    return t.add("SeparableConv2d", t.module_name(parent_name), params, inputs, weights, n)


@module(nn.ConvTranspose2d)
def conv_transpose(t, n, m):
    if m.groups != 1 or any(d != 1 for d in m.dilation) or m.padding_mode != "zeros":
        raise Unsupported("with groups, dilation or a padding mode has no Deepwire block")
    params = {"filters": m.out_channels, "kernel_size": compact(m.kernel_size),
              "stride": compact(m.stride), "padding": compact(m.padding),
              "output_padding": compact(m.output_padding), "bias": m.bias is not None}
    return t.layer(n, "ConvTranspose2d", params, m.state_dict())


def batch_norm_params(m) -> dict:
    if not m.affine or not m.track_running_stats or m.momentum is None:
        raise Unsupported("without affine weights, running statistics or a momentum has no Deepwire block")
    return {"eps": float(m.eps), "momentum": float(m.momentum)}


@module(nn.BatchNorm1d, nn.BatchNorm2d)
def batch_norm(t, n, m):
    return t.layer(n, "BatchNorm", batch_norm_params(m), m.state_dict())


@module(nn.LayerNorm)
def layer_norm(t, n, m):
    shape = t.sample(n.args[0])
    if tuple(m.normalized_shape) != shape[-1:] or not m.elementwise_affine or m.bias is None:
        raise Unsupported("normalises over more than the last dimension or has no learned scale and shift; "
                          "Deepwire's LayerNorm normalises the last dimension")
    return t.layer(n, "LayerNorm", {"eps": float(m.eps)}, m.state_dict())


@module(nn.Dropout)
def dropout(t, n, m):
    return t.layer(n, "Dropout", {"p": float(m.p)})


@function(F.dropout)
def dropout_function(t, n):
    args = bind(n, ("input", "p", "training", "inplace"))
    return t.add("Dropout", "dropout", {"p": float(args.get("p", 0.5))}, [t.value(args["input"])], None, n)


@module(nn.Flatten, nn.Unflatten)
def flatten(t, n, m):
    return reshape(t, n, n.args[0])


@module(nn.Embedding)
def embedding(t, n, m):
    if m.max_norm is not None:
        raise Unsupported("with max_norm has no Deepwire block")
    if m.padding_idx is not None:
        t.notes.append(f"Embedding '{t.module_name(n.target)}': padding_idx={m.padding_idx} is not kept (its row "
                       "now trains like the others)")
    return t.layer(n, "Embedding", {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim},
                   m.state_dict())


@module(nn.ConvTranspose1d)
def conv_transpose_1d(t, n, m):
    if m.groups != 1 or any(d != 1 for d in m.dilation) or m.padding_mode != "zeros":
        raise Unsupported("with groups, dilation or a padding mode has no Deepwire block")
    params = {"filters": m.out_channels, "kernel_size": m.kernel_size[0], "stride": m.stride[0],
              "padding": m.padding[0], "output_padding": m.output_padding[0], "bias": m.bias is not None}
    return t.layer(n, "ConvTranspose1d", params, m.state_dict())


@module(nn.GroupNorm)
def group_norm(t, n, m):
    return t.layer(n, "GroupNorm", {"num_groups": m.num_groups, "eps": float(m.eps), "affine": bool(m.affine)},
                   m.state_dict())


@module(nn.InstanceNorm1d, nn.InstanceNorm2d)
def instance_norm(t, n, m):
    if m.track_running_stats:
        raise Unsupported("with track_running_stats has no Deepwire block (Deepwire's InstanceNorm normalises "
                          "each sample by its own statistics)")
    return t.layer(n, "InstanceNorm", {"eps": float(m.eps), "affine": bool(m.affine)}, m.state_dict())


def upsample(t, n, src_arg, scale_factor, mode: str, align_corners, name: str):
    shape = t.sample(src_arg)
    nd = len(shape) - 1
    if nd not in (1, 2):
        raise Unsupported(f"of a {shape} input has no Deepwire block ((C, L) or (C, H, W))")
    if mode not in ("nearest", "linear", "bilinear") or (mode != "nearest" and align_corners):
        raise Unsupported(f"with mode={mode!r}{' and align_corners' if align_corners else ''} has no Deepwire "
                          "block (nearest, or (bi)linear without align_corners)")
    out = t.sample(n)
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor] * nd
    whole = scale_factor is not None and all(float(f) == int(f) and f >= 1 for f in factors)
    params = {"mode": "nearest" if mode == "nearest" else "bilinear"}
    if whole:
        params["scale_factor"] = compact([int(f) for f in factors])
    else:
        params["size"] = compact(out[1:])
    return t.add(f"Upsample{nd}d", name, params, [t.value(src_arg)], None, n)


@module(nn.Upsample)
def upsample_module(t, n, m):
    return upsample(t, n, n.args[0], m.scale_factor, m.mode, m.align_corners, t.module_name(n.target))


@function(F.interpolate)
def interpolate(t, n):
    args = bind(n, ("input", "size", "scale_factor", "mode", "align_corners"))
    if args.get("recompute_scale_factor") or args.get("antialias"):
        raise Unsupported("with recompute_scale_factor or antialias has no Deepwire block")
    return upsample(t, n, args["input"], args.get("scale_factor"), args.get("mode", "nearest"),
                    args.get("align_corners"), "upsample")


def zero_pad(t, n, src_arg, pads, name: str):
    shape = t.sample(src_arg)
    nd = len(shape) - 1
    pads = list(pads)
    if nd not in (1, 2) or len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise Unsupported(f"pads {pads} of a {shape} input; Deepwire's ZeroPad adds zeros to L, or H and W")
    sides = ("left", "right") if nd == 1 else ("left", "right", "top", "bottom")
    return t.add(f"ZeroPad{nd}d", name, dict(zip(sides, pads)), [t.value(src_arg)], None, n)


@module(nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)
def zero_pad_module(t, n, m):
    if float(getattr(m, "value", 0.0)) != 0.0:
        raise Unsupported("pads with a value other than 0 has no Deepwire block")
    return zero_pad(t, n, n.args[0], m.padding, t.module_name(n.target))


@function(F.pad)
def pad_function(t, n):
    args = bind(n, ("input", "pad", "mode", "value"))
    if args.get("mode", "constant") != "constant" or float(args.get("value") or 0.0) != 0.0:
        raise Unsupported("other than with zeros has no Deepwire block")
    return zero_pad(t, n, args["input"], args["pad"], "zero_pad")


def parameters_of(t, n, names: tuple[str, ...]) -> dict:
    """The arguments `names` of a functional layer call, each a parameter of the module read in forward (a
    Param, taken as the block's weights) or None."""
    args = bind(n, ("input",) + names)
    found = {}
    for name in names:
        v = t.env.get(args.get(name)) if isinstance(args.get(name), fx.Node) else args.get(name)
        if v is not None and not isinstance(v, Param):
            raise Unsupported(f"is given a computed {name}; only the module's own parameters map to a block")
        found[name] = v
    return found


@function(F.layer_norm)
def layer_norm_function(t, n):
    """F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps) in a LayerNorm subclass."""
    args = bind(n, ("input", "normalized_shape", "weight", "bias", "eps"))
    shape = t.sample(args["input"])
    if tuple(args["normalized_shape"]) != shape[-1:]:
        raise Unsupported("normalises over more than the last dimension; Deepwire's LayerNorm normalises the last")
    params = parameters_of(t, n, ("weight", "bias"))
    src = t.value(args["input"])
    weight = params["weight"].take(t) if params["weight"] is not None else torch.ones(shape[-1])
    bias = params["bias"].take(t) if params["bias"] is not None else torch.zeros(shape[-1])
    return t.add("LayerNorm", "layer_norm", {"eps": float(args.get("eps", 1e-5))}, [src],
                 {"weight": weight, "bias": bias}, n)


@function(F.linear)
def linear_function(t, n):
    """F.linear(x, self.weight, self.bias) in a Linear subclass."""
    params = parameters_of(t, n, ("weight", "bias"))
    if params["weight"] is None:
        raise Unsupported("without a weight has no Deepwire block")
    src = t.value(n.args[0])
    weights = {"weight": params["weight"].take(t)}
    if params["bias"] is not None:
        weights["bias"] = params["bias"].take(t)
    return t.add("Linear", "linear", {"units": weights["weight"].shape[0], "bias": "bias" in weights}, [src],
                 weights, n)
