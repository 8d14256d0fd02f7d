"""Merging layers: Add, Multiply, Concatenate (each one block of the same name)."""
from __future__ import annotations

from ..registry import LayerHandler, Skip, T, register


@register("Add")
@register("Multiply")
class Merge(LayerHandler):
    many_inputs = True

    def build(self, k, name, cfg, ins, kw):
        return self.merge(k, name, ins)

    def merge(self, k, name, ins, params=None) -> T:
        cls = self.keras_class
        if len(ins) < 2:
            raise Skip("needs at least two inputs")
        first = ins[0]
        if cls == "Concatenate" or len({t.order for t in ins}) > 1:
            k.reordered(cls, name, ins)
        ts = [first] + [k.ensure(t, first.perm, f"{name}_{i}") if len(t.perm) == len(first.perm) else t
                        for i, t in enumerate(ins[1:], 1)]
        node = k.b.add(cls, name, params or {}, [t.node for t in ts], where=f"{cls} '{name}'")
        k.count(cls, name, 0, [node])
        return T(node, first.perm, first.order if cls != "Concatenate" else None)


@register("Concatenate")
class Concatenate(Merge):
    def build(self, k, name, cfg, ins, kw):
        if not ins:
            raise Skip("needs inputs")
        axis = k.sample_axis(cfg.get("axis", -1), len(ins[0].perm))
        dim = ins[0].perm.index(axis)
        return self.merge(k, name, ins, {"dim": -1 if dim == len(ins[0].perm) - 1 else dim})
