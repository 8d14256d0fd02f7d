"""Merges: Add (residual connections), Multiply, Concatenate."""
from __future__ import annotations

from .base import Block, Emit, Param, Ports, ShapeError, TensorSpec, register

MERGE_PORTS = Ports(("in",), variadic=True, min_count=2, max_count=32)


def _same_shapes(kind: str):
    def infer(p, ins):
        first = ins[0]
        for other in ins[1:]:
            if other.shape != first.shape:
                shapes = " and ".join(str(x) for x in ins)
                raise ShapeError(f"needs inputs of equal shape but receives {shapes}: make the branches "
                                 "agree, e.g. a Linear or a 1x1 Conv2d that matches the sizes", kind="merge")
        return first
    return infer


register(Block(
    type="Add", category="Merge", default_name="add",
    shape_rule="S, S, ... -> S (all inputs the same shape)",
    help="Element-wise sum of two or more inputs of equal shape (residual connections).",
    ports=MERGE_PORTS, infer=_same_shapes("Add"),
    emit=lambda p, ins: Emit(call=" + ".join(f"{{{i}}}" for i in range(len(ins)))),
))

register(Block(
    type="Multiply", category="Merge", default_name="multiply",
    shape_rule="S, S, ... -> S (all inputs the same shape)",
    help="Element-wise product of two or more inputs of equal shape (gating).",
    ports=MERGE_PORTS, infer=_same_shapes("Multiply"),
    emit=lambda p, ins: Emit(call=" * ".join(f"{{{i}}}" for i in range(len(ins)))),
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
