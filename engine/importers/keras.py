"""Keras -> graph, without TensorFlow: read the model's JSON configuration and map each layer.

Reads Keras 3 (`.keras` zips, `model.to_json()`) and Keras 2 (tf.keras `to_json()`) configs of
Sequential and functional models. Keras is channels-last; Deepwire is channels-first. Each
tensor is tracked with the order its Deepwire dimensions have in Keras terms (`perm`), and a
Permute is inserted only where a layer needs another order (a Conv1D after a sequence input,
an LSTM after convolutions, a Reshape of an image). Weights (model.weights.h5) are read with h5py when
it is installed, and converted to PyTorch's layouts (see `_layer_weights`).
"""
from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis import analyse
from ..blocks import TOKENS
from .common import (
    GraphBuilder,
    ImportResult,
    ModelImportError,
    WeightsImportError,
    first_nonfinite,
    load_fitting,
    nonfinite_note,
)

MAX_CONFIG = 64 * 2**20
ACTIVATIONS = {None: "none", "linear": "none", "relu": "relu", "gelu": "gelu", "sigmoid": "sigmoid", "tanh": "tanh",
               "softmax": "softmax", "silu": "silu", "swish": "silu", "elu": "elu"}
MODELS = ("Sequential", "Functional", "Model")
MAX_LAYERS = 2000
CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, ZeroDivisionError)
RECURRENT = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}
BIAS_NOTE = ("PyTorch's recurrent layers keep two bias vectors (input and recurrent) where Keras keeps one, "
             "by design")


@dataclass(frozen=True)
class _T:
    """A tensor: the Deepwire node holding it, and which Keras sample axis each of its dims is."""

    node: str
    perm: tuple[int, ...]
    # For a flattened vector: the Keras (channels-last) flat index of each Deepwire element, when the two
    # orders differ (a Flatten after convolutions); None when they are the same.
    order: tuple[int, ...] | None = None


class _Skip(Exception):
    """A layer that cannot be mapped; the message says why."""


# ----------------------------------------------------------------------------- reading

def _read(source) -> dict:
    if isinstance(source, dict):
        return source
    if isinstance(source, (str, Path)) and not (isinstance(source, str) and source.lstrip().startswith("{")):
        path = Path(source)
        if not path.is_file():
            raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x89HDF"):
            raise ModelImportError(f"{path.name} is a legacy HDF5 model: save it with model.save('model.keras') or "
                                   "write model.to_json() to a file, then import that")
        if head.startswith(b"PK"):
            try:
                with zipfile.ZipFile(path) as zf:
                    info = zf.getinfo("config.json")
                    if info.file_size > MAX_CONFIG:
                        raise ModelImportError(f"{path.name}: config.json is too large")
                    text = zf.read(info).decode("utf-8")
            except KeyError:
                raise ModelImportError(f"{path.name} is a zip file without config.json: not a .keras model") from None
            except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
                raise ModelImportError(f"{path.name} is not a readable .keras file ({exc})") from None
        else:
            if path.stat().st_size > MAX_CONFIG:
                raise ModelImportError(f"{path.name} is too large for a model configuration")
            try:
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ModelImportError(f"{path.name} is not a text file: give a .keras file or Keras JSON") from None
    else:
        text = str(source)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelImportError(f"not a Keras model configuration: not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ModelImportError("not a Keras model configuration: the JSON is not an object")
    return data


def _shape(value) -> list | None:
    if isinstance(value, dict) and "items" in value:   # tf.keras' TensorShape serialisation
        value = value["items"]
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        config = value.get("config")
        value = config.get("value") if isinstance(config, dict) else None
    return list(value) if isinstance(value, (list, tuple)) else None


def _tensor_refs(obj) -> list:
    """The keras_history ([layer, node, tensor]) of every tensor in a serialised call argument."""
    if isinstance(obj, dict):
        config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        if obj.get("class_name") == "__keras_tensor__":
            return [config.get("keras_history")]
        if obj.get("class_name") in ("__tuple__", "__list__"):
            return _tensor_refs(config.get("value", []))
        return []
    if isinstance(obj, (list, tuple)):
        return [r for item in obj for r in _tensor_refs(item)]
    return []


def _ref(value) -> tuple[str, int, int]:
    """A checked tensor reference: (layer name, node index, tensor index)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str) \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:]):
        raise ValueError(f"it refers to a tensor as {_what(value)}, not [layer, node, index]")
    return (value[0], value[1], value[2])


def _first(cfg: dict, *keys):
    for key in keys:
        if cfg.get(key):
            return cfg[key]
    return None


def _what(value, limit: int = 60) -> str:
    """A value from the configuration, shown short and on one line (never a traceback, however it nests)."""
    if isinstance(value, str):
        return repr(_shown(value)[:limit])
    try:
        return _shown(repr(value))[:limit]
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"


def _brief(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, (ValueError, TypeError, AttributeError)) else repr(exc)
    return _shown(" ".join(text.split()))[:120]


def _act(value, where: str) -> str:
    if isinstance(value, dict):
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    if value not in ACTIVATIONS:
        raise _Skip(f"activation {_what(value)} has no Deepwire equivalent (relu, gelu, sigmoid, tanh, softmax, "
                    "silu, elu)")
    return ACTIVATIONS[value]


def _tuple(value, n: int) -> list[int]:
    if isinstance(value, dict):
        value = _shape(value)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise _Skip(f"needs {n} values, got {value}")
        return [int(v) for v in value]
    return [int(value)] * n


def _channels_first(rank: int) -> tuple[int, ...]:
    return (rank - 1,) + tuple(range(rank - 1))


IGNORED = ("name", "go_backwards", "trainable", "dtype", "seed")


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


# ----------------------------------------------------------------------------- the importer

class _Keras:
    def __init__(self, name: str):
        self.b = GraphBuilder(name)
        self.notes: list[str] = []
        self.counts: list[tuple[str, str, int, list[str]]] = []   # (class, name, keras params, node ids)
        self.tokens: set[str] = set()   # input layers that feed an Embedding
        self.convert: dict[str, tuple[str, str, dict, Any]] = {}   # node -> (class, name, config, input order)
        self.scrambled: list[str] = []   # layers whose weights-free mapping depends on a Keras flat order
        self.paths: dict[str, str] = {}   # layer name -> where Keras 3 files its weights (under layers/)
        self.fixed_norm: list[str] = []   # Normalization layers whose statistics are in the configuration

    # ---------------------------------------------------------------- tensors
    def kshape(self, t: _T) -> tuple[int, ...]:
        dw = self.b.specs[t.node].shape
        out = [0] * len(dw)
        for i, p in enumerate(t.perm):
            out[p] = dw[i]
        return tuple(out)

    def ensure(self, t: _T, perm: tuple[int, ...], name: str) -> _T:
        if t.perm == tuple(perm):
            return t
        dims = [t.perm.index(p) for p in perm]
        node = self.b.add("Permute", f"{name}_permute", {"dims": dims}, [t.node])
        return _T(node, tuple(perm))

    def keras_order(self, t: _T, name: str) -> _T:
        return self.ensure(t, tuple(range(len(t.perm))), name)

    def last_axis(self, t: _T, axis: int, name: str) -> _T:
        """Make Keras sample axis `axis` the last Deepwire dim (the others keep their order)."""
        if t.perm[-1] == axis:
            return t
        return self.ensure(t, tuple(p for p in t.perm if p != axis) + (axis,), name)

    def first_axis(self, t: _T, axis: int, name: str) -> _T:
        if t.perm[0] == axis:
            return t
        return self.ensure(t, (axis,) + tuple(p for p in t.perm if p != axis), name)

    def sample_axis(self, axis, rank: int) -> int:
        """A Keras axis (counting the batch as 0, negatives from the end) -> a sample axis."""
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise _Skip(f"over several axes {list(axis)} has no Deepwire block")
            axis = axis[0]
        full = int(axis) % (rank + 1)
        if full == 0:
            raise _Skip("works over the batch axis, which Deepwire cannot express")
        return full - 1

    def count(self, cls: str, name: str, keras_params: int, nodes: list[str]) -> None:
        self.counts.append((cls, name, keras_params, nodes))

    # ---------------------------------------------------------------- inputs
    def input_layer(self, name: str, shape: list | None, dtype: str | None, where: str | None = None) -> _T:
        """`where`: how messages name the input (default: InputLayer 'name')."""
        where = where or f"InputLayer '{name}'"
        if shape is None:
            raise ModelImportError(f"the model's input shape is not in its configuration ({where}): build the model "
                                   "(call it or give an Input) before saving it")
        sample = shape[1:]
        if not sample or any(d is None for d in sample):
            raise ModelImportError(f"{where} has a variable size {_what(tuple(sample), 80)}: Deepwire needs a fixed "
                                   "shape; give every dimension except the batch a size in Keras")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in sample):
            raise ModelImportError(f"{where} has a shape Deepwire cannot read ({_what(tuple(sample), 80)})")
        rank = len(sample)
        perm = _channels_first(rank) if rank == 3 else tuple(range(rank))
        dw_shape = [int(sample[p]) for p in perm]
        tokens = name in self.tokens
        node = self.b.add("Input", name, {"shape": dw_shape, "dtype": TOKENS if tokens else "float32"}, where=where)
        return _T(node, perm)

    # ---------------------------------------------------------------- layers
    def layer(self, cls: str, name: str, cfg: dict, ins: list[_T], kwargs: dict) -> _T:
        if cls in MODELS:
            raise _Skip("is a nested model; Deepwire imports one flat model (rebuild it without nesting)")
        handler = getattr(self, f"l_{cls}", None)
        if handler is None:
            raise _Skip("has no Deepwire block")
        if cls not in ("Add", "Multiply", "Concatenate", "MultiHeadAttention") and len(ins) != 1:
            raise _Skip(f"takes {len(ins)} inputs")
        if kwargs.get("mask") is not None:
            raise _Skip("is given a mask, which Deepwire does not carry")
        return handler(name, cfg, ins, kwargs)

    def simple(self, cls, name, type_name, params, t: _T, keras_params=0) -> _T:
        node = self.b.add(type_name, name, params, [t.node], where=f"{cls} '{name}'")
        self.count(cls, name, keras_params, [node])
        return _T(node, t.perm, t.order)   # elementwise or per-feature: a flat order carries through

    def l_Dense(self, name, cfg, ins, kw):
        t = ins[0]
        t = self.last_axis(t, len(t.perm) - 1, name)
        units, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
        n_in = self.kshape(t)[-1]
        out = self.simple("Dense", name, "Linear", {"units": units, "bias": bias,
                                                    "activation": _act(cfg.get("activation"), name)}, t,
                          n_in * units + (units if bias else 0))
        self.convert[out.node] = ("Dense", name, cfg, t.order)
        return _T(out.node, out.perm)

    def l_Activation(self, name, cfg, ins, kw):
        act = _act(cfg.get("activation"), name)
        t = ins[0]
        if act == "none":
            return t
        if act == "softmax":
            t = self.last_axis(t, len(t.perm) - 1, name)
        return self.simple("Activation", name, "Activation", {"function": act}, t)

    def l_ReLU(self, name, cfg, ins, kw):
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            raise _Skip("with max_value, negative_slope or threshold has no Deepwire block")
        return self.simple("ReLU", name, "Activation", {"function": "relu"}, ins[0])

    def l_LeakyReLU(self, name, cfg, ins, kw):
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        if not math.isclose(float(slope), 0.01):
            raise _Skip(f"with negative_slope {slope} has no Deepwire block (Deepwire's leaky_relu uses 0.01)")
        return self.simple("LeakyReLU", name, "Activation", {"function": "leaky_relu"}, ins[0])

    def l_ELU(self, name, cfg, ins, kw):
        if float(cfg.get("alpha", 1.0)) != 1.0:
            raise _Skip("with alpha other than 1 has no Deepwire block")
        return self.simple("ELU", name, "Activation", {"function": "elu"}, ins[0])

    def l_Softmax(self, name, cfg, ins, kw):
        t = ins[0]
        t = self.last_axis(t, self.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        return self.simple("Softmax", name, "Activation", {"function": "softmax"}, t)

    def l_Dropout(self, name, cfg, ins, kw):
        if cfg.get("noise_shape") is not None:
            raise _Skip("with a noise_shape has no Deepwire block")
        return self.simple("Dropout", name, "Dropout", {"p": float(cfg.get("rate", 0.5))}, ins[0])

    def l_GaussianNoise(self, name, cfg, ins, kw):
        return self.simple("GaussianNoise", name, "GaussianNoise", {"stddev": float(cfg["stddev"])}, ins[0])

    def image(self, t: _T, name: str, cfg: dict) -> _T:
        if len(t.perm) != 3:
            raise _Skip("needs an image (H, W, C) input")
        return self.ensure(t, _channels_first(3) if cfg.get("data_format", "channels_last") != "channels_first"
                           else (0, 1, 2), name)

    def l_RandomFlip(self, name, cfg, ins, kw):
        return self.simple("RandomFlip", name, "RandomFlip", {"mode": cfg.get("mode", "horizontal_and_vertical")},
                           self.image(ins[0], name, cfg))

    def l_RandomRotation(self, name, cfg, ins, kw):
        factor = cfg.get("factor")
        if not isinstance(factor, (int, float)):
            raise _Skip("with an asymmetric factor has no Deepwire block")
        return self.simple("RandomRotation", name, "RandomRotation", {"degrees": abs(float(factor)) * 360.0},
                           self.image(ins[0], name, cfg))

    def l_RandomTranslation(self, name, cfg, ins, kw):
        h, w = cfg.get("height_factor"), cfg.get("width_factor")
        if not isinstance(h, (int, float)) or not isinstance(w, (int, float)):
            raise _Skip("with asymmetric factors has no Deepwire block")
        return self.simple("RandomTranslation", name, "RandomTranslation",
                           {"height_factor": abs(float(h)), "width_factor": abs(float(w))},
                           self.image(ins[0], name, cfg))

    def l_Flatten(self, name, cfg, ins, kw):
        # Keras flattens (H, W, C), Deepwire (C, H, W): the order differs, so no Permute is added here; the
        # tensor remembers the Keras order instead, and a Dense after it takes its kernel rows in that order.
        t = ins[0]
        order = t.order
        if len(t.perm) > 1 and t.perm != tuple(range(len(t.perm))):
            import torch

            order = tuple(torch.arange(math.prod(self.kshape(t))).reshape(self.kshape(t)).permute(t.perm)
                          .reshape(-1).tolist())
        return _T(self.simple("Flatten", name, "Flatten", {}, t).node, (0,), order)

    def reordered(self, cls: str, name: str, ins: list[_T]) -> None:
        """A layer that cannot follow a flat order other than Keras' (a Reshape after Flatten, ...)."""
        if any(t.order is not None for t in ins):
            self.scrambled.append(f"{cls} '{name}'")

    def l_Reshape(self, name, cfg, ins, kw):
        self.reordered("Reshape", name, ins)
        t = self.keras_order(ins[0], name)
        target = _shape(cfg.get("target_shape"))
        if not target:
            raise _Skip("has no target_shape")
        node = self.b.add("Reshape", name, {"shape": [int(d) if d is not None else -1 for d in target]}, [t.node],
                          where=f"Reshape '{name}'")
        self.count("Reshape", name, 0, [node])
        return _T(node, tuple(range(len(target))))

    def l_Permute(self, name, cfg, ins, kw):
        t = self.keras_order(ins[0], name)
        dims = [int(d) - 1 for d in cfg["dims"]]
        node = self.b.add("Permute", name, {"dims": dims}, [t.node], where=f"Permute '{name}'")
        self.count("Permute", name, 0, [node])
        return _T(node, tuple(range(len(dims))))

    def l_Rescaling(self, name, cfg, ins, kw):
        scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
        if not isinstance(scale, (int, float)) or not isinstance(offset, (int, float)):
            raise _Skip("with a scale or offset per channel has no Deepwire block")
        return self.simple("Rescaling", name, "Rescaling", {"scale": float(scale), "offset": float(offset)}, ins[0])

    def l_Normalization(self, name, cfg, ins, kw):
        if cfg.get("invert"):
            raise _Skip("with invert=True has no Deepwire block")
        t = ins[0]
        axis = self.sample_axis(cfg.get("axis", -1) if cfg.get("axis", -1) is not None else -1, len(t.perm))
        dim = t.perm.index(axis)
        channels = self.kshape(t)[axis]
        fixed = cfg.get("mean") is not None
        if fixed:
            self.fixed_norm.append(name)
        params = {"axis": -1 if dim == len(t.perm) - 1 else dim}
        out = self.simple("Normalization", name, "Normalization", params, t, 0 if fixed else 2 * channels + 1)
        self.convert[out.node] = ("Normalization", name, cfg, t.order)
        return out

    def l_BatchNormalization(self, name, cfg, ins, kw):
        if not cfg.get("center", True) or not cfg.get("scale", True):
            raise _Skip("without center or scale has no Deepwire block (Deepwire's BatchNorm learns both)")
        t = ins[0]
        t = self.first_axis(t, self.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        channels = self.b.specs[t.node].shape[0]
        params = {"eps": float(cfg.get("epsilon", 1e-3)), "momentum": round(1.0 - float(cfg.get("momentum", 0.99)), 12)}
        out = self.simple("BatchNormalization", name, "BatchNorm", params, t, 4 * channels)
        self.convert[out.node] = ("BatchNormalization", name, cfg, t.order)
        return out

    def l_LayerNormalization(self, name, cfg, ins, kw):
        if not cfg.get("center", True) or not cfg.get("scale", True) or cfg.get("rms_scaling"):
            raise _Skip("without center or scale, or with rms_scaling, has no Deepwire block")
        t = ins[0]
        t = self.last_axis(t, self.sample_axis(cfg.get("axis", -1), len(t.perm)), name)
        channels = self.b.specs[t.node].shape[-1]
        out = self.simple("LayerNormalization", name, "LayerNorm", {"eps": float(cfg.get("epsilon", 1e-3))}, t,
                          2 * channels)
        self.convert[out.node] = ("LayerNormalization", name, cfg, t.order)
        return out

    def l_Embedding(self, name, cfg, ins, kw):
        if cfg.get("mask_zero"):
            self.notes.append(f"Embedding '{name}': mask_zero is not carried over, so padding positions take part "
                              "in the layers after it")
        n, d = int(cfg["input_dim"]), int(cfg["output_dim"])
        t = self.keras_order(ins[0], name)
        out = self.simple("Embedding", name, "Embedding", {"num_embeddings": n, "embedding_dim": d}, t, n * d)
        self.convert[out.node] = ("Embedding", name, cfg, None)
        return _T(out.node, tuple(range(len(t.perm) + 1)))

    def conv_padding(self, cfg, t: _T, nd: int, kernel, stride, dilation, name) -> Any:
        padding = cfg.get("padding", "valid")
        if padding == "valid":
            return "valid"
        if padding != "same":
            raise _Skip(f"with padding {_what(padding)} has no Deepwire block")
        if all(s == 1 for s in stride):
            return "same"
        sizes = self.kshape(t)[:nd] if cfg.get("data_format", "channels_last") != "channels_first" \
            else self.kshape(t)[1:]
        pads = []
        for n, k, s, d in zip(sizes, kernel, stride, dilation):
            total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            if total % 2:
                raise _Skip("with padding 'same' and stride > 1 pads one side more than the other here, which "
                            "PyTorch cannot express; use padding 'valid' or an input size that divides by the stride")
            pads.append(total // 2)
        return pads if any(pads) else "valid"

    def conv(self, cls, nd, name, cfg, ins):
        t = ins[0]
        perm = _channels_first(nd + 1) if cfg.get("data_format", "channels_last") != "channels_first" \
            else tuple(range(nd + 1))
        if len(t.perm) != nd + 1:
            raise _Skip(f"needs a rank-{nd + 1} input")
        t = self.ensure(t, perm, name)
        kernel = _tuple(cfg["kernel_size"], nd)
        stride = _tuple(cfg.get("strides", 1), nd)
        dilation = _tuple(cfg.get("dilation_rate", 1), nd)
        groups = int(cfg.get("groups", 1))
        filters, bias = int(cfg["filters"]), bool(cfg.get("use_bias", True))
        params = {"filters": filters, "kernel_size": kernel, "stride": stride, "dilation": dilation, "groups": groups,
                  "bias": bias, "activation": _act(cfg.get("activation"), name),
                  "padding": self.conv_padding(cfg, t, nd, kernel, stride, dilation, name)}
        channels = self.b.specs[t.node].shape[0]
        keras_params = math.prod(kernel) * (channels // groups) * filters + (filters if bias else 0)
        out = self.simple(cls, name, f"Conv{nd}d", params, t, keras_params)
        self.convert[out.node] = (cls, name, cfg, None)
        return out

    def l_Conv1D(self, name, cfg, ins, kw):
        return self.conv("Conv1D", 1, name, cfg, ins)

    def l_Conv2D(self, name, cfg, ins, kw):
        return self.conv("Conv2D", 2, name, cfg, ins)

    def pool(self, cls, kind, nd, name, cfg, ins):
        t = ins[0]
        perm = _channels_first(nd + 1) if cfg.get("data_format", "channels_last") != "channels_first" \
            else tuple(range(nd + 1))
        if len(t.perm) != nd + 1:
            raise _Skip(f"needs a rank-{nd + 1} input")
        t = self.ensure(t, perm, name)
        kernel = _tuple(cfg.get("pool_size", 2), nd)
        stride = _tuple(cfg["strides"], nd) if cfg.get("strides") is not None else kernel
        padding = [0] * nd
        if cfg.get("padding", "valid") == "same":
            sizes = self.b.specs[t.node].shape[1:]
            for i, (n, k, s) in enumerate(zip(sizes, kernel, stride)):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                if total and (total % 2 or kind == "Avg"):
                    raise _Skip("with padding 'same' needs padding PyTorch pools cannot express here (uneven, or "
                                "averaging that leaves the padding out); use padding 'valid'")
                padding[i] = total // 2
        params = {"kernel_size": kernel, "stride": [0] * nd if stride == kernel else stride, "padding": padding}
        return self.simple(cls, name, f"{kind}Pool{nd}d", params, t)

    def l_MaxPooling1D(self, name, cfg, ins, kw):
        return self.pool("MaxPooling1D", "Max", 1, name, cfg, ins)

    def l_MaxPooling2D(self, name, cfg, ins, kw):
        return self.pool("MaxPooling2D", "Max", 2, name, cfg, ins)

    def l_AveragePooling1D(self, name, cfg, ins, kw):
        return self.pool("AveragePooling1D", "Avg", 1, name, cfg, ins)

    def l_AveragePooling2D(self, name, cfg, ins, kw):
        return self.pool("AveragePooling2D", "Avg", 2, name, cfg, ins)

    def gap(self, cls, nd, name, cfg, ins):
        if cfg.get("keepdims"):
            raise _Skip("with keepdims=True has no Deepwire block")
        t = ins[0]
        if len(t.perm) != nd + 1:
            raise _Skip(f"needs a rank-{nd + 1} input")
        channel = nd if cfg.get("data_format", "channels_last") != "channels_first" else 0
        if nd == 1 and t.perm == (0, 1) and channel == 1:
            node = self.b.add("GlobalAvgPool", name, {"layout": "sequence"}, [t.node], where=f"{cls} '{name}'")
        else:
            t = self.first_axis(t, channel, name)
            node = self.b.add("GlobalAvgPool", name, {"layout": "channels_first"}, [t.node], where=f"{cls} '{name}'")
        self.count(cls, name, 0, [node])
        return _T(node, (0,))

    def l_GlobalAveragePooling1D(self, name, cfg, ins, kw):
        return self.gap("GlobalAveragePooling1D", 1, name, cfg, ins)

    def l_GlobalAveragePooling2D(self, name, cfg, ins, kw):
        return self.gap("GlobalAveragePooling2D", 2, name, cfg, ins)

    def recurrent(self, cls, name, cfg, ins, bidirectional=False) -> _T:
        kind = RECURRENT[cls]
        for flag in ("return_state", "go_backwards", "stateful"):
            if cfg.get(flag):
                raise _Skip(f"with {flag}=True has no Deepwire block")
        if cfg.get("unroll"):
            pass  # unrolling changes speed, not results
        activation = cfg.get("activation", "tanh")
        if kind == "RNN":
            if activation not in ("tanh", "relu"):
                raise _Skip(f"with activation {_what(activation)} has no Deepwire block (tanh or relu)")
        elif activation != "tanh" or cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
            raise _Skip("with activations other than tanh and a sigmoid recurrent activation has no PyTorch "
                        "equivalent")
        if kind == "GRU" and not cfg.get("reset_after", True):
            self.notes.append(f"GRU '{name}': reset_after=False applies the reset gate before the recurrent "
                              "weights; PyTorch's GRU applies it after (Keras' reset_after=True)")
        if cfg.get("dropout") or cfg.get("recurrent_dropout"):
            self.notes.append(f"{cls} '{name}': its input and recurrent dropout have no PyTorch equivalent and are "
                              "left out; add a Dropout block before it if you need one")
        t = self.keras_order(ins[0], name)
        if len(t.perm) != 2:
            raise _Skip("needs a (timesteps, features) input")
        units, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
        params = {"hidden_size": units, "bidirectional": bidirectional,
                  "return_sequences": bool(cfg.get("return_sequences", False)), "bias": bias}
        if kind == "RNN":
            params["nonlinearity"] = activation
        features = self.kshape(t)[-1]
        gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
        bias_count = gates * units * (2 if kind == "GRU" and cfg.get("reset_after", True) else 1) if bias else 0
        keras_params = (gates * units * (features + units) + bias_count) * (2 if bidirectional else 1)
        node = self.b.add(kind, name, params, [t.node], where=f"{cls} '{name}'")
        self.count(cls, name, keras_params, [node])
        self.convert[node] = (cls, name, cfg, "bidirectional" if bidirectional else None)
        return _T(node, (0, 1) if params["return_sequences"] else (0,))

    def l_SimpleRNN(self, name, cfg, ins, kw):
        return self.recurrent("SimpleRNN", name, cfg, ins)

    def l_LSTM(self, name, cfg, ins, kw):
        return self.recurrent("LSTM", name, cfg, ins)

    def l_GRU(self, name, cfg, ins, kw):
        return self.recurrent("GRU", name, cfg, ins)

    def l_Bidirectional(self, name, cfg, ins, kw):
        inner = cfg.get("layer")
        inner = inner if isinstance(inner, dict) else {}
        cls = inner.get("class_name")
        if not isinstance(cls, str) or cls not in RECURRENT:
            raise _Skip(f"around {_what(cls)} has no Deepwire block")
        if cfg.get("merge_mode", "concat") != "concat":
            raise _Skip(f"with merge_mode {_what(cfg.get('merge_mode'))} has no Deepwire block "
                        "(only 'concat')")
        inner_cfg = inner.get("config")
        if not isinstance(inner_cfg, dict):
            raise _Skip("has no configuration for its layer")
        backward = cfg.get("backward_layer")
        if backward and not _mirrors(inner, backward):
            raise _Skip("with a backward layer that is not the forward layer reversed has no Deepwire block")
        return self.recurrent(cls, name, dict(inner_cfg), ins, bidirectional=True)

    def l_MultiHeadAttention(self, name, cfg, ins, kw):
        if cfg.get("output_shape") is not None:
            raise _Skip("with output_shape has no Deepwire block")
        if cfg.get("use_gate") or cfg.get("sliding_window") is not None:
            raise _Skip("with use_gate or sliding_window has no Deepwire block")
        axes = cfg.get("attention_axes")
        if axes is not None:   # Keras writes the default, [1], into a built layer's config
            axes = axes if isinstance(axes, (list, tuple)) else [axes]
            ranks = {len(t.perm) for t in ins}
            if ranks != {2} or len(axes) != 1 or not isinstance(axes[0], int) or isinstance(axes[0], bool) \
                    or axes[0] % 4 != 1:
                raise _Skip(f"with attention_axes {_what(cfg.get('attention_axes'))} has no Deepwire "
                            "block (only attention over the time steps of (T, F) inputs)")
        for key in ("attention_mask", "return_attention_scores"):
            if kw.get(key):
                raise _Skip(f"called with {key} has no Deepwire block")
        heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
        value_dim = int(cfg.get("value_dim") or key_dim)
        ts = [self.keras_order(t, name) for t in ins]
        q = ts[0]
        e = self.kshape(q)[-1]
        if key_dim * heads != e or value_dim != key_dim:
            raise _Skip(f"projects to num_heads x key_dim = {heads * key_dim} but the query has {e} features; "
                        "PyTorch's MultiheadAttention splits the embedding across the heads, so key_dim must be "
                        f"{e} / num_heads (and value_dim the same)")
        same = len({t.node for t in ts}) == 1
        srcs = [q.node] if same else [q.node, ts[2].node if len(ts) > 2 else ts[1].node, ts[1].node]
        bias = bool(cfg.get("use_bias", True))
        params = {"num_heads": heads, "mode": "self" if same else "query_key_value",
                  "causal": bool(kw.get("use_causal_mask", False)), "dropout": float(cfg.get("dropout", 0.0)),
                  "bias": bias}
        node = self.b.add("MultiheadAttention", name, params, srcs, where=f"MultiHeadAttention '{name}'")
        kd = self.kshape(ts[2] if len(ts) > 2 else ts[1])[-1] if not same else e
        vd = self.kshape(ts[1])[-1] if not same else e
        keras_params = (e * e + kd * e + vd * e + e * e) + (4 * e if bias else 0)
        self.count("MultiHeadAttention", name, keras_params, [node])
        self.convert[node] = ("MultiHeadAttention", name, cfg, None)
        return _T(node, (0, 1))

    def merge(self, cls, type_name, name, ins, params=None):
        if len(ins) < 2:
            raise _Skip("needs at least two inputs")
        first = ins[0]
        if cls == "Concatenate" or len({t.order for t in ins}) > 1:
            self.reordered(cls, name, ins)
        ts = [first] + [self.ensure(t, first.perm, f"{name}_{i}") if len(t.perm) == len(first.perm) else t
                        for i, t in enumerate(ins[1:], 1)]
        node = self.b.add(type_name, name, params or {}, [t.node for t in ts], where=f"{cls} '{name}'")
        self.count(cls, name, 0, [node])
        return _T(node, first.perm, first.order if cls != "Concatenate" else None)

    def l_Add(self, name, cfg, ins, kw):
        return self.merge("Add", "Add", name, ins)

    def l_Multiply(self, name, cfg, ins, kw):
        return self.merge("Multiply", "Multiply", name, ins)

    def l_Concatenate(self, name, cfg, ins, kw):
        if not ins:
            raise _Skip("needs inputs")
        axis = self.sample_axis(cfg.get("axis", -1), len(ins[0].perm))
        dim = ins[0].perm.index(axis)
        return self.merge("Concatenate", "Concatenate", name, ins,
                          {"dim": -1 if dim == len(ins[0].perm) - 1 else dim})

    # ---------------------------------------------------------------- models
    def entries(self, layers: list, sequential: bool) -> list[dict]:
        """Each layer as {class_name, name, config, build_config, inbound_nodes}, with the types those need, or
        a ModelImportError naming the layer (by name, else by position)."""
        if len(layers) > MAX_LAYERS:
            raise ModelImportError(f"the model has {len(layers):,} layers; Deepwire imports at most {MAX_LAYERS:,}")
        out, seen = [], set()
        for i, layer in enumerate(layers, 1):
            if not isinstance(layer, dict):
                raise ModelImportError(f"layer {i} of the model is not a layer object (it is a {type(layer).__name__})")
            cls, config = layer.get("class_name"), layer.get("config")
            config = {} if config is None else config
            name = layer.get("name")
            if not isinstance(name, str) or not name.strip():
                name = config.get("name") if isinstance(config, dict) else None
            label = f"'{_shown(name)}'" if isinstance(name, str) and name.strip() else f"layer {i} of the model"
            if not isinstance(cls, str) or not cls.strip():
                raise ModelImportError(f"{'layer ' if label.startswith(chr(39)) else ''}{label} has no class name")
            cls = _shown(cls)
            if not isinstance(config, dict):
                raise ModelImportError(f"{cls} {label}: its configuration is not an object")
            if not isinstance(name, str) or not name.strip():
                if not sequential:
                    raise ModelImportError(f"{cls} layer {i} of the model has no name")
                name = _snake(cls) or "layer"
            elif name in seen and not sequential:
                raise ModelImportError(f"two layers are named '{_shown(name)}'")
            seen.add(name)
            build = layer.get("build_config")
            out.append({"class_name": cls, "name": name, "config": config,
                        "build_config": build if isinstance(build, dict) else {},
                        "inbound_nodes": layer.get("inbound_nodes")})
        return out

    def sequential(self, model: dict) -> None:
        cfg = model.get("config")
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        if not isinstance(layers, list) or not layers:
            raise ModelImportError("the Sequential model has no layers")
        layers = self.entries(layers, sequential=True)
        self.paths = keras_paths(layers)
        problems = []
        first = layers[0]
        if first["class_name"] == "InputLayer":
            icfg = first["config"]
            shape = _shape(_first(icfg, "batch_shape", "batch_input_shape"))
            dtype, name, layers = icfg.get("dtype"), first["name"], layers[1:]
        else:
            fcfg, build = first["config"], model.get("build_config")
            shape = _shape(_first(fcfg, "batch_input_shape", "batch_shape")
                           or first["build_config"].get("input_shape") or cfg.get("build_input_shape")
                           or (build.get("input_shape") if isinstance(build, dict) else None))
            dtype, name = None, "input"
        where = None if first["class_name"] == "InputLayer" else f"the input of {first['class_name']} " \
                                                                   f"'{_shown(first['name'])}'"
        if layers and layers[0]["class_name"] == "Embedding":
            self.tokens.add(name)
        t = self.input_layer(name, shape, dtype, where)
        for layer in layers:
            cls, lcfg, lname = layer["class_name"], layer["config"], layer["name"]
            if problems:   # shapes after a failed layer are unknown: only name what else has no block
                if cls in MODELS or not hasattr(self, f"l_{cls}"):
                    problems.append(f"{cls} '{lname}' " + ("is a nested model" if cls in MODELS
                                                           else "has no Deepwire block"))
                continue
            try:
                t = self.layer(cls, lname, lcfg, [t], {})
            except _Skip as exc:
                problems.append(f"{cls} '{lname}' {exc}")
            except ModelImportError as exc:
                problems.append(str(exc))
            except CONFIG_ERRORS as exc:
                problems.append(f"{cls} '{lname}' has a configuration Deepwire cannot read ({_brief(exc)})")
        self.fail(problems)
        self.b.add("Output", "output", {}, [t.node])

    def functional(self, model: dict) -> None:
        cfg = model.get("config")
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        if not isinstance(layers, list):
            raise ModelImportError("the functional model's configuration has no layers")
        layers = self.entries(layers, sequential=False)
        self.paths = keras_paths(layers)
        by_name = {layer["name"]: layer for layer in layers}
        calls = {layer["name"]: self.calls(layer) for layer in layers}
        for layer in layers:  # inputs that feed an Embedding hold token ids
            if layer["class_name"] == "Embedding":
                for args, _ in calls[layer["name"]]:
                    for ref in args:
                        if by_name.get(ref[0], {}).get("class_name") == "InputLayer":
                            self.tokens.add(ref[0])
        tensors: dict[str, _T | None] = {}
        problems: list[str] = []
        pending = list(layers)
        while pending:
            progress = False
            for layer in list(pending):
                name, cls, lcfg = layer["name"], layer["class_name"], layer["config"]
                if cls == "InputLayer":
                    shape = _shape(_first(lcfg, "batch_shape", "batch_input_shape"))
                    tensors[name] = self.input_layer(name, shape, lcfg.get("dtype"))
                    pending.remove(layer)
                    progress = True
                    continue
                here = calls[name]
                if len(here) > 1:
                    problems.append(f"{cls} '{name}' is called {len(here)} times: shared layers have no Deepwire "
                                    "equivalent (make one layer per use)")
                    tensors[name] = None
                    pending.remove(layer)
                    progress = True
                    continue
                if not here:
                    pending.remove(layer)
                    progress = True
                    continue
                args, kwargs = here[0]
                refs = args + [r for r in kwargs.values() if isinstance(r, tuple)]
                if any(r[0] not in tensors for r in refs):
                    continue
                pending.remove(layer)
                progress = True
                if any(tensors[r[0]] is None for r in refs):   # after a failed layer: name only what has no block
                    if cls in MODELS or not hasattr(self, f"l_{cls}"):
                        problems.append(f"{cls} '{name}' " + ("is a nested model" if cls in MODELS
                                                              else "has no Deepwire block"))
                    tensors[name] = None
                    continue
                try:
                    if any(r[1] != 0 or r[2] != 0 for r in refs):
                        raise _Skip("uses a second output of another layer, which Deepwire cannot express")
                    if cls == "MultiHeadAttention":
                        ins = self.attention_inputs(args, kwargs, tensors)
                    else:
                        tensor_kwargs = [k for k, v in kwargs.items() if isinstance(v, tuple)]
                        if tensor_kwargs:
                            raise _Skip(f"is given a tensor as {_shown(tensor_kwargs[0])[:40]}, which Deepwire does "
                                        "not carry")
                        ins = [tensors[r[0]] for r in args]
                    plain = {k: v for k, v in kwargs.items() if not isinstance(v, tuple)}
                    tensors[name] = self.layer(cls, name, lcfg, ins, plain)
                except _Skip as exc:
                    problems.append(f"{cls} '{name}' {exc}")
                    tensors[name] = None
                except ModelImportError as exc:
                    problems.append(str(exc))
                    tensors[name] = None
                except CONFIG_ERRORS as exc:
                    problems.append(f"{cls} '{name}' has a configuration Deepwire cannot read ({_brief(exc)})")
                    tensors[name] = None
            if not progress:
                for layer in pending:
                    for args, kwargs in calls[layer["name"]]:
                        for ref in args + [r for r in kwargs.values() if isinstance(r, tuple)]:
                            if ref[0] not in by_name:
                                raise ModelImportError(f"{layer['class_name']} '{_shown(layer['name'])}' takes its "
                                                       f"input from '{_shown(ref[0])}', which is not a layer of the "
                                                       "model")
                names = ", ".join(f"'{_shown(layer['name'])}'" for layer in pending)
                raise ModelImportError(f"the model's layers take their inputs from each other in a circle "
                                       f"({names[:200]})")
        self.fail(problems)
        outputs = self.refs(cfg.get("output_layers"))
        if not outputs:
            raise ModelImportError("the functional model names no outputs")
        for i, ref in enumerate(outputs):
            if tensors.get(ref[0]) is None:
                raise ModelImportError(f"the model's output '{_shown(ref[0])}' is not one of its layers' results")
            self.b.add("Output", "output" if i == 0 else f"output_{i}", {}, [tensors[ref[0]].node])

    def attention_inputs(self, args: list, kwargs: dict, tensors: dict) -> list[_T]:
        """MultiHeadAttention's [query, value, key?], given by position or by keyword."""
        given = {}
        for i, key in enumerate(("query", "value", "key")):
            ref = args[i] if i < len(args) else kwargs.get(key)
            if isinstance(ref, tuple):
                given[key] = tensors[ref[0]]
        if len(args) > 3:
            raise _Skip(f"takes {len(args)} inputs")
        for key, value in kwargs.items():
            if isinstance(value, tuple) and key not in ("query", "value", "key"):
                raise _Skip(f"called with {_shown(key)[:40]} has no Deepwire block")
        if "query" not in given or "value" not in given:
            raise _Skip("needs a query and a value")
        return [given["query"], given["value"]] + ([given["key"]] if "key" in given else [])

    def calls(self, layer: dict) -> list[tuple[list, dict]]:
        """Each call of a layer: (positional tensor refs, keyword args with tensors as refs); a ref is a tuple
        (layer name, node index, tensor index)."""
        where = f"{layer['class_name']} '{_shown(layer['name'])}'"
        nodes = layer["inbound_nodes"]
        if nodes is None:
            return []
        if not isinstance(nodes, list):
            raise ModelImportError(f"{where}: its inbound nodes are not a list")
        out = []
        try:
            for node in nodes:
                if isinstance(node, dict):   # Keras 3: {"args": [...], "kwargs": {...}}
                    args = [_ref(r) for r in _tensor_refs(node.get("args", []))]
                    kw = node.get("kwargs")
                    kw = {} if kw is None else kw
                    if not isinstance(kw, dict):
                        raise ValueError("its call's keyword arguments are not an object")
                    kwargs = {}
                    for k, v in kw.items():
                        refs = _tensor_refs(v)
                        kwargs[k] = _ref(refs[0]) if refs else v
                elif isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
                    args, kwargs = [], {}
                    for item in node:
                        if not isinstance(item, list) or len(item) < 3:
                            raise ValueError(f"an inbound node holds {_what(item)}, not a tensor")
                        args.append(_ref(item[:3]))
                        if len(item) > 3 and isinstance(item[3], dict):
                            for k, v in item[3].items():
                                is_ref = isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)
                                kwargs[k] = _ref(v[:3]) if is_ref else v
                else:
                    raise ValueError(f"an inbound node is {_what(node)}, not a call")
                out.append((args, kwargs))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelImportError(f"{where}: {_brief(exc)}") from None
        return out

    @staticmethod
    def refs(value) -> list[tuple]:
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return [(value[0], value[1], value[2])]
        if isinstance(value, dict):
            return [r for v in value.values() for r in _Keras.refs(v)]
        if isinstance(value, list):
            return [r for v in value for r in _Keras.refs(v)]
        return []

    def fail(self, problems: list[str]) -> None:
        if problems:
            n = len(problems)
            raise ModelImportError(f"cannot import the Keras model: {n} layer{'s' * (n != 1)} cannot be imported: "
                                   + "; ".join(problems))


# ----------------------------------------------------------------------------- weights

WEIGHTS_MEMBER = "model.weights.h5"
MAX_WEIGHTS = 4 * 2**30        # bytes all the arrays of a weights file may declare (a project file's weights limit)
MAX_EXPANSION = 100            # a compressed member or dataset may declare at most this many times what it stores
SMALL = 2**20                  # sizes below this are not compared with what the file stores
MAX_OBJECTS = 100_000          # links in one weights file
MAX_DEPTH = 32                 # nesting of its groups
FILTERS = {1, 2, 3, 4, 5, 6, 32000}   # gzip, shuffle, fletcher32, szip, nbit, scale-offset, lzf: HDF5's own
NESTED = {"query": ("query_dense", "_query_dense"), "key": ("key_dense", "_key_dense"),
          "value": ("value_dense", "_value_dense"), "output": ("output_dense", "_output_dense")}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise WeightsImportError("reading Keras weights (.weights.h5) needs h5py: install h5py: pip install h5py "
                                 "(or pip install deepwire[keras])") from None
    return h5py


def _shown(name: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(name))
    return text if len(text) <= 120 else text[:117] + "..."


def _snake(name: str) -> str:
    """Keras' naming.to_snake_case, which names a layer's weights in a Keras 3 file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_paths(layers: list) -> dict[str, str]:
    """Each layer's name -> where Keras 3 files its weights under `layers/`: its class in snake case, numbered
    among the model's layers of the same class (dense, dense_1, ...), whatever the layer is called."""
    used: dict[str, int] = {}
    paths: dict[str, str] = {}
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            continue
        base = _snake(layer["class_name"])
        if base in used:
            used[base] += 1
            path = f"{base}_{used[base]}"
        else:
            used[base] = 0
            path = base
        config = layer.get("config")
        name = layer.get("name") if isinstance(layer.get("name"), str) else None
        if name is None and isinstance(config, dict) and isinstance(config.get("name"), str):
            name = config["name"]
        if name is not None and name not in paths:
            paths[name] = path
    return paths


def _audit(h5py, f, size: int) -> list[str]:
    """Refuse what could make reading the file read another file or exhaust memory, before any data is read:
    links other than hard links, datasets kept outside the file (external storage) or virtual ones, unknown
    compression filters, and arrays that declare more than the file can hold. Returns every dataset's path."""
    datasets: list[str] = []
    total, count = 0, 0
    budget = min(MAX_WEIGHTS, max(SMALL, size * MAX_EXPANSION))
    stack = [(f, "", 0)]
    while stack:
        group, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelImportError(f"the weights file nests its groups more than {MAX_DEPTH} deep ({_shown(path)}); "
                                   "refused")
        for key in group.keys():
            count += 1
            if count > MAX_OBJECTS:
                raise ModelImportError(f"the weights file holds more than {MAX_OBJECTS:,} objects; refused")
            full = f"{path}/{key}" if path else key
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelImportError(f"the weights file's {_shown(full)} is an external link to "
                                       f"{_shown(link.filename)}; refused (weights must be inside the file)")
            if not isinstance(link, h5py.HardLink):
                raise ModelImportError(f"the weights file's {_shown(full)} is a {type(link).__name__}; refused "
                                       "(Keras writes plain groups and datasets)")
            obj = group.get(key)
            if isinstance(obj, h5py.Group):
                stack.append((obj, full, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                total += _audit_dataset(obj, full, total, budget)
                datasets.append(full)
    return datasets


def _audit_dataset(ds, name: str, total: int, budget: int) -> int:
    shown = _shown(name)
    if ds.is_virtual:
        raise ModelImportError(f"the weights file's dataset {shown} is a virtual dataset (it reads other files); "
                               "refused")
    if ds.external:
        raise ModelImportError(f"the weights file's dataset {shown} keeps its data in another file "
                               f"({_shown(ds.external[0][0])}); refused")
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in FILTERS]
    if unknown:
        raise ModelImportError(f"the weights file's dataset {shown} needs HDF5 filter {unknown[0]}, which is not "
                               "one of HDF5's own; refused")
    shape = ds.shape
    declared = math.prod(shape) * ds.dtype.itemsize if shape is not None else 0
    stored = ds.id.get_storage_size()
    if declared > MAX_WEIGHTS:
        raise ModelImportError(f"the weights file's dataset {shown} declares {declared:,} bytes (shape {shape}), "
                               f"more than the {MAX_WEIGHTS // 2**30} GiB limit; refused")
    if declared > SMALL and declared > stored * (MAX_EXPANSION if filters else 1):
        raise ModelImportError(f"the weights file's dataset {shown} declares {declared:,} bytes (shape {shape}) but "
                               f"stores {stored:,}; the file is damaged or hostile, refused")
    if total + declared > budget:
        raise ModelImportError(f"the weights file's dataset {shown} takes its arrays past {budget:,} bytes, more "
                               "than a file of this size can hold; refused")
    return declared


def _member_to_file(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str):
    """A .keras file's weights member, copied into a temporary file (never held in memory whole), after checking
    its declared size against the limits, and counting what really comes out of the decompressor."""
    import tempfile

    if info.file_size > MAX_WEIGHTS:
        raise ModelImportError(f"{label}: {info.filename} declares {info.file_size:,} bytes, more than the "
                               f"{MAX_WEIGHTS // 2**30} GiB limit; refused")
    if info.file_size > SMALL and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise ModelImportError(f"{label}: {info.filename} would expand {info.compress_size:,} bytes to "
                               f"{info.file_size:,}; the file is damaged or hostile, refused")
    out = tempfile.TemporaryFile()
    try:
        got = 0
        with zf.open(info) as src:
            while got <= info.file_size:
                chunk = src.read(min(1 << 20, info.file_size + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                if got > info.file_size:
                    raise ModelImportError(f"{label}: {info.filename} expands to more than the {info.file_size:,} "
                                           "bytes it declares; refused")
                out.write(chunk)
        if got < info.file_size:
            raise ModelImportError(f"{label}: {info.filename} is truncated")
        out.seek(0)
        return out
    except ModelImportError:
        out.close()
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        out.close()
        raise ModelImportError(f"{label}: {info.filename} is damaged ({_shown(str(exc))})") from None


class _WeightsFile:
    """The arrays of each Keras layer in a weights.h5, audited first (see `_audit`). Keras 3 files a layer's
    arrays under `layers/<path>/vars/<i>`, where the path comes from the layer's class and its order among the
    model's layers of that class (`keras_paths`); recurrent layers keep theirs under `cell/`, Bidirectional
    under `forward_layer/` and `backward_layer/`, MultiHeadAttention under `query_dense/`... Files whose layers
    are filed by name are read too, and tf.keras 2's `save_weights` layout (`layer_names`, `weight_names`)."""

    def __init__(self, h5py, f, size: int, paths: dict[str, str]):
        self.h5py = h5py
        self.datasets = _audit(h5py, f, size)
        root = f
        if "model_weights" in f and "layer_names" not in f.attrs and isinstance(f["model_weights"], h5py.Group):
            root = f["model_weights"]
        self.root = root
        self.legacy = "layer_names" in root.attrs
        self.paths = paths
        self.used: set[str] = set()       # the groups whose arrays were taken (their HDF5 names)
        self.layers = None
        self.prefix = ""
        if not self.legacy:
            for key in ("layers", "_layer_checkpoint_dependencies"):   # the second: Keras 2.13's .keras files
                group = root.get(key)
                if isinstance(group, h5py.Group):
                    self.layers, self.prefix = group, group.name.lstrip("/") + "/"
                    break
        self.by_meta: dict[str, str] = {}
        if self.layers is not None:
            for key in self.layers.keys():
                vars_ = self.layers[key].get("vars") if isinstance(self.layers[key], h5py.Group) else None
                meta = _attr_text(vars_, "name") if isinstance(vars_, h5py.Group) else None
                if meta is not None:
                    self.by_meta.setdefault(meta, key)

    def where(self, name: str) -> str:
        return f"layers/{self.paths[name]}" if name in self.paths else f"layers/{name}"

    def _read(self, ds, label: str):
        import numpy as np

        if not isinstance(ds, self.h5py.Dataset):
            raise WeightsImportError(f"the weights file's {_shown(label)} is not an array")
        if ds.dtype.kind not in "biuf" or ds.shape is None:
            raise WeightsImportError(f"the weights file's {_shown(ds.name)} holds {ds.dtype}, not numbers")
        return np.asarray(ds[()])

    def _vars(self, group, recurrent: bool = False) -> list | None:
        h5py = self.h5py
        vars_ = group.get("vars") if isinstance(group, h5py.Group) else None
        if recurrent and (not isinstance(vars_, h5py.Group) or not len(vars_)):
            cell = group.get("cell") if isinstance(group, h5py.Group) else None
            vars_ = cell.get("vars") if isinstance(cell, h5py.Group) else None
        if not isinstance(vars_, h5py.Group):
            return None
        self.used.add(vars_.name)
        keys = sorted(vars_.keys(), key=lambda k: (0, int(k)) if k.isdigit() else (1, k))
        return [self._read(vars_[k], f"{vars_.name}/{k}") for k in keys]

    def group(self, name: str):
        """The layer's group: at the path Keras 3 derives for it, else the one whose metadata or key is its name."""
        if self.layers is None:
            return None
        for key in (self.paths.get(name), self.by_meta.get(name), name):
            if key is not None and key in self.layers and isinstance(self.layers[key], self.h5py.Group):
                return self.layers[key]
        return None

    def arrays(self, name: str, part: str | None = None, recurrent: bool = False) -> list | None:
        """The layer's arrays in the order of layer.weights; None when the file has no such layer. `part`:
        Bidirectional's 'forward' / 'backward' layer, or MultiHeadAttention's 'query', 'key', 'value', 'output'."""
        if self.legacy:
            return self._legacy(name, part)
        group = self.group(name)
        if group is None:
            return None
        if part in ("forward", "backward"):
            group = group.get(f"{part}_layer")
            return self._vars(group, recurrent=True) if group is not None else None
        if part is not None:
            for key in NESTED[part]:
                if isinstance(group.get(key), self.h5py.Group):
                    return self._vars(group[key])
            return None
        return self._vars(group, recurrent)

    def _legacy(self, name: str, part: str | None) -> list | None:
        names = _attr_list(self.root, "layer_names")
        if name not in names or not isinstance(self.root.get(name), self.h5py.Group):
            return None
        group = self.root[name]
        self.used.add(group.name)
        wnames = _attr_list(group, "weight_names")
        arrays = [self._read(group.get(w), f"{name}/{w}") for w in wnames]
        if part in ("forward", "backward"):
            half = len(arrays) // 2
            arrays = arrays[:half] if part == "forward" else arrays[half:]
        return arrays

    def unplaced(self) -> str | None:
        """The first group of the file that holds arrays no layer took (as "path" or "path ('layer name')")."""
        if self.legacy:
            for name in _attr_list(self.root, "layer_names"):
                group = self.root.get(name)
                if isinstance(group, self.h5py.Group) and group.name not in self.used \
                        and _attr_list(group, "weight_names"):
                    return f"'{_shown(name)}'"
            return None
        if self.layers is None:
            return None
        owner = {path: name for name, path in self.paths.items()}
        for ds in self.datasets:
            parent = "/" + ds.rsplit("/", 1)[0]
            if not ds.startswith(self.prefix) or parent in self.used or "seed_generator" in ds:
                continue
            key = ds[len(self.prefix):].split("/", 1)[0]
            name = owner.get(key) or next((m for m, k in self.by_meta.items() if k == key), None)
            return f"layers/{_shown(key)}" + (f" ('{_shown(name)}')" if name else "")
        return None


def _attr_text(obj, key: str) -> str | None:
    """A short string attribute, or None (an attribute's declared size is checked before it is read)."""
    raw = _attr(obj, key, 4096)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


def _attr_list(obj, key: str) -> list[str]:
    raw = _attr(obj, key, 16 * 2**20)
    if raw is None:
        return []
    try:
        items = list(raw.reshape(-1)) if hasattr(raw, "reshape") else [raw]
    except TypeError:
        return []
    return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in items]


def _attr(obj, key: str, limit: int):
    import h5py

    try:
        if obj is None or key not in obj.attrs:
            return None
        aid = h5py.h5a.open(obj.id, key.encode())
        shape = aid.shape
        if math.prod(shape or ()) * max(aid.dtype.itemsize, 1) > limit:
            raise WeightsImportError(f"the weights file's attribute {_shown(key)} of {_shown(obj.name)} is too large")
        return obj.attrs[key]
    except (OSError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ModelImportError):
            raise
        return None


def _tensor(array):
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _expect(arrays: list, n: int, where: str) -> None:
    if len(arrays) != n:
        raise WeightsImportError(f"{where}: the weights file holds {len(arrays)} arrays for it, expected {n}")


def _recurrent_weights(cls: str, cfg: dict, arrays: list, where: str, suffix: str = "") -> dict:
    import torch

    bias = bool(cfg.get("use_bias", True))
    _expect(arrays, 3 if bias else 2, where)
    kernel, recurrent = _tensor(arrays[0]), _tensor(arrays[1])
    units = int(cfg["units"])
    gates = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cls]
    if kernel.ndim != 2 or kernel.shape[1] != gates * units or tuple(recurrent.shape) != (units, gates * units):
        raise WeightsImportError(f"{where}: its kernels have shapes {tuple(kernel.shape)} and "
                                 f"{tuple(recurrent.shape)}, which do not fit {units} units")
    b_ih = b_hh = None
    if bias:
        b = _tensor(arrays[2])
        if cls == "GRU":
            if tuple(b.shape) != (2, 3 * units):
                raise WeightsImportError(f"{where}: its bias has shape {tuple(b.shape)}, expected (2, {3 * units})")
            b_ih, b_hh = b[0], b[1]
        else:
            if tuple(b.shape) != (gates * units,):
                raise WeightsImportError(f"{where}: its bias has shape {tuple(b.shape)}, expected ({gates * units},)")
            b_ih, b_hh = b, torch.zeros_like(b)

    def reorder(t, dim):   # Keras GRU gates z, r, h -> PyTorch r, z, n
        if cls != "GRU":
            return t
        z, r, h = t.chunk(3, dim)
        return torch.cat([r, z, h], dim)

    out = {f"weight_ih_l0{suffix}": reorder(kernel, 1).T.contiguous(),
           f"weight_hh_l0{suffix}": reorder(recurrent, 1).T.contiguous()}
    if bias:
        out[f"bias_ih_l0{suffix}"] = reorder(b_ih, 0).contiguous()
        out[f"bias_hh_l0{suffix}"] = reorder(b_hh, 0).contiguous()
    return out


def _attention_weights(cfg: dict, store: _WeightsFile, name: str, where: str) -> dict:
    """MultiHeadAttention's query/key/value/output dense layers -> nn.MultiheadAttention: the kernels
    (features, heads, key_dim) become rows head by head, as PyTorch splits its projections."""
    import torch

    bias = bool(cfg.get("use_bias", True))
    heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
    width = heads * key_dim
    parts = {}
    for part in ("query", "key", "value", "output"):
        arrays = store.arrays(name, part)
        if arrays is None:
            raise WeightsImportError(f"the weights file has no {part} weights for {where} "
                                     f"(looked under {store.where(name)})")
        _expect(arrays, 2 if bias else 1, f"{where} ({part})")
        kernel = _tensor(arrays[0])
        if part == "output":
            if kernel.ndim != 3 or kernel.shape[0] * kernel.shape[1] != width:
                raise WeightsImportError(f"{where}: its output kernel has shape {tuple(kernel.shape)}, which does "
                                         f"not fit {heads} heads of {key_dim}")
            weight = kernel.reshape(width, kernel.shape[2]).T
        else:
            if kernel.ndim != 3 or kernel.shape[1] * kernel.shape[2] != width:
                raise WeightsImportError(f"{where}: its {part} kernel has shape {tuple(kernel.shape)}, which does "
                                         f"not fit {heads} heads of {key_dim}")
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


def _normalization_weights(cfg: dict, arrays: list | None, order, shapes: dict, where: str) -> dict:
    """Normalization's mean and variance (adapted, in the file; or given in the configuration) -> the Deepwire
    block's mean and std buffers."""
    import numpy as np
    import torch

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
            raise WeightsImportError(f"{where}: its mean and variance have {v.numel()} values; the graph needs {size}")
        if order is not None and len(order) == size:
            v = v[torch.tensor(order)]
        vectors.append(v.contiguous())
    shape = shapes["mean"]
    return {"mean": vectors[0].reshape(shape), "std": vectors[1].clamp(min=0).sqrt().reshape(shape)}


def _layer_weights(cls: str, name: str, cfg: dict, extra, store: _WeightsFile, shapes: dict) -> dict:
    """One Keras layer's arrays as its Deepwire block's state (keys relative to the block's module). `shapes`: the
    block's state shapes."""
    import torch

    where = f"{'Bidirectional' if extra == 'bidirectional' else cls} '{name}'"
    missing = f"the weights file has no weights for {where} (looked under {store.where(name)})"
    if cls == "GRU" and not cfg.get("reset_after", True):
        raise WeightsImportError(f"{where}: GRU weights with reset_after=False cannot be imported (PyTorch's GRU "
                                 "applies the reset gate after the recurrent weights, as Keras' reset_after=True)")
    if extra == "bidirectional":
        out = {}
        for part, suffix in (("forward", ""), ("backward", "_reverse")):
            arrays = store.arrays(name, part, recurrent=True)
            if arrays is None:
                raise WeightsImportError(missing)
            out.update(_recurrent_weights(cls, cfg, arrays, f"{where} ({part})", suffix))
        return out
    if cls == "MultiHeadAttention":
        return _attention_weights(cfg, store, name, where)
    arrays = store.arrays(name, recurrent=cls in RECURRENT)
    order = torch.tensor(extra) if isinstance(extra, tuple) else None
    if cls == "Normalization":
        return _normalization_weights(cfg, arrays, extra if isinstance(extra, tuple) else None, shapes, where)
    if arrays is None:
        raise WeightsImportError(missing)
    if cls in RECURRENT:
        return _recurrent_weights(cls, cfg, arrays, where)
    bias = bool(cfg.get("use_bias", True))
    if cls == "Dense":
        _expect(arrays, 2 if bias else 1, where)
        kernel = _tensor(arrays[0])
        if order is not None:
            if kernel.ndim != 2 or kernel.shape[0] != len(order):
                raise WeightsImportError(f"{where}: its kernel has shape {tuple(kernel.shape)} but its input has "
                                         f"{len(order)} features")
            kernel = kernel[order]   # Keras' (H, W, C) flat order -> the graph's (C, H, W)
        if kernel.ndim != 2:
            raise WeightsImportError(f"{where}: its kernel has shape {tuple(kernel.shape)}, not (inputs, units)")
        out = {"weight": kernel.T.contiguous()}
    elif cls in ("Conv1D", "Conv2D"):
        _expect(arrays, 2 if bias else 1, where)
        kernel = _tensor(arrays[0])   # (k..., in, out) -> (out, in, k...)
        if kernel.ndim < 2:
            raise WeightsImportError(f"{where}: its kernel has shape {tuple(kernel.shape)}")
        out = {"weight": kernel.permute(kernel.ndim - 1, kernel.ndim - 2, *range(kernel.ndim - 2)).contiguous()}
    elif cls == "Embedding":
        _expect(arrays, 1, where)
        return {"weight": _tensor(arrays[0])}
    elif cls in ("BatchNormalization", "LayerNormalization"):
        n = 4 if cls == "BatchNormalization" else 2
        _expect(arrays, n, where)
        vectors = [_tensor(a).reshape(-1) for a in arrays]
        if order is not None:
            vectors = [v[order] if len(v) == len(order) else v for v in vectors]
        keys = ("weight", "bias", "running_mean", "running_var")[:n]
        out = dict(zip(keys, vectors))
        if cls == "BatchNormalization":
            out["num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        return out
    else:
        raise WeightsImportError(f"{where}: its weights have no conversion")   # not reached: convert lists these
    if bias:
        out["bias"] = _tensor(arrays[1]).reshape(-1)
    return out


@contextmanager
def _opened(weights, label: str):
    """(h5py, the open HDF5 file, its size) for a path, a binary file object, or bytes."""
    h5py = _h5py()
    handle = None
    try:
        if isinstance(weights, (str, Path)):
            size = Path(weights).stat().st_size
            target = str(weights)
        else:
            if isinstance(weights, (bytes, bytearray)):
                import io

                weights = io.BytesIO(weights)
            weights.seek(0, 2)
            size = weights.tell()
            weights.seek(0)
            target = weights
        try:
            handle = h5py.File(target, "r")
        except (OSError, ValueError) as exc:
            raise ModelImportError(f"{label} is not a readable HDF5 file ({_shown(str(exc))})") from None
        yield h5py, handle, size
    finally:
        if handle is not None:
            handle.close()


def _load_weights(importer: _Keras, graph, model, h5file, label: str) -> dict:
    """Convert the weights of every layer, check they cover the generated module's whole state and that the file
    holds nothing else, load them. Damaged or hostile files raise ModelImportError; weights that cannot all be
    placed WeightsImportError, naming the first layer."""
    from ..codegen import generate

    _, info = generate(graph, analyse(graph))
    state = model.state_dict()
    layer_of = {node: f"{cls} '{name}'" for cls, name, _, nodes in importer.counts for node in nodes}
    with _opened(h5file, label) as (h5py, f, size):
        try:
            store = _WeightsFile(h5py, f, size, importer.paths)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelImportError):
                raise
            raise ModelImportError(f"{label} cannot be read ({_shown(str(exc))})") from None
        weights: dict = {}
        for node_id in analyse(graph).order:
            attr = info.attrs.get(node_id)
            keys = [k for k in state if attr and k.startswith(f"{attr}.")]
            if not keys:
                continue
            where = layer_of.get(node_id, f"'{graph.node(node_id).name}'")
            if node_id not in importer.convert:
                raise WeightsImportError(f"cannot import the Keras weights: {where} has no weight conversion")
            cls, name, cfg, extra = importer.convert[node_id]
            shapes = {k[len(attr) + 1:]: tuple(state[k].shape) for k in keys}
            try:
                tensors = _layer_weights(cls, name, cfg, extra, store, shapes)
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OSError, AttributeError) as exc:
                if isinstance(exc, ModelImportError):
                    raise
                raise WeightsImportError(f"{where}: its weights cannot be read ({_shown(str(exc))})") from None
            for key, value in tensors.items():
                full = f"{attr}.{key}"
                if full not in state:
                    raise WeightsImportError(f"{where}: the weights file's {key} has no place in the graph")
                if tuple(value.shape) != tuple(state[full].shape):
                    raise WeightsImportError(f"{where}: the weights file's arrays give {key} shape "
                                             f"{tuple(value.shape)} but the graph needs {tuple(state[full].shape)}")
                weights[full] = value
            for key in keys:
                if key not in weights:
                    raise WeightsImportError(f"{where}: the weights file has nothing for {key[len(attr) + 1:]}")
        left = store.unplaced()
        if left:
            raise WeightsImportError(f"the weights file holds weights for {left} that no layer of the graph takes")
    if importer.scrambled:
        raise WeightsImportError("cannot import the Keras weights: the flattening order differs from Keras' before "
                                 + ", ".join(importer.scrambled))
    load_fitting(model, weights, "the converted Keras weights", "; this is an importer bug")
    bad = first_nonfinite(weights)
    if bad is not None:
        attr = bad.split(".", 1)[0]
        node = next((n for n, a in info.attrs.items() if a == attr), None)
        importer.notes.append(nonfinite_note(bad, layer_of.get(node, f"'{attr}'")))
    return weights


GRAPH_ALONE = "; import the graph alone (without weights) to start from fresh ones"


def import_keras(source, weights=None, graph_only: bool = False) -> ImportResult:
    """`weights`: a Keras weights.h5 file (path, binary file object or bytes) to import, which needs h5py.
    Without it, a .keras file's own model.weights.h5 is imported. Weights that cannot all be placed raise
    WeightsImportError (nothing is imported); `graph_only=True` imports the graph alone and reads no weights."""
    model = _read(source)
    if "class_name" not in model and isinstance(model.get("config"), dict) and "class_name" in model["config"]:
        model = model["config"]   # some tools wrap the model config once more
    cls = model.get("class_name")
    cfg = model.get("config") if isinstance(model.get("config"), dict) else {}
    if cls not in MODELS and "layers" not in cfg:
        raise ModelImportError(f"not a Keras Sequential or functional model (class {_what(cls)}): "
                               "subclassed models keep no layer graph in their configuration")
    name = cfg.get("name")
    importer = _Keras(_shown(name) if isinstance(name, str) and name.strip() else "keras_model")
    try:
        if cls == "Sequential":
            importer.sequential(model)
        else:
            importer.functional(model)
        graph, _, torch_model = importer.b.finish(with_weights=False)
    except RecursionError:
        raise ModelImportError("the Keras model configuration nests too deeply") from None
    analysis = analyse(graph)
    notes = importer.notes
    keras_total = 0
    for cls_name, name, keras_params, nodes in importer.counts:
        keras_total += keras_params
        if not any(n in graph for n in nodes):
            notes.append(f"{cls_name} '{name}' reaches no output of the model and is left out")
            continue
        ours = sum(analysis.param_counts.get(n, 0) for n in nodes if n in graph)
        if ours == keras_params:
            continue
        if cls_name in RECURRENT or cls_name == "Bidirectional" or (
                nodes[0] in graph and graph.node(nodes[0]).type in ("RNN", "LSTM", "GRU")):
            why = BIAS_NOTE
        elif cls_name == "BatchNormalization":
            why = ("Keras counts the moving mean and variance as (non-trainable) parameters; PyTorch keeps them "
                   "as buffers")
        elif cls_name == "Normalization":
            why = "Keras counts the adapted mean, variance and count as parameters; Deepwire keeps them as buffers"
        else:
            why = "the layers are parameterised differently"
        notes.append(f"{cls_name} '{name}' has {ours:,} parameters here and {keras_params:,} in Keras: {why}")
    state = None
    if graph_only:
        pass
    elif weights is not None:
        label = "the weights file"
        if isinstance(weights, (str, Path)):
            path = Path(weights)
            if not path.is_file():
                raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
            label = path.name
        state = _placed(lambda: _load_weights(importer, graph, torch_model, weights, label))
    elif isinstance(source, (str, Path)) and not str(source).lstrip().startswith("{"):
        state = _own_weights(importer, graph, torch_model, Path(source))
    if state is None:
        for name in importer.fixed_norm:
            notes.append(f"Normalization '{name}': the mean and variance in the configuration are not kept without "
                         "weights; Deepwire fits them from the training data")
    return ImportResult(graph, state, notes, keras_total)


def _placed(load):
    try:
        return load()
    except WeightsImportError as exc:
        raise WeightsImportError(str(exc) + GRAPH_ALONE) from None


def _own_weights(importer: _Keras, graph, torch_model, path: Path) -> dict | None:
    """A .keras file's own weights (model.weights.h5), or None when it holds none (a JSON config, or a model
    without weights)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None   # a JSON configuration
    with zf:
        names = zf.namelist()
        if WEIGHTS_MEMBER not in names:
            others = [n for n in names if n.endswith((".h5", ".weights.json", ".npz"))]
            if others:
                raise WeightsImportError(f"{path.name} keeps its weights in {_shown(others[0])}, which Deepwire does "
                                         f"not read (it reads {WEIGHTS_MEMBER}){GRAPH_ALONE}")
            return None
        info = zf.getinfo(WEIGHTS_MEMBER)
        label = f"{path.name}'s {WEIGHTS_MEMBER}"
        with _member_to_file(zf, info, path.name) as copy:
            state = _placed(lambda: _load_weights(importer, graph, torch_model, copy, label))
    importer.notes.append(f"the trained weights in {label} are imported")
    return state
