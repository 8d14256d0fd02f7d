"""Normalization by groups, instances and channels: GroupNorm, InstanceNorm, LayerNorm2d.

BatchNorm and LayerNorm, in the same palette category, are declared in core.py.
"""
from __future__ import annotations

from .base import Block, Emit, Param, ShapeError, lit, need_rank, register

EPS = Param("eps", "float", 1e-5, label="Epsilon", min=1e-12, max=1.0, help="Added to the variance for stability.")


def _group_infer(p, ins):
    x = ins[0]
    need_rank(x, (1, 2, 3), "(C,), (C, L) or (C, H, W)", "insert a Reshape, or a Permute to put the channels first")
    c = x.shape[0]
    if c % p["num_groups"]:
        fits = [g for g in (32, 16, 8, 4, 2, 1) if c % g == 0 and g < p["num_groups"]]
        raise ShapeError(f"num_groups={p['num_groups']} must divide the {c} channels of the input {x}: "
                         f"set num_groups to {fits[0]} (or any divisor of {c})", kind="invalid-param")
    return x


register(Block(
    type="GroupNorm", category="Normalization", default_name="group_norm", keras="GroupNormalization",
    shape_rule="(C,), (C, L) or (C, H, W) -> the same shape",
    help="Normalises each sample over groups of channels (and all positions), with a learned scale and "
         "shift per channel; independent of the batch size (Keras: GroupNormalization, groups=...).",
    params=(
        Param("num_groups", "int", 32, min=1, max=100_000, label="Groups",
              help="How many groups the C channels split into; must divide C (Keras: groups). 1 normalises "
                   "over all channels like a LayerNorm of the whole sample; C is an InstanceNorm."),
        EPS,
        Param("affine", "bool", True, label="Learn scale and shift",
              help="Learn a scale and shift per channel (Keras: center and scale)."),
    ),
    infer=_group_infer,
    count_params=lambda p, ins: 2 * ins[0].shape[0] if p["affine"] else 0,
    emit=lambda p, ins: Emit(
        init=f"nn.GroupNorm({p['num_groups']}, {ins[0].shape[0]}, eps={lit(p['eps'])}"
             + ("" if p["affine"] else ", affine=False") + ")",
        call="{self}({0})"),
    short=lambda p: f"{p['num_groups']} groups",
))


def _instance_infer(p, ins):
    need_rank(ins[0], (2, 3), "(C, L) or (C, H, W)", "insert a Reshape, or use LayerNorm for (F,) features")
    return ins[0]


def _instance_emit(p, ins):
    x = ins[0]
    args = [str(x.shape[0]), f"eps={lit(p['eps'])}"] + (["affine=True"] if p["affine"] else [])
    return Emit(init=f"nn.InstanceNorm{x.rank - 1}d({', '.join(args)})", call="{self}({0})")


register(Block(
    type="InstanceNorm", category="Normalization", default_name="instance_norm",
    shape_rule="(C, L) or (C, H, W) -> the same shape",
    help="Normalises each channel of each sample over its positions (InstanceNorm1d for (C, L), "
         "InstanceNorm2d for (C, H, W)), as in style transfer. Keras: GroupNormalization with groups=-1.",
    params=(
        EPS,
        Param("affine", "bool", False, label="Learn scale and shift",
              help="Learn a scale and shift per channel (PyTorch's default: off)."),
    ),
    infer=_instance_infer,
    count_params=lambda p, ins: 2 * ins[0].shape[0] if p["affine"] else 0,
    emit=_instance_emit,
))


def _ln2d_infer(p, ins):
    need_rank(ins[0], (3,), "(C, H, W)", "use LayerNorm for (F,) features and (T, F) sequences")
    return ins[0]


register(Block(
    type="LayerNorm2d", category="Normalization", default_name="layer_norm2d",
    shape_rule="(C, H, W) -> (C, H, W), normalised over C at every position",
    help="LayerNorm over the channels of a (C, H, W) input, at every position, with a learned scale and shift "
         "per channel: torchvision's LayerNorm2d (ConvNeXt). Keras: LayerNormalization(axis=-1) on "
         "channels-last images.",
    params=(EPS,),
    infer=_ln2d_infer,
    count_params=lambda p, ins: 2 * ins[0].shape[0],
    emit=lambda p, ins: Emit(init=f"LayerNorm2d({ins[0].shape[0]}, eps={lit(p['eps'])})", call="{self}({0})",
                             helpers=("LayerNorm2d",)),
))
