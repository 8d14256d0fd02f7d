"""Convolution, pooling, padding and up-sampling: Conv1d/2d, DepthwiseConv2d, SeparableConv2d,
ConvTranspose1d/2d, Max/AvgPool1d/2d, AdaptiveAvg/MaxPool1d/2d, GlobalAvg/MaxPool, ZeroPad1d/2d,
Upsample1d/2d."""
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
        args = _conv_args(p, ins)
        pad = p["padding"]
        if pad == "same":
            args.append('padding="same"')
        elif pad != "valid" and any(pad):
            args.append(f"padding={_one(pad)}")
        if any(d != 1 for d in p["dilation"]):
            args.append(f"dilation={_one(p['dilation'])}")
        if p["groups"] != 1:
            args.append(f"groups={p['groups']}")
        return _conv_layer(f"Conv{nd}d", p, args)
    return emit


def _conv_args(p, ins) -> list[str]:
    """in_channels, out_channels, kernel_size and a stride other than 1, as a conv layer's arguments."""
    args = [str(ins[0].shape[0]), str(p["filters"]), _one(p["kernel_size"])]
    if any(s != 1 for s in p["stride"]):
        args.append(f"stride={_one(p['stride'])}")
    return args


def _conv_layer(layer: str, p, args: list[str]) -> Emit:
    """nn.<layer>(args, bias=False when off), its activation and its weight initialisation."""
    if not p["bias"]:
        args.append("bias=False")
    return Emit(init=f"nn.{layer}({', '.join(args)})", call=activation_call(p["activation"], "{self}({0})"),
                helpers=init_helpers(p), extra_init=init_lines(p))


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


def _tconv_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        out = []
        for i in range(nd):
            if p["output_padding"][i] >= max(p["stride"][i], 1) and p["output_padding"][i] > 0:
                raise ShapeError("output_padding must be smaller than stride", kind="invalid-param")
            n = ((x.shape[1 + i] - 1) * p["stride"][i] - 2 * p["padding"][i] + (p["kernel_size"][i] - 1)
                 + p["output_padding"][i] + 1)
            if n < 1:
                raise ShapeError(f"padding {p['padding'][i]} leaves no output for an input of {x}", kind="kernel")
            out.append(n)
        return TensorSpec((p["filters"],) + tuple(out))
    return infer


def _tconv_emit(nd):
    def emit(p, ins):
        args = _conv_args(p, ins)
        if any(p["padding"]):
            args.append(f"padding={_one(p['padding'])}")
        if any(p["output_padding"]):
            args.append(f"output_padding={_one(p['output_padding'])}")
        return _conv_layer(f"ConvTranspose{nd}d", p, args)
    return emit


_TCONV_RULES = {
    1: "(C, L) -> (filters, L') with L' = (L - 1)*stride - 2*padding + kernel_size + output_padding",
    2: "(C, H, W) -> (filters, H', W') with H' = (H - 1)*stride - 2*padding + kernel_size + output_padding",
}

for _nd in (1, 2):
    register(Block(
        type=f"ConvTranspose{_nd}d", category="Convolution", default_name=f"conv_transpose{_nd}d",
        keras=f"Conv{_nd}DTranspose", shape_rule=_TCONV_RULES[_nd],
        help=f"Transposed {_nd}-D convolution (learned up-sampling) over a {SPATIAL[_nd]} input.",
        params=(
            Param("filters", "int", 32, min=1, max=100_000, help="Output channels (out_channels)."),
            Param("kernel_size", "size", 2, min=1, max=1024, length=_nd, help="Kernel size."),
            Param("stride", "size", 2, min=1, max=1024, length=_nd, help="Up-sampling factor."),
            Param("padding", "size", 0, min=0, max=1024, length=_nd,
                  help="Implicit zero padding removed from the output."),
            Param("output_padding", "size", 0, min=0, max=1024, length=_nd,
                  help="Extra rows/columns added to one side."),
            Param("bias", "bool", True, help="Learn an additive bias."),
            activation_param(),
            init_param(),
        ),
        infer=_tconv_infer(_nd), emit=_tconv_emit(_nd), short=_conv_short,
        count_params=lambda p, ins: (ins[0].shape[0] * p["filters"] * math.prod(p["kernel_size"])
                                     + (p["filters"] if p["bias"] else 0)),
    ))


def _pool_stride(p):
    return tuple(s if s else k for s, k in zip(p["stride"], p["kernel_size"]))


def _pool_len(n: int, k: int, s: int, pad: int, ceil: bool) -> int:
    """PyTorch's pooled length; with ceil_mode a last window may start in the input or left padding."""
    if not ceil:
        return _out_len(n, k, s, pad, 1)
    out = -(-(n + 2 * pad - k) // s) + 1
    return out - 1 if (out - 1) * s >= n + pad else out


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
            out.append(_pool_len(x.shape[1 + i], k, stride[i], pad, p["ceil_mode"]))
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
        if p["ceil_mode"]:
            args.append("ceil_mode=True")
        if not p.get("count_include_pad", True):
            args.append("count_include_pad=False")
        return Emit(init=f"nn.{kind}Pool{nd}d({', '.join(args)})", call="{self}({0})")
    return emit


def _pool_rule(kind: str, nd: int) -> str:
    if nd == 2:
        return f"(C, H, W) -> (C, H', W'), each size as for {kind}Pool1d"
    return ("(C, L) -> (C, L') with L' = (L + 2*padding - kernel_size) // stride + 1 (stride 0 = kernel_size; "
            "ceil_mode rounds up, keeping a last window that starts inside the input)")


def _pool_params(kind: str, nd: int) -> tuple[Param, ...]:
    params = (
        Param("kernel_size", "size", 2, min=1, max=1024, length=nd, help="Window size (Keras: pool_size)."),
        Param("stride", "size", 0, min=0, max=1024, length=nd, help="Step between windows; 0 = the window size."),
        Param("padding", "size", 0, min=0, max=512, length=nd, help="Implicit padding on both sides."),
        Param("ceil_mode", "bool", False, label="Round up (ceil_mode)",
              help="Round the output size up, keeping a partial last window (Keras padding='same' with stride "
                   "equal to the pool size behaves so); off: drop it, as Keras 'valid'."),
    )
    if kind == "Avg":
        params += (Param("count_include_pad", "bool", True, label="Count padding",
                         help="Average padded zeros in with the values; off: divide by the values in the "
                              "window only (as Keras 'same')."),)
    return params


for _nd in (1, 2):
    for _kind, _keras in (("Max", "MaxPooling"), ("Avg", "AveragePooling")):
        register(Block(
            type=f"{_kind}Pool{_nd}d", category="Convolution", default_name=f"{_kind.lower()}_pool{_nd}d",
            shape_rule=_pool_rule(_kind, _nd),
            keras=f"{_keras}{_nd}D",
            help=f"{'Maximum' if _kind == 'Max' else 'Average'} over windows of a {SPATIAL[_nd]} input "
                 f"(Keras: {_keras}{_nd}D).",
            params=_pool_params(_kind, _nd),
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


def _global_emit(reduce: str):
    def emit(p, ins):
        if p["layout"] == "sequence":
            return Emit(call=f"{{0}}.{reduce}(dim=1)")
        dims = tuple(range(2, ins[0].rank + 1))
        return Emit(call=f"{{0}}.{reduce}(dim=" + (lit(dims[0]) if len(dims) == 1 else lit(dims)) + ")")
    return emit


_GLOBAL = (
    ("Avg", "Average", "mean", "Averages away every position", "mean"),
    ("Max", "Max", "amax", "Keeps each channel's maximum over every position", "max"),
)

for _kind, _keras, _reduce, _what, _word in _GLOBAL:
    register(Block(
        type=f"Global{_kind}Pool", category="Convolution", default_name=f"global_{_kind.lower()}_pool",
        shape_rule="(C, L) or (C, H, W) -> (C,) with layout 'channels_first'; (T, F) -> (F,) with 'sequence'",
        keras=f"Global{_keras}Pooling1D/2D",
        help=f"{_what}: (C, H, W) or (C, L) -> (C,) with layout 'channels_first'; "
             f"(T, F) -> (F,) with layout 'sequence' ({_word} pooling over time).",
        params=(Param("layout", "choice", "channels_first", choices=("channels_first", "sequence"),
                      help="'channels_first' for conv features, 'sequence' for (T, F) sequences."),),
        infer=_gap_infer, emit=_global_emit(_reduce),
        short=lambda p: "" if p["layout"] == "channels_first" else "over time",
    ))


# ----------------------------------------------------------------------------- adaptive pooling

def _adaptive_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        return TensorSpec((x.shape[0],) + p["output_size"])
    return infer


def _adaptive_emit(kind, nd):
    def emit(p, ins):
        size = lit(p["output_size"]) if nd == 2 else lit(p["output_size"][0])
        return Emit(init=f"nn.Adaptive{kind}Pool{nd}d({size})", call="{self}({0})")
    return emit


for _nd in (1, 2):
    for _kind, _word in (("Avg", "Averages"), ("Max", "Takes the maximum")):
        register(Block(
            type=f"Adaptive{_kind}Pool{_nd}d", category="Convolution",
            default_name=f"adaptive_{_kind.lower()}_pool{_nd}d",
            shape_rule=f"{SPATIAL[_nd]} -> (C, " + ("H', W')" if _nd == 2 else "L')") + " = (C, output_size) "
                       "whatever the input size",
            help=f"{_word} over windows sized to give a fixed output size, whatever the input's (torchvision's "
                 f"VGG and AlexNet use AdaptiveAvgPool2d((7, 7))). No Keras layer: output size 1 is "
                 f"Global{_kind.replace('Avg', 'Average')}Pooling{_nd}D(keepdims=True).",
            params=(Param("output_size", "size", 1, min=1, max=4096, length=_nd,
                          help="Output " + ("(height, width)" if _nd == 2 else "length") + "."),),
            infer=_adaptive_infer(_nd), emit=_adaptive_emit(_kind, _nd),
            short=lambda p: "x".join(str(v) for v in p["output_size"]),
        ))


# ----------------------------------------------------------------------------- padding and up-sampling

_SIDES = {1: ("left", "right"), 2: ("left", "right", "top", "bottom")}


def _zeropad_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        pads = [p[side] for side in _SIDES[nd]]
        grown = tuple(x.shape[-1 - i] + pads[2 * i] + pads[2 * i + 1] for i in range(nd))
        return TensorSpec((x.shape[0],) + grown[::-1])
    return infer


def _zeropad_emit(nd):
    def emit(p, ins):
        pads = tuple(p[side] for side in _SIDES[nd])
        return Emit(init=f"nn.ZeroPad{nd}d({_one(pads)})", call="{self}({0})")
    return emit


for _nd in (1, 2):
    register(Block(
        type=f"ZeroPad{_nd}d", category="Convolution", default_name=f"zero_pad{_nd}d", keras=f"ZeroPadding{_nd}D",
        shape_rule=("(C, L) -> (C, left + L + right)" if _nd == 1 else
                    "(C, H, W) -> (C, top + H + bottom, left + W + right)"),
        help=f"Adds zeros around a {SPATIAL[_nd]} input, a different number on each side if need be "
             f"(Keras: ZeroPadding{_nd}D). Keras' 'same' convolution with stride 2 puts an odd extra zero at the "
             "end: ZeroPad with " + ("right" if _nd == 1 else "right and bottom") + " one more than "
             + ("left" if _nd == 1 else "left and top") + " (0 and 1 for a kernel of 3 on an even size), then a "
             "'valid' convolution, gives the same output.",
        params=tuple(Param(side, "int", 1, min=0, max=4096, help=f"Zeros added at the {side}"
                           + (" (before the first row)." if side == "top" else
                              " (after the last row)." if side == "bottom" else ".")) for side in _SIDES[_nd]),
        infer=_zeropad_infer(_nd), emit=_zeropad_emit(_nd),
        short=lambda p: ",".join(str(v) for v in p.values()),
    ))


def _upsample_check(p):
    if any(p["size"]) and not all(p["size"]):
        raise ParamError("size must be 0 everywhere (scale by scale_factor) or set for every dimension")


def _upsample_infer(nd):
    def infer(p, ins):
        x = ins[0]
        _spatial_check(x, nd)
        if all(p["size"]):
            return TensorSpec((x.shape[0],) + p["size"])
        return TensorSpec((x.shape[0],) + tuple(n * f for n, f in zip(x.shape[1:], p["scale_factor"])))
    return infer


def _upsample_emit(nd):
    def emit(p, ins):
        args = [f"size={_one(p['size'])}" if all(p["size"]) else f"scale_factor={_one(p['scale_factor'])}"]
        if p["mode"] == "bilinear":
            args.append('mode="bilinear"' if nd == 2 else 'mode="linear"')
        return Emit(init=f"nn.Upsample({', '.join(args)})", call="{self}({0})")
    return emit


for _nd in (1, 2):
    _dims = "L" if _nd == 1 else "H and W"
    register(Block(
        type=f"Upsample{_nd}d", category="Convolution", default_name=f"upsample{_nd}d", keras=f"UpSampling{_nd}D",
        shape_rule=f"{SPATIAL[_nd]} -> (C, " + ("L*scale_factor)" if _nd == 1 else "H*sh, W*sw)")
                   + ", or (C, size) when a size is set",
        help=f"Enlarges a {SPATIAL[_nd]} input by repeating values (nearest) or interpolating them "
             f"({'linear' if _nd == 1 else 'bilinear'}), by a whole factor or to a size; no weights "
             f"(Keras: UpSampling{_nd}D).",
        params=(
            Param("scale_factor", "size", 2, min=1, max=64, length=_nd,
                  help=f"Factor {_dims} are multiplied by (Keras: size)."),
            Param("size", "size", 0, min=0, max=100_000, length=_nd,
                  help=f"Output {_dims} instead of a factor; 0 = use scale_factor."),
            Param("mode", "choice", "nearest", choices=("nearest", "bilinear"),
                  help="'nearest' repeats values; 'bilinear' interpolates (Keras: interpolation"
                       + ("; PyTorch mode 'linear' for a (C, L) input)." if _nd == 1 else ").")),
        ),
        check=_upsample_check, infer=_upsample_infer(_nd), emit=_upsample_emit(_nd),
        short=lambda p: ("to " + "x".join(map(str, p["size"])) if all(p["size"])
                         else "x" + "x".join(map(str, p["scale_factor"]))),
    ))


# ----------------------------------------------------------------------------- depthwise and separable

def _depthwise(p, ins) -> dict:
    """The Conv2d parameters of a depthwise convolution: one group per input channel."""
    c = ins[0].shape[0]
    return dict(p, filters=c * p["depth_multiplier"], groups=c)


def _depthwise_params() -> tuple[Param, ...]:
    conv = {q.name: q for q in _conv_params(2)}
    return (
        Param("depth_multiplier", "int", 1, min=1, max=1024,
              help="Output channels per input channel (Keras: depth_multiplier)."),
        conv["kernel_size"], conv["stride"], conv["padding"], conv["dilation"],
    )


_conv2d_infer, _conv2d_emit = _conv_infer(2), _conv_emit(2)

register(Block(
    type="DepthwiseConv2d", category="Convolution", default_name="depthwise_conv2d", keras="DepthwiseConv2D",
    shape_rule="(C, H, W) -> (C*depth_multiplier, H', W'), each size as for Conv2d",
    help="Convolves each channel of a (C, H, W) input with its own filters: a Conv2d with groups = C "
         "(Keras: DepthwiseConv2D).",
    params=_depthwise_params() + _conv_params(2)[-3:],
    infer=lambda p, ins: _conv2d_infer(_depthwise(p, ins), ins),
    emit=lambda p, ins: _conv2d_emit(_depthwise(p, ins), ins),
    count_params=lambda p, ins: _conv_count(_depthwise(p, ins), ins),
    check=_conv_check,
    short=lambda p: f"x{p['depth_multiplier']}, k" + "x".join(str(v) for v in p["kernel_size"])
                    + ("" if p["activation"] == "none" else f", {p['activation']}"),
))


def _separable_infer(p, ins):
    return TensorSpec((p["filters"],) + _conv2d_infer(_depthwise(p, ins), ins).shape[1:])


def _separable_emit(p, ins):
    depthwise = _conv2d_emit(dict(_depthwise(p, ins), bias=False), ins).init
    mid = ins[0].shape[0] * p["depth_multiplier"]
    pointwise = f"nn.Conv2d({mid}, {p['filters']}, 1" + ("" if p["bias"] else ", bias=False") + ")"
    return Emit(init=f"nn.Sequential({depthwise}, {pointwise})",
                call=activation_call(p["activation"], "{self}({0})"),
                helpers=init_helpers(p), extra_init=init_lines(p))


def _separable_count(p, ins):
    mid = ins[0].shape[0] * p["depth_multiplier"]
    return (_conv_count(dict(_depthwise(p, ins), bias=False), ins)
            + mid * p["filters"] + (p["filters"] if p["bias"] else 0))


register(Block(
    type="SeparableConv2d", category="Convolution", default_name="separable_conv2d", keras="SeparableConv2D",
    shape_rule="(C, H, W) -> (filters, H', W'), each size as for Conv2d",
    help="A depthwise convolution (each channel with its own filters, no bias) then a 1x1 pointwise one mixing "
         "the channels, as one nn.Sequential: far fewer weights than a Conv2d (Keras: SeparableConv2D).",
    params=(_conv_params(2)[0],) + _depthwise_params() + _conv_params(2)[-3:],
    infer=_separable_infer, emit=_separable_emit, count_params=_separable_count,
    check=_conv_check, short=_conv_short,
))
