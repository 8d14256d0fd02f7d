"""Keeping the source model's module hierarchy (issue #17): the flat translation's blocks grouped into modules.

Every fx node carries the module path and class of each call it runs in (`nn_module_stack`); every block
remembers the fx node it came from (GraphBuilder.origins). Each submodule's blocks are grouped, innermost first,
into a module definition named after its class (a Sequential or ModuleList after its attribute: `layer1` ->
Layer1) and an instance named after its attribute (`conv1`, or `0` inside a Sequential); structurally identical
definitions (the same blocks, names, parameters and wiring) are one. The blocks inside a definition take their
attribute paths relative to it as names, so the generated code's attribute paths, and with them the state-dict
keys, are the source's (`layer1.0.downsample.0.weight`: codegen writes a chain of blocks named 0, 1, ... as
nn.Sequential).

A submodule that cannot be a module (two tensors leave it, nothing enters it, it interleaves with others) is left
open: its blocks (and its grouped children) join the module around it. The caller keeps the flat graph as the
fallback when the grouped one fails in any way (its output check included).
"""
from __future__ import annotations

import json
import re
from typing import Any

import torch.fx as fx
from torch import nn

from ...blocks import REGISTRY
from ...blocks.module import MODULE
from ...graph import Graph, GraphError, layered_layout
from ...modules import NESTED, group, target_value
from ...naming import to_class_name
from ..common import GraphBuilder

CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")
Scope = tuple[str, ...]        # the keys of the module calls from the root down to one


class Node:
    """One module call (or container) of the tree: its path, class, and what lies directly in it."""

    def __init__(self, key: Scope, path: str, cls: str):
        self.key, self.path, self.cls = key, path, cls
        self.members: list[str] = []     # graph node ids: blocks, and the instances of grouped children


def _class_name(cls: Any) -> str:
    if isinstance(cls, type):
        return cls.__name__
    return str(cls).rsplit(".", 1)[-1].strip("'>")


def scope_of(n: Any, root: nn.Module) -> list[tuple[str, str, str]]:
    """(key, path, class name) of each module call the fx node `n` runs in, outermost first; a container that
    is never called itself (a ModuleList iterated in forward) is added where its children are."""
    if not isinstance(n, fx.Node):
        return []
    stack = list((n.meta.get("nn_module_stack") or {}).items())
    if n.op == "call_module" and stack and stack[-1][1][0] == n.target:
        stack = stack[:-1]                      # the called module is the block itself
    chain: list[tuple[str, str, str]] = []
    previous = ""
    for key, value in stack:
        path, cls = value[0], value[1]
        if not isinstance(path, str) or not path:
            return []
        if previous and not path.startswith(previous + "."):
            return []
        parts, done = path.split("."), len(previous.split(".")) if previous else 0
        for j in range(done + 1, len(parts)):
            between = ".".join(parts[:j])
            try:
                chain.append((between, between, type(root.get_submodule(between)).__name__))
            except AttributeError:
                return []
        chain.append((key, path, _class_name(cls)))
        previous = path
    return chain


def relative(path: str, base: str) -> str:
    """`path` below `base`, as a block's name (layer1.0.conv1 under layer1 -> 0_conv1)."""
    if base and path.startswith(base + "."):
        path = path[len(base) + 1:]
    return path.replace(".", "_")


def group_modules(b: GraphBuilder, root: nn.Module) -> tuple[Graph, dict[str, tuple]] | None:
    """(a copy of the builder's graph with its submodules grouped into modules, each weighted block's node
    ids from the top-level graph down to it), or None when no submodule becomes a module."""
    graph = b.graph.copy()
    tree: dict[Scope, Node] = {(): Node((), "", "")}
    home: dict[str, Scope] = {}
    for node in graph.nodes():
        chain = scope_of(b.origins.get(node.id), root)
        key: Scope = ()
        for k, path, cls in chain:
            key = key + (k,)
            tree.setdefault(key, Node(key, path, cls))
        home[node.id] = key
        tree[key].members.append(node.id)
    if len(tree) == 1:
        return None

    specs = dict(b.specs)
    places: dict[str, tuple] = {n: (n,) for n in b.node_weights}
    paths: dict[str, str] = {}           # an instance's node id -> the module path it stands for
    canonical: dict[str, str] = {}       # a definition's structure -> its name
    grouped = 0
    top = to_class_name(graph.name)
    single: dict[str, str] = {}          # a block that is all one module call made: that module's path
    made: dict[Any, list[str]] = {}
    for node_id, origin in b.origins.items():
        made.setdefault(origin, []).append(node_id)
    for origin, blocks in made.items():
        if len(blocks) == 1 and isinstance(origin, fx.Node) and origin.op == "call_module":
            single[blocks[0]] = str(origin.target)
    order = sorted(tree, key=lambda k: -len(k))     # innermost first; siblings in the order they run
    for key in order:
        if not key:
            break
        node = tree[key]
        parent = tree[key[:-1]]
        members = [n for n in graph.node_ids() if n in set(node.members)]
        if not members:
            continue
        base = to_class_name(node.path.rsplit(".", 1)[-1], "Module") if node.cls in CONTAINERS else node.cls
        name = graph.module_name(base)
        if name == top:                             # the model's own class keeps its name
            name = graph.module_name(base + "_2")
        try:
            done = group(graph, members, specs, name)
        except GraphError:
            parent.members.extend(members)          # left open: its blocks join the module around it
            continue
        grouped += 1
        instance, definition = done.node_id, graph.modules[done.module]
        inside = set(members)
        for block, place in places.items():
            if place[0] in inside:
                places[block] = (instance,) + place
        _name_blocks(definition, node.path, b, paths, single)
        last = definition.inputs_of([n.id for n in definition.nodes() if n.type == "Output"][0])[0]
        specs[instance] = specs[last]               # what leaves the module
        name = _deduplicate(graph, done.module, base, canonical, instance, places)
        _repeat(graph, name, instance, places, canonical)
        paths[instance] = node.path
        parent.members.append(instance)
    if not grouped:
        return None
    _share_arguments(graph)
    _name_top(graph, b, paths)
    for definition in graph.modules.values():
        for node_id, pos in layered_layout(definition).items():
            definition.move(node_id, pos)
    return graph, places


def _name_blocks(definition: Graph, path: str, b: GraphBuilder, paths: dict[str, str],
                 single: dict[str, str]) -> None:
    """Name each block of a new definition as its attribute is named in the source module `path`: the blocks
    with weights (and module instances) first, so that a free name is theirs."""
    prefix = path.replace(".", "_") + "_"
    wanted: dict[str, str] = {}
    for node in definition.nodes():
        if node.id in paths:
            wanted[node.id] = relative(paths[node.id], path)
        elif node.id in single:
            wanted[node.id] = relative(single[node.id], path)
        elif node.type not in ("Input", "Output"):
            name = b.requested.get(node.id, node.name)
            wanted[node.id] = name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else name
    for i, node in enumerate(definition.nodes()):
        definition.rename(node.id, f"tmp {i}")
    first = [n.id for n in definition.nodes() if n.id in wanted and (n.id in paths or n.id in b.node_weights)]
    rest = [n.id for n in definition.nodes() if n.id in wanted and n.id not in first]
    for node_id in first + rest:
        definition.rename(node_id, wanted[node_id])
    inputs = [n.id for n in definition.nodes() if n.type == "Input"]
    for k, node_id in enumerate(inputs):
        definition.rename(node_id, "inputs" if len(inputs) == 1 else f"in_{k}")
    for node in definition.nodes():
        if node.type == "Output":
            definition.rename(node.id, "out")


def _structure(definition: Graph, base: str) -> str:
    """What makes two definitions one: their class, blocks (type, name, parameters, not an Input's shape) and
    wiring, by position."""
    nodes = definition.nodes()
    index = {n.id: i for i, n in enumerate(nodes)}
    blocks = [[n.type, n.name, {k: v for k, v in n.params.items() if not (n.type == "Input" and k == "shape")}]
              for n in nodes]
    wires = sorted((index[e.src], index[e.dst], e.port) for e in definition.edges())
    return json.dumps([base, blocks, wires], sort_keys=True, default=str)


NUMBERS = ("int", "size", "float")


def _numeric(node, key: str) -> bool:
    """A parameter whose value may differ between the instances of one definition (a module parameter)."""
    block = REGISTRY.get(node.type)
    param = block.param_index.get(key) if block is not None and node.type not in ("Input", MODULE) else None
    return param is not None and param.kind in NUMBERS


def _loose_structure(definition: Graph, base: str) -> str:
    """_structure with the numbers of the blocks' parameters left out: definitions alike but for them (a
    ResNet's blocks of other widths and strides) are one definition with module parameters."""
    nodes = definition.nodes()
    index = {n.id: i for i, n in enumerate(nodes)}
    blocks = [[n.type, n.name, {k: "#" if _numeric(n, k) or (n.type == MODULE and k == "args") else v
                                for k, v in n.params.items() if not (n.type == "Input" and k == "shape")}]
              for n in nodes]
    wires = sorted((index[e.src], index[e.dst], e.port) for e in definition.edges())
    return json.dumps([base, blocks, wires], sort_keys=True, default=str)


def _validated(node, key: str, value):
    try:
        return REGISTRY[node.type].param_index[key].validate(value)
    except Exception:       # a value analysis will refuse: compared as it is
        return value


def _deduplicate(graph: Graph, name: str, base: str, canonical: dict[str, str], instance: str,
                 places: dict[str, tuple]) -> str:
    """The definition's name, or that of an identical one found before (this one is then dropped and the
    instance names that one; the blocks' places follow, position for position). A definition alike but
    for numbers in its blocks' parameters is that one too: each number that differs becomes a parameter
    of the module (`conv1_filters`), which this instance gives."""
    definition = graph.modules[name]
    key = _structure(definition, base)
    same = canonical.get(key)
    args: dict = {}
    if same is None:
        loose = "~" + _loose_structure(definition, base)
        same = canonical.get(loose)
        if same is None:
            canonical[key] = name
            canonical[loose] = name
            return name
        args = _differences(definition, graph.modules[same], graph.modules)
    mine, theirs = definition.node_ids(), graph.modules[same].node_ids()
    moved = dict(zip(mine, theirs))
    for block, place in places.items():
        if place[0] == instance and len(place) > 1:
            places[block] = (instance, moved[place[1]]) + place[2:]
    graph.remove_module(name)
    graph.set_params(instance, {"module": same, "args": args})
    return same


def _given(node, modules: dict[str, Graph]) -> dict:
    """What a module instance gives its module's parameters: its own values, else the defaults."""
    from ...modules import declared

    definition = modules.get(node.params.get("module"))
    out = {d.name: (list(d.default) if isinstance(d.default, tuple) else d.default)
           for d in (declared(definition, modules) if definition is not None else [])}
    out.update(node.params.get("args") or {})
    return out


def _differences(mine: Graph, target: Graph, modules: dict[str, Graph]) -> dict:
    """The module parameters `target` needs to be `mine` (declared on `target` as they first differ, one per
    block parameter, or per parameter of a module instance inside: `args.filters`; their defaults are
    `target`'s own values), and the values `mine` gives them."""
    owner = {t: name for name, targets in target.arguments.items() for t in targets}
    args: dict = {}
    for a, t in zip(mine.nodes(), target.nodes()):
        if a.type == MODULE:
            theirs = _given(t, modules)
            for k, v in _given(a, modules).items():
                if json.dumps(v) != json.dumps(theirs.get(k)):
                    _declare(target, owner, t, f"args.{k}", args, v)
            continue
        for k, v in a.params.items():
            if not _numeric(a, k) or _validated(a, k, v) == _validated(t, k, t.params.get(k)):
                continue
            _declare(target, owner, t, k, args, v)
    return args


def _declare(target: Graph, owner: dict, t, k: str, args: dict, v) -> None:
    """The module parameter of `target` that sets `k` of its block `t` (declared if new), given `v`."""
    arg = owner.get((t.id, k))
    if arg is None:
        stem = re.sub(r"\W", "_", f"{t.name}_{k.replace('args.', '')}").lower()
        arg = stem if stem[:1].isalpha() else "b" + stem
        arg = arg[:32]
        while arg in target.arguments:
            arg = arg[:28] + f"_{len(target.arguments)}"
        target.set_argument(arg, [(t.id, k)])
        owner[(t.id, k)] = arg
    args[arg] = list(v) if isinstance(v, tuple) else v


def _share_arguments(graph: Graph) -> None:
    """Module parameters that every instance gives the same value (and that default alike) become one, named
    after the block parameter when it is the only one of its kind (`conv1_filters`, `conv2_filters` ->
    `filters`; `conv2_stride` -> `stride`)."""
    uses: dict[str, list] = {}
    for g in [graph, *graph.modules.values()]:
        for node in g.nodes():
            if node.type == MODULE:
                uses.setdefault(node.params.get("module"), []).append(node)
    for module, definition in graph.modules.items():
        declared = list(definition.arguments.items())
        if not declared:
            continue
        instances = uses.get(module, [])

        def current(arg: str):
            n, k = definition.arguments[arg][0]
            found = target_value(definition, n, k, graph.modules)
            return found[1] if found is not None else None

        def value(node, arg: str) -> str:
            """What `node` gives `arg`: its own value, else the default."""
            given = (node.params.get("args") or {}).get(arg)
            chosen = given if given is not None else current(arg)
            return json.dumps(list(chosen) if isinstance(chosen, tuple) else chosen, default=str)

        def kind_of(arg: str) -> str:
            return definition.arguments[arg][0][1].replace(NESTED, "")

        groups: dict[str, list[str]] = {}
        for arg, _targets in declared:
            default = current(arg)
            signature = json.dumps([value(i, arg) for i in instances]
                                   + [list(default) if isinstance(default, tuple) else default, kind_of(arg)],
                                   default=str)
            groups.setdefault(signature, []).append(arg)
        kinds: dict[str, int] = {}
        for args in groups.values():
            kinds[kind_of(args[0])] = kinds.get(kind_of(args[0]), 0) + 1
        renames: dict[str, str] = {}
        for args in groups.values():
            kind = kind_of(args[0])
            new = kind if kinds[kind] == 1 and re.fullmatch(r"[a-z][A-Za-z0-9_]{0,31}", kind) else args[0]
            targets = [t for a in args for t in definition.arguments[a]]
            for a in args:
                renames[a] = new
            for a in args:
                definition.arguments.pop(a, None)
            definition.arguments[new] = targets
        for node in instances:
            given = node.params.get("args") or {}
            if given:
                node.params["args"] = {renames.get(k, k): v for k, v in given.items()}
        for outer in graph.modules.values():      # parameters of modules around it that set these, by name
            for arg, targets in outer.arguments.items():
                outer.arguments[arg] = [
                    (n, NESTED + renames.get(k[len(NESTED):], k[len(NESTED):]))
                    if k.startswith(NESTED) and n in outer and outer.node(n).params.get("module") == module else (n, k)
                    for n, k in targets]


def _repeat(graph: Graph, name: str, instance: str, places: dict[str, tuple], canonical: dict[str, str]) -> None:
    """A Sequential of n instances of one module (named 0 .. n-1, in a chain) is that module repeated n times
    (codegen writes it as the same nn.Sequential)."""
    definition = graph.modules[name]
    inner = [n for n in definition.nodes() if n.type not in ("Input", "Output")]
    kinds = {(n.type, n.params.get("module"), n.params.get("repeat"), json.dumps(n.params.get("args") or {}))
             for n in inner}
    if not 2 <= len(inner) <= 256 or len(kinds) != 1 or next(iter(kinds))[0] != MODULE or next(iter(kinds))[2] != 1 \
            or [n.name for n in inner] != [str(k) for k in range(len(inner))]:
        return
    chain = [n.id for n in definition.nodes() if n.type == "Input"] + [n.id for n in inner] \
        + [n.id for n in definition.nodes() if n.type == "Output"]
    if any(definition.inputs_of(b) != {0: a} or len(definition.consumers_of(a)) != 1 for a, b in zip(chain, chain[1:])):
        return
    if sum(1 for g in [graph, *graph.modules.values()] for n in g.nodes()
           if n.type == MODULE and n.params.get("module") == name) != 1:
        return                                     # another instance uses the Sequential as it is
    step = {n.id: k for k, n in enumerate(inner)}
    for block, place in places.items():
        if place[0] == instance and len(place) > 2:
            places[block] = (instance, step[place[1]]) + place[2:]
    graph.set_params(instance, {"module": inner[0].params["module"], "repeat": len(inner),
                                "args": dict(inner[0].params.get("args") or {})})
    graph.remove_module(name)
    for key in [k for k, v in canonical.items() if v == name]:
        del canonical[key]


def _name_top(graph: Graph, b: GraphBuilder, paths: dict[str, str]) -> None:
    """The instances left in the top-level graph take their module's attribute path as name."""
    for node_id in [n for n in graph.node_ids() if n in paths]:
        graph.rename(node_id, f"tmp {node_id}")
    for node_id in [n for n in graph.node_ids() if n in paths]:
        graph.rename(node_id, re.sub(r"\W", "_", paths[node_id]) or "module")
