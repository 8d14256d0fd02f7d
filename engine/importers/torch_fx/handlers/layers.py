"""Layers with weights, and the simple ones around them: each becomes one block, its weights the module's
state_dict unchanged (Deepwire's blocks name their tensors as torch.nn does)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..registry import function, module
from ..translate import bind, compact
from ..values import Unsupported
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
    return t.layer(n, f"Conv{nd}d", params, m.state_dict())


@module(nn.ConvTranspose2d)
def conv_transpose(t, n, m):
    if m.groups != 1 or any(d != 1 for d in m.dilation) or m.padding_mode != "zeros":
        raise Unsupported("with groups, dilation or a padding mode has no Deepwire block")
    params = {"filters": m.out_channels, "kernel_size": compact(m.kernel_size),
              "stride": compact(m.stride), "padding": compact(m.padding),
              "output_padding": compact(m.output_padding), "bias": m.bias is not None}
    return t.layer(n, "ConvTranspose2d", params, m.state_dict())


@module(nn.BatchNorm1d, nn.BatchNorm2d)
def batch_norm(t, n, m):
    if not m.affine or not m.track_running_stats or m.momentum is None:
        raise Unsupported("without affine weights, running statistics or a momentum has no Deepwire block")
    return t.layer(n, "BatchNorm", {"eps": float(m.eps), "momentum": float(m.momentum)}, m.state_dict())


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
