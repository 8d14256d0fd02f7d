"""Colours and the application style: dark by default, light on request."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

CATEGORY_COLOURS = {
    "Input/Output": "#4c8bf5",
    "Core": "#3fb27f",
    "Convolution": "#e0883a",
    "Normalization": "#6fae4b",
    "Recurrent": "#b565d9",
    "Attention": "#e05a8a",
    "Merge": "#d6b93c",
    "Tensor": "#a0785a",
    "Preprocessing": "#45b5c4",
    "Augmentation": "#8a9bb0",
    "Modules": "#9b8cff",
}

DARK = {"window": "#1f2126", "base": "#17191d", "alt": "#23262c", "text": "#e6e6e6", "muted": "#9aa0a6",
        "canvas": "#1b1d22", "grid": "#262930", "node": "#2b2f36", "node_border": "#3a3f47",
        "selection": "#f5c542", "wire": "#a9b1bb", "error": "#ff5c5c", "warning": "#f5a623",
        "highlight": "#4c8bf5", "frozen": "#8fd3ff"}
LIGHT = {"window": "#f3f4f6", "base": "#ffffff", "alt": "#eceef1", "text": "#1d1f23", "muted": "#5f6670",
         "canvas": "#fafbfc", "grid": "#e6e8eb", "node": "#ffffff", "node_border": "#c5cad1",
         "selection": "#d49b00", "wire": "#6b7380", "error": "#d93025", "warning": "#c77700",
         "highlight": "#1a73e8", "frozen": "#2b7bb9"}

_current = dict(DARK)


def colours() -> dict:
    return _current


def colour(name: str) -> QColor:
    return QColor(_current[name])


# Fusion outlines check boxes and radio buttons in the window colour darkened: on a dark window
# an unchecked box is all but invisible. Those widgets get a palette whose window colour is the
# muted text colour, so their outline shows. (A QProxyStyle overriding drawPrimitive in Python
# did the same, but then every primitive Qt draws enters Python and waits for the GIL, which a
# training thread holds: it cost training throughput and UI latency.) Item views draw their
# check boxes the same way; their own background is the base colour, not the window colour.
INDICATOR_CLASSES = ("QCheckBox", "QRadioButton", "QAbstractItemView")


def indicator_palette(base: QPalette) -> QPalette:
    pal = QPalette(base)
    if QColor(_current["window"]).lightness() < 128:
        pal.setColor(QPalette.Window, QColor(_current["muted"]))
    return pal


def apply(app: QApplication, dark: bool = True) -> None:
    _current.clear()
    _current.update(DARK if dark else LIGHT)
    c = _current
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    pal = QPalette()
    pal.setColor(QPalette.Window, QColor(c["window"]))
    pal.setColor(QPalette.WindowText, QColor(c["text"]))
    pal.setColor(QPalette.Base, QColor(c["base"]))
    pal.setColor(QPalette.AlternateBase, QColor(c["alt"]))
    pal.setColor(QPalette.Text, QColor(c["text"]))
    pal.setColor(QPalette.Button, QColor(c["alt"]))
    pal.setColor(QPalette.ButtonText, QColor(c["text"]))
    pal.setColor(QPalette.ToolTipBase, QColor(c["alt"]))
    pal.setColor(QPalette.ToolTipText, QColor(c["text"]))
    pal.setColor(QPalette.Highlight, QColor(c["highlight"]))
    pal.setColor(QPalette.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.PlaceholderText, QColor(c["muted"]))
    pal.setColor(QPalette.Disabled, QPalette.Text, QColor(c["muted"]))
    pal.setColor(QPalette.Disabled, QPalette.ButtonText, QColor(c["muted"]))
    app.setPalette(pal)
    for name in INDICATOR_CLASSES:
        app.setPalette(indicator_palette(pal), name)
