"""Pooling: Max/AvgPool modules and functions become pooling blocks; adaptive average pooling to size 1 is a
GlobalAvgPool, with the trailing 1s kept (a Reshape) only when something needs them."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..registry import function, module
from ..translate import bind, compact
from ..values import Pending, Unsupported


def pool(t, n, kind: str, nd: int, opts: dict, name: str):
    """A `kind` ("Max"/"Avg") pooling over `nd` dimensions with torch's options `opts`."""
    def tup(v):
        return list(v) if isinstance(v, (tuple, list)) else [v] * nd
    if tup(opts.get("dilation", 1)) != [1] * nd or opts.get("ceil_mode") or opts.get("return_indices"):
        raise Unsupported("with dilation, ceil_mode or return_indices has no Deepwire block")
    if opts.get("divisor_override") is not None:
        raise Unsupported("with divisor_override has no Deepwire block")
    kernel = tup(opts["kernel_size"])
    stride = tup(opts["stride"]) if opts.get("stride") not in (None, (), []) else kernel
    padding = tup(opts.get("padding", 0))
    if kind == "Avg" and any(padding) and not opts.get("count_include_pad", True):
        raise Unsupported("with count_include_pad=False has no Deepwire block")
    params = {"kernel_size": compact(kernel), "stride": 0 if stride == kernel else compact(stride),
              "padding": compact(padding)}
    return t.add(f"{kind}Pool{nd}d", name, params, [t.value(n.args[0])], None, n)


def pool_module(kind: str, nd: int):
    def handle(t, n, m):
        opts = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
                "dilation": getattr(m, "dilation", 1), "ceil_mode": m.ceil_mode,
                "return_indices": getattr(m, "return_indices", False),
                "count_include_pad": getattr(m, "count_include_pad", True),
                "divisor_override": getattr(m, "divisor_override", None)}
        return pool(t, n, kind, nd, opts, t.module_name(n.target))
    return handle


def pool_function(kind: str, nd: int):
    names = ("input", "kernel_size", "stride", "padding") + (
        ("dilation", "ceil_mode", "return_indices") if kind == "Max"
        else ("ceil_mode", "count_include_pad", "divisor_override"))

    def handle(t, n):
        return pool(t, n, kind, nd, bind(n, names), f"{kind.lower()}_pool{nd}d")
    return handle


for _kind, _nd, _module, _function in (("Max", 1, nn.MaxPool1d, F.max_pool1d), ("Max", 2, nn.MaxPool2d, F.max_pool2d),
                                       ("Avg", 1, nn.AvgPool1d, F.avg_pool1d), ("Avg", 2, nn.AvgPool2d, F.avg_pool2d)):
    module(_module)(pool_module(_kind, _nd))
    function(_function)(pool_function(_kind, _nd))


class Gap(Pending):
    """AdaptiveAvgPool(1): a GlobalAvgPool until something needs the trailing 1s."""

    def __init__(self, src: str, rank: int, fx_node):
        self.src, self.rank, self.fx_node = src, rank, fx_node
        self.node_id: str | None = None

    def node(self, t, keep_dims: bool) -> str:
        if self.node_id is None:
            self.node_id = t.add("GlobalAvgPool", "global_avg_pool", {"layout": "channels_first"}, [self.src])
        if not keep_dims:
            return self.node_id
        channels = t.b.specs[self.node_id].shape[0]
        return t.add("Reshape", "reshape", {"shape": [channels] + [1] * (self.rank - 1)}, [self.node_id])

    def as_tensor(self, t):
        return self.node(t, keep_dims=True)

    def reshaped(self, t, shape):
        return self.node(t, keep_dims=False) if len(shape) == 1 else None


def adaptive(t, n, output_size, nd: int) -> Gap:
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    if any(s != 1 for s in sizes):
        raise Unsupported("to a size other than 1 has no Deepwire block (GlobalAvgPool averages to 1)")
    return Gap(t.value(n.args[0]), nd + 1, n)


@module(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
def adaptive_module(t, n, m):
    return adaptive(t, n, m.output_size, 1 if isinstance(m, nn.AdaptiveAvgPool1d) else 2)


@function(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)
def adaptive_function(t, n):
    args = bind(n, ("input", "output_size"))
    return adaptive(t, n, args["output_size"], 1 if n.target is F.adaptive_avg_pool1d else 2)
