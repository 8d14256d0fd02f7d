"""The vocabulary every block declaration is written in.

A block is data plus a few small functions, declared once: its parameters, its input
ports, how it turns input shapes into an output shape, how many weights it has, and the
Python source that builds and calls it. The palette, inspector, analysis, code generator,
compiler and docs all read the same declaration.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

FLOAT = "float32"
TOKENS = "int64"


@dataclass(frozen=True)
class TensorSpec:
    """A tensor without its batch dimension: PyTorch layout, e.g. (C, H, W) or (T, F)."""

    shape: tuple[int, ...]
    dtype: str = FLOAT

    def __str__(self) -> str:
        return format_shape(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def format_shape(shape: Sequence[int]) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


class ShapeError(ValueError):
    """A block cannot accept its inputs. The message says why and how to fix it."""

    def __init__(self, message: str, kind: str = "shape"):
        super().__init__(message)
        self.kind = kind


class ParamError(ValueError):
    """A parameter value is not valid for its declaration."""


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class Param:
    """One typed, validated block parameter.

    kind is one of: int, float, bool, choice, size (an int or a tuple of `length` ints),
    ints (a tuple of ints, any length >= min_len), padding (an int, a tuple of ints, or one
    of `choices`), name (an identifier: a letter, then letters, digits or _, at most 64), args (a
    module instance's parameter values by name).
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    length: int = 0          # for size: how many ints a tuple has
    min_len: int = 1         # for ints
    label: str = ""          # the name shown in the inspector when capitalising `name` reads badly

    @property
    def display_label(self) -> str:
        """`label`, or the name made readable: "kernel_size" -> "Kernel size"."""
        if self.label:
            return self.label
        text = self.name.replace("_", " ").strip()
        return text[:1].upper() + text[1:]

    def validate(self, value: Any) -> Any:
        """Return `value` as a clean literal of this parameter's type, or raise ParamError."""
        kind = self.kind
        if kind == "int":
            return self._int(value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{self.name} must be a number, not {_show(value)}")
            try:
                v = float(value)
            except OverflowError:
                v = math.inf
            if not math.isfinite(v):
                raise ParamError(f"{self.name} must be a finite number")
            self._bounds(v)
            return v
        if kind == "bool":
            if not isinstance(value, bool):
                raise ParamError(f"{self.name} must be true or false, not {_show(value)}")
            return value
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ParamError(f"{self.name} must be one of {', '.join(self.choices)}; got {_show(value)}")
            return value
        if kind == "size":
            if isinstance(value, (list, tuple)):
                if len(value) != self.length:
                    raise ParamError(f"{self.name} needs {self.length} values, got {len(value)}")
                return tuple(self._int(v) for v in value)
            v = self._int(value)
            return (v,) * self.length
        if kind == "ints":
            if not isinstance(value, (list, tuple)):
                raise ParamError(f"{self.name} must be a list of whole numbers, not {_show(value)}")
            if len(value) < self.min_len:
                raise ParamError(f"{self.name} needs at least {self.min_len} value(s)")
            if len(value) > 8:
                raise ParamError(f"{self.name} may have at most 8 values")
            return tuple(self._int(v) for v in value)
        if kind == "padding":
            if isinstance(value, str):
                if value not in self.choices:
                    raise ParamError(f"{self.name} must be {', '.join(self.choices)} or a number; got {_show(value)}")
                return value
            if isinstance(value, (list, tuple)):
                if len(value) != self.length:
                    raise ParamError(f"{self.name} needs {self.length} values, got {len(value)}")
                return tuple(self._int(v) for v in value)
            return (self._int(value),) * self.length
        if kind == "name":
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", value):
                raise ParamError(f"{self.name} must be a name (a letter, then letters, digits or _), "
                                 f"not {_show(value)}")
            return value
        if kind == "args":
            return _arguments(self.name, value)
        raise ParamError(f"unknown parameter kind {kind!r}")  # a bug in a declaration

    def _int(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{self.name} must be a whole number, not {_show(value)}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ParamError(f"{self.name} must be a whole number, not {value}")
            value = int(value)
        if abs(value) > 2**53:
            raise ParamError(f"{self.name} is far too large")
        self._bounds(value)
        return int(value)

    def _bounds(self, v: float) -> None:
        if self.min is not None and v < self.min:
            raise ParamError(f"{self.name} must be at least {_num(self.min)}; got {_num(v)}")
        if self.max is not None and v > self.max:
            raise ParamError(f"{self.name} must be at most {_num(self.max)}; got {_num(v)}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------------------- blocks

@dataclass(frozen=True)
class Ports:
    """The input ports of a block: named ports, or `variadic` (min_count..max_count)."""

    names: tuple[str, ...] = ("in",)
    variadic: bool = False
    min_count: int = 1
    max_count: int | None = None

    @property
    def fixed(self) -> int:
        return len(self.names)


@dataclass
class Emit:
    """What a block contributes to the generated module.

    init: constructor source assigned to `self.<name>`, or None for a stateless op.
    call: forward expression; `{self}` is the submodule (`self.<name>`), `{0}`, `{1}`, ...
    the input variables, `{args}` all inputs joined by ", ".
    helpers: names of helper definitions (engine.blocks.helpers) the source needs.
    extra_init: more __init__ lines (e.g. weight initialisation), `{self}` substituted.
    """

    call: str
    init: str | None = None
    helpers: tuple[str, ...] = ()
    extra_init: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    type: str
    category: str
    help: str
    shape_rule: str = ""   # one line: how the output shape follows from the inputs (docs/BLOCKS.md)
    params: tuple[Param, ...] = ()
    ports: Ports | Callable[[dict], Ports] = Ports()
    infer: Callable[[dict, list[TensorSpec]], TensorSpec] = None  # type: ignore[assignment]
    emit: Callable[[dict, list[TensorSpec]], Emit] = None  # type: ignore[assignment]
    count_params: Callable[[dict, list[TensorSpec]], int] = lambda p, ins: 0
    keras: str = ""
    accepts_tokens: bool = False   # may take int64 token ids
    short: Callable[[dict], str] = lambda p: ""   # the key parameters, for node faces
    default_name: str = ""
    check: Callable[[dict], None] = lambda p: None  # cross-parameter checks, raise ParamError
    # advice that is not an error: (kind, message) pairs for validated params and the input specs (empty when
    # not known); analysis reports each as a warning on the node
    advice: Callable[[dict, list[TensorSpec]], Sequence[tuple[str, str]]] = lambda p, ins: ()
    # the largest token id + 1 this block takes (an Embedding's vocabulary), or None
    token_bound: Callable[[dict], int | None] = lambda p: None
    # quick fixes: the params this block would be inserted with on a wire carrying `spec` whose end wants a
    # last dimension of `wanted` (None when unknown); each is offered on the canvas's wire menu
    fixes: Callable[[TensorSpec, int | None], Sequence[dict]] = lambda spec, wanted: ()
    param_index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "param_index", {p.name: p for p in self.params})

    def ports_for(self, params: dict) -> Ports:
        return self.ports(params) if callable(self.ports) else self.ports

    def defaults(self) -> dict:
        return {p.name: dict(p.default) if isinstance(p.default, dict) else p.default for p in self.params}

    def validate_params(self, raw: dict) -> dict:
        """Defaults filled in, every value validated. Raises ParamError naming the parameter."""
        if not isinstance(raw, dict):
            raise ParamError("parameters must be a mapping")
        unknown = [k for k in raw if k not in self.param_index]
        if unknown:
            raise ParamError(f"unknown parameter {_show(unknown[0])}")
        clean = {}
        for p in self.params:
            clean[p.name] = p.validate(raw.get(p.name, p.default))
        self.check(clean)
        return clean


def _arguments(name: str, value: Any) -> dict:
    """A module instance's parameter values: names to numbers, true/false, words or lists of numbers
    (each checked against the parameter it sets when the module is analysed)."""
    if not isinstance(value, dict):
        raise ParamError(f"{name} must map parameter names to values, not {_show(value)}")
    if len(value) > 16:
        raise ParamError(f"{name} may give at most 16 values")
    clean = {}
    for key, v in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][A-Za-z0-9_]{0,31}", key):
            raise ParamError(f"{name}: {_show(key)} is not a parameter name")
        if isinstance(v, (list, tuple)):
            if not 1 <= len(v) <= 8 or not all(isinstance(e, int) and not isinstance(e, bool) for e in v):
                raise ParamError(f"{name}: {key} must be a number, a word or a list of whole numbers")
            v = tuple(v)
        elif not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v)):
            raise ParamError(f"{name}: {key} must be a number, a word or a list of whole numbers")
        clean[key] = v
    return clean


REGISTRY: dict[str, Block] = {}
CATEGORIES = ("Input/Output", "Core", "Convolution", "Normalization", "Recurrent", "Attention", "Merge", "Tensor",
              "Preprocessing", "Augmentation", "Modules")


# every block with weights (and a module instance) can be frozen (issue #19): its weights then get
# no gradient and it stays in evaluation mode while the rest trains (BatchNorm statistics fixed)
TRAINABLE = Param("trainable", "bool", True, label="Trainable",
                  help="Off: the block is frozen. Its weights stay as they are (no gradient) and it runs in "
                       "evaluation mode while the rest trains (BatchNorm keeps its statistics), as Keras' "
                       "trainable=False. For fine-tuning a network whose weights were loaded.")
_NO_WEIGHTS = Block.__dataclass_fields__["count_params"].default


def has_weights(block: Block) -> bool:
    """A block that holds learned weights (a module instance may: what it holds)."""
    return block.count_params is not _NO_WEIGHTS or block.category == "Modules"


def register(block: Block) -> Block:
    if block.type in REGISTRY:
        raise RuntimeError(f"block {block.type} declared twice")
    if has_weights(block) and "trainable" not in {p.name for p in block.params}:
        block = dataclasses.replace(block, params=block.params + (TRAINABLE,))
    for p in block.params:  # a default that does not validate is a bug in the declaration
        p.validate(p.default)
    REGISTRY[block.type] = block
    return block


# ----------------------------------------------------------------------------- shared rules

# saved projects name these: new ones go at the end
ACTIVATIONS = ("none", "relu", "gelu", "sigmoid", "tanh", "softmax", "leaky_relu", "silu", "elu",
               "relu6", "hardswish", "hardsigmoid", "mish", "softplus", "softsign", "selu", "gelu_tanh")
# what Keras calls the activations whose names differ
ACTIVATIONS_KERAS = "hardswish is Keras' hard_swish (hard_silu), hardsigmoid its hard_sigmoid (Keras 3), " \
                    "gelu_tanh its gelu(approximate=True); the others share their Keras names"
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


def lit(value: Any) -> str:
    """A validated parameter value as a Python literal."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        text = repr(float(value))
        if not math.isfinite(value):
            raise ValueError("non-finite literal")
        return text
    if isinstance(value, str):
        if not value.replace("_", "").isalnum() or not value.isascii():
            raise ValueError(f"unsafe string literal {value!r}")
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise TypeError(f"no literal for {type(value).__name__}")


def activation_call(name: str, expr: str) -> str:
    """Source applying a named activation (validated choice) to `expr`."""
    return {
        "none": expr,
        "relu": f"F.relu({expr})",
        "gelu": f"F.gelu({expr})",
        "sigmoid": f"torch.sigmoid({expr})",
        "tanh": f"torch.tanh({expr})",
        "softmax": f"F.softmax({expr}, dim=-1)",
        "leaky_relu": f"F.leaky_relu({expr}, 0.01)",
        "silu": f"F.silu({expr})",
        "elu": f"F.elu({expr})",
        "relu6": f"F.relu6({expr})",
        "hardswish": f"F.hardswish({expr})",
        "hardsigmoid": f"F.hardsigmoid({expr})",
        "mish": f"F.mish({expr})",
        "softplus": f"F.softplus({expr})",
        "softsign": f"F.softsign({expr})",
        "selu": f"F.selu({expr})",
        "gelu_tanh": f'F.gelu({expr}, approximate="tanh")',
    }[name]


def activation_param(default: str = "none") -> Param:
    return Param("activation", "choice", default, choices=ACTIVATIONS,
                 help=f"Activation applied to the output (Keras: activation=...); {ACTIVATIONS_KERAS}.")


def init_param(recurrent: bool = False) -> Param:
    choices = INITS + (("orthogonal",) if recurrent else ())
    return Param("init", "choice", "default", label="Initialisation", choices=choices,
                 help="Weight initialisation: PyTorch's default, Xavier/Glorot or Kaiming/He"
                      + (", or orthogonal recurrent weights." if recurrent else "."))


def init_lines(p: dict) -> tuple[str, ...]:
    if p.get("init", "default") == "default":
        return ()
    return (f"init_weights({{self}}, {lit(p['init'])})",)


def init_helpers(p: dict) -> tuple[str, ...]:
    return () if p.get("init", "default") == "default" else ("init_weights",)


def need_rank(spec: TensorSpec, ranks: Sequence[int], what: str, fix: str) -> None:
    if spec.rank not in ranks:
        raise ShapeError(f"needs a {what} input but receives {spec}: {fix}", kind="rank")

