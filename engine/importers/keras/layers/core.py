"""Core layers: Dense, Embedding, Flatten, Reshape, Permute, Dropout, GaussianNoise."""
from __future__ import annotations

import math

from ...common import WeightsImportError
from ..reading import _shape
from ..registry import LayerHandler, LayerWeights, Skip, T, _act, _expect, _tensor, kernel_and_bias, register


@register("Dense")
class Dense(LayerHandler):
    """Linear; after a Flatten of a channels-last map its kernel rows are reordered to the graph's flat order."""

    def build(self, k, name, cfg, ins, kw):
        t = ins[0]
        t = k.last_axis(t, len(t.perm) - 1, name)
        units, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
        n_in = k.kshape(t)[-1]
        out = self.block(k, name, "Linear", {"units": units, "bias": bias,
                                             "activation": _act(cfg.get("activation"), name)}, t,
                         n_in * units + (units if bias else 0))
        self.converts(k, out.node, name, cfg, t.order)
        return T(out.node, out.perm)

    def weights(self, w: LayerWeights) -> dict:
        order = w.order

        def weight(kernel):
            if order is not None:
                if kernel.ndim != 2 or kernel.shape[0] != len(order):
                    raise WeightsImportError(f"{w.where}: its kernel has shape {tuple(kernel.shape)} but its input "
                                             f"has {len(order)} features")
                kernel = kernel[order]   # Keras' (H, W, C) flat order -> the graph's (C, H, W)
            if kernel.ndim != 2:
                raise WeightsImportError(f"{w.where}: its kernel has shape {tuple(kernel.shape)}, not (inputs, units)")
            return kernel.T.contiguous()
        return kernel_and_bias(w, weight)


@register("Embedding")
class Embedding(LayerHandler):
    takes_tokens = True

    def build(self, k, name, cfg, ins, kw):
        if cfg.get("mask_zero"):
            k.notes.append(f"Embedding '{name}': mask_zero is not carried over, so padding positions take part "
                           "in the layers after it")
        n, d = int(cfg["input_dim"]), int(cfg["output_dim"])
        t = k.keras_order(ins[0], name)
        out = self.block(k, name, "Embedding", {"num_embeddings": n, "embedding_dim": d}, t, n * d)
        self.converts(k, out.node, name, cfg)
        return T(out.node, tuple(range(len(t.perm) + 1)))

    def weights(self, w: LayerWeights) -> dict:
        arrays = w.arrays()
        _expect(arrays, 1, w.where)
        return {"weight": _tensor(arrays[0])}


@register("Flatten")
class Flatten(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        # Keras flattens (H, W, C), Deepwire (C, H, W): the order differs, so no Permute is added here; the
        # tensor remembers the Keras order instead, and a Dense after it takes its kernel rows in that order.
        t = ins[0]
        order = t.order
        if len(t.perm) > 1 and t.perm != tuple(range(len(t.perm))):
            import torch

            order = tuple(torch.arange(math.prod(k.kshape(t))).reshape(k.kshape(t)).permute(t.perm)
                          .reshape(-1).tolist())
        return T(self.block(k, name, "Flatten", {}, t).node, (0,), order)


@register("Reshape")
class Reshape(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        k.reordered("Reshape", name, ins)
        t = k.keras_order(ins[0], name)
        target = _shape(cfg.get("target_shape"))
        if not target:
            raise Skip("has no target_shape")
        node = k.b.add("Reshape", name, {"shape": [int(d) if d is not None else -1 for d in target]}, [t.node],
                       where=f"Reshape '{name}'")
        k.count("Reshape", name, 0, [node])
        return T(node, tuple(range(len(target))))


@register("Permute")
class Permute(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        t = k.keras_order(ins[0], name)
        dims = [int(d) - 1 for d in cfg["dims"]]
        node = k.b.add("Permute", name, {"dims": dims}, [t.node], where=f"Permute '{name}'")
        k.count("Permute", name, 0, [node])
        return T(node, tuple(range(len(dims))))


@register("Dropout")
class Dropout(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        if cfg.get("noise_shape") is not None:
            raise Skip("with a noise_shape has no Deepwire block")
        return self.block(k, name, "Dropout", {"p": float(cfg.get("rate", 0.5))}, ins[0])


@register("GaussianNoise")
class GaussianNoise(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        return self.block(k, name, "GaussianNoise", {"stddev": float(cfg["stddev"])}, ins[0])
