"""Activation layers: Activation, ReLU (max_value 6: relu6), LeakyReLU, ELU, Softmax (each an Activation block)."""
from __future__ import annotations

import math

from ..registry import LayerHandler, Skip, _act, register


@register("Activation")
class Activation(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        act = _act(cfg.get("activation"), name)
        t = ins[0]
        if act == "none":
            return t
        if act == "softmax":
            t = k.last_axis(t, len(t.perm) - 1, name)
        return self.block(k, name, "Activation", {"function": act}, t)


@register("ReLU")
class ReLU(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        top, slope = cfg.get("max_value"), float(cfg.get("negative_slope") or 0.0)
        if cfg.get("threshold") or (top is not None and float(top) != 6.0) or (top is not None and slope):
            raise Skip("with a threshold, or a max_value other than 6, has no Deepwire block (ReLU(6.0) is relu6)")
        if slope and not math.isclose(slope, 0.01):
            raise Skip(f"with negative_slope {slope} has no Deepwire block (Deepwire's leaky_relu uses 0.01)")
        function = "relu6" if top is not None else "leaky_relu" if slope else "relu"
        return self.block(k, name, "Activation", {"function": function}, ins[0])


@register("LeakyReLU")
class LeakyReLU(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        if not math.isclose(float(slope), 0.01):
            raise Skip(f"with negative_slope {slope} has no Deepwire block (Deepwire's leaky_relu uses 0.01)")
        return self.block(k, name, "Activation", {"function": "leaky_relu"}, ins[0])


@register("ELU")
class ELU(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        if float(cfg.get("alpha", 1.0)) != 1.0:
            raise Skip("with alpha other than 1 has no Deepwire block")
        return self.block(k, name, "Activation", {"function": "elu"}, ins[0])


@register("Softmax")
class Softmax(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        t = ins[0]
        t = k.last_axis(t, k.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        return self.block(k, name, "Activation", {"function": "softmax"}, t)
