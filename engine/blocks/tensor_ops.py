"""Tensor plumbing: reductions, slices, selections and channel shuffles (issue #16).

Dimensions count from 0 and exclude the batch, as in Concatenate; -1 is the last. The generated
code indexes the batched tensor, so dimension d of a block is d + 1 in the source.
"""
from __future__ import annotations

from .base import Block, Emit, Param, ShapeError, TensorSpec, lit, need_rank, register
from .helpers import _helper


def _dim_param(default: int, help: str) -> Param:
    return Param("dim", "int", default, label="Dimension", min=-8, max=7, help=help)


def axis(dim: int, x: TensorSpec) -> int:
    """`dim` (negative counts from the end) as 0..rank-1 of `x`, or ShapeError naming what exists."""
    if not -x.rank <= dim < x.rank:
        raise ShapeError(f"dim {dim} does not exist in an input of shape {x}; use 0..{x.rank - 1} or -1",
                         kind="invalid-param")
    return dim % x.rank


def index_expr(x: TensorSpec, dim: int, item: str) -> str:
    """`{0}[...]` indexing dimension `dim` (0-based, without the batch) of `x` with `item`:
    x[:, 2:5], x[:, :, 0], or x[..., 3] for the last of three or more dimensions."""
    if dim == x.rank - 1 and dim >= 2:
        return f"{{0}}[..., {item}]"
    return "{0}[" + ":, " * (dim + 1) + item + "]"


def _dims_text(dims: tuple[int, ...]) -> str:
    """Batched dims as a source literal: 2, or (2, 3)."""
    return str(dims[0]) if len(dims) == 1 else lit(dims)


# ----------------------------------------------------------------------------- Reduce

REDUCE_METHODS = {"mean": "mean", "sum": "sum", "max": "amax"}


def _reduce_dims(p, x: TensorSpec) -> tuple[int, ...]:
    dims = tuple(sorted(axis(d, x) for d in p["dims"]))
    if len(set(dims)) < len(dims):
        raise ShapeError(f"dims {list(p['dims'])} name the same dimension of {x} twice; list each once",
                         kind="invalid-param")
    return dims


def _reduce_infer(p, ins):
    x = ins[0]
    dims = _reduce_dims(p, x)
    if p["keepdims"]:
        return TensorSpec(tuple(1 if i in dims else n for i, n in enumerate(x.shape)))
    if len(dims) == x.rank:
        raise ShapeError(f"would reduce every dimension of {x}, leaving nothing per sample: keep one "
                         "dimension out of dims, or set keepdims", kind="invalid-param")
    return TensorSpec(tuple(n for i, n in enumerate(x.shape) if i not in dims))


def _reduce_emit(p, ins):
    dims = tuple(d + 1 for d in _reduce_dims(p, ins[0]))
    keep = ", keepdim=True" if p["keepdims"] else ""
    return Emit(call=f"{{0}}.{REDUCE_METHODS[p['op']]}(dim={_dims_text(dims)}{keep})")


register(Block(
    type="Reduce", category="Tensor", default_name="reduce",
    shape_rule="S -> S without the dimensions in `dims`; with `keepdims`, those dimensions become 1",
    help="Mean, sum or maximum over chosen dimensions, e.g. mean over dims [1, 2] turns (C, H, W) into "
         "(C,) like global average pooling, and over dim 0 turns (T, F) into (F,) (PyTorch: x.mean(dim=...), "
         "x.sum(dim=...), x.amax(dim=...); Keras: GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D, "
         "or keras.ops.mean / sum / max).",
    params=(
        Param("op", "choice", "mean", label="Operation", choices=tuple(REDUCE_METHODS),
              help="'mean', 'sum' or 'max' (torch.amax: the largest value, no indices)."),
        Param("dims", "ints", (-1,), label="Dimensions", min=-8, max=7,
              help="Dimensions to reduce, from 0 without the batch; -1 is the last (Keras: axis)."),
        Param("keepdims", "bool", False, label="Keep dimensions",
              help="Keep each reduced dimension with size 1, e.g. (C, H, W) -> (C, 1, 1) "
                   "(PyTorch: keepdim; Keras: keepdims)."),
    ),
    infer=_reduce_infer, emit=_reduce_emit,
    short=lambda p: f"{p['op']} over {', '.join(str(d) for d in p['dims'])}",
))


# ----------------------------------------------------------------------------- Slice

def _slice_range(p, x: TensorSpec) -> tuple[int, range]:
    dim = axis(p["dim"], x)
    stop = p["stop"] if p["stop"] != 0 else None
    return dim, range(x.shape[dim])[slice(p["start"], stop, p["step"])]


def _slice_infer(p, ins):
    x = ins[0]
    dim, kept = _slice_range(p, x)
    if not kept:
        stop = p["stop"] or "the end"
        raise ShapeError(f"start {p['start']} to stop {stop} selects nothing of dimension {dim} (size "
                         f"{x.shape[dim]}) of {x}: choose start below stop, within 0..{x.shape[dim] - 1}",
                         kind="invalid-param")
    return TensorSpec(x.shape[:dim] + (len(kept),) + x.shape[dim + 1:])


def _slice_emit(p, ins):
    x = ins[0]
    dim = axis(p["dim"], x)
    start = str(p["start"]) if p["start"] else ""
    stop = str(p["stop"]) if p["stop"] else ""
    step = f":{p['step']}" if p["step"] != 1 else ""
    return Emit(call=index_expr(x, dim, f"{start}:{stop}{step}"))


def _slice_short(p) -> str:
    stop = str(p["stop"]) if p["stop"] else ""
    step = f":{p['step']}" if p["step"] != 1 else ""
    return f"dim {p['dim']}: [{p['start'] or ''}:{stop}{step}]"


register(Block(
    type="Slice", category="Tensor", default_name="slice",
    shape_rule="S -> S with dimension `dim` cut to the positions start, start + step, ... before stop",
    help="Keeps a range of positions along one dimension, as Python slicing does: x[:, :, 2:5] is dim 1, "
         "start 2, stop 5 (PyTorch: x[..., start:stop:step] or x.narrow; Keras: Cropping1D/2D, or "
         "keras.ops.slice). To split a tensor, use one Slice per part, e.g. channels 0:32 and 32:64 "
         "of (64, H, W); to pick one position and drop the dimension, use Select.",
    params=(
        _dim_param(-1, "Dimension to slice, from 0 without the batch; -1 is the last."),
        Param("start", "int", 0, min=-1_000_000, max=1_000_000,
              help="First position kept; negative counts from the end (-3: the last three)."),
        Param("stop", "int", 0, min=-1_000_000, max=1_000_000,
              help="Position to stop before; 0 means to the end, negative counts from the end."),
        Param("step", "int", 1, min=1, max=1_000_000, help="Keep every step-th position."),
    ),
    infer=_slice_infer, emit=_slice_emit, short=_slice_short,
))


# ----------------------------------------------------------------------------- Select

def _select_index(p, x: TensorSpec) -> tuple[int, int]:
    dim = axis(p["dim"], x)
    size = x.shape[dim]
    if not -size <= p["index"] < size:
        raise ShapeError(f"index {p['index']} is outside dimension {dim} (size {size}) of {x}: use "
                         f"0..{size - 1}, or -1 for the last", kind="invalid-param")
    return dim, p["index"]


def _select_infer(p, ins):
    x = ins[0]
    if x.rank < 2:
        raise ShapeError(f"would leave nothing per sample of {x}: use a Slice of one position to keep a "
                         "(1,) tensor", kind="rank")
    dim, _ = _select_index(p, x)
    return TensorSpec(x.shape[:dim] + x.shape[dim + 1:])


def _select_emit(p, ins):
    dim, index = _select_index(p, ins[0])
    return Emit(call=index_expr(ins[0], dim, str(index)))


register(Block(
    type="Select", category="Tensor", default_name="select",
    shape_rule="S -> S without dimension `dim`, e.g. (T, D) with dim 0 -> (D,)",
    help="Takes one position along a dimension and drops that dimension, such as the class token of a "
         "(T + 1, D) sequence: dim 0, index 0 gives (D,) (PyTorch: x[:, 0] or x.select(dim, index); "
         "Keras: a Lambda of x[:, 0]).",
    params=(
        _dim_param(0, "Dimension to pick from, from 0 without the batch; -1 is the last."),
        Param("index", "int", 0, min=-1_000_000, max=1_000_000,
              help="The position taken; negative counts from the end (-1: the last)."),
    ),
    infer=_select_infer, emit=_select_emit,
    short=lambda p: f"dim {p['dim']}, [{p['index']}]",
))


# ----------------------------------------------------------------------------- ChannelShuffle

# nn.ChannelShuffle computes the same, but neither ONNX nor every backend has its kernel
_helper("channel_shuffle", '''
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle (nn.ChannelShuffle): channel order (group, c) becomes (c, group)."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)
''')


def _shuffle_infer(p, ins):
    x = ins[0]
    need_rank(x, (2, 3, 4), "(C, L) or (C, H, W)", "insert a Reshape to channels-first (C, L) or (C, H, W)")
    if x.shape[0] % p["groups"]:
        raise ShapeError(f"groups={p['groups']} must divide the {x.shape[0]} channels of {x}: choose a "
                         f"divisor of {x.shape[0]}", kind="invalid-param")
    return x


register(Block(
    type="ChannelShuffle", category="Tensor", default_name="channel_shuffle",
    shape_rule="(C, L) or (C, H, W) -> the same shape, channels reordered (groups must divide C)",
    help="Interleaves the channels of `groups` groups so the next grouped convolution mixes them, as in "
         "ShuffleNet: channel order (g, c) becomes (c, g) (PyTorch: nn.ChannelShuffle; Keras: no layer, "
         "a Reshape, Permute, Reshape).",
    params=(Param("groups", "int", 2, min=1, max=65536, help="Number of channel groups; must divide C."),),
    infer=_shuffle_infer,
    emit=lambda p, ins: Emit(call=f"channel_shuffle({{0}}, {p['groups']})", helpers=("channel_shuffle",)),
    short=lambda p: f"{p['groups']} groups",
))
