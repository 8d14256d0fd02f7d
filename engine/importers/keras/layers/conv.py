"""Convolutions: Conv1D/2D, DepthwiseConv2D, SeparableConv2D, Conv1D/2DTranspose, and the layers that pad, crop
and up-sample an image: ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D (channels-last inputs become
channels-first). A 'same' convolution with a stride that pads one side more than the other (Keras puts the odd
zero at the end) becomes a ZeroPad block and a 'valid' convolution: exactly what Keras computes."""
from __future__ import annotations

import math
from typing import Any

from ...common import WeightsImportError
from ..reading import _what
from ..registry import (
    LayerHandler,
    LayerWeights,
    Skip,
    T,
    _act,
    _channels_first,
    _expect,
    _tensor,
    _tuple,
    kernel_and_bias,
    register,
)

SIDES = {1: (("left", "right"),), 2: (("top", "bottom"), ("left", "right"))}


def spatial(k, t: T, nd: int, cfg: dict, name: str) -> T:
    """The input of an `nd`-dimensional convolution or pooling, channels first."""
    perm = _channels_first(nd + 1) if cfg.get("data_format", "channels_last") != "channels_first" \
        else tuple(range(nd + 1))
    if len(t.perm) != nd + 1:
        raise Skip(f"needs a rank-{nd + 1} input")
    return k.ensure(t, perm, name)


def same_pads(k, t: T, nd: int, kernel, stride, dilation) -> list[tuple[int, int]]:
    """Keras' (TensorFlow's) 'same' padding of a channels-first input: (before, after) per spatial dim, the
    odd zero after."""
    pads = []
    for n, size, s, d in zip(k.b.specs[t.node].shape[1:], kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + d * (size - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def zero_pad(k, t: T, nd: int, pads: list[tuple[int, int]], name: str, where: str) -> str:
    """A ZeroPad block on the channels-first `t`; returns its node."""
    params = {side: pad[j] for (sides, pad) in zip(SIDES[nd], pads) for j, side in enumerate(sides)}
    return k.b.add(f"ZeroPad{nd}d", name, params, [t.node], where=where)


def conv_input(handler: LayerHandler, k, cfg: dict, t: T, nd: int, kernel, stride, dilation, name: str
               ) -> tuple[T, Any, list[str]]:
    """(the convolution's input, its Deepwire padding, the pad nodes added before it). Keras' 'same' with a
    stride pads (before, after); where they differ a ZeroPad block comes first and the convolution is 'valid'."""
    padding = cfg.get("padding", "valid")
    if padding == "valid":
        return t, "valid", []
    if padding != "same":
        raise Skip(f"with padding {_what(padding)} has no Deepwire block")
    if all(s == 1 for s in stride):
        return t, "same", []
    pads = same_pads(k, t, nd, kernel, stride, dilation)
    if all(a == b for a, b in pads):
        return t, ([a for a, _ in pads] if any(a for a, _ in pads) else "valid"), []
    node = zero_pad(k, t, nd, pads, f"{name}_pad", f"{handler.keras_class} '{name}'")
    return T(node, t.perm), "valid", [node]


def conv_geometry(cfg: dict, nd: int) -> tuple[list[int], list[int], list[int]]:
    kernel = _tuple(cfg["kernel_size"], nd)
    stride = _tuple(cfg.get("strides", 1), nd)
    dilation = _tuple(cfg.get("dilation_rate", 1), nd)
    if any(s > 1 for s in stride) and any(d > 1 for d in dilation):
        raise Skip("with both strides and dilation_rate above 1 is refused by Keras itself")
    return kernel, stride, dilation


class Convolution(LayerHandler):
    """The shared build of a convolution: its input channels first, kernel geometry and Keras' padding (a ZeroPad
    block first where 'same' pads unevenly), one block marked for the weights."""

    nd = 2

    def convolution(self, k, name, cfg, ins, type_name: str, params: dict, keras_params) -> T:
        """`params`: the block's own parameters; `keras_params(channels, kernel)`: Keras' count."""
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        kernel, stride, dilation = conv_geometry(cfg, nd)
        channels = k.b.specs[t.node].shape[0]
        activation = _act(cfg.get("activation"), name)
        t, padding, pads = conv_input(self, k, cfg, t, nd, kernel, stride, dilation, name)
        params = dict(params, kernel_size=kernel, stride=stride, dilation=dilation, activation=activation,
                      padding=padding, bias=bool(cfg.get("use_bias", True)))
        node = k.b.add(type_name, name, params, [t.node], where=f"{self.keras_class} '{name}'")
        k.count(self.keras_class, name, keras_params(channels, math.prod(kernel)), pads + [node])
        self.converts(k, node, name, cfg)
        return T(node, t.perm)


@register("Conv1D", nd=1)
@register("Conv2D", nd=2)
class Conv(Convolution):
    """Kernel (k..., in, out) -> weight (out, in, k...)."""

    def build(self, k, name, cfg, ins, kw):
        groups, filters = int(cfg.get("groups", 1)), int(cfg["filters"])
        bias = filters if cfg.get("use_bias", True) else 0
        return self.convolution(k, name, cfg, ins, f"Conv{self.nd}d", {"filters": filters, "groups": groups},
                                lambda c, kk: kk * (c // groups) * filters + bias)

    def weights(self, w: LayerWeights) -> dict:
        def weight(kernel):
            if kernel.ndim < 2:
                raise WeightsImportError(f"{w.where}: its kernel has shape {tuple(kernel.shape)}")
            return kernel.permute(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2)).contiguous()
        return kernel_and_bias(w, weight)


def depthwise_weight(kernel, where: str):
    """A depthwise kernel (kh, kw, in, multiplier) -> PyTorch's grouped weight (in * multiplier, 1, kh, kw):
    output channel i * multiplier + m, as Keras orders them."""
    if kernel.ndim != 4:
        raise WeightsImportError(f"{where}: its depthwise kernel has shape {tuple(kernel.shape)}, not (kh, kw, "
                                 "channels, multiplier)")
    kh, kw, c, m = kernel.shape
    return kernel.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()


@register("DepthwiseConv2D")
class DepthwiseConv(Convolution):
    """Depthwise kernel (kh, kw, in, multiplier) -> DepthwiseConv2d's weight (in * multiplier, 1, kh, kw)."""

    def build(self, k, name, cfg, ins, kw):
        mult, bias = int(cfg.get("depth_multiplier", 1)), bool(cfg.get("use_bias", True))
        return self.convolution(k, name, cfg, ins, "DepthwiseConv2d", {"depth_multiplier": mult},
                                lambda c, kk: kk * c * mult + (c * mult if bias else 0))

    def weights(self, w: LayerWeights) -> dict:
        return kernel_and_bias(w, lambda kernel: depthwise_weight(kernel, w.where))


@register("SeparableConv2D")
class SeparableConv(Convolution):
    """Depthwise kernel, pointwise kernel (1, 1, in * multiplier, filters), bias -> SeparableConv2d's
    depthwise `0.weight` and pointwise `1.weight`, `1.bias`."""

    def build(self, k, name, cfg, ins, kw):
        mult, filters = int(cfg.get("depth_multiplier", 1)), int(cfg["filters"])
        bias = filters if cfg.get("use_bias", True) else 0
        return self.convolution(k, name, cfg, ins, "SeparableConv2d",
                                {"filters": filters, "depth_multiplier": mult},
                                lambda c, kk: kk * c * mult + c * mult * filters + bias)

    def weights(self, w: LayerWeights) -> dict:
        arrays = w.arrays()
        bias = bool(w.cfg.get("use_bias", True))
        _expect(arrays, 3 if bias else 2, w.where)
        pointwise = _tensor(arrays[1])
        if pointwise.ndim != 4 or pointwise.shape[:2] != (1, 1):
            raise WeightsImportError(f"{w.where}: its pointwise kernel has shape {tuple(pointwise.shape)}, not "
                                     "(1, 1, channels, filters)")
        out = {"0.weight": depthwise_weight(_tensor(arrays[0]), w.where),
               "1.weight": pointwise.permute(3, 2, 0, 1).contiguous()}
        if bias:
            out["1.bias"] = _tensor(arrays[2]).reshape(-1)
        return out


@register("Conv1DTranspose", nd=1)
@register("Conv2DTranspose", nd=2)
class ConvTranspose(LayerHandler):
    """Kernel (k..., out, in) -> weight (in, out, k...). Padding as Keras' torch backend computes it (its
    'same' differs from TensorFlow's where Keras warns it does: then refused)."""

    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        kernel, stride, dilation = conv_geometry(cfg, nd)
        if any(d != 1 for d in dilation):
            raise Skip("with dilation_rate above 1 has no Deepwire block")
        filters, bias = int(cfg["filters"]), bool(cfg.get("use_bias", True))
        given = cfg.get("output_padding")
        given = _tuple(given, nd) if given is not None else [None] * nd
        padding, output_padding = [], []
        for size, s, op in zip(kernel, stride, given):
            if cfg.get("padding", "valid") == "valid":
                padding.append(0)
                output_padding.append(max(size, s) - size if op is None else op)
            elif cfg.get("padding") == "same":
                op = s - size % 2 if op is None else op
                pad = max(-((size % 2 - size + op) // 2), 0)
                out_pad = 2 * pad + size % 2 - size + op
                if pad > 0 and out_pad > 0:
                    raise Skip("with padding 'same' here pads differently in Keras' backends (Keras warns); use "
                               "an odd kernel size with stride 1 or a kernel size equal to the stride")
                padding.append(pad)
                output_padding.append(out_pad)
            else:
                raise Skip(f"with padding {_what(cfg.get('padding'))} has no Deepwire block")
        channels = k.b.specs[t.node].shape[0]
        params = {"filters": filters, "kernel_size": kernel, "stride": stride, "padding": padding,
                  "output_padding": output_padding, "bias": bias, "activation": _act(cfg.get("activation"), name)}
        keras_params = math.prod(kernel) * channels * filters + (filters if bias else 0)
        out = self.block(k, name, f"ConvTranspose{nd}d", params, t, keras_params)
        self.converts(k, out.node, name, cfg)
        return out

    def weights(self, w: LayerWeights) -> dict:
        def weight(kernel):
            if kernel.ndim != self.nd + 2:
                raise WeightsImportError(f"{w.where}: its kernel has shape {tuple(kernel.shape)}")
            return kernel.permute(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2)).contiguous()
        return kernel_and_bias(w, weight)


def _pairs(value, nd: int, what: str) -> list[tuple[int, int]]:
    """Keras' padding or cropping: a number, one per dim, or (before, after) per dim."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(int(value), int(value))] * nd
    if nd == 1 and isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(int(value[0]), int(value[1]))]
    if isinstance(value, (list, tuple)) and len(value) == nd:
        out = []
        for v in value:
            if isinstance(v, int) and not isinstance(v, bool):
                out.append((v, v))
            elif isinstance(v, (list, tuple)) and len(v) == 2:
                out.append((int(v[0]), int(v[1])))
            else:
                raise Skip(f"with {what} {_what(value)} has no Deepwire block")
        return out
    raise Skip(f"with {what} {_what(value)} has no Deepwire block")


@register("ZeroPadding1D", nd=1)
@register("ZeroPadding2D", nd=2)
class ZeroPadding(LayerHandler):
    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        pads = _pairs(cfg.get("padding", 1), nd, "padding")
        node = zero_pad(k, t, nd, pads, name, f"{self.keras_class} '{name}'")
        k.count(self.keras_class, name, 0, [node])
        return T(node, t.perm)


@register("Cropping1D", nd=1)
@register("Cropping2D", nd=2)
class Cropping(LayerHandler):
    """One Slice block per cropped dimension."""

    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        crops = _pairs(cfg.get("cropping", 1), nd, "cropping")
        nodes = []
        for i, (a, b) in enumerate(crops):
            if not a and not b:
                continue
            size = k.b.specs[t.node].shape[1 + i]
            if a + b >= size:
                raise Skip(f"crops {a} + {b} of a dimension of {size}, leaving nothing")
            node = k.b.add("Slice", name if len(nodes) == 0 else f"{name}_{i}",
                           {"dim": 1 + i, "start": a, "stop": -b if b else 0, "step": 1}, [t.node],
                           where=f"{self.keras_class} '{name}'")
            nodes.append(node)
            t = T(node, t.perm)
        k.count(self.keras_class, name, 0, nodes)
        return t


@register("UpSampling1D", nd=1)
@register("UpSampling2D", nd=2)
class UpSampling(LayerHandler):
    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        size = _tuple(cfg.get("size", 2), nd)
        mode = cfg.get("interpolation", "nearest")
        if mode not in ("nearest", "bilinear") or (mode == "bilinear" and nd == 1):
            raise Skip(f"with interpolation {_what(mode)} has no Deepwire block (nearest or bilinear)")
        return self.block(k, name, f"Upsample{nd}d", {"scale_factor": size, "mode": mode}, t)
