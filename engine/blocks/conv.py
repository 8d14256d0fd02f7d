"""Convolution and pooling: Conv1d, Conv2d, ConvTranspose2d, Max/AvgPool1d/2d, GlobalAvgPool."""
from __future__ import annotations

import math

from .base import (
    Block,
    Emit,
    Param,
    ParamError,
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

SPATIAL = {1: "(C, L)", 2: "(C, H, W)"}
RESHAPE_HINT = {1: "insert a Reshape to (C, L), or a Permute to turn (T, F) into (F, T)",
                2: "insert a Reshape to (C, H, W)"}


def _out_len(n: int, k: int, s: int, pad: int, d: int) -> int:
    return (n + 2 * pad - d * (k - 1) - 1) // s + 1


def _spatial_check(x: TensorSpec, nd: int) -> None:
    need_rank(x, (nd + 1,), SPATIAL[nd], RESHAPE_HINT[nd])


def _padding(p, nd) -> tuple[int, ...]:
    pad = p["padding"]
    if pad == "valid":
        return (0,) * nd
    if pad == "same":
        return tuple(p["dilation"][i] * (p["kernel_size"][i] - 1) // 2 for i in range(nd))
    return pad


def _conv_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        c = x.shape[0]
        if c % p["groups"] or p["filters"] % p["groups"]:
            raise ShapeError(f"groups={p['groups']} must divide both the input channels ({c}) and "
                             f"filters ({p['filters']})", kind="invalid-param")
        if p["padding"] == "same":
            return TensorSpec((p["filters"],) + x.shape[1:])
        pads = _padding(p, nd)
        out = []
        for i in range(nd):
            span = p["dilation"][i] * (p["kernel_size"][i] - 1) + 1
            if span > x.shape[1 + i] + 2 * pads[i]:
                raise ShapeError(f"kernel {span} is larger than the input {x} (padded by {pads[i]}): "
                                 "use a smaller kernel, padding 'same', or remove a pooling layer before it",
                                 kind="kernel")
            out.append(_out_len(x.shape[1 + i], p["kernel_size"][i], p["stride"][i], pads[i], p["dilation"][i]))
        return TensorSpec((p["filters"],) + tuple(out))
    return infer


def _conv_check(p):
    if p["padding"] == "same" and any(s != 1 for s in p["stride"]):
        raise ParamError("padding 'same' needs stride 1 in PyTorch: set stride 1, or give the padding as a number")


def _one(v: tuple) -> str:
    return lit(v[0]) if len(set(v)) == 1 else lit(v)


def _conv_emit(nd):
    def emit(p, ins):
        c = ins[0].shape[0]
        args = [str(c), str(p["filters"]), _one(p["kernel_size"])]
        if any(s != 1 for s in p["stride"]):
            args.append(f"stride={_one(p['stride'])}")
        pad = p["padding"]
        if pad == "same":
            args.append('padding="same"')
        elif pad != "valid" and any(pad):
            args.append(f"padding={_one(pad)}")
        if any(d != 1 for d in p["dilation"]):
            args.append(f"dilation={_one(p['dilation'])}")
        if p["groups"] != 1:
            args.append(f"groups={p['groups']}")
        if not p["bias"]:
            args.append("bias=False")
        return Emit(init=f"nn.Conv{nd}d({', '.join(args)})",
                    call=activation_call(p["activation"], "{self}({0})"),
                    helpers=init_helpers(p), extra_init=init_lines(p))
    return emit


def _conv_params(nd):
    return (
        Param("filters", "int", 32, min=1, max=100_000, help="Output channels (out_channels)."),
        Param("kernel_size", "size", 3, min=1, max=1024, length=nd, help="Kernel size."),
        Param("stride", "size", 1, min=1, max=1024, length=nd, help="Step between applications."),
        Param("padding", "padding", "valid", min=0, max=1024, length=nd, choices=("valid", "same"),
              help="'valid' (none), 'same' (output as large as the input; stride 1) or a number of zeros."),
        Param("dilation", "size", 1, min=1, max=1024, length=nd, help="Spacing between kernel taps."),
        Param("groups", "int", 1, min=1, max=100_000,
              help="Blocked connections; filters and channels must divide by it."),
        Param("bias", "bool", True, help="Learn an additive bias."),
        activation_param(),
        init_param(),
    )


def _conv_count(p, ins):
    return (p["filters"] * (ins[0].shape[0] // p["groups"]) * math.prod(p["kernel_size"])
            + (p["filters"] if p["bias"] else 0))


def _conv_short(p):
    k = "x".join(str(v) for v in p["kernel_size"])
    act = "" if p["activation"] == "none" else f", {p['activation']}"
    return f"{p['filters']}, k{k}{act}"


_CONV_RULES = {
    1: "(C, L) -> (filters, L') with L' = (L + 2*padding - dilation*(kernel_size-1) - 1) // stride + 1; "
       "'same' keeps L",
    2: "(C, H, W) -> (filters, H', W'), each size as for Conv1d; 'same' keeps H and W",
}

for _nd in (1, 2):
    register(Block(
        type=f"Conv{_nd}d", category="Convolution", default_name=f"conv{_nd}d", keras=f"Conv{_nd}D",
        shape_rule=_CONV_RULES[_nd],
        help=f"{_nd}-D convolution over a {SPATIAL[_nd]} input (Keras: Conv{_nd}D, channels first).",
        params=_conv_params(_nd), infer=_conv_infer(_nd), emit=_conv_emit(_nd), count_params=_conv_count,
        check=_conv_check, short=_conv_short,
    ))


def _tconv_infer(p, ins):
    x = ins[0]
    _spatial_check(x, 2)
    out = []
    for i in range(2):
        if p["output_padding"][i] >= max(p["stride"][i], 1) and p["output_padding"][i] > 0:
            raise ShapeError("output_padding must be smaller than stride", kind="invalid-param")
        n = ((x.shape[1 + i] - 1) * p["stride"][i] - 2 * p["padding"][i] + (p["kernel_size"][i] - 1)
             + p["output_padding"][i] + 1)
        if n < 1:
            raise ShapeError(f"padding {p['padding'][i]} leaves no output for an input of {x}", kind="kernel")
        out.append(n)
    return TensorSpec((p["filters"],) + tuple(out))


def _tconv_emit(p, ins):
    args = [str(ins[0].shape[0]), str(p["filters"]), _one(p["kernel_size"])]
    if any(s != 1 for s in p["stride"]):
        args.append(f"stride={_one(p['stride'])}")
    if any(p["padding"]):
        args.append(f"padding={_one(p['padding'])}")
    if any(p["output_padding"]):
        args.append(f"output_padding={_one(p['output_padding'])}")
    if not p["bias"]:
        args.append("bias=False")
    return Emit(init=f"nn.ConvTranspose2d({', '.join(args)})",
                call=activation_call(p["activation"], "{self}({0})"),
                helpers=init_helpers(p), extra_init=init_lines(p))


register(Block(
    type="ConvTranspose2d", category="Convolution", default_name="conv_transpose2d", keras="Conv2DTranspose",
    shape_rule="(C, H, W) -> (filters, H', W') with H' = (H - 1)*stride - 2*padding + kernel_size + output_padding",
    help="Transposed 2-D convolution (learned up-sampling) over a (C, H, W) input.",
    params=(
        Param("filters", "int", 32, min=1, max=100_000, help="Output channels (out_channels)."),
        Param("kernel_size", "size", 2, min=1, max=1024, length=2, help="Kernel size."),
        Param("stride", "size", 2, min=1, max=1024, length=2, help="Up-sampling factor."),
        Param("padding", "size", 0, min=0, max=1024, length=2, help="Implicit zero padding removed from the output."),
        Param("output_padding", "size", 0, min=0, max=1024, length=2, help="Extra rows/columns added to one side."),
        Param("bias", "bool", True, help="Learn an additive bias."),
        activation_param(),
        init_param(),
    ),
    infer=_tconv_infer, emit=_tconv_emit, short=_conv_short,
    count_params=lambda p, ins: (ins[0].shape[0] * p["filters"] * math.prod(p["kernel_size"])
                                 + (p["filters"] if p["bias"] else 0)),
))


def _pool_stride(p):
    return tuple(s if s else k for s, k in zip(p["stride"], p["kernel_size"]))


def _pool_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        stride = _pool_stride(p)
        out = []
        for i in range(nd):
            k, pad = p["kernel_size"][i], p["padding"][i]
            if pad * 2 > k:
                raise ShapeError(f"padding {pad} must be at most half the kernel ({k})", kind="invalid-param")
            if k > x.shape[1 + i] + 2 * pad:
                raise ShapeError(f"kernel {k} is larger than the input {x}: use a smaller pool, or remove "
                                 "a pooling layer before it", kind="kernel")
            out.append(_out_len(x.shape[1 + i], k, stride[i], pad, 1))
        return TensorSpec((x.shape[0],) + tuple(out))
    return infer


def _pool_emit(kind, nd):
    def emit(p, ins):
        args = [_one(p["kernel_size"])]
        stride = _pool_stride(p)
        if stride != p["kernel_size"]:
            args.append(f"stride={_one(stride)}")
        if any(p["padding"]):
            args.append(f"padding={_one(p['padding'])}")
        return Emit(init=f"nn.{kind}Pool{nd}d({', '.join(args)})", call="{self}({0})")
    return emit


def _pool_rule(kind: str, nd: int) -> str:
    if nd == 2:
        return f"(C, H, W) -> (C, H', W'), each size as for {kind}Pool1d"
    return "(C, L) -> (C, L') with L' = (L + 2*padding - kernel_size) // stride + 1 (stride 0 = kernel_size)"


for _nd in (1, 2):
    for _kind, _keras in (("Max", "MaxPooling"), ("Avg", "AveragePooling")):
        register(Block(
            type=f"{_kind}Pool{_nd}d", category="Convolution", default_name=f"{_kind.lower()}_pool{_nd}d",
            shape_rule=_pool_rule(_kind, _nd),
            keras=f"{_keras}{_nd}D",
            help=f"{'Maximum' if _kind == 'Max' else 'Average'} over windows of a {SPATIAL[_nd]} input "
                 f"(Keras: {_keras}{_nd}D).",
            params=(
                Param("kernel_size", "size", 2, min=1, max=1024, length=_nd, help="Window size (Keras: pool_size)."),
                Param("stride", "size", 0, min=0, max=1024, length=_nd,
                      help="Step between windows; 0 = the window size."),
                Param("padding", "size", 0, min=0, max=512, length=_nd, help="Implicit padding on both sides."),
            ),
            infer=_pool_infer(_nd), emit=_pool_emit(_kind, _nd),
            short=lambda p: "k" + "x".join(str(v) for v in p["kernel_size"]),
        ))


def _gap_infer(p, ins):
    x = ins[0]
    if p["layout"] == "sequence":
        need_rank(x, (2,), "(T, F)", "use layout 'channels_first' for (C, L) or (C, H, W) inputs")
        return TensorSpec((x.shape[1],))
    need_rank(x, (2, 3), "(C, L) or (C, H, W)", "use layout 'sequence' to average a (T, F) sequence over time")
    return TensorSpec((x.shape[0],))


def _gap_emit(p, ins):
    if p["layout"] == "sequence":
        return Emit(call="{0}.mean(dim=1)")
    dims = tuple(range(2, ins[0].rank + 1))
    return Emit(call="{0}.mean(dim=" + (lit(dims[0]) if len(dims) == 1 else lit(dims)) + ")")


register(Block(
    type="GlobalAvgPool", category="Convolution", default_name="global_avg_pool",
    shape_rule="(C, L) or (C, H, W) -> (C,) with layout 'channels_first'; (T, F) -> (F,) with 'sequence'",
    keras="GlobalAveragePooling1D/2D",
    help="Averages away every position: (C, H, W) or (C, L) -> (C,) with layout 'channels_first'; "
         "(T, F) -> (F,) with layout 'sequence' (mean pooling over time).",
    params=(Param("layout", "choice", "channels_first", choices=("channels_first", "sequence"),
                  help="'channels_first' for conv features, 'sequence' for (T, F) sequences."),),
    infer=_gap_infer, emit=_gap_emit,
    short=lambda p: "" if p["layout"] == "channels_first" else "over time",
))
