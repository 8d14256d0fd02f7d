"""The layer handlers: one `LayerHandler` per Keras layer class, in `LAYERS`, holding together how the layer's
configuration becomes Deepwire blocks (`build`) and how its arrays in a weights file become those blocks' state
(`weights`). The importer looks a layer's handler up by its class name; a class without one "has no Deepwire
block". A new layer type is one small class in a module of `layers/`:

    @register("Identity")
    class Identity(LayerHandler):
        def build(self, k, name, cfg, ins, kw):
            return ins[0]

`k` is the importer (`importer.Importer`: the graph being built and its helpers), `ins` the layer's input
tensors (`T`), `kw` its call's other keyword arguments. A handler that cannot map a configuration raises `Skip`
with the reason, which the import names with the layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...blocks.base import ACTIVATIONS as _BLOCK_ACTIVATIONS
from ..common import WeightsImportError
from .reading import _shape, _shown, _what

if TYPE_CHECKING:
    from .importer import Importer
    from .weights_file import _WeightsFile

# Keras activation name -> Deepwire's; those whose Deepwire choice this version of the blocks lacks are left out.
# Keras 3's hard_sigmoid is relu6(x + 3) / 6 (PyTorch's hardsigmoid) and hard_silu / hard_swish x times it;
# leaky_relu is not here: Keras' slope is 0.2, Deepwire's 0.01.
_KERAS_ACTIVATIONS = {None: "none", "linear": "none", "relu": "relu", "gelu": "gelu", "sigmoid": "sigmoid",
                      "tanh": "tanh", "softmax": "softmax", "silu": "silu", "swish": "silu", "elu": "elu",
                      "relu6": "relu6", "hard_silu": "hardswish", "hard_swish": "hardswish",
                      "hard_sigmoid": "hardsigmoid", "mish": "mish", "softplus": "softplus", "softsign": "softsign",
                      "selu": "selu"}
ACTIVATIONS = {k: v for k, v in _KERAS_ACTIVATIONS.items() if v in _BLOCK_ACTIVATIONS}


@dataclass(frozen=True)
class T:
    """A tensor: the Deepwire node holding it, and which Keras sample axis each of its dims is."""

    node: str
    perm: tuple[int, ...]
    # For a flattened vector: the Keras (channels-last) flat index of each Deepwire element, when the two
    # orders differ (a Flatten after convolutions); None when they are the same.
    order: tuple[int, ...] | None = None


class Skip(Exception):
    """A layer that cannot be mapped; the message says why."""


@dataclass
class LayerWeights:
    """What a handler's `weights` is given: the layer, what its `build` recorded for the conversion (`extra`), the
    weights file, and the state shapes of the block it built (keys relative to the block's module)."""

    handler: LayerHandler
    name: str
    cfg: dict
    extra: Any
    store: _WeightsFile
    shapes: dict

    @property
    def where(self) -> str:
        return f"{self.handler.keras_class} '{self.name}'"

    @property
    def order(self):
        """The flat order `build` recorded (a tensor of Keras flat indices), or None."""
        import torch

        return torch.tensor(self.extra) if isinstance(self.extra, tuple) else None

    def find(self, part: str | None = None, recurrent: bool = False) -> list | None:
        """The layer's arrays (see `_WeightsFile.arrays`), or None when the file has none for it."""
        return self.store.arrays(self.name, part, recurrent=recurrent)

    def arrays(self, part: str | None = None, recurrent: bool = False) -> list:
        """The layer's arrays; a WeightsImportError saying where it looked when the file has none for it."""
        arrays = self.find(part, recurrent)
        if arrays is None:
            raise WeightsImportError(self.missing)
        return arrays

    @property
    def missing(self) -> str:
        return f"the weights file has no weights for {self.where} (looked under {self.store.where(self.name)})"


class LayerHandler:
    """How one Keras layer class imports. Registered once per class name (`register`), as an instance whose
    `keras_class` is that name; the options given to `register` set its attributes."""

    many_inputs = False      # build takes every input the layer is called with (else exactly one)
    takes_tokens = False     # an Input that feeds it directly holds token ids (an Embedding)
    takes_constants = False  # build reads kw[CONSTANTS]: numbers given with the tensors (Add()([x, 3.0]))
    param_note: str | None = None   # why its parameter count differs from Keras', where it does by design

    def __init__(self, keras_class: str, **options):
        self.keras_class = keras_class
        for key, value in options.items():
            if not hasattr(self, key):
                raise TypeError(f"{type(self).__name__} has no option {key!r}")
            setattr(self, key, value)

    def inputs(self, args: list, kwargs: dict, tensors: dict) -> list[T]:
        """The input tensors of a functional model's call: `args` and the tuples in `kwargs` are tensor
        references (layer name, node index, tensor index), `tensors` each layer's result."""
        return tensor_inputs(args, kwargs, tensors)

    def build(self, k: Importer, name: str, cfg: dict, ins: list[T], kw: dict) -> T:
        """Add the layer's block(s) to `k`'s graph and return its result."""
        raise NotImplementedError

    def weights(self, w: LayerWeights) -> dict:
        """The layer's arrays as the state of the block `build` marked with `converts`."""
        raise WeightsImportError(f"{w.where}: its weights have no conversion")

    # ------------------------------------------------------------ for build
    def block(self, k: Importer, name: str, type_name: str, params: dict, t: T, keras_params: int = 0) -> T:
        """One Deepwire block on one input, counted as this layer's; a flat order carries through it."""
        return k.simple(self.keras_class, name, type_name, params, t, keras_params)

    def converts(self, k: Importer, node: str, name: str, cfg: dict, extra: Any = None) -> None:
        """Mark `node` as the block whose state this handler's `weights` gives (with `extra` passed along)."""
        k.convert[node] = (self, name, cfg, extra)


LAYERS: dict[str, LayerHandler] = {}
CONSTANTS = "__constants__"   # the call keyword under which the importer passes numbers given among the inputs


def register(*classes: str, **options):
    """Class decorator: register the handler for each Keras class name in `classes` (one instance each, with
    `options` as its attributes). A name that already has a handler is refused."""
    def decorate(handler_cls: type[LayerHandler]) -> type[LayerHandler]:
        for keras_class in classes:
            if keras_class in LAYERS:
                raise ValueError(f"the Keras layer {keras_class!r} already has a handler "
                                 f"({type(LAYERS[keras_class]).__name__})")
            LAYERS[keras_class] = handler_cls(keras_class, **options)
        return handler_cls
    return decorate


def unregister(*classes: str) -> None:
    """Remove the handlers of these Keras class names (those without one are ignored)."""
    for keras_class in classes:
        LAYERS.pop(keras_class, None)


# ----------------------------------------------------------------------------- helpers for handlers

def tensor_inputs(args: list, kwargs: dict, tensors: dict) -> list[T]:
    """The inputs of a layer called with tensors by position only."""
    tensor_kwargs = [k for k, v in kwargs.items() if isinstance(v, tuple)]
    if tensor_kwargs:
        raise Skip(f"is given a tensor as {_shown(tensor_kwargs[0])[:40]}, which Deepwire does not carry")
    return [tensors[r[0]] for r in args]


def _act(value, where: str) -> str:
    if isinstance(value, dict):
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    if value not in ACTIVATIONS:
        known = ", ".join(sorted(k for k in ACTIVATIONS if k and k != "linear"))
        raise Skip(f"activation {_what(value)} has no Deepwire equivalent ({known})")
    return ACTIVATIONS[value]


def _tuple(value, n: int) -> list[int]:
    if isinstance(value, dict):
        value = _shape(value)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise Skip(f"needs {n} values, got {value}")
        return [int(v) for v in value]
    return [int(value)] * n


def _channels_first(rank: int) -> tuple[int, ...]:
    return (rank - 1,) + tuple(range(rank - 1))


def _tensor(array):
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _expect(arrays: list, n: int, where: str) -> None:
    if len(arrays) != n:
        raise WeightsImportError(f"{where}: the weights file holds {len(arrays)} arrays for it, expected {n}")


def kernel_and_bias(w: LayerWeights, weight) -> dict:
    """A layer of a kernel and, with use_bias, a bias: `weight(kernel)` is the block's weight."""
    arrays = w.arrays()
    bias = bool(w.cfg.get("use_bias", True))
    _expect(arrays, 2 if bias else 1, w.where)
    out = {"weight": weight(_tensor(arrays[0]))}
    if bias:
        out["bias"] = _tensor(arrays[1]).reshape(-1)
    return out
