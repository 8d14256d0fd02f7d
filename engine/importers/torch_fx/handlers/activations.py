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

from ..registry import function, method, module
from ..translate import bind
from ..values import Unsupported

FUSABLE = ("Linear", "Conv1d", "Conv2d", "ConvTranspose2d")   # blocks with an `activation` parameter


def exact_gelu(args: dict, shape) -> None:
    if args.get("approximate", "none") != "none":
        raise Unsupported("with approximate='tanh' has no Deepwire block (Deepwire's GELU is exact)")


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
    check: Callable[[dict, tuple | None], None] | None = None   # raises Unsupported for settings Deepwire lacks


ACTIVATIONS = (
    Activation("relu", (nn.ReLU,), (F.relu, torch.relu), ("relu",)),
    Activation("gelu", (nn.GELU,), (F.gelu,), (), ("approximate",), exact_gelu),
    Activation("sigmoid", (nn.Sigmoid,), (torch.sigmoid, F.sigmoid), ("sigmoid",)),
    Activation("tanh", (nn.Tanh,), (torch.tanh, F.tanh), ("tanh",)),
    Activation("softmax", (nn.Softmax,), (F.softmax, torch.softmax), ("softmax",), ("dim",), over_last_dim),
    Activation("leaky_relu", (nn.LeakyReLU,), (F.leaky_relu,), (), ("negative_slope", "inplace"), default_slope),
    Activation("silu", (nn.SiLU,), (F.silu,)),
    Activation("elu", (nn.ELU,), (F.elu,), (), ("alpha", "inplace"), alpha_one),
)


def activation(t, n: fx.Node, act: Activation, args: dict, src_arg):
    """`act` applied to `src_arg` with `args` (its options by name)."""
    shape = t.sample(src_arg) if isinstance(src_arg, fx.Node) else None
    if act.check is not None:
        act.check(args, shape)
    src = t.value(src_arg)
    if (isinstance(src_arg, fx.Node) and len(src_arg.users) == 1 and t.b.type_of(src) in FUSABLE
            and t.b.params_of(src).get("activation") == "none" and not t.b.graph.consumers_of(src)):
        t.b.update(src, {"activation": act.name})
        return src
    return t.add("Activation", act.name, {"function": act.name}, [src], None, n)


def register(act: Activation) -> None:
    def of_module(t, n, m):
        return activation(t, n, act, {o: getattr(m, o) for o in act.options if hasattr(m, o)}, n.args[0])

    def of_call(t, n):   # F.relu(x, ...) and x.relu(...) alike: the tensor comes first
        return activation(t, n, act, bind(n, ("input",) + act.options), n.args[0])

    module(*act.modules)(of_module)
    function(*act.functions)(of_call)
    method(*act.methods)(of_call)


for _act in ACTIVATIONS:
    register(_act)
