"""Import a dataset: a CSV or NPZ file, a folder of IDX files, or a folder of images per class.

The file is read (parsed, never executed) and previewed — shapes, task, class counts and a
few samples — before the user accepts it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.blocks import format_shape
from engine.runtime.data import DataError, Dataset, load_dataset

from . import theme

PREVIEW_SAMPLES = 8


def is_image_data(x: np.ndarray) -> bool:
    """(N, H, W) or (N, C, H, W) with 1 or 3 channels."""
    return x.ndim == 3 or (x.ndim == 4 and x.shape[1] in (1, 3))


def image_pixmap(sample: np.ndarray, size: int = 56) -> QPixmap:
    """One image sample (H, W) or (C, H, W), scaled to its own range, as a pixmap `size` pixels tall."""
    a = np.asarray(sample, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    a = ((a - lo) / (hi - lo) * 255.0) if hi > lo else np.zeros_like(a)
    a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.ascontiguousarray(a)
        image = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_Grayscale8).copy()
    else:
        rgb = np.ascontiguousarray(np.transpose(a[:3], (1, 2, 0)))
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaledToHeight(size, Qt.FastTransformation)


def describe_dataset(ds: Dataset) -> str:
    parts = [f"{len(ds):,} samples", f"inputs {format_shape(ds.input_shape)} ({ds.dtype})"]
    if ds.task == "regression":
        parts.append(f"regression, targets {format_shape(ds.target_shape) if ds.target_shape else '(1,)'}")
    else:
        parts.append(f"{ds.task}, {ds.num_classes} classes")
    if ds.x_test is not None:
        parts.append(f"plus a test split of {len(ds.x_test):,}")
    return " · ".join(parts)


class DatasetImportDialog(QDialog):
    """Choose a file or folder, see what it holds, accept it."""

    def __init__(self, parent: QWidget | None = None, start_dir: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Import a dataset")
        self.dataset: Dataset | None = None
        self.spec: str = ""
        self.options: dict = {}
        self._start_dir = start_dir
        self._columns_of = ""   # the CSV file whose header fills the target column list

        layout = QVBoxLayout(self)
        intro = QLabel("A CSV file (one row per sample; the target column is chosen below), an NPZ file "
                       "(x_train, y_train[, x_test, y_test]), a folder with the four MNIST-style IDX files, "
                       "or a folder with one subfolder of images per class. Files are read, never run.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText("File or folder")
        self.path_edit.installEventFilter(self)   # Enter: preview
        file_button = QPushButton("File…", self)
        file_button.clicked.connect(self._choose_file)
        folder_button = QPushButton("Folder…", self)
        folder_button.clicked.connect(self._choose_folder)
        row.addWidget(self.path_edit, 1)
        row.addWidget(file_button)
        row.addWidget(folder_button)
        layout.addLayout(row)

        form = QFormLayout()
        self.target_combo = QComboBox(self)
        self.target_combo.setToolTip("The CSV column to predict; the others are the inputs")
        self.target_combo.activated.connect(lambda _: self.load_preview())
        self.target_combo.setEnabled(False)
        form.addRow("CSV target column", self.target_combo)
        size_row = QHBoxLayout()
        self.height_spin, self.width_spin = QSpinBox(self), QSpinBox(self)
        for spin in (self.height_spin, self.width_spin):
            spin.setRange(0, 1024)
            spin.setSpecialValueText("as found")
            size_row.addWidget(spin)
        self.grayscale_check = QCheckBox("Grayscale", self)
        size_row.addWidget(self.grayscale_check)
        form.addRow("Image size (height, width)", size_row)
        layout.addLayout(form)
        self.preview_button = QPushButton("Preview", self)
        self.preview_button.clicked.connect(self.load_preview)
        layout.addWidget(self.preview_button, 0, Qt.AlignLeft)

        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self.encoding_note = QLabel(self)    # which text columns were one-hot encoded, into how many columns
        self.encoding_note.setWordWrap(True)
        self.encoding_note.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.encoding_note.setVisible(False)
        layout.addWidget(self.encoding_note)
        self.classes = QTableWidget(0, 2, self)
        self.classes.setHorizontalHeaderLabels(["Class", "Samples"])
        self.classes.horizontalHeader().setStretchLastSection(True)
        self.classes.verticalHeader().hide()
        self.classes.setEditTriggers(QTableWidget.NoEditTriggers)
        self.classes.setMaximumHeight(160)
        layout.addWidget(self.classes)
        self.samples = QWidget(self)
        self.samples_layout = QGridLayout(self.samples)
        self.samples_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.samples)
        self.rows = QTableWidget(self)
        self.rows.setEditTriggers(QTableWidget.NoEditTriggers)
        self.rows.setMaximumHeight(170)
        layout.addWidget(self.rows)
        layout.addStretch(1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Use this dataset")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._show(None)
        self.resize(640, 620)

    def eventFilter(self, watched, event) -> bool:
        """Enter in the path field previews, as the Preview button does; it does not also accept the
        dialog with a dataset the user has not seen."""
        if (watched is self.path_edit and event.type() == QEvent.KeyPress
                and event.key() in (Qt.Key_Return, Qt.Key_Enter)):
            self.load_preview()
            return True
        return super().eventFilter(watched, event)

    # ------------------------------------------------------------------ choosing
    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dataset file", self._start_dir,
                                              "Data files (*.csv *.npz);;All files (*)")
        if path:
            self.set_path(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder", self._start_dir)
        if path:
            self.set_path(path)

    def set_path(self, path: str) -> None:
        self.path_edit.setText(path)
        self.load_preview()

    def _sync_columns(self, path: str) -> None:
        """The target column list follows the file, however its path came (typed or picked): a CSV's
        header columns, read again at each preview; the last column is chosen for a new file, the
        choice kept while the file stays the same. Empty and disabled for anything else."""
        same_file = path == self._columns_of
        chosen = self.target_combo.currentText() if same_file else ""
        self._columns_of = path
        header = _csv_header(Path(path).expanduser()) if path.lower().endswith(".csv") else []
        if header != self._csv_columns():
            self.target_combo.clear()
            self.target_combo.addItems(header)
        if header:
            self.target_combo.setCurrentIndex(header.index(chosen) if chosen in header else len(header) - 1)
        self.target_combo.setEnabled(bool(header))

    def _load_options(self, path: str) -> dict:
        options: dict = {}
        if path.lower().endswith(".csv") and self.target_combo.count():
            options["target"] = self.target_combo.currentText()
        if Path(path).is_dir():
            if self.height_spin.value() and self.width_spin.value():
                options["image_size"] = (self.height_spin.value(), self.width_spin.value())
            if self.grayscale_check.isChecked():
                options["grayscale"] = True
        return options

    def load_preview(self) -> bool:
        path = self.path_edit.text().strip()
        if not path:
            self._show(None, "Choose a file or a folder.")
            return False
        self._sync_columns(path)
        options = self._load_options(path)
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            dataset = load_dataset(path, **options)
        except DataError as exc:
            self._show(None, str(exc), error=True)
            return False
        except (OSError, ValueError, MemoryError) as exc:
            self._show(None, f"{Path(path).name} cannot be read: {exc}", error=True)
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.spec, self.options = path, options
        self._show(dataset)
        if path.lower().endswith(".csv"):
            self._show_encoding(one_hot_columns(self._csv_columns(), options.get("target"), dataset))
        return True

    def _csv_columns(self) -> list[str]:
        return [self.target_combo.itemText(i) for i in range(self.target_combo.count())]

    def _show_encoding(self, encoded: list[tuple[str, int]]) -> None:
        if not encoded:
            return
        parts = [f"‘{name}’ into {n} column{'s' * (n != 1)}" for name, n in encoded]
        columns = "column" if len(encoded) == 1 else "columns"
        self.encoding_note.setText(f"Text {columns} one-hot encoded (one 0/1 input per value): " + ", ".join(parts)
                                   + ".")
        self.encoding_note.setStyleSheet(f"color: {theme.colours()['muted']}")
        self.encoding_note.setVisible(True)

    # ------------------------------------------------------------------ preview
    def _show(self, dataset: Dataset | None, message: str = "", error: bool = False) -> None:
        self.dataset = dataset
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(dataset is not None)
        while self.samples_layout.count():
            item = self.samples_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.classes.setRowCount(0)
        self.rows.clear()
        self.rows.setRowCount(0)
        self.rows.setColumnCount(0)
        self.rows.setVisible(False)
        self.classes.setVisible(False)
        self.encoding_note.setVisible(False)
        self.encoding_note.clear()
        if dataset is None:
            colour = theme.colours()["error"] if error else theme.colours()["muted"]
            self.summary.setStyleSheet(f"color: {colour}")
            self.summary.setText(message)
            return
        self.summary.setStyleSheet("")
        self.summary.setText(f"<b>{dataset.name}</b>: {describe_dataset(dataset)}")
        if dataset.task != "regression":
            counts = np.bincount(np.asarray(dataset.y).reshape(-1).astype(np.int64), minlength=dataset.num_classes)
            names = dataset.class_names or [str(i) for i in range(len(counts))]
            self.classes.setRowCount(len(counts))
            for i, count in enumerate(counts):
                self.classes.setItem(i, 0, QTableWidgetItem(str(names[i]) if i < len(names) else str(i)))
                self.classes.setItem(i, 1, QTableWidgetItem(f"{int(count):,}"))
            self.classes.setVisible(True)
        if is_image_data(dataset.x):
            for i in range(min(PREVIEW_SAMPLES, len(dataset))):
                cell = QLabel(self.samples)
                cell.setPixmap(image_pixmap(dataset.x[i]))
                cell.setAlignment(Qt.AlignCenter)
                caption = QLabel(self.label_of(dataset, i), self.samples)
                caption.setAlignment(Qt.AlignCenter)
                self.samples_layout.addWidget(cell, 0, i)
                self.samples_layout.addWidget(caption, 1, i)
        else:
            self._show_rows(dataset)

    @staticmethod
    def label_of(dataset: Dataset, i: int) -> str:
        y = np.asarray(dataset.y[i]).reshape(-1)
        if dataset.task == "regression":
            return ", ".join(f"{v:.3g}" for v in y[:3])
        k = int(y[0])
        return str(dataset.class_names[k]) if dataset.class_names and k < len(dataset.class_names) else str(k)

    def _show_rows(self, dataset: Dataset) -> None:
        x = np.asarray(dataset.x[:5]).reshape(min(5, len(dataset)), -1)
        columns = min(x.shape[1], 12)
        names = (dataset.feature_names or [f"x{i}" for i in range(x.shape[1])])[:columns]
        self.rows.setColumnCount(columns + 1)
        self.rows.setRowCount(len(x))
        self.rows.setHorizontalHeaderLabels(list(names) + ["target"])
        for r in range(len(x)):
            for c in range(columns):
                self.rows.setItem(r, c, QTableWidgetItem(f"{x[r, c]:.4g}"))
            self.rows.setItem(r, columns, QTableWidgetItem(self.label_of(dataset, r)))
        self.rows.setVisible(True)
        # tall enough for every row shown and the scroll bar under them: no row cut in half
        height = (self.rows.horizontalHeader().sizeHint().height() + self.rows.verticalHeader().length()
                  + self.rows.horizontalScrollBar().sizeHint().height() + 2 * self.rows.frameWidth())
        self.rows.setMaximumHeight(height)
        self.rows.setMinimumHeight(height)


def one_hot_columns(header: list[str], target: str | None, dataset: Dataset) -> list[tuple[str, int]]:
    """(CSV column, the number of input columns it became) for each text column the loader one-hot
    encoded: a feature column that is not among the dataset's feature names by itself, but as
    "column=value" names."""
    names = list(dataset.feature_names or [])
    plain = set(names)
    target = target if target is not None else (header[-1] if header else None)
    out = []
    for column in header:
        if column == target or column in plain:
            continue
        n = sum(1 for name in names if name.startswith(column + "="))
        if n:
            out.append((column, n))
    return out


def _csv_header(path: Path) -> list[str]:
    """The header row's column names, read as engine.runtime.data reads the file: split by ",", ";" or a
    tab, whichever its first line holds most; the header is the first row that is not blank."""
    import csv
    from itertools import chain, islice

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            delimiter = max((",", ";", "\t"), key=first.count) if any(d in first for d in ",;\t") else ","
            for row in csv.reader(chain([first], islice(f, 1000)), delimiter=delimiter):
                if any(cell.strip() for cell in row):
                    return [cell.strip() for cell in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return []
