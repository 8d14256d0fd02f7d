"""Attention and transformer encoders. A mask is accepted only when it is Deepwire's own causal_mask() (an
exported model.py), which becomes the block's `causal` parameter."""
from __future__ import annotations

import torch.fx as fx
from torch import nn

from ..registry import helper_function, module
from ..translate import bind
from ..values import Pending, Unsupported


class Causal(Pending):
    what = "a causal mask"
    counts_as_tensor = False


class Attn(Pending):
    what = "an attention layer's (output, weights) pair"

    def __init__(self, make):
        self.make = make
        self.node_id: str | None = None

    def item(self, t, index):
        if index == 0:
            if self.node_id is None:
                self.node_id = self.make()
            return self.node_id
        raise Unsupported("uses the attention weights, which no Deepwire block returns")


@helper_function("causal_mask")
def causal_mask(t, n):
    return Causal()


def causal_from(t, value) -> bool:
    if value is None:
        return False
    if isinstance(value, fx.Node) and isinstance(t.env.get(value), Causal):
        return True
    raise Unsupported("is given a mask other than Deepwire's causal_mask(); only causal masks map to a block")


@module(nn.MultiheadAttention, extra_args=True)
def attention(t, n, m):
    if not m.batch_first:
        raise Unsupported("uses batch_first=False: build it with batch_first=True (Deepwire's sequences are "
                          "batch-first)")
    if m.bias_k is not None or m.add_zero_attn:
        raise Unsupported("with add_bias_kv or add_zero_attn has no Deepwire block")
    args = bind(n, ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask"))
    if args.get("key_padding_mask") is not None:
        raise Unsupported("is given a key_padding_mask, which no Deepwire block takes")
    causal = causal_from(t, args.get("attn_mask"))
    if args.get("is_causal") and not causal:
        raise Unsupported("is_causal needs a causal attn_mask")
    q, k, v = args["query"], args["key"], args["value"]
    mode = "self" if q is k is v else "query_key_value"
    srcs = [t.value(q)] if mode == "self" else [t.value(q), t.value(k), t.value(v)]
    params = {"num_heads": m.num_heads, "mode": mode, "causal": causal, "dropout": float(m.dropout),
              "bias": m.in_proj_bias is not None or m.out_proj.bias is not None}
    name, weights = t.module_name(n.target), m.state_dict()
    return Attn(lambda: t.add("MultiheadAttention", name, params, srcs, weights, n))


def encoder_kwargs(t, n, names) -> bool:
    """Whether an encoder's call is causal; `names` are its (mask, padding mask, is_causal) arguments."""
    kwargs = dict(zip(("src",) + names, n.args))
    kwargs.update(n.kwargs)
    if kwargs.get(names[1]) is not None:
        raise Unsupported(f"is given a {names[1]}, which no Deepwire block takes")
    causal = causal_from(t, kwargs.get(names[0]))
    if kwargs.get("is_causal") and not causal:
        raise Unsupported("is_causal needs a causal mask")
    return causal


def encoder_layer(t, n, layer, name, src, causal):
    if not layer.self_attn.batch_first:
        raise Unsupported("uses batch_first=False: build it with batch_first=True")
    act = getattr(layer, "activation_relu_or_gelu", 0)
    activation = {1: "relu", 2: "gelu"}.get(act)
    if activation is None:
        raise Unsupported("uses an activation other than relu or gelu")
    if layer.norm1.eps != 1e-5 or layer.norm2.eps != 1e-5:
        raise Unsupported(f"uses layer_norm_eps={layer.norm1.eps}; Deepwire's encoder layer uses 1e-5")
    if layer.linear1.bias is None:
        raise Unsupported("without bias has no Deepwire block")
    params = {"nhead": layer.self_attn.num_heads, "dim_feedforward": layer.linear1.out_features,
              "dropout": float(layer.dropout.p), "activation": activation, "norm_first": bool(layer.norm_first),
              "causal": causal}
    return t.add("TransformerEncoderLayer", name, params, [src], layer.state_dict(), n)


@module(nn.TransformerEncoderLayer, extra_args=True)
def transformer_encoder_layer(t, n, m):
    causal = encoder_kwargs(t, n, ("src_mask", "src_key_padding_mask", "is_causal"))
    return encoder_layer(t, n, m, t.module_name(n.target), t.value(n.args[0]), causal)


@module(nn.TransformerEncoder, extra_args=True)
def transformer_encoder(t, n, m):
    causal = encoder_kwargs(t, n, ("mask", "src_key_padding_mask", "is_causal"))
    name = t.module_name(n.target)
    src = t.value(n.args[0])
    for i, layer in enumerate(m.layers):
        src = encoder_layer(t, n, layer, f"{name}_{i}", src, causal)
    if m.norm is not None:
        norm = m.norm
        if not isinstance(norm, nn.LayerNorm) or not norm.elementwise_affine or norm.bias is None:
            raise Unsupported("has a final norm Deepwire cannot express")
        src = t.add("LayerNorm", f"{name}_norm", {"eps": float(norm.eps)}, [src], norm.state_dict(), n)
    return src
