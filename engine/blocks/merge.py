"""Merges: Add (residual connections) and Multiply (gating), which broadcast; Concatenate."""
from __future__ import annotations

from .base import Block, Emit, Param, Ports, ShapeError, TensorSpec, register

MERGE_PORTS = Ports(("in",), variadic=True, min_count=2, max_count=32)


def broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """PyTorch's broadcast of `shapes` (aligned from the last dimension; each size equal or 1),
    or None when they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(-rank, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _broadcast_infer(p, ins):
    shape = broadcast_shape([x.shape for x in ins])
    if shape is None:
        shapes = " and ".join(str(x) for x in ins)
        raise ShapeError(f"needs inputs of equal shape, or shapes that broadcast (aligned from the last "
                         f"dimension, each size equal or 1), but receives {shapes}: make the branches agree, "
                         "e.g. a Linear or a 1x1 Conv2d that matches the sizes, or a Reshape to size 1 along "
                         "the dimensions that should repeat", kind="merge")
    return TensorSpec(shape)


def _operand(ins, i: int) -> str:
    """Input `i` in the forward expression; an input of lower rank gains size-1 dimensions after the
    batch, so it lines up from the last dimension as it does without the batch: (B, C) -> (B, 1, C)."""
    missing = max(x.rank for x in ins) - ins[i].rank
    return f"{{{i}}}" + ("[:" + ", None" * missing + "]" if missing else "")


def _broadcast_emit(op: str):
    return lambda p, ins: Emit(call=f" {op} ".join(_operand(ins, i) for i in range(len(ins))))


BROADCAST_RULE = ("S, S, ... -> S; shapes that differ broadcast as in PyTorch: aligned from the last dimension, "
                  "each size equal or 1, e.g. (C, 1, 1) and (C, H, W) -> (C, H, W), (C,) and (T, C) -> (T, C)")

register(Block(
    type="Add", category="Merge", default_name="add",
    shape_rule=BROADCAST_RULE,
    help="Element-wise sum of two or more inputs (residual connections): equal shapes, or shapes that "
         "broadcast, such as a (C,) bias added to every step of a (T, C) sequence "
         "(PyTorch: a + b; Keras: Add).",
    ports=MERGE_PORTS, infer=_broadcast_infer, emit=_broadcast_emit("+"),
))

register(Block(
    type="Multiply", category="Merge", default_name="multiply",
    shape_rule=BROADCAST_RULE,
    help="Element-wise product of two or more inputs (gating): equal shapes, or shapes that broadcast, "
         "such as squeeze-and-excitation's (C, 1, 1) channel weights times (C, H, W) features, or a (C,) "
         "gate on a (T, C) sequence (PyTorch: a * b; Keras: Multiply).",
    ports=MERGE_PORTS, infer=_broadcast_infer, emit=_broadcast_emit("*"),
))


def _concat_dim(p, ins) -> int:
    rank = ins[0].rank
    dim = p["dim"]
    if not -rank <= dim < rank:
        raise ShapeError(f"dim {dim} does not exist in inputs of shape {ins[0]}; use 0..{rank - 1} or -1",
                         kind="invalid-param")
    return dim % rank


def _concat_infer(p, ins):
    if len({x.rank for x in ins}) > 1:
        raise ShapeError("needs inputs of the same rank but receives " + " and ".join(str(x) for x in ins)
                         + ": insert a Reshape or Flatten", kind="merge")
    dim = _concat_dim(p, ins)
    first = ins[0]
    for other in ins[1:]:
        for i, (a, b) in enumerate(zip(first.shape, other.shape)):
            if i != dim and a != b:
                raise ShapeError(f"joins along dim {dim}, so every other dimension must match, but receives "
                                 + " and ".join(str(x) for x in ins), kind="merge")
    total = sum(x.shape[dim] for x in ins)
    return TensorSpec(first.shape[:dim] + (total,) + first.shape[dim + 1:])


register(Block(
    type="Concatenate", category="Merge", default_name="concatenate",
    shape_rule="inputs equal except along `dim` -> their sizes along `dim` summed",
    help="Joins two or more inputs along one dimension; the others must match. dim counts from 0 "
         "and excludes the batch; -1 is the last (features).",
    params=(Param("dim", "int", -1, label="Dimension", min=-8, max=7, help="Dimension to join along (Keras: axis)."),),
    ports=MERGE_PORTS, infer=_concat_infer,
    emit=lambda p, ins: Emit(call="torch.cat([" + ", ".join(f"{{{i}}}" for i in range(len(ins)))
                             + f"], dim={_concat_dim(p, ins) + 1})"),
    short=lambda p: f"dim {p['dim']}",
))
