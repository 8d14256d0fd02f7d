"""GraphView: zoom around the cursor, pan (middle button or Space+drag), rubber-band
selection, keyboard nudges, and typing or Tab to open the quick-add search."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QTransform
from PySide6.QtWidgets import QGraphicsView

from .items import DETAIL_TEXT_MIN_LOD, NodeItem

MIN_ZOOM, MAX_ZOOM = 0.005, 3.0
DETAIL_ZOOM = 0.3  # below this, blocks are drawn as plain boxes
READABLE_ZOOM = DETAIL_TEXT_MIN_LOD  # fitting never zooms out further: names and types stay legible
FIT_MAX_ZOOM = 1.25  # nor in further than this on a small graph
FIT_MARGIN = 30.0    # scene units around the blocks a fit shows


class GraphView(QGraphicsView):
    """Fitting (Home, opening a graph, Arrange) keeps block names readable: a graph too big for the
    view at READABLE_ZOOM is shown from its start (the Input side) with scroll bars, and Home
    pressed again then shows the whole of it however small. A fitted view stays fitted when the
    view is resized (a side panel collapsed, the window maximised) until the person zooms or scrolls."""

    quickAddRequested = Signal(QPointF, str)  # scene position, text typed so far
    message = Signal(str)                     # a hint for the status bar
    escapeUnused = Signal()                   # Escape that nothing on the canvas took (leaves a module)

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
        self.keep_fitted = False     # refit on resize: the view shows what a fit chose, untouched since
        self._clipped_fit = None     # the view a readable Fit All left when the graph did not fit in it
        self._fit_whole = False      # the last fit showed the whole graph, however small
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.actionTriggered.connect(lambda _action: self.user_moved())  # the person, never setValue
        from .minimap import MiniMap
        self.minimap = MiniMap(self)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.keep_fitted and self.scene() is not None and self.scene().node_items:
            self._fit(whole=self._fit_whole, hint=False)
        self.minimap.refresh()

    def user_moved(self) -> None:
        """The person chose another view (zoom, scroll, pan, minimap): resizing no longer refits."""
        self.keep_fitted = False

    def scale(self, sx: float, sy: float) -> None:
        super().scale(sx, sy)
        self._zoom_changed()

    def resetTransform(self) -> None:
        super().resetTransform()
        self._zoom_changed()

    def fitInView(self, *args, **kwargs) -> None:
        super().fitInView(*args, **kwargs)
        self._zoom_changed()

    def set_zoom(self, zoom: float) -> None:
        self.setTransform(QTransform.fromScale(zoom, zoom))
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
        self.user_moved()
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

    def fit_items(self, items, readable: bool = True) -> bool:
        """Show the items as large as fits (at most FIT_MAX_ZOOM), but, when `readable`, never
        smaller than READABLE_ZOOM: then the start of them (left, top) is shown and the rest is a
        scroll away. Returns whether all of them are in view."""
        rect = QRectF()
        for item in items:
            rect = rect.united(item.sceneBoundingRect())
        if rect.isNull():
            return True
        rect = rect.adjusted(-FIT_MARGIN, -FIT_MARGIN, FIT_MARGIN, FIT_MARGIN)
        port = self.viewport().rect()
        width, height = max(port.width(), 1), max(port.height(), 1)
        zoom = min(FIT_MAX_ZOOM, width / rect.width(), height / rect.height())
        zoom = max(zoom, READABLE_ZOOM if readable else MIN_ZOOM)
        self.set_zoom(zoom)
        shown_w, shown_h = width / zoom, height / zoom
        x = rect.center().x() if rect.width() <= shown_w else rect.left() + shown_w / 2
        y = rect.center().y() if rect.height() <= shown_h else rect.top() + shown_h / 2
        self.centerOn(QPointF(x, y))
        return rect.width() <= shown_w + 1 and rect.height() <= shown_h + 1

    def fit_all(self) -> bool:
        """Home: fit the graph at a readable zoom; pressed again on that view, the whole graph
        however small. The view then stays fitted through resizes until the person moves it.
        Returns whether the whole graph is in view."""
        whole = self._clipped_fit is not None and self._clipped_fit == self._view_key()
        return self._fit(whole=whole, hint=True)

    def show_graph(self) -> bool:
        """After opening or arranging a graph: fit it at a readable zoom, without a hint."""
        return self._fit(whole=False, hint=False)

    def _fit(self, whole: bool, hint: bool) -> bool:
        fits = self.fit_items(list(self.scene().node_items.values()), readable=not whole)
        self.keep_fitted, self._fit_whole = True, whole
        self._clipped_fit = None if fits or whole else self._view_key()
        if hint and self._clipped_fit is not None:
            self.message.emit("The graph is larger than the view at a readable size: scroll to see the rest, "
                              "or press Home again to see all of it.")
        return fits

    def _view_key(self) -> tuple:
        shown = self.mapToScene(self.viewport().rect()).boundingRect()
        return (round(self.zoom(), 6), round(shown.x()), round(shown.y()), round(shown.width()),
                round(shown.height()), len(self.scene().node_items))

    def fit_selection(self) -> None:
        items = [i for i in self.scene().selectedItems() if isinstance(i, NodeItem)]
        self.fit_items(items or [i for i in self.scene().items() if isinstance(i, NodeItem)])
        self.keep_fitted = False

    def centre_on_node(self, node_id: str) -> None:
        item = self.scene().node_items.get(node_id)
        if item is not None:
            self.user_moved()
            self.centerOn(item.sceneBoundingRect().center())

    # ---------------------------------------------------------------- panning
    def mousePressEvent(self, event):
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._pan_from = event.position()
            self.user_moved()
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
        if key == Qt.Key_Escape:
            event.ignore()
            super().keyPressEvent(event)  # the gesture under way, if any, takes it (GraphScene)
            if not event.isAccepted():
                event.accept()
                self.escapeUnused.emit()
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
