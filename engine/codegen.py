"""Graph -> the readable Python source of an `nn.Module` subclass.

The source is deterministic, PEP 8, and names its submodules and variables after the
nodes. Only validated literals and identifiers made by `naming` ever reach it: no string
from a file is pasted in unchecked. The compiler executes exactly this source, so what
trains is what exports.
"""
from __future__ import annotations

import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field

from . import __version__
from .analysis import Analysis, analyse
from .blocks import REGISTRY, TOKENS, Emit, TensorSpec
from .blocks.base import activation_call, lit
from .blocks.helpers import HELPERS, helper_sources
from .blocks.module import MODULE
from .graph import Graph
from .modules import concrete, declared, target_value
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


class _Variant:
    """One distinct class source of a module (its name left as {name}, its declared parameters'
    signature as @@SIG@@) and the input shapes of the applications that use it."""

    def __init__(self, module: str, body: str, signature: list[str]):
        self.module, self.body, self.signature = module, body, signature
        self.uses: list[tuple[list[TensorSpec], dict[str, int]]] = []


CALL = re.compile("\x00([0-9]+)\x00\\(")


class _Classes:
    """The module classes a file needs, each written once: the same source is the same class.

    An application is written as a token naming its variant (`add`); `finish` then gives the
    variants their class names, merging the variants of one module that differ only in numbers the
    input shapes or the module's parameters explain (in_channels, channels) into one class that
    takes them as arguments, as a hand-written ResNet's BasicBlock(inplanes, planes) does."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.variants: list[_Variant] = []
        self.by_body: dict[tuple[str, str, tuple], int] = {}
        self.helpers: set[str] = set()
        self.sources: list[str] = []

    def add(self, module: str, body: str, signature: list[str], kwargs: list[str],
            specs: list[TensorSpec], values: dict[str, int] | None = None) -> str:
        """An application of `module`'s class `body`: `kwargs` its arguments; `values` the whole
        numbers its declared parameters take here (a number equal to one is that parameter)."""
        key = (module, body, tuple(signature))
        if key not in self.by_body:
            self.by_body[key] = len(self.variants)
            self.variants.append(_Variant(module, body, signature))
        k = self.by_body[key]
        self.variants[k].uses.append((list(specs), dict(values or {})))
        return f"\x00{k}\x00(" + ", ".join(kwargs) + ")"

    def finish(self, main: str) -> str:
        """Write the classes (self.sources, a class before its users) and return `main` with every
        application token replaced by its class and arguments."""
        calls: dict[int, str] = {}           # variant -> "Name(" + the arguments finish adds

        def resolve(text: str) -> str:
            def sub(m: re.Match) -> str:
                head = calls[int(m.group(1))]
                rest = text[m.end():m.end() + 1]
                return head + (", " if head[-1] != "(" and rest != ")" else "")
            return CALL.sub(sub, text)

        order: list[str] = []
        for v in self.variants:
            if v.module not in order:
                order.append(v.module)
        for module in order:
            ks = [k for k, v in enumerate(self.variants) if v.module == module]
            for k in ks:
                self.variants[k].body = resolve(self.variants[k].body)
            same: dict[tuple, int] = {}       # variants that became equal once their inner classes merged
            alias: dict[int, int] = {}
            for k in ks:
                v = self.variants[k]
                first = same.setdefault((v.body, tuple(v.signature)), k)
                if first != k:
                    self.variants[first].uses += v.uses
                alias[k] = first
            by_structure: dict[tuple, list[int]] = {}     # variants that differ in whole numbers only
            for k in dict.fromkeys(alias.values()):
                key = (_structure(self.variants[k].body), tuple(self.variants[k].signature))
                by_structure.setdefault(key, []).append(k)
            for g in by_structure.values():
                merged = _merge([self.variants[k] for k in g]) if len(g) > 1 else None
                parts = [(g, merged)] if merged is not None or len(g) == 1 else [([k], None) for k in g]
                for members, plan in parts:
                    name = self._name(module)
                    lead = self.variants[members[0]]
                    body, extra = (plan[0], plan[1]) if plan else (lead.body, [])
                    signature = "".join(f", {a}: int" for a in extra) + "".join(lead.signature)
                    self.sources.append(body.replace("{name}", name).replace("@@SIG@@", signature))
                    for i, k in enumerate(members):
                        values = plan[2][i] if plan else []
                        calls[k] = f"{name}(" + ", ".join(f"{a}={v}" for a, v in zip(extra, values))
            for k, first in alias.items():
                calls[k] = calls[first]
        self.sources = ["\n".join(_rewrap(resolve(s).splitlines())) for s in self.sources]
        return resolve(main)

    def _name(self, module: str) -> str:
        base = module if module.isidentifier() and module[:1].isupper() and not keyword.iskeyword(module) \
            else to_class_name(module, "Module")        # a definition's name is already a class name
        name, i = base, 1
        while name in self.taken:               # another class of the same module
            i += 1
            name = f"{base}{i}"
        self.taken.add(name)
        return name


def _tokens(text: str) -> list[tuple[int, str, int, int]]:
    """(type, text, line, column) of a class source's tokens, line breaks inside brackets left out."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.NL, tokenize.COMMENT):
            continue
        out.append((tok.type, tok.string, tok.start[0], tok.start[1]))
    return out


def _structure(text: str) -> tuple:
    """A class source with its whole numbers abstracted: two variants with the same structure differ
    in numbers only."""
    return tuple((t, "#" if t == tokenize.NUMBER and INTEGER.fullmatch(s) else s) for t, s, _, _ in _tokens(text))


INTEGER = re.compile(r"[1-9][0-9]*")


def _candidates(uses: list[tuple[list[TensorSpec], dict[str, int]]]) -> dict[str, int]:
    """The numbers a class's applications all share, by the argument name they would take: the
    module's own parameters, then in_channels / in_features (and the other dimensions) of each
    input (a name whose number differs between applications of the same class is left out)."""
    found: dict[str, int] | None = None
    for specs, values in uses:
        here: dict[str, int] = dict(values)
        for port, spec in enumerate(specs):
            suffix = "" if port == 0 else f"_{port + 1}"
            rank = len(spec.shape)
            for dim, size in enumerate(spec.shape):
                if rank == 1 or (rank == 2 and dim == 1):
                    label = "in_features"
                elif dim == 0:
                    label = "in_channels" if rank >= 3 else "in_length"
                else:
                    label = f"in_size{dim}"
                here.setdefault(label + suffix, size)
        found = here if found is None else {k: v for k, v in found.items() if here.get(k) == v}
    return found or {}


def _merge(variants: list[_Variant]) -> tuple[str, list[str], list[list[str]]] | None:
    """One class for variants that differ only in whole numbers of their __init__, each number
    named by an input dimension it equals in every application (in_channels, ...): (the class
    source, the arguments it takes, each variant's values), or None where a number is not explained
    (or appears in forward)."""
    streams = [_tokens(v.body) for v in variants]
    shared = [_candidates(v.uses) for v in variants]
    own = set(re.findall(r", (\w+)", "".join(variants[0].signature)))     # already arguments
    forward_line = next((i + 1 for i, line in enumerate(variants[0].body.splitlines())
                         if line.startswith("    def forward")), 10**9)
    names: dict[int, str] = {}                     # token index -> argument name
    for i, tok in enumerate(streams[0]):
        values = [s[i][1] for s in streams]
        if len(set(values)) == 1:
            continue
        if tok[2] >= forward_line:
            return None
        numbers = [int(v) for v in values]
        label = next((a for a in shared[0] if all(c.get(a) == n for c, n in zip(shared, numbers))), None)
        if label is None:
            return None
        names[i] = label
    args = [a for a in dict.fromkeys(names.values()) if a not in own]
    lines = variants[0].body.splitlines()
    for i in sorted(names, key=lambda j: (-streams[0][j][2], -streams[0][j][3])):
        _, text, row, col = streams[0][i]
        line = lines[row - 1]
        lines[row - 1] = line[:col] + names[i] + line[col + len(text):]
    values = [[str(shared[k][a]) for a in args] for k in range(len(variants))]
    return "\n".join(_rewrap(lines)), args, values


def _rewrap(lines: list[str]) -> list[str]:
    """`self.x = call(...)` statements of __init__ put back within the line length after names
    replaced numbers."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("        self.") and " = " in line:
            j, text = i, line
            while text.count("(") > text.count(")") and j + 1 < len(lines):
                j += 1
                text += " " + lines[j].strip()
            joined = re.sub(r"\(\s+", "(", re.sub(r",?\s+\)", ")", text))
            if j > i or len(line) > MAX_LINE:
                head, call = joined.strip().split(" = ", 1)
                out += wrap_call("        ", head + " = ", call)
                i = j + 1
                continue
        out.append(line)
        i += 1
    return out


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
    main = _rewrap(classes.finish("\n".join(_class_lines(graph, analysis, info, modules, classes, doc,
                                                         comments=True))).splitlines())

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
    """(the init expression of one application of a module (its definition with these input shapes
    and parameter values), the attribute paths inside it): an instance of its class, or an
    nn.Sequential (see _sequential). The parameters the module declares become its class's
    arguments where the blocks they set write them as they are (see _template)."""
    name = node_params["module"]
    definition = modules[name]
    args = node_params.get("args") or {}
    graph = concrete(definition, specs, args, modules)
    decl = declared(definition, modules)
    sequential = _sequential(graph, inner, modules, classes)     # inline, with this application's values
    if sequential is not None:
        return sequential
    info = CodeInfo(class_name="{name}")
    info.input_ids = [n for n in inner.inputs if n in inner.live]
    info.output_ids = list(inner.outputs)
    doc = f'    """The module {safe_text(name)}, as designed in Deepwire."""'
    found = _template(graph, inner, info, modules, classes, doc, decl) if decl else None
    signature: list[str] = []
    kwargs: list[str] = []
    if found is not None:
        lines, symbolic = found
        for d in symbolic:
            default = _arg_literal(d.default)
            annotation = ANNOTATIONS.get(d.param.kind)
            signature.append(f", {d.name}{annotation} = {default}" if annotation else f", {d.name}={default}")
            value = _arg_literal(inner_value(graph, d, modules))
            if value != default:
                kwargs.append(f"{d.name}={value}")
    else:
        lines = _class_lines(graph, inner, info, modules, classes, doc, comments=False)
    lines = ["    def __init__(self@@SIG@@):" if line == "    def __init__(self):" else line for line in lines]
    paths = {(n,): attr for n, attr in info.attrs.items()}
    paths.update(info.paths)
    values = {}
    for d in decl:              # every number it takes here (one written in place still names a number)
        v = inner_value(graph, d, modules)
        if isinstance(v, tuple) and len(set(v)) == 1:
            v = v[0]
        if isinstance(v, int) and not isinstance(v, bool):
            values[d.name] = v
    return classes.add(name, "\n".join(lines), signature, kwargs, specs, values), paths


ANNOTATIONS = {"int": ": int", "float": ": float"}
# names a class argument must not take: what the generated __init__ itself uses
RESERVED_ARGS = frozenset({"nn", "torch", "F", "math", "self", "super", "range", "int", "float", "tuple", "len"})
SENTINELS = (7_000_001, 7_000_003)   # two sets of marker values: a parameter written as it is shows as its marker


def inner_value(graph: Graph, d, modules: dict[str, Graph] | None = None) -> object:
    """The value parameter `d` has in this application (its first target's, validated)."""
    node_id, param = d.targets[0]
    found = target_value(graph, node_id, param, modules)
    return found[1] if found is not None else d.default


def _arg_literal(value) -> str:
    if isinstance(value, tuple) and len(set(value)) == 1:
        return lit(value[0])
    return lit(value)


def _template(graph: Graph, inner: Analysis, info: CodeInfo, modules: dict[str, Graph], classes: _Classes,
              doc: str, decl: list) -> tuple[list[str], list] | None:
    """The class lines with the module's number parameters as names (`nn.Conv2d(16, channels, 3,
    stride=stride)`), and those parameters; None when no parameter can be written so (each then
    keeps the value of this application, one class per set of values). A parameter is written as a
    name only where the block writes its value as it is: the class is written twice with two sets of
    marker values, and a marker that does not come back unchanged in both (a value the block
    computes with) leaves that parameter out."""
    symbolic = [d for d in decl if d.param.kind in ANNOTATIONS or d.param.kind == "size"]
    symbolic = [d for d in symbolic if d.name not in RESERVED_ARGS and d.name not in HELPER_CLASSES
                and all(graph.node(n).type != MODULE for n, _ in d.targets)]
    while symbolic:
        texts = []
        for base in SENTINELS:
            overrides: dict[str, dict] = {}
            marks: dict[str, str] = {}
            for k, d in enumerate(symbolic):
                mark = base + 100 * k
                value = float(mark) + 0.25 if d.param.kind == "float" else mark
                marks[d.name] = lit(value)
                for node_id, param in d.targets:
                    overrides.setdefault(node_id, {})[param] = \
                        (mark,) * d.param.length if d.param.kind == "size" else value
            try:
                text = "\n".join(_class_lines(graph, inner, info, modules, classes, doc, comments=False,
                                              overrides=overrides))
            except Exception:        # a block that refuses the marker values computes with them
                return None
            for name, literal in marks.items():
                text = re.sub(rf"(?<![\w.]){re.escape(literal)}(?![\w.])", name, text)
            texts.append(text)
        forward = texts[0].split("    def forward", 1)[-1]
        leaked = [d for d in symbolic if re.search(rf"\b{d.name}\b", forward)]
        if texts[0] == texts[1] and not leaked:
            return texts[0].splitlines(), symbolic
        if not leaked:
            return None
        symbolic = [d for d in symbolic if d not in leaked]     # those the forward uses keep their values
    return None


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
    if any(analysis.params[n].get("trainable") is False for n in compute):
        return None                      # frozen blocks are named in a class of their own
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
                 doc: str, comments: bool, overrides: dict[str, dict] | None = None) -> list[str]:
    """The lines of one nn.Module class for `graph` (its name is info.class_name); fills info's maps.
    `overrides`: parameter values written in place of a block's own (see _template)."""
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
    frozen: list[str] = []          # blocks whose weights do not train (issue #19)
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
            emit = block.emit({**params, **overrides[node_id]} if overrides and node_id in overrides else params, ins)
        classes.helpers.update(emit.helpers)
        attr = idents[node_id]
        if emit.init is not None:
            info.attrs[node_id] = attr
            init_lines += wrap_call("        ", f"self.{attr} = ", emit.init)
            init_lines += [f"        {line.format(self='self.' + attr)}" for line in emit.extra_init]
            if params.get("trainable") is False:
                frozen.append(attr)
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
    lines += _frozen_lines(frozen)
    lines += ["", signature]
    lines += forward_lines
    return lines


def _frozen_lines(frozen: list[str]) -> list[str]:
    """Frozen blocks: no gradient for their weights, and evaluation mode whatever mode the model is
    put in (their BatchNorm statistics and dropout stay fixed), as Keras' trainable=False."""
    if not frozen:
        return []
    names = "(" + ", ".join(f"self.{a}" for a in frozen) + ("," if len(frozen) == 1 else "") + ")"
    loop = f"for block in {names}:"
    if len(loop) + 8 > MAX_LINE:
        loop = "for block in [\n" + "".join(f"            self.{a},\n" for a in frozen) + "        ]:"
    lines = ["        # frozen: these blocks keep their weights while the rest trains",
             f"        {loop}", "            block.requires_grad_(False)", "",
             "    def train(self, mode: bool = True):",
             '        """Frozen blocks stay in evaluation mode (their BatchNorm statistics fixed)."""',
             "        super().train(mode)",
             f"        {loop}",
             "            block.eval()",
             "        return self"]
    return "\n".join(lines).splitlines()
