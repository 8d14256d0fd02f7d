"""A minimap in the corner of the canvas: the whole graph small, the visible part framed.
Click or drag in it to move the view. It shows itself only when the graph does not fit.

The graph is drawn once into a cached pixmap (blocks as boxes in their category colour, wires
as lines), again only when the graph changes (debounced); scrolling and zooming the canvas
only redraws the frame over that picture.
"""
from __future__ import annotations

from PySide6.QtCore import QLineF, QPoint, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QFrame, QGraphicsView

from .. import theme
from .items import HEADER, NODE_WIDTH, PORT_GAP

SIZE = (220, 150)
REFRESH_MS = 120
MARGIN = 40.0


BIG = 1.5   # a graph this many times the view's width or height gets a minimap

class MiniMap(QFrame):
    def __init__(self, main_view: QGraphicsView):
        super().__init__(main_view)
        self.main_view = main_view
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedSize(*SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        self._content = QRectF()      # the scene rect the picture shows
        self._pixmap: QPixmap | None = None
        self._dirty = True            # the graph changed since the picture was drawn
        self._scale, self._offset = 1.0, QPointF()
        self.renders = 0              # how often the picture was drawn (for tests and benchmarks)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._scene = None
        self._connect_scene()
        main_view.horizontalScrollBar().valueChanged.connect(self.view_changed)
        main_view.verticalScrollBar().valueChanged.connect(self.view_changed)
        self.hide()

    def _connect_scene(self) -> None:
        scene = self.main_view.scene()
        if scene is self._scene:
            return
        self._scene = scene
        signal = getattr(scene, "contentChanged", None)
        (signal or scene.changed).connect(self.schedule)

    # ---------------------------------------------------------------- geometry
    def content_rect(self) -> QRectF:
        items = self.main_view.scene().node_items.values()
        if not items:
            return QRectF()
        xs, ys, bottoms = [], [], []
        for item in items:
            pos = item.pos()
            xs.append(pos.x())
            ys.append(pos.y())
            bottoms.append(pos.y() + item.height)
        left, top = min(xs), min(ys)
        return QRectF(left - MARGIN, top - MARGIN, max(xs) + NODE_WIDTH - left + 2 * MARGIN,
                      max(bottoms) - top + 2 * MARGIN)

    def visible_rect(self) -> QRectF:
        return self.main_view.mapToScene(self.main_view.viewport().rect()).boundingRect()

    def mapFromScene(self, point: QPointF) -> QPoint:  # noqa: N802 (as a QGraphicsView would say it)
        return (self._offset + point * self._scale).toPoint()

    def mapToScene(self, point) -> QPointF:  # noqa: N802
        return (QPointF(point) - self._offset) / self._scale

    def place(self) -> None:
        parent = self.main_view.viewport()
        self.move(parent.width() - self.width() - 12, parent.height() - self.height() - 12)

    # ---------------------------------------------------------------- updates
    def schedule(self, *_args) -> None:
        """The graph changed: draw the picture again once the changes pause."""
        self._dirty = True
        self._timer.start()

    def _needed(self) -> bool:
        """For big graphs only: one much larger than the view, or one scrolled out of sight. A graph
        that merely pokes out of the view gets no minimap: it would cover the blocks being worked on."""
        content, visible = self._content, self.visible_rect()
        if content.isNull() or visible.contains(content):
            return False
        return (content.width() > BIG * visible.width() or content.height() > BIG * visible.height()
                or not visible.intersects(content))

    def view_changed(self, *_args) -> None:
        """The canvas scrolled or zoomed: show or hide, and move the frame; the picture stays."""
        if self._dirty or self._content.isNull():
            self._timer.start()
            return
        needed = self._needed()
        if needed and self._pixmap is None:
            self.refresh()
            return
        if needed != self.isVisible():
            self.setVisible(needed)
            if needed:
                self.place()
        if needed:
            self.update()

    def refresh(self) -> None:
        """Measure the graph, show or hide, and draw the picture if it is out of date."""
        self._timer.stop()
        self._connect_scene()
        if self._dirty:
            self._content = self.content_rect()
            self._pixmap = None
            self._dirty = False
        needed = self._needed()
        self.setVisible(needed)
        if needed:
            self.place()
            if self._pixmap is None or self._pixmap.size() != self.size() * self.devicePixelRatioF():
                self._render()
            self.update()

    def _render(self) -> None:
        """Draw the graph into the cached pixmap: boxes in their category colours, wires as lines."""
        c = theme.colours()
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(self.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(QColor(c["alt"]))
        content = self._content
        w, h = self.width() - 4.0, self.height() - 4.0
        scale = min(w / content.width(), h / content.height())
        self._scale = scale
        self._offset = QPointF(2 + (w - content.width() * scale) / 2 - content.left() * scale,
                               2 + (h - content.height() * scale) / 2 - content.top() * scale)
        scene = self.main_view.scene()
        nodes = scene.node_items
        where = {node_id: (item.pos(), item) for node_id, item in nodes.items()}
        painter = QPainter(pixmap)
        painter.translate(self._offset)
        painter.scale(scale, scale)
        lines = []
        out_dx, out_dy = NODE_WIDTH, HEADER + 14
        for edge in scene.edge_items.values():
            src, dst = where.get(edge.src), where.get(edge.dst)
            if src is not None and dst is not None:
                a, b = src[0], dst[0]
                lines.append(QLineF(a.x() + out_dx, a.y() + out_dy, b.x(), b.y() + out_dy + edge.port * PORT_GAP))
        painter.setPen(QPen(QColor(c["wire"]), 0))  # cosmetic: one pixel however small the graph
        painter.drawLines(lines)
        painter.setPen(Qt.PenStyle.NoPen)
        by_colour: dict[str, list[QRectF]] = {}
        error = c["error"]
        min_h = 1.5 / scale  # at least a pixel and a half, so a huge graph does not vanish
        for pos, item in where.values():
            face = item.face
            colour = error if face.badge_colour == error else face.stripe_colour
            by_colour.setdefault(colour, []).append(QRectF(pos.x(), pos.y(), NODE_WIDTH, max(item.height, min_h)))
        for colour, rects in by_colour.items():
            painter.setBrush(QColor(colour))
            painter.drawRects(rects)
        painter.end()
        self._pixmap = pixmap
        self.renders += 1

    def paintEvent(self, event):  # noqa: N802
        painter = QPainter(self)
        if self._pixmap is not None:
            painter.drawPixmap(0, 0, self._pixmap)
        frame = QColor(theme.colours()["highlight"])
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(frame, 1.0))
        fill = QColor(frame)
        fill.setAlpha(40)
        painter.setBrush(fill)
        visible = self.visible_rect()
        rect = QRectF(self.mapFromScene(visible.topLeft()), self.mapFromScene(visible.bottomRight()))
        painter.drawRect(rect.intersected(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)))
        painter.end()
        super().paintEvent(event)  # the frame of the widget

    # ---------------------------------------------------------------- moving the view
    def mousePressEvent(self, event):  # noqa: N802
        self._go(event)

    def mouseMoveEvent(self, event):  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event)

    def _go(self, event) -> None:
        moved = getattr(self.main_view, "user_moved", None)
        if moved is not None:
            moved()
        self.main_view.centerOn(self.mapToScene(event.position()))
        self.update()
        event.accept()

    def wheelEvent(self, event):  # noqa: N802
        event.ignore()
