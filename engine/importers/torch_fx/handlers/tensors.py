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
from ..values import Meta, Pending, Size, Unsupported

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
        if t.shape(a) != t.shape(b):
            raise Unsupported(f"combines tensors of different shapes {t.shape(a)[1:]} and "
                              f"{t.shape(b)[1:]} (broadcasting); Deepwire's merges need equal shapes")
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
    if not isinstance(tensors, (list, tuple)) or len(tensors) < 2:
        raise Unsupported("of fewer than two tensors has no Deepwire block")
    rank = len(t.shape(tensors[0]) or ())
    dim = dim % rank if rank else dim
    if dim == 0:
        raise Unsupported("joins along the batch dimension; Deepwire's Concatenate joins within samples")
    sample_dim = -1 if dim == rank - 1 else dim - 1
    return t.add("Concatenate", "concatenate", {"dim": sample_dim}, [t.value(x) for x in tensors], None, n)


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
    if args.get("keepdim", False):
        raise Unsupported("with keepdim=True has no Deepwire block")
    full = t.shape(src_arg)
    if full is None or dim is None:
        raise Unsupported("over every dimension has no Deepwire block")
    rank = len(full)
    dims = {d % rank for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    src = t.value(src_arg)
    if rank == 3 and dims == {1}:
        return t.add("GlobalAvgPool", "global_avg_pool", {"layout": "sequence"}, [src], None, n)
    if rank in (3, 4) and dims == set(range(2, rank)):
        return t.add("GlobalAvgPool", "global_avg_pool", {"layout": "channels_first"}, [src], None, n)
    raise Unsupported("over these dimensions has no Deepwire block (GlobalAvgPool averages over time, or over "
                      "every position of a (C, L) or (C, H, W) input)")


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
    raise Unsupported("indexes a tensor; Deepwire has no block for that")


@function(getattr)
def attribute(t, n):
    base, attr = n.args
    if attr in ("shape", "ndim"):
        return Size()
    if attr in ("device", "dtype"):
        return Meta()
    raise Unsupported(f"reads .{attr}, which Deepwire cannot express")


@method("size")
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
