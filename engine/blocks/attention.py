"""Attention: MultiheadAttention, TransformerEncoderLayer, PositionalEmbedding."""
from __future__ import annotations

from .base import (
    Block,
    Emit,
    Param,
    Ports,
    ShapeError,
    TensorSpec,
    init_helpers,
    init_lines,
    init_param,
    lit,
    need_rank,
    register,
)

SEQ_HINT = "insert a Reshape to (T, F) or an Embedding before it"


def _heads_check(e: int, heads: int) -> None:
    if e % heads:
        raise ShapeError(f"num_heads={heads} must divide the embedding size {e}: choose a divisor of {e}",
                         kind="invalid-param")


def _mha_ports(p):
    if p["mode"] == "self":
        return Ports(("in",))
    return Ports(("query", "key", "value"))


def _mha_infer(p, ins):
    for x in ins:
        need_rank(x, (2,), "(T, E) sequence", SEQ_HINT)
    q = ins[0]
    if len(ins) == 3:
        k, v = ins[1], ins[2]
        if k.shape[0] != v.shape[0]:
            raise ShapeError(f"key {k} and value {v} need the same length T", kind="merge")
    _heads_check(q.shape[1], p["num_heads"])
    return TensorSpec(q.shape)


def _mha_count(p, ins):
    e = ins[0].shape[1]
    kd = ins[1].shape[1] if len(ins) == 3 else e
    vd = ins[2].shape[1] if len(ins) == 3 else e
    return e * e + e * kd + e * vd + e * e + (4 * e if p["bias"] else 0)


def _mha_emit(p, ins):
    e = ins[0].shape[1]
    args = [str(e), str(p["num_heads"])]
    if p["dropout"]:
        args.append(f"dropout={lit(p['dropout'])}")
    if not p["bias"]:
        args.append("bias=False")
    if len(ins) == 3 and (ins[1].shape[1] != e or ins[2].shape[1] != e):
        args += [f"kdim={ins[1].shape[1]}", f"vdim={ins[2].shape[1]}"]
    args.append("batch_first=True")
    qkv = "{0}, {0}, {0}" if len(ins) == 1 else "{0}, {1}, {2}"
    key = "{0}" if len(ins) == 1 else "{1}"
    mask = f", attn_mask=causal_mask({{0}}.size(1), {key}.size(1), {{0}}.device)" if p["causal"] else ""
    helpers = init_helpers(p) + (("causal_mask",) if p["causal"] else ())
    return Emit(init=f"nn.MultiheadAttention({', '.join(args)})",
                call=f"{{self}}({qkv}{mask}, need_weights=False)[0]",
                helpers=helpers, extra_init=init_lines(p))


register(Block(
    type="MultiheadAttention", category="Attention", default_name="attention", keras="MultiHeadAttention",
    shape_rule="(T, E) -> (T, E); with query, key, value: (Tq, E), (Tk, Ek), (Tk, Ev) -> (Tq, E)",
    help="Scaled dot-product attention with several heads over (T, E) sequences: self-attention on one "
         "input, or separate query, key and value inputs; an optional causal mask hides later positions.",
    params=(
        Param("num_heads", "int", 4, label="Heads", min=1, max=1024,
              help="Attention heads; must divide the embedding size."),
        Param("mode", "choice", "self", choices=("self", "query_key_value"),
              help="'self': one input is query, key and value; 'query_key_value': three inputs."),
        Param("causal", "bool", False, help="Each position attends only to itself and earlier positions."),
        Param("dropout", "float", 0.0, min=0.0, max=1.0, help="Dropout on the attention weights."),
        Param("bias", "bool", True, help="Learn bias terms in the projections."),
        init_param(),
    ),
    ports=_mha_ports, infer=_mha_infer, emit=_mha_emit, count_params=_mha_count,
    short=lambda p: f"{p['num_heads']} heads" + (", causal" if p["causal"] else ""),
))


def _enc_infer(p, ins):
    x = ins[0]
    need_rank(x, (2,), "(T, E) sequence", SEQ_HINT)
    _heads_check(x.shape[1], p["nhead"])
    return x


def _enc_count(p, ins):
    e, ff = ins[0].shape[1], p["dim_feedforward"]
    return 4 * e * e + 4 * e + (e * ff + ff) + (ff * e + e) + 4 * e


def _enc_emit(p, ins):
    e = ins[0].shape[1]
    args = [str(e), str(p["nhead"]), f"dim_feedforward={p['dim_feedforward']}", f"dropout={lit(p['dropout'])}"]
    if p["activation"] != "relu":
        args.append(f"activation={lit(p['activation'])}")
    args.append("batch_first=True")
    if p["norm_first"]:
        args.append("norm_first=True")
    call = "{self}({0})"
    helpers = init_helpers(p)
    if p["causal"]:
        call = "{self}({0}, src_mask=causal_mask({0}.size(1), {0}.size(1), {0}.device))"
        helpers += ("causal_mask",)
    return Emit(init=f"nn.TransformerEncoderLayer({', '.join(args)})", call=call,
                helpers=helpers, extra_init=init_lines(p))


register(Block(
    type="TransformerEncoderLayer", category="Attention", default_name="encoder",
    shape_rule="(T, E) -> (T, E)",
    help="Self-attention followed by a feed-forward network, each with a residual connection and "
         "LayerNorm, over a (T, E) sequence.",
    params=(
        Param("nhead", "int", 4, label="Heads", min=1, max=1024,
              help="Attention heads; must divide the embedding size."),
        Param("dim_feedforward", "int", 256, min=1, max=1_000_000, help="Width of the feed-forward network."),
        Param("dropout", "float", 0.1, min=0.0, max=1.0, help="Dropout inside the layer."),
        Param("activation", "choice", "relu", choices=("relu", "gelu"), help="Feed-forward activation."),
        Param("norm_first", "bool", False, help="Pre-norm (LayerNorm before attention) instead of post-norm."),
        Param("causal", "bool", False, help="Each position attends only to itself and earlier positions."),
        init_param(),
    ),
    infer=_enc_infer, emit=_enc_emit, count_params=_enc_count,
    short=lambda p: f"{p['nhead']} heads, ff {p['dim_feedforward']}",
))


def _pos_emit(p, ins):
    t, e = ins[0].shape
    return Emit(init=f"PositionalEmbedding({t}, {e}, learned={p['kind'] == 'learned'})",
                call="{self}({0})", helpers=("PositionalEmbedding",))


def _pos_infer(p, ins):
    need_rank(ins[0], (2,), "(T, E) sequence", SEQ_HINT)
    return ins[0]


register(Block(
    type="PositionalEmbedding", category="Attention", default_name="positional_embedding",
    shape_rule="(T, E) -> (T, E)",
    help="Adds a position vector to each step of a (T, E) sequence so attention can tell positions "
         "apart: learned, or fixed sinusoids. After a ClassToken, the learned table is a ViT's (T+1, E) "
         "pos_embed (timm, torchvision's encoder.pos_embedding).",
    params=(Param("kind", "choice", "learned", choices=("learned", "sinusoidal"),
                  help="'learned': a trained table of T vectors; 'sinusoidal': fixed sine/cosine waves."),),
    infer=_pos_infer, emit=_pos_emit,
    count_params=lambda p, ins: ins[0].numel if p["kind"] == "learned" else 0,
    short=lambda p: p["kind"],
))
