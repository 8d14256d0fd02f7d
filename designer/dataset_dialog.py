"""Import a dataset: a CSV or NPZ file, a folder of IDX files, or a folder of images per class.

The file is read (parsed, never executed) and previewed — shapes, task, class counts and a
few samples — before the user accepts it.

A folder is read on a thread of its own, so the window never freezes. An image folder's preview
decodes only the few images it shows (`sample_images`); "Use this dataset" then decodes the whole
folder once into the image cache, with its progress ("Decoding 1,234 of 20,000 images", "Read
from cache") and a Cancel that stops it between chunks of files and leaves the data in use as it was.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QImage, QPixmap
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
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.blocks import format_shape
from engine.runtime.data import DataError, Dataset, LoadCancelled, load_dataset

from . import theme

PREVIEW_SAMPLES = 8
PROGRESS_INTERVAL_S = 0.1     # decoding progress reaches the dialog at most ~10 times a second


def is_image_data(x: np.ndarray) -> bool:
    """(N, H, W) or (N, C, H, W) with 1 or 3 channels."""
    return x.ndim == 3 or (x.ndim == 4 and x.shape[1] in (1, 3))


def image_pixmap(sample: np.ndarray, size: int = 56) -> QPixmap:
    """One image sample (H, W) or (C, H, W) as a pixmap `size` pixels tall: uint8 pixels (an image
    folder's) as they are, other numbers scaled to their own range."""
    a = np.asarray(sample)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = ((a - lo) / (hi - lo) * 255.0) if hi > lo else np.zeros_like(a)
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.ascontiguousarray(a)
        image = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_Grayscale8).copy()
    else:
        rgb = np.ascontiguousarray(np.transpose(a[:3], (1, 2, 0)))
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaledToHeight(size, Qt.FastTransformation)


def describe_dataset(ds: Dataset) -> str:
    pixels = getattr(ds.x, "dtype", None) == np.uint8
    kind = "pixels 0–255" if pixels else ds.dtype
    parts = [f"{len(ds):,} samples", f"inputs {format_shape(ds.input_shape)} ({kind})"]
    if ds.task == "regression":
        parts.append(f"regression, targets {format_shape(ds.target_shape) if ds.target_shape else '(1,)'}")
    else:
        parts.append(f"{ds.task}, {ds.num_classes} classes")
    if ds.x_test is not None:
        parts.append(f"plus a test split of {len(ds.x_test):,}")
    skipped = skipped_text(ds)
    if skipped:
        parts.append(skipped)
    return " · ".join(parts)


def skipped_text(ds: Dataset | None) -> str:
    """"3 unreadable images skipped" for an image folder read with bad_images="skip", else ""."""
    images = getattr(ds, "images", None)
    n = len(getattr(images, "skipped", None) or ())
    return f"{n:,} unreadable image{'s' * (n != 1)} skipped" if n else ""


def format_size(n: int) -> str:
    """Bytes as a person reads them: 612 MB, 1.2 GB (powers of 1024)."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB"
    return f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{n} bytes"


def loading_text(info: dict) -> str:
    """A loading report (load_dataset's `progress`, the training process's ("loading", info)) in words:
    "Listing images…", "Decoding 1,234 of 20,000 images", "Read 20,000 images from the cache"."""
    phase = info.get("phase")
    done, total = int(info.get("done") or 0), int(info.get("total") or 0)
    skipped = int(info.get("skipped") or 0)
    tail = f" · {skipped:,} unreadable skipped" if skipped else ""
    if phase == "scan":
        return f"Found {total:,} images; reading…" if total else "Listing images…"
    if phase == "decode":
        return f"Decoding {done:,} of {total:,} images{tail}"
    if phase == "ready":
        if info.get("cache_hit"):
            return f"Read from cache: {total:,} images{tail}"
        return f"Decoded {total:,} images{tail}"
    return str(info.get("message") or "")


@dataclass
class ImagePreview:
    """What an image folder's preview shows, from a few decoded images and the folder's listing."""
    folder: str
    x: np.ndarray                 # uint8 (k, C, H, W): the images shown
    labels: np.ndarray            # their class ids
    class_names: list[str]
    count: int                    # images in the folder
    per_class: list[int]          # images per class

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])


def preview_image_folder(folder: str, image_size: tuple[int, int] | None = None, grayscale: bool = False,
                         k: int = PREVIEW_SAMPLES) -> ImagePreview:
    """k images decoded (not the folder) and the folder's class counts (listed, never opened)."""
    from engine.runtime.data.images import sample_images, scan_folder

    x, labels, names, count = sample_images(Path(folder), k=k, image_size=image_size, grayscale=grayscale, seed=0)
    per_class = np.bincount(scan_folder(Path(folder)).labels, minlength=len(names)).tolist()
    return ImagePreview(str(folder), x, labels, names, count, per_class)


def _is_image_folder(path: Path) -> bool:
    from engine.runtime.data import idx
    from engine.runtime.data.images import is_image_folder

    try:
        return path.is_dir() and not idx.find_files(path) and is_image_folder(path)
    except OSError:
        return False


class BackgroundJob(QObject):
    """Runs one function at a time on a thread of its own; its reports come back as queued signals
    (`progress` at most every PROGRESS_INTERVAL_S, but every change of phase), its end as `finished`
    (the result) or `failed` (message, cancelled). `cancel()` makes the function's `cancelled()` true."""

    progress = Signal(int, dict)
    finished = Signal(int, object)
    failed = Signal(int, str, bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._job = 0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def job(self) -> int:
        return self._job

    def start(self, function) -> int:
        """function(report, cancelled) -> result, on the thread. Returns the job's number (signals carry it)."""
        self._job += 1
        job, self._cancel = self._job, threading.Event()
        cancel = self._cancel
        last = {"phase": None, "at": 0.0}

        def report(info: dict) -> None:
            now = time.monotonic()
            if (info.get("phase") == last["phase"] and info.get("done") != info.get("total")
                    and now - last["at"] < PROGRESS_INTERVAL_S):
                return
            last["phase"], last["at"] = info.get("phase"), now
            self._emit(self.progress, job, dict(info))

        def run() -> None:
            try:
                result = function(report, cancel.is_set)
            except LoadCancelled:
                self._emit(self.failed, job, "cancelled", True)
            except DataError as exc:
                self._emit(self.failed, job, str(exc), False)
            except (OSError, ValueError, MemoryError) as exc:
                self._emit(self.failed, job, f"cannot be read: {exc}", False)
            except Exception as exc:  # the dialog must hear of it, or it waits for ever
                self._emit(self.failed, job, f"{type(exc).__name__}: {exc}", False)
            else:
                self._emit(self.finished, job, result)

        self._thread = threading.Thread(target=run, name="deepwire-dataset-load", daemon=True)
        self._thread.start()
        return job

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:      # the dialog is gone: nobody to tell
            pass

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, seconds: float = 10.0) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(seconds)
        return not self.running


class DatasetImportDialog(QDialog):
    """Choose a file or folder, see what it holds, accept it.

    A CSV or NPZ file is read at once. A folder is read on a thread: an image folder's preview
    decodes PREVIEW_SAMPLES images; accepting it decodes the folder (into the image cache) with a
    progress bar and Cancel, and the dialog closes when the data is ready."""

    def __init__(self, parent: QWidget | None = None, start_dir: str = "", bad_images: str = "stop"):
        super().__init__(parent)
        self.setWindowTitle("Import a dataset")
        self.dataset: Dataset | None = None
        self.image_preview: ImagePreview | None = None   # an image folder previewed, not yet decoded
        self.spec: str = ""
        self.options: dict = {}
        self.last_load: dict | None = None    # the final progress report of the last folder decoded
        self._start_dir = start_dir
        self._columns_of = ""   # the CSV file whose header fills the target column list
        self._job = BackgroundJob(self)
        self._job.progress.connect(self._on_progress)
        self._job.finished.connect(self._on_job_finished)
        self._job.failed.connect(self._on_job_failed)
        self._job_kind = ""            # "preview" or "load" while a job runs
        self._job_path, self._job_options = "", {}
        self._close_when_stopped = False

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
        self.file_button = QPushButton("File…", self)
        self.file_button.clicked.connect(self._choose_file)
        self.folder_button = QPushButton("Folder…", self)
        self.folder_button.clicked.connect(self._choose_folder)
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
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
        self.skip_check = QCheckBox("Skip unreadable images (and count them)", self)
        self.skip_check.setToolTip("An image that cannot be decoded is left out and counted; unticked, loading "
                                   "stops and names it. The same as the Training panel's 'Bad images'.")
        self.skip_check.setChecked(bad_images == "skip")
        form.addRow("", self.skip_check)
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
        # an image folder being decoded: the bar ("Decoding 1,234 of 20,000 images") and its Cancel
        load_row = QHBoxLayout()
        self.load_bar = QProgressBar(self)
        self.load_bar.setTextVisible(True)
        self.cancel_load_button = QPushButton("Cancel loading", self)
        self.cancel_load_button.setToolTip("Stop decoding; the data in use stays as it was")
        self.cancel_load_button.clicked.connect(self.cancel_loading)
        load_row.addWidget(self.load_bar, 1)
        load_row.addWidget(self.cancel_load_button)
        layout.addLayout(load_row)
        self.load_note = QLabel(self)      # how the last load ended (cancelled, failed, skipped images)
        self.load_note.setWordWrap(True)
        self.load_note.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.load_note)
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
        self._show_loading(False)
        self._set_note("")
        self._show(None)
        self.resize(640, 620)

    @property
    def bad_images(self) -> str:
        """"skip" or "stop", as the Skip unreadable images box says."""
        return "skip" if self.skip_check.isChecked() else "stop"

    @property
    def loading(self) -> bool:
        """A folder is being read (previewed or decoded): until its end (a signal) has been handled."""
        return bool(self._job_kind)

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
        if Path(path).expanduser().is_dir():
            if self.height_spin.value() and self.width_spin.value():
                options["image_size"] = (self.height_spin.value(), self.width_spin.value())
            if self.grayscale_check.isChecked():
                options["grayscale"] = True
        return options

    def load_preview(self) -> bool:
        """Show what the path holds: a file at once (True when it could be read); a folder on a thread
        (True: started; the preview follows)."""
        if self._job_kind == "load":
            return False               # decoding: the choices are locked until it ends or is cancelled
        path = self.path_edit.text().strip()
        if not path:
            self._show(None, "Choose a file or a folder.")
            return False
        self._sync_columns(path)
        options = self._load_options(path)
        self._set_note("")
        folder = Path(path).expanduser()
        if folder.is_dir():
            self._start_folder_preview(path, folder, options)
            return True
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

    def _start_folder_preview(self, path: str, folder: Path, options: dict) -> None:
        """An image folder: a few images decoded, the classes counted; another folder (IDX files) is
        loaded whole, as a file is, but off the window's thread."""
        self._show(None, f"Reading {folder.name}…")
        self._job_kind, self._job_path, self._job_options = "preview", path, dict(options)
        if _is_image_folder(folder):
            size, gray = options.get("image_size"), bool(options.get("grayscale"))
            self._job.start(lambda report, cancelled: preview_image_folder(path, size, gray))
        else:
            self._job.start(lambda report, cancelled: load_dataset(path, **options))

    def accept(self) -> None:
        """"Use this dataset": an image folder previewed but not decoded is decoded first (the dialog
        closes when it is ready); anything else is accepted at once."""
        if self._job_kind == "load":
            return
        if self.dataset is None and self.image_preview is not None:
            self.start_loading()
            return
        if self.dataset is not None:
            super().accept()

    def reject(self) -> None:
        """Cancel (or Escape, or the window's close button) while a folder is read: the reading is
        cancelled and the dialog closes once it has stopped (between two chunks of files)."""
        if self._job_kind:           # its end is on its way as a signal: close then
            self._job.cancel()
            self._close_when_stopped = True
            self.load_bar.setFormat("Cancelling…")
            return
        super().reject()

    def start_loading(self) -> None:
        """Decode the previewed image folder whole (into the image cache, or read from it)."""
        preview = self.image_preview
        if preview is None or self._job.running:
            return
        # the previewed folder, with the size and mode as they are set now
        path, bad = self.spec, self.bad_images
        options = self._load_options(path)
        self.options = options
        self._job_kind, self._job_path, self._job_options = "load", path, options
        self._set_note("")
        self.load_bar.setRange(0, 0)
        self.load_bar.setFormat(f"Listing {preview.count:,} images…")
        self._show_loading(True)

        def load(report, cancelled):
            dataset = load_dataset(path, progress=report, cancel=cancelled, bad_images=bad, **options)
            if callable(getattr(dataset.x, "wait", None)):
                # a large folder's loading returns once it is listed and decodes behind (FillingImages):
                # here it is decoded whole, its progress told on, before the dialog closes
                dataset.x = dataset.x.wait()
            return dataset

        self._job.start(load)

    def cancel_loading(self) -> None:
        """Stop decoding between two chunks of files: nothing is accepted, the preview stays."""
        if self._job_kind == "load" and self._job.running:
            self._job.cancel()
            self.load_bar.setFormat("Cancelling…")
            self.cancel_load_button.setEnabled(False)

    def _on_progress(self, job: int, info: dict) -> None:
        if job != self._job.job or self._job_kind != "load":
            return
        total = int(info.get("total") or 0)
        if info.get("phase") == "notice":
            self._set_note(str(info.get("message") or ""), "warning")
            return
        if info.get("phase") == "decode" and total:
            self.load_bar.setRange(0, total)
            self.load_bar.setValue(int(info.get("done") or 0))
        elif info.get("phase") == "ready":
            self.load_bar.setRange(0, 1)
            self.load_bar.setValue(1)
        self.load_bar.setFormat(loading_text(info))
        if info.get("phase") == "ready":
            self.last_load = dict(info)

    def _on_job_finished(self, job: int, result) -> None:
        if job != self._job.job:
            return
        kind, path, options = self._job_kind, self._job_path, self._job_options
        self._job_kind = ""
        if self._close_when_stopped:
            self._close_when_stopped = False
            self._show_loading(False)
            super().reject()
            return
        if kind == "preview":
            self.spec, self.options = path, options
            if isinstance(result, ImagePreview):
                self._show_image_preview(result)
            else:
                self._show(result)
            return
        self._show_loading(False)
        self.spec, self.options = path, options
        self._show(result)
        if skipped_text(result):
            self._set_note(skipped_text(result) + ", the first: " + result.images.skipped[0][1], "warning")
        super().accept()

    def _on_job_failed(self, job: int, message: str, cancelled: bool) -> None:
        if job != self._job.job:
            return
        kind, path = self._job_kind, self._job_path
        self._job_kind = ""
        self._show_loading(False)
        if self._close_when_stopped:
            self._close_when_stopped = False
            super().reject()
            return
        if kind == "preview":
            text = message if not message.startswith("cannot be read") else f"{Path(path).name} {message}"
            self._show(None, text, error=True)
        elif cancelled:
            self._set_note("Loading cancelled: nothing was changed. ‘Use this dataset’ starts again (images "
                           "already decoded are decoded again).", "muted")
        else:
            hint = ("" if self.bad_images == "skip" or "image" not in message else
                    " Tick ‘Skip unreadable images’ to leave such files out.")
            self._set_note(f"Loading stopped: {message}.{hint}", "error")

    def _show_loading(self, on: bool) -> None:
        """While decoding: the bar and its Cancel shown, the choices locked."""
        self.load_bar.setVisible(on)
        self.cancel_load_button.setVisible(on)
        self.cancel_load_button.setEnabled(on)
        for w in (self.path_edit, self.file_button, self.folder_button, self.preview_button, self.height_spin,
                  self.width_spin, self.grayscale_check, self.skip_check, self.target_combo):
            w.setEnabled(not on and (w is not self.target_combo or self.target_combo.count() > 0))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(
            not on and (self.dataset is not None or self.image_preview is not None))

    def _set_note(self, text: str, kind: str = "") -> None:
        self.load_note.setText(text)
        self.load_note.setStyleSheet(f"color: {theme.colours()[kind]}" if kind else "")
        self.load_note.setVisible(bool(text))

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
    def _clear(self) -> None:
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

    def _show(self, dataset: Dataset | None, message: str = "", error: bool = False) -> None:
        self.dataset = dataset
        self.image_preview = None
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(dataset is not None)
        self._clear()
        if dataset is None:
            colour = theme.colours()["error"] if error else theme.colours()["muted"]
            self.summary.setStyleSheet(f"color: {colour}")
            self.summary.setText(message)
            return
        self.summary.setStyleSheet("")
        self.summary.setText(f"<b>{dataset.name}</b>: {describe_dataset(dataset)}")
        if dataset.task != "regression":
            counts = np.bincount(np.asarray(dataset.y).reshape(-1).astype(np.int64), minlength=dataset.num_classes)
            self._show_classes(dataset.class_names or [], counts)
        if is_image_data(dataset.x):
            shown = min(PREVIEW_SAMPLES, len(dataset))
            self._show_thumbnails(np.asarray(dataset.x[:shown]), [self.label_of(dataset, i) for i in range(shown)])
        else:
            self._show_rows(dataset)

    def _show_image_preview(self, preview: ImagePreview) -> None:
        """An image folder before decoding: its classes counted, a few of its images."""
        self.dataset, self.image_preview = None, preview
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(True)
        self._clear()
        name = Path(preview.folder).name
        channels, height, width = preview.input_shape
        self.summary.setStyleSheet("")
        self.summary.setText(
            f"<b>{name}</b>: {preview.count:,} images · {len(preview.class_names)} classes · inputs "
            f"{format_shape(preview.input_shape)} ({'grayscale' if channels == 1 else 'RGB'} {height}×{width}, "
            f"pixels 0–255)<br><span style='color:{theme.colours()['muted']}'>A sample of "
            f"{len(preview.x)} images is shown. ‘Use this dataset’ decodes every image once (later uses read "
            "the image cache).</span>")
        self._show_classes(preview.class_names, preview.per_class)
        names = preview.class_names
        self._show_thumbnails(preview.x, [str(names[int(k)]) if int(k) < len(names) else str(int(k))
                                          for k in preview.labels])

    def _show_classes(self, names: list[str], counts) -> None:
        self.classes.setRowCount(len(counts))
        for i, count in enumerate(counts):
            self.classes.setItem(i, 0, QTableWidgetItem(str(names[i]) if i < len(names) else str(i)))
            self.classes.setItem(i, 1, QTableWidgetItem(f"{int(count):,}"))
        self.classes.setVisible(True)

    def _show_thumbnails(self, images: np.ndarray, captions: list[str]) -> None:
        for i, (image, text) in enumerate(zip(images, captions)):
            cell = QLabel(self.samples)
            cell.setPixmap(image_pixmap(image))
            cell.setAlignment(Qt.AlignCenter)
            caption = QLabel(text, self.samples)
            caption.setAlignment(Qt.AlignCenter)
            self.samples_layout.addWidget(cell, 0, i)
            self.samples_layout.addWidget(caption, 1, i)

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


# ----------------------------------------------------------------------------- the image cache

def image_cache_action(parent: QWidget, menu: QMenu) -> QAction:
    """Train → "Clear Image Cache (1.2 GB)…": its size read each time the menu opens."""
    action = QAction("Clear Image Cache…", parent)
    action.setToolTip("Remove the decoded copies of image folders (they are decoded again when next used)")
    action.triggered.connect(lambda: clear_image_cache_asked(parent))

    def refresh() -> None:
        from engine.runtime.data import cache_info

        try:
            info = cache_info()
        except OSError:
            info = {"bytes": 0, "files": 0}
        size = f" ({format_size(info['bytes'])})" if info["files"] else " (empty)"
        action.setText(f"Clear Image Cache{size}…")
        action.setEnabled(bool(info["files"]))

    menu.aboutToShow.connect(refresh)
    refresh()
    return action


def clear_image_cache_asked(parent: QWidget | None, ask: bool = True) -> tuple[int, int] | None:
    """Show the image cache (where, how much, its limit) and clear it if the user agrees: (files,
    bytes) removed, None when nothing was. A run reading a cache file goes on (the file is open)."""
    from engine.runtime.data import cache_info, clear_image_cache

    info = cache_info()
    if not info["files"]:
        QMessageBox.information(parent, "Image cache", f"The image cache is empty.\n\n{info['folder']}")
        return None
    if ask and QMessageBox.question(
            parent, "Clear the image cache",
            f"The image cache holds {info['files']:,} decoded image folder{'s' * (info['files'] != 1)} "
            f"({format_size(info['bytes'])} of at most {format_size(info['limit'])}) in\n{info['folder']}\n\n"
            "Remove them? A folder is decoded again the next time it is used.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No) != QMessageBox.Yes:
        return None
    files, freed = clear_image_cache()
    status = getattr(parent, "statusBar", None)
    if callable(status):
        status().showMessage(f"Image cache cleared: {files:,} file{'s' * (files != 1)}, {format_size(freed)} "
                             "freed", 8000)
    return files, freed



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
