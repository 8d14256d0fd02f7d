"""Preprocessing and augmentation layers: Rescaling, RandomFlip, RandomRotation, RandomTranslation."""
from __future__ import annotations

from ..registry import LayerHandler, Skip, T, _channels_first, register


def image(k, t: T, name: str, cfg: dict) -> T:
    """The input as a channels-first image (an augmentation works on (C, H, W))."""
    if len(t.perm) != 3:
        raise Skip("needs an image (H, W, C) input")
    return k.ensure(t, _channels_first(3) if cfg.get("data_format", "channels_last") != "channels_first"
                    else (0, 1, 2), name)


@register("Rescaling")
class Rescaling(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
        if not isinstance(scale, (int, float)) or not isinstance(offset, (int, float)):
            raise Skip("with a scale or offset per channel has no Deepwire block")
        return self.block(k, name, "Rescaling", {"scale": float(scale), "offset": float(offset)}, ins[0])


@register("RandomFlip")
class RandomFlip(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        return self.block(k, name, "RandomFlip", {"mode": cfg.get("mode", "horizontal_and_vertical")},
                          image(k, ins[0], name, cfg))


@register("RandomRotation")
class RandomRotation(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        factor = cfg.get("factor")
        if not isinstance(factor, (int, float)):
            raise Skip("with an asymmetric factor has no Deepwire block")
        return self.block(k, name, "RandomRotation", {"degrees": abs(float(factor)) * 360.0},
                          image(k, ins[0], name, cfg))


@register("RandomTranslation")
class RandomTranslation(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        h, w = cfg.get("height_factor"), cfg.get("width_factor")
        if not isinstance(h, (int, float)) or not isinstance(w, (int, float)):
            raise Skip("with asymmetric factors has no Deepwire block")
        return self.block(k, name, "RandomTranslation", {"height_factor": abs(float(h)), "width_factor": abs(float(w))},
                          image(k, ins[0], name, cfg))
