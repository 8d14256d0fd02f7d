"""Graph -> the readable Python source of an `nn.Module` subclass.

The source is deterministic, PEP 8, and names its submodules and variables after the
nodes. Only validated literals and identifiers made by `naming` ever reach it: no string
from a file is pasted in unchecked. The compiler executes exactly this source, so what
trains is what exports.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from . import __version__
from .analysis import Analysis, analyse
from .blocks import REGISTRY, TOKENS, Emit, TensorSpec
from .blocks.base import activation_call
from .blocks.helpers import HELPERS, helper_sources
from .blocks.module import MODULE
from .graph import Graph
from .modules import concrete
from .naming import Namespace, to_class_name

# the names the helpers define (a module's class must not take one)
HELPER_CLASSES = frozenset(re.findall(r"^(?:class|def) (\w+)", "\n".join(HELPERS.values()), flags=re.M))

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
    # a block inside a module instance: the node ids from the instance down to it (a repeat's index,
    # an int, after an instance repeated more than once) -> its dotted attribute path ("layer1.0.conv1")
    paths: dict[tuple, str] = field(default_factory=dict)


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


class _Classes:
    """The module classes a file needs, each written once: the same source is the same class."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.by_source: dict[str, str] = {}     # class source with the name left as {name} -> its name
        self.sources: list[str] = []            # in the order written (a class before its users)
        self.helpers: set[str] = set()

    def add(self, module: str, body: str) -> str:
        if body not in self.by_source:
            base = module if module.isidentifier() and module[:1].isupper() and not keyword.iskeyword(module) \
                else to_class_name(module, "Module")        # a definition's name is already a class name
            name, i = base, 1
            while name in self.taken:               # another use of the module with other shapes
                i += 1
                name = f"{base}{i}"
            self.taken.add(name)
            self.by_source[body] = name
            self.sources.append(body.replace("{name}", name))
        return self.by_source[body]


def generate(graph: Graph, analysis: Analysis | None = None, class_name: str | None = None,
             modules: dict[str, Graph] | None = None) -> tuple[str, CodeInfo]:
    """The module source for `graph`, and how its names map back to the nodes. `modules`: the
    definitions that Module instances name (default: the graph's own); each becomes a class.

    Raises CodegenError when analysis finds errors."""
    modules = graph.modules if modules is None else modules
    analysis = analysis or analyse(graph, modules)
    if not analysis.ok:
        raise CodegenError(analysis.errors)
    info = CodeInfo(class_name=to_class_name(class_name or graph.name))
    info.input_ids = [n for n in analysis.inputs if n in analysis.live]
    info.output_ids = list(analysis.outputs)
    info.input_specs = [analysis.specs[n] for n in info.input_ids]
    info.output_specs = [analysis.specs[n] for n in info.output_ids]
    classes = _Classes({info.class_name, *HELPER_CLASSES})
    ins = ", ".join(str(s) for s in info.input_specs)
    outs = ", ".join(str(s) for s in info.output_specs)
    doc = f'    """Inputs {ins or "none"} -> outputs {outs or "none"}, without the batch dimension."""'
    main = _class_lines(graph, analysis, info, modules, classes, doc, comments=True)

    helper_code, needs_math = helper_sources(classes.helpers)
    out: list[str] = [
        f'"""{safe_text(graph.name)}: a PyTorch module generated by Deepwire {__version__}.',
        "",
        "The model needs nothing but PyTorch. Shapes in comments: B is the batch size.",
        '"""',
    ]
    body: list[str] = []
    for code in helper_code + classes.sources:
        body += [code.rstrip("\n"), "", ""]
    body += main
    text = "\n".join(body)
    out += ["import math", ""] if needs_math else []
    out += ["import torch"]
    out += ["import torch.nn.functional as F"] if re.search(r"\bF\.", text) else []
    out += ["from torch import nn", "", ""]
    source = "\n".join(out + body) + "\n"
    return source, info


# an activation applied as a function, as the nn module a Sequential holds (the same computation)
MODULE_FORMS = {
    "F.relu({0})": "nn.ReLU()", "F.gelu({0})": "nn.GELU()", "torch.sigmoid({0})": "nn.Sigmoid()",
    "torch.tanh({0})": "nn.Tanh()", "F.silu({0})": "nn.SiLU()", "F.elu({0})": "nn.ELU()",
    "F.relu6({0})": "nn.ReLU6()", "F.hardswish({0})": "nn.Hardswish()", "F.hardsigmoid({0})": "nn.Hardsigmoid()",
    "F.mish({0})": "nn.Mish()", "F.softplus({0})": "nn.Softplus()", "F.softsign({0})": "nn.Softsign()",
    "F.selu({0})": "nn.SELU()", "F.leaky_relu({0}, 0.01)": "nn.LeakyReLU(0.01)",
    'F.gelu({0}, approximate="tanh")': 'nn.GELU(approximate="tanh")', "F.softmax({0}, dim=-1)": "nn.Softmax(dim=-1)",
    "{0}.flatten(1)": "nn.Flatten()",
}
PLAIN = ("{self}({0})", "{self}({args})")
INDEX = re.compile(r"0|[1-9][0-9]{0,3}")


def _module_class(node_params: dict, specs: list[TensorSpec], inner: Analysis, modules: dict[str, Graph],
                  classes: _Classes) -> tuple[str, dict[tuple, str]]:
    """(the init expression of one application of a module (its definition with these input shapes),
    the attribute paths inside it): an instance of its class, or an nn.Sequential (see _sequential)."""
    name = node_params["module"]
    graph = concrete(modules[name], specs)
    sequential = _sequential(graph, inner, modules, classes)
    if sequential is not None:
        return sequential
    info = CodeInfo(class_name="{name}")
    info.input_ids = [n for n in inner.inputs if n in inner.live]
    info.output_ids = list(inner.outputs)
    doc = f'    """The module {safe_text(name)}, as designed in Deepwire."""'
    lines = _class_lines(graph, inner, info, modules, classes, doc, comments=False)
    paths = {(n,): attr for n, attr in info.attrs.items()}
    paths.update(info.paths)
    return classes.add(name, "\n".join(lines)) + "()", paths


def _sequential(graph: Graph, analysis: Analysis, modules: dict[str, Graph],
                classes: _Classes) -> tuple[str, dict[tuple, str]] | None:
    """A definition that is one chain of blocks named 0, 1, 2, ... (in increasing order, gaps allowed), each a
    submodule applied to the one before (a module instance, a layer, an activation), is written as
    nn.Sequential, the blocks at their indices (gaps filled with nn.Identity): the attribute paths of its
    weights are then those of the PyTorch Sequential it was imported from (layer1.0.conv1.weight).
    None for any other definition."""
    order = [n for n in analysis.order if n in analysis.live]
    inputs = [n for n in order if graph.node(n).type == "Input"]
    compute = [n for n in order if graph.node(n).type not in ("Input", "Output")]
    if len(inputs) != 1 or len(analysis.outputs) != 1 or not compute:
        return None
    chain = inputs + compute + analysis.outputs
    for src, dst in zip(chain, chain[1:]):
        if graph.inputs_of(dst) != {0: src} or len(graph.consumers_of(src)) != 1:
            return None
    indices = [graph.node(n).name for n in compute]
    if not all(INDEX.fullmatch(i) for i in indices) or [int(i) for i in indices] != sorted({int(i) for i in indices}):
        return None
    exprs: list[str] = []
    paths: dict[tuple, str] = {}
    helpers: set[str] = set()
    for k, node_id in enumerate(compute):
        node = graph.node(node_id)
        params = analysis.params[node_id]
        ins = [analysis.specs[s] for s in analysis.inputs_of(graph, node_id)]
        index = int(node.name)
        if index < len(exprs):           # an activation folded into the block before took this place
            return None
        exprs += ["nn.Identity()"] * (index - len(exprs))
        after = None                     # a folded activation, as the module after it (where the gap allows)
        if node.type == MODULE:
            init, _, inner = _module_emit(params, ins, analysis.modules[node_id], modules, classes)
            paths.update({(node_id,) + path: f"{index}.{attr}" for path, attr in inner.items()})
        else:
            emit = REGISTRY[node.type].emit(params, ins)
            act = params.get("activation", "none")
            gap = k == len(compute) - 1 or int(graph.node(compute[k + 1]).name) > index + 1
            if emit.call not in PLAIN and isinstance(act, str) and act != "none" and gap:
                after = MODULE_FORMS.get(activation_call(act, "{0}"))
                emit = REGISTRY[node.type].emit(dict(params, activation="none"), ins)
                if after is None:
                    return None
            init = emit.init if emit.call in PLAIN else MODULE_FORMS.get(emit.call)
            if init is None or emit.extra_init:
                return None
            helpers.update(emit.helpers)
            if emit.init is not None:
                paths[(node_id,)] = str(index)
        exprs.append(init)
        if after is not None:
            exprs.append(after)
    classes.helpers.update(helpers)
    return "nn.Sequential(" + ", ".join(exprs) + ")", paths


def _module_emit(params: dict, ins: list[TensorSpec], inner: list[Analysis], modules: dict[str, Graph],
                 classes: _Classes) -> tuple[str, str, dict[tuple, str]]:
    """(the init expression, the call, the attribute paths inside) of a Module instance: one class per
    distinct application; a repeated instance is an nn.Sequential of its applications."""
    exprs, specs, paths = [], list(ins), {}
    for k, analysis in enumerate(inner):
        init, inside = _module_class(params, specs, analysis, modules, classes)
        exprs.append(init)
        if len(inner) == 1:
            paths = inside
        else:
            paths.update({(k,) + path: f"{k}.{attr}" for path, attr in inside.items()})
        specs = [analysis.specs[analysis.outputs[0]]]
    if len(exprs) == 1:
        return exprs[0], "{self}({args})", paths
    if len(set(exprs)) == 1:
        return f"nn.Sequential(*[{exprs[0]} for _ in range({len(exprs)})])", "{self}({0})", paths
    return "nn.Sequential(" + ", ".join(exprs) + ")", "{self}({0})", paths


def _class_lines(graph: Graph, analysis: Analysis, info: CodeInfo, modules: dict[str, Graph], classes: _Classes,
                 doc: str, comments: bool) -> list[str]:
    """The lines of one nn.Module class for `graph` (its name is info.class_name); fills info's maps."""
    order = [n for n in analysis.order if n in analysis.live]
    names = Namespace({info.class_name})
    idents = {n: names.create(graph.node(n).name) for n in order}
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
        ins = [analysis.specs[s] for s in sources]
        if node.type == MODULE:
            init, call, inside = _module_emit(params, ins, analysis.modules[node_id], modules, classes)
            emit = Emit(init=init, call=call)
            info.paths.update({(node_id,) + path: f"{idents[node_id]}.{attr}" for path, attr in inside.items()})
        else:
            emit = block.emit(params, ins)
        classes.helpers.update(emit.helpers)
        attr = idents[node_id]
        if emit.init is not None:
            info.attrs[node_id] = attr
            init_lines += wrap_call("        ", f"self.{attr} = ", emit.init)
            init_lines += [f"        {line.format(self='self.' + attr)}" for line in emit.extra_init]
        args = [variables[s] for s in sources]
        expr = emit.call.format(*args, self=f"self.{attr}", args=", ".join(args))
        var = "x" if transient(node_id, i) else attr
        variables[node_id] = var
        statement = f"        {var} = {expr}"
        comment = shape_comment(analysis.specs[node_id]) if comments else ""
        if not comment:
            forward_lines += wrap_call("        ", f"{var} = ", expr)
        elif len(statement) + 2 + len(comment) <= MAX_LINE:
            forward_lines.append(f"{statement}  {comment}")
        else:
            forward_lines += [f"        {comment}"] + wrap_call("        ", f"{var} = ", expr)

    returned = [variables[o] for o in info.output_ids]
    forward_lines.append(f"        return {', '.join(returned)}")
    args = ", ".join(f"{variables[n]}: torch.Tensor" for n in info.input_ids)
    signature = f"    def forward(self, {args})" + (" -> torch.Tensor:" if len(returned) == 1 else ":")
    lines = [
        f"class {info.class_name}(nn.Module):",
        doc,
        "",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    lines += init_lines or ["        pass"]
    lines += ["", signature]
    lines += forward_lines
    return lines
