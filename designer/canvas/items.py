"""The canvas items: a node (body, texts, badge, ports) and a wire (curve + shape label).

Items are drawn by Qt's C++ items (paths, simple texts), not Python paint() overrides, so
big graphs stay fast. They show what the engine says; they own no model state.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
)

from engine.blocks import REGISTRY

from .. import theme

NODE_WIDTH = 190.0
HEADER = 26.0
PORT_GAP = 22.0
PORT_RADIUS = 5.5
GRID = 20.0


class PortItem(QGraphicsEllipseItem):
    """An input (left) or output (right) port of a node."""

    def __init__(self, node_item: NodeItem, kind: str, index: int, label: str = ""):
        r = PORT_RADIUS
        super().__init__(-r, -r, 2 * r, 2 * r, node_item)
        self.node_item, self.kind, self.index = node_item, kind, index
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        self.label = label
        self.setToolTip(label or ("output" if kind == "out" else f"input {index + 1}"))
        self.set_highlight(False)

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def shape(self) -> QPainterPath:  # easier to hit than to see
        path = QPainterPath()
        path.addEllipse(QPointF(0, 0), 11, 11)
        return path

    def set_highlight(self, on: bool, bad: bool = False) -> None:
        c = theme.colours()
        fill = c["error"] if bad else (c["highlight"] if on else c["wire"])
        self.setBrush(QBrush(QColor(fill)))
        self.setPen(QPen(QColor(c["node"]), 1.5))
        self.setScale(1.35 if on else 1.0)

    def hoverEnterEvent(self, event):
        self.setScale(1.35)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):
        self.setScale(1.0)
        super().hoverLeaveEvent(event)


class NodeItem(QGraphicsPathItem):
    def __init__(self, node_id: str, scene_ref):
        super().__init__()
        self.node_id = node_id
        self.scene_ref = scene_ref
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable
                      | QGraphicsItem.ItemSendsGeometryChanges)
        self.setZValue(1)
        self.setCursor(Qt.OpenHandCursor)
        c = theme.colours()
        self.stripe = QGraphicsRectItem(self)
        self.stripe.setPen(QPen(Qt.NoPen))
        bold = QFont()
        bold.setBold(True)
        self.title = QGraphicsSimpleTextItem(self)
        self.title.setFont(bold)
        self.subtitle = QGraphicsSimpleTextItem(self)
        self.info = QGraphicsSimpleTextItem(self)
        small = QFont()
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.subtitle.setFont(small)
        self.info.setFont(small)
        for text in (self.title, self.subtitle, self.info):
            text.setBrush(QBrush(QColor(c["text"])))
        self.subtitle.setBrush(QBrush(QColor(c["muted"])))
        self.badge: QGraphicsEllipseItem | None = None  # made on the first problem: most nodes never need one
        self.inputs: list[PortItem] = []
        self.output: PortItem | None = None
        self.height = HEADER + 44

    # ---------------------------------------------------------------- content
    def refresh(self, node, analysis=None, force: bool = False) -> bool:
        """Show the node's name, type, key parameters, output shape, params and diagnostics.
        Returns whether anything changed (nothing is redrawn when the inputs are the same)."""
        wired = len(self.scene_ref.document.graph.inputs_of(node.id))
        key = (node.name, node.type, repr(node.params), wired,
               analysis.specs.get(node.id) if analysis else None,
               analysis.param_counts.get(node.id) if analysis else None,
               tuple(d.message for d in analysis.for_node(node.id)) if analysis else (), theme.colours()["node"])
        if key == getattr(self, "_face_key", None) and not force:
            return False
        self._face_key = key
        self._draw(node, analysis)
        return True

    def _draw(self, node, analysis) -> None:
        c = theme.colours()
        block = REGISTRY.get(node.type)
        category = block.category if block else "Core"
        params = (analysis.params.get(node.id) if analysis else None) or (block.defaults() if block else {})
        self.title.setText(_elide(node.name, 22))
        short = ""
        if block:
            try:
                short = block.short(params)
            except Exception:  # a half-typed value must not break the face
                short = ""
        self.subtitle.setText(_elide(node.type + (f"  ·  {short}" if short else ""), 30))
        spec = analysis.specs.get(node.id) if analysis else None
        info = []
        if spec is not None:
            info.append("→ " + str(spec) + (" int64" if spec.dtype == "int64" else ""))
        count = analysis.param_counts.get(node.id) if analysis else None
        if count:
            info.append(f"{count:,} params")
        self.info.setText(_elide("   ".join(info), 32))
        # ports: inputs from the declaration (merges show one more than they have wired)
        n_in = 0
        names: tuple[str, ...] = ()
        if block:
            ports = block.ports_for(params if isinstance(params, dict) else block.defaults())
            if ports.variadic:
                wired = len(self.scene_ref.document.graph.inputs_of(node.id))
                n_in = max(ports.min_count, wired + 1)
                if ports.max_count:
                    n_in = min(n_in, ports.max_count)
            else:
                n_in, names = ports.fixed, ports.names
        self._set_ports(n_in, names, has_output=node.type != "Output")
        body_h = max(HEADER + 44, HEADER + 18 + n_in * PORT_GAP)
        self.height = body_h
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, NODE_WIDTH, body_h), 7, 7)
        self.setPath(path)
        self.setBrush(QBrush(QColor(c["node"])))
        self._set_border(self.isSelected())
        self.stripe.setRect(QRectF(0, 0, NODE_WIDTH, 4))
        self.stripe.setBrush(QBrush(QColor(theme.CATEGORY_COLOURS.get(category, c["highlight"]))))
        self.title.setPos(12, 7)
        self.subtitle.setPos(12, HEADER + 2)
        self.info.setPos(12, HEADER + 20)
        diags = analysis.for_node(node.id) if analysis else []
        if diags:
            worst = "error" if any(d.severity == "error" for d in diags) else "warning"
            if self.badge is None:
                self._make_badge()
            self.badge.setBrush(QBrush(QColor(c[worst])))
            self.badge.setPen(QPen(Qt.NoPen))
            self.badge.setPos(NODE_WIDTH - 4, 4)
            self.badge_text.setPos(-self.badge_text.boundingRect().width() / 2,
                                   -self.badge_text.boundingRect().height() / 2)
            self.badge.setToolTip("\n".join(d.message for d in diags))
            self.setToolTip("\n".join(d.message for d in diags))
            self.badge.show()
        elif self.badge is not None:
            self.badge.hide()
            self.setToolTip(block.help if block else f"unknown block type {node.type!r}")

    def set_detail(self, on: bool) -> None:
        for child in (self.title, self.subtitle, self.info, *self.inputs):
            child.setVisible(on)
        if self.output is not None:
            self.output.setVisible(on)

    def _make_badge(self) -> None:
        bold = QFont()
        bold.setBold(True)
        self.badge = QGraphicsEllipseItem(-8, -8, 16, 16, self)
        self.badge.setZValue(3)
        self.badge_text = QGraphicsSimpleTextItem("!", self.badge)
        self.badge_text.setFont(bold)
        self.badge_text.setBrush(QBrush(QColor("#ffffff")))

    def _set_ports(self, n_in: int, names: tuple[str, ...], has_output: bool) -> None:
        while len(self.inputs) > n_in:
            port = self.inputs.pop()
            port.setParentItem(None)
            if port.scene():
                port.scene().removeItem(port)
        while len(self.inputs) < n_in:
            i = len(self.inputs)
            self.inputs.append(PortItem(self, "in", i, names[i] if i < len(names) else ""))
            self.inputs[-1].setVisible(self.title.isVisible())
        for i, port in enumerate(self.inputs):
            port.setPos(0, HEADER + 14 + i * PORT_GAP)
            if i < len(names):
                port.setToolTip(names[i])
        if has_output and self.output is None:
            self.output = PortItem(self, "out", 0, "output")
        elif not has_output and self.output is not None:
            self.output.setParentItem(None)
            if self.output.scene():
                self.output.scene().removeItem(self.output)
            self.output = None
        if self.output is not None:
            self.output.setPos(NODE_WIDTH, HEADER + 14)

    def input_pos(self, index: int) -> QPointF:
        if index < len(self.inputs):
            return self.inputs[index].scenePos()
        return self.mapToScene(QPointF(0, HEADER + 14 + index * PORT_GAP))

    def output_pos(self) -> QPointF:
        return self.mapToScene(QPointF(NODE_WIDTH, HEADER + 14))

    def _set_border(self, selected: bool) -> None:
        c = theme.colours()
        self.setPen(QPen(QColor(c["selection"] if selected else c["node_border"]), 2.2 if selected else 1.2))

    # ---------------------------------------------------------------- behaviour
    def itemChange(self, change, value):
        # identity tests: Qt calls this for every child added too, and enum equality is slow in Python
        if change is _POS_CHANGED:
            self.scene_ref.node_item_moved(self)
        elif change is _POS_CHANGE:
            if self.scene_ref.snap:
                return QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        elif change is _SELECTED_CHANGED:
            self._set_border(bool(value))
        return value


_POS_CHANGE = QGraphicsItem.ItemPositionChange
_POS_CHANGED = QGraphicsItem.ItemPositionHasChanged
_SELECTED_CHANGED = QGraphicsItem.ItemSelectedHasChanged


class EdgeItem(QGraphicsPathItem):
    """A wire from an output to an input port, labelled with the tensor shape it carries."""

    def __init__(self, src: str, dst: str, port: int):
        super().__init__()
        self.src, self.dst, self.port = src, dst, port
        self.setZValue(0)
        self.setFlags(QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.label = QGraphicsSimpleTextItem(self)
        small = QFont()
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 7.0))
        self.label.setFont(small)
        self.bad = False
        self._hover = False
        self.set_state(None, False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.src, self.dst, self.port)

    def set_state(self, shape_text: str | None, bad: bool, message: str = "") -> None:
        c = theme.colours()
        self.bad = bad
        colour = QColor(c["error"] if bad else c["wire"])
        pen = QPen(colour, 2.6 if (self._hover or self.isSelected()) else 1.8)
        pen.setCapStyle(Qt.RoundCap)
        self.setPen(pen)
        self.label.setText(shape_text or "")
        self.label.setBrush(QBrush(colour if bad else QColor(c["muted"])))
        self.setToolTip(message or (f"carries {shape_text}" if shape_text else ""))

    def update_path(self, start: QPointF, end: QPointF) -> None:
        self.setPath(wire_path(start, end))
        mid = self.path().pointAtPercent(0.5)
        rect = self.label.boundingRect()
        self.label.setPos(mid.x() - rect.width() / 2, mid.y() - rect.height() - 3)

    def shape(self) -> QPainterPath:  # a wide hit area: thin wires are easy to click
        stroker = QPainterPathStroker()
        stroker.setWidth(14)
        return stroker.createStroke(self.path())

    def hoverEnterEvent(self, event):
        self._hover = True
        pen = self.pen()
        pen.setWidthF(2.8)
        self.setPen(pen)
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):
        self._hover = False
        pen = self.pen()
        pen.setWidthF(1.8)
        self.setPen(pen)
        super().hoverLeaveEvent(event)


def wire_path(start: QPointF, end: QPointF) -> QPainterPath:
    path = QPainterPath(start)
    dx = max(abs(end.x() - start.x()) * 0.5, 40.0)
    path.cubicTo(QPointF(start.x() + dx, start.y()), QPointF(end.x() - dx, end.y()), end)
    return path


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
