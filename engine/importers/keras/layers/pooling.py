"""Pooling: MaxPooling1D/2D, AveragePooling1D/2D, GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D."""
from __future__ import annotations

import math

from ..registry import LayerHandler, Skip, T, _tuple, register
from .conv import spatial


@register("MaxPooling1D", kind="Max", nd=1)
@register("MaxPooling2D", kind="Max", nd=2)
@register("AveragePooling1D", kind="Avg", nd=1)
@register("AveragePooling2D", kind="Avg", nd=2)
class Pooling(LayerHandler):
    """Padding 'same' pads (before, after) with the odd one after, and averages leave the padding out: PyTorch's
    padding `before` on both sides, ceil_mode for the odd window after, and count_include_pad=False."""

    kind = ""
    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        kernel = _tuple(cfg.get("pool_size", 2), nd)
        stride = _tuple(cfg["strides"], nd) if cfg.get("strides") is not None else kernel
        padding, ceil = [0] * nd, False
        if cfg.get("padding", "valid") == "same":
            sizes = k.b.specs[t.node].shape[1:]
            for i, (n, size, s) in enumerate(zip(sizes, kernel, stride)):
                total = max((math.ceil(n / s) - 1) * s + size - n, 0)
                padding[i] = total // 2
                ceil = ceil or bool(total % 2)
        elif cfg.get("padding", "valid") != "valid":
            raise Skip(f"with padding {cfg.get('padding')!r} has no Deepwire block")
        params = {"kernel_size": kernel, "stride": [0] * nd if stride == kernel else stride, "padding": padding,
                  "ceil_mode": ceil}
        if self.kind == "Avg" and (any(padding) or ceil):
            params["count_include_pad"] = False
        return self.block(k, name, f"{self.kind}Pool{nd}d", params, t)


@register("GlobalAveragePooling1D", nd=1, op="mean")
@register("GlobalAveragePooling2D", nd=2, op="mean")
@register("GlobalMaxPooling1D", nd=1, op="max")
@register("GlobalMaxPooling2D", nd=2, op="max")
class GlobalPooling(LayerHandler):
    """GlobalAvgPool / GlobalMaxPool; with keepdims=True a Reduce that keeps the pooled dims as 1."""

    nd = 0
    op = "mean"

    def build(self, k, name, cfg, ins, kw):
        cls, nd = self.keras_class, self.nd
        t = ins[0]
        if len(t.perm) != nd + 1:
            raise Skip(f"needs a rank-{nd + 1} input")
        channel = nd if cfg.get("data_format", "channels_last") != "channels_first" else 0
        where = f"{cls} '{name}'"
        if cfg.get("keepdims"):
            dims = [i for i, p in enumerate(t.perm) if p != channel]
            node = k.b.add("Reduce", name, {"op": self.op, "dims": dims, "keepdims": True}, [t.node], where=where)
            k.count(cls, name, 0, [node])
            return T(node, t.perm)
        block = "GlobalAvgPool" if self.op == "mean" else "GlobalMaxPool"
        if nd == 1 and t.perm == (0, 1) and channel == 1:
            node = k.b.add(block, name, {"layout": "sequence"}, [t.node], where=where)
        else:
            t = k.first_axis(t, channel, name)
            node = k.b.add(block, name, {"layout": "channels_first"}, [t.node], where=where)
        k.count(cls, name, 0, [node])
        return T(node, (0,))
