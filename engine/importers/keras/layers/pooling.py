"""Pooling: MaxPooling1D/2D, AveragePooling1D/2D, GlobalAveragePooling1D/2D."""
from __future__ import annotations

import math

from ..registry import LayerHandler, Skip, T, _tuple, register
from .conv import spatial


@register("MaxPooling1D", kind="Max", nd=1)
@register("MaxPooling2D", kind="Max", nd=2)
@register("AveragePooling1D", kind="Avg", nd=1)
@register("AveragePooling2D", kind="Avg", nd=2)
class Pooling(LayerHandler):
    kind = ""
    nd = 0

    def build(self, k, name, cfg, ins, kw):
        nd = self.nd
        t = spatial(k, ins[0], nd, cfg, name)
        kernel = _tuple(cfg.get("pool_size", 2), nd)
        stride = _tuple(cfg["strides"], nd) if cfg.get("strides") is not None else kernel
        padding = [0] * nd
        if cfg.get("padding", "valid") == "same":
            sizes = k.b.specs[t.node].shape[1:]
            for i, (n, size, s) in enumerate(zip(sizes, kernel, stride)):
                total = max((math.ceil(n / s) - 1) * s + size - n, 0)
                if total and (total % 2 or self.kind == "Avg"):
                    raise Skip("with padding 'same' needs padding PyTorch pools cannot express here (uneven, or "
                               "averaging that leaves the padding out); use padding 'valid'")
                padding[i] = total // 2
        params = {"kernel_size": kernel, "stride": [0] * nd if stride == kernel else stride, "padding": padding}
        return self.block(k, name, f"{self.kind}Pool{nd}d", params, t)


@register("GlobalAveragePooling1D", nd=1)
@register("GlobalAveragePooling2D", nd=2)
class GlobalAveragePooling(LayerHandler):
    nd = 0

    def build(self, k, name, cfg, ins, kw):
        cls, nd = self.keras_class, self.nd
        if cfg.get("keepdims"):
            raise Skip("with keepdims=True has no Deepwire block")
        t = ins[0]
        if len(t.perm) != nd + 1:
            raise Skip(f"needs a rank-{nd + 1} input")
        channel = nd if cfg.get("data_format", "channels_last") != "channels_first" else 0
        if nd == 1 and t.perm == (0, 1) and channel == 1:
            node = k.b.add("GlobalAvgPool", name, {"layout": "sequence"}, [t.node], where=f"{cls} '{name}'")
        else:
            t = k.first_axis(t, channel, name)
            node = k.b.add("GlobalAvgPool", name, {"layout": "channels_first"}, [t.node], where=f"{cls} '{name}'")
        k.count(cls, name, 0, [node])
        return T(node, (0,))
