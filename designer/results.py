"""Results of a finished run: the test metrics, a confusion matrix or a predicted-vs-true plot,
and, for images, a grid of test samples with their predicted and true labels (mistakes first)."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from designer import theme

HINT = "Train the model to see its test results here."
NO_TEST = "This run kept no test split (set a test fraction above 0 in the training settings)."
CLASSIFICATION = ("multiclass", "binary")
MAX_SAMPLES = 24
THUMB = 72            # thumbnail edge in pixels
COLUMNS = 8           # thumbnails per row
MAX_SCATTER = 5000    # points drawn in the predicted-vs-true plot


def _blend(colour: QColor, background: QColor, amount: float) -> QColor:
    mix = lambda u, v: round(u * amount + v * (1 - amount))
    return QColor(mix(colour.red(), background.red()), mix(colour.green(), background.green()),
                  mix(colour.blue(), background.blue()))


def _fmt(value) -> str:
    """A metric: inf / nan as such; None (a value saved as null because it was not finite) as "not finite"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not finite"
    if not math.isfinite(value):
        return str(float(value))
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _percent(value, digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not finite"
    if not math.isfinite(value):
        return str(float(value))
    return f"{100 * value:.{digits}f}%"


def _labels(values) -> np.ndarray:
    """Class indices from labels, one-hot rows or scores."""
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] > 1:
        return a.argmax(axis=1)
    return a.reshape(-1).round().astype(int)


def thumbnail(image: np.ndarray, size: int = THUMB) -> QPixmap:
    """A pixmap of one (C, H, W) or (H, W) image: uint8 pixels (an image folder's) as they are, other
    numbers stretched to the image's own value range."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a[0] if a.shape[0] not in (3, 4) else np.moveaxis(a[:3], 0, -1)
    if a.dtype == np.uint8:
        pixels = np.ascontiguousarray(a)
    else:
        a = a.astype(np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        scaled = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
        pixels = np.ascontiguousarray(np.nan_to_num(scaled) * 255, dtype=np.uint8)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        qimage = QImage(pixels.data, w, h, w, QImage.Format_Grayscale8).copy()
    else:
        qimage = QImage(pixels.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    mode = Qt.FastTransformation if max(h, w) <= 32 else Qt.SmoothTransformation   # keep small digits crisp
    return QPixmap.fromImage(qimage.scaled(size, size, Qt.KeepAspectRatio, mode))


def is_image_batch(x) -> bool:
    if x is None:
        return False
    shape = np.shape(x)
    return len(shape) == 3 or (len(shape) == 4 and shape[1] in (1, 3, 4))


class ResultsView(QWidget):
    """Shows a run's test results; `clear()` shows a hint instead."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._headline = ""
        self._class_names: list[str] = []
        self._matrix_headers: tuple = ()
        self._sample_labels: list[str] = []

        self.hint = QLabel(HINT)
        self.hint.setAlignment(Qt.AlignCenter)
        self.hint.setWordWrap(True)

        self.headline_label = QLabel()
        font = QFont(self.headline_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.headline_label.setFont(font)
        self.headline_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)

        self.matrix_title = QLabel("Confusion matrix: rows = true class, columns = predicted class")
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Maximum)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)

        self.scatter = pg.PlotWidget()
        self.scatter.setMinimumSize(320, 300)
        self.scatter.setMaximumSize(560, 460)
        self.scatter.setMenuEnabled(False)
        self.scatter.hideButtons()
        self.scatter.setAspectLocked(True)
        self.scatter.showGrid(x=True, y=True, alpha=0.2)
        self.scatter_points = pg.ScatterPlotItem(size=5, pen=None)
        self.identity_line = pg.PlotDataItem()
        self.scatter.addItem(self.identity_line)
        self.scatter.addItem(self.scatter_points)

        self.samples_title = QLabel()
        self.samples_grid = QGridLayout()
        self.samples_grid.setSpacing(6)
        self.samples_grid.setContentsMargins(0, 0, 0, 0)
        grid_holder = QWidget()
        grid_holder.setLayout(self.samples_grid)
        grid_holder.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Maximum)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(12, 10, 12, 10)
        column.setSpacing(8)
        column.addWidget(self.headline_label)
        column.addWidget(self.detail_label)
        column.addSpacing(4)
        column.addWidget(self.matrix_title)
        column.addWidget(self.table)
        column.addWidget(self.scatter)
        column.addSpacing(4)
        column.addWidget(self.samples_title)
        column.addWidget(grid_holder)
        column.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setWidget(content)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.apply_theme()
        self.clear()

    # ------------------------------------------------------------------ public

    def clear(self) -> None:
        self._headline = ""
        self._sample_labels = []
        self._clear_samples()
        self.table.clearContents()     # (the headers stay: the next matrix usually has the same classes)
        self.scatter_points.clear()
        self.identity_line.setData([], [])
        self.hint.setText(HINT)
        self.stack.setCurrentWidget(self.hint)

    def headline(self) -> str:
        return self._headline

    def sample_labels(self) -> list[str]:
        """The text under each thumbnail, in display order."""
        return list(self._sample_labels)

    def confusion_cell(self, row: int, col: int) -> int | None:
        """The count shown in the matrix: samples of true class `row` predicted as `col` (None: none shown)."""
        item = self.table.item(row, col)
        return int(item.text()) if item is not None and self.stack.currentWidget() is self.scroll else None

    def apply_theme(self) -> None:
        c = theme.colours()
        self.hint.setStyleSheet(f"color: {c['muted']}; font-size: 11pt;")
        self.detail_label.setStyleSheet(f"color: {c['muted']}")
        self.matrix_title.setStyleSheet(f"color: {c['muted']}")
        self.samples_title.setStyleSheet(f"color: {c['muted']}")
        self.scatter.setBackground(c["base"])
        for side in ("left", "bottom"):
            axis = self.scatter.getAxis(side)
            axis.setPen(pg.mkPen(c["muted"]))
            axis.setTextPen(pg.mkPen(c["text"]))
        highlight = QColor(c["highlight"])
        highlight.setAlpha(150)
        self.scatter_points.setBrush(pg.mkBrush(highlight))
        self.identity_line.setPen(pg.mkPen(c["warning"], width=1.5, style=Qt.DashLine))

    def show_results(self, task: str, test_metrics: dict, class_names: list[str] | None,
                     samples: dict | None = None) -> None:
        self.clear()
        if not test_metrics:
            self.hint.setText(NO_TEST)
            return
        self.stack.setCurrentWidget(self.scroll)
        if task in CLASSIFICATION:
            self._show_classification(test_metrics, class_names, samples)
        else:
            self._show_regression(test_metrics, samples)
        self.headline_label.setText(self._headline)

    # ------------------------------------------------------------------ classification

    def _show_classification(self, metrics: dict, class_names: list[str] | None, samples: dict | None) -> None:
        parts = []
        if "accuracy" in metrics:
            parts.append(f"Test accuracy {_percent(metrics['accuracy'], 2)}")
        if "loss" in metrics:
            parts.append(f"loss {_fmt(metrics['loss'])}")
        self._headline = " · ".join(parts)
        self.scatter.hide()
        matrix = metrics.get("confusion_matrix")
        if matrix:
            m = np.asarray(matrix, dtype=np.int64)
            names = self._names(class_names, len(m))
            total, wrong = int(m.sum()), int(m.sum() - np.trace(m))
            self.detail_label.setText(f"{total:,} test samples, {wrong:,} misclassified")
            self._fill_matrix(m, names, metrics.get("precision"), metrics.get("recall"))
            self.matrix_title.show()
            self.table.show()
        else:
            self.detail_label.setText("")
            self.matrix_title.hide()
            self.table.hide()
        self._class_names = self._names(class_names, len(class_names) if class_names else
                                        (len(matrix) if matrix else 0))
        self.show_samples(samples)

    def show_samples(self, samples: dict | None) -> None:
        """The grid of test images with predicted and true labels, under the classification results
        shown last (a separate step, so a caller can let the window breathe in between)."""
        if samples and is_image_batch(samples.get("x")):
            self._show_samples(samples, self._class_names)

    @staticmethod
    def _names(class_names: list[str] | None, n: int) -> list[str]:
        names = [str(name) for name in (class_names or [])]
        return names + [str(i) for i in range(len(names), n)]

    def _fill_matrix(self, m: np.ndarray, names: list[str], precision, recall) -> None:
        c = theme.colours()
        base, text = QColor(c["base"]), QColor(c["text"])
        right, wrong, muted = QColor(c["highlight"]), QColor(c["error"]), QColor(c["muted"])
        alt = QColor(c["alt"])
        n = len(m)
        extra_row, extra_col = precision is not None, recall is not None
        table = self.table
        table.setRowCount(n + extra_row)
        table.setColumnCount(n + extra_col)
        headers = (names + (["recall"] if extra_col else []), names + (["precision"] if extra_row else []))
        if headers != self._matrix_headers:    # setting header labels costs ~8 ms a side: only when they change
            self._matrix_headers = headers
            table.setHorizontalHeaderLabels(headers[0])
            table.setVerticalHeaderLabels(headers[1])
            for i, name in enumerate(names):
                table.horizontalHeaderItem(i).setToolTip(f"predicted as {name}")
                table.verticalHeaderItem(i).setToolTip(f"true class {name}")
        rows = m.sum(axis=1)
        bold = QFont(table.font())
        bold.setBold(True)
        for r in range(n):
            for col in range(n):
                count = int(m[r, col])
                share = count / rows[r] if rows[r] else 0.0
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignCenter)
                if count:
                    amount = 0.25 + 0.75 * share
                    colour = _blend(right if r == col else wrong, base, amount)
                    item.setBackground(colour)
                    item.setForeground(QColor("#ffffff") if amount > 0.5 else text)
                    if r == col:
                        item.setFont(bold)
                else:
                    item.setForeground(muted)
                item.setToolTip(f"true {names[r]}, predicted {names[col]}: {count} "
                                f"({100 * share:.1f}% of the {int(rows[r])} {names[r]} samples)")
                table.setItem(r, col, item)
        for index, values, is_row in ((n, precision, True), (n, recall, False)):
            if values is None:
                continue
            for k, value in enumerate(values[:n]):
                item = QTableWidgetItem(_percent(value, 0))
                item.setTextAlignment(Qt.AlignCenter)
                item.setBackground(alt)
                item.setForeground(muted)
                what = "precision" if is_row else "recall"
                item.setToolTip(f"{what} of {names[k]}: {_percent(value, 1)}")
                table.setItem(index if is_row else k, k if is_row else index, item)
        if extra_row and extra_col:
            corner = QTableWidgetItem("")
            corner.setBackground(alt)
            table.setItem(n, n, corner)
        table.resizeColumnsToContents()
        table.resizeRowsToContents()
        frame = 2 * table.frameWidth()
        width = (table.verticalHeader().sizeHint().width() + frame
                 + sum(table.columnWidth(i) for i in range(table.columnCount())))
        height = (table.horizontalHeader().sizeHint().height() + frame
                  + sum(table.rowHeight(i) for i in range(table.rowCount())))
        # the whole matrix where it fits (the page scrolls), its own scroll bars only for many classes
        fits_w, fits_h = width + 4 <= 960, height + 4 <= 640
        bar_w, bar_h = table.verticalScrollBar().sizeHint().width(), table.horizontalScrollBar().sizeHint().height()
        table.setFixedSize(width + 4 if fits_w else 960 + (0 if fits_h else bar_w),
                           height + 4 if fits_h else 640 + (0 if fits_w else bar_h))

    def _show_samples(self, samples: dict, names: list[str]) -> None:
        x = np.asarray(samples["x"])
        y_true, y_pred = _labels(samples["y_true"]), _labels(samples["y_pred"])
        count = min(len(x), len(y_true), len(y_pred))
        wrong = [i for i in range(count) if y_true[i] != y_pred[i]]
        right = [i for i in range(count) if y_true[i] == y_pred[i]]
        order = (wrong + right)[:MAX_SAMPLES]
        if not order:
            return
        name = lambda k: names[k] if 0 <= k < len(names) else str(k)
        c = theme.colours()
        shown_wrong = sum(1 for i in order if i in set(wrong))
        self.samples_title.setText(f"Test samples: {shown_wrong} misclassified (red, first), "
                                   f"{len(order) - shown_wrong} correct")
        self.samples_title.show()
        for slot, i in enumerate(order):
            bad = y_true[i] != y_pred[i]
            text = f"{name(y_pred[i])}\n(true: {name(y_true[i])})" if bad else name(y_pred[i])
            tile = QFrame()
            tile.setObjectName("sample")
            border = c["error"] if bad else c["node_border"]
            tile.setStyleSheet(f"QFrame#sample {{ border: {2 if bad else 1}px solid {border}; "
                               f"border-radius: 4px; background: {c['base']}; }}")
            box = QVBoxLayout(tile)
            box.setContentsMargins(4, 4, 4, 4)
            box.setSpacing(2)
            image = QLabel()
            image.setPixmap(thumbnail(x[i]))
            image.setAlignment(Qt.AlignCenter)
            label = QLabel(text)
            label.setAlignment(Qt.AlignCenter)
            label.setStyleSheet(f"color: {c['error'] if bad else c['text']}; border: none;")
            tip = f"predicted {name(y_pred[i])}, true {name(y_true[i])}"
            tile.setToolTip(tip)
            box.addWidget(image)
            box.addWidget(label)
            tile.setFixedWidth(THUMB + 28)
            self.samples_grid.addWidget(tile, slot // COLUMNS, slot % COLUMNS, Qt.AlignTop)
            self._sample_labels.append(text)

    def _clear_samples(self) -> None:
        while self.samples_grid.count():
            widget = self.samples_grid.takeAt(0).widget()
            if widget is not None:
                widget.hide()
                widget.deleteLater()
        self.samples_title.hide()

    # ------------------------------------------------------------------ regression

    def _show_regression(self, metrics: dict, samples: dict | None) -> None:
        parts = [f"{label} {_fmt(metrics[key])}" for key, label in (("mae", "Test MAE"), ("mse", "MSE"), ("r2", "R²"))
                 if key in metrics]
        if not parts and "loss" in metrics:
            parts.append(f"Test loss {_fmt(metrics['loss'])}")
        self._headline = " · ".join(parts)
        self.matrix_title.hide()
        self.table.hide()
        if samples and samples.get("y_true") is not None and samples.get("y_pred") is not None:
            y_true = np.asarray(samples["y_true"], dtype=float).reshape(-1)
            y_pred = np.asarray(samples["y_pred"], dtype=float).reshape(-1)
            n = min(len(y_true), len(y_pred))
            y_true, y_pred = y_true[:n], y_pred[:n]
            ok = np.isfinite(y_true) & np.isfinite(y_pred)
            y_true, y_pred = y_true[ok], y_pred[ok]
            shown = n
            if len(y_true) > MAX_SCATTER:
                pick = np.random.default_rng(0).choice(len(y_true), MAX_SCATTER, replace=False)
                y_true, y_pred = y_true[pick], y_pred[pick]
            self.detail_label.setText(f"Predicted against true values, {shown:,} test samples"
                                      + (f" ({MAX_SCATTER:,} drawn)" if shown > MAX_SCATTER else "")
                                      + "; the dashed line is a perfect prediction (y = x)")
            self.scatter_points.setData(y_true, y_pred)
            if len(y_true):
                lo = float(min(y_true.min(), y_pred.min()))
                hi = float(max(y_true.max(), y_pred.max()))
                pad = 0.05 * (hi - lo or 1.0)
                self.identity_line.setData([lo - pad, hi + pad], [lo - pad, hi + pad])
            self.scatter.setLabel("bottom", "true")
            self.scatter.setLabel("left", "predicted")
            self.scatter.autoRange()
            self.scatter.show()
        else:
            self.detail_label.setText("")
            self.scatter.hide()

    def scatter_data(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.scatter_points.getData()
        return np.asarray(x), np.asarray(y)
