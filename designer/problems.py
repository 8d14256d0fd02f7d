"""The problems list: the analysis' diagnostics, errors first; a click selects the node. Above it, when
the chosen data does not fit the model, a line that says how, with a quick fix when one block's change
makes it fit (a new head for the data's classes: designer/finetune.py)."""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.analysis import ERROR, Analysis, Diagnostic
from engine.graph import Graph, GraphError

NODE_ROLE = Qt.UserRole


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(analysis: Analysis | None) -> str:
    """'2 errors, 1 warning', '1 error', or 'No problems'."""
    if analysis is None:
        return "No problems"
    parts = []
    if analysis.errors:
        parts.append(plural(len(analysis.errors), "error"))
    if analysis.warnings:
        parts.append(plural(len(analysis.warnings), "warning"))
    return ", ".join(parts) or "No problems"


class _WrappingDelegate(QStyledItemDelegate):
    """Row heights for wrapped text: Qt measures wrapped items only given a valid rect, and a
    tree view passes none, so measure against the column's current width."""

    def __init__(self, tree: QTreeWidget):
        super().__init__(tree)
        self.tree = tree

    def sizeHint(self, option, index):
        option.rect = QRect(0, 0, self.tree.header().sectionSize(index.column()), 1 << 16)
        return super().sizeHint(option, index)


class ProblemsView(QWidget):
    """A header line and one row per diagnostic. Emits nodeActivated(node id) on click."""

    nodeActivated = Signal(str)
    dataFixRequested = Signal()   # the data line's quick fix was pressed

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.header = QLabel("No problems")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Severity", "Block", "Message"])
        self.tree.setRootIsDecorated(False)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.setTextElideMode(Qt.ElideNone)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.tree.setItemDelegate(_WrappingDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        # Wrapped rows need new heights whenever the message column changes width.
        header.sectionResized.connect(lambda *_: self.tree.doItemsLayout())

        # the data line: hidden while the chosen data fits the model
        self.data_box = QFrame()
        self.data_box.setObjectName("data_problems")
        data_layout = QHBoxLayout(self.data_box)
        data_layout.setContentsMargins(0, 0, 0, 0)
        self.data_label = QLabel()
        self.data_label.setWordWrap(True)
        self.data_label.setTextFormat(Qt.TextFormat.PlainText)
        self.data_fix = QPushButton()
        self.data_fix.setObjectName("data_fix")
        self.data_fix.clicked.connect(self.dataFixRequested)
        data_layout.addWidget(self.data_label, 1)
        data_layout.addWidget(self.data_fix, 0, Qt.AlignTop)
        self.data_box.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.header)
        layout.addWidget(self.data_box)
        layout.addWidget(self.tree)

        style = self.style()
        self._error_icon = style.standardIcon(QStyle.SP_MessageBoxCritical)
        self._warning_icon = style.standardIcon(QStyle.SP_MessageBoxWarning)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)

    def set_analysis(self, graph: Graph, analysis: Analysis | None) -> None:
        """Refill from `analysis` of `graph`: errors first, then warnings, each in analysis order."""
        self.tree.clear()
        self.header.setText(summary(analysis))
        if analysis is None:
            return
        ordered = sorted(analysis.diagnostics, key=lambda d: d.severity != ERROR)  # stable
        self.tree.addTopLevelItems([self._row(graph, d) for d in ordered])

    def set_data_problems(self, problems: list[str], fix: str | None = None, fix_tip: str = "") -> None:
        """How the chosen data does not fit the model (none: the line hides), and the quick fix's label
        (None: no button)."""
        from . import theme

        self.data_box.setVisible(bool(problems))
        self.data_label.setText("The data does not fit the model: " + "; ".join(problems) if problems else "")
        self.data_label.setStyleSheet(f"color: {theme.colours()['error']};")
        self.data_fix.setVisible(bool(problems) and fix is not None)
        self.data_fix.setText(f"Quick fix: {fix}" if fix else "")
        self.data_fix.setToolTip((fix_tip + " Undo puts it back.").strip())

    def node_ids(self) -> list[str | None]:
        """The node of each row, top to bottom (None for graph-wide problems)."""
        return [self.tree.topLevelItem(i).data(0, NODE_ROLE) for i in range(self.tree.topLevelItemCount())]

    def _row(self, graph: Graph, diagnostic: Diagnostic) -> QTreeWidgetItem:
        error = diagnostic.severity == ERROR
        name = _node_name(graph, diagnostic.node_id)
        item = QTreeWidgetItem(["Error" if error else "Warning", name, diagnostic.message])
        item.setIcon(0, self._error_icon if error else self._warning_icon)
        item.setData(0, NODE_ROLE, diagnostic.node_id)
        item.setToolTip(2, diagnostic.message)
        for column in range(3):
            item.setTextAlignment(column, Qt.AlignLeft | Qt.AlignTop)
        return item

    def _on_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        node_id = item.data(0, NODE_ROLE)
        if node_id:
            self.nodeActivated.emit(node_id)


def _node_name(graph: Graph, node_id: str | None) -> str:
    if node_id is None:
        return "(graph)"
    try:
        return graph.node(node_id).name
    except GraphError:  # the analysis is a moment older than the graph
        return node_id
