"""Start the designer: `python main.py [FILE]`."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from . import theme


def application(argv: list[str]) -> QApplication:
    """The QApplication, created once, named (that names the per-user data folder) and themed."""
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0], *[a for a in argv if a.startswith("-")]])
    app.setApplicationName("Deepwire")
    app.setOrganizationName("Deepwire")
    theme.apply(app, dark=True)
    return app


def start(argv: list[str], *, show_dialogs: bool = True, offer_restore: bool = True, settings=None):
    """Build and show the main window: the crash handler and log, the document (FILE; else the
    file open last time, unless "Reopen Last File at Start" is off or a crashed session's work is
    restored instead; else the starter template), autosave, and the offer to restore what a
    crashed session left.
    Returns the window; its `recovery` and `crash_handler` attributes are the two guards.
    `settings` (a QSettings) replaces the user's, for tests."""
    application(argv)
    from . import crash
    from .document import Document
    from .main_window import MainWindow
    from .recovery import Recovery, data_dir

    folder = data_dir()
    try:
        handler = crash.install(folder, show_dialog=show_dialogs)
    except OSError:   # no writable data folder: errors are still shown, only not logged to a file
        handler = crash.install(None, show_dialog=show_dialogs)
    document = Document()
    window = MainWindow(document, settings)
    window.crash_handler = handler
    window.recovery = Recovery(document, folder, parent=window)
    files = [a for a in argv if not a.startswith("-")]
    to_restore = bool(offer_restore and window.recovery.orphans())
    if files:
        if not window.open_path(Path(files[0]), ask=False):
            document.new_from_template()
    elif to_restore or not window.reopen_last():   # work to restore: the last file only if that is declined
        document.new_from_template()
    from .gc_guard import GuiThreadCollector

    window.gc_guard = GuiThreadCollector(parent=window).start(freeze=True)   # collections on this thread only
    window.showMaximized()
    if offer_restore:
        restored = window.recovery.offer_restore(window)
        if to_restore and not restored and not files and not document.modified:
            window.reopen_last()
    return window


def run(argv: list[str]) -> int:
    window = start(argv)
    app = QApplication.instance()
    code = app.exec()
    window.recovery.close()
    return code
