"""Convolutions: Conv1D, Conv2D (channels-last inputs become channels-first)."""
from __future__ import annotations

import math
from typing import Any

from ...common import WeightsImportError
from ..reading import _what
from ..registry import LayerHandler, LayerWeights, Skip, T, _act, _channels_first, _tuple, kernel_and_bias, register


def spatial(k, t: T, nd: int, cfg: dict, name: str) -> T:
    """The input of an `nd`-dimensional convolution or pooling, channels first."""
    perm = _channels_first(nd + 1) if cfg.get("data_format", "channels_last") != "channels_first" \
        else tuple(range(nd + 1))
    if len(t.perm) != nd + 1:
        raise Skip(f"needs a rank-{nd + 1} input")
    return k.ensure(t, perm, name)


def conv_padding(k, cfg, t: T, nd: int, kernel, stride, dilation) -> Any:
    padding = cfg.get("padding", "valid")
    if padding == "valid":
        return "valid"
    if padding != "same":
        raise Skip(f"with padding {_what(padding)} has no Deepwire block")
    if all(s == 1 for s in stride):
        return "same"
    sizes = k.kshape(t)[:nd] if cfg.get("data_format", "channels_last") != "channels_first" \
        else k.kshape(t)[1:]
    pads = []
    for n, size, s, d in zip(sizes, kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + d * (size - 1) + 1 - n, 0)
        if total % 2:
            raise Skip("with padding 'same' and stride > 1 pads one side more than the other here, which "
                       "PyTorch cannot express; use padding 'valid' or an input size that divides by the stride")
        pads.append(total // 2)
    return pads if any(pads) else "valid"


@register("Conv1D", nd=1)
@register("Conv2D", nd=2)
class Conv(LayerHandler):
    """Kernel (k..., in, out) -> weight (out, in, k...)."""

    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        kernel = _tuple(cfg["kernel_size"], nd)
        stride = _tuple(cfg.get("strides", 1), nd)
        dilation = _tuple(cfg.get("dilation_rate", 1), nd)
        groups = int(cfg.get("groups", 1))
        filters, bias = int(cfg["filters"]), bool(cfg.get("use_bias", True))
        params = {"filters": filters, "kernel_size": kernel, "stride": stride, "dilation": dilation, "groups": groups,
                  "bias": bias, "activation": _act(cfg.get("activation"), name),
                  "padding": conv_padding(k, cfg, t, nd, kernel, stride, dilation)}
        channels = k.b.specs[t.node].shape[0]
        keras_params = math.prod(kernel) * (channels // groups) * filters + (filters if bias else 0)
        out = self.block(k, name, f"Conv{nd}d", params, t, keras_params)
        self.converts(k, out.node, name, cfg)
        return out

    def weights(self, w: LayerWeights) -> dict:
        def weight(kernel):
            if kernel.ndim < 2:
                raise WeightsImportError(f"{w.where}: its kernel has shape {tuple(kernel.shape)}")
            return kernel.permute(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2)).contiguous()
        return kernel_and_bias(w, weight)
