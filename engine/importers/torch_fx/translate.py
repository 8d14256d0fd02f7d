"""Walking the traced graph: each fx node is handed to the handler registered for its module, function or
method (registry.py), and what no handler takes is collected, with its source line, into one ModelImportError.

The Translator is what a handler works with: `value` (an argument's graph node), `shape`/`sample` (its recorded
shape), `layer`/`add` (add a block, with its weights), `notes` (said to the user after the import).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import torch.fx as fx
from torch import nn

from ..common import GraphBuilder, ModelImportError
from . import registry
from .loading import internal_file, is_helper
from .values import BATCH, Bad, BadInput, Meta, Param, Pending, Size, Unsupported

MAX_KINDS = 12          # distinct problems named in one message; the rest are counted
MAX_PLACES = 3          # module paths named per problem


def compact(values) -> Any:
    """(3, 3) -> 3, as a person writes it; (3, 5) stays a list."""
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def bind(node: fx.Node, names: tuple[str, ...]) -> dict:
    """The node's arguments by name: its positional ones named in order, then its keywords."""
    args = dict(zip(names, node.args))
    args.update(node.kwargs)
    return args


def size_arithmetic(t: Translator, n: fx.Node):
    """An operation on sizes, not tensors (x.size(0) // 2): no block; its result is a size."""
    if all(not isinstance(t.env.get(a), str) for a in n.all_input_nodes):
        return Size()
    raise Unsupported("has no Deepwire block")


class Translator:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, title: str, path: Path | None,
                 shapes: list[tuple[int, ...]], dtypes: list[str]):
        self.gm, self.root, self.path = gm, root, path
        self.shapes, self.dtypes = shapes, dtypes
        self.b = GraphBuilder(title)
        self.env: dict[fx.Node, Any] = {}
        self.problems: dict[tuple[str, str], Problem] = {}
        self.notes: list[str] = []
        self.taken_params: set[str] = set()     # parameters read in forward that a block took as its weights
        self.called: dict[str, fx.Node] = {}
        self.rescale_nodes: set[str] = set()   # Rescaling blocks a following scalar operation may fold into

    # ---------------------------------------------------------------- what handlers use
    def shape(self, n) -> tuple[int, ...] | None:
        meta = n.meta.get("tensor_meta") if isinstance(n, fx.Node) else None
        if meta is None or not hasattr(meta, "shape"):
            return None
        return tuple(meta.shape)

    def sample(self, n) -> tuple[int, ...]:
        shape = self.shape(n)
        if shape is None or not shape or shape[0] != BATCH:
            raise Unsupported("changes the batch dimension")
        return shape[1:]

    def line(self, n: fx.Node) -> str:
        """'file line N `code`' of the operation: the innermost frame outside torch and Deepwire (the library's
        own line for a library's layer, not the wrapper's `x = self.features(x)`), and the user's line that
        leads there when the model's file is another."""
        frames = re.findall(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)', n.stack_trace or "")
        outside = [f for f in frames if not internal_file(f[0])]
        if not outside:
            return ""
        filename, lineno, code = outside[-1]
        text = f"{Path(filename).name} line {lineno}" + (f" `{code.strip()[:120]}`" if code.strip() else "")
        if self.path is not None and not same_file(filename, self.path):
            mine = [f for f in outside if same_file(f[0], self.path)]
            if mine:
                text += f" (from {self.path.name} line {mine[-1][1]})"
        return text

    def describe(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return f"{type(self.gm.get_submodule(n.target)).__name__} (self.{n.target})"
        if n.op == "call_method":
            return f".{n.target}()"
        if n.op == "get_attr":
            return f"the tensor self.{n.target}"
        target = n.target
        module = getattr(target, "__module__", None) or ""
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
        if module in ("_operator", "operator"):
            return f"operator {name}"
        if name.startswith("_VariableFunctionsClass."):
            module, name = "torch", name.split(".", 1)[1]
        if module.startswith("torch._C") or module in ("torch", "torch._VariableFunctions"):
            module = "torch"
        return f"{module}.{name}" if module else name

    def value(self, arg) -> str:
        """The graph node of an fx argument that must be a tensor."""
        v = self.env[arg] if isinstance(arg, fx.Node) else arg
        if isinstance(v, str):
            return v
        if isinstance(v, Pending):
            return v.as_tensor(self)
        raise Unsupported(f"uses the constant {v!r} as a tensor")

    def is_tensor(self, arg) -> bool:
        """False for constants and for what only looks like a tensor in the trace (sizes, dtypes, masks)."""
        if not isinstance(arg, fx.Node):
            return False
        v = self.env.get(arg)
        return not isinstance(v, Pending) or v.counts_as_tensor

    def add(self, type_name, name, params=None, inputs=(), weights=None, n=None) -> str:
        where = self.line(n) if n is not None else name
        return self.b.add(type_name, name, params, list(inputs), weights, where=f"{name} ({where})" if n else name)

    def module_name(self, target: str) -> str:
        return target.replace(".", "_")

    def layer(self, n: fx.Node, type_name: str, params: dict, weights: dict | None = None) -> str:
        """One block for the module node `n`, named after the module and fed its (single) input."""
        return self.add(type_name, self.module_name(n.target), params, [self.value(n.args[0])], weights, n)

    # ---------------------------------------------------------------- the walk
    def run(self):
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for i, n in enumerate(inputs):
            name = n.target if len(inputs) > 1 or n.target not in ("x", "inputs", "input", "x_in") else "input"
            self.env[n] = self.b.add("Input", name, {"shape": list(self.shapes[i]), "dtype": self.dtypes[i]})
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                continue
            # the blocks this operation adds come from it (hierarchy.py groups them by its module)
            self.b.origin = n if n.op != "output" else None
            if n.op == "output":
                self.outputs(n)
                continue
            if any(isinstance(self.env.get(a), Bad) for a in n.all_input_nodes):
                self.env[n] = Bad()
                continue
            try:
                self.env[n] = self.map(n)
            except BadInput:
                self.env[n] = Bad()
            except Unsupported as exc:
                self.report(n, str(exc))
                self.env[n] = self.stand_in(n)
            except ModelImportError as exc:
                self.report(None, str(exc))
                self.env[n] = self.stand_in(n)
        self.b.origin = None
        for v in set(self.env.values()):
            problem = v.unused(self) if isinstance(v, Pending) else None
            if problem:
                self.report(None, problem)
        if self.problems:
            raise ModelImportError(problem_message(self.b.graph.name, list(self.problems.values())))

    def report(self, n: fx.Node | None, text: str) -> None:
        """One more occurrence of a problem: the same kind of operation with the same complaint is one entry."""
        if n is None:
            kind, place, where = text, None, ""
        else:
            kind, place = self.kind(n)
            where = self.line(n) or n.name
        key = (kind, re.sub(r"\d+", "#", text))
        found = self.problems.get(key)
        if found is None:
            self.problems[key] = Problem(kind, text, where, [place] if place else [], 1)
        else:
            found.count += 1
            if place and len(found.places) <= MAX_PLACES:
                found.places.append(place)

    def stand_in(self, n: fx.Node):
        """What an unsupported operation's result is while the rest is translated: an input of its recorded
        shape, so every later operation is still checked (and reported) on its own; Bad when it is no single
        float tensor of the batch."""
        meta = n.meta.get("tensor_meta")
        shape = tuple(getattr(meta, "shape", ()) or ())
        if len(shape) < 2 or shape[0] != BATCH or not getattr(meta, "dtype", None) or not meta.dtype.is_floating_point:
            return Bad()
        try:
            return self.b.add("Input", f"missing_{n.name}", {"shape": list(shape[1:]), "dtype": "float32"})
        except ModelImportError:
            return Bad()

    def kind(self, n: fx.Node) -> tuple[str, str | None]:
        """(what the operation is, the module path it runs at, when it is a module)."""
        if n.op == "call_module":
            return type(self.gm.get_submodule(n.target)).__name__, f"self.{n.target}"
        return self.describe(n), None

    def outputs(self, n: fx.Node) -> None:
        result = n.args[0]
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        for i, v in enumerate(values):
            if not isinstance(v, fx.Node):
                self.report(None, f"forward returns {type(v).__name__}, not a tensor")
                continue
            if isinstance(self.env.get(v), Bad):
                continue
            try:
                src = self.value(v)
            except (Unsupported, BadInput) as exc:
                if isinstance(exc, Unsupported):
                    self.report(None, f"forward returns {self.env[v].what}")
                continue
            self.b.add("Output", "output" if i == 0 else f"output_{i}", {}, [src])

    # ---------------------------------------------------------------- dispatch
    def map(self, n: fx.Node):
        if n.op == "get_attr":
            return Param(n.target, attribute_of(self.gm, n.target))
        if n.op == "call_module":
            return self.call_module(n)
        if n.op == "call_method":
            return self.call_method(n)
        return self.call_function(n)

    def call_module(self, n: fx.Node):
        m = self.gm.get_submodule(n.target)
        has_state = any(True for _ in itertools.chain(m.parameters(), m.buffers()))
        if has_state:
            if n.target in self.called:
                raise Unsupported("is called more than once: shared weights have no Deepwire block "
                                  "(make one module per use)")
            self.called[n.target] = n
        found = registry.module_handler(type(m))
        if found is None:
            name = type(m).__name__
            helper = registry.HELPER_MODULES.get(name)
            if helper is not None and is_helper(type(m), name):
                found = registry.ModuleHandler(helper)
        if (len(n.args) != 1 or n.kwargs) and not (found is not None and found.extra_args):
            if not registry.takes_extra_args(m):
                raise Unsupported("is called with extra arguments")
        if found is None:
            raise Unsupported("has no Deepwire block")
        return found.fn(self, n, m)

    def call_function(self, n: fx.Node):
        t = n.target
        handler = registry.FUNCTIONS.get(t)
        if handler is None:
            name = getattr(t, "__name__", "")
            helper = registry.HELPER_FUNCTIONS.get(name)
            if helper is not None and is_helper(t, name):
                handler = helper
        if handler is not None:
            return handler(self, n)
        if not any(self.is_tensor(a) for a in n.args):
            return size_arithmetic(self, n)
        params = [v for v in (self.env.get(a) for a in n.all_input_nodes) if isinstance(v, Param)]
        raise Unsupported(f"uses {params[0].what}" if params else "has no Deepwire block")

    def call_method(self, n: fx.Node):
        base = self.env.get(n.args[0])
        if isinstance(base, (Size, Meta)):
            return Size()
        if isinstance(base, Param):
            return base.method(self, n)
        handler = registry.METHODS.get(n.target)
        if handler is None:
            raise Unsupported("has no Deepwire block")
        return handler(self, n)


class Problem:
    """One kind of unsupported operation: its first occurrence's complaint and line, and where it recurs."""

    def __init__(self, kind: str, text: str, where: str, places: list[str], count: int):
        self.kind, self.text, self.where, self.places, self.count = kind, text, where, places, count

    def __str__(self) -> str:
        if not self.where:   # a whole sentence of its own
            return self.text + (f" ({self.count} times)" if self.count > 1 else "")
        places = self.places[:MAX_PLACES]
        if places:
            more = self.count - len(places)
            listed = ", ".join(places) + (f" and {more} more" if more > 0 else "")
            what, times = f"{self.kind} ({listed})", ""
        else:
            what, times = self.kind, f" ({self.count} times)" if self.count > 1 else ""
        return f"{self.where}: {what} {self.text}{times}"


def problem_message(name: str, problems: list[Problem]) -> str:
    """One line naming every kind of problem once, with its count, bounded in length."""
    total = sum(p.count for p in problems)
    head = (f"cannot import {name}: {total} operation{'s' * (total != 1)} {'have' if total != 1 else 'has'} no "
            f"Deepwire block")
    if len(problems) != total:
        head += f" ({len(problems)} different)"
    shown = [str(p) if len(str(p)) <= 400 else str(p)[:397] + "..." for p in problems[:MAX_KINDS]]
    rest = len(problems) - len(shown)
    return head + ": " + "; ".join(shown) + (f"; and {rest} other kind{'s' * (rest != 1)}" if rest > 0 else "")


def same_file(filename: str, path: Path) -> bool:
    return Path(filename).name == path.name and Path(filename).resolve() == path.resolve()


def attribute_of(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
