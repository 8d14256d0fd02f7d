"""Tracing the module with torch.fx and running the trace once on an example, which records every node's shape.

The example batch has BATCH samples; each input's shape comes from the caller, from the INPUT_SHAPES an
exported model.py declares, or from the first layer that reads it (a Linear's in_features).
"""
from __future__ import annotations

import inspect
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ...blocks import TOKENS
from ..common import ModelImportError
from . import registry
from .loading import exc_text, is_helper, where
from .values import BATCH


class Tracer(fx.Tracer):
    def __init__(self, leaves: set[type], autowrap: tuple):
        super().__init__(autowrap_functions=autowrap)
        self.record_stack_traces = True
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (type(m) in self.leaves or type(m) in registry.MODULES
                or registry.qualified_name(type(m)) in registry.LIBRARY or super().is_leaf_module(m, qualname))


def trace(model: nn.Module, title: str, path: Path | None) -> fx.GraphModule:
    # Deepwire's own helpers (in an exported model.py) stay whole: they map to blocks
    leaves = {type(m) for m in model.modules() if type(m).__name__ in registry.HELPER_MODULES
              and is_helper(type(m), type(m).__name__)}
    forward_globals = getattr(type(model).forward, "__globals__", {})
    autowrap = tuple(f for name in registry.HELPER_FUNCTIONS for f in [forward_globals.get(name)]
                     if f is not None and is_helper(f, name))
    tracer = Tracer(leaves, autowrap)
    was_training = model.training
    model.train()
    concrete = defaulted_arguments(model)
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError... from the user's forward
        raise ModelImportError(f"torch.fx cannot trace {title}{where(exc, path)}: {exc_text(exc)} (Deepwire "
                               "imports modules whose forward runs the same operations for every input)") from None
    finally:
        model.train(was_training)
    gm = fx.GraphModule(tracer.root, graph, title)
    drop_specialised(gm.graph, len(concrete))
    gm.graph.eliminate_dead_code()
    gm.recompile()
    if not placeholders(gm):
        raise ModelImportError(f"{title}.forward takes no inputs")
    return gm


def defaulted_arguments(model: nn.Module) -> dict:
    """forward's arguments after the first that have defaults (timm's `attn_mask=None`, `is_causal=False`):
    traced at their defaults, so forward takes the input alone."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    found, positional = {}, 0
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            positional += 1
        elif positional:
            found[p.name] = p.default
    return found


def drop_specialised(graph: fx.Graph, count: int) -> None:
    """Remove the placeholders of arguments traced at their defaults, with the checks fx adds for them
    (`_assert_is_none`, `torch._assert(flag == False)`), when nothing else uses them."""
    if not count:
        return
    for p in [n for n in graph.nodes if n.op == "placeholder"][-count:]:
        users, stack = [], [p]
        while stack:
            for user in stack.pop().users:
                if user not in users:
                    users.append(user)
                    stack.append(user)
        checks = (torch._assert, fx._symbolic_trace._assert_is_none)
        if all(u.target in checks or (u.op == "call_function" and all(v in users or v.target in checks
                                                                       for v in u.users)) for u in users):
            order = {n: i for i, n in enumerate(graph.nodes)}
            for u in sorted(users, key=order.get, reverse=True):
                graph.erase_node(u)
            graph.erase_node(p)


def placeholders(gm: fx.GraphModule) -> list[fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def input_specs(gm: fx.GraphModule, title: str, input_shape, globals_: dict) -> tuple[list, list[str]]:
    """(one sample's shape, dtype) of each input of forward."""
    inputs = placeholders(gm)
    shapes = normalise_shapes(input_shape)
    guessed_shapes, dtypes = guess_inputs(gm, inputs)
    if shapes is None and "INPUT_SHAPES" in globals_:
        shapes = normalise_shapes(globals_["INPUT_SHAPES"])
        exported = globals_.get("INPUT_DTYPES")
        if isinstance(exported, (list, tuple)) and len(exported) == len(inputs):
            dtypes = [TOKENS if d == TOKENS else "float32" for d in exported]
    if shapes is None:
        shapes = guessed_shapes
    if len(shapes) != len(inputs):
        raise ModelImportError(f"{title}.forward takes {len(inputs)} input(s) but {len(shapes)} input shape(s) "
                               "were given")
    for p, shape in zip(inputs, shapes):
        if shape is None:
            raise ModelImportError(f"the shape of {title}'s input '{p.target}' cannot be read from the model: give it "
                                   "without the batch dimension (--input-shape 1,28,28 on the command line)")
    return shapes, dtypes


def propagate(gm: fx.GraphModule, shapes, dtypes, title: str, path: Path | None) -> list[torch.Tensor]:
    """Run the trace on an example (which it returns), recording each node's shape in its tensor_meta."""
    gm.eval()
    example = make_example(shapes, dtypes, gm)
    try:
        with torch.no_grad():
            Shapes(gm).run(*example)
    except Exception as exc:  # the model refuses inputs of that shape
        raise ModelImportError(f"{title} cannot run on inputs of shape "
                               f"{', '.join(str(s) for s in shapes)}{where(exc, path)}: {exc_text(exc)}") from None
    return example


class Shapes(fx.Interpreter):
    """Runs the trace, recording each node's tensor_meta (torch.fx's ShapeProp, without its copy of the
    module)."""

    def run_node(self, n: fx.Node):
        from torch.fx.node import map_aggregate
        from torch.fx.passes.shape_prop import _extract_tensor_metadata

        result = super().run_node(n)
        found = []

        def extract(obj):
            if isinstance(obj, torch.Tensor):
                found.append(True)
                return _extract_tensor_metadata(obj)
            return obj

        meta = map_aggregate(result, extract)
        if found:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result


def normalise_shapes(input_shape) -> list[tuple[int, ...]] | None:
    if input_shape is None:
        return None
    if isinstance(input_shape, str):
        input_shape = [input_shape]
    items = list(input_shape)
    if items and all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        items = [items]
    shapes = []
    for item in items:
        if isinstance(item, str):
            try:
                item = [int(d) for d in item.replace("x", ",").replace(" ", "").strip("()[]").split(",") if d]
            except ValueError:
                raise ModelImportError(f"input shape {item!r} is not whole numbers separated by commas, "
                                       "e.g. 1,28,28") from None
        shape = tuple(int(d) for d in item)
        if not shape or any(d < 1 for d in shape):
            raise ModelImportError(f"input shape {shape} needs positive sizes (without the batch dimension)")
        shapes.append(shape)
    return shapes


def make_example(shapes, dtypes, gm: fx.GraphModule) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    sizes = [m.num_embeddings for m in gm.modules() if isinstance(m, nn.Embedding)]
    out = []
    for shape, dtype in zip(shapes, dtypes):
        if dtype == TOKENS:
            out.append(torch.randint(0, min(sizes, default=2), (BATCH, *shape), generator=generator))
        else:
            out.append(torch.randn((BATCH, *shape), generator=generator))
    return out


def guess_inputs(gm: fx.GraphModule, inputs) -> tuple[list | None, list[str]]:
    shapes, dtypes = [], []
    for p in inputs:
        users = [u for u in gm.graph.nodes if p in u.all_input_nodes]
        first = users[0] if users else None
        module = gm.get_submodule(first.target) if first is not None and first.op == "call_module" else None
        dtypes.append(TOKENS if isinstance(module, nn.Embedding) or (first is not None and first.target is F.embedding)
                      else "float32")
        shapes.append((module.in_features,) if isinstance(module, nn.Linear) else None)
    return shapes, dtypes
