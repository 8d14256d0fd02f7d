"""A minimap in the corner of the canvas: the whole graph small, the visible part framed.
Click or drag in it to move the view. It shows itself only when the graph does not fit."""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGraphicsView

from .. import theme

SIZE = (220, 150)
REFRESH_MS = 120


class MiniMap(QGraphicsView):
    def __init__(self, main_view: QGraphicsView):
        super().__init__(main_view.scene(), main_view)
        self.main_view = main_view
        self.setInteractive(False)
        self.setRenderHints(QPainter.Antialiasing)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.StyledPanel)
        self.setFixedSize(*SIZE)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        self.setViewportUpdateMode(QGraphicsView.NoViewportUpdate)  # repainted on our timer only
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        main_view.scene().changed.connect(lambda _: self._timer.start())
        main_view.horizontalScrollBar().valueChanged.connect(lambda _: self._timer.start())
        main_view.verticalScrollBar().valueChanged.connect(lambda _: self._timer.start())
        self.hide()

    def content_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.scene().node_items.values():
            rect = rect.united(item.sceneBoundingRect())
        return rect.adjusted(-40, -40, 40, 40)

    def visible_rect(self) -> QRectF:
        return self.main_view.mapToScene(self.main_view.viewport().rect()).boundingRect()

    def place(self) -> None:
        parent = self.main_view.viewport()
        self.move(parent.width() - self.width() - 12, parent.height() - self.height() - 12)

    def schedule(self) -> None:
        self._timer.start()

    def refresh(self) -> None:
        content = self.content_rect()
        needed = bool(self.scene().node_items) and not self.visible_rect().contains(content)
        self.setVisible(needed)
        if needed:
            self.place()
            self.fitInView(content, Qt.KeepAspectRatio)
            self.viewport().update()

    def drawForeground(self, painter, rect):
        c = theme.colours()
        frame = QColor(c["highlight"])
        painter.setPen(QPen(frame, 0))
        fill = QColor(frame)
        fill.setAlpha(40)
        painter.setBrush(fill)
        painter.drawRect(self.visible_rect())

    def drawBackground(self, painter, rect):
        painter.fillRect(rect, QColor(theme.colours()["alt"]))

    def mousePressEvent(self, event):
        self._go(event)

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.LeftButton:
            self._go(event)

    def _go(self, event) -> None:
        self.main_view.centerOn(self.mapToScene(event.position().toPoint()))
        self.refresh()
        event.accept()

    def wheelEvent(self, event):
        event.ignore()
