"""The model graph: blocks (nodes) wired output -> numbered input port (edges).

A small class over `networkx.MultiDiGraph`. Nodes carry a stable id, a unique
user-visible name, a block type, parameters and a canvas position. Every change goes
through these methods, which notify listeners (the designer's scene mirrors the graph
through them) with plain Python events.
"""
from __future__ import annotations

import copy
import json
import keyword
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import networkx as nx

from .blocks import REGISTRY

FORMAT_VERSION = 2        # 2: the graph may carry module definitions ("modules"); written only when it does
MAX_MODULES = 256
MAX_NODES = 20_000
MAX_NAME = 64
MAX_ARGUMENTS = 16        # parameters one module definition may declare
ARGUMENT = re.compile(r"[a-z][A-Za-z0-9_]{0,31}")


def clean_dataset(value: Any) -> str | None:
    """A graph's `dataset` as read from a file: one printable line of at most 4096 characters, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if text and len(text) <= 4096 and text.isprintable() else None


class GraphError(ValueError):
    """An edit that would make the graph invalid (a cycle, a taken port, an unknown node...)."""


class FormatError(ValueError):
    """A file that cannot be read as a Deepwire graph. The message is one clear line."""


@dataclass
class Node:
    id: str
    name: str
    type: str
    params: dict = field(default_factory=dict)
    pos: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "type": self.type,
                "params": _jsonable(self.params), "pos": [self.pos[0], self.pos[1]]}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    port: int

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "port": self.port}


Listener = Callable[[str, dict], None]


class Graph:
    """A model graph. Events sent to listeners: node_added, node_removed, node_renamed,
    params_changed, node_moved, edge_added, edge_removed, reset, modules_changed, arguments_changed.

    `modules`: the project's module definitions by name (issue #17), each a Graph of its own whose
    Inputs are the module's ports (in node order) and whose one Output is what it returns; a
    `Module` block instance names one. Only the top-level graph holds definitions (a definition's
    own `modules` stays empty; modules inside modules name definitions of the top level)."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.dataset: str | None = None   # the data it is meant to train on (a built-in's name or a path)
        self._g = nx.MultiDiGraph()
        self._names: set[str] = set()
        self._next_suffix: dict[str, int] = {}  # stem -> a suffix below which every stem_N is taken
        self._next_id = 1
        self._listeners: list[Listener] = []
        self.modules: dict[str, Graph] = {}
        # a module definition's declared parameters: name -> the (node id, parameter) pairs it sets;
        # an instance gives their values (its `args`), the blocks' own values are the defaults
        self.arguments: dict[str, list[tuple[str, str]]] = {}

    # -------------------------------------------------------------------- events
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: str, **payload: Any) -> None:
        for listener in list(self._listeners):
            listener(event, payload)

    # -------------------------------------------------------------------- queries
    @property
    def nx(self) -> nx.MultiDiGraph:
        """The underlying networkx graph (read it; edit through Graph's methods)."""
        return self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._g

    def node(self, node_id: str) -> Node:
        try:
            return self._g.nodes[node_id]["node"]
        except KeyError:
            raise GraphError(f"no node with id {node_id!r}") from None

    def nodes(self) -> list[Node]:
        return [data["node"] for _, data in self._g.nodes(data=True)]

    def node_ids(self) -> list[str]:
        return list(self._g.nodes)

    def edges(self) -> list[Edge]:
        return [Edge(u, v, k) for u, v, k in self._g.edges(keys=True)]

    def inputs_of(self, node_id: str) -> dict[int, str]:
        """Input port -> the node wired into it."""
        return {k: u for u, keys in self._g._pred[node_id].items() for k in keys}

    def consumers_of(self, node_id: str) -> list[tuple[str, int]]:
        return [(v, k) for v, keys in self._g._succ[node_id].items() for k in keys]

    def find(self, name: str) -> Node | None:
        for node in self.nodes():
            if node.name == name:
                return node
        return None

    def names(self) -> set[str]:
        return set(self._names)

    def would_cycle(self, src: str, dst: str) -> bool:
        """Whether wiring src -> dst closes a cycle: src is reachable from dst. A search forward from
        dst, so wiring into a block that feeds nothing yet (an importer's newest) costs nothing."""
        if src == dst:
            return True
        if src not in self._g or dst not in self._g:
            return False
        stack, seen = [dst], {dst}
        while stack:
            for nxt in self._g.successors(stack.pop()):
                if nxt == src:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    # -------------------------------------------------------------------- edits
    def new_id(self) -> str:
        while f"n{self._next_id}" in self._g:
            self._next_id += 1
        node_id = f"n{self._next_id}"
        self._next_id += 1
        return node_id

    def unique_name(self, base: str, exclude: str | None = None) -> str:
        """`base` if free, else the first free of base_1, base_2, ... (`base` without its own _N
        suffix; `exclude`'s current name counts as free). O(1): a counter per stem remembers how
        far the suffixes are known to be taken."""
        own = self.node(exclude).name if exclude is not None and exclude in self._g else None
        base = clean_name(base) or "node"
        if base not in self._names or base == own:
            return base
        stem = _SUFFIX.sub("", base) or base
        i = self._next_suffix.get(stem, 1)
        name = _suffixed(stem, i)
        while name in self._names and name != own:
            i += 1
            name = _suffixed(stem, i)
        self._next_suffix[stem] = i  # every stem_N with N < i is taken
        if own is not None and (m := _CANONICAL.search(own)) and int(m.group(1)) < i \
                and _suffixed(stem, int(m.group(1))) == own:
            return own  # the node's own name is the first free one
        return name

    def _take_name(self, name: str) -> None:
        self._names.add(name)

    def _free_name(self, name: str) -> None:
        """`name` is free again: a counter past its suffix steps back to it."""
        self._names.discard(name)
        m = _CANONICAL.search(name)
        if m is None or not self._next_suffix:
            return
        i, prefix = int(m.group(1)), name[:m.start()]
        stems = [prefix] if len(name) < MAX_NAME else [s for s in self._next_suffix if s.startswith(prefix)]
        for stem in stems:  # a name of MAX_NAME characters may be a longer stem's, cut short
            if self._next_suffix.get(stem, 0) > i and _suffixed(stem, i) == name:
                self._next_suffix[stem] = i

    def add_node(self, type_name: str, name: str | None = None, params: dict | None = None,
                 pos: tuple[float, float] = (0.0, 0.0), node_id: str | None = None, index: int | None = None) -> str:
        """Add a block; returns its id. `index` puts it at that place in the node order (undo of a
        delete restores the exact order, which decides ties in the generated code)."""
        block = REGISTRY.get(type_name)
        if block is None:
            raise GraphError(f"unknown block type {type_name!r}")
        if len(self) >= MAX_NODES:
            raise GraphError(f"a graph may have at most {MAX_NODES} nodes")
        if node_id is None:
            node_id = self.new_id()
        elif node_id in self._g:
            raise GraphError(f"node id {node_id!r} is taken")
        full = block.defaults()
        full.update(copy.deepcopy(params or {}))
        base = name if name is not None else f"{block.default_name or type_name.lower()}_1"
        node = Node(node_id, self.unique_name(base), type_name, full, (float(pos[0]), float(pos[1])))
        self._g.add_node(node_id, node=node)
        self._take_name(node.name)
        if index is not None and index < len(self._g) - 1:
            self._move_to(node_id, index)
        self._emit("node_added", node_id=node_id)
        return node_id

    def _move_to(self, node_id: str, index: int) -> None:
        """Put `node_id` at `index` in the node order, through networkx's public API: the graph
        is refilled in the new order, and every other order (each node's successors and
        predecessors, the keys between two nodes) stays as it was."""
        g = self._g
        order = [n for n in g if n != node_id]
        order.insert(max(index, 0), node_id)
        nodes = [(n, dict(g.nodes[n])) for n in order]
        edges = [(u, v, k, dict(g[u][v][k])) for u, v in _pair_order(g) for k in g[u][v]]
        attrs = dict(g.graph)
        g.clear()
        g.graph.update(attrs)
        g.add_nodes_from(nodes)
        g.add_edges_from(edges)

    def index_of(self, node_id: str) -> int:
        return list(self._g._node).index(node_id)

    def remove_node(self, node_id: str) -> None:
        self.node(node_id)
        for edge in [e for e in self.edges() if node_id in (e.src, e.dst)]:
            self.disconnect(edge.src, edge.dst, edge.port)
        self._free_name(self.node(node_id).name)
        self._g.remove_node(node_id)
        self._emit("node_removed", node_id=node_id)

    def rename(self, node_id: str, name: str) -> str:
        """Rename a node; returns the name given (made unique). Raises GraphError on an empty name."""
        node = self.node(node_id)
        if not clean_name(name):
            raise GraphError("a name needs at least one visible character")
        new = self.unique_name(name, exclude=node_id)
        if new != node.name:
            old, node.name = node.name, new
            self._free_name(old)
            self._take_name(new)
            self._emit("node_renamed", node_id=node_id, old=old, new=new)
        return new

    def set_params(self, node_id: str, params: dict) -> None:
        """Replace some parameters. Values are validated by analysis, not here, so a user may
        type a bad value and see the diagnostic rather than an exception."""
        node = self.node(node_id)
        old = dict(node.params)
        node.params.update(copy.deepcopy(params))
        self._emit("params_changed", node_id=node_id, old=old)

    def move(self, node_id: str, pos: tuple[float, float]) -> None:
        node = self.node(node_id)
        node.pos = (float(pos[0]), float(pos[1]))
        self._emit("node_moved", node_id=node_id)

    def connect(self, src: str, dst: str, port: int = 0) -> Edge:
        """Wire `src`'s output into input `port` of `dst`. Refuses cycles and taken ports."""
        self.node(src)
        self.node(dst)
        if not isinstance(port, int) or isinstance(port, bool) or port < 0:
            raise GraphError(f"port must be a whole number >= 0, not {port!r}")
        if self.would_cycle(src, dst):
            raise GraphError(f"wiring {self.node(src).name} into {self.node(dst).name} would make a cycle")
        if port in self.inputs_of(dst):
            raise GraphError(f"input {port} of {self.node(dst).name} is already connected")
        self._g.add_edge(src, dst, key=port)
        self._emit("edge_added", src=src, dst=dst, port=port)
        return Edge(src, dst, port)

    def disconnect(self, src: str, dst: str, port: int) -> None:
        if not self._g.has_edge(src, dst, key=port):
            raise GraphError("no such wire")
        self._g.remove_edge(src, dst, key=port)
        self._emit("edge_removed", src=src, dst=dst, port=port)

    def clear(self) -> None:
        self._g.clear()
        self._names.clear()
        self._next_suffix.clear()
        self._next_id = 1
        self.modules = {}
        self._emit("reset")

    # -------------------------------------------------------------------- module definitions
    def add_module(self, name: str, definition: Graph) -> None:
        """Add (or replace) the module definition `name`."""
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
            raise GraphError(f"a module's name is a letter, then letters, digits or _ (at most 64): {_short(name)}")
        if name not in self.modules and len(self.modules) >= MAX_MODULES:
            raise GraphError(f"a project may hold at most {MAX_MODULES} modules")
        definition.name = name
        definition.modules = {}
        self.modules[name] = definition
        self._emit("modules_changed", name=name)

    def remove_module(self, name: str) -> Graph:
        """Remove the definition `name` and return it (instances that name it then show an error)."""
        if name not in self.modules:
            raise GraphError(f"no module named {name!r}")
        definition = self.modules.pop(name)
        self._emit("modules_changed", name=name)
        return definition

    def set_argument(self, name: str, targets: list[tuple[str, str]] | None) -> None:
        """Declare (or, with targets None or empty, drop) this definition's parameter `name`: the
        block parameters it sets, as (node id, parameter name) pairs."""
        if not isinstance(name, str) or not ARGUMENT.fullmatch(name) or keyword.iskeyword(name) or name == "self":
            raise GraphError(f"a module parameter's name is a lowercase letter, then letters, digits or _ "
                             f"(and not a Python word): {_short(name)}")
        if targets:
            for node_id, param in targets:
                node = self.node(node_id)
                nested = node.type == "Module" and param.startswith("args.") and len(param) > 5
                if param not in node.params and not nested:
                    raise GraphError(f"'{node.name}' has no parameter {param!r}")
            if name not in self.arguments and len(self.arguments) >= MAX_ARGUMENTS:
                raise GraphError(f"a module may declare at most {MAX_ARGUMENTS} parameters")
            self.arguments[name] = [(str(n), str(p)) for n, p in targets]
        else:
            self.arguments.pop(name, None)
        self._emit("arguments_changed", name=name)

    def restore_arguments(self, arguments: dict[str, list[tuple[str, str]]]) -> None:
        """Put back every declared parameter as `arguments` lists them (undo)."""
        self.arguments = {name: list(targets) for name, targets in arguments.items()}
        self._emit("arguments_changed", name=None)

    def module_name(self, base: str) -> str:
        """A module name not yet taken, made from `base` (BasicBlock, BasicBlock_2, ...)."""
        stem = re.sub(r"[^A-Za-z0-9_]", "", str(base).replace(" ", "_"))[:56] or "Module"
        stem = stem if stem[0].isalpha() else "M" + stem
        name, i = stem, 1
        while name in self.modules or name in REGISTRY:
            i += 1
            name = f"{stem}_{i}"
        return name

    # -------------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        data = {
            "format": "deepwire-graph",
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "nodes": [n.to_dict() for n in self.nodes()],
            "edges": [e.to_dict() for e in sorted(self.edges(), key=lambda e: (e.dst, e.port, e.src))],
        }
        if self.dataset:
            data["dataset"] = self.dataset
        if self.arguments:
            data["arguments"] = {name: [[n, p] for n, p in targets] for name, targets in self.arguments.items()}
        if self.modules:
            data["modules"] = {name: {k: v for k, v in d.to_dict().items() if k in ("nodes", "edges", "arguments")}
                               for name, d in self.modules.items()}
        else:
            data["format_version"] = 1    # no modules: a file Deepwire versions before modules open too
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> Graph:
        """Build a graph from its dict form. Raises FormatError (one line) on anything malformed.

        What a user could have drawn wrongly (cycles, missing wires, bad parameter values,
        unknown block types) loads, so that analysis can explain it at the node."""
        if not isinstance(data, dict):
            raise FormatError("not a Deepwire graph: the file's top level is not an object")
        version = data.get("format_version")
        if data.get("format") not in (None, "deepwire-graph"):
            raise FormatError(f"not a Deepwire graph: its format is {_short(data.get('format'))}")
        if version is None:
            raise FormatError("not a Deepwire graph: no 'format_version'")
        if isinstance(version, bool) or not isinstance(version, int):
            raise FormatError(f"format_version must be a whole number, not {_short(version)}")
        if version > FORMAT_VERSION:
            raise FormatError(f"this graph was saved by a newer Deepwire (format {version}; this version "
                              f"reads up to {FORMAT_VERSION}): update Deepwire to open it")
        if version < 1:
            raise FormatError(f"format_version {version} is older than any Deepwire release can read")
        graph = cls(clean_name(data.get("name", "model")) or "model")
        graph.dataset = clean_dataset(data.get("dataset"))
        nodes, edges = data.get("nodes", []), data.get("edges", [])
        if not isinstance(nodes, list) or not isinstance(edges, list):
            raise FormatError("'nodes' and 'edges' must be lists")
        if len(nodes) > MAX_NODES:
            raise FormatError(f"too many nodes ({len(nodes)}; at most {MAX_NODES})")
        for i, item in enumerate(nodes):
            graph._load_node(i, item)
        for i, item in enumerate(edges):
            graph._load_edge(i, item)
        numbers = [int(m.group(1)) for nid in graph._g for m in [re.fullmatch(r"n(\d+)", nid)] if m]
        graph._next_id = max(numbers, default=0) + 1
        graph.arguments = _load_arguments(data.get("arguments", {}))
        modules = data.get("modules", {})
        if not isinstance(modules, dict):
            raise FormatError("'modules' must be an object of module definitions by name")
        if len(modules) > MAX_MODULES:
            raise FormatError(f"too many modules ({len(modules)}; at most {MAX_MODULES})")
        total = len(nodes)
        for name, body in modules.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
                raise FormatError(f"module name {_short(name)} is not a name (a letter, then letters, digits or _)")
            if not isinstance(body, dict):
                raise FormatError(f"module {name!r} is not an object")
            total += len(body.get("nodes", [])) if isinstance(body.get("nodes"), list) else 0
            if total > MAX_NODES:
                raise FormatError(f"too many nodes in the graph and its modules (at most {MAX_NODES})")
            try:
                definition = cls.from_dict({"format_version": 1, "name": name, "nodes": body.get("nodes", []),
                                            "edges": body.get("edges", []),
                                            "arguments": body.get("arguments", {})})
            except FormatError as exc:
                raise FormatError(f"module {name!r}: {exc}") from None
            definition.name = name
            graph.modules[name] = definition
        return graph

    def _load_node(self, i: int, item: Any) -> None:
        if not isinstance(item, dict):
            raise FormatError(f"node {i} is not an object")
        node_id, name, type_name = item.get("id"), item.get("name"), item.get("type")
        if not isinstance(node_id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", node_id):
            raise FormatError(f"node {i} has an invalid id {_short(node_id)}")
        if node_id in self._g:
            raise FormatError(f"node id {node_id!r} appears twice")
        if not isinstance(type_name, str) or not type_name:
            raise FormatError(f"node {node_id!r} has no block type")
        if not isinstance(name, str) or not clean_name(name):
            name = type_name.lower()
        name = self.unique_name(clean_name(name))  # a hand-edited file may repeat a name
        params = item.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise FormatError(f"node {name!r}: 'params' must be an object")
        pos = item.get("pos", [0, 0])
        if (not isinstance(pos, (list, tuple)) or len(pos) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e15 for v in pos)):
            raise FormatError(f"node {name!r}: 'pos' must be two numbers")
        block = REGISTRY.get(type_name)
        full = block.defaults() if block else {}
        full.update(params)
        self._g.add_node(node_id, node=Node(node_id, name, type_name, full, (float(pos[0]), float(pos[1]))))
        self._take_name(name)

    def _load_edge(self, i: int, item: Any) -> None:
        if not isinstance(item, dict):
            raise FormatError(f"edge {i} is not an object")
        src, dst, port = item.get("src"), item.get("dst"), item.get("port", 0)
        if src not in self._g or dst not in self._g:
            raise FormatError(f"edge {i} refers to a node that does not exist ({_short(src)} -> {_short(dst)})")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 1024:
            raise FormatError(f"edge {i} has an invalid port {_short(port)}")
        if self._g.has_edge(src, dst, key=port) or port in self.inputs_of(dst):
            raise FormatError(f"edge {i}: input {port} of {self.node(dst).name!r} is wired twice")
        self._g.add_edge(src, dst, key=port)

    @classmethod
    def from_json(cls, text: str) -> Graph:
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer too long to read
            if isinstance(exc, FormatError):
                raise
            if not isinstance(exc, (json.JSONDecodeError, RecursionError)):
                raise FormatError("not valid JSON: it holds a number too long to read (over 4300 digits)") from None
            raise FormatError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def copy(self) -> Graph:
        """A deep copy, module definitions included."""
        return Graph.from_dict(self.to_dict())


def _load_arguments(data: Any) -> dict[str, list[tuple[str, str]]]:
    """A definition's declared parameters from a file (targets naming no block are kept: the
    analysis skips them, as it does after a block is deleted)."""
    if not isinstance(data, dict) or len(data) > MAX_ARGUMENTS:
        raise FormatError(f"'arguments' must be an object of at most {MAX_ARGUMENTS} parameters")
    out: dict[str, list[tuple[str, str]]] = {}
    for name, targets in data.items():
        if not isinstance(name, str) or not ARGUMENT.fullmatch(name) or keyword.iskeyword(name) or name == "self":
            raise FormatError(f"module parameter {_short(name)} is not a name")
        if (not isinstance(targets, list) or len(targets) > 64
                or not all(isinstance(t, list) and len(t) == 2 and all(isinstance(v, str) for v in t)
                           for t in targets)):
            raise FormatError(f"module parameter {name!r}: its targets must be [node id, parameter] pairs")
        out[name] = [(t[0], t[1]) for t in targets]
    return out


_SUFFIX = re.compile(r"_\d+$")             # what a base name's own suffix is (unique_name drops it)
_CANONICAL = re.compile(r"_([1-9][0-9]*)$")  # a suffix unique_name writes


def _pair_order(g: nx.MultiDiGraph) -> list[tuple[str, str]]:
    """The wired (u, v) pairs in an order that, added one after another, gives every node's
    successors and predecessors in the order `g` has them (Kahn's algorithm over both orders)."""
    after: dict[tuple[str, str], list[tuple[str, str]]] = {}
    waiting: dict[tuple[str, str], int] = {}
    for chains in ([[(u, v) for v in g.succ[u]] for u in g], [[(u, v) for u in g.pred[v]] for v in g]):
        for chain in chains:
            for a, b in zip(chain, chain[1:]):
                after.setdefault(a, []).append(b)
                waiting[b] = waiting.get(b, 0) + 1
    ready = deque(pair for u in g for pair in ((u, v) for v in g.succ[u]) if pair not in waiting)
    pairs = []
    while ready:
        pair = ready.popleft()
        pairs.append(pair)
        for nxt in after.get(pair, ()):
            waiting[nxt] -= 1
            if not waiting[nxt]:
                ready.append(nxt)
    return pairs


def _suffixed(stem: str, i: int) -> str:
    """stem_i, the stem cut so that the name stays within MAX_NAME characters."""
    return f"{stem[:MAX_NAME - len(str(i)) - 1]}_{i}"


def _no_constant(name: str) -> Any:
    raise FormatError(f"the file contains {name}, which is not a number JSON allows")


def clean_name(name: Any) -> str:
    """A user-typed name, trimmed to one visible line of at most MAX_NAME characters."""
    if not isinstance(name, str):
        return ""
    name = " ".join(name.split())
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:MAX_NAME]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


WRAP_AFTER = 6       # a graph of more layers than this is laid out in rows of at most ROW_LAYERS layers
ROW_LAYERS = 4       # (four blocks side by side fit a canvas at a readable zoom)


def layered_layout(graph: Graph, dx: float = 280.0, dy: float = 140.0,
                   wrap: bool = True) -> dict[str, tuple[float, float]]:
    """The one layout (templates, imports, the designer's Arrange): where each node goes, left to
    right by layer (its longest path from a node without inputs: networkx's topological
    generations), `dx` apart, each layer centred on its row's middle with its nodes `dy` apart in the
    order of their y (ties: the node order). A long graph (more than WRAP_AFTER layers) is wrapped
    like text into rows of at most ROW_LAYERS layers, one under another, so it fits a canvas at a
    readable zoom instead of one long line. Moves nothing. Raises GraphError on a cycle."""
    g = graph.nx
    try:
        generations = list(nx.topological_generations(g))
    except nx.NetworkXUnfeasible:
        raise GraphError("Cannot arrange a graph with a cycle: remove the cycle first.") from None
    index = {node_id: i for i, node_id in enumerate(g)}
    per_row = len(generations)
    if wrap and len(generations) > WRAP_AFTER:
        rows = -(-len(generations) // ROW_LAYERS)
        per_row = -(-len(generations) // rows)          # balanced: 7 layers -> 4 + 3, 9 -> 3 + 3 + 3
    positions: dict[str, tuple[float, float]] = {}
    middle, previous_half = 0.0, None
    for start in range(0, len(generations), max(per_row, 1)):
        band = generations[start:start + per_row]
        half = (max(len(layer) for layer in band) - 1) / 2 * dy
        if previous_half is not None:
            middle += previous_half + half + 1.5 * dy      # rows apart by a block and a half
        previous_half = half
        for col, layer in enumerate(band):
            layer = sorted(layer, key=lambda n: (graph.node(n).pos[1], index[n]))
            for row, node_id in enumerate(layer):
                positions[node_id] = (col * dx, middle + (row - (len(layer) - 1) / 2) * dy)
    return positions


def build(name: str, layers: Iterable[tuple[str, str, dict]], wires: Iterable[tuple[str, str]] = ()) -> Graph:
    """A graph from (name, type, params) rows; rows chain unless `wires` names (src, dst) pairs.
    Handy for templates and tests."""
    graph = Graph(name)
    ids: dict[str, str] = {}
    rows = list(layers)
    for layer_name, type_name, params in rows:
        ids[layer_name] = graph.add_node(type_name, layer_name, params)
    wires = list(wires)
    if not wires:
        wires = [(a[0], b[0]) for a, b in zip(rows, rows[1:])]
    for src, dst in wires:
        graph.connect(ids[src], ids[dst], len(graph.inputs_of(ids[dst])))
    return graph
