"""MultiHeadAttention -> nn.MultiheadAttention."""
from __future__ import annotations

from ...common import WeightsImportError
from ..reading import _shown, _what
from ..registry import LayerHandler, LayerWeights, Skip, T, _expect, _tensor, register

ROLES = ("query", "value", "key")


@register("MultiHeadAttention")
class MultiHeadAttention(LayerHandler):
    """Self-attention, or attention of a query over a value (and key); key_dim x num_heads must equal the query's
    features, as PyTorch splits the embedding across the heads."""

    many_inputs = True

    def inputs(self, args, kwargs, tensors):
        """[query, value, key?], given by position or by keyword."""
        given = {}
        for i, key in enumerate(ROLES):
            ref = args[i] if i < len(args) else kwargs.get(key)
            if isinstance(ref, tuple):
                given[key] = tensors[ref[0]]
        if len(args) > 3:
            raise Skip(f"takes {len(args)} inputs")
        for key, value in kwargs.items():
            if isinstance(value, tuple) and key not in ROLES:
                raise Skip(f"called with {_shown(key)[:40]} has no Deepwire block")
        if "query" not in given or "value" not in given:
            raise Skip("needs a query and a value")
        return [given["query"], given["value"]] + ([given["key"]] if "key" in given else [])

    def build(self, k, name, cfg, ins, kw):
        if cfg.get("output_shape") is not None:
            raise Skip("with output_shape has no Deepwire block")
        if cfg.get("use_gate") or cfg.get("sliding_window") is not None:
            raise Skip("with use_gate or sliding_window has no Deepwire block")
        axes = cfg.get("attention_axes")
        if axes is not None:   # Keras writes the default, [1], into a built layer's config
            axes = axes if isinstance(axes, (list, tuple)) else [axes]
            ranks = {len(t.perm) for t in ins}
            if ranks != {2} or len(axes) != 1 or not isinstance(axes[0], int) or isinstance(axes[0], bool) \
                    or axes[0] % 4 != 1:
                raise Skip(f"with attention_axes {_what(cfg.get('attention_axes'))} has no Deepwire "
                           "block (only attention over the time steps of (T, F) inputs)")
        for key in ("attention_mask", "return_attention_scores"):
            if kw.get(key):
                raise Skip(f"called with {key} has no Deepwire block")
        heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
        value_dim = int(cfg.get("value_dim") or key_dim)
        ts = [k.keras_order(t, name) for t in ins]
        q = ts[0]
        e = k.kshape(q)[-1]
        if key_dim * heads != e or value_dim != key_dim:
            raise Skip(f"projects to num_heads x key_dim = {heads * key_dim} but the query has {e} features; "
                       "PyTorch's MultiheadAttention splits the embedding across the heads, so key_dim must be "
                       f"{e} / num_heads (and value_dim the same)")
        same = len({t.node for t in ts}) == 1
        srcs = [q.node] if same else [q.node, ts[2].node if len(ts) > 2 else ts[1].node, ts[1].node]
        bias = bool(cfg.get("use_bias", True))
        params = {"num_heads": heads, "mode": "self" if same else "query_key_value",
                  "causal": bool(kw.get("use_causal_mask", False)), "dropout": float(cfg.get("dropout", 0.0)),
                  "bias": bias}
        node = k.b.add("MultiheadAttention", name, params, srcs, where=f"MultiHeadAttention '{name}'")
        kd = k.kshape(ts[2] if len(ts) > 2 else ts[1])[-1] if not same else e
        vd = k.kshape(ts[1])[-1] if not same else e
        keras_params = (e * e + kd * e + vd * e + e * e) + (4 * e if bias else 0)
        k.count("MultiHeadAttention", name, keras_params, [node])
        self.converts(k, node, name, cfg)
        return T(node, (0, 1))

    def weights(self, w: LayerWeights) -> dict:
        """The query/key/value/output dense layers (Keras 3 files them under query_dense/...): the kernels
        (features, heads, key_dim) become rows head by head, as PyTorch splits its projections."""
        import torch

        where, cfg = w.where, w.cfg
        bias = bool(cfg.get("use_bias", True))
        heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
        width = heads * key_dim
        parts = {}
        for part in ("query", "key", "value", "output"):
            arrays = w.find(part)
            if arrays is None:
                raise WeightsImportError(f"the weights file has no {part} weights for {where} "
                                         f"(looked under {w.store.where(w.name)})")
            _expect(arrays, 2 if bias else 1, f"{where} ({part})")
            kernel = _tensor(arrays[0])
            if part == "output":
                if kernel.ndim != 3 or kernel.shape[0] * kernel.shape[1] != width:
                    raise WeightsImportError(f"{where}: its output kernel has shape {tuple(kernel.shape)}, which "
                                             f"does not fit {heads} heads of {key_dim}")
                weight = kernel.reshape(width, kernel.shape[2]).T
            else:
                if kernel.ndim != 3 or kernel.shape[1] * kernel.shape[2] != width:
                    raise WeightsImportError(f"{where}: its {part} kernel has shape {tuple(kernel.shape)}, which "
                                             f"does not fit {heads} heads of {key_dim}")
                weight = kernel.reshape(kernel.shape[0], width).T
            parts[part] = (weight.contiguous(), _tensor(arrays[1]).reshape(-1) if bias else None)
        q, k, v = parts["query"][0], parts["key"][0], parts["value"][0]
        if q.shape[1] == k.shape[1] == v.shape[1] == q.shape[0]:
            out = {"in_proj_weight": torch.cat([q, k, v], 0)}
        else:
            out = {"q_proj_weight": q, "k_proj_weight": k, "v_proj_weight": v}
        out["out_proj.weight"] = parts["output"][0]
        if bias:
            out["in_proj_bias"] = torch.cat([parts[p][1] for p in ("query", "key", "value")])
            out["out_proj.bias"] = parts["output"][1]
        return out
