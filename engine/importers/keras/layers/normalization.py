"""Normalization layers: BatchNormalization, LayerNormalization, GroupNormalization, and Normalization (fixed
statistics)."""
from __future__ import annotations

import math

from ...common import WeightsImportError
from ..registry import LayerHandler, LayerWeights, Skip, _expect, _tensor, register


class PerFeature(LayerHandler):
    """A normalization whose arrays are vectors over its features: `keys` in the file's order; a flat order
    recorded by `build` reorders them."""

    keys: tuple[str, ...] = ()

    def normalized(self, k, name, cfg, type_name, params, t, keras_params):
        out = self.block(k, name, type_name, params, t, keras_params)
        self.converts(k, out.node, name, cfg, t.order)
        return out

    def weights(self, w: LayerWeights) -> dict:
        arrays = w.arrays()
        order = w.order
        _expect(arrays, len(self.keys), w.where)
        vectors = [_tensor(a).reshape(-1) for a in arrays]
        if order is not None:
            vectors = [v[order] if len(v) == len(order) else v for v in vectors]
        return dict(zip(self.keys, vectors))


@register("BatchNormalization")
class BatchNormalization(PerFeature):
    """gamma, beta, moving mean, moving variance -> weight, bias, running_mean, running_var."""

    keys = ("weight", "bias", "running_mean", "running_var")
    param_note = ("Keras counts the moving mean and variance as (non-trainable) parameters; PyTorch keeps them "
                  "as buffers (and Deepwire's BatchNorm always learns a scale and a shift)")

    def build(self, k, name, cfg, ins, kw):
        if not cfg.get("center", True) or not cfg.get("scale", True):
            k.notes.append(f"BatchNormalization '{name}': Keras' has no learned " + (
                "scale or shift" if not cfg.get("center", True) and not cfg.get("scale", True)
                else "scale" if not cfg.get("scale", True) else "shift") + "; Deepwire's BatchNorm learns both, "
                "starting from 1 and 0, so the outputs are the same until it is trained")
        t = ins[0]
        t = k.first_axis(t, k.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        channels = k.b.specs[t.node].shape[0]
        params = {"eps": float(cfg.get("epsilon", 1e-3)), "momentum": round(1.0 - float(cfg.get("momentum", 0.99)), 12)}
        learned = bool(cfg.get("center", True)) + bool(cfg.get("scale", True))
        return self.normalized(k, name, cfg, "BatchNorm", params, t, (2 + learned) * channels)

    def weights(self, w: LayerWeights) -> dict:
        """Keras files [gamma if scale] [beta if center] moving mean, moving variance; a missing gamma is 1, a
        missing beta 0."""
        import torch

        arrays = w.arrays()
        scale, center = bool(w.cfg.get("scale", True)), bool(w.cfg.get("center", True))
        _expect(arrays, 2 + scale + center, w.where)
        vectors = [_tensor(a).reshape(-1) for a in arrays]
        mean, var = vectors[-2], vectors[-1]
        gamma = vectors[0] if scale else torch.ones_like(mean)
        beta = vectors[int(scale)] if center else torch.zeros_like(mean)
        order = w.order
        out = dict(zip(self.keys, [gamma, beta, mean, var]))
        if order is not None:
            out = {key: v[order] if len(v) == len(order) else v for key, v in out.items()}
        out["num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        return out


@register("LayerNormalization")
class LayerNormalization(PerFeature):
    """gamma, beta -> weight, bias."""

    keys = ("weight", "bias")

    def build(self, k, name, cfg, ins, kw):
        if not cfg.get("center", True) or not cfg.get("scale", True) or cfg.get("rms_scaling"):
            raise Skip("without center or scale, or with rms_scaling, has no Deepwire block")
        t = ins[0]
        t = k.last_axis(t, k.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        channels = k.b.specs[t.node].shape[-1]
        return self.normalized(k, name, cfg, "LayerNorm", {"eps": float(cfg.get("epsilon", 1e-3))}, t, 2 * channels)


@register("Normalization")
class Normalization(LayerHandler):
    """Mean and variance (adapted, in the weights file; or given in the configuration) -> the block's mean and std
    buffers. Without weights the block fits them from the training data."""

    param_note = "Keras counts the adapted mean, variance and count as parameters; Deepwire keeps them as buffers"

    def build(self, k, name, cfg, ins, kw):
        if cfg.get("invert"):
            raise Skip("with invert=True has no Deepwire block")
        t = ins[0]
        axis = k.sample_axis(cfg.get("axis", -1) if cfg.get("axis", -1) is not None else -1, len(t.perm))
        dim = t.perm.index(axis)
        channels = k.kshape(t)[axis]
        fixed = cfg.get("mean") is not None
        if fixed:
            k.without_weights.append(f"Normalization '{name}': the mean and variance in the configuration are not "
                                     "kept without weights; Deepwire fits them from the training data")
        params = {"axis": -1 if dim == len(t.perm) - 1 else dim}
        out = self.block(k, name, "Normalization", params, t, 0 if fixed else 2 * channels + 1)
        self.converts(k, out.node, name, cfg, t.order)
        return out

    def weights(self, w: LayerWeights) -> dict:
        import numpy as np
        import torch

        cfg, where, shapes = w.cfg, w.where, w.shapes
        arrays = w.find()   # taken even when the configuration holds the statistics: the file's copy is placed
        order = w.extra if isinstance(w.extra, tuple) else None
        if cfg.get("mean") is not None and cfg.get("variance") is not None:
            mean, variance = cfg["mean"], cfg["variance"]
        elif arrays is None:
            raise WeightsImportError(f"the weights file has no weights for {where}")
        else:
            _expect(arrays, 3, where)
            mean, variance = arrays[0], arrays[1]
        size = math.prod(shapes.get("mean", (0,)))
        vectors = []
        for values in (mean, variance):
            v = torch.from_numpy(np.array(values, dtype=np.float32)).reshape(-1)
            if v.numel() == 1:
                v = v.expand(size)
            if v.numel() != size:
                raise WeightsImportError(f"{where}: its mean and variance have {v.numel()} values; the graph needs "
                                         f"{size}")
            if order is not None and len(order) == size:
                v = v[torch.tensor(order)]
            vectors.append(v.contiguous())
        shape = shapes["mean"]
        return {"mean": vectors[0].reshape(shape), "std": vectors[1].clamp(min=0).sqrt().reshape(shape)}


@register("GroupNormalization")
class GroupNormalization(PerFeature):
    """gamma, beta -> GroupNorm's weight, bias (groups=-1: one group per channel)."""

    keys = ("weight", "bias")

    def build(self, k, name, cfg, ins, kw):
        center, scale = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
        if center != scale:
            raise Skip("with only one of center and scale has no Deepwire block")
        t = ins[0]
        t = k.first_axis(t, k.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        channels = k.b.specs[t.node].shape[0]
        groups = int(cfg.get("groups", 32))
        groups = channels if groups == -1 else groups
        if groups < 1 or channels % groups:
            raise Skip(f"with {groups} groups of {channels} channels has no Deepwire block")
        params = {"num_groups": groups, "eps": float(cfg.get("epsilon", 1e-3)), "affine": scale}
        if not scale:
            return self.block(k, name, "GroupNorm", params, t)
        return self.normalized(k, name, cfg, "GroupNorm", params, t, 2 * channels)
