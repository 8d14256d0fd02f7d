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
    if tup(opts.get("dilation", 1)) != [1] * nd or opts.get("return_indices"):
        raise Unsupported("with dilation or return_indices has no Deepwire block")
    if opts.get("divisor_override") is not None:
        raise Unsupported("with divisor_override has no Deepwire block")
    kernel = tup(opts["kernel_size"])
    stride = tup(opts["stride"]) if opts.get("stride") not in (None, (), []) else kernel
    padding = tup(opts.get("padding", 0))
    params = {"kernel_size": compact(kernel), "stride": 0 if stride == kernel else compact(stride),
              "padding": compact(padding), "ceil_mode": bool(opts.get("ceil_mode", False))}
    if kind == "Avg":
        params["count_include_pad"] = bool(opts.get("count_include_pad", True))
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
    """AdaptiveAvg/MaxPool(1): a GlobalAvgPool/GlobalMaxPool until something needs the trailing 1s."""

    def __init__(self, src: str, rank: int, fx_node, kind: str = "Avg"):
        self.src, self.rank, self.fx_node, self.kind = src, rank, fx_node, kind
        self.node_id: str | None = None
        self.kept: str | None = None

    def node(self, t, keep_dims: bool) -> str:
        if keep_dims and self.node_id is None:   # used as it is: the adaptive pooling block itself
            if self.kept is None:
                nd = self.rank - 1
                name = t.module_name(self.fx_node.target) if self.fx_node.op == "call_module" else \
                    f"adaptive_{self.kind.lower()}_pool{nd}d"
                self.kept = t.add(f"Adaptive{self.kind}Pool{nd}d", name, {"output_size": 1}, [self.src], None,
                                  self.fx_node)
            return self.kept
        if self.node_id is None:
            self.node_id = t.add(f"Global{self.kind}Pool", f"global_{self.kind.lower()}_pool",
                                 {"layout": "channels_first"}, [self.src])
        if not keep_dims:
            return self.node_id
        channels = t.b.specs[self.node_id].shape[0]
        return t.add("Reshape", "reshape", {"shape": [channels] + [1] * (self.rank - 1)}, [self.node_id])

    def as_tensor(self, t):
        return self.node(t, keep_dims=True)

    def reshaped(self, t, shape):
        return self.node(t, keep_dims=False) if len(shape) == 1 else None


def adaptive(t, n, output_size, nd: int, kind: str = "Avg"):
    sizes = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size] * nd
    shape = t.sample(n.args[0])
    sizes = [shape[1 + i] if s is None else s for i, s in enumerate(sizes)]
    if all(s == 1 for s in sizes):
        return Gap(t.value(n.args[0]), nd + 1, n, kind)
    if tuple(sizes) == tuple(shape[1:]):
        return t.value(n.args[0])   # already that size: nothing to do
    name = t.module_name(n.target) if n.op == "call_module" else f"adaptive_{kind.lower()}_pool{nd}d"
    return t.add(f"Adaptive{kind}Pool{nd}d", name, {"output_size": compact(sizes)}, [t.value(n.args[0])], None, n)


ADAPTIVE = {nn.AdaptiveAvgPool1d: ("Avg", 1), nn.AdaptiveAvgPool2d: ("Avg", 2), nn.AdaptiveMaxPool1d: ("Max", 1),
            nn.AdaptiveMaxPool2d: ("Max", 2)}
ADAPTIVE_FUNCTIONS = {F.adaptive_avg_pool1d: ("Avg", 1), F.adaptive_avg_pool2d: ("Avg", 2),
                      F.adaptive_max_pool1d: ("Max", 1), F.adaptive_max_pool2d: ("Max", 2)}


@module(*ADAPTIVE)
def adaptive_module(t, n, m):
    if getattr(m, "return_indices", False):
        raise Unsupported("with return_indices has no Deepwire block")
    kind, nd = ADAPTIVE[type(m)]
    return adaptive(t, n, m.output_size, nd, kind)


@function(*ADAPTIVE_FUNCTIONS)
def adaptive_function(t, n):
    args = bind(n, ("input", "output_size", "return_indices"))
    if args.get("return_indices"):
        raise Unsupported("with return_indices has no Deepwire block")
    kind, nd = ADAPTIVE_FUNCTIONS[n.target]
    return adaptive(t, n, args["output_size"], nd, kind)
