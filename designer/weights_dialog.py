"""File > Load Weights…: the report of what a weights file would load into the model (engine.weights_load),
shown before anything changes, with Apply / Cancel."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.weights_load import WeightsReport

MAX_ROWS = 500     # rows per list shown (the counts are always whole)


class LoadWeightsDialog(QDialog):
    """The report: a headline, the counts, then each list (matched by name / by order, shape mismatches,
    missing, unused, warnings). Apply is offered only when something matches."""

    def __init__(self, parent: QWidget | None, report: WeightsReport):
        super().__init__(parent)
        self.report = report
        self.setWindowTitle(f"Load Weights — {report.source}")
        self.resize(720, 520)
        layout = QVBoxLayout(self)
        self.headline = QLabel(report.headline() + ".")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-weight: bold")
        layout.addWidget(self.headline)
        counts = (f"Matched {len(report.matched)} of {report.total} tensors ({report.by_name} by name, "
                  f"{report.by_order} by order) · missing {len(report.missing)} · shape mismatches "
                  f"{len(report.mismatched)} · unused in the file {len(report.unexpected)}")
        self.counts = QLabel(counts)
        self.counts.setWordWrap(True)
        layout.addWidget(self.counts)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["", "Block", "Detail"])
        self.tree.setRootIsDecorated(True)
        layout.addWidget(self.tree, 1)
        self._fill()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.apply_button = self.buttons.addButton("Apply", QDialogButtonBox.AcceptRole)
        self.apply_button.setEnabled(report.ok)
        self.apply_button.setToolTip("Put these weights into the model (Edit > Undo takes them back)"
                                     if report.ok else "Nothing in the file fits the graph")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _section(self, title: str, rows: list[tuple[str, str, str]], expanded: bool = False) -> QTreeWidgetItem | None:
        if not rows:
            return None
        top = QTreeWidgetItem([f"{title} ({len(rows)})", "", ""])
        for row in rows[:MAX_ROWS]:
            top.addChild(QTreeWidgetItem(list(row)))
        if len(rows) > MAX_ROWS:
            top.addChild(QTreeWidgetItem([f"… and {len(rows) - MAX_ROWS} more", "", ""]))
        self.tree.addTopLevelItem(top)
        top.setExpanded(expanded)
        return top

    def _fill(self) -> None:
        r = self.report
        shapes = {}
        for m in r.mismatched:
            shapes.setdefault(m.block, m)
        self._section(f"Blocks that keep {r.keeps} weights", [
            ("", block, (shapes[block].why or f"{shapes[block].target.rsplit('.', 1)[-1]}: "
                         f"{tuple(shapes[block].target_shape)} here, {tuple(shapes[block].source_shape)} in the file")
             if block in shapes else "not in the file") for block in r.kept_blocks], expanded=True)
        self._section("Warnings", [("", "", f"{name} holds NaN or infinite values") for name in r.nonfinite]
                      + [("", "", note) for note in r.notes], expanded=True)
        self._section("Shape mismatches (not loaded)", [
            (m.target, m.block, m.why or f"{tuple(m.target_shape)} here, {tuple(m.source_shape)} in the file "
             f"({m.source})") for m in r.mismatched], expanded=True)
        self._section("Missing from the file", [(t, b, f"keeps {r.keeps} weights") for t, b in r.missing])
        self._section("Unused in the file", [(name, "", "") for name in r.unexpected])
        self._section("Matched by order", [(m.target, m.block, f"<- {m.source}" + (f" ({m.converted})"
                                            if m.converted else "")) for m in r.matched if m.how == "order"])
        self._section("Matched by name", [(m.target, m.block, m.converted) for m in r.matched if m.how == "name"])
        self.tree.resizeColumnToContents(0)
