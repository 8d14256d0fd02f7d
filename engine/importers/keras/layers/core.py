"""Core layers: Dense, Embedding, Flatten, Reshape, Permute, Dropout (one draw per sample: StochasticDepth),
GaussianNoise, PReLU, and keras.applications' LayerScale."""
from __future__ import annotations

import math

from ...common import WeightsImportError
from ..reading import _shape
from ..registry import (
    LayerHandler,
    LayerWeights,
    Skip,
    T,
    _act,
    _channels_first,
    _expect,
    _tensor,
    kernel_and_bias,
    register,
)


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
            if order == tuple(range(len(order))):   # e.g. (1, 1, C): the two orders agree
                order = None
        return T(self.block(k, name, "Flatten", {}, t).node, (0,), order)


@register("Reshape")
class Reshape(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        k.reordered("Reshape", name, ins)
        t = k.keras_order(ins[0], name)
        target = _shape(cfg.get("target_shape"))
        if not target:
            raise Skip("has no target_shape")
        target = [int(d) if d is not None else -1 for d in target]
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = math.prod(k.kshape(t)) // max(known, 1)
        perm = tuple(range(len(target)))
        if len(target) >= 2:   # to an image whose channels can go first without moving an element: (1, 1, C)
            first = _channels_first(len(target))
            if [d for d in target if d != 1] == [target[p] for p in first if target[p] != 1]:
                perm = first
        node = k.b.add("Reshape", name, {"shape": [target[p] for p in perm]}, [t.node], where=f"Reshape '{name}'")
        k.count("Reshape", name, 0, [node])
        return T(node, perm)


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
        noise = _shape(cfg.get("noise_shape"))
        if noise is not None:
            if len(noise) == len(ins[0].perm) + 1 and noise[0] is None and all(d == 1 for d in noise[1:]):
                # one draw per sample (EfficientNet's drop connect): stochastic depth, the identity in evaluation
                return self.block(k, name, "StochasticDepth", {"p": float(cfg.get("rate", 0.5)), "mode": "row"},
                                  ins[0])
            raise Skip(f"with noise_shape {noise} has no Deepwire block (only one draw per sample: "
                       "(None, 1, ...), which is StochasticDepth)")
        return self.block(k, name, "Dropout", {"p": float(cfg.get("rate", 0.5))}, ins[0])


@register("LayerScale")
class LayerScale(LayerHandler):
    """keras.applications.convnext's LayerScale: x * gamma over the last (channels) axis -> the LayerScale
    block, 'channels_last' or 'channels_first' as the tensor's channels lie."""

    def build(self, k, name, cfg, ins, kw):
        t = ins[0]
        channel = len(t.perm) - 1
        if t.perm[-1] != channel and t.perm[0] != channel:
            t = k.last_axis(t, channel, name)
        layout = "channels_last" if t.perm[-1] == channel else "channels_first"
        init = float(cfg.get("init_values", 1e-6))
        out = self.block(k, name, "LayerScale", {"init_value": init, "layout": layout}, t, k.kshape(t)[-1])
        self.converts(k, out.node, name, cfg)
        return out

    def weights(self, w: LayerWeights) -> dict:
        return one_array(w, "gamma", "gamma")


@register("PReLU")
class PReLU(LayerHandler):
    """alpha -> PReLU's weight: one slope per channel (shared over the positions: shared_axes [1, 2] of an
    image) or one for all (every axis shared)."""

    def build(self, k, name, cfg, ins, kw):
        t = ins[0]
        rank = len(t.perm)
        shared = cfg.get("shared_axes") or []
        shared = {int(a) - 1 for a in (shared if isinstance(shared, list) else [shared])}
        channel = rank - 1
        if shared == set(range(rank)):
            per_channel = False
        elif shared == set(range(rank)) - {channel}:
            per_channel = True
            t = k.first_axis(t, channel, name)
        else:
            raise Skip("with an alpha per position has no Deepwire block (share it over every axis but the "
                       "channels: shared_axes=[1, 2] for an image)")
        out = self.block(k, name, "PReLU", {"per_channel": per_channel}, t,
                         k.kshape(t)[channel] if per_channel else 1)
        self.converts(k, out.node, name, cfg)
        return out

    def weights(self, w: LayerWeights) -> dict:
        return one_array(w, "alpha", "weight")


@register("GaussianNoise")
class GaussianNoise(LayerHandler):
    def build(self, k, name, cfg, ins, kw):
        return self.block(k, name, "GaussianNoise", {"stddev": float(cfg["stddev"])}, ins[0])


def one_array(w: LayerWeights, what: str, key: str) -> dict:
    """A layer's one array, reshaped to the block's `key` (its values in the same order)."""
    arrays = w.arrays()
    _expect(arrays, 1, w.where)
    values = _tensor(arrays[0]).reshape(-1)
    shape = w.shapes.get(key, (values.numel(),))
    if values.numel() != math.prod(shape):
        raise WeightsImportError(f"{w.where}: its {what} has {values.numel()} values; the graph needs "
                                 f"{math.prod(shape)}")
    return {key: values.reshape(shape)}
