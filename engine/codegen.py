"""Graph -> the readable Python source of an `nn.Module` subclass.

The source is deterministic, PEP 8, and names its submodules and variables after the
nodes. Only validated literals and identifiers made by `naming` ever reach it: no string
from a file is pasted in unchecked. The compiler executes exactly this source, so what
trains is what exports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import __version__
from .analysis import Analysis, analyse
from .blocks import REGISTRY, TOKENS, TensorSpec
from .blocks.helpers import helper_sources
from .graph import Graph
from .naming import Namespace, to_class_name

MAX_LINE = 99


class CodegenError(ValueError):
    """The graph has errors; `diagnostics` lists them."""

    def __init__(self, diagnostics):
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0].message if self.diagnostics else "the graph has errors"
        more = f" (and {len(self.diagnostics) - 1} more)" if len(self.diagnostics) > 1 else ""
        super().__init__(first + more)


@dataclass
class CodeInfo:
    class_name: str
    attrs: dict[str, str] = field(default_factory=dict)      # node id -> submodule attribute
    variables: dict[str, str] = field(default_factory=dict)  # node id -> forward variable
    input_ids: list[str] = field(default_factory=list)       # forward's arguments, in order
    output_ids: list[str] = field(default_factory=list)      # returned, in order
    input_specs: list[TensorSpec] = field(default_factory=list)
    output_specs: list[TensorSpec] = field(default_factory=list)


def safe_text(text: str, limit: int = 60) -> str:
    """User text reduced to characters that are harmless inside a docstring or comment."""
    cleaned = re.sub(r"[^A-Za-z0-9 _\-.,()+]", "", str(text))
    return " ".join(cleaned.split())[:limit] or "model"


def shape_comment(spec: TensorSpec) -> str:
    dims = ", ".join(["B"] + [str(d) for d in spec.shape])
    return f"# ({dims})" + (" int64" if spec.dtype == TOKENS else "")


def split_args(text: str) -> list[str]:
    """Top-level comma-separated parts of an argument list."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def wrap_call(indent: str, head: str, call: str) -> list[str]:
    """`head + call` on one line, or the call's arguments one per line when too long."""
    line = f"{indent}{head}{call}"
    if len(line) <= MAX_LINE or "(" not in call:
        return [line]
    start = call.index("(")
    depth, end = 0, -1
    for i in range(start, len(call)):
        depth += {"(": 1, ")": -1}.get(call[i], 0)
        if depth == 0:
            end = i
            break
    if end < 0:
        return [line]
    fn, args, tail = call[:start], call[start + 1: end], call[end + 1:]
    inner = indent + "    "
    lines, current = [], ""
    for arg in split_args(args):
        candidate = f"{current}, {arg}" if current else arg
        if current and len(inner) + len(candidate) + 1 > MAX_LINE:
            lines.append(f"{inner}{current},")
            candidate = arg
        current = candidate
    lines.append(f"{inner}{current}")
    return [f"{indent}{head}{fn}("] + lines + [f"{indent}){tail}"]


def generate(graph: Graph, analysis: Analysis | None = None, class_name: str | None = None) -> tuple[str, CodeInfo]:
    """The module source for `graph`, and how its names map back to the nodes.

    Raises CodegenError when analysis finds errors."""
    analysis = analysis or analyse(graph)
    if not analysis.ok:
        raise CodegenError(analysis.errors)
    info = CodeInfo(class_name=to_class_name(class_name or graph.name))
    order = [n for n in analysis.order if n in analysis.live]
    names = Namespace({info.class_name})
    idents = {n: names.create(graph.node(n).name) for n in order}
    info.input_ids = [n for n in analysis.inputs if n in analysis.live]
    info.output_ids = list(analysis.outputs)
    info.input_specs = [analysis.specs[n] for n in info.input_ids]
    info.output_specs = [analysis.specs[n] for n in info.output_ids]
    compute = [n for n in order if graph.node(n).type not in ("Input", "Output")]

    # A value used once, by the very next statement (or the return), lives in `x`.
    position = {n: i for i, n in enumerate(compute)}

    def transient(node_id: str, prev: int) -> bool:
        uses = graph.consumers_of(node_id)
        if len(uses) != 1:
            return False
        consumer = uses[0][0]
        if graph.node(consumer).type == "Output":
            return prev == len(compute) - 1 and len(info.output_ids) == 1
        return position.get(consumer) == prev + 1 and len(graph.inputs_of(consumer)) == 1

    variables = info.variables
    if len(info.input_ids) == 1 and transient(info.input_ids[0], -1):
        variables[info.input_ids[0]] = "x"
    for n in info.input_ids:
        variables.setdefault(n, idents[n])

    init_lines: list[str] = []
    forward_lines: list[str] = []
    helpers: set[str] = set()
    for node_id in order:
        node = graph.node(node_id)
        block = REGISTRY[node.type]
        sources = analysis.inputs_of(graph, node_id)
        if node.type == "Output":  # marks a value the model returns; no statement of its own
            variables[node_id] = variables[sources[0]]
            continue
        if node.type == "Input":
            continue
        i = position[node_id]
        params = analysis.params[node_id]
        emit = block.emit(params, [analysis.specs[s] for s in sources])
        helpers.update(emit.helpers)
        attr = idents[node_id]
        if emit.init is not None:
            info.attrs[node_id] = attr
            init_lines += wrap_call("        ", f"self.{attr} = ", emit.init)
            init_lines += [f"        {line.format(self='self.' + attr)}" for line in emit.extra_init]
        args = [variables[s] for s in sources]
        expr = emit.call.format(*args, self=f"self.{attr}", args=", ".join(args))
        var = "x" if transient(node_id, i) else attr
        variables[node_id] = var
        comment = shape_comment(analysis.specs[node_id])
        statement = f"        {var} = {expr}"
        if len(statement) + 2 + len(comment) <= MAX_LINE:
            forward_lines.append(f"{statement}  {comment}")
        else:
            forward_lines += [f"        {comment}"] + wrap_call("        ", f"{var} = ", expr)

    returned = [variables[o] for o in info.output_ids]
    forward_lines.append(f"        return {', '.join(returned)}")
    args = ", ".join(f"{variables[n]}: torch.Tensor" for n in info.input_ids)
    signature = f"    def forward(self, {args})" + (" -> torch.Tensor:" if len(returned) == 1 else ":")

    helper_code, needs_math = helper_sources(helpers)
    ins = ", ".join(str(s) for s in info.input_specs)
    outs = ", ".join(str(s) for s in info.output_specs)
    out: list[str] = [
        f'"""{safe_text(graph.name)}: a PyTorch module generated by Deepwire {__version__}.',
        "",
        "The model needs nothing but PyTorch. Shapes in comments: B is the batch size.",
        '"""',
    ]
    body: list[str] = []
    for code in helper_code:
        body += [code.rstrip("\n"), "", ""]
    body += [
        f"class {info.class_name}(nn.Module):",
        f'    """Inputs {ins or "none"} -> outputs {outs or "none"}, without the batch dimension."""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    body += init_lines or ["        pass"]
    body += ["", signature]
    body += forward_lines
    text = "\n".join(body)
    out += ["import math", ""] if needs_math else []
    out += ["import torch"]
    out += ["import torch.nn.functional as F"] if re.search(r"\bF\.", text) else []
    out += ["from torch import nn", "", ""]
    source = "\n".join(out + body) + "\n"
    return source, info
