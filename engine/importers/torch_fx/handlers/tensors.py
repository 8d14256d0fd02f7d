"""Operations on tensors and sizes: arithmetic, joining, reshaping, averaging, reordering, indexing.

Arithmetic on two tensors of one shape is Add or Multiply; with a number it is a Rescaling (consecutive ones
fold into one). What only computes sizes (x.size(0) // 2) adds no block: its value is a Size.
"""
from __future__ import annotations

import math
import operator

import torch

from ....blocks import TOKENS
from ..registry import function, method
from ..translate import bind, size_arithmetic
from ..values import Meta, Param, Pending, Size, Unsupported

ARITH = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.mul: "mul", operator.imul: "mul",
         torch.mul: "mul", operator.sub: "sub", operator.isub: "sub", torch.sub: "sub",
         operator.truediv: "div", operator.itruediv: "div", torch.div: "div"}
ARITH_METHODS = {"add": "add", "mul": "mul", "sub": "sub", "div": "div", "add_": "add", "mul_": "mul"}


def scalar(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def arith(t, n, op, a, b):
    if n.kwargs.get("alpha", 1) != 1:
        raise Unsupported("with alpha has no Deepwire block")
    ta, tb = t.is_tensor(a), t.is_tensor(b)
    if not ta and not tb:
        return Size()
    if ta and tb:
        for x, w in ((a, b), (b, a)):
            if isinstance(t.env.get(w), Param) and not isinstance(t.env.get(x), Param):
                return with_parameter(t, n, op, x, t.env[w])
        if op == "add":
            return t.add("Add", "add", {}, [t.value(a), t.value(b)], None, n)
        if op == "mul":
            return t.add("Multiply", "multiply", {}, [t.value(a), t.value(b)], None, n)
        raise Unsupported("of two tensors has no Deepwire block (Add and Multiply do)")
    tensor, const = (a, b) if ta else (b, a)
    c = scalar(const)
    if c is None:
        raise Unsupported(f"with {type(const).__name__} {const!r} has no Deepwire block")
    if op == "div":
        if not ta:
            raise Unsupported("divides a number by a tensor; Deepwire has no block for that")
        if c == 0:
            raise Unsupported("divides by zero")
        scale, offset = 1.0 / c, 0.0
    elif op == "mul":
        scale, offset = c, 0.0
    elif op == "add":
        scale, offset = 1.0, c
    else:  # sub
        scale, offset = (1.0, -c) if ta else (-1.0, c)
    src = t.value(tensor)
    if (len(tensor.users) == 1 and src in t.rescale_nodes and not t.b.graph.consumers_of(src)):
        old = t.b.params_of(src)
        t.b.update(src, {"scale": old["scale"] * scale, "offset": old["offset"] * scale + offset})
        return src
    node_id = t.add("Rescaling", "rescaling", {"scale": scale, "offset": offset}, [src], None, n)
    t.rescale_nodes.add(node_id)
    return node_id


def with_parameter(t, n, op, x, w: Param):
    """`x * self.gamma` (a per-channel scale: LayerScale) or `x + self.pos_embed` (a learned position table as
    long as the sequence: PositionalEmbedding)."""
    shape = t.sample(x)
    gamma = w.tensor
    if op == "mul":
        rank = len(shape)
        flat = gamma.reshape(-1)
        channels_last = tuple(gamma.shape[-1:]) == shape[-1:] and all(d == 1 for d in gamma.shape[:-1]) \
            and gamma.dim() <= rank + 1
        channels_first = rank >= 2 and tuple(gamma.shape[-rank:]) == (shape[0],) + (1,) * (rank - 1) \
            and all(d == 1 for d in gamma.shape[:-rank])
        if channels_last or channels_first:
            layout = "channels_last" if channels_last else "channels_first"
            scale = flat if layout == "channels_last" else flat.reshape((shape[0],) + (1,) * (rank - 1))
            src = t.value(x)
            w.take(t)
            return t.add("LayerScale", t.module_name(w.target), {"init_value": 1e-5, "layout": layout}, [src],
                         {"gamma": scale.detach()}, n)
    if op == "add" and len(shape) == 2 and tuple(gamma.shape[-2:]) == tuple(shape) \
            and all(d == 1 for d in gamma.shape[:-2]):
        return t.add("PositionalEmbedding", t.module_name(w.target), {"kind": "learned"}, [t.value(x)],
                     {"weight": w.take(t).reshape(shape)}, n)
    raise Unsupported(f"uses {w.what}")


@function(*ARITH)
@method(*ARITH_METHODS)
def arithmetic(t, n):
    op = ARITH[n.target] if n.op == "call_function" else ARITH_METHODS[n.target]
    return arith(t, n, op, n.args[0], n.args[1] if len(n.args) > 1 else n.kwargs.get("other"))


function(operator.floordiv, operator.mod, operator.neg)(size_arithmetic)


@function(torch.cat, torch.concat, torch.concatenate)
def concat(t, n):
    args = bind(n, ("tensors", "dim"))
    tensors, dim = args["tensors"], args.get("dim", 0)
    if isinstance(tensors, (list, tuple)) and len(tensors) == 1:
        return t.value(tensors[0])   # DenseNet's first layer joins one tensor: nothing to do
    if not isinstance(tensors, (list, tuple)) or len(tensors) < 2:
        raise Unsupported("of fewer than two tensors has no Deepwire block")
    token = t.env.get(tensors[0])
    if isinstance(token, Param):
        return class_token(t, n, token, tensors[1:], dim)
    rank = len(t.shape(tensors[0]) or ())
    dim = dim % rank if rank else dim
    if dim == 0:
        raise Unsupported("joins along the batch dimension; Deepwire's Concatenate joins within samples")
    sample_dim = -1 if dim == rank - 1 else dim - 1
    return t.add("Concatenate", "concatenate", {"dim": sample_dim}, [t.value(x) for x in tensors], None, n)


def class_token(t, n, token: Param, rest, dim):
    """torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1): a learned token before a (T, D) sequence."""
    if len(rest) != 1 or not token.expanded or dim % 3 != 1 or token.tensor.dim() != 3 \
            or tuple(token.tensor.shape[:2]) != (1, 1):
        raise Unsupported(f"puts {token.what} before a sequence other than as one class token (ClassToken)")
    shape = t.sample(rest[0])
    if len(shape) != 2 or shape[1] != token.tensor.shape[2]:
        raise Unsupported(f"puts a token of {tuple(token.tensor.shape)} before a {shape} input")
    return t.add("ClassToken", t.module_name(token.target), {}, [t.value(rest[0])], {"token": token.take(t)}, n)


def reshape(t, n, src_arg):
    """`src_arg` reshaped to the node's recorded shape: nothing, a Flatten or a Reshape."""
    out = t.sample(n)
    v = t.env.get(src_arg)
    if isinstance(v, Pending):
        whole = v.reshaped(t, out)
        if whole is not None:
            return whole
    src = t.value(src_arg)
    shape_in = t.b.specs[src].shape
    if tuple(out) == tuple(shape_in):
        return src
    if len(out) == 1 and len(shape_in) > 1:
        return t.add("Flatten", "flatten", {}, [src], None, n)
    return t.add("Reshape", "reshape", {"shape": list(out)}, [src], None, n)


@function(torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze)
def reshape_function(t, n):
    return reshape(t, n, n.args[0])


@method("view", "reshape", "flatten", "squeeze", "unsqueeze")
def reshape_method(t, n):
    v = t.env.get(n.args[0])
    if isinstance(v, Param):
        return v.method(t, n)
    if n.target == "squeeze" and isinstance(v, Pending):
        squeezed = v.squeezed(t)
        if squeezed is not None:
            return squeezed
    return reshape(t, n, n.args[0])


@function(torch.mean)
@method("mean")
def mean(t, n):
    args = bind(n, ("input", "dim", "keepdim"))
    src_arg, dim = args["input"], args.get("dim")
    full = t.shape(src_arg)
    if full is None or dim is None:
        raise Unsupported("over every dimension has no Deepwire block")
    rank = len(full)
    dims = {d % rank for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    if not args.get("keepdim", False):
        src = t.value(src_arg)
        if rank == 3 and dims == {1}:
            return t.add("GlobalAvgPool", "global_avg_pool", {"layout": "sequence"}, [src], None, n)
        if rank in (3, 4) and dims == set(range(2, rank)):
            return t.add("GlobalAvgPool", "global_avg_pool", {"layout": "channels_first"}, [src], None, n)
    return reduce(t, n, "mean", src_arg, dims, args.get("keepdim", False))


def reduce(t, n, op: str, src_arg, dims, keepdim: bool):
    if 0 in dims:
        raise Unsupported("reduces over the batch dimension; Deepwire's Reduce works within samples")
    return t.add("Reduce", op, {"op": op, "dims": sorted(d - 1 for d in dims), "keepdims": bool(keepdim)},
                 [t.value(src_arg)], None, n)


def reduce_call(op: str):
    def handle(t, n):
        args = bind(n, ("input", "dim", "keepdim"))
        full, dim = t.shape(args["input"]), args.get("dim")
        if full is None or dim is None:
            raise Unsupported("over every dimension has no Deepwire block")
        dims = {d % len(full) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        return reduce(t, n, op, args["input"], dims, args.get("keepdim", False))
    return handle


function(torch.sum)(reduce_call("sum"))
method("sum")(reduce_call("sum"))
function(torch.amax)(reduce_call("max"))
method("amax")(reduce_call("max"))


def permute(t, n, src_arg, dims):
    full = t.shape(src_arg)
    rank = len(full or ())
    perm = [d % rank for d in dims]
    if sorted(perm) != list(range(rank)) or perm[0] != 0:
        raise Unsupported("moves the batch dimension; Deepwire's Permute reorders within samples")
    src = t.value(src_arg)
    if perm == list(range(rank)):
        return src
    return t.add("Permute", "permute", {"dims": [p - 1 for p in perm[1:]]}, [src], None, n)


@function(torch.permute)
def permute_function(t, n):
    args = bind(n, ("input", "dims"))
    return permute(t, n, args["input"], args["dims"])


@method("permute")
def permute_method(t, n):
    dims = n.args[1:]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return permute(t, n, n.args[0], n.kwargs.get("dims", dims))


@function(torch.transpose)
@method("transpose")
def transpose(t, n):
    args = bind(n, ("input", "dim0", "dim1"))
    rank = len(t.shape(args["input"]) or ())
    perm = list(range(rank))
    d0, d1 = args["dim0"] % rank, args["dim1"] % rank
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return permute(t, n, args["input"], perm)


@function(operator.getitem)
def getitem(t, n):
    base, index = n.args
    v = t.env[base]
    if isinstance(v, Pending):
        item = v.item(t, index)
        if item is not None:
            return item
        if not v.counts_as_tensor or isinstance(v, Param):
            raise Unsupported("indexes a tensor; Deepwire has no block for that")
    return index_tensor(t, n, base, index)


def index_tensor(t, n, base, index):
    """x[:, 0] (Select), x[:, :k], x[..., a:b:c] (Slice): one block per indexed dimension after the batch."""
    index = index if isinstance(index, tuple) else (index,)
    rank = len(t.shape(base) or ())
    if any(i is Ellipsis for i in index):
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (rank - len(index) + 1) + index[at + 1:]
    if not index or len(index) > rank or index[0] != slice(None) \
            or not all(isinstance(i, slice) or (isinstance(i, int) and not isinstance(i, bool)) for i in index):
        raise Unsupported("indexes a tensor other than by positions and ranges after the batch; Deepwire has no "
                          "block for that")
    src, dropped = t.value(base), 0
    for axis, item in enumerate(index[1:], start=0):
        if isinstance(item, int):
            src = t.add("Select", "select", {"dim": axis - dropped, "index": item}, [src], None, n)
            dropped += 1
        elif item != slice(None):
            if any(not isinstance(v, (int, type(None))) for v in (item.start, item.stop, item.step)):
                raise Unsupported("slices by a tensor's size, which Deepwire cannot express")
            size = t.b.specs[src].shape[axis - dropped]
            start, stop, step = item.indices(size)
            if start == 0 and stop == size and step == 1:
                continue
            src = t.add("Slice", "slice", {"dim": axis - dropped, "start": start, "stop": 0 if stop >= size else stop,
                                           "step": step}, [src], None, n)
    return src


class Pieces(Pending):
    """The parts of x.chunk()/split()/unbind(): each one a Slice (or a Select) when forward takes it."""

    what = "the parts of a split tensor"

    def __init__(self, fx_node, src: str, dim: int, bounds: list[tuple[int, int]], drop: bool):
        self.fx_node, self.src, self.dim, self.bounds, self.drop = fx_node, src, dim, bounds, drop
        self.made: dict[int, str] = {}

    def item(self, t, index):
        if not isinstance(index, int) or not -len(self.bounds) <= index < len(self.bounds):
            return None
        index %= len(self.bounds)
        if index not in self.made:
            start, stop = self.bounds[index]
            size = t.b.specs[self.src].shape[self.dim]
            if self.drop:
                params, kind = {"dim": self.dim, "index": start}, "Select"
            else:
                params, kind = {"dim": self.dim, "start": start, "stop": 0 if stop >= size else stop, "step": 1}, \
                    "Slice"
            self.made[index] = t.add(kind, kind.lower(), params, [self.src], None, self.fx_node)
        return self.made[index]


def pieces(t, n, src_arg, dim, sizes: list[int], drop: bool = False) -> Pieces:
    rank = len(t.shape(src_arg) or ())
    dim %= rank
    if dim == 0:
        raise Unsupported("splits the batch dimension; Deepwire's Slice works within samples")
    bounds, at = [], 0
    for size in sizes:
        bounds.append((at, at + size))
        at += size
    return Pieces(n, t.value(src_arg), dim - 1, bounds, drop)


@function(torch.chunk)
@method("chunk")
def chunk(t, n):
    args = bind(n, ("input", "chunks", "dim"))
    full = t.shape(args["input"])
    dim = args.get("dim", 0) % len(full)
    size = -(-full[dim] // args["chunks"])
    count = -(-full[dim] // size)
    return pieces(t, n, args["input"], dim, [min(size, full[dim] - i * size) for i in range(count)])


@function(torch.split)
@method("split")
def split(t, n):
    args = bind(n, ("input", "split_size_or_sections", "dim"))
    full = t.shape(args["input"])
    dim = args.get("dim", 0) % len(full)
    sizes = args.get("split_size_or_sections", args.get("split_size"))
    if isinstance(sizes, int):
        sizes = [min(sizes, full[dim] - i) for i in range(0, full[dim], sizes)]
    if not isinstance(sizes, (list, tuple)) or not all(isinstance(v, int) for v in sizes):
        raise Unsupported("splits by sizes Deepwire cannot read")
    return pieces(t, n, args["input"], dim, list(sizes))


@function(torch.unbind)
@method("unbind")
def unbind(t, n):
    args = bind(n, ("input", "dim"))
    full = t.shape(args["input"])
    dim = args.get("dim", 0) % len(full)
    return pieces(t, n, args["input"], dim, [1] * full[dim], drop=True)


@function(getattr)
def attribute(t, n):
    base, attr = n.args
    if attr in ("shape", "ndim"):
        return Size()
    if attr in ("device", "dtype"):
        return Meta()
    raise Unsupported(f"reads .{attr}, which Deepwire cannot express")


@method("size", "dim", "ndimension", "numel")
def size(t, n):
    return Size()


@method("contiguous", "clone", "detach")
def unchanged(t, n):
    return t.value(n.args[0])


@method("float")
def to_float(t, n):
    spec = t.b.specs.get(t.env.get(n.args[0]))
    if spec is not None and spec.dtype != TOKENS:
        return t.value(n.args[0])
    raise Unsupported("has no Deepwire block")


@function(torch._assert)
def assertion(t, n):
    """timm's `_assert(H == self.img_size[0], ...)`: a check on sizes, no block."""
    return Size()
