"""Input/Output and the core layers: Linear, Activation, Dropout, BatchNorm, LayerNorm, Embedding."""
from __future__ import annotations

from .base import (
    ACTIVATIONS,
    ACTIVATIONS_KERAS,
    FLOAT,
    TOKENS,
    Block,
    Emit,
    Param,
    ParamError,
    Ports,
    ShapeError,
    TensorSpec,
    activation_call,
    activation_param,
    init_helpers,
    init_lines,
    init_param,
    lit,
    need_rank,
    register,
)

NO_PORTS = Ports(names=())

register(Block(
    type="Input", category="Input/Output", default_name="input",
    shape_rule="no input -> `shape` as declared, float32 or int64 token ids",
    help="Where data enters the model. Shape excludes the batch: (features,), (T, F) for "
         "sequences, (C, H, W) for images; dtype int64 for token ids (Keras: Input).",
    params=(
        Param("shape", "ints", (784,), min=1, max=1_000_000, help="Shape of one sample, without the batch."),
        Param("dtype", "choice", FLOAT, label="Data type", choices=(FLOAT, TOKENS),
              help="float32 for numbers, int64 for token ids (feed an Embedding)."),
    ),
    ports=NO_PORTS,
    infer=lambda p, ins: TensorSpec(p["shape"], p["dtype"]),
    emit=lambda p, ins: Emit(call=""),
    accepts_tokens=True,
    short=lambda p: "x".join(str(d) for d in p["shape"]) + (" tokens" if p["dtype"] == TOKENS else ""),
))

register(Block(
    type="Output", category="Input/Output", default_name="output",
    shape_rule="S -> S (the value the model returns)",
    help="Marks a model output. A model with several outputs returns them as a tuple.",
    infer=lambda p, ins: ins[0],
    emit=lambda p, ins: Emit(call="{0}"),
    accepts_tokens=True,
))


def _linear_infer(p, ins):
    x = ins[0]
    if x.rank == 0:
        raise ShapeError("needs an input with at least one dimension", kind="rank")
    return TensorSpec(x.shape[:-1] + (p["units"],))


register(Block(
    type="Linear", category="Core", default_name="dense", keras="Dense",
    fixes=lambda spec, wanted: ({"units": wanted or spec.shape[-1]},) if spec.rank else (),
    shape_rule="(..., F) -> (..., units) on the last dimension",
    help="Fully connected layer on the last dimension: y = x W^T + b (Keras: Dense).",
    params=(
        Param("units", "int", 128, min=1, max=1_000_000, help="Output features (out_features)."),
        Param("bias", "bool", True, help="Learn an additive bias."),
        activation_param(),
        init_param(),
    ),
    infer=_linear_infer,
    count_params=lambda p, ins: ins[0].shape[-1] * p["units"] + (p["units"] if p["bias"] else 0),
    emit=lambda p, ins: Emit(
        init=f"nn.Linear({ins[0].shape[-1]}, {p['units']}" + ("" if p["bias"] else ", bias=False") + ")",
        call=activation_call(p["activation"], "{self}({0})"),
        helpers=init_helpers(p), extra_init=init_lines(p)),
    short=lambda p: f"{p['units']}" + ("" if p["activation"] == "none" else f", {p['activation']}"),
))

register(Block(
    type="Activation", category="Core", default_name="activation",
    shape_rule="S -> S",
    help="An element-wise non-linearity. Softmax works on the last dimension; a final "
         "Softmax or Sigmoid is taken into account by the loss, never applied twice.",
    params=(Param("function", "choice", "relu", choices=ACTIVATIONS[1:],
                  help=f"Which activation; {ACTIVATIONS_KERAS}."),),
    infer=lambda p, ins: ins[0],
    emit=lambda p, ins: Emit(call=activation_call(p["function"], "{0}")),
    short=lambda p: p["function"],
))


def _prelu_emit(p, ins):
    args = [str(ins[0].shape[0])] if p["per_channel"] else []
    if p["slope"] != 0.25:
        args.append(f"init={lit(p['slope'])}")
    return Emit(init=f"nn.PReLU({', '.join(args)})", call="{self}({0})")


register(Block(
    type="PReLU", category="Core", default_name="prelu", keras="PReLU",
    shape_rule="S -> S",
    help="Leaky ReLU whose negative slope is learned: max(0, x) + a * min(0, x), with one slope for all "
         "values or one per channel (dimension 0: features, or C of (C, L) and (C, H, W)). Keras' PReLU "
         "learns one per value unless shared_axes shares it.",
    params=(
        Param("per_channel", "bool", False, label="One slope per channel",
              help="One slope per channel (PyTorch num_parameters=C; Keras shared_axes over the positions); "
                   "off: a single slope (num_parameters=1)."),
        Param("slope", "float", 0.25, label="Initial slope", min=-10.0, max=10.0,
              help="The slope's starting value (PyTorch: init; Keras: alpha_initializer, zeros by default)."),
    ),
    infer=lambda p, ins: ins[0],
    count_params=lambda p, ins: ins[0].shape[0] if p["per_channel"] else 1,
    emit=_prelu_emit,
    short=lambda p: "per channel" if p["per_channel"] else "",
))

register(Block(
    type="Dropout", category="Core", default_name="dropout",
    shape_rule="S -> S",
    help="Zeroes a random fraction of values while training; identity in evaluation.",
    params=(Param("p", "float", 0.5, label="Probability (p)", min=0.0, max=1.0,
                  help="Probability of zeroing a value (Keras: rate)."),),
    infer=lambda p, ins: ins[0],
    emit=lambda p, ins: Emit(init=f"nn.Dropout({lit(p['p'])})", call="{self}({0})"),
    short=lambda p: f"p={p['p']:g}",
))


def _bn_infer(p, ins):
    need_rank(ins[0], (1, 2, 3), "(F,), (C, L) or (C, H, W)", "insert a Reshape or Flatten")
    return ins[0]


def _bn_emit(p, ins):
    x = ins[0]
    kind = "BatchNorm2d" if x.rank == 3 else "BatchNorm1d"
    return Emit(init=f"nn.{kind}({x.shape[0]}, eps={lit(p['eps'])}, momentum={lit(p['momentum'])})",
                call="{self}({0})")


register(Block(
    type="BatchNorm", category="Normalization", default_name="batch_norm", keras="BatchNormalization",
    shape_rule="(F,), (C, L) or (C, H, W) -> the same shape",
    help="Normalises each channel (dimension 0: features, or C of (C, L) and (C, H, W)) over the "
         "batch; keeps running statistics for evaluation.",
    params=(
        Param("eps", "float", 1e-5, label="Epsilon", min=1e-12, max=1.0, help="Added to the variance for stability."),
        Param("momentum", "float", 0.1, min=0.0, max=1.0,
              help="Weight of the new batch in the running statistics (Keras' momentum is 1 - this)."),
    ),
    infer=_bn_infer,
    count_params=lambda p, ins: 2 * ins[0].shape[0],
    emit=_bn_emit,
))

register(Block(
    type="LayerNorm", category="Normalization", default_name="layer_norm", keras="LayerNormalization",
    shape_rule="(..., F) -> (..., F), normalised over the last dimension",
    help="Normalises over the last dimension of each sample, with a learned scale and shift.",
    params=(Param("eps", "float", 1e-5, label="Epsilon", min=1e-12, max=1.0,
                  help="Added to the variance for stability."),),
    infer=lambda p, ins: ins[0],
    count_params=lambda p, ins: 2 * ins[0].shape[-1],
    emit=lambda p, ins: Emit(init=f"nn.LayerNorm({ins[0].shape[-1]}, eps={lit(p['eps'])})", call="{self}({0})"),
))


def _embedding_infer(p, ins):
    x = ins[0]
    if x.dtype != TOKENS:
        raise ShapeError("needs token ids (an Input with dtype int64) but receives float32 values: "
                         "set the Input's dtype to int64, or use a Linear layer for numbers", kind="dtype")
    return TensorSpec(x.shape + (p["embedding_dim"],))


register(Block(
    type="Embedding", category="Core", default_name="embedding",
    shape_rule="(...) int64 -> (..., embedding_dim), e.g. (T,) -> (T, embedding_dim)",
    help="Looks up a learned vector for each token id: (T,) int64 -> (T, embedding_dim).",
    params=(
        Param("num_embeddings", "int", 10000, min=1, max=10_000_000, help="Vocabulary size (Keras: input_dim)."),
        Param("embedding_dim", "int", 64, min=1, max=100_000, help="Size of each vector (Keras: output_dim)."),
        init_param(),
    ),
    infer=_embedding_infer,
    accepts_tokens=True,
    count_params=lambda p, ins: p["num_embeddings"] * p["embedding_dim"],
    emit=lambda p, ins: Emit(init=f"nn.Embedding({p['num_embeddings']}, {p['embedding_dim']})",
                             call="{self}({0})", helpers=init_helpers(p), extra_init=init_lines(p)),
    short=lambda p: f"{p['num_embeddings']}x{p['embedding_dim']}",
    token_bound=lambda p: p["num_embeddings"],
))

__all__ = ["ParamError"]
