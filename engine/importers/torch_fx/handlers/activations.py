"""Activations: modules (nn.ReLU), functions (F.relu, torch.relu) and tensor methods (x.relu()) become an
Activation block, or are folded into the Linear/Conv block right before them.

One `Activation` line per function: adding one (with its module, functions and methods) is one line here,
plus a check when only some of its settings match Deepwire's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..registry import function, library_module, method, module, qualified_name
from ..translate import bind
from ..values import Unsupported

FUSABLE = ("Linear", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "DepthwiseConv2d",
           "SeparableConv2d")   # blocks with an `activation` parameter


def gelu_kind(args: dict, shape) -> str | None:
    """GELU(approximate='tanh') is the gelu_tanh choice."""
    return "gelu_tanh" if args.get("approximate", "none") == "tanh" else None


def softplus_default(args: dict, shape) -> None:
    if float(args.get("beta", 1.0)) != 1.0 or float(args.get("threshold", 20.0)) != 20.0:
        raise Unsupported("with beta or threshold other than 1 and 20 has no Deepwire block")


def hardtanh_relu6(args: dict, shape) -> None:
    if float(args.get("min_val", -1.0)) != 0.0 or float(args.get("max_val", 1.0)) != 6.0:
        raise Unsupported("other than Hardtanh(0, 6) (ReLU6) has no Deepwire block")


def over_last_dim(args: dict, shape) -> None:
    dim = args.get("dim")
    if dim is None or shape is None or dim not in (-1, len(shape)):
        raise Unsupported("over a dimension other than the last has no Deepwire block")


def default_slope(args: dict, shape) -> None:
    if float(args.get("negative_slope", 0.01)) != 0.01:
        raise Unsupported("with a slope other than 0.01 has no Deepwire block")


def alpha_one(args: dict, shape) -> None:
    if float(args.get("alpha", 1.0)) != 1.0:
        raise Unsupported("with alpha other than 1 has no Deepwire block")


@dataclass(frozen=True)
class Activation:
    name: str                     # the Activation block's `function`
    modules: tuple = ()           # nn.Module types
    functions: tuple = ()         # torch / torch.nn.functional functions
    methods: tuple = ()           # tensor method names
    options: tuple = ()           # the function's arguments after the input; a module's attributes of those names
    check: Callable[[dict, tuple | None], str | None] | None = None   # raises Unsupported for settings Deepwire
    #                                                                    lacks; may name another `function`


ACTIVATIONS = (
    Activation("relu", (nn.ReLU,), (F.relu, torch.relu), ("relu",)),
    Activation("gelu", (nn.GELU,), (F.gelu,), (), ("approximate",), gelu_kind),
    Activation("sigmoid", (nn.Sigmoid,), (torch.sigmoid, F.sigmoid), ("sigmoid",)),
    Activation("tanh", (nn.Tanh,), (torch.tanh, F.tanh), ("tanh",)),
    Activation("softmax", (nn.Softmax,), (F.softmax, torch.softmax), ("softmax",), ("dim",), over_last_dim),
    Activation("leaky_relu", (nn.LeakyReLU,), (F.leaky_relu,), (), ("negative_slope", "inplace"), default_slope),
    Activation("silu", (nn.SiLU,), (F.silu,)),
    Activation("elu", (nn.ELU,), (F.elu,), (), ("alpha", "inplace"), alpha_one),
    Activation("relu6", (nn.ReLU6,), (F.relu6,)),
    Activation("relu6", (nn.Hardtanh,), (F.hardtanh,), (), ("min_val", "max_val"), hardtanh_relu6),
    Activation("hardswish", (nn.Hardswish,), (F.hardswish,)),
    Activation("hardsigmoid", (nn.Hardsigmoid,), (F.hardsigmoid,)),
    Activation("mish", (nn.Mish,), (F.mish,)),
    Activation("softplus", (nn.Softplus,), (F.softplus,), (), ("beta", "threshold"), softplus_default),
    Activation("softsign", (nn.Softsign,), (F.softsign,)),
    Activation("selu", (nn.SELU,), (F.selu, torch.selu), ("selu",)),
)


def activation(t, n: fx.Node, act: Activation, args: dict, src_arg):
    """`act` applied to `src_arg` with `args` (its options by name)."""
    shape = t.sample(src_arg) if isinstance(src_arg, fx.Node) else None
    name = (act.check(args, shape) if act.check is not None else None) or act.name
    fusable = isinstance(src_arg, fx.Node) and len(src_arg.users) == 1
    return apply(t, n, name, t.value(src_arg), fusable)


def apply(t, n, name: str, src: str, fusable: bool = True) -> str:
    """The activation `name` after the block `src`: folded into it when it has an `activation` parameter still
    unused and nothing else reads it, else an Activation block."""
    if (fusable and t.b.type_of(src) in FUSABLE and t.b.params_of(src).get("activation") == "none"
            and not t.b.graph.consumers_of(src)):
        t.b.update(src, {"activation": name})
        return src
    return t.add("Activation", name, {"function": name}, [src], None, n)


def of_module(t, n, m: nn.Module, src: str) -> str:
    """A library layer's activation submodule (`self.act`) after `src`; an Identity adds nothing."""
    if isinstance(m, nn.Identity):
        return src
    name = LIBRARY.get(qualified_name(type(m)))
    if name is not None:
        return apply(t, n, name, src)
    for act in ACTIVATIONS:
        if type(m) in act.modules:
            args = {o: getattr(m, o) for o in act.options if hasattr(m, o)}
            name = (act.check(args, None) if act.check is not None else None) or act.name
            return apply(t, n, name, src)
    raise Unsupported(f"uses the activation {type(m).__name__}, which has no Deepwire block")


def register(act: Activation) -> None:
    def handle_module(t, n, m):
        return activation(t, n, act, {o: getattr(m, o) for o in act.options if hasattr(m, o)}, n.args[0])

    def of_call(t, n):   # F.relu(x, ...) and x.relu(...) alike: the tensor comes first
        return activation(t, n, act, bind(n, ("input",) + act.options), n.args[0])

    module(*act.modules)(handle_module)
    function(*act.functions)(of_call)
    method(*act.methods)(of_call)


for _act in ACTIVATIONS:
    register(_act)

# timm's activation modules (timm.layers.activations), recognised by name: each computes torch's function
TIMM = {"Swish": "silu", "Mish": "mish", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
        "HardSigmoid": "hardsigmoid", "GELU": "gelu", "GELUTanh": "gelu_tanh"}
LIBRARY = {f"timm.layers.activations.{cls}": name for cls, name in TIMM.items()}


def timm_activation(name: str):
    def handle(t, n, m):
        return apply(t, n, name, t.value(n.args[0]), len(n.args[0].users) == 1)
    return handle


for _qualname, _name in LIBRARY.items():
    library_module(_qualname)(timm_activation(_name))


@module(nn.PReLU)
def prelu(t, n, m):
    shape = t.sample(n.args[0])
    per_channel = m.num_parameters > 1
    if per_channel and (not shape or shape[0] != m.num_parameters):
        raise Unsupported(f"with {m.num_parameters} slopes for an input of {shape} has no Deepwire block (one "
                          "slope per channel, dimension 0)")
    return t.layer(n, "PReLU", {"per_channel": per_channel, "slope": 0.25}, m.state_dict())
