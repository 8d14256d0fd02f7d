"""Shape inference and validation: graph -> per-node shapes, parameter counts, diagnostics.

`analyse` never raises on a graph a user can draw or a file a user can open: every
problem becomes a Diagnostic that names the node and says how to fix it. It is cheap
enough to run on every edit.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import networkx as nx

from .blocks import REGISTRY, TOKENS, ParamError, Ports, ShapeError, TensorSpec, fix_candidates
from .blocks.module import MODULE
from .graph import Graph, GraphError
from .modules import MAX_DEPTH, concrete, recursive
from .modules import ports as module_ports

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Diagnostic:
    node_id: str | None
    severity: str
    kind: str
    message: str

    def to_dict(self) -> dict:
        return {"node": self.node_id, "severity": self.severity, "kind": self.kind, "message": self.message}


@dataclass
class Analysis:
    order: list[str] = field(default_factory=list)             # deterministic topological order
    specs: dict[str, TensorSpec] = field(default_factory=dict)  # node id -> output tensor
    params: dict[str, dict] = field(default_factory=dict)       # node id -> validated params
    param_counts: dict[str, int] = field(default_factory=dict)
    frozen_counts: dict[str, int] = field(default_factory=dict)  # node id -> its weights that do not train
    diagnostics: list[Diagnostic] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    live: set[str] = field(default_factory=set)                 # nodes that reach an Output
    # a Module instance's node id -> the analysis of its definition for each repeat, with the instance's shapes
    modules: dict[str, list[Analysis]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def total_params(self) -> int:
        return sum(n for node_id, n in self.param_counts.items() if node_id in self.live)

    @property
    def frozen_params(self) -> int:
        """Weights of frozen blocks (and of frozen blocks inside modules): they do not train."""
        return sum(n for node_id, n in self.frozen_counts.items() if node_id in self.live)

    @property
    def trainable_params(self) -> int:
        return self.total_params - self.frozen_params

    def for_node(self, node_id: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.node_id == node_id]

    def inputs_of(self, graph: Graph, node_id: str) -> list[str]:
        """The nodes wired into `node_id`, in port order."""
        ports = graph.inputs_of(node_id)
        return [ports[k] for k in sorted(ports)]


def label(graph: Graph, node_id: str) -> str:
    node = graph.node(node_id)
    return f"{node.type} '{node.name}'"


def analyse(graph: Graph, modules: dict[str, Graph] | None = None, _depth: int = 0,
            _cache: dict | None = None) -> Analysis:
    """Check `graph` and infer every block's output shape. `modules`: the module definitions that
    Module instances name (default: the graph's own, `graph.modules`; a definition being edited is
    analysed with its project's)."""
    modules = graph.modules if modules is None else modules
    cache = {} if _cache is None else _cache
    result = Analysis()
    diag = result.diagnostics
    g = graph.nx
    index = {node_id: i for i, node_id in enumerate(g.nodes)}

    def add(node_id, severity, kind, message):
        diag.append(Diagnostic(node_id, severity, kind, message))

    # 1. block types and parameter values
    for node in graph.nodes():
        block = REGISTRY.get(node.type)
        if block is None:
            add(node.id, ERROR, "unknown-block",
                f"'{node.name}' has the unknown block type {node.type[:40]!r}: delete it or replace it "
                "with a block from the palette")
            continue
        try:
            result.params[node.id] = block.validate_params(node.params)
        except ParamError as exc:
            add(node.id, ERROR, "invalid-param", f"{node.type} '{node.name}': {exc}")
        if node.type == "Input":
            result.inputs.append(node.id)
        elif node.type == "Output":
            result.outputs.append(node.id)

    if not result.inputs:
        add(None, ERROR, "no-input", "the graph has no Input block: add one and wire it into the first layer")
    if not result.outputs:
        sinks = [n for n in g.nodes if g.out_degree(n) == 0 and n in result.params]
        hint = f" after {label(graph, sinks[0])}" if sinks else ""
        add(None, ERROR, "no-output", f"the graph has no Output block: add one{hint} to mark what the model returns")

    # 2. cycles
    in_cycle: set[str] = set()
    result.order = topological_order(g, index)
    if len(result.order) < len(index):
        for component in nx.strongly_connected_components(g):
            if len(component) > 1 or any(g.has_edge(n, n) for n in component):
                names = ", ".join(sorted(graph.node(n).name for n in component))
                for node_id in sorted(component, key=index.get):
                    add(node_id, ERROR, "cycle",
                        f"{label(graph, node_id)} is part of a cycle ({names}): remove one of its wires")
                in_cycle |= component
        result.order = topological_order(g, index, exclude=in_cycle)

    # 3. ports
    port_ok: set[str] = set()
    for node_id in result.order:
        node = graph.node(node_id)
        block = REGISTRY.get(node.type)
        if block is None:
            continue
        ports = block.ports_for(result.params.get(node_id) or block.defaults())
        wired = graph.inputs_of(node_id)
        ok = True
        if node.type == MODULE and node_id in result.params:
            problem = _module_problem(node, result.params[node_id], modules, cache, _depth)
            if problem:
                add(node_id, ERROR, "module", f"{label(graph, node_id)} {problem}")
                continue
            count = len(module_ports(modules[result.params[node_id]["module"]])[0])
            ports = Ports(tuple(f"in {k + 1}" for k in range(count)))
        if ports.variadic:
            if len(wired) < ports.min_count:
                add(node_id, ERROR, "port-arity",
                    f"{label(graph, node_id)} needs at least {ports.min_count} inputs but has {len(wired)}: "
                    "wire more blocks into it")
                ok = False
            elif ports.max_count is not None and len(wired) > ports.max_count:
                add(node_id, ERROR, "port-arity",
                    f"{label(graph, node_id)} takes at most {ports.max_count} inputs but has {len(wired)}")
                ok = False
        else:
            extra = sorted(k for k in wired if k >= ports.fixed)
            if extra:
                takes = "no inputs" if ports.fixed == 0 else f"{ports.fixed} input{'s' * (ports.fixed > 1)}"
                add(node_id, ERROR, "port-arity",
                    f"{label(graph, node_id)} takes {takes} but has a wire on input {extra[0] + 1}: remove it")
                ok = False
            missing = [k for k in range(ports.fixed) if k not in wired]
            if missing:
                what = "input" if ports.fixed == 1 else f"'{ports.names[missing[0]]}' input"
                add(node_id, ERROR, "unconnected-input",
                    f"{label(graph, node_id)} has no {what}: wire a block's output into it")
                ok = False
        if ok:
            port_ok.add(node_id)

    # 4. shapes, in topological order
    for node_id in result.order:
        if node_id not in port_ok or node_id not in result.params:
            continue
        node = graph.node(node_id)
        block = REGISTRY[node.type]
        sources = result.inputs_of(graph, node_id)
        if any(s not in result.specs for s in sources):
            continue  # an upstream problem is already reported
        ins = [result.specs[s] for s in sources]
        if not block.accepts_tokens:
            tokens = [s for s in sources if result.specs[s].dtype == TOKENS]
            if tokens:
                add(node_id, ERROR, "token-ids",
                    f"{label(graph, node_id)} receives token ids (int64) from '{graph.node(tokens[0]).name}': "
                    "insert an Embedding before it")
                continue
        params = result.params[node_id]
        try:
            if node.type == MODULE:
                inner = _module_analyses(params, ins, modules, _depth, cache)
                result.modules[node_id] = inner
                spec = inner[-1].specs[inner[-1].outputs[0]]
                count = sum(a.total_params for a in inner)
            else:
                spec = block.infer(params, ins)
                count = None
            if any(d < 1 for d in spec.shape):
                raise ShapeError(f"would output the empty shape {spec}", kind="shape")
            result.specs[node_id] = spec
            result.param_counts[node_id] = block.count_params(params, ins) if count is None else count
            if params.get("trainable") is False:
                result.frozen_counts[node_id] = result.param_counts[node_id]
            elif node.type == MODULE:
                result.frozen_counts[node_id] = sum(a.frozen_params for a in inner)
        except ShapeError as exc:
            kind = {"rank": "shape", "merge": "merge-shape", "kernel": "kernel-too-large"}.get(exc.kind, exc.kind)
            add(node_id, ERROR, kind, f"{label(graph, node_id)} {exc}")
        except Exception as exc:  # a declaration bug must not take the designer down
            add(node_id, ERROR, "internal", f"{label(graph, node_id)} could not be analysed: {exc}")

    # 5. what reaches an Output; what is left dangling
    live = set(result.outputs)
    for out in result.outputs:
        live |= nx.ancestors(g, out)
    result.live = live
    if result.outputs:
        for node_id in result.order:
            if node_id not in live:
                add(node_id, WARNING, "dangling",
                    f"{label(graph, node_id)} does not lead to any Output, so it is ignored: wire it onward "
                    "or delete it")

    # 6. advice that is not an error, as each block declares it
    for node_id, params in result.params.items():
        block = REGISTRY[graph.node(node_id).type]
        sources = result.inputs_of(graph, node_id)
        ins = [result.specs[s] for s in sources] if all(s in result.specs for s in sources) else []
        try:
            advice = list(block.advice(params, ins)) + _module_advice(result.modules.get(node_id))
        except Exception as exc:  # a declaration bug must not take the designer down
            advice = [("internal", f"could not be advised on: {exc}")]
        for kind, message in advice:
            add(node_id, WARNING, kind, f"{label(graph, node_id)}: {message}")
    return result


# ----------------------------------------------------------------------------- modules

def _module_problem(node, params: dict, modules: dict[str, Graph], cache: dict, depth: int) -> str:
    """Why an instance cannot be analysed at all (no such module, one that contains itself, ...), or ""."""
    name = params["module"]
    if name not in modules:
        known = f" (this project has {', '.join(sorted(modules)[:6])})" if modules else ""
        return f"names the module '{name}', which this project does not define{known}: choose another or delete it"
    if "recursive" not in cache:
        cache["recursive"] = recursive(modules)
    if name in cache["recursive"]:
        return f"uses the module '{name}', which contains itself: a module cannot hold an instance of itself"
    if depth >= MAX_DEPTH:
        return f"nests modules more than {MAX_DEPTH} deep"
    inputs, outputs = module_ports(modules[name])
    if len(outputs) != 1 or not inputs:
        return (f"uses the module '{name}', which has {len(inputs)} Input(s) and {len(outputs)} Output(s): a module "
                "needs at least one Input and exactly one Output")
    if params["repeat"] > 1 and len(inputs) != 1:
        return f"repeats the module '{name}', which takes {len(inputs)} inputs: only a one-input module can repeat"
    return ""


def _module_analyses(params: dict, ins: list[TensorSpec], modules: dict[str, Graph], depth: int,
                     cache: dict) -> list[Analysis]:
    """The definition analysed with the instance's input shapes, once per repeat (each repeat takes
    the previous one's output). Raises ShapeError naming the first problem inside."""
    name = params["module"]
    out: list[Analysis] = []
    specs = list(ins)
    args = params.get("args") or {}
    for step in range(params["repeat"]):
        key = (name, id(modules[name]), tuple(specs), tuple(sorted(args.items())))
        inner = cache.get(key)
        if inner is None:
            inner = analyse(concrete(modules[name], specs, args, modules), modules, depth + 1, cache)
            cache[key] = inner
        if inner.errors:
            first = inner.errors[0]
            where = f" (repeat {step + 1})" if params["repeat"] > 1 else ""
            raise ShapeError(f"inside module '{name}'{where}: {first.message}", kind="module")
        out.append(inner)
        specs = [inner.specs[inner.outputs[0]]]
    return out


def _module_advice(inner: list[Analysis] | None) -> list[tuple[str, str]]:
    """An instance passes on the first warning inside its module (the problems list shows it at the instance)."""
    if not inner or not inner[0].warnings:
        return []
    return [("module", f"inside its module: {inner[0].warnings[0].message}")]


def token_bounds(graph: Graph, analysis: Analysis, input_id: str) -> list[tuple[str, int]]:
    """(name, bound) of every block wired to a token Input that limits its ids (an Embedding's
    num_embeddings, as the block declares it), in wiring order."""
    found = []
    for consumer, _ in graph.consumers_of(input_id):
        block = REGISTRY.get(graph.node(consumer).type)
        if block is None or consumer not in analysis.params:
            continue
        bound = block.token_bound(analysis.params[consumer])
        if bound is not None:
            found.append((graph.node(consumer).name, bound))
    return found


def token_bound(graph: Graph, analysis: Analysis, input_id: str) -> tuple[str, int] | None:
    """The first of token_bounds(), or None."""
    bounds = token_bounds(graph, analysis, input_id)
    return bounds[0] if bounds else None


@dataclass
class WireFix:
    """A block that could sit on a wire: what it would give, and whether the wire's end then fits."""
    type_name: str
    params: dict
    label: str          # "Insert Flatten: (8, 4, 4) → (128,) → (10,)"
    fits: bool


def wire_fixes(graph: Graph, analysis: Analysis, src: str, dst: str, port: int) -> list[WireFix]:
    """The blocks that could sit on the wire src -> dst:port, as the blocks declare them (Block.fixes),
    each tried in a copy of the graph; labelled with the shapes it would give."""
    spec = analysis.specs.get(src)
    if spec is None:
        return []
    others = [analysis.specs[s] for p, s in graph.inputs_of(dst).items() if p != port and s in analysis.specs]
    wanted = others[0].shape[-1] if others else None      # a merge's other input: the width to match
    fixes = []
    for type_name, params in fix_candidates(spec, wanted):
        trial = graph.copy()
        node_id = trial.add_node(type_name, params=params)
        try:
            trial.disconnect(src, dst, port)
            trial.connect(src, node_id, 0)
            trial.connect(node_id, dst, port)
        except GraphError:
            continue
        result = analyse(trial)
        out = result.specs.get(node_id)
        if out is None:
            continue
        fits = not [d for d in result.for_node(dst) if d.severity == "error"]
        after = result.specs.get(dst)
        label = f"Insert {type_name}: {spec} → {out}" + (f" → {after}" if after is not None else "")
        fixes.append(WireFix(type_name, params, label + ("" if fits else "  (still mismatched)"), fits))
    return fixes


def topological_order(g: nx.MultiDiGraph, index: dict[str, int], exclude: set[str] = frozenset()) -> list[str]:
    """Kahn's algorithm, ties broken by insertion order, so the order is deterministic. Nodes
    on a cycle (or in `exclude`) and nodes downstream of them through a cycle are left out."""
    pred, succ = g._pred, g._succ
    indegree = {n: sum(len(keys) for u, keys in pred[n].items() if u not in exclude)
                for n in index if n not in exclude}
    ready = [index[n] for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    names = list(index)
    order = []
    while ready:
        node = names[heapq.heappop(ready)]
        order.append(node)
        for v, keys in succ[node].items():
            if v in indegree:
                indegree[v] -= len(keys)
                if indegree[v] == 0:
                    heapq.heappush(ready, index[v])
    return order


def output_activation(graph: Graph, analysis: Analysis, output_id: str) -> str | None:
    """'softmax' or 'sigmoid' when the block feeding an Output ends in one, else None.

    The training loss uses this so a final Softmax/Sigmoid is never applied twice."""
    sources = analysis.inputs_of(graph, output_id)
    if not sources:
        return None
    node = graph.node(sources[0])
    params = analysis.params.get(node.id, {})
    if node.type == "Activation":
        act = params.get("function")
    else:
        act = params.get("activation")
    return act if act in ("softmax", "sigmoid") else None
