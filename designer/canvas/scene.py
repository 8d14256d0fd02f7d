"""GraphScene mirrors the document's engine graph and turns gestures into undo commands.

It subscribes to the graph's events (node_added, edge_removed, ...) and updates only the
affected items; analysis results refresh faces, badges and wire labels. It never holds
model state of its own: every edit goes through designer.commands onto the undo stack.
"""
from __future__ import annotations

import copy

import networkx as nx
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsScene, QMenu, QToolTip

from engine.analysis import wire_fixes
from engine.blocks import REGISTRY, blocks_feeding, blocks_taking
from engine.blocks.module import MODULE
from engine.graph import Edge, GraphError, layered_layout
from engine.modules import ports as module_inputs

from .. import theme
from ..commands import AddNode, Connect, Disconnect, MoveNodes, RemoveNodes, SetParams
from ..mime import BLOCK_MIME, MODULE_PREFIX
from .interactions import Interaction, MoveBlocks, WireDrag
from .items import HEADER, NODE_WIDTH, PORT_HIT, SKIP_MIN_DX, EdgeItem, NodeItem, PortItem

MISMATCH_KINDS = {"shape", "merge-shape", "kernel-too-large", "token-ids", "dtype", "reshape"}
ROUTE_BAND = 1500.0  # how far above and below a skip wire blocks are looked for, to find it a clear lane
CELL = 400.0         # width of the columns blocks are filed in, to find those along a wire quickly
REROUTE_ALL = 24     # more moved blocks than this in one pass: every long wire is re-routed instead
COLUMN = 280.0       # Arrange's distance between layers; a block added downstream lands this far right
ROW = 140.0          # Arrange's distance between blocks in a layer; the step a free spot is looked for in
GAP = COLUMN - NODE_WIDTH  # the room a wire (and its shape label) needs between two blocks
CLEARANCE = 20.0     # a placed block keeps at least this far from the others
BLOCK_HEIGHT = HEADER + 44  # the height of a block with up to two inputs
_BY_BOUNDING_RECT = Qt.ItemSelectionMode.IntersectsItemBoundingRect  # looked up once: PySide enums are slow



def block_spec(type_name: str) -> tuple[str, dict | None, str | None]:
    """(block type, parameters, name) for what the palette carries: a block type, or "module:Name"
    for an instance of the project's module Name (named after it: residual_block_1)."""
    if type_name.startswith(MODULE_PREFIX):
        module = type_name[len(MODULE_PREFIX):]
        snake = "".join(("_" + c.lower()) if c.isupper() else c for c in module).strip("_").replace("__", "_")
        return MODULE, {"module": module, "repeat": 1}, (snake or "module")[:48] + "_1"
    return type_name, None, None


class GraphScene(QGraphicsScene):
    message = Signal(str)                       # a reason for the status bar
    moduleOpenRequested = Signal(str)           # a module instance was double-clicked: its module's name
    quickAddRequested = Signal(QPointF, object)  # scene position, the port a wire was dragged from (or None)
    contentChanged = Signal()  # blocks or wires added, removed, moved or re-analysed (for the minimap); batched

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.snap = False
        self.node_items: dict[str, NodeItem] = {}
        self.edge_items: dict[tuple[str, str, int], EdgeItem] = {}
        self._edges_of: dict[str, set] = {}
        self._columns: dict[int, set[NodeItem]] = {}  # blocks by the CELL-wide column their left edge is in
        self.interaction: Interaction | None = None  # the gesture under way (interactions.py)
        self.node_menu_actions: list = []  # what a right-click on a block offers (the main window's actions)
        self.detail = True  # texts, ports and wire labels; hidden when zoomed far out
        self._building = False
        # contentChanged is sent once per pass of the event loop, however many blocks changed
        self._content_timer = QTimer(self)
        self._content_timer.setSingleShot(True)
        self._content_timer.setInterval(0)
        self._content_timer.timeout.connect(self.contentChanged)
        # wires that may need to bend around (or may straighten past) blocks that moved: re-routed
        # once per pass of the event loop, so moving a thousand blocks (arrange, undo) is one pass
        self._reroute_rects: list[QRectF] = []
        self._reroute_timer = QTimer(self)
        self._reroute_timer.setSingleShot(True)
        self._reroute_timer.setInterval(0)
        self._reroute_timer.timeout.connect(self.reroute_pending)
        self.setSceneRect(-5000, -5000, 10000, 10000)
        self.setBackgroundBrush(theme.colour("canvas"))
        document.graphReplaced.connect(self.rebuild)
        document.shownChanged.connect(self.rebuild)
        document.shownAnalysed.connect(self.apply_analysis)
        self._graph = None
        self.rebuild()

    # ------------------------------------------------------------------ mirroring
    @property
    def graph(self):
        """The graph shown: the model, or the module definition entered (Document.shown)."""
        return self.document.shown

    def rebuild(self) -> None:
        if self._graph is not None:
            self._graph.unsubscribe(self._on_graph_event)
        if self.interaction is not None:  # its items go with the old graph's
            self.interaction.end()
            self.interaction = None
        self.clear()
        self.node_items.clear()
        self.edge_items.clear()
        self._edges_of.clear()
        self._columns.clear()
        self._reroute_rects.clear()
        self._graph = self.graph
        self._graph.subscribe(self._on_graph_event)
        # bare items first; one analysis pass then draws every face once, and the wires follow
        self._building = True
        try:
            for node in self.graph.nodes():
                self._add_node_item(node.id)
            for edge in self.graph.edges():
                self._add_edge_item(edge)
        finally:
            self._building = False
        self._apply(self.document.shown_analysis, rewire=False)
        for item in self.edge_items.values():
            self._update_edge(item)
        self._content_changed()

    def _on_graph_event(self, event: str, payload: dict) -> None:
        if event == "node_added":
            self._add_node_item(payload["node_id"])
            self._reroute_near([self.node_items[payload["node_id"]].sceneBoundingRect()])
        elif event == "node_removed":
            item = self.node_items.pop(payload["node_id"], None)
            if item is not None:
                rect = item.sceneBoundingRect()
                self._columns.get(item.column, set()).discard(item)
                if self.interaction is not None:
                    self.interaction.node_removed(item)
                self.removeItem(item)
                self._reroute_near([rect])
            self._edges_of.pop(payload["node_id"], None)
        elif event == "edge_added":
            self._add_edge_item(Edge(payload["src"], payload["dst"], payload["port"]))
        elif event == "edge_removed":
            key = (payload["src"], payload["dst"], payload["port"])
            item = self.edge_items.pop(key, None)
            if item is not None:
                self.removeItem(item)
            for node_id in key[:2]:
                self._edges_of.get(node_id, set()).discard(key)
        elif event == "node_moved":
            item = self.node_items.get(payload["node_id"])
            if item is not None:
                pos = self.graph.node(payload["node_id"]).pos
                if (item.pos().x(), item.pos().y()) != pos:
                    item.setPos(*pos)
                self._include(item)
                # wires elsewhere may now pass behind the block, or no longer need to bend around it
                self._reroute_near([r for r in (item.settled_rect, item.sceneBoundingRect()) if r is not None])
                item.settled_rect = None
        elif event in ("node_renamed", "params_changed"):
            item = self.node_items.get(payload["node_id"])
            if item is not None:
                ports_before = len(item.inputs)
                item.refresh(self.graph.node(payload["node_id"]), self.document.shown_analysis)
                if len(item.inputs) != ports_before:  # e.g. attention switched to query/key/value
                    self.node_item_moved(item)
        elif event == "reset":
            self.rebuild()

    def _add_node_item(self, node_id: str) -> None:
        node = self.graph.node(node_id)
        item = NodeItem(node_id, self)
        item.setPos(*node.pos)
        if not self.detail:
            item.set_detail(False)
        self.addItem(item)
        self.node_items[node_id] = item
        self._file(item)
        item.settled_rect = None
        if not self._building:
            item.refresh(node, self.document.shown_analysis)
            self._include(item)
            self._content_changed()

    def _include(self, item) -> None:
        """Keep the scene a margin larger than every block, so any block can be scrolled to."""
        rect = item.sceneBoundingRect().adjusted(-2000, -2000, 2000, 2000)
        if not self.sceneRect().contains(rect):
            self.setSceneRect(self.sceneRect().united(rect))

    def _add_edge_item(self, edge: Edge) -> None:
        item = EdgeItem(edge.src, edge.dst, edge.port)
        if not self.detail:
            item.label.setVisible(False)
        self.addItem(item)
        self.edge_items[item.key] = item
        for node_id in (edge.src, edge.dst):
            self._edges_of.setdefault(node_id, set()).add(item.key)
        if self._building:
            return
        self._update_edge(item)
        self._content_changed()
        dst = self.node_items.get(edge.dst)
        block = REGISTRY.get(self.graph.node(edge.dst).type)
        if dst is not None and block is not None and block.ports_for(block.defaults()).variadic:
            dst.refresh(self.graph.node(edge.dst), self.document.shown_analysis)  # merges grow a port as wires arrive

    def set_detail(self, on: bool) -> None:
        """Level of detail: far out, blocks are drawn as plain boxes and wires without labels."""
        if on == self.detail:
            return
        self.detail = on
        for item in self.node_items.values():
            item.set_detail(on)
        for edge in self.edge_items.values():
            edge.label.setVisible(on)

    def _update_edge(self, item: EdgeItem) -> None:
        src, dst = self.node_items.get(item.src), self.node_items.get(item.dst)
        if src is not None and dst is not None:
            start, end = src.output_pos(), dst.input_pos(item.port)
            item.update_path(start, end, self._obstacles(item, start, end))

    def _file(self, item: NodeItem) -> None:
        """Keep the block in the column of blocks its left edge is in (see _obstacles)."""
        column = int(item.pos().x() // CELL)
        if column != item.column:
            if item.column is not None:
                self._columns.get(item.column, set()).discard(item)
            self._columns.setdefault(column, set()).add(item)
            item.column = column

    def _obstacles(self, edge: EdgeItem, start: QPointF, end: QPointF) -> list[QRectF]:
        """Scene rects of the blocks (other than its ends) a skip wire could pass behind, and of
        those above and below them it must keep clear of when it bends around. Found through the
        columns blocks are filed in, not the scene's index: a wire is re-routed at every step of
        a drag, and every wire once when a graph opens."""
        x0, x1 = start.x(), end.x()
        if x1 - x0 < SKIP_MIN_DX:
            return []
        top = min(start.y(), end.y()) - ROUTE_BAND
        bottom = max(start.y(), end.y()) + ROUTE_BAND
        src, dst = edge.src, edge.dst
        out = []
        for column in range(int((x0 - NODE_WIDTH) // CELL), int(x1 // CELL) + 1):
            for other in self._columns.get(column, ()):
                pos = other.pos()
                x, y = pos.x(), pos.y()
                if x + NODE_WIDTH > x0 and x < x1 and y + other.height > top and y < bottom \
                        and other.node_id != src and other.node_id != dst:
                    out.append(QRectF(x - 1.5, y - 1.5, NODE_WIDTH + 3, other.height + 3))
        return out

    def _reroute_near(self, rects) -> None:
        """Re-route, soon, the wires that pass over or around the given scene rects."""
        if self._building:
            return
        self._reroute_rects.extend(rects)
        if not self._reroute_timer.isActive():
            self._reroute_timer.start()

    def reroute_pending(self) -> None:
        """Re-route the wires near the blocks that moved, came or went since the last pass."""
        self._reroute_timer.stop()
        rects, self._reroute_rects = self._reroute_rects, []
        if len(rects) > REROUTE_ALL:  # cheaper than asking the scene's index around each block
            for edge in list(self.edge_items.values()):
                if edge.routed or edge.long:
                    self._update_edge(edge)
            return
        seen = set()
        for rect in rects:
            for other in self.items(rect, _BY_BOUNDING_RECT):
                if type(other) is EdgeItem and other.key not in seen and other.key in self.edge_items:
                    seen.add(other.key)
                    self._update_edge(other)

    def node_item_moved(self, item: NodeItem) -> None:
        if self._building:  # placed before its wires exist; rebuild() files it
            return
        self._file(item)
        for key in self._edges_of.get(item.node_id, ()):
            edge = self.edge_items.get(key)
            if edge is not None:
                self._update_edge(edge)
        self._content_changed()

    def _content_changed(self) -> None:
        if not self._content_timer.isActive():
            self._content_timer.start()

    def apply_analysis(self, analysis) -> None:
        """Refresh only what the analysis changed: faces, wire labels, and wires whose ports moved."""
        self._apply(analysis, rewire=True)

    def _apply(self, analysis, rewire: bool) -> None:
        by_node: dict[str, list] = {}
        for d in analysis.diagnostics:
            if d.node_id is not None and d.kind in MISMATCH_KINDS and d.severity == "error":
                by_node.setdefault(d.node_id, []).append(d)
        reshaped = set()
        for node_id, item in self.node_items.items():
            if node_id in self.graph:
                ports_before = len(item.inputs)
                if item.refresh(self.graph.node(node_id), analysis) and len(item.inputs) != ports_before:
                    reshaped.add(node_id)
        for item in self.edge_items.values():
            spec = analysis.specs.get(item.src)
            problems = by_node.get(item.dst, [])
            state = (str(spec) if spec else None, bool(problems), problems[0].message if problems else "")
            if state != getattr(item, "_state_key", None):
                item._state_key = state
                item.set_state(*state)
            if rewire and (item.dst in reshaped or item.src in reshaped):
                self._update_edge(item)
        self._grow_scene_rect()
        self._content_changed()

    def _grow_scene_rect(self) -> None:
        """The scene reaches past the graph in every direction, however large it grows."""
        if not self.node_items:
            return
        xs = [i.pos().x() for i in self.node_items.values()]
        ys = [i.pos().y() for i in self.node_items.values()]
        wanted = QRectF(min(xs) - 5000, min(ys) - 5000, max(xs) - min(xs) + 10000, max(ys) - min(ys) + 10000)
        if not self.sceneRect().contains(wanted):
            self.setSceneRect(self.sceneRect().united(wanted))

    def module_ports(self, node) -> tuple[str, ...] | None:
        """The input port names of a module instance: its definition's Inputs, in order (None when the
        project has no such module)."""
        definition = self.document.graph.modules.get(node.params.get("module"))
        if definition is None:
            return None
        return tuple(definition.node(i).name for i in module_inputs(definition)[0])

    # ------------------------------------------------------------------ selection helpers
    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [Edge(*i.key) for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select_nodes(self, node_ids) -> None:
        self.clearSelection()
        for node_id in node_ids:
            item = self.node_items.get(node_id)
            if item is not None:
                item.setSelected(True)

    # ------------------------------------------------------------------ edits
    @property
    def stack(self):
        return self.document.undo_stack

    def add_block(self, type_name: str, pos: QPointF, connect_from: PortItem | None = None,
                  top_left: tuple[float, float] | None = None) -> str | None:
        """Place a block centred on `pos` (or with its corner at `top_left`); wired to
        `connect_from` when a wire was dragged out."""
        type_name, params, name = block_spec(type_name)
        if type_name not in REGISTRY:
            return None
        if params is not None and not self._may_add_module(params["module"]):
            return None
        what = params["module"] if params is not None else type_name
        if top_left is None:
            top_left = (round(pos.x() - NODE_WIDTH / 2), round(pos.y() - 20))
        if connect_from is None:
            cmd = AddNode(self.graph, type_name, top_left, params, name)
            cmd.setText(f"add {what}")
            self.stack.push(cmd)
            self.select_nodes([cmd.node_id])
            return cmd.node_id
        self.stack.beginMacro(f"add {what}")
        try:
            cmd = AddNode(self.graph, type_name, top_left, params, name)
            self.stack.push(cmd)
            if connect_from.kind == "out":
                self._connect_ports(connect_from.node_id, cmd.node_id, 0)
            else:
                self._connect_ports(cmd.node_id, connect_from.node_id, connect_from.index)
        finally:
            self.stack.endMacro()
        self.select_nodes([cmd.node_id])
        return cmd.node_id

    def _may_add_module(self, module: str) -> bool:
        """An instance of `module` may go into the shown graph: it exists, and it is not the module
        being edited nor one that contains it."""
        if module not in self.document.graph.modules:
            self.message.emit(f"This project has no module named {module}.")
            return False
        if module not in self.document.addable_modules():
            self.message.emit(f"{module} cannot go inside {self.document.module_path[-1]}: "
                              "a module cannot contain itself.")
            return False
        return True

    def add_block_after(self, type_name: str, node_id: str) -> str | None:
        """Quick add with a block selected: the new block lands beside it, downstream, in the first
        free spot, and is wired from it when its shape rule takes that block's output."""
        item = self.node_items.get(node_id)
        block = REGISTRY.get(block_spec(type_name)[0])
        if item is None or block is None:
            return None
        x, y = item.pos().x() + COLUMN, item.pos().y()
        if item.output is None:  # an Output: nothing comes out of it, so the new block goes below
            x, y = item.pos().x(), item.pos().y() + item.height + GAP
        spot = self.free_spot(x, y)
        ports = block.ports_for(block.defaults())
        takes_input = ports.fixed > 0 or ports.variadic
        if item.output is not None and takes_input and (type_name.startswith(MODULE_PREFIX)
                                                        or type_name in self.blocks_that_fit(item.output)):
            return self.add_block(type_name, QPointF(), item.output, top_left=spot)
        new = self.add_block(type_name, QPointF(), top_left=spot)
        if item.output is not None and takes_input:
            spec = self.document.shown_analysis.specs.get(node_id)
            name = self.graph.node(node_id).name
            self.message.emit(f"{type_name} cannot take {name}'s output {spec}, so it is not wired to it.")
        return new

    def occupied(self, rect: QRectF, exclude=()) -> bool:
        """Whether a block (other than those in `exclude`) is within CLEARANCE of a scene rect."""
        area = rect.adjusted(-CLEARANCE, -CLEARANCE, CLEARANCE, CLEARANCE)
        return any(type(i) is NodeItem and i.node_id not in exclude for i in self.items(area, _BY_BOUNDING_RECT))

    def free_spot(self, x: float, y: float, height: float = BLOCK_HEIGHT, exclude=()) -> tuple[float, float]:
        """The top-left corner nearest (x, y), stepping a ROW down, then up, then two down...,
        where a block of `height` touches no other block."""
        for step in range(0, 60):
            dy = (step + 1) // 2 * ROW * (1 if step % 2 else -1)
            if not self.occupied(QRectF(x, y + dy, NODE_WIDTH, height), exclude):
                return float(round(x)), float(round(y + dy))
        return float(round(x)), float(round(y))

    def paste_offset(self, nodes: list[dict]) -> tuple[float, float]:
        """Where pasted blocks go: where they were copied from when that is free (a cut, or another
        graph), else the first free place below, so no copy lands on a block."""
        rects = []
        for data in nodes:
            item = self.node_items.get(data.get("id"))
            height = item.height if item is not None and self.graph.node(item.node_id).type == data.get("type") \
                else BLOCK_HEIGHT
            rects.append(QRectF(float(data["pos"][0]), float(data["pos"][1]), NODE_WIDTH, height))
        if not rects:
            return (0.0, 0.0)
        bounds = QRectF(rects[0])
        for rect in rects[1:]:
            bounds = bounds.united(rect)
        step = max(ROW, round((bounds.height() + GAP) / ROW) * ROW)
        for k in range(0, 100):
            dy = k * step
            if not any(self.occupied(r.translated(0, dy)) for r in rects):
                return (0.0, dy)
        return (COLUMN, step)

    def insert_on_wire(self, type_name: str, edge: Edge, pos: QPointF) -> str | None:
        kind, params, name = block_spec(type_name)
        block = REGISTRY.get(kind)
        ports = block.ports_for(block.defaults()) if block is not None else None
        if ports is None or ports.fixed == 0 and not ports.variadic:
            return self.add_block(type_name, pos)
        if params is not None and not self._may_add_module(params["module"]):
            return None
        node_id = self._insert_between(edge, kind, params or {}, pos,
                                       f"insert {params['module'] if params else kind}", name)
        self.select_nodes([node_id])
        return node_id

    def _insert_between(self, edge: Edge, type_name: str, params: dict, pos: QPointF, text: str,
                        name: str | None = None) -> str:
        """One undo step: a new block takes the wire's place between its ends. It goes between
        them; when they are too close for it, every block from the wire's end rightwards moves
        right to make room (a column inserted)."""
        self.stack.beginMacro(text)
        try:
            moves, spot = self._room_on_wire(edge, pos)
            if moves:
                self.stack.push(MoveNodes(self.graph, moves, "make room"))
            cmd = AddNode(self.graph, type_name, self.free_spot(*spot), params, name)
            self.stack.push(cmd)
            self.stack.push(Disconnect(self.graph, edge))
            self.stack.push(Connect(self.graph, edge.src, cmd.node_id, 0))
            self.stack.push(Connect(self.graph, cmd.node_id, edge.dst, edge.port))
        finally:
            self.stack.endMacro()
        return cmd.node_id

    def _room_on_wire(self, edge: Edge, pos: QPointF) -> tuple[dict, tuple[float, float]]:
        """The moves that make room for a block on a wire, and where that block goes."""
        drop = (round(pos.x() - NODE_WIDTH / 2), round(pos.y() - (HEADER + 14)))  # its input port at the drop
        src, dst = self.node_items.get(edge.src), self.node_items.get(edge.dst)
        if src is None or dst is None:
            return {}, drop
        ax, ay, bx, by = src.pos().x(), src.pos().y(), dst.pos().x(), dst.pos().y()
        y = ay if abs(ay - by) < 1 else drop[1]  # a straight run of blocks stays straight
        if bx < ax + NODE_WIDTH + GAP:  # the wire runs backwards or down: no column to open
            return {}, (drop[0], y)
        left, right = ax + NODE_WIDTH + GAP, bx - GAP - NODE_WIDTH
        if right >= left:  # room enough already: where it was dropped, kept clear of both ends
            return {}, (min(max(drop[0], left), right), y)
        shift = left - right
        moves = {node.id: (node.pos, (node.pos[0] + shift, node.pos[1]))
                 for node in self.graph.nodes() if node.pos[0] >= bx - 1}
        return moves, (left, y)

    def _connect_ports(self, src: str, dst: str, port: int) -> bool:
        graph = self.graph
        if src == dst:
            self.message.emit("A block cannot feed itself.")
            return False
        if graph.would_cycle(src, dst):
            self.message.emit(f"Refused: wiring {graph.node(src).name} into {graph.node(dst).name} would make a cycle.")
            return False
        existing = graph.inputs_of(dst).get(port)
        if existing == src:
            self.message.emit("Those ports are already connected.")
            return False
        if existing is not None:  # an input takes one wire: the new one replaces the old
            self.stack.beginMacro(f"rewire {graph.node(dst).name}")
            self.stack.push(Disconnect(graph, Edge(existing, dst, port)))
            self.stack.push(Connect(graph, src, dst, port))
            self.stack.endMacro()
        else:
            self.stack.push(Connect(graph, src, dst, port))
        self.message.emit(f"Connected {graph.node(src).name} → {graph.node(dst).name}.")
        return True

    def connect_ports(self, a: PortItem, b: PortItem) -> bool:
        if a.kind == b.kind:
            self.message.emit("Connect an output (right side) to an input (left side).")
            return False
        out, inp = (a, b) if a.kind == "out" else (b, a)
        return self._connect_ports(out.node_id, inp.node_id, inp.index)

    def delete_selection(self) -> None:
        nodes = self.selected_node_ids()
        edges = [e for e in self.selected_edges() if e.src not in nodes and e.dst not in nodes]
        if not nodes and not edges:
            return
        self.stack.beginMacro("delete selection" if len(nodes) + len(edges) > 1 else "delete")
        try:
            for edge in edges:
                self.stack.push(Disconnect(self.graph, edge))
            if nodes:
                self.stack.push(RemoveNodes(self.graph, nodes))
        finally:
            self.stack.endMacro()

    # ------------------------------------------------------------------ freezing (fine-tuning)
    def freezable(self, node_ids) -> list[str]:
        """Of `node_ids`, the blocks with a Trainable switch (those that hold weights, module instances)."""
        graph = self.graph
        out = []
        for node_id in node_ids:
            if node_id not in graph:
                continue
            node = graph.node(node_id)
            block = REGISTRY.get(node.type)
            if block is not None and any(p.name == "trainable" for p in block.params):
                out.append(node_id)
        return out

    def frozen_ids(self, node_ids) -> list[str]:
        return [n for n in self.freezable(node_ids) if self.graph.node(n).params.get("trainable") is False]

    def upstream_freezable(self, node_id: str) -> list[str]:
        """The blocks with weights that feed `node_id`, near or far (its ancestors), in graph order."""
        if node_id not in self.graph:
            return []
        above = nx.ancestors(self.graph.nx, node_id)
        return self.freezable([n for n in self.graph.node_ids() if n in above])

    def set_trainable(self, node_ids, trainable: bool, text: str | None = None) -> int:
        """Freeze (or unfreeze) the blocks among `node_ids` that are not already so, as one undo step.
        Returns how many changed; says so (or why none did) in the status bar."""
        ids = self.freezable(node_ids)
        changing = [n for n in ids if (self.graph.node(n).params.get("trainable") is not False) != trainable]
        verb, done = ("unfreeze", "unfrozen") if trainable else ("freeze", "frozen")
        if not changing:
            self.message.emit(f"Nothing to {verb}: " + (
                "no selected block holds weights." if not ids else
                f"{'every' if len(ids) > 1 else 'the'} block with weights is already {done}."))
            return 0
        graph = self.graph
        cmd = SetParams(graph, changing, {"trainable": trainable}, merge=False)
        who = graph.node(changing[0]).name if len(changing) == 1 else f"{len(changing)} blocks"
        cmd.setText(text or f"{verb} {who}")
        self.stack.push(cmd)
        what = ("they train again" if len(changing) > 1 else "it trains again") if trainable else \
            ("their weights stay as they are while the rest trains" if len(changing) > 1
             else "its weights stay as they are while the rest trains")
        self.message.emit(f"{done.capitalize()} {who}: {what} (Undo puts it back).")
        return len(changing)

    def freeze_selection(self) -> int:
        return self.set_trainable(self.selected_node_ids(), False)

    def unfreeze_selection(self) -> int:
        return self.set_trainable(self.selected_node_ids(), True)

    def freeze_before(self, node_id: str) -> int:
        """Freeze every block with weights upstream of `node_id` (the backbone before a head), one step."""
        ids = self.upstream_freezable(node_id)
        if not ids:
            self.message.emit(f"No block with weights comes before {self.graph.node(node_id).name}.")
            return 0
        return self.set_trainable(ids, False, f"freeze everything before {self.graph.node(node_id).name}")

    def nudge(self, dx: float, dy: float) -> None:
        ids = self.selected_node_ids()
        if ids:
            moves = {n: (self.graph.node(n).pos, (self.graph.node(n).pos[0] + dx, self.graph.node(n).pos[1] + dy))
                     for n in ids}
            self.stack.push(MoveNodes(self.graph, moves, "nudge", merge=True))

    def arrange(self) -> bool:
        """Lay the graph out with the engine's one layout (`layered_layout`: left to right by
        layers), as one undo step. Returns False when it cannot (a cycle)."""
        try:
            positions = layered_layout(self.graph, COLUMN, ROW)
        except GraphError as exc:
            self.message.emit(str(exc))
            return False
        moves = {}
        for node_id, new in positions.items():
            old = self.graph.node(node_id).pos
            if old != new:
                moves[node_id] = (old, new)
        if moves:
            self.stack.push(MoveNodes(self.graph, moves, "arrange"))
        return True

    # ------------------------------------------------------------------ mouse: wires and moves
    def port_at(self, pos: QPointF) -> PortItem | None:
        """The port (of a block showing its face) within reach of a scene point: the nearest one."""
        best, best_d = None, PORT_HIT * PORT_HIT
        area = QRectF(pos.x() - PORT_HIT, pos.y() - PORT_HIT, 2 * PORT_HIT, 2 * PORT_HIT)
        for item in self.items(area, _BY_BOUNDING_RECT):
            if type(item) is NodeItem and item.detail:
                port = item.port_near(item.mapFromScene(pos))
                if port is not None:
                    p = port.scenePos()
                    d = (p.x() - pos.x()) ** 2 + (p.y() - pos.y()) ** 2
                    if d <= best_d:
                        best, best_d = port, d
        return best

    def _edge_at(self, pos: QPointF) -> EdgeItem | None:
        for item in self.items(pos):
            if isinstance(item, EdgeItem):
                return item
        return None

    def mousePressEvent(self, event):
        if self.interaction is not None and self.interaction.mouse_press(event):
            event.accept()
            return
        if event.button() == Qt.LeftButton:
            port = self.port_at(event.scenePos())
            if port is not None:
                self.interaction = WireDrag(self, port)
                event.accept()
                return
        super().mousePressEvent(event)
        ids = self.selected_node_ids()
        self.interaction = MoveBlocks(self, ids) if ids else None

    def mouseMoveEvent(self, event):
        if self.interaction is not None and self.interaction.mouse_move(event):
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        interaction, self.interaction = self.interaction, None
        if interaction is not None and interaction.mouse_release(event):
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def cancel_interaction(self) -> bool:
        """Escape: the gesture under way (if any) ends, leaving the graph as it was."""
        interaction, self.interaction = self.interaction, None
        if interaction is None:
            return False
        interaction.cancel()
        return True

    def keyPressEvent(self, event):
        if event.key() == Qt.Key_Escape and self.cancel_interaction():
            event.accept()
            return
        super().keyPressEvent(event)

    def helpEvent(self, event):  # noqa: N802 (Qt name): ports are not items, so their tooltips are given here
        port = self.port_at(event.scenePos())
        if port is not None:
            QToolTip.showText(event.screenPos(), port.toolTip())
            event.accept()
            return
        super().helpEvent(event)

    def compatible_ports(self, port: PortItem) -> list[PortItem]:
        out = []
        for node_id, item in self.node_items.items():
            if node_id == port.node_id:
                continue
            if port.kind == "out":
                if not self.graph.would_cycle(port.node_id, node_id):
                    out += item.inputs
            elif item.output is not None and not self.graph.would_cycle(node_id, port.node_id):
                out.append(item.output)
        return out

    def blocks_that_fit(self, port: PortItem | None) -> list[str]:
        """Block types that can take (or feed) the tensor at `port` (engine.blocks decides)."""
        if port is None:
            return list(REGISTRY)
        if port.kind == "in":
            return blocks_feeding()
        return blocks_taking(self.document.shown_analysis.specs.get(port.node_id))

    # ------------------------------------------------------------------ drops from the palette
    def dragEnterEvent(self, event):
        if event.mimeData().hasFormat(BLOCK_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):
        if event.mimeData().hasFormat(BLOCK_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):
        if not event.mimeData().hasFormat(BLOCK_MIME):
            super().dropEvent(event)
            return
        type_name = bytes(event.mimeData().data(BLOCK_MIME)).decode("utf-8", "replace")
        edge = self._edge_at(event.scenePos())
        if edge is not None:
            self.insert_on_wire(type_name, Edge(*edge.key), event.scenePos())
        else:
            self.add_block(type_name, event.scenePos())
        event.acceptProposedAction()

    # ------------------------------------------------------------------ quick fixes on wires
    def node_at(self, pos: QPointF) -> NodeItem | None:
        for item in self.items(pos):
            node = item if isinstance(item, NodeItem) else item.parentItem()
            if isinstance(node, NodeItem):
                return node
        return None

    def mouseDoubleClickEvent(self, event):  # noqa: N802
        node = self.node_at(event.scenePos()) if event.button() == Qt.LeftButton else None
        if node is not None and node.node_id in self.graph and self.graph.node(node.node_id).type == MODULE:
            self.moduleOpenRequested.emit(str(self.graph.node(node.node_id).params.get("module")))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event):
        edge = self._edge_at(event.scenePos())
        node = self.node_at(event.scenePos())
        if node is not None and self.node_menu_actions:
            if not node.isSelected():
                self.select_nodes([node.node_id])
            menu = QMenu()
            for action in self.node_menu_actions:
                if action is None:
                    menu.addSeparator()
                elif action.isEnabled():
                    menu.addAction(action)
            menu.exec(event.screenPos())
            return
        if edge is None:
            super().contextMenuEvent(event)
            return
        menu = QMenu()
        fixes = self.quick_fixes(Edge(*edge.key))
        for label, type_name, params in fixes:
            action = menu.addAction(label)
            action.triggered.connect(lambda _=False, t=type_name, p=params, e=Edge(*edge.key), pos=event.scenePos():
                                     self.apply_fix(e, t, p, pos))
        if fixes:
            menu.addSeparator()
        menu.addAction("Delete wire").triggered.connect(
            lambda: self.stack.push(Disconnect(self.graph, Edge(*edge.key))))
        menu.exec(event.screenPos())

    def quick_fixes(self, edge: Edge) -> list[tuple[str, str, dict]]:
        """Blocks that could sit on this wire, each labelled with the shapes it would give (the engine
        tries them: engine.analysis.wire_fixes)."""
        return [(fix.label, fix.type_name, copy.deepcopy(fix.params))
                for fix in wire_fixes(self.graph, self.document.shown_analysis, edge.src, edge.dst, edge.port)]

    def apply_fix(self, edge: Edge, type_name: str, params: dict, pos: QPointF) -> None:
        self._insert_between(edge, type_name, params, pos, f"quick fix: insert {type_name}")

    def drawBackground(self, painter, rect):
        super().drawBackground(painter, rect)
        step = 100
        scale = painter.worldTransform().m11() or 1.0
        while step * scale < 16:  # keep grid lines at least 16 px apart on screen
            step *= 4
        pen = QPen(QColor(theme.colours()["grid"]), 0)  # cosmetic: one pixel at any zoom
        painter.setPen(pen)
        left = int(rect.left()) - int(rect.left()) % step
        top = int(rect.top()) - int(rect.top()) % step
        lines = []
        x = left
        while x < rect.right():
            lines.append(QLineF(x, rect.top(), x, rect.bottom()))
            x += step
        y = top
        while y < rect.bottom():
            lines.append(QLineF(rect.left(), y, rect.right(), y))
            y += step
        painter.drawLines(lines)
