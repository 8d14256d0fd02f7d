"""Every edit is a QUndoCommand that calls the engine graph's API, so undo/redo comes from
QUndoStack and the scene, which mirrors the graph, follows by itself.

Commands keep node ids stable across undo/redo (a removed node comes back with its id,
name, parameters, position and wires), so later commands on the stack stay valid.
"""
from __future__ import annotations

import copy
import time

from PySide6.QtGui import QUndoCommand

from engine.graph import Edge, Graph

MOVE_ID = 1001
SET_PARAMS_ID = 1002
MERGE_WINDOW_S = 1.5  # quick edits of the same parameters of the same blocks within this merge into one step


class AddNode(QUndoCommand):
    def __init__(self, graph: Graph, type_name: str, pos=(0.0, 0.0), params: dict | None = None,
                 name: str | None = None, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph = graph
        self.type_name, self.pos, self.params, self.name = type_name, pos, copy.deepcopy(params), name
        self.node_id = graph.new_id()
        self.setText(f"add {type_name}")

    def redo(self):
        self.node_id = self.graph.add_node(self.type_name, self.name, self.params, self.pos, node_id=self.node_id)
        self.name = self.graph.node(self.node_id).name

    def undo(self):
        self.graph.remove_node(self.node_id)


class RemoveNodes(QUndoCommand):
    """Removes nodes and every wire touching them; undo restores the exact graph."""

    def __init__(self, graph: Graph, node_ids, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph = graph
        order = graph.node_ids()
        self.nodes = sorted((copy.deepcopy(graph.node(n)) for n in node_ids), key=lambda n: order.index(n.id))
        self.indices = {n.id: order.index(n.id) for n in self.nodes}
        ids = {n.id for n in self.nodes}
        self.edges = [e for e in graph.edges() if e.src in ids or e.dst in ids]
        self.setText("delete " + (self.nodes[0].name if len(self.nodes) == 1 else f"{len(self.nodes)} blocks"))

    def redo(self):
        for node in self.nodes:
            self.graph.remove_node(node.id)

    def undo(self):
        for node in self.nodes:
            self.graph.add_node(node.type, node.name, node.params, node.pos, node_id=node.id,
                                index=self.indices[node.id])
            if self.graph.node(node.id).name != node.name:  # only if the name was taken meanwhile
                node.name = self.graph.node(node.id).name
        for edge in self.edges:
            self.graph.connect(edge.src, edge.dst, edge.port)


class Connect(QUndoCommand):
    def __init__(self, graph: Graph, src: str, dst: str, port: int, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.edge = graph, Edge(src, dst, port)
        self.setText(f"connect {graph.node(src).name} to {graph.node(dst).name}")

    def redo(self):
        self.graph.connect(self.edge.src, self.edge.dst, self.edge.port)

    def undo(self):
        self.graph.disconnect(self.edge.src, self.edge.dst, self.edge.port)


class Disconnect(QUndoCommand):
    def __init__(self, graph: Graph, edge: Edge, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.edge = graph, edge
        self.setText(f"disconnect {graph.node(edge.src).name} from {graph.node(edge.dst).name}")

    def redo(self):
        self.graph.disconnect(self.edge.src, self.edge.dst, self.edge.port)

    def undo(self):
        self.graph.connect(self.edge.src, self.edge.dst, self.edge.port)


class MoveNodes(QUndoCommand):
    """One drag (or a run of arrow-key nudges of the same nodes) is one step."""

    def __init__(self, graph: Graph, moves: dict, text: str = "move", parent: QUndoCommand | None = None,
                 merge: bool = False):
        super().__init__(parent)
        self.graph = graph
        self.moves = {k: (tuple(old), tuple(new)) for k, (old, new) in moves.items()}
        self.merge = merge
        self.setText(text if len(moves) != 1 else f"{text} {graph.node(next(iter(moves))).name}")

    def id(self):
        return MOVE_ID if self.merge else -1

    def mergeWith(self, other):
        if not (self.merge and other.merge) or set(other.moves) != set(self.moves):
            return False
        self.moves = {k: (self.moves[k][0], other.moves[k][1]) for k in self.moves}
        return True

    def redo(self):
        for node_id, (_, new) in self.moves.items():
            if node_id in self.graph and self.graph.node(node_id).pos != new:
                self.graph.move(node_id, new)

    def undo(self):
        for node_id, (old, _) in self.moves.items():
            if node_id in self.graph:
                self.graph.move(node_id, old)


class SetParams(QUndoCommand):
    """Set parameters of one block, or the same parameters of several blocks, as one step.

    Quick edits of the same parameters of the same blocks merge into one step (spin box arrows
    clicked or held, a choice tried a few times): undo goes back to the value before the run.
    Edits further apart than MERGE_WINDOW_S stay separate steps."""

    def __init__(self, graph: Graph, node_ids: str | list[str] | tuple[str, ...], changes: dict,
                 parent: QUndoCommand | None = None, merge: bool = True):
        super().__init__(parent)
        self.graph = graph
        self.node_ids = (node_ids,) if isinstance(node_ids, str) else tuple(node_ids)
        self.node_id = self.node_ids[0]
        self.new = copy.deepcopy(changes)
        self.old = {}
        self.missing = {}
        for node_id in self.node_ids:
            node = graph.node(node_id)
            self.old[node_id] = {k: copy.deepcopy(node.params.get(k)) for k in changes}
            self.missing[node_id] = [k for k in changes if k not in node.params]
        self.merge = merge
        self.at = time.monotonic()
        keys = ", ".join(changes)
        who = graph.node(self.node_id).name if len(self.node_ids) == 1 else f"{len(self.node_ids)} blocks"
        self.setText(f"set {keys} of {who}")

    def id(self):
        return SET_PARAMS_ID if self.merge else -1

    def mergeWith(self, other):  # noqa: N802 (Qt name)
        if not (isinstance(other, SetParams) and other.merge and other.graph is self.graph
                and other.node_ids == self.node_ids and set(other.new) == set(self.new)
                and other.at - self.at <= MERGE_WINDOW_S):
            return False
        self.new = copy.deepcopy(other.new)
        self.at = other.at
        # back where the run started: nothing to undo, so the step goes away
        self.setObsolete(all(self.old[n].get(k) == self.new[k] and k not in self.missing[n]
                             for n in self.node_ids for k in self.new))
        return True

    def redo(self):
        for node_id in self.node_ids:
            self.graph.set_params(node_id, self.new)

    def undo(self):
        for node_id in self.node_ids:
            node = self.graph.node(node_id)
            restored = {k: v for k, v in self.old[node_id].items() if k not in self.missing[node_id]}
            for key in self.missing[node_id]:
                node.params.pop(key, None)
            self.graph.set_params(node_id, restored)


class Rename(QUndoCommand):
    def __init__(self, graph: Graph, node_id: str, name: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.node_id = graph, node_id
        self.old = graph.node(node_id).name
        self.wanted = name
        self.setText(f"rename {self.old}")

    def redo(self):
        self.new = self.graph.rename(self.node_id, self.wanted)

    def undo(self):
        self.graph.rename(self.node_id, self.old)


def paste_nodes(stack, graph: Graph, data: dict, offset=(40.0, 40.0)) -> list[str]:
    """Paste nodes (a Graph.to_dict fragment) and the wires between them as one undo step.
    Names are made unique; returns the new node ids."""
    nodes = data.get("nodes", [])
    if not nodes:
        return []
    stack.beginMacro(f"paste {len(nodes)} block{'s' * (len(nodes) != 1)}")
    mapping = {}
    try:
        for item in nodes:
            pos = (item["pos"][0] + offset[0], item["pos"][1] + offset[1])
            cmd = AddNode(graph, item["type"], pos, item.get("params", {}), item.get("name"))
            stack.push(cmd)
            mapping[item["id"]] = cmd.node_id
        for edge in data.get("edges", []):
            if edge["src"] in mapping and edge["dst"] in mapping:
                stack.push(Connect(graph, mapping[edge["src"]], mapping[edge["dst"]], edge["port"]))
    finally:
        stack.endMacro()
    return list(mapping.values())


def fragment(graph: Graph, node_ids) -> dict:
    """The selected nodes and the wires between them, as a Graph.to_dict fragment."""
    ids = set(node_ids)
    return {"format": "deepwire-fragment",
            "nodes": [graph.node(n).to_dict() for n in graph.node_ids() if n in ids],
            "edges": [e.to_dict() for e in graph.edges() if e.src in ids and e.dst in ids]}


# ----------------------------------------------------------------------------- modules

def _restore_nodes(graph: Graph, nodes: list[dict], edges) -> None:
    """Put removed nodes back at their places in the node order (`index`), then their wires."""
    for data in sorted(nodes, key=lambda d: d["index"]):
        graph.add_node(data["type"], data["name"], copy.deepcopy(data["params"]), tuple(data["pos"]),
                       node_id=data["id"], index=data["index"])
    for edge in edges:
        graph.connect(edge.src, edge.dst, edge.port)


class GroupNodes(QUndoCommand):
    """Group a selection into a new module definition and one instance of it (engine.modules.group).

    Call `first()` before pushing: it groups (raising GraphError, with nothing changed, for a selection
    that cannot be a module); the push then keeps that result. Undo puts back the exact blocks (ids,
    names, parameters, positions, order, wires) and removes the definition; redo puts the same
    definition object back, so later edits inside it stay valid. `graph` is the graph shown (the
    model, or a definition: the new module is kept by the model, `top`, either way)."""

    def __init__(self, top: Graph, graph: Graph, node_ids, specs: dict, name: str,
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.top, self.graph = top, graph
        self.node_ids, self.specs, self.wanted = list(node_ids), specs, name
        self.result = None
        self.definition: Graph | None = None
        self.instance: dict | None = None
        self._fresh = False

    def first(self) -> str:
        """Group now; returns the module's name. GraphError when the selection cannot be a module."""
        from engine.modules import group

        name = self.top.module_name(self.wanted)
        self.result = group(self.graph, self.node_ids, self.specs, name)
        if self.graph is not self.top:   # a definition holds no modules of its own: the model keeps it
            self.top.add_module(self.result.module, self.graph.modules.pop(self.result.module))
        self.definition = self.top.modules[self.result.module]
        self.instance = self.graph.node(self.result.node_id).to_dict()
        self._fresh = True
        n = len(self.result.removed)
        self.setText(f"group {n} block{'s' * (n != 1)} into {self.result.module}")
        return self.result.module

    @property
    def module(self) -> str:
        return self.result.module

    @property
    def node_id(self) -> str:
        return self.result.node_id

    def redo(self):
        if self._fresh:
            self._fresh = False
            return
        self.top.add_module(self.result.module, self.definition)
        for data in self.result.removed:
            self.graph.remove_node(data["id"])
        node = self.instance
        self.graph.add_node(node["type"], node["name"], copy.deepcopy(node["params"]), tuple(node["pos"]),
                            node_id=node["id"])
        for edge in self.result.added_edges:
            self.graph.connect(edge.src, edge.dst, edge.port)

    def undo(self):
        self.graph.remove_node(self.result.node_id)
        self.top.remove_module(self.result.module)
        _restore_nodes(self.graph, self.result.removed, self.result.removed_edges)


class UngroupNode(QUndoCommand):
    """Replace a module instance by the blocks of its definition (engine.modules.ungroup); the
    definition stays. Call `first()` before pushing (GraphError when it cannot be ungrouped)."""

    def __init__(self, top: Graph, graph: Graph, node_id: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.top, self.graph, self.node_id = top, graph, node_id
        self.result = None
        self.added: list[dict] = []
        self._fresh = False

    def first(self) -> list[str]:
        """Ungroup now; returns the ids of the blocks put in the instance's place."""
        from engine.modules import ungroup

        name = self.graph.node(self.node_id).name
        own = self.graph.modules
        if self.graph is not self.top:   # inside a definition: the model's definitions are the ones named
            self.graph.modules = self.top.modules
        try:
            self.result = ungroup(self.graph, self.node_id)
        finally:
            self.graph.modules = own
        self.added = [self.graph.node(n).to_dict() for n in self.result.added]
        self._fresh = True
        self.setText(f"ungroup {name}")
        return list(self.result.added)

    def redo(self):
        if self._fresh:
            self._fresh = False
            return
        self.graph.remove_node(self.node_id)
        for data in self.added:
            self.graph.add_node(data["type"], data["name"], copy.deepcopy(data["params"]), tuple(data["pos"]),
                                node_id=data["id"])
        for edge in self.result.added_edges:
            self.graph.connect(edge.src, edge.dst, edge.port)

    def undo(self):
        for data in reversed(self.added):
            self.graph.remove_node(data["id"])
        _restore_nodes(self.graph, [self.result.removed], self.result.removed_edges)


class RemoveModule(QUndoCommand):
    """Delete a module definition (the caller checks that no instance uses it); undo puts it back."""

    def __init__(self, top: Graph, name: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.top, self.name = top, name
        self.definition = top.modules[name]
        self.setText(f"delete module {name}")

    def redo(self):
        self.definition = self.top.remove_module(self.name)

    def undo(self):
        self.top.add_module(self.name, self.definition)


class RenameModule(QUndoCommand):
    """Rename a module definition and every instance that names it (in the model and in other
    definitions); the modules keep their order. Undo renames them back."""

    def __init__(self, top: Graph, old: str, new: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.top, self.old, self.new = top, old, new
        self.setText(f"rename module {old} to {new}")

    def _rename(self, old: str, new: str) -> None:
        order = list(self.top.modules)
        self.top.add_module(new, self.top.modules.pop(old))
        self.top.modules = {(new if k == old else k): self.top.modules[new if k == old else k] for k in order}
        for graph in (self.top, *self.top.modules.values()):
            for node in graph.nodes():
                if node.type == "Module" and node.params.get("module") == old:
                    graph.set_params(node.id, {"module": new})

    def redo(self):
        self._rename(self.old, self.new)

    def undo(self):
        self._rename(self.new, self.old)


class SetArgument(QUndoCommand):
    """Declare, extend or drop a parameter of the module shown (Graph.set_argument): `targets` the
    (node id, parameter) pairs it sets, none to drop it."""

    def __init__(self, graph: Graph, name: str, targets: list[tuple[str, str]] | None,
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.name, self.targets = graph, name, list(targets or [])
        self.old = {k: list(v) for k, v in graph.arguments.items()}
        self.setText(f"module parameter {name}" if targets else f"drop module parameter {name}")

    def redo(self):
        self.graph.set_argument(self.name, self.targets or None)

    def undo(self):
        self.graph.restore_arguments(self.old)


class SetWeights(QUndoCommand):
    """Replace the model's weights (File > Load Weights…); undo puts back the very weights it had (the same
    tensors, or none)."""

    def __init__(self, document, weights: dict | None, text: str = "load weights", parent: QUndoCommand | None = None,
                 source: str | None = None):
        super().__init__(parent)
        self.document = document
        self.old, self.new = document.project.weights, weights
        # loaded from a file (`source` says which): also where the next runs start (fine-tuning)
        project = document.project
        self.source = source
        self.old_start = (project.start_weights, project.start_source, project.config.start_from)
        self.setText(text)

    def redo(self):
        self.document.set_weights(self.new)
        if self.source is not None:
            self.document.set_start(self.new, self.source, "weights")

    def undo(self):
        self.document.set_weights(self.old)
        if self.source is not None:
            self.document.set_start(*self.old_start)
