"""GraphView: zoom around the cursor, pan (middle button or Space+drag), rubber-band
selection, keyboard nudges, and typing or Tab to open the quick-add search."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QGraphicsView

from .items import NodeItem

MIN_ZOOM, MAX_ZOOM = 0.005, 3.0
DETAIL_ZOOM = 0.3  # below this, blocks are drawn as plain boxes


class GraphView(QGraphicsView):
    quickAddRequested = Signal(QPointF, str)  # scene position, text typed so far

    def __init__(self, scene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.MinimalViewportUpdate)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self._pan_from: QPointF | None = None
        self._space = False
        from .minimap import MiniMap
        self.minimap = MiniMap(self)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.minimap.refresh()

    def scale(self, sx: float, sy: float) -> None:
        super().scale(sx, sy)
        self._zoom_changed()

    def resetTransform(self) -> None:
        super().resetTransform()
        self._zoom_changed()

    def fitInView(self, *args, **kwargs) -> None:
        super().fitInView(*args, **kwargs)
        self._zoom_changed()

    def _zoom_changed(self) -> None:
        detail = self.zoom() >= DETAIL_ZOOM
        if detail != self.scene().detail:
            self.scene().set_detail(detail)
            # far out, wires and boxes are a pixel or two wide: smoothing them costs more than it shows
            self.setRenderHint(QPainter.RenderHint.Antialiasing, detail)
        self.minimap.view_changed()

    # ---------------------------------------------------------------- zoom and fit
    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        target = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom() * factor))
        factor = target / self.zoom()
        if abs(factor - 1.0) > 1e-6:
            self.scale(factor, factor)

    def wheelEvent(self, event):
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.0015 ** delta)
            event.accept()
        else:
            super().wheelEvent(event)

    def fit_items(self, items) -> None:
        rect = QRectF()
        for item in items:
            rect = rect.united(item.sceneBoundingRect())
        if rect.isNull():
            return
        self.fitInView(rect.adjusted(-60, -60, 60, 60), Qt.KeepAspectRatio)
        if self.zoom() > 1.25:
            self.resetTransform()
            self.scale(1.25, 1.25)
        elif self.zoom() < MIN_ZOOM:
            self.resetTransform()
            self.scale(MIN_ZOOM, MIN_ZOOM)
        self.centerOn(rect.center())

    def fit_all(self) -> None:
        self.fit_items(list(self.scene().node_items.values()))

    def fit_selection(self) -> None:
        items = [i for i in self.scene().selectedItems() if isinstance(i, NodeItem)]
        self.fit_items(items or [i for i in self.scene().items() if isinstance(i, NodeItem)])

    def centre_on_node(self, node_id: str) -> None:
        item = self.scene().node_items.get(node_id)
        if item is not None:
            self.centerOn(item.sceneBoundingRect().center())

    # ---------------------------------------------------------------- panning
    def mousePressEvent(self, event):
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._pan_from = event.position()
            self.setCursor(Qt.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.LeftButton and event.modifiers() & (Qt.ShiftModifier | Qt.ControlModifier):
            # Shift adds to the selection, Ctrl toggles: Qt's rubber band with Ctrl keeps the old selection
            item = self.itemAt(event.position().toPoint())
            if isinstance(item, NodeItem) or (item is not None and isinstance(item.parentItem(), NodeItem)):
                node = item if isinstance(item, NodeItem) else item.parentItem()
                if event.modifiers() & Qt.ControlModifier:
                    node.setSelected(not node.isSelected())
                else:
                    node.setSelected(True)
                event.accept()
                return
            self.setRubberBandSelectionMode(Qt.IntersectsItemShape)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._pan_from is not None:
            self._pan_from = None
            self.setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event):
        if self.itemAt(event.position().toPoint()) is None:
            self.quickAddRequested.emit(self.mapToScene(event.position().toPoint()), "")
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    # ---------------------------------------------------------------- keys
    def keyPressEvent(self, event):
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.OpenHandCursor)
            event.accept()
            return
        arrows = {Qt.Key_Left: (-1, 0), Qt.Key_Right: (1, 0), Qt.Key_Up: (0, -1), Qt.Key_Down: (0, 1)}
        if key in arrows and self.scene().selected_node_ids():
            step = 1 if mods & Qt.ShiftModifier else 20
            dx, dy = arrows[key]
            self.scene().nudge(dx * step, dy * step)
            event.accept()
            return
        if key == Qt.Key_Tab:
            self.quickAddRequested.emit(self._cursor_scene_pos(), "")
            event.accept()
            return
        text = event.text()
        if text and text.isprintable() and text.strip() and not (mods & (Qt.ControlModifier | Qt.AltModifier)) \
                and (text.isalnum() or text == "_"):
            self.quickAddRequested.emit(self._cursor_scene_pos(), text)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.setCursor(Qt.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next_):  # keep Tab for the quick-add search
        return False

    def _cursor_scene_pos(self) -> QPointF:
        pos = self.mapFromGlobal(self.cursor().pos())
        if not self.viewport().rect().contains(pos):
            pos = self.viewport().rect().center()
        return self.mapToScene(pos)

    def centre_scene_pos(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())
