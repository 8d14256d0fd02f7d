"""Colours and the application style: dark by default, light on request."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleFactory, QStyleOptionButton, QStyleOptionViewItem

CATEGORY_COLOURS = {
    "Input/Output": "#4c8bf5",
    "Core": "#3fb27f",
    "Convolution": "#e0883a",
    "Recurrent": "#b565d9",
    "Attention": "#e05a8a",
    "Merge": "#d6b93c",
    "Preprocessing": "#45b5c4",
    "Augmentation": "#8a9bb0",
}

DARK = {"window": "#1f2126", "base": "#17191d", "alt": "#23262c", "text": "#e6e6e6", "muted": "#9aa0a6",
        "canvas": "#1b1d22", "grid": "#262930", "node": "#2b2f36", "node_border": "#3a3f47",
        "selection": "#f5c542", "wire": "#a9b1bb", "error": "#ff5c5c", "warning": "#f5a623",
        "highlight": "#4c8bf5"}
LIGHT = {"window": "#f3f4f6", "base": "#ffffff", "alt": "#eceef1", "text": "#1d1f23", "muted": "#5f6670",
         "canvas": "#fafbfc", "grid": "#e6e8eb", "node": "#ffffff", "node_border": "#c5cad1",
         "selection": "#d49b00", "wire": "#6b7380", "error": "#d93025", "warning": "#c77700",
         "highlight": "#1a73e8"}

_current = dict(DARK)


def colours() -> dict:
    return _current


def colour(name: str) -> QColor:
    return QColor(_current[name])


class Style(QProxyStyle):
    """Fusion, with check boxes and radio buttons that show when unchecked on a dark theme.

    Fusion outlines those indicators in the window colour darkened, which on a dark window is
    all but black on black: an unchecked box was invisible. Here they are outlined from the
    muted text colour instead (check boxes in forms, item views and menus alike)."""

    _INDICATORS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox, QStyle.PrimitiveElement.PE_IndicatorRadioButton,
                   QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)

    def drawPrimitive(self, element, option, painter, widget=None):  # noqa: N802 (Qt name)
        if element in self._INDICATORS and option is not None \
                and option.palette.color(QPalette.ColorRole.Window).lightness() < 128:
            option = (QStyleOptionViewItem if isinstance(option, QStyleOptionViewItem) else
                      QStyleOptionButton if isinstance(option, QStyleOptionButton) else type(option))(option)
            option.palette.setColor(QPalette.ColorRole.Window, QColor(_current["muted"]))
        super().drawPrimitive(element, option, painter, widget)


_style: Style | None = None


def style() -> Style:
    """The application's style (one instance: the application owns it once set)."""
    global _style
    if _style is None:
        _style = Style(QStyleFactory.create("Fusion"))
    return _style


def apply(app: QApplication, dark: bool = True) -> None:
    _current.clear()
    _current.update(DARK if dark else LIGHT)
    c = _current
    if app.style() is not _style:
        app.setStyle(style())
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
