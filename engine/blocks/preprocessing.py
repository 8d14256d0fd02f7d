"""Preprocessing: Rescaling, Normalization, Flatten, Reshape, Permute."""
from __future__ import annotations

import math

from .base import Block, Emit, Param, ShapeError, TensorSpec, format_shape, lit, register

register(Block(
    type="Rescaling", category="Preprocessing", default_name="rescaling",
    shape_rule="S -> S",
    help="y = x * scale + offset, e.g. scale 1/255 maps 0..255 pixels to 0..1.",
    params=(
        Param("scale", "float", 1 / 255, min=-1e9, max=1e9, help="Multiplier."),
        Param("offset", "float", 0.0, min=-1e9, max=1e9, help="Added after scaling."),
    ),
    infer=lambda p, ins: ins[0],
    emit=lambda p, ins: Emit(call="{0} * " + lit(p["scale"]) + ("" if p["offset"] == 0 else f" + {lit(p['offset'])}")),
    short=lambda p: f"x{p['scale']:.4g}" + ("" if p["offset"] == 0 else f" {p['offset']:+g}"),
))


def _norm_axis(p, x: TensorSpec) -> int:
    axis = p["axis"]
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"axis {axis} does not exist in an input of shape {x}", kind="invalid-param")
    return axis % x.rank


def _norm_emit(p, ins):
    x = ins[0]
    axis = _norm_axis(p, x)
    stats = tuple(d if i == axis else 1 for i, d in enumerate(x.shape))
    return Emit(init=f"Normalization({lit(stats)})", call="{self}({0})", helpers=("Normalization",))


def _norm_infer(p, ins):
    _norm_axis(p, ins[0])
    return ins[0]


register(Block(
    type="Normalization", category="Preprocessing", default_name="normalization",
    shape_rule="S -> S (statistics per index of `axis`)",
    help="Standardises inputs per feature along `axis` with a mean and standard deviation "
         "fitted from the training data before training; saved with the weights.",
    params=(Param("axis", "int", -1, min=-8, max=7,
                  help="The feature axis that keeps its own statistics (-1: last; 0: channels of (C, H, W))."),),
    infer=_norm_infer,
    emit=_norm_emit,
))

register(Block(
    type="Flatten", category="Preprocessing", default_name="flatten",
    fixes=lambda spec, wanted: ({},),
    shape_rule="(d1, d2, ...) -> (d1*d2*...,)",
    help="Flattens each sample to one dimension: (C, H, W) -> (C*H*W,).",
    infer=lambda p, ins: TensorSpec((ins[0].numel,), ins[0].dtype),
    emit=lambda p, ins: Emit(call="{0}.flatten(1)"),
    accepts_tokens=True,
))


def _reshape_target(p, x: TensorSpec) -> tuple[int, ...]:
    shape = p["shape"]
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1:
        raise ShapeError("may have at most one -1 in its shape", kind="invalid-param")
    if any(d == 0 or d < -1 for d in shape):
        raise ShapeError("needs positive sizes (or one -1)", kind="invalid-param")
    known = math.prod(d for d in shape if d != -1)
    if unknown:
        if x.numel % known:
            raise ShapeError(f"cannot reshape {x} ({x.numel} values) into {format_shape(shape)}",
                             kind="reshape")
        shape = tuple(x.numel // known if d == -1 else d for d in shape)
    elif known != x.numel:
        raise ShapeError(f"cannot reshape {x} ({x.numel} values) into {format_shape(shape)} "
                         f"({known} values): the sizes must multiply to {x.numel}", kind="reshape")
    return shape


def _square_image(spec):
    """A quick fix: a flat vector of a square number of values as a one-channel square image."""
    side = int(round(spec.numel ** 0.5))
    return ({"shape": [1, side, side]},) if side * side == spec.numel else ()


register(Block(
    type="Reshape", category="Preprocessing", default_name="reshape",
    fixes=lambda spec, wanted: _square_image(spec),
    shape_rule="S -> `shape` with the same number of values (one -1 is inferred)",
    help="Gives each sample a new shape with the same number of values; one size may be -1.",
    params=(Param("shape", "ints", (1, 28, 28), min=-1, max=1_000_000, help="Target shape, without the batch."),),
    infer=lambda p, ins: TensorSpec(_reshape_target(p, ins[0]), ins[0].dtype),
    emit=lambda p, ins: Emit(call="{0}.reshape(-1, " + ", ".join(str(d) for d in _reshape_target(p, ins[0])) + ")"),
    accepts_tokens=True,
    short=lambda p: format_shape(p["shape"]),
))


def _permute_dims(p, x: TensorSpec) -> tuple[int, ...]:
    dims = p["dims"]
    if sorted(dims) != list(range(x.rank)):
        raise ShapeError(f"dims {format_shape(dims)} must list each of 0..{x.rank - 1} once for an "
                         f"input of shape {x}", kind="invalid-param")
    return dims


register(Block(
    type="Permute", category="Preprocessing", default_name="permute",
    shape_rule="S -> S's dimensions reordered by `dims`",
    help="Reorders the dimensions of each sample, e.g. dims (1, 0) turns (T, F) into (F, T) "
         "for a Conv1d. Dimensions count from 0 and exclude the batch.",
    params=(Param("dims", "ints", (1, 0), label="Dimensions", min=0, max=7,
                  help="New order of the sample's dimensions."),),
    infer=lambda p, ins: TensorSpec(tuple(ins[0].shape[d] for d in _permute_dims(p, ins[0])), ins[0].dtype),
    emit=lambda p, ins: Emit(call="{0}.permute(0, " + ", ".join(str(d + 1) for d in _permute_dims(p, ins[0])) + ")"),
    accepts_tokens=True,
    short=lambda p: format_shape(p["dims"]),
))
