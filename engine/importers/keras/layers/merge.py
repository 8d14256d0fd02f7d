"""Merging layers: Add, Multiply, Concatenate (each one block of the same name; Add and Multiply broadcast, and
a number among their inputs, as `x + 3.0` and `x * (1 / 6)` become in a functional model, is a Rescaling), and
keras.applications' CustomScaleLayer (InceptionResNetV2: x + r * scale)."""
from __future__ import annotations

import math

from ..registry import CONSTANTS, LayerHandler, Skip, T, register


@register("Add", takes_constants=True)
@register("Multiply", takes_constants=True)
class Merge(LayerHandler):
    many_inputs = True

    def build(self, k, name, cfg, ins, kw):
        numbers = kw.get(CONSTANTS) or []
        if not numbers:
            return self.merge(k, name, ins)
        if not ins:
            raise Skip("needs a tensor input")
        t = self.merge(k, f"{name}_tensors", ins) if len(ins) > 1 else ins[0]
        if self.keras_class == "Add":
            params = {"scale": 1.0, "offset": float(sum(numbers))}
        else:
            params = {"scale": float(math.prod(numbers)), "offset": 0.0}
        return self.block(k, name, "Rescaling", params, t)

    def merge(self, k, name, ins, params=None) -> T:
        cls = self.keras_class
        if len(ins) < 2:
            raise Skip("needs at least two inputs")
        if cls == "Concatenate" or len({t.order for t in ins}) > 1:
            k.reordered(cls, name, ins)
        if len({len(t.perm) for t in ins}) > 1:   # broadcast as Keras does: in Keras' order
            ts = [k.keras_order(t, f"{name}_{i}") for i, t in enumerate(ins)]
            first = ts[0]
        else:   # the largest input keeps its order, the others follow it
            first = max(ins, key=lambda t: math.prod(k.b.specs[t.node].shape))
            ts = [k.ensure(t, first.perm, f"{name}_{i}") for i, t in enumerate(ins)]
        node = k.b.add(cls, name, params or {}, [t.node for t in ts], where=f"{cls} '{name}'")
        k.count(cls, name, 0, [node])
        return T(node, first.perm, first.order if cls != "Concatenate" else None)


@register("Concatenate")
class Concatenate(Merge):
    def build(self, k, name, cfg, ins, kw):
        if not ins:
            raise Skip("needs inputs")
        axis = k.sample_axis(cfg.get("axis", -1), len(ins[0].perm))
        first = ins[0]
        ins = [first] + [k.ensure(t, first.perm, f"{name}_{i}") for i, t in enumerate(ins[1:], 1)]
        dim = first.perm.index(axis)
        return self.merge(k, name, ins, {"dim": -1 if dim == len(first.perm) - 1 else dim})


@register("CustomScaleLayer")
class CustomScale(LayerHandler):
    """keras.applications.inception_resnet_v2's layer: inputs[0] + inputs[1] * scale -> a Rescaling of the
    second input and an Add."""

    many_inputs = True

    def build(self, k, name, cfg, ins, kw):
        if len(ins) != 2:
            raise Skip(f"takes {len(ins)} inputs (it adds a scaled second input to the first)")
        scale = cfg.get("scale")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise Skip(f"with scale {scale!r} has no Deepwire block")
        a, b = ins
        b = k.ensure(b, a.perm, name) if len(b.perm) == len(a.perm) else b
        scaled = k.b.add("Rescaling", f"{name}_scale", {"scale": float(scale), "offset": 0.0}, [b.node],
                         where=f"CustomScaleLayer '{name}'")
        node = k.b.add("Add", name, {}, [a.node, scaled], where=f"CustomScaleLayer '{name}'")
        k.count(self.keras_class, name, 0, [scaled, node])
        return T(node, a.perm, a.order)
