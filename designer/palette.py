"""The block library: a search box over the block catalogue, grouped by category.

Blocks are dragged onto the canvas (the drag carries designer.mime.BLOCK_MIME), or added
with a double-click or Enter. The project's own modules are listed first, under "Modules", while
it has any (an instance of one is added the same way; its drag carries "module:" + its name); the
generic Module block type is not listed itself. The helpers here (swatch icons, tooltips, matching) are
shared with the quick-add popup so both describe a block the same way.
"""
from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QMimeData, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QDrag, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLineEdit,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.blocks import Block, blocks_by_category, get_block
from engine.blocks.module import MODULE

from . import theme
from .mime import BLOCK_MIME, MODULE_PREFIX

TYPE_ROLE = Qt.UserRole
SECONDARY_ROLE = Qt.UserRole + 1  # grey text drawn at the right of a row (Keras name, category)
SWATCH = 12  # logical pixels


# ----------------------------------------------------------------------------- shared helpers

def swatch_pixmap(colour: str, size: int = SWATCH, ratio: float = 1.0) -> QPixmap:
    """A small rounded square in `colour`, drawn at `ratio` device pixels per pixel."""
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    fill = QColor(colour)
    painter.setPen(fill.darker(140))
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(0.5, 0.5, size - 1, size - 1), 2.5, 2.5)
    painter.end()
    return pixmap


def category_icon(category: str, size: int = SWATCH) -> QIcon:
    """The category's colour swatch, with pixmaps for every screen's pixel ratio."""
    ratios = {1.0, 2.0} | {screen.devicePixelRatio() for screen in QGuiApplication.screens()}
    icon = QIcon()
    for ratio in sorted(ratios):
        icon.addPixmap(swatch_pixmap(theme.CATEGORY_COLOURS.get(category, "#888888"), size, ratio))
    return icon


def block_tooltip(block: Block) -> str:
    """The block's help as rich text, which Qt wraps in tooltips."""
    keras = f" &nbsp;<span style='color:{theme.colours()['muted']}'>Keras: {html.escape(block.keras)}</span>" \
        if block.keras and block.keras != block.type else ""
    return f"<p><b>{html.escape(block.type)}</b>{keras}</p><p>{html.escape(block.help)}</p>"


def block_matches(block: Block, text: str) -> bool:
    """Whether `text` occurs (case-insensitively) in the type, Keras name or help text."""
    needle = text.strip().lower()
    return not needle or any(needle in s.lower() for s in (block.type, block.keras, block.help))


def match_rank(block: Block, needle: str) -> tuple[int, int] | None:
    """How well `needle` (lower case) names `block`: its type starting with it first, then its Keras
    name starting with it, then either containing it; shorter names first ("gr": GRU before
    GroupNorm). None when neither name contains it."""
    for score, (name, test) in enumerate(((block.type.lower(), str.startswith), (block.keras.lower(), str.startswith),
                                          (block.type.lower(), str.__contains__),
                                          (block.keras.lower(), str.__contains__))):
        if name and test(name, needle):
            return score, len(block.type)
    return None


class SecondaryTextDelegate(QStyledItemDelegate):
    """Paints a row as usual, then its SECONDARY_ROLE text right-aligned in grey when the room the
    main text leaves holds all of it (a stub such as "MaxPoo…" says nothing; the tooltip has it)."""

    def paint(self, painter, option, index) -> None:
        super().paint(painter, option, index)
        secondary = index.data(SECONDARY_ROLE)
        if not secondary:
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else QApplication.style()
        text_rect = style.subElementRect(QStyle.SE_ItemViewItemText, opt, opt.widget)
        gap = opt.fontMetrics.horizontalAdvance("  ")
        left = text_rect.left() + opt.fontMetrics.horizontalAdvance(opt.text) + gap
        room = option.rect.adjusted(0, 0, -6, 0)
        room.setLeft(left)
        if room.width() <= gap or opt.fontMetrics.horizontalAdvance(secondary) > room.width():
            return
        text = secondary
        painter.save()
        selected = option.state & QStyle.State_Selected
        painter.setPen(option.palette.highlightedText().color() if selected else theme.colour("muted"))
        painter.setFont(opt.font)
        painter.drawText(room, Qt.AlignRight | Qt.AlignVCenter, text)
        painter.restore()


# ----------------------------------------------------------------------------- widgets

class _BlockTree(QTreeWidget):
    """The tree of blocks: drags carry the block type, Enter asks to add it."""

    activatedType = Signal(str)

    def mimeTypes(self) -> list[str]:
        return [BLOCK_MIME]

    def mimeData(self, items) -> QMimeData | None:
        types = [item.data(0, TYPE_ROLE) for item in items if item.data(0, TYPE_ROLE)]
        if not types:
            return None
        data = QMimeData()
        data.setData(BLOCK_MIME, types[0].encode("utf-8"))
        data.setText(types[0])
        return data

    def startDrag(self, actions) -> None:
        item = self.currentItem()
        data = self.mimeData([item]) if item is not None else None
        if data is None:
            return
        drag = QDrag(self)
        drag.setMimeData(data)
        icon = item.icon(0)
        drag.setPixmap(icon.pixmap(QSize(SWATCH * 2, SWATCH * 2), self.devicePixelRatioF()))
        drag.exec(Qt.CopyAction)

    def keyPressEvent(self, event) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and item is not None and item.data(0, TYPE_ROLE):
            self.activatedType.emit(item.data(0, TYPE_ROLE))
            return
        super().keyPressEvent(event)


class Palette(QWidget):
    """Search box over the block tree. Emits addRequested(type) on double-click or Enter ("module:Name"
    for one of the project's modules)."""

    addRequested = Signal(str)
    moduleOpenRequested = Signal(str)     # a module's context menu: Open Module
    moduleDeleteRequested = Signal(str)   # a module's context menu: Delete Module (offered when it is unused)
    moduleRenameRequested = Signal(str)   # a module's context menu: Rename Module…

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search blocks…", clearButtonEnabled=True)
        self.tree = _BlockTree()
        self._items: dict[str, QTreeWidgetItem] = {}
        self._categories: list[QTreeWidgetItem] = []
        self._modules: dict[str, QTreeWidgetItem] = {}
        self._module_uses: dict[str, int] = {}
        self._module_state: tuple | None = None
        self.modules_top = QTreeWidgetItem(["Modules"])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)

        self._setup_tree()
        self._fill()
        self.search.textChanged.connect(self.set_filter)
        self.search.returnPressed.connect(self._add_first_match)
        self.search.installEventFilter(self)
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.tree.activatedType.connect(self.addRequested)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)

    def _setup_tree(self) -> None:
        tree = self.tree
        tree.setHeaderHidden(True)
        tree.setRootIsDecorated(True)
        tree.setIndentation(14)
        tree.setIconSize(QSize(SWATCH, SWATCH))
        tree.setSelectionMode(QAbstractItemView.SingleSelection)
        tree.setDragEnabled(True)
        tree.setDragDropMode(QAbstractItemView.DragOnly)
        tree.setItemDelegate(SecondaryTextDelegate(tree))

    def _fill(self) -> None:
        font = self.modules_top.font(0)
        font.setBold(True)
        self.modules_top.setFont(0, font)
        self.modules_top.setFlags(Qt.ItemIsEnabled)
        self.modules_top.setToolTip(0, "This project's modules: groups of blocks made with Edit → Group into Module "
                                       "(Ctrl+G). Drag one onto the canvas or double-click it to add an instance.")
        for category, blocks in blocks_by_category().items():
            blocks = [b for b in blocks if b.type != MODULE]  # instances come from the project's modules
            if not blocks:
                continue
            top = QTreeWidgetItem(self.tree, [category])
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            top.setFlags(Qt.ItemIsEnabled)  # not selectable, not draggable
            self._categories.append(top)
            icon = category_icon(category)
            for block in blocks:
                item = QTreeWidgetItem(top, [block.type])
                item.setIcon(0, icon)
                item.setData(0, TYPE_ROLE, block.type)
                if block.keras and block.keras != block.type:
                    item.setData(0, SECONDARY_ROLE, block.keras)
                item.setToolTip(0, block_tooltip(block))
                item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)
                self._items[block.type] = item
            top.setExpanded(True)

    # ------------------------------------------------------------------ API
    def item_for(self, type_name: str) -> QTreeWidgetItem:
        """The tree item of a block type (KeyError for an unknown type)."""
        return self._items[type_name]

    def module_item(self, name: str) -> QTreeWidgetItem:
        """The tree item of one of the project's modules (KeyError when it has none of that name)."""
        return self._modules[name]

    def set_modules(self, uses: dict[str, int], tips: dict[str, str] | None = None) -> None:
        """List the project's modules (name -> how many instances use it), first in the tree; the
        section is shown only while there are any."""
        tips = tips or {}
        state = (tuple(uses.items()), tuple(sorted(tips.items())))
        if state == self._module_state:
            return
        self._module_state = state
        self._module_uses = dict(uses)
        top = self.modules_top
        current = self.tree.currentItem()
        current_name = current.data(0, TYPE_ROLE) if current is not None and current.parent() is top else None
        top.takeChildren()
        self._modules = {}
        icon = category_icon("Modules")
        for name, count in uses.items():
            item = QTreeWidgetItem(top, [name])
            item.setIcon(0, icon)
            item.setData(0, TYPE_ROLE, MODULE_PREFIX + name)
            item.setData(0, SECONDARY_ROLE, f"{count} in use" if count else "unused")
            item.setToolTip(0, tips.get(name) or f"<p><b>{html.escape(name)}</b> (module)</p>")
            item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)
            self._modules[name] = item
        index = self.tree.indexOfTopLevelItem(top)
        if uses and index < 0:
            self.tree.insertTopLevelItem(0, top)
            top.setExpanded(True)
        elif not uses and index >= 0:
            self.tree.takeTopLevelItem(index)
        if current_name is not None and current_name[len(MODULE_PREFIX):] in self._modules:
            self.tree.setCurrentItem(self._modules[current_name[len(MODULE_PREFIX):]])
        if self.search.text().strip():
            self.set_filter(self.search.text())

    def set_filter(self, text: str) -> None:
        """Show only blocks whose type, Keras name or help contains `text`; hide empty categories."""
        needle = text.strip().lower()
        shown = 0
        for name, item in self._modules.items():
            item.setHidden(bool(needle) and needle not in name.lower())
            shown += not item.isHidden()
        self.modules_top.setHidden(not shown)
        for top in self._categories:
            visible = 0
            for i in range(top.childCount()):
                item = top.child(i)
                hide = not block_matches(get_block(item.data(0, TYPE_ROLE)), text)
                item.setHidden(hide)
                visible += not hide
            top.setHidden(visible == 0)
            if visible:
                top.setExpanded(True)
        first = self.first_match()
        if first is not None and text.strip():
            self.tree.setCurrentItem(first)
            self.tree.scrollToItem(first)

    def first_match(self) -> QTreeWidgetItem | None:
        """The visible block item the search names best (quickadd.match_rank: a type that starts with the
        text before one that merely mentions it in its help), else the first in catalogue order."""
        needle = self.search.text().strip().lower()
        tops = ([self.modules_top] if self._modules else []) + self._categories
        visible = [top.child(i) for top in tops if not top.isHidden()
                   for i in range(top.childCount()) if not top.child(i).isHidden()]
        best = None, (5, 0)
        for item in visible:
            kind = item.data(0, TYPE_ROLE)
            if kind.startswith(MODULE_PREFIX):
                name = kind[len(MODULE_PREFIX):].lower()
                score = ((0 if name.startswith(needle) else 2, len(name)) if needle else None) or (4, 0)
                if score < best[1]:
                    best = item, score
                continue
            block = get_block(kind)
            score = (match_rank(block, needle) if block is not None and needle else None) or (4, 0)
            if score < best[1]:
                best = item, score
        return best[0] if best[0] is not None else (visible[0] if visible else None)

    # ------------------------------------------------------------------ events
    def _add_first_match(self) -> None:
        item = self.first_match()
        if item is not None and self.search.text().strip():
            self.addRequested.emit(item.data(0, TYPE_ROLE))

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        if item.data(0, TYPE_ROLE):
            self.addRequested.emit(item.data(0, TYPE_ROLE))

    def _context_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        kind = item.data(0, TYPE_ROLE) if item is not None else None
        if not kind or not kind.startswith(MODULE_PREFIX):
            return
        name = kind[len(MODULE_PREFIX):]
        uses = self._module_uses.get(name, 0)
        menu = QMenu(self)
        menu.addAction("Add to Canvas", lambda: self.addRequested.emit(kind))
        menu.addAction("Open Module", lambda: self.moduleOpenRequested.emit(name))
        menu.addSeparator()
        menu.addAction("Rename Module…", lambda: self.moduleRenameRequested.emit(name))
        delete = menu.addAction("Delete Module", lambda: self.moduleDeleteRequested.emit(name))
        if uses:
            delete.setEnabled(False)
            delete.setText(f"Delete Module (used by {uses} instance{'s' * (uses != 1)})")
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def eventFilter(self, watched, event) -> bool:
        # Down in the search box moves into the tree, so the keyboard alone can pick a block.
        if watched is self.search and event.type() == QEvent.KeyPress and event.key() == Qt.Key_Down:
            first = self.first_match()
            if first is not None:
                self.tree.setFocus()
                if self.tree.currentItem() is None or self.tree.currentItem().isHidden():
                    self.tree.setCurrentItem(first)
            return True
        return super().eventFilter(watched, event)
