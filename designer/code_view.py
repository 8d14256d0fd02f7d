"""The live code preview: the generated PyTorch source, read-only and highlighted."""
from __future__ import annotations

import builtins
import keyword

from PySide6.QtCore import QEvent, QRegularExpression, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QApplication, QLabel, QPlainTextEdit, QWidget

from . import theme

# One Dark / One Light: readable on the dark and on the light theme.
DARK_STYLE = {"keyword": "#c678dd", "builtin": "#56b6c2", "string": "#98c379", "comment": "#7f848e",
              "number": "#d19a66", "self": "#e06c75", "decorator": "#e5c07b", "definition": "#61afef"}
LIGHT_STYLE = {"keyword": "#a626a4", "builtin": "#0184bc", "string": "#50a14f", "comment": "#6a717c",
               "number": "#986801", "self": "#e45649", "decorator": "#a36c00", "definition": "#4078f2"}

NORMAL, IN_TRIPLE_DOUBLE, IN_TRIPLE_SINGLE = 0, 1, 2
TO_END = 1 << 30  # setFormat clamps to the block's length
_BUILTINS = sorted(n for n in dir(builtins) if not n.startswith("_") and not keyword.iskeyword(n))


def _words(names) -> str:
    return r"(?<![\w.])(?:" + "|".join(names) + r")\b"


def _closing(delimiter: str) -> QRegularExpression:
    """The next `delimiter` that is not escaped by an odd number of backslashes."""
    quoted = QRegularExpression.escape(delimiter)
    return QRegularExpression(r"(?<!\\)(?:\\\\)*" + quoted)


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, builtins, self, numbers, decorators, definitions, strings and comments.

    Strings and comments are found by one left-to-right scan, so a '#' inside a string or a
    quote inside a comment is handled; triple-quoted strings carry across lines in the
    block state."""

    def __init__(self, document: QTextDocument, dark: bool | None = None):
        super().__init__(document)
        if dark is None:
            dark = QColor(theme.colours()["base"]).lightness() < 128
        style = DARK_STYLE if dark else LIGHT_STYLE
        self.formats = {name: _format(colour) for name, colour in style.items()}
        self.formats["comment"].setFontItalic(True)
        self.formats["self"].setFontItalic(True)
        self.formats["keyword"].setFontWeight(QFont.DemiBold)
        self.rules = [
            (QRegularExpression(_words(keyword.kwlist)), "keyword"),
            (QRegularExpression(_words(_BUILTINS)), "builtin"),
            (QRegularExpression(r"\bself\b"), "self"),
            (QRegularExpression(r"\b(?:0[xXoObB][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?)\b"), "number"),
            (QRegularExpression(r"^\s*@[\w.]+"), "decorator"),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), "definition"),
        ]
        self.opening = QRegularExpression(r"#|(?:\b[rRbBuUfF]{1,2})?(\"\"\"|'''|\"|')")
        self.closing = {d: _closing(d) for d in ('"""', "'''", '"', "'")}

    def highlightBlock(self, text: str) -> None:
        for rx, name in self.rules:
            matches = rx.globalMatch(text)
            while matches.hasNext():
                m = matches.next()
                group = 1 if rx.captureCount() else 0
                self.setFormat(m.capturedStart(group), m.capturedLength(group), self.formats[name])
        self._strings_and_comments(text)

    def _strings_and_comments(self, text: str) -> None:
        string = self.formats["string"]
        self.setCurrentBlockState(NORMAL)
        pos = 0
        carried = {IN_TRIPLE_DOUBLE: '"""', IN_TRIPLE_SINGLE: "'''"}.get(self.previousBlockState())
        if carried:
            end = self._end_of(text, 0, carried)
            if end < 0:
                self.setFormat(0, TO_END, string)
                self.setCurrentBlockState(self.previousBlockState())
                return
            self.setFormat(0, end, string)
            pos = end
        while True:
            m = self.opening.match(text, pos)
            if not m.hasMatch():
                return
            start = m.capturedStart()
            if m.captured() == "#":
                self.setFormat(start, TO_END, self.formats["comment"])
                return
            delimiter = m.captured(1)
            end = self._end_of(text, m.capturedEnd(), delimiter)
            if end < 0:
                self.setFormat(start, TO_END, string)
                if len(delimiter) == 3:
                    self.setCurrentBlockState(IN_TRIPLE_DOUBLE if delimiter == '"""' else IN_TRIPLE_SINGLE)
                return
            self.setFormat(start, end - start, string)
            pos = end

    def _end_of(self, text: str, pos: int, delimiter: str) -> int:
        """Where the string closed by `delimiter` ends, searching from `pos`; -1 if not on this line."""
        m = self.closing[delimiter].match(text, pos)
        return m.capturedEnd() if m.hasMatch() else -1


def _format(colour: str) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(colour))
    return fmt


class CodeView(QPlainTextEdit):
    """Read-only, highlighted source. `set_source` keeps the reader's place and can put a note
    above the code (e.g. that it is out of date); `set_message` shows a grey line in place of the code."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        font.setStyleHint(QFont.Monospace)  # where no fixed font is configured, ask for any monospace one
        font.setFixedPitch(True)
        self.setFont(font)
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.highlighter = PythonHighlighter(self.document())
        self._source = ""
        self._scroll = (0, 0)  # where the reader was, kept while a message is shown
        self.banner = QLabel(self)
        self.banner.setObjectName("code_note")
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.PlainText)
        self.banner.setMargin(6)
        self.banner.setFont(QApplication.font())   # prose, not code
        self.banner.hide()
        self._style_banner()
        self.verticalScrollBar().rangeChanged.connect(lambda *_: self._place_banner())  # it may come or go

    @property
    def note(self) -> str:
        """The note shown above the code ('' when none)."""
        return self.banner.text() if not self.banner.isHidden() else ""

    def set_note(self, text: str | None) -> None:
        """A line above the code (the code is kept: e.g. 'Out of date: ...'), or none."""
        text = text or ""
        if text == self.note:
            return
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self._place_banner()

    def _style_banner(self) -> None:
        c = theme.colours()
        self.banner.setStyleSheet(f"QLabel#code_note {{ background: {c['alt']}; color: {c['warning']}; "
                                  f"border-bottom: 1px solid {c['warning']}; }}")

    def _place_banner(self) -> None:
        """Above the code, beside the scroll bar; the code starts below it."""
        if self.banner.isHidden():
            self.setViewportMargins(0, 0, 0, 0)
            return
        rect = self.contentsRect()
        bar = self.verticalScrollBar()
        width = rect.width() - (bar.sizeHint().width() if bar.maximum() > bar.minimum() else 0)
        height = self.banner.heightForWidth(width)
        self.banner.setGeometry(rect.left(), rect.top(), width, height)
        self.setViewportMargins(0, height, 0, 0)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if not self.banner.isHidden():
            self._place_banner()

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) \
                and hasattr(self, "banner"):
            self._style_banner()

    @property
    def source(self) -> str:
        """The code shown, or '' while a message is shown."""
        return self._source

    def set_source(self, text: str, note: str | None = None) -> None:
        """Show `text`, keeping the scroll position (clamped to the new length), with `note`
        above it (none when None)."""
        self.set_note(note)
        if text == self._source and not self.placeholderText():
            return
        if self._source:
            self._scroll = self._scroll_position()
        self.setPlaceholderText("")
        old, self._source = self._source, text
        if old:
            self._replace_changed_lines(old, text)  # only the edited lines are re-highlighted
        else:
            self.setPlainText(text)
        vertical, horizontal = self._scroll
        self.verticalScrollBar().setValue(vertical)
        self.horizontalScrollBar().setValue(horizontal)

    def _replace_changed_lines(self, old: str, new: str) -> None:
        a, b = old.split("\n"), new.split("\n")
        head = 0
        while head < min(len(a), len(b)) and a[head] == b[head]:
            head += 1
        tail = 0
        while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
            tail += 1
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        start = doc.findBlockByNumber(head).position() if head < doc.blockCount() else doc.characterCount() - 1
        last = len(a) - tail - 1
        if last >= head:
            end_block = doc.findBlockByNumber(last)
            end = end_block.position() + end_block.length() - 1
        else:
            end = start
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.KeepAnchor)
        middle = "\n".join(b[head:len(b) - tail])
        if last < head and middle:
            middle += "\n"  # pure insertion before an unchanged line
        cursor.insertText(middle)
        cursor.endEditBlock()
        if self.toPlainText() != new:  # belt and braces: never show anything but the source
            self.setPlainText(new)

    def set_message(self, text: str) -> None:
        """Show `text` in grey instead of code, e.g. 'The graph has errors; fix them to see the code.'"""
        self.set_note(None)
        if self._source:
            self._scroll = self._scroll_position()
        self._source = ""
        self.clear()
        self.setPlaceholderText(text)

    def _scroll_position(self) -> tuple[int, int]:
        return self.verticalScrollBar().value(), self.horizontalScrollBar().value()
