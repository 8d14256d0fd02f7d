"""Start the designer: `python main.py [FILE]`."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from . import theme


def run(argv: list[str]) -> int:
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0], *[a for a in argv if a.startswith("-")]])
    app.setApplicationName("Deepwire")
    app.setOrganizationName("Deepwire")
    theme.apply(app, dark=True)
    from .document import Document
    from .main_window import MainWindow

    document = Document()
    window = MainWindow(document)
    files = [a for a in argv if not a.startswith("-")]
    if files:
        if not window.open_path(Path(files[0]), ask=False):
            document.new_from_template()
    else:
        document.new_from_template()
    window.showMaximized()
    return app.exec()
