"""The bar above the canvas while a module is open: where the canvas is ("model › ResidualBlock"),
each level a click away, and a Back button. Hidden at the model's own level."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from . import theme
from .document import Document


class _ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" rather than widening the canvas (and so
    squeezing the side panels)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.width())
        painter.setPen(theme.colour("muted"))
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), text)


class ModuleBar(QFrame):
    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.setObjectName("module_bar")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 3, 8, 3)
        row.setSpacing(4)
        self.back_button = QToolButton(self)
        self.back_button.setObjectName("module_back")
        self.back_button.setText("‹ Back")
        self.back_button.setAutoRaise(True)
        self.back_button.setToolTip("Back out of this module (Escape)")
        self.back_button.clicked.connect(self.back)
        row.addWidget(self.back_button)
        self._crumbs = QHBoxLayout()
        self._crumbs.setSpacing(2)
        row.addLayout(self._crumbs)
        self.note = _ElidedLabel(self)
        self.note.setObjectName("module_note")
        row.addWidget(self.note, 1)
        self.crumbs: list[QWidget] = []   # the path's buttons (levels to go back to) and the current level's label
        document.shownChanged.connect(self.refresh)
        document.graphReplaced.connect(self.refresh)
        document.analysed.connect(lambda _analysis: self.refresh())   # counts, and a module renamed
        self.refresh()

    def back(self) -> None:
        """One level out."""
        self.document.leave_module(len(self.document.module_path) - 1)

    def refresh(self) -> None:
        path = self.document.module_path
        c = theme.colours()
        self.setStyleSheet(f"QFrame#module_bar {{ background: {c['alt']}; "
                           f"border-bottom: 1px solid {c['node_border']}; }}")
        for widget in self.crumbs:
            self._crumbs.removeWidget(widget)
            widget.deleteLater()
        self.crumbs = []
        if not path:
            self.hide()
            return
        names = [self.document.graph.name, *path]
        for depth, name in enumerate(names):
            if depth:
                arrow = QLabel("›", self)
                arrow.setStyleSheet(f"color: {c['muted']};")
                self._add(arrow)
            if depth < len(names) - 1:
                button = QToolButton(self)
                button.setText(name)
                button.setAutoRaise(True)
                button.setObjectName(f"crumb_{depth}")
                button.setToolTip("Back to the model" if depth == 0 else f"Back to the module {name}")
                button.setStyleSheet(f"color: {c['highlight']};")
                button.clicked.connect(lambda _=False, d=depth: self.document.leave_module(d))
                self._add(button)
            else:
                label = QLabel(name, self)
                label.setObjectName("crumb_current")
                label.setTextFormat(Qt.TextFormat.PlainText)
                label.setStyleSheet("font-weight: 600;")
                self._add(label)
        self._update_note()
        self.show()

    def _add(self, widget: QWidget) -> None:
        self._crumbs.addWidget(widget)
        self.crumbs.append(widget)

    def _update_note(self) -> None:
        path = self.document.module_path
        if not path:
            return
        uses = self.document.module_uses().get(path[-1], 0)
        self.note.setText(f"Every instance of {path[-1]} ({uses}) follows what you change here.  Esc: back")
        self.note.setToolTip(self.note.text())

    def texts(self) -> list[str]:
        """The path as shown, e.g. ["model", "ResidualBlock"] (tests, and what a screen reader reads)."""
        return [w.text() for w in self.crumbs if w.text() != "›"]
