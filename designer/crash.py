"""Never crash: an unexpected exception anywhere in the designer is logged and shown, and the
app goes on.

`install(folder)` sets `sys.excepthook` (PySide6 routes exceptions raised in slots and in
overridden Qt methods through it) and `threading.excepthook`. Each error is written, with its
traceback, to a rotating log (`<folder>/logs/deepwire.log`, 1 MiB x 4 files) and shown in a
non-modal dialog: what happened in one line, the details to copy, and where the log is.

A handler never raises and never recurses: an error while reporting is logged (or, failing
that, written to stderr) and dropped. Errors that repeat (a broken paint handler fails on
every frame) open one dialog at a time and at most MAX_DIALOGS in all; the rest are logged.
Tests pass `show_dialog=False`, or read `handler.reports` and `handler.dialog`.
"""
from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

LOG_NAME = "deepwire.log"
LOG_BYTES = 1024 * 1024
LOG_BACKUPS = 3
MAX_DIALOGS = 5
MAX_REPORTS = 200

log = logging.getLogger("deepwire")


@dataclass
class Report:
    """One unexpected error: its one-line summary, the full traceback, and where it happened."""

    summary: str
    details: str
    where: str
    time: float


def setup_logging(folder: Path) -> Path:
    """Log to `<folder>/logs/deepwire.log` (rotating). Idempotent; returns the log file's path."""
    logs = Path(folder) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / LOG_NAME
    for h in log.handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename) == path.resolve():
            return path
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS,
                                                   encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


class CrashHandler(QObject):
    """Logs and shows unexpected exceptions; see the module's docstring."""

    _reported = Signal(object)   # a Report, delivered to the GUI thread

    def __init__(self, folder: Path | None = None, show_dialog: bool = True, parent: QObject | None = None):
        super().__init__(parent)
        self.log_path = setup_logging(folder) if folder is not None else None
        self.show_dialog = show_dialog
        self.reports: list[Report] = []
        self.dialog: QMessageBox | None = None
        self.dialogs_shown = 0
        self._busy = threading.local()
        self._previous: tuple | None = None
        self._fault_file = None
        self._reported.connect(self._show, Qt.QueuedConnection)

    # ------------------------------------------------------------------ hooks
    def install(self) -> CrashHandler:
        if self._previous is None:
            self._previous = (sys.excepthook, threading.excepthook)
            sys.excepthook = self.excepthook
            threading.excepthook = self.thread_excepthook
        if self.log_path is not None and self._fault_file is None:
            try:  # a hard crash (segfault in a native library) leaves its Python stack in the log folder
                self._fault_file = open(self.log_path.parent / "faults.log", "a", encoding="utf-8")  # noqa: SIM115
                faulthandler.enable(self._fault_file, all_threads=True)
            except (OSError, RuntimeError, ValueError):
                self._fault_file = None
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            if sys.excepthook == self.excepthook:
                sys.excepthook = self._previous[0]
            if threading.excepthook == self.thread_excepthook:
                threading.excepthook = self._previous[1]
            self._previous = None
        if self._fault_file is not None:
            try:
                faulthandler.disable()
                self._fault_file.close()
            except (OSError, RuntimeError, ValueError):
                pass
            self._fault_file = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        if self.log_path is not None:
            for h in list(log.handlers):
                if isinstance(h, logging.handlers.RotatingFileHandler) and \
                        Path(h.baseFilename) == self.log_path.resolve():
                    log.removeHandler(h)
                    h.close()

    def excepthook(self, exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt) and self._previous is not None:
            self._previous[0](exc_type, exc, tb)
            return
        self.handle(exc_type, exc, tb, "the designer")

    def thread_excepthook(self, args) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a background thread"
        self.handle(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name}")

    # ------------------------------------------------------------------ handling
    def handle(self, exc_type, exc, tb, where: str = "the designer") -> Report | None:
        """Log the error and schedule its dialog. Never raises; a nested call (an error while
        handling an error on this thread) only writes to stderr."""
        if getattr(self._busy, "active", False):
            _stderr(f"deepwire: another error while reporting an error: {exc_type.__name__}: {exc}")
            return None
        self._busy.active = True
        try:
            details = "".join(traceback.format_exception(exc_type, exc, tb))
            text = _first_line(exc)
            summary = f"{exc_type.__name__}: {text}" if text else exc_type.__name__
            report = Report(summary, details, where, time.time())
            log.error("unexpected error in %s: %s\n%s", where, summary, details.rstrip())
            if len(self.reports) < MAX_REPORTS:
                self.reports.append(report)
            if self.show_dialog:
                self._reported.emit(report)
            return report
        except BaseException as inner:  # noqa: BLE001 - the handler of last resort must not raise
            _stderr(f"deepwire: could not report an error ({exc_type.__name__}: {exc}): {inner!r}")
            return None
        finally:
            self._busy.active = False

    def _show(self, report: Report) -> None:
        """In the GUI thread: one dialog at a time, at most MAX_DIALOGS per session."""
        if getattr(self._busy, "active", False):
            return
        self._busy.active = True
        try:
            if self.dialog is not None and self.dialog.isVisible():
                return
            if self.dialogs_shown >= MAX_DIALOGS or QApplication.instance() is None:
                return
            if QThread.currentThread() is not QApplication.instance().thread():
                return
            self.dialogs_shown += 1
            self.dialog = self._make_dialog(report)
            self.dialog.show()
        except BaseException as inner:  # noqa: BLE001
            try:
                log.error("the error dialog itself failed: %r", inner)
            except BaseException:  # noqa: BLE001
                _stderr(f"deepwire: the error dialog failed: {inner!r}")
        finally:
            self._busy.active = False

    def _make_dialog(self, report: Report) -> QMessageBox:
        parent = QApplication.activeWindow()
        box = QMessageBox(parent)
        box.setObjectName("deepwire-crash")
        box.setIcon(QMessageBox.Warning)
        box.setWindowTitle("Something went wrong")
        box.setText(f"Deepwire hit an unexpected error in {report.where}:\n\n{report.summary}")
        where = f"\n\nThe details were also written to {self.log_path}." if self.log_path else ""
        more = ("\n\nFurther errors this session are written to the log only."
                if self.dialogs_shown >= MAX_DIALOGS else "")
        box.setInformativeText("Deepwire goes on and your work is still open; saving it now is a good idea. "
                               f"Please report this with the details below.{where}{more}")
        box.setDetailedText(report.details)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        copy = box.addButton("Copy Details", QMessageBox.ActionRole)
        try:
            copy.clicked.disconnect()   # keep the box open after copying
        except (RuntimeError, TypeError):
            pass
        copy.clicked.connect(lambda: QApplication.clipboard().setText(f"{report.summary}\n\n{report.details}"))
        box.addButton(QMessageBox.Close)
        box.setModal(False)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.destroyed.connect(self._dialog_gone)
        return box

    def _dialog_gone(self, *_args) -> None:
        self.dialog = None


_handler: CrashHandler | None = None


def install(folder: Path | None, show_dialog: bool = True) -> CrashHandler:
    """Install the app-wide handler (once); later calls return the same one."""
    global _handler
    if _handler is None:
        _handler = CrashHandler(folder, show_dialog).install()
    return _handler


def uninstall() -> None:
    global _handler
    if _handler is not None:
        _handler.uninstall()
        _handler = None


def _first_line(exc) -> str:
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop the report
        text = "(no message)"
    return text if len(text) <= 300 else text[:297] + "..."


def _stderr(text: str) -> None:
    try:
        sys.__stderr__.write(text + "\n")
    except (OSError, AttributeError, ValueError):
        pass
