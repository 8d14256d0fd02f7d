"""Augmentation: random transforms while training, the identity in evaluation and export."""
from __future__ import annotations

from .base import Block, Emit, Param, TensorSpec, lit, need_rank, register

IMAGE_HINT = "augmentations of this kind work on images; insert a Reshape to (C, H, W)"


def _image(p, ins):
    need_rank(ins[0], (3,), "(C, H, W) image", IMAGE_HINT)
    return ins[0]


def _any(p, ins) -> TensorSpec:
    return ins[0]


register(Block(
    type="RandomFlip", category="Augmentation", default_name="random_flip",
    shape_rule="(C, H, W) -> (C, H, W)",
    help="While training, flips each image left-right and/or up-down with probability 0.5.",
    params=(Param("mode", "choice", "horizontal", choices=("horizontal", "vertical", "horizontal_and_vertical"),
                  help="Which flips to draw."),),
    infer=_image,
    emit=lambda p, ins: Emit(init=f"RandomFlip({lit(p['mode'])})", call="{self}({0})", helpers=("RandomFlip",)),
    short=lambda p: p["mode"].replace("_and_", "+"),
))

register(Block(
    type="RandomRotation", category="Augmentation", default_name="random_rotation",
    shape_rule="(C, H, W) -> (C, H, W)",
    help="While training, rotates each image by a random angle in [-degrees, degrees].",
    params=(Param("degrees", "float", 10.0, min=0.0, max=180.0, help="Largest rotation either way."),),
    infer=_image,
    emit=lambda p, ins: Emit(init=f"RandomRotation({lit(p['degrees'])})", call="{self}({0})",
                             helpers=("RandomRotation",)),
    short=lambda p: f"±{p['degrees']:g}°",
))

register(Block(
    type="RandomTranslation", category="Augmentation", default_name="random_translation",
    shape_rule="(C, H, W) -> (C, H, W)",
    help="While training, shifts each image by a random fraction of its height and width (zeros fill in).",
    params=(
        Param("height_factor", "float", 0.1, min=0.0, max=1.0, help="Largest vertical shift, as a fraction."),
        Param("width_factor", "float", 0.1, min=0.0, max=1.0, help="Largest horizontal shift, as a fraction."),
    ),
    infer=_image,
    emit=lambda p, ins: Emit(init=f"RandomTranslation({lit(p['height_factor'])}, {lit(p['width_factor'])})",
                             call="{self}({0})", helpers=("RandomTranslation",)),
))

register(Block(
    type="RandomCrop", category="Augmentation", default_name="random_crop",
    shape_rule="(C, H, W) -> (C, H, W)",
    help="While training, pads each image by `padding` zeros and crops a random window of the "
         "original size (a random shift of up to `padding` pixels); the shape is unchanged.",
    params=(Param("padding", "int", 4, min=0, max=1024, help="Largest shift in pixels."),),
    infer=_image,
    emit=lambda p, ins: Emit(init=f"RandomCrop({p['padding']})", call="{self}({0})", helpers=("RandomCrop",)),
    short=lambda p: f"pad {p['padding']}",
))

register(Block(
    type="GaussianNoise", category="Augmentation", default_name="gaussian_noise",
    shape_rule="S -> S",
    help="While training, adds zero-mean Gaussian noise with the given standard deviation.",
    params=(Param("stddev", "float", 0.1, min=0.0, max=1e6, help="Standard deviation of the noise."),),
    infer=_any,
    emit=lambda p, ins: Emit(init=f"GaussianNoise({lit(p['stddev'])})", call="{self}({0})",
                             helpers=("GaussianNoise",)),
    short=lambda p: f"σ={p['stddev']:g}",
))
