"""The canvas items: a node (body + face, with its ports) and a wire (curve + shape label).

A node is two QGraphicsItems: the body, a rounded box drawn by Qt's C++ path item (all that is
drawn when zoomed far out), and its face, one child item whose Python paint() draws the
category stripe, the texts (cached QStaticText), the ports and the problem badge. Ports are
not items: they are small objects the face draws and the scene hit-tests geometrically, so a
node costs two items instead of a dozen. Items show what the engine says; they own no model state.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainterPath, QPainterPathStroker, QPen, QStaticText
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsSimpleTextItem, QStyleOptionGraphicsItem

from engine.blocks import REGISTRY
from engine.blocks.module import MODULE

from .. import theme

NODE_WIDTH = 190.0
HEADER = 26.0
PORT_GAP = 22.0
PORT_RADIUS = 5.5
PORT_HIT = 11.0          # ports are easier to hit than to see
PORT_GROW = 1.35         # a hovered or highlighted port is drawn this much larger
GRID = 20.0
FACE_MIN_LOD = 0.25      # below this scale (e.g. an overview render) the face draws nothing
TITLE_MIN_LOD = 0.4      # below this scale a block's name would be under 4 px tall: not drawn
DETAIL_TEXT_MIN_LOD = 0.6  # and its type and shape lines (a smaller font) below this
BADGE_RADIUS = 8.0
STRIPE = 4.0
CORNER = 7.0
STACK_OFFSET = 5.0       # a module instance is drawn as a stack of cards: each card behind is this far off
SNOWFLAKE = "\u2744"     # before a frozen block's name (fine-tuning: its weights do not train)
FROZEN_BODY_MIX = 0.16   # how much of the theme's ice colour a frozen block's body takes
FROZEN_STRIPE_MIX = 0.55  # and its (desaturated) category stripe


# Qt enum values, looked up once: each `Qt.Something.Value` costs tens of microseconds in PySide6,
# which adds up to a good part of a second over the items of a big graph.
_PLAIN_TEXT = Qt.TextFormat.PlainText
_NO_BUTTON = Qt.MouseButton.NoButton
_NO_PEN = Qt.PenStyle.NoPen
_CENTRE = Qt.AlignmentFlag.AlignCenter
_OPEN_HAND = Qt.CursorShape.OpenHandCursor
_ROUND_CAP = Qt.PenCapStyle.RoundCap
_NODE_FLAGS = (QGraphicsItem.GraphicsItemFlag.ItemIsMovable | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
               | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
_EDGE_FLAGS = QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
def _lod(transform) -> float:
    """The painter's scale, rounded: Qt computes it from the transform with the item's translation
    in it, so at exactly a threshold (the fit's READABLE_ZOOM is DETAIL_TEXT_MIN_LOD) blocks at
    some places came out a hair below it and lost their detail lines while their neighbours kept
    them."""
    return round(QStyleOptionGraphicsItem.levelOfDetailFromTransform(transform), 6)


# ----------------------------------------------------------------------------- shared drawing objects
# Pens, brushes, fonts and paths are made once and shared: building them per node was a good part
# of opening a big graph.

_cache: dict = {}


def _colour(value: str) -> QColor:
    key = ("colour", value)
    got = _cache.get(key)
    if got is None:
        got = _cache[key] = QColor(value)
    return got


def _brush(value: str) -> QBrush:
    key = ("brush", value)
    got = _cache.get(key)
    if got is None:
        got = _cache[key] = QBrush(QColor(value))
    return got


def _pen(value: str, width: float, round_cap: bool = False) -> QPen:
    key = ("pen", value, width, round_cap)  # no Qt enum in the key: hashing one is slow in PySide
    got = _cache.get(key)
    if got is None:
        got = QPen(QColor(value), width)
        if round_cap:
            got.setCapStyle(_ROUND_CAP)
        _cache[key] = got
    return got


def _font(kind: str) -> QFont:
    key = ("font", kind)
    got = _cache.get(key)
    if got is None:
        got = QFont()
        if kind == "bold":
            got.setBold(True)
        elif kind == "small":
            got.setPointSizeF(max(got.pointSizeF() * 0.9, 7.0))
        elif kind == "label":
            got.setPointSizeF(max(got.pointSizeF() * 0.85, 7.0))
        _cache[key] = got
    return got


def _body_path(height: float) -> QPainterPath:
    key = ("body", height)
    got = _cache.get(key)
    if got is None:
        got = QPainterPath()
        got.addRoundedRect(QRectF(0, 0, NODE_WIDTH, height), CORNER, CORNER)
        _cache[key] = got
    return got


def _stripe_path() -> QPainterPath:
    """The category stripe: the top of the rounded body, so its corners follow the rounding."""
    got = _cache.get("stripe")
    if got is None:
        top = QPainterPath()
        top.addRect(QRectF(0, 0, NODE_WIDTH, STRIPE))
        got = _cache["stripe"] = _body_path(HEADER + 44).intersected(top)
    return got


def _tint(category_colour: str, node_colour: str) -> str:
    """The body colour far out: the node colour tinted with its category, so an overview of a
    big graph still shows what is where."""
    key = ("tint", category_colour, node_colour)
    got = _cache.get(key)
    if got is None:
        a, b = QColor(category_colour), QColor(node_colour)
        mix = 0.45
        got = _cache[key] = QColor(round(a.red() * mix + b.red() * (1 - mix)),
                                   round(a.green() * mix + b.green() * (1 - mix)),
                                   round(a.blue() * mix + b.blue() * (1 - mix))).name()
    return got


def _mix(a: str, b: str, amount: float) -> str:
    """`a` moved `amount` of the way to `b`."""
    key = ("mix", a, b, amount)
    got = _cache.get(key)
    if got is None:
        x, y = QColor(a), QColor(b)
        got = _cache[key] = QColor(round(x.red() + (y.red() - x.red()) * amount),
                                   round(x.green() + (y.green() - x.green()) * amount),
                                   round(x.blue() + (y.blue() - x.blue()) * amount)).name()
    return got


def _frozen_stripe(category_colour: str, ice: str) -> str:
    """A frozen block's stripe: its category colour drained of most of its saturation, then cooled."""
    key = ("frozen_stripe", category_colour, ice)
    got = _cache.get(key)
    if got is None:
        h, s, light, _ = QColor(category_colour).getHslF()
        grey = QColor.fromHslF(max(h, 0.0), s * 0.25, light).name()
        got = _cache[key] = _mix(grey, ice, FROZEN_STRIPE_MIX)
    return got


def is_frozen(node, analysis=None) -> bool:
    """A block whose weights do not train: its Trainable switch is off, or (a module instance) every
    weight inside it is frozen."""
    if node.params.get("trainable") is False:
        return True
    if analysis is None:
        return False
    count = analysis.param_counts.get(node.id)
    return bool(count) and analysis.frozen_counts.get(node.id) == count


def _static(text: str) -> QStaticText:
    """A text drawn as typed (a name like "<b>x" is not markup). Copied from one made once:
    setTextFormat() is slow from Python."""
    template = _cache.get("static")
    if template is None:
        template = _cache["static"] = QStaticText()
        template.setTextFormat(_PLAIN_TEXT)
    st = QStaticText(template)
    st.setText(text)
    return st


# ----------------------------------------------------------------------------- ports

class PortItem:
    """An input (left) or output (right) port of a node. Drawn by the node's face and found by
    `GraphScene.port_at` (within PORT_HIT of its centre), so it is not a QGraphicsItem itself."""

    __slots__ = ("node_item", "kind", "index", "label", "highlighted", "bad", "hovered")

    def __init__(self, node_item: NodeItem, kind: str, index: int, label: str = ""):
        self.node_item, self.kind, self.index = node_item, kind, index
        self.label = label
        self.highlighted = False
        self.bad = False
        self.hovered = False

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def local_pos(self) -> QPointF:
        if self.kind == "out":
            return QPointF(NODE_WIDTH, HEADER + 14)
        return QPointF(0, HEADER + 14 + self.index * PORT_GAP)

    def scenePos(self) -> QPointF:  # noqa: N802 (reads like the QGraphicsItem it replaces)
        return self.node_item.mapToScene(self.local_pos())

    def toolTip(self) -> str:  # noqa: N802
        return self.label or ("output" if self.kind == "out" else f"input {self.index + 1}")

    def isVisible(self) -> bool:  # noqa: N802
        return self.node_item.face.isVisible()

    def scene(self):
        """The scene, while the port is still on its block and the block on the canvas; else None."""
        node = self.node_item
        alive = self is node.output if self.kind == "out" else self in node.inputs
        return node.scene() if alive else None

    def set_highlight(self, on: bool, bad: bool = False) -> None:
        if (self.highlighted, self.bad) != (on, bad):
            self.highlighted, self.bad = on, bad
            self.node_item.face.update()

    def set_hover(self, on: bool) -> None:
        if self.hovered != on:
            self.hovered = on
            self.node_item.face.update()


# ----------------------------------------------------------------------------- nodes

class NodeFace(QGraphicsItem):
    """Everything on a block but its box: stripe, texts, ports, badge. Hidden when zoomed far out."""

    def __init__(self, node: NodeItem):
        super().__init__(node)
        self.node = node
        self.setAcceptedMouseButtons(_NO_BUTTON)  # presses go to the block (or the scene, on a port)
        self.setAcceptHoverEvents(True)
        self.title = _static("")
        self.subtitle = _static("")
        self.info = _static("")
        self.stripe_colour = "#888888"
        self.badge_colour: str | None = None
        self._rect = QRectF(-PORT_HIT - 1, -BADGE_RADIUS, NODE_WIDTH + 2 * PORT_HIT + 2, HEADER + 44 + BADGE_RADIUS + 2)
        self._shape: QPainterPath | None = None

    def set_height(self, height: float) -> None:
        rect = QRectF(-PORT_HIT - 1, -BADGE_RADIUS, NODE_WIDTH + 2 * PORT_HIT + 2, height + BADGE_RADIUS + 2)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self._shape = None

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect

    def shape(self) -> QPainterPath:
        """The body and a circle around each port: what a click or hover on the face hits."""
        if self._shape is None:
            path = QPainterPath(_body_path(self.node.height))
            for port in self.node.ports():
                path.addEllipse(port.local_pos(), PORT_HIT, PORT_HIT)
            self._shape = path
        return self._shape

    def paint(self, painter, option, widget=None) -> None:
        lod = _lod(painter.worldTransform())
        if lod < FACE_MIN_LOD:
            return
        c = theme.colours()
        painter.setPen(_NO_PEN)
        painter.setBrush(_brush(self.stripe_colour))
        painter.drawPath(_stripe_path())
        if lod >= TITLE_MIN_LOD:  # smaller than this, text is a smudge that costs as much to draw
            painter.setPen(_colour(c["text"]))
            painter.setFont(_font("bold"))
            painter.drawStaticText(QPointF(12, 7), self.title)
            if lod >= DETAIL_TEXT_MIN_LOD:
                painter.setFont(_font("small"))
                painter.drawStaticText(QPointF(12, HEADER + 20), self.info)
                painter.setPen(_colour(c["muted"]))
                painter.drawStaticText(QPointF(12, HEADER + 2), self.subtitle)
        node = self.node
        ports = node.inputs if node.output is None else [*node.inputs, node.output]
        edge = _pen(c["node"], 1.5)
        for port in ports:
            on = port.highlighted
            painter.setPen(edge)
            painter.setBrush(_brush(c["error"] if port.bad else c["highlight"] if on else c["wire"]))
            r = PORT_RADIUS * (PORT_GROW if on or port.hovered else 1.0)
            painter.drawEllipse(port.local_pos(), r, r)
        if self.badge_colour is not None:
            centre = QPointF(NODE_WIDTH - 4, 4)
            painter.setPen(_NO_PEN)
            painter.setBrush(_brush(self.badge_colour))
            painter.drawEllipse(centre, BADGE_RADIUS, BADGE_RADIUS)
            painter.setPen(_colour("#ffffff"))
            painter.setFont(_font("bold"))
            painter.drawText(QRectF(centre.x() - BADGE_RADIUS, centre.y() - BADGE_RADIUS, 2 * BADGE_RADIUS,
                                    2 * BADGE_RADIUS), _CENTRE, "!")

    # hovering a port makes it larger, as a hint that a wire can be dragged from it
    def hoverMoveEvent(self, event):  # noqa: N802
        port = self.node.port_near(event.pos())
        for p in self.node.ports():
            p.set_hover(p is port)

    def hoverLeaveEvent(self, event):  # noqa: N802
        for p in self.node.ports():
            p.set_hover(False)


class NodeItem(QGraphicsPathItem):
    def __init__(self, node_id: str, scene_ref):
        super().__init__()
        self.node_id = node_id
        self.scene_ref = scene_ref
        self.settled_rect: QRectF | None = None  # where it was before a move, until the graph records the move
        self.column: int | None = None           # where the scene has filed it (GraphScene._file)
        self.setFlags(_NODE_FLAGS)
        self.setZValue(1)
        self.setCursor(_OPEN_HAND)
        self.face = NodeFace(self)
        self.inputs: list[PortItem] = []
        self.output: PortItem | None = None
        self.height = HEADER + 44
        self.detail = True
        self.frozen = False  # its weights do not train (drawn cooler, a snowflake before its name)
        self._brushes = ("", "")  # the body's brush colours: with detail, and far out
        self._cards: list[QGraphicsPathItem] = []  # a module instance: the cards drawn behind it

    # ---------------------------------------------------------------- content
    def refresh(self, node, analysis=None, force: bool = False) -> bool:
        """Show the node's name, type, key parameters, output shape, params and diagnostics.
        Returns whether anything changed (nothing is redrawn when the inputs are the same)."""
        wired = len(self.scene_ref.graph.inputs_of(node.id))
        module_ports = self.scene_ref.module_ports(node) if node.type == MODULE else None
        key = (node.name, node.type, repr(node.params), wired, module_ports,
               analysis.specs.get(node.id) if analysis else None,
               # the face shows the analysed parameters: after an edit they arrive with the next analysis
               repr(analysis.params.get(node.id)) if analysis else None,
               analysis.param_counts.get(node.id) if analysis else None,
               analysis.frozen_counts.get(node.id) if analysis else None,
               tuple(d.message for d in analysis.for_node(node.id)) if analysis else (), theme.colours()["node"])
        if key == getattr(self, "_face_key", None) and not force:
            return False
        self._face_key = key
        self._draw(node, analysis, wired, module_ports)
        return True

    def _draw(self, node, analysis, wired: int, module_ports: tuple[str, ...] | None = None) -> None:
        c = theme.colours()
        face = self.face
        block = REGISTRY.get(node.type)
        category = block.category if block else "Core"
        params = (analysis.params.get(node.id) if analysis else None) or (block.defaults() if block else {})
        # from the node's own parameters, so a block looks frozen the moment it is, not an analysis later
        self.frozen = is_frozen(node, analysis)
        face.title.setText(f"{SNOWFLAKE} {_elide(node.name, 20)}" if self.frozen else _elide(node.name, 22))
        short = ""
        if block:
            try:
                short = block.short(params)
            except Exception:  # a half-typed value must not break the face
                short = ""
        face.subtitle.setText(_elide(node.type + (f"  ·  {short}" if short else ""), 30))
        spec = analysis.specs.get(node.id) if analysis else None
        info = []
        if spec is not None:
            info.append("→ " + str(spec) + (" int64" if spec.dtype == "int64" else ""))
        count = analysis.param_counts.get(node.id) if analysis else None
        if count:
            frozen = analysis.frozen_counts.get(node.id, 0) if analysis else 0
            # frozen: the snowflake says so already; "frozen" instead of "params" keeps the line short
            info.append(f"{count:,} frozen" if self.frozen else
                        f"{count:,} params, {frozen:,} frozen" if frozen else f"{count:,} params")
        face.info.setText(_elide("   ".join(info), 34))
        # ports: inputs from the declaration (merges show one more than they have wired)
        n_in = 0
        names: tuple[str, ...] = ()
        if node.type == MODULE:  # the module's Inputs, named as they are (one per wire while it is unknown)
            n_in, names = (len(module_ports), module_ports) if module_ports is not None else (max(1, wired), ())
        elif block:
            ports = block.ports_for(params if isinstance(params, dict) else block.defaults())
            if ports.variadic:
                n_in = max(ports.min_count, wired + 1)
                if ports.max_count:
                    n_in = min(n_in, ports.max_count)
            else:
                n_in, names = ports.fixed, ports.names
        if self._set_ports(n_in, names, has_output=node.type != "Output"):
            face._shape = None
        body_h = max(HEADER + 44, HEADER + 18 + n_in * PORT_GAP)
        if body_h != self.height or self.path().isEmpty():
            self.height = body_h
            self.setPath(_body_path(body_h))
            face.set_height(body_h)
            for card in self._cards:
                card.setPath(_body_path(body_h))
        stripe = theme.CATEGORY_COLOURS.get(category, c["highlight"])
        if self.frozen:  # cooler and greyer than its trainable neighbours, near and far
            ice = c.get("frozen", "#8fd3ff")
            stripe = _frozen_stripe(stripe, ice)
            self._brushes = (_mix(c["node"], ice, FROZEN_BODY_MIX), _tint(stripe, c["node"]))
        else:
            self._brushes = (c["node"], _tint(stripe, c["node"]))
        face.stripe_colour = stripe
        self.setBrush(_brush(self._brushes[0 if self.detail else 1]))
        self._set_border(self.isSelected())
        self._set_cards(0 if node.type != MODULE else 2 if _repeat(node.params) > 1 else 1, c)
        diags = analysis.for_node(node.id) if analysis else []
        if diags:
            worst = "error" if any(d.severity == "error" for d in diags) else "warning"
            face.badge_colour = c[worst]
            self.setToolTip("\n".join(d.message for d in diags))
        else:
            face.badge_colour = None
            if node.type == MODULE:
                self.setToolTip(f"An instance of the module {node.params.get('module')}: double-click to open it. "
                                "Every instance follows the module's definition, each with weights of its own.")
            else:
                self.setToolTip(block.help if block else f"unknown block type {node.type!r}")
            if self.frozen:
                self.setToolTip("Frozen: its weights do not train, and it runs in evaluation mode while the rest "
                                "trains. Right-click > Unfreeze, or the Trainable box in the inspector.\n\n"
                                + self.toolTip())
        face.update()

    def _set_cards(self, count: int, c: dict) -> None:
        """A module instance looks like a stack of cards (two when it repeats)."""
        while len(self._cards) > count:
            card = self._cards.pop()
            card.setParentItem(None)
            if card.scene() is not None:
                card.scene().removeItem(card)
        while len(self._cards) < count:
            card = QGraphicsPathItem(self)
            card.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent)
            card.setAcceptedMouseButtons(_NO_BUTTON)
            card.setPos(STACK_OFFSET * (len(self._cards) + 1), STACK_OFFSET * (len(self._cards) + 1))
            self._cards.append(card)
        for card in self._cards:
            card.setPath(_body_path(self.height))
            card.setBrush(_brush(self._brushes[0] or c["node"]))   # a frozen instance's cards are cool too
            card.setPen(_pen(c["node_border"], 1.2))

    def set_detail(self, on: bool) -> None:
        """Far out a block is a plain box tinted with its category colour; close in it has its face."""
        if on == self.detail:
            return
        self.detail = on
        self.face.setVisible(on)
        if self._brushes[0]:
            self.setBrush(_brush(self._brushes[0 if on else 1]))

    def _set_ports(self, n_in: int, names: tuple[str, ...], has_output: bool) -> bool:
        """Make the ports the block has now; returns whether their number changed."""
        before = (len(self.inputs), self.output is not None)
        del self.inputs[n_in:]
        while len(self.inputs) < n_in:
            self.inputs.append(PortItem(self, "in", len(self.inputs)))
        for i, port in enumerate(self.inputs):
            port.label = names[i] if i < len(names) else ""
        if has_output and self.output is None:
            self.output = PortItem(self, "out", 0, "output")
        elif not has_output:
            self.output = None
        return before != (len(self.inputs), self.output is not None)

    def ports(self) -> list[PortItem]:
        return self.inputs if self.output is None else [*self.inputs, self.output]

    def port_near(self, local: QPointF, radius: float = PORT_HIT) -> PortItem | None:
        """The port within `radius` of a point in this item's coordinates (the nearest one)."""
        best, best_d = None, radius * radius
        for port in self.ports():
            p = port.local_pos()
            d = (p.x() - local.x()) ** 2 + (p.y() - local.y()) ** 2
            if d <= best_d:
                best, best_d = port, d
        return best

    def input_pos(self, index: int) -> QPointF:
        return self.mapToScene(QPointF(0, HEADER + 14 + index * PORT_GAP))

    def output_pos(self) -> QPointF:
        return self.mapToScene(QPointF(NODE_WIDTH, HEADER + 14))

    def _set_border(self, selected: bool) -> None:
        c = theme.colours()
        if selected:
            self.setPen(_pen(c["selection"], 2.2))
        elif self.frozen:
            self.setPen(_pen(_mix(c["node_border"], c.get("frozen", "#8fd3ff"), 0.6), 1.4))
        else:
            self.setPen(_pen(c["node_border"], 1.2))

    # ---------------------------------------------------------------- behaviour
    def itemChange(self, change, value):  # noqa: N802
        # identity tests: Qt calls this for every change, and enum equality is slow in Python
        if change is _POS_CHANGED:
            self.scene_ref.node_item_moved(self)
        elif change is _POS_CHANGE:
            if self.settled_rect is None:
                self.settled_rect = self.sceneBoundingRect()
            if self.scene_ref.snap:
                return QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        elif change is _SELECTED_CHANGED:
            self._set_border(bool(value))
        return value


_POS_CHANGE = QGraphicsItem.GraphicsItemChange.ItemPositionChange
_POS_CHANGED = QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged
_SELECTED_CHANGED = QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged


# ----------------------------------------------------------------------------- wires

class EdgeItem(QGraphicsPathItem):
    """A wire from an output to an input port, labelled with the tensor shape it carries."""

    def __init__(self, src: str, dst: str, port: int):
        super().__init__()
        self._shape: QPainterPath | None = None
        self.src, self.dst, self.port = src, dst, port
        self.setZValue(0)
        self.setFlags(_EDGE_FLAGS)
        self.setAcceptHoverEvents(True)
        self.label = QGraphicsSimpleTextItem(self)
        self.label.setFont(_font("label"))
        self.bad = False
        self.routed = False  # bent around blocks that sit in its way
        self.long = False    # long enough for a block to sit in its way
        self._hover = False
        self._mid = QPointF()  # the middle of the wire, where its label sits
        self._colour = theme.colours()["wire"]
        self._apply_pen()

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.src, self.dst, self.port)

    def _apply_pen(self) -> None:
        width = 2.6 if (self._hover or self.isSelected()) else 1.8
        self.setPen(_pen(self._colour, width, round_cap=True))

    def set_state(self, shape_text: str | None, bad: bool, message: str = "") -> None:
        c = theme.colours()
        self.bad = bad
        self._colour = c["error"] if bad else c["wire"]
        self._apply_pen()
        self.label.setText(shape_text or "")
        self.label.setBrush(_brush(self._colour if bad else c["muted"]))
        self.setToolTip(message or (f"carries {shape_text}" if shape_text else ""))
        self._place_label()

    def update_path(self, start: QPointF, end: QPointF, obstacles=()) -> None:
        """A curve from `start` to `end`; when it would pass behind one of the blocks in
        `obstacles` (their scene rects), it arcs above or below them instead."""
        path, self.routed = route(start, end, obstacles)
        self.long = end.x() - start.x() >= SKIP_MIN_DX
        # a plain wire is symmetric about its middle; a detour is measured
        self._mid = path.pointAtPercent(0.5) if self.routed else (start + end) / 2
        self._shape = None
        self.setPath(path)
        self._place_label()

    def _place_label(self) -> None:
        if not self.label.text():
            return
        mid = self._mid
        rect = self.label.boundingRect()
        self.label.setPos(mid.x() - rect.width() / 2, mid.y() - rect.height() - 3)

    def shape(self) -> QPainterPath:  # a wide hit area: thin wires are easy to click
        if self._shape is None:  # made once per path: Qt also asks for it to know the bounding rect
            stroker = QPainterPathStroker()
            stroker.setWidth(14)
            self._shape = stroker.createStroke(self.path())
        return self._shape

    def hoverEnterEvent(self, event):  # noqa: N802
        self._hover = True
        self._apply_pen()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):  # noqa: N802
        self._hover = False
        self._apply_pen()
        super().hoverLeaveEvent(event)


def wire_path(start: QPointF, end: QPointF) -> QPainterPath:
    path = QPainterPath(start)
    dx = max(abs(end.x() - start.x()) * 0.5, 40.0)
    path.cubicTo(QPointF(start.x() + dx, start.y()), QPointF(end.x() - dx, end.y()), end)
    return path


DETOUR_GAP = 26.0   # how far a detour passes above or below the blocks it avoids
SKIP_MIN_DX = 110.0  # wires shorter than this (between neighbouring columns) have no block to skip


def route(start: QPointF, end: QPointF, obstacles=()) -> tuple[QPainterPath, bool]:
    """The wire's path and whether it detours. The plain curve is kept unless it passes through
    one of the `obstacles` (scene rects of other blocks); then the wire rises (or drops) just
    after leaving its block to a lane clear of every block along the way, runs along it, and
    comes back down into its input: a skip connection arcs over the blocks it skips."""
    sx, sy, ex, ey = start.x(), start.y(), end.x(), end.y()
    if not obstacles or ex - sx < SKIP_MIN_DX:
        return wire_path(start, end), False
    # the plain curve stays between its ends' heights: only blocks overlapping that band can be in the way
    low, high = min(sy, ey), max(sy, ey)
    near = [r for r in obstacles if r.top() <= high and r.bottom() >= low]
    if not near:
        return wire_path(start, end), False
    dx = max(abs(ex - sx) * 0.5, 40.0)
    points = [_cubic(t / 24, sx, sy, sx + dx, sy, ex - dx, ey, ex, ey) for t in range(1, 24)]
    blocking = [r for r in near if any(r.contains(x, y) for x, y in points)]
    if not blocking:
        return wire_path(start, end), False
    rise = min(45.0, (ex - sx) / 3)
    x1, x2 = sx + rise, ex - rise
    along = [r for r in obstacles if r.right() > x1 and r.left() < x2]

    def lane_from(y: float, step: int) -> float:
        half = DETOUR_GAP / 2
        while True:
            hit = [r for r in along if r.top() - half < y < r.bottom() + half]
            if not hit:
                return y
            y = (min(r.top() for r in hit) - DETOUR_GAP) if step < 0 else (max(r.bottom() for r in hit) + DETOUR_GAP)

    up = lane_from(min(r.top() for r in blocking) - DETOUR_GAP, -1)
    down = lane_from(max(r.bottom() for r in blocking) + DETOUR_GAP, 1)
    mid = (sy + ey) / 2
    lane = up if abs(mid - up) <= abs(down - mid) else down
    path = QPainterPath(start)
    a = rise * 0.8
    path.cubicTo(QPointF(sx + a, sy), QPointF(x1 - a * 0.25, lane), QPointF(x1 + a * 0.5, lane))
    path.lineTo(QPointF(x2 - a * 0.5, lane))
    path.cubicTo(QPointF(x2 + a * 0.25, lane), QPointF(ex - a, ey), end)
    return path, True


def _cubic(t: float, x0, y0, x1, y1, x2, y2, x3, y3) -> tuple[float, float]:
    u = 1 - t
    a, b, c, d = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def _repeat(params: dict) -> int:
    value = params.get("repeat", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
