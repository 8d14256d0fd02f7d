"""Canvas gestures as objects: each holds its own state from the press that starts it to the
release that ends it, and GraphScene hands it the mouse events meanwhile (`scene.interaction`).

A gesture changes the graph only when it completes, as one undo command; `cancel()` (Escape)
puts back what it showed on the canvas and leaves the graph and the undo stack as they were.
The rubber band is Qt's own (GraphView's drag mode), so it is not one of these.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsScene

from .. import theme
from ..commands import MoveNodes
from .items import NodeItem, PortItem, wire_path


class Interaction:
    """One gesture on a GraphScene. The mouse methods return whether they handled the event
    (False: the scene handles it as it would with no gesture under way)."""

    def __init__(self, scene):
        self.scene = scene

    def mouse_press(self, event) -> bool:
        return False

    def mouse_move(self, event) -> bool:
        return False

    def mouse_release(self, event) -> bool:
        return False

    def node_removed(self, item: NodeItem) -> None:
        """A block left the scene while the gesture was under way."""

    def end(self) -> None:
        """Remove what the gesture drew (temporary items, highlights); nothing else."""

    def cancel(self) -> None:
        """Escape: undo what the gesture showed, commit nothing."""
        self.end()


class WireDrag(Interaction):
    """A wire dragged out of a port: a dashed wire follows the mouse, the ports it could go to are
    highlighted; released on one it connects them, released on empty canvas it asks for quick add."""

    def __init__(self, scene, port: PortItem):
        super().__init__(scene)
        self.port = port
        pen = QPen(theme.colour("highlight"), 2.0, Qt.DashLine)
        self.temp = scene.addPath(wire_path(port.scenePos(), port.scenePos()), pen)
        self.temp.setZValue(5)
        self.highlighted: list[PortItem] = list(scene.compatible_ports(port))
        for p in self.highlighted:
            p.set_highlight(True)

    def mouse_press(self, event) -> bool:
        return True  # another button pressed while dragging a wire: ignored

    def mouse_move(self, event) -> bool:
        start, end = self.port.scenePos(), event.scenePos()
        self.temp.setPath(wire_path(start, end) if self.port.kind == "out" else wire_path(end, start))
        return True

    def mouse_release(self, event) -> bool:
        scene, source = self.scene, self.port
        self.end()
        target = scene.port_at(event.scenePos())
        if target is not None and target is not source:
            scene.connect_ports(source, target)
        elif target is None:
            scene.quickAddRequested.emit(event.scenePos(), source)
        return True

    def node_removed(self, item: NodeItem) -> None:
        if self.port.node_item is item:
            self.scene.cancel_interaction()
        else:
            self.highlighted = [p for p in self.highlighted if p.node_item is not item]

    def end(self) -> None:
        for p in self.highlighted:
            p.set_highlight(False)
        self.highlighted = []
        if self.temp is not None and self.temp.scene() is self.scene:
            self.scene.removeItem(self.temp)
        self.temp = None


class MoveBlocks(Interaction):
    """Selected blocks dragged with the mouse. Qt moves the items; on release the moves become one
    MoveNodes command (from the graph's positions to the items'); cancelled, the items go back."""

    def __init__(self, scene, node_ids):
        super().__init__(scene)
        self.node_ids = list(node_ids)

    def mouse_release(self, event) -> bool:
        QGraphicsScene.mouseReleaseEvent(self.scene, event)  # Qt finishes its move first
        scene, graph = self.scene, self.scene.graph
        moves = {}
        for node_id in self.node_ids:
            item = scene.node_items.get(node_id)
            if item is not None and node_id in graph:
                new = (item.pos().x(), item.pos().y())
                if new != tuple(graph.node(node_id).pos):
                    moves[node_id] = (graph.node(node_id).pos, new)
        if moves:
            scene.stack.push(MoveNodes(graph, moves))
        return True

    def cancel(self) -> None:
        scene, graph = self.scene, self.scene.graph
        grabber = scene.mouseGrabberItem()
        if grabber is not None:
            grabber.ungrabMouse()  # the rest of the drag moves nothing
        snap, scene.snap = scene.snap, False  # back exactly where they were, snapped or not
        try:
            for node_id in self.node_ids:
                item = scene.node_items.get(node_id)
                if item is not None and node_id in graph:
                    item.setPos(*graph.node(node_id).pos)
                    item.settled_rect = None
        finally:
            scene.snap = snap
