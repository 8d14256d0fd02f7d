"""Quick add: a small search popup that picks a block type without leaving the keyboard.

It never blocks: `popup()` shows it and returns; the answer arrives later as `chosen(type)`
or `cancelled()`. The canvas opens it on a double-click, or when a wire is dropped on empty
space, listing only the blocks that fit the dragged port.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QRect, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.blocks import CATEGORIES, REGISTRY, Block
from engine.blocks.module import MODULE

from .mime import MODULE_PREFIX
from .palette import SECONDARY_ROLE, TYPE_ROLE, SecondaryTextDelegate, block_tooltip, category_icon, match_rank

VISIBLE_ROWS = 12


@dataclass(frozen=True)
class ModuleEntry:
    """One of the project's modules, offered by name beside the blocks (it ranks like a block type)."""
    type: str                 # the module's name
    category: str = "Modules"
    keras: str = ""
    help: str = ""

    @property
    def add_as(self) -> str:
        return MODULE_PREFIX + self.type


def rank(blocks: list[Block], text: str) -> list[Block]:
    """Blocks whose type or Keras name starts with `text`, then those that contain it (match_rank);
    ties keep the catalogue's order."""
    needle = text.strip().lower()
    if not needle:
        return list(blocks)
    scored = [(match_rank(b, needle), i, b) for i, b in enumerate(blocks)]
    return [b for score, _, b in sorted((t for t in scored if t[0] is not None), key=lambda t: (t[0], t[1]))]


class QuickAdd(QFrame):
    """The popup. `popup()` shows it; `chosen(type)` or `cancelled()` tells how it ended."""

    chosen = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.Popup | Qt.FramelessWindowHint)
        self.setFrameShape(QFrame.StyledPanel)
        self.edit = QLineEdit(placeholderText="Add block…")
        self.list = QListWidget()
        self.list.setItemDelegate(SecondaryTextDelegate(self.list))
        self.list.setFocusPolicy(Qt.NoFocus)  # the line edit keeps the keyboard
        self.list.setUniformItemSizes(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.edit)
        layout.addWidget(self.list)
        self.setFixedWidth(300)

        self._blocks: list[Block] = self._catalogue()
        self._icons = {c: category_icon(c) for c in CATEGORIES}
        self._finished = True
        self.edit.textChanged.connect(self._refilter)
        self.edit.installEventFilter(self)
        self.list.itemClicked.connect(lambda item: self._choose(item.data(TYPE_ROLE)))

    @staticmethod
    def _catalogue(allowed: list[str] | None = None) -> list[Block]:
        order = {c: i for i, c in enumerate(CATEGORIES)}
        blocks = sorted((b for b in REGISTRY.values() if b.type != MODULE),  # modules are offered by name
                        key=lambda b: order.get(b.category, len(order)))
        if allowed is not None:
            wanted = set(allowed)
            blocks = [b for b in blocks if b.type in wanted]
        return blocks

    # ------------------------------------------------------------------ API
    def popup(self, global_pos: QPoint, text: str = "", allowed: list[str] | None = None,
              modules: list[str] = ()) -> None:
        """Show at `global_pos` (kept on screen), searching for `text` among `allowed` types
        (all blocks when None) and the project's `modules` (chosen as "module:" + name). Returns at once."""
        self._blocks = [ModuleEntry(name, help=f"An instance of this project's module {name}.")
                        for name in modules] + self._catalogue(allowed)
        self._finished = False
        if self.edit.text() == text:
            self._refilter(text)  # the catalogue may have changed; textChanged will not fire
        else:
            self.edit.setText(text)
        self.adjustSize()
        self.move(self._on_screen(global_pos))
        self.show()
        self.raise_()
        self.edit.setFocus(Qt.PopupFocusReason)

    def current_type(self) -> str | None:
        item = self.list.currentItem()
        return item.data(TYPE_ROLE) if item is not None else None

    # ------------------------------------------------------------------ internals
    def _refilter(self, text: str) -> None:
        self.list.clear()
        for block in rank(self._blocks, text):
            item = QListWidgetItem(self._icons.get(block.category) or category_icon(block.category), block.type)
            item.setData(TYPE_ROLE, getattr(block, "add_as", block.type))
            item.setData(SECONDARY_ROLE, block.category)
            item.setToolTip(block_tooltip(block))
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        rows = max(1, min(VISIBLE_ROWS, self.list.count()))
        row_height = self.list.sizeHintForRow(0) if self.list.count() else self.fontMetrics().height() + 6
        self.list.setFixedHeight(rows * row_height + 2 * self.list.frameWidth())
        if self.isVisible():
            # shrink with the list as the user types (adjustSize keeps a window at least 100 px tall)
            self.layout().activate()
            self.resize(self.width(), self.layout().sizeHint().height())

    def _on_screen(self, pos: QPoint) -> QPoint:
        screen = QGuiApplication.screenAt(pos) or QGuiApplication.primaryScreen()
        area: QRect = screen.availableGeometry()
        size = self.sizeHint().expandedTo(self.size())
        x = max(area.left(), min(pos.x(), area.right() - size.width() + 1))
        y = max(area.top(), min(pos.y(), area.bottom() - size.height() + 1))
        return QPoint(x, y)

    def _choose(self, type_name: str | None) -> None:
        if not type_name:
            return
        self._finished = True
        self.hide()
        self.chosen.emit(type_name)

    def _move(self, step: int) -> None:
        count = self.list.count()
        if count:
            self.list.setCurrentRow(max(0, min(count - 1, self.list.currentRow() + step)))

    def eventFilter(self, watched, event) -> bool:
        if watched is self.edit and event.type() == QEvent.KeyPress:
            key = event.key()
            page = max(1, VISIBLE_ROWS - 1)
            steps = {Qt.Key_Up: -1, Qt.Key_Down: 1, Qt.Key_PageUp: -page, Qt.Key_PageDown: page}
            if key in steps:
                self._move(steps[key])
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter):
                self._choose(self.current_type())
                return True
            if key == Qt.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(watched, event)

    def hideEvent(self, event) -> None:
        # Escape, a click outside, or the window losing focus: all end the popup unanswered.
        super().hideEvent(event)
        if not self._finished:
            self._finished = True
            self.cancelled.emit()
