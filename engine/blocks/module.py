"""Module: an instance of one of the project's modules (a named sub-graph, issue #17).

A module is a graph of its own with Input blocks (its input ports, in their order) and one Output
(what it returns); the project keeps the definitions (`Graph.modules`). An instance names its
module and how many times it is applied in a chain (`repeat`, each application with weights of its
own). Its shapes, parameters and code come from the definition: `engine.analysis` and
`engine.codegen` treat this block apart, with the definitions at hand.
"""
from __future__ import annotations

from .base import Block, Param, Ports, ShapeError, register

MODULE = "Module"


def _no_definitions(p, ins):
    raise ShapeError(f"module '{p['module']}' is analysed with the project's module definitions", kind="internal")


def _value(v) -> str:
    if isinstance(v, tuple):
        return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))
    return str(v)


register(Block(
    type=MODULE, category="Modules", default_name="module",
    shape_rule="as the module's own graph computes, applied `repeat` times",
    help="An instance of one of this project's modules: a named group of blocks with its own Inputs "
         "(the ports, in order) and one Output. Every instance follows the definition; each has its own "
         "weights. `repeat` applies it that many times in a chain (nn.Sequential), each time with weights "
         "of its own (a ResNet stage, a stack of encoder blocks).",
    params=(
        Param("module", "name", "Module", help="The module's name (its definition in this project)."),
        Param("repeat", "int", 1, min=1, max=256, help="How many times it is applied, one after another."),
        Param("args", "args", {}, label="Parameters",
              help="Values for the parameters the module declares (channels, stride, ...); a parameter left "
                   "out takes the value its block has in the module."),
    ),
    ports=Ports(("in",), variadic=True, min_count=1, max_count=32),
    infer=_no_definitions,
    short=lambda p: p["module"] + (f" ×{p['repeat']}" if p["repeat"] > 1 else "")
    + (" (" + ", ".join(f"{k}={_value(v)}" for k, v in p["args"].items()) + ")" if p["args"] else ""),
))
