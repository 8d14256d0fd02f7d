"""Recurrent layers: SimpleRNN, LSTM, GRU, and Bidirectional around one of them."""
from __future__ import annotations

from ...common import WeightsImportError
from ..reading import _what
from ..registry import LAYERS, LayerHandler, LayerWeights, Skip, T, _expect, _tensor, register

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
BIAS_NOTE = ("PyTorch's recurrent layers keep two bias vectors (input and recurrent) where Keras keeps one, "
             "by design")
IGNORED = ("name", "go_backwards", "trainable", "dtype", "seed")


@register("SimpleRNN", kind="RNN")
@register("LSTM", kind="LSTM")
@register("GRU", kind="GRU")
class Recurrent(LayerHandler):
    """Kernel, recurrent kernel, bias -> weight_ih, weight_hh, bias_ih (bias_hh zero; GRU: bias rows 0 and 1),
    GRU gates reordered from Keras' z, r, h to PyTorch's r, z, n. Keras 3 files the arrays under `cell/`."""

    kind = ""
    param_note = BIAS_NOTE

    def build(self, k, name, cfg, ins, kw):
        return recurrent(self, k, self, name, cfg, ins)

    def weights(self, w: LayerWeights) -> dict:
        reset_after(w.extra, w.cfg, w.where)
        return recurrent_weights(w.extra, w.cfg, w.arrays(recurrent=True), w.where)


@register("Bidirectional")
class Bidirectional(LayerHandler):
    """A recurrent layer both ways (merge_mode 'concat'): its forward and backward layers' weights become the
    block's weights and its `_reverse` weights."""

    param_note = BIAS_NOTE

    def build(self, k, name, cfg, ins, kw):
        inner = cfg.get("layer")
        inner = inner if isinstance(inner, dict) else {}
        cls = inner.get("class_name")
        if not isinstance(cls, str) or not isinstance(LAYERS.get(cls), Recurrent):
            raise Skip(f"around {_what(cls)} has no Deepwire block")
        if cfg.get("merge_mode", "concat") != "concat":
            raise Skip(f"with merge_mode {_what(cfg.get('merge_mode'))} has no Deepwire block "
                       "(only 'concat')")
        inner_cfg = inner.get("config")
        if not isinstance(inner_cfg, dict):
            raise Skip("has no configuration for its layer")
        backward = cfg.get("backward_layer")
        if backward and not _mirrors(inner, backward):
            raise Skip("with a backward layer that is not the forward layer reversed has no Deepwire block")
        return recurrent(self, k, LAYERS[cls], name, dict(inner_cfg), ins, bidirectional=True)

    def weights(self, w: LayerWeights) -> dict:
        reset_after(w.extra, w.cfg, w.where)
        out = {}
        for part, suffix in (("forward", ""), ("backward", "_reverse")):
            out.update(recurrent_weights(w.extra, w.cfg, w.arrays(part, recurrent=True), f"{w.where} ({part})", suffix))
        return out


def recurrent(handler: LayerHandler, k, layer: Recurrent, name: str, cfg: dict, ins: list[T],
              bidirectional=False) -> T:
    """The block of the recurrent `layer` (the handler's own, or the one a Bidirectional wraps), whose weights
    `handler` converts."""
    cls, kind = layer.keras_class, layer.kind
    for flag in ("return_state", "go_backwards", "stateful"):
        if cfg.get(flag):
            raise Skip(f"with {flag}=True has no Deepwire block")
    if cfg.get("unroll"):
        pass  # unrolling changes speed, not results
    activation = cfg.get("activation", "tanh")
    if kind == "RNN":
        if activation not in ("tanh", "relu"):
            raise Skip(f"with activation {_what(activation)} has no Deepwire block (tanh or relu)")
    elif activation != "tanh" or cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
        raise Skip("with activations other than tanh and a sigmoid recurrent activation has no PyTorch "
                   "equivalent")
    if kind == "GRU" and not cfg.get("reset_after", True):
        k.notes.append(f"GRU '{name}': reset_after=False applies the reset gate before the recurrent "
                       "weights; PyTorch's GRU applies it after (Keras' reset_after=True)")
    if cfg.get("dropout") or cfg.get("recurrent_dropout"):
        k.notes.append(f"{cls} '{name}': its input and recurrent dropout have no PyTorch equivalent and are "
                       "left out; add a Dropout block before it if you need one")
    t = k.keras_order(ins[0], name)
    if len(t.perm) != 2:
        raise Skip("needs a (timesteps, features) input")
    units, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
    params = {"hidden_size": units, "bidirectional": bidirectional,
              "return_sequences": bool(cfg.get("return_sequences", False)), "bias": bias}
    if kind == "RNN":
        params["nonlinearity"] = activation
    features = k.kshape(t)[-1]
    gates = GATES[kind]
    bias_count = gates * units * (2 if kind == "GRU" and cfg.get("reset_after", True) else 1) if bias else 0
    keras_params = (gates * units * (features + units) + bias_count) * (2 if bidirectional else 1)
    node = k.b.add(kind, name, params, [t.node], where=f"{cls} '{name}'")
    k.count(cls, name, keras_params, [node])
    handler.converts(k, node, name, cfg, layer)
    return T(node, (0, 1) if params["return_sequences"] else (0,))


def _mirrors(forward: dict, backward) -> bool:
    """Whether a Bidirectional's backward layer is its forward layer run backwards (what Keras 3 writes even when
    no backward layer was given): the same class and configuration but for its name, go_backwards and how its
    weights start."""
    if not isinstance(backward, dict) or backward.get("class_name") != forward.get("class_name"):
        return False
    a, b = forward.get("config"), backward.get("config")
    if not isinstance(a, dict) or not isinstance(b, dict) or not b.get("go_backwards"):
        return False

    def kept(cfg):
        return {k: v for k, v in cfg.items() if k not in IGNORED and not k.endswith(
            ("_initializer", "_regularizer", "_constraint"))}
    return kept(a) == kept(b)


def reset_after(layer: Recurrent, cfg: dict, where: str) -> None:
    if layer.kind == "GRU" and not cfg.get("reset_after", True):
        raise WeightsImportError(f"{where}: GRU weights with reset_after=False cannot be imported (PyTorch's GRU "
                                 "applies the reset gate after the recurrent weights, as Keras' reset_after=True)")


def recurrent_weights(layer: Recurrent, cfg: dict, arrays: list, where: str, suffix: str = "") -> dict:
    import torch

    bias = bool(cfg.get("use_bias", True))
    _expect(arrays, 3 if bias else 2, where)
    kernel, recurrent = _tensor(arrays[0]), _tensor(arrays[1])
    units = int(cfg["units"])
    gates = GATES[layer.kind]
    if kernel.ndim != 2 or kernel.shape[1] != gates * units or tuple(recurrent.shape) != (units, gates * units):
        raise WeightsImportError(f"{where}: its kernels have shapes {tuple(kernel.shape)} and "
                                 f"{tuple(recurrent.shape)}, which do not fit {units} units")
    b_ih = b_hh = None
    if bias:
        b = _tensor(arrays[2])
        if layer.kind == "GRU":
            if tuple(b.shape) != (2, 3 * units):
                raise WeightsImportError(f"{where}: its bias has shape {tuple(b.shape)}, expected (2, {3 * units})")
            b_ih, b_hh = b[0], b[1]
        else:
            if tuple(b.shape) != (gates * units,):
                raise WeightsImportError(f"{where}: its bias has shape {tuple(b.shape)}, expected ({gates * units},)")
            b_ih, b_hh = b, torch.zeros_like(b)

    def reorder(t, dim):   # Keras GRU gates z, r, h -> PyTorch r, z, n
        if layer.kind != "GRU":
            return t
        z, r, h = t.chunk(3, dim)
        return torch.cat([r, z, h], dim)

    out = {f"weight_ih_l0{suffix}": reorder(kernel, 1).T.contiguous(),
           f"weight_hh_l0{suffix}": reorder(recurrent, 1).T.contiguous()}
    if bias:
        out[f"bias_ih_l0{suffix}"] = reorder(b_ih, 0).contiguous()
        out[f"bias_hh_l0{suffix}"] = reorder(b_hh, 0).contiguous()
    return out
