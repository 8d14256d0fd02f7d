"""Modules: named, reusable sub-graphs (issue #17).

A module definition is a Graph kept in the top-level graph's `modules`. Its Input blocks are the
module's input ports, in node order; its one Output is what it returns. A `Module` block instance
(engine/blocks/module.py) names a definition and a `repeat` count. This file holds what the
analysis, the code generator and the designer need of definitions:

    ports(definition)            the Input ids (ports, in order) and the Output id
    concrete(definition, specs, args)  a copy whose Inputs take these shapes and whose blocks take the
                                 instance's parameter values (how an instance is analysed)
    declared(definition)         the parameters it declares: name, the blocks they set, kind, default
    target_value(definition, node, param)  how one target's values are checked, and its value there
    bind(definition, args)       an instance's values, checked, as the block parameters they set
    used_names, reachable        the module names a graph's instances name; those and every module
                                 inside them; recursive: definitions that contain themselves
    group(graph, ids, ...)       the selected blocks become a new definition and one instance
    ungroup(graph, node_id)      an instance is replaced by the blocks of its definition
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .blocks import REGISTRY, TensorSpec
from .blocks.base import Param, ParamError, ShapeError
from .blocks.module import MODULE
from .graph import Edge, Graph, GraphError

MAX_DEPTH = 16          # modules inside modules, at most this deep


def ports(definition: Graph) -> tuple[list[str], list[str]]:
    """(the Input node ids in port order, the Output node ids)."""
    inputs = [n.id for n in definition.nodes() if n.type == "Input"]
    outputs = [n.id for n in definition.nodes() if n.type == "Output"]
    return inputs, outputs


def concrete(definition: Graph, specs: list[TensorSpec], args: dict | None = None,
             modules: dict[str, Graph] | None = None) -> Graph:
    """A copy of `definition` whose Inputs declare `specs` (shape and dtype), in port order, and
    whose blocks take the values `args` gives the module's parameters (see bind)."""
    copy = definition.copy()
    inputs, _ = ports(copy)
    for node_id, spec in zip(inputs, specs):
        copy.node(node_id).params.update(shape=list(spec.shape), dtype=spec.dtype)
    for node_id, values in bind(definition, args or {}, modules).items():
        copy.node(node_id).params.update(values)
    return copy


@dataclass(frozen=True)
class Declared:
    """One parameter a module declares: the block parameters it sets (blocks still in the module),
    how its values are checked (the first target's declaration) and its default (that block's value).
    A target may also be a parameter of a module instance inside (`args.NAME`: the value that
    instance gives its own module's parameter NAME)."""
    name: str
    targets: tuple[tuple[str, str], ...]
    param: Param
    default: object


NESTED = "args."      # a target that is an inner instance's module parameter: ("n4", "args.filters")


def target_value(definition: Graph, node_id: str, param: str, modules: dict[str, Graph] | None,
                 seen: frozenset = frozenset()) -> tuple[Param, object] | None:
    """(how a target's values are checked, its value in the definition), or None when it sets nothing
    (its block is gone, or it names no parameter)."""
    if node_id not in definition:
        return None
    node = definition.node(node_id)
    if node.type == MODULE and param.startswith(NESTED):
        inner = param[len(NESTED):]
        given = (node.params.get("args") or {}).get(inner)
        name = node.params.get("module")
        if modules is not None and name in modules and name not in seen:
            found = next((d for d in declared(modules[name], modules, seen | {name}) if d.name == inner), None)
            if found is None:
                return None
            spec = dataclasses.replace(found.param, name=inner)
            return spec, spec.validate(list(given) if isinstance(given, tuple) else given) \
                if given is not None else found.default
        if given is None:         # without the definitions: checked as the number(s) it holds
            return None
        kind = "ints" if isinstance(given, (list, tuple)) else "float" if isinstance(given, float) else "int"
        spec = Param(inner, kind, given)
        return spec, spec.validate(given)
    if node.type not in REGISTRY or param not in REGISTRY[node.type].param_index:
        return None
    spec = REGISTRY[node.type].param_index[param]
    try:
        return spec, spec.validate(node.params.get(param, spec.default))
    except ParamError:
        return spec, spec.default


def declared(definition: Graph, modules: dict[str, Graph] | None = None,
             _seen: frozenset = frozenset()) -> list[Declared]:
    """The parameters `definition` declares that still set something, in declaration order. `modules`:
    the definitions its instances name (to check what a parameter gives an instance inside)."""
    out = []
    for name, targets in definition.arguments.items():
        found = [(t, target_value(definition, t[0], t[1], modules, _seen | {definition.name})) for t in targets]
        live = tuple(t for t, spec in found if spec is not None)
        if live:
            spec, default = next(spec for _, spec in found if spec is not None)
            out.append(Declared(name, live, spec, default))
    return out


def bind(definition: Graph, args: dict, modules: dict[str, Graph] | None = None) -> dict[str, dict]:
    """node id -> {parameter: value} for an instance's `args` (an inner instance's target: its whole
    `args`, with the value set). Raises ShapeError (kind "module") naming a parameter the module does
    not declare, or a value its block would refuse."""
    known = {d.name: d for d in declared(definition, modules)}
    out: dict[str, dict] = {}
    for key, value in args.items():
        if key not in known:
            have = f"it declares {', '.join(known)}" if known else "it declares none"
            raise ShapeError(f"module '{definition.name}' has no parameter '{key}' ({have})", kind="module")
        d = known[key]
        for node_id, param in d.targets:
            spec, _ = target_value(definition, node_id, param, modules, frozenset({definition.name}))
            try:
                clean = spec.validate(list(value) if isinstance(value, tuple) else value)
            except ParamError as exc:
                raise ShapeError(f"module parameter '{key}': {exc}", kind="module") from None
            if param.startswith(NESTED):
                inner = out.setdefault(node_id, {}).setdefault(
                    "args", dict(definition.node(node_id).params.get("args") or {}))
                inner[param[len(NESTED):]] = list(clean) if isinstance(clean, tuple) else clean
            else:
                out.setdefault(node_id, {})[param] = clean
    return out


def used_names(graph: Graph) -> list[str]:
    """The module names the instances in `graph` name, in node order, each once."""
    names: list[str] = []
    for node in graph.nodes():
        if node.type == MODULE:
            name = node.params.get("module")
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def reachable(names: list[str], modules: dict[str, Graph]) -> list[str]:
    """The modules `names` and every module inside them, at any depth (each once; names the
    project does not define are left out)."""
    found: list[str] = []
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in modules and name not in found:
            found.append(name)
            stack.extend(used_names(modules[name]))
    return found


def recursive(modules: dict[str, Graph]) -> set[str]:
    """The definitions that contain themselves, directly or through other modules."""
    return {name for name in modules if name in reachable(used_names(modules[name]), modules)}


# ----------------------------------------------------------------------------- group / ungroup

@dataclass
class Grouped:
    """What `group` did, for undo: the new instance, the definition's name, and what it replaced."""
    node_id: str
    module: str
    removed: list[dict]                 # the removed nodes' dicts, in their order, with their index
    removed_edges: list[Edge]
    added_edges: list[Edge]


def group(graph: Graph, node_ids: list[str], specs: dict[str, TensorSpec], name: str = "Module",
          node_id: str | None = None) -> Grouped:
    """Replace the blocks `node_ids` of `graph` by one instance of a new module holding them.

    Each outside tensor that feeds the selection becomes an Input of the module (in the order the
    selection first uses them); the one block whose output leaves the selection feeds its Output.
    `specs`: the analysis' output shapes (the Inputs declare the shapes the outside gives).
    Raises GraphError when the selection cannot be a module, saying why."""
    chosen = [n for n in graph.node_ids() if n in set(node_ids)]
    if not chosen:
        raise GraphError("select the blocks to group into a module")
    for n in chosen:
        if graph.node(n).type in ("Input", "Output"):
            raise GraphError(f"{graph.node(n).type} '{graph.node(n).name}' is the model's own: leave Inputs and "
                             "Outputs out of the selection")
    inside = set(chosen)
    sources: list[str] = []                       # outside tensors the selection reads, in order of use
    for n in chosen:
        for port in sorted(graph.inputs_of(n)):
            src = graph.inputs_of(n)[port]
            if src not in inside and src not in sources:
                sources.append(src)
    leaving = [n for n in chosen if any(dst not in inside for dst, _ in graph.consumers_of(n))]
    if len(leaving) != 1:
        what = "nothing leaves it" if not leaving else \
            f"{len(leaving)} blocks send tensors out of it ({', '.join(graph.node(n).name for n in leaving[:4])})"
        raise GraphError(f"a module returns one tensor, but {what}: select the blocks up to the one whose output "
                         "goes on")
    if not sources:
        raise GraphError("nothing feeds the selection: a module needs at least one input")
    missing = [s for s in sources if s not in specs]
    if missing:
        raise GraphError(f"the shape of '{graph.node(missing[0]).name}' is not known: fix the graph's errors first")
    for s in sources:
        for inner in chosen:
            if graph.would_cycle(s, inner):       # s is reached from inside: the module would feed itself
                raise GraphError(f"'{graph.node(s).name}' both reads from and feeds the selection: a module "
                                 "cannot wrap around a block outside it")

    # the definition: Inputs, copies of the blocks (same ids and names), the Output
    definition = Graph(name)
    xs = [graph.node(n).pos[0] for n in chosen]
    ys = [graph.node(n).pos[1] for n in chosen]
    left, mid = min(xs), (min(ys) + max(ys)) / 2
    port_of: dict[str, str] = {}

    def fresh() -> str:                           # an id none of the selected blocks has (they keep theirs)
        found = definition.new_id()
        while found in inside:
            found = definition.new_id()
        return found

    for k, src in enumerate(sources):
        spec = specs[src]
        port_of[src] = definition.add_node("Input", f"in_{k}" if len(sources) > 1 else "x",
                                           {"shape": list(spec.shape), "dtype": spec.dtype},
                                           (left - 280.0, mid + 140.0 * (k - (len(sources) - 1) / 2)),
                                           node_id=fresh())
    for n in chosen:
        node = graph.node(n)
        definition.add_node(node.type, node.name, dict(node.params), node.pos, node_id=n)
    for n in chosen:
        for port, src in sorted(graph.inputs_of(n).items()):
            definition.connect(port_of.get(src, src), n, port)
    out = definition.add_node("Output", "out", {}, (max(xs) + 280.0, graph.node(leaving[0]).pos[1]), node_id=fresh())
    definition.connect(leaving[0], out)
    module = graph.module_name(name)
    graph.add_module(module, definition)

    # the graph: the blocks out, one instance in, rewired
    removed = [dict(graph.node(n).to_dict(), index=graph.index_of(n)) for n in chosen]
    removed_edges = [e for e in graph.edges() if e.src in inside or e.dst in inside]
    consumers = [(dst, port) for dst, port in graph.consumers_of(leaving[0]) if dst not in inside]
    for n in chosen:
        graph.remove_node(n)
    instance = graph.add_node(MODULE, _instance_name(module), {"module": module, "repeat": 1},
                              ((min(xs) + max(xs)) / 2, mid), node_id=node_id)
    added = []
    for k, src in enumerate(sources):
        added.append(graph.connect(src, instance, k))
    for dst, port in consumers:
        added.append(graph.connect(instance, dst, port))
    return Grouped(instance, module, removed, removed_edges, added)


def _instance_name(module: str) -> str:
    """block_1 for BlockName: an instance's default name (graph.unique_name numbers it)."""
    snake = "".join(("_" + c.lower()) if c.isupper() else c for c in module).strip("_")
    return (snake or "module").replace("__", "_")[:48] + "_1"


@dataclass
class Ungrouped:
    """What `ungroup` did, for undo."""
    removed: dict                      # the instance's node dict, with its index
    removed_edges: list[Edge]
    added: list[str]                   # the blocks put in its place
    added_edges: list[Edge]


def ungroup(graph: Graph, node_id: str) -> Ungrouped:
    """Replace the instance `node_id` by the blocks of its definition (repeated `repeat` times),
    wired as the instance was, with the values the instance gives the module's parameters. The
    definition stays in the project."""
    node = graph.node(node_id)
    if node.type != MODULE:
        raise GraphError(f"'{node.name}' is not a module")
    name = node.params.get("module")
    if name not in graph.modules:
        raise GraphError(f"'{node.name}' names the module {name!r}, which this project does not define")
    definition = graph.modules[name]
    try:
        bound = bind(definition, node.params.get("args") or {}, graph.modules)
    except ShapeError as exc:
        raise GraphError(f"'{node.name}': {exc}") from None
    inputs, outputs = ports(definition)
    if len(outputs) != 1:
        raise GraphError(f"module {name!r} has {len(outputs)} Outputs; it needs one to be ungrouped")
    repeat = int(node.params.get("repeat", 1) or 1)
    if repeat > 1 and len(inputs) != 1:
        raise GraphError(f"module {name!r} takes {len(inputs)} inputs, so it cannot repeat")
    feeds = graph.inputs_of(node_id)
    consumers = graph.consumers_of(node_id)
    removed = dict(node.to_dict(), index=graph.index_of(node_id))
    removed_edges = [e for e in graph.edges() if node_id in (e.src, e.dst)]
    x0, y0 = node.pos
    dx = min((n.pos[0] for n in definition.nodes()), default=0.0)
    graph.remove_node(node_id)
    added: list[str] = []
    added_edges: list[Edge] = []
    current = [feeds.get(k) for k in range(len(inputs))]
    width = (max((n.pos[0] for n in definition.nodes()), default=0.0) - dx) + 280.0
    for step in range(repeat):
        ids: dict[str, str] = {}
        for inner in definition.nodes():
            if inner.type in ("Input", "Output"):
                continue
            ids[inner.id] = graph.add_node(inner.type, inner.name, {**inner.params, **bound.get(inner.id, {})},
                                           (x0 + inner.pos[0] - dx + step * width, y0 + inner.pos[1]))
            added.append(ids[inner.id])
        for edge in definition.edges():
            src = edge.src
            if src in inputs:
                src = current[inputs.index(src)]
                if src is None:
                    continue
            else:
                src = ids.get(src)
            if edge.dst in outputs or src is None:
                continue
            added_edges.append(graph.connect(src, ids[edge.dst], edge.port))
        last = definition.inputs_of(outputs[0]).get(0)
        result = current[inputs.index(last)] if last in inputs else ids.get(last)
        current = [result]
    for dst, port in consumers:
        if current[0] is not None:
            added_edges.append(graph.connect(current[0], dst, port))
    return Ungrouped(removed, removed_edges, added, added_edges)
