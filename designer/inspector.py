"""The inspector: the selected block's name and parameters, edited with widgets generated from
the block declaration, plus what analysis says about it (output shape, weights, FLOPs, problems).

Every committed edit is one command on the document's undo stack (`SetParams`, `Rename`);
editing several blocks of one type at once is one command too, and quick repeats of the same
edit (spin box arrows clicked or held) merge into one step. A value the declaration refuses
(`Param.validate`) is refused at the field, with the reason underneath, and nothing is pushed.
The inspector follows the graph (undo/redo, edits elsewhere) without stealing focus or
pushing anything while it refreshes.
"""
from __future__ import annotations

import dataclasses
import keyword
import math
import threading
import weakref
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.analysis import WARNING, Analysis
from engine.blocks import TOKENS, Block, Param, ParamError, get_block
from engine.blocks.module import MODULE
from engine.flops import Probe, add_probe, count_flops, probe_of
from engine.graph import ARGUMENT, MAX_NAME, Graph, clean_name
from engine.modules import declared

from . import theme
from .commands import Rename, SetArgument, SetParams
from .document import Document

HINT = "Select a block to edit it. Drag blocks from the palette onto the canvas."
FLOPS_IDLE_MS = 200
FLOPS_PREFETCH = 16            # blocks wired to the shown one whose FLOPs are counted ahead
INT_LIMIT = 2**31 - 1          # QSpinBox holds a C int
FLOAT_LIMIT = 1e12
MIXED = "mixed"
_MISSING = object()


def readable(param: Param) -> str:
    """The label shown for a parameter: its declaration's (`Param.display_label`)."""
    return param.display_label


# ----------------------------------------------------------------------------- text <-> values

def format_value(param: Param, value: Any) -> str:
    """A size/ints/padding value as the text a person would type: "3", "3, 5", "same"."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        values = list(value)
        if param.kind in ("size", "padding") and values and all(v == values[0] for v in values):
            return str(values[0])
        return ", ".join(str(v) for v in values)
    return str(value)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # validate() explains why it is not a number


def parse_value(param: Param, text: str) -> Any:
    """Parse "3", "3, 5", "[3, 5]", "(3, 5)" (and "same"/"valid" for padding) and validate it.
    Returns the value to store; raises ParamError with a message for the person typing."""
    text = text.strip()
    if not text:
        raise ParamError(f"{param.name} needs a value")
    if param.kind == "padding":
        for choice in param.choices:
            if text.lower() == choice.lower():
                return param.validate(choice)
    inner, bracketed = text, False
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        inner, bracketed = text[1:-1], True
    parts = inner.split(",") if "," in inner else inner.split()
    values = [_number(part.strip()) for part in parts if part.strip()]
    if not values:
        raise ParamError(f"{param.name} needs a value")
    if param.kind in ("size", "padding") and len(values) == 1 and not bracketed:
        value = param.validate(values[0])
        return values[0] if isinstance(values[0], int) else value  # keep "3" as 3, not (3, 3)
    return param.validate(values)


def _canonical(param: Param, raw: Any) -> Any:
    """A raw stored value in a form that compares equal when it means the same (3 and [3, 3])."""
    try:
        return param.validate(raw)
    except ParamError:
        return ("invalid", repr(raw))


def _same(param: Param, raw: Any, value: Any) -> bool:
    """Whether a stored raw value already equals a validated value."""
    if raw is _MISSING:
        return False
    try:
        return param.validate(raw) == param.validate(value)
    except ParamError:
        return False


# ----------------------------------------------------------------------------- FLOPs in the background
# A block's FLOPs depend only on its type, its parameters and the shapes coming in, so they are
# counted for that block alone (a three-block model: Inputs of those shapes, the block, an
# Output) on a thread, and cached under that key: selecting a block costs a dictionary lookup,
# whatever the size of the graph, and blocks that are alike share one count.

_FLOPS_CACHE: OrderedDict[tuple, int | None] = OrderedDict()
_FLOPS_CACHE_SIZE = 4096

FlopJob = tuple[tuple, Probe]  # (the probe's key, the probe)


def flops_job(analysis: Analysis, graph: Graph, node_id: str, modules: dict | None = None) -> FlopJob | None:
    """What a block's FLOPs depend on, as a cache key plus the block's probe; None while its
    parameters or an input's shape are unknown. Cheap: it looks at the block only."""
    probe = probe_of(graph, analysis, node_id, modules)
    return None if probe is None else (probe.key(), probe)


def count_block_flops(jobs: list[FlopJob]) -> dict[tuple, int | None]:
    """Count the FLOPs of several blocks in one small model: each block's probe (Inputs of its
    input shapes, the block, an Output) side by side. Blocks whose model cannot be built get None."""
    graph = Graph("flops")
    ids = {key: add_probe(graph, probe) for key, probe in jobs}
    flops = count_flops(graph)
    if not flops and len(jobs) > 1:  # one block that cannot be built on its own spoils the batch
        out: dict[tuple, int | None] = {}
        for job in jobs:
            try:
                out.update(count_block_flops([job]))
            except Exception:
                out[job[0]] = None
        return out
    return {key: (flops.get(node_id, 0) if flops else None) for key, node_id in ids.items()}


class _FlopCounter(QObject):
    """Counts blocks' FLOPs (engine.flops.count_flops compiles a model: slow) on a thread, one
    batch at a time, in the order asked; results are cached by block key."""

    ready = Signal()               # new results are in the cache
    _done = Signal(object)

    def __init__(self):
        super().__init__()
        self._busy = False
        self._queue: list[list[FlopJob]] = []
        self._asked: set[tuple] = set()   # keys counting or waiting
        self._done.connect(self._finish, Qt.ConnectionType.QueuedConnection)

    @staticmethod
    def cached(key: tuple) -> tuple[bool, int | None]:
        if key in _FLOPS_CACHE:
            _FLOPS_CACHE.move_to_end(key)
            return True, _FLOPS_CACHE[key]
        return False, None

    def idle(self) -> bool:
        return not self._busy and not self._queue

    def request(self, jobs: list[FlopJob]) -> None:
        fresh = []
        for job in jobs:
            if job[0] not in _FLOPS_CACHE and job[0] not in self._asked:
                self._asked.add(job[0])
                fresh.append(job)
        if fresh:
            self._queue.append(fresh)
            if not self._busy:
                self._next()

    def _next(self) -> None:
        if not self._queue:
            return
        self._busy = True
        jobs = self._queue.pop(0)
        # not a daemon: quitting waits for the count (torch killed mid-call at exit aborts the process)
        threading.Thread(target=self._work, args=(jobs,), name="deepwire-flops", daemon=False).start()

    def _work(self, jobs: list[FlopJob]) -> None:
        try:
            result = count_block_flops(jobs)
        except Exception:  # a block that cannot be compiled simply has no FLOP count
            result = {job[0]: None for job in jobs}
        self._done.emit(result)

    def _finish(self, result: dict) -> None:
        for key, flops in result.items():
            _FLOPS_CACHE[key] = flops
            self._asked.discard(key)
        while len(_FLOPS_CACHE) > _FLOPS_CACHE_SIZE:
            _FLOPS_CACHE.popitem(last=False)
        self._busy = False
        self._next()
        self.ready.emit()


_counter: _FlopCounter | None = None


def flop_counter() -> _FlopCounter:
    global _counter
    if _counter is None:
        _counter = _FlopCounter()
    return _counter


def compact(n: int) -> str:
    for size, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return str(n)


# ----------------------------------------------------------------------------- editors

class _NoWheelMixin:
    """Scrolling the form must not change a value the pointer happens to pass over."""

    def wheelEvent(self, event):  # noqa: N802 (Qt name)
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class _KeepTypedNumberMixin:
    """A number typed outside the box's range stays in the field as typed: a spin box drops the
    keystroke that would leave its range, so "-5" typed where only positive numbers are allowed
    became 5, silently. Kept, the inspector refuses it on Enter and says why."""

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt name)
        result = super().validate(text, pos)
        state = result[0] if isinstance(result, tuple) else result
        if state == QValidator.State.Invalid and self._out_of_range(text):
            return QValidator.State.Intermediate, text, pos
        return result

    def _out_of_range(self, text: str) -> bool:
        core = text.strip()
        if self.prefix() and core.startswith(self.prefix()):
            core = core[len(self.prefix()):]
        if self.suffix() and core.endswith(self.suffix()):
            core = core[:-len(self.suffix())]
        core = core.strip().replace(self.locale().decimalPoint(), ".")
        if core == "-":
            return self.minimum() >= 0
        number = _number(core)
        if isinstance(self, QSpinBox) and not isinstance(number, int):
            return False
        return isinstance(number, (int, float)) and math.isfinite(number) \
            and not self.minimum() <= number <= self.maximum()


class IntSpin(_KeepTypedNumberMixin, _NoWheelMixin, QSpinBox):
    """A spin box that can show "no common value" (blank) for several blocks."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mixed = False

    def textFromValue(self, value: int) -> str:  # noqa: N802
        return "" if self.mixed else str(value)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.mixed = False
        super().stepBy(steps)


class FloatSpin(_KeepTypedNumberMixin, _NoWheelMixin, QDoubleSpinBox):
    """A double spin box that shows 0.5 rather than 0.500000, and can show "mixed" (blank)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mixed = False

    def textFromValue(self, value: float) -> str:  # noqa: N802
        if self.mixed:
            return ""
        text = f"{value:.{self.decimals()}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        return text.replace(".", self.locale().decimalPoint())

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.mixed = False
        super().stepBy(steps)


class ChoiceCombo(_NoWheelMixin, QComboBox):
    pass


def _decimals_for(param: Param, value: Any) -> int:
    decimals = 6
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value and math.isfinite(value):
        if abs(value) < 1e-4:
            decimals = max(decimals, min(12, 2 - math.floor(math.log10(abs(value)))))
    return decimals


def _step_for(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.1
    v = abs(value)
    if v >= 10:
        return 1.0
    if v >= 0.1 or v == 0:
        return 0.1
    if v >= 0.001:
        return 0.001
    return 10.0 ** math.floor(math.log10(v))


class Field:
    """One parameter's editor (for one or several nodes of the same type), with the label
    under it that says why a value was refused."""

    def __init__(self, inspector: Inspector, param: Param, node_ids: list[str]):
        self.inspector = inspector
        self.param = param
        self.node_ids = list(node_ids)
        self.mixed = False      # no common value is shown (several blocks differ, or an invalid value)
        self.was_mixed = False  # as last shown by a refresh
        self.placeholder = ""
        self.dirty = False      # the person has typed something not yet committed
        self.typed = ""         # spin boxes: what was typed, before the box clamps or reverts it
        self.arg: str | None = None   # a module instance's parameter this field edits (in its `args`)
        self.shown: Any = None  # spin boxes: the value last shown, after the box's rounding
        self.container = QWidget()
        box = QVBoxLayout(self.container)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.editor = self._make_editor()
        self.editor.setObjectName(f"param_{param.name}")
        self.editor.setToolTip(param.help)
        box.addWidget(_framed(self.editor))
        self.error = _message_label("error")
        self.error.setObjectName(f"error_{param.name}")
        box.addWidget(self.error)
        self.error.hide()

    # -- construction
    def _make_editor(self) -> QWidget:
        p, kind = self.param, self.param.kind
        if kind == "int":
            spin = IntSpin()
            spin.setRange(int(p.min) if p.min is not None else -INT_LIMIT,
                          int(p.max) if p.max is not None else INT_LIMIT)
            spin.setKeyboardTracking(False)  # valueChanged on Enter / arrows / focus out, not per key
            spin.setAccelerated(True)
            self._wire_spin(spin)
            return spin
        if kind == "float":
            spin = FloatSpin()
            spin.setKeyboardTracking(False)
            spin.setDecimals(6)
            spin.setRange(p.min if p.min is not None else -FLOAT_LIMIT, p.max if p.max is not None else FLOAT_LIMIT)
            self._wire_spin(spin)
            return spin
        if kind == "bool":
            check = QCheckBox()
            changed = getattr(check, "checkStateChanged", None) or check.stateChanged
            changed.connect(lambda _state: self.inspector._commit(self))
            return check
        if kind == "choice" or (kind == "name" and p.name == "module"):
            combo = ChoiceCombo()
            # a module instance picks one of the project's modules
            choices = p.choices if kind == "choice" else self.inspector.document.addable_modules()
            for choice in choices:
                combo.addItem(choice, choice)
            combo.setPlaceholderText(MIXED)
            combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            combo.currentIndexChanged.connect(lambda _i: self.inspector._commit(self))
            return combo
        edit = QLineEdit()  # size, ints, padding
        edit.setMaxLength(200)
        self.placeholder = {"size": "3  or  3, 5", "ints": "e.g. 28, 28",
                            "padding": f"{' / '.join(p.choices) or '0'}, 1  or  1, 2"}.get(kind, "")
        edit.setPlaceholderText(self.placeholder)
        edit.textEdited.connect(self._edited)
        edit.editingFinished.connect(lambda: self.inspector._commit(self))
        return edit

    def _wire_spin(self, spin) -> None:
        spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        spin.lineEdit().textEdited.connect(self._edited)
        spin.valueChanged.connect(lambda _v: self.inspector._commit(self))
        spin.editingFinished.connect(lambda: self.inspector._commit(self))

    def _edited(self, text: str) -> None:
        self.dirty = True
        self.typed = text
        if isinstance(self.editor, (IntSpin, FloatSpin)):
            # typing replaces the blank "mixed" state; clearing the text again restores it
            self.editor.mixed = self.mixed = self.was_mixed and not text.strip()

    # -- showing values (the inspector's guard flag is up while these run)
    def busy(self) -> bool:
        """Being typed into: a refresh must leave it alone."""
        return self.dirty and self.editor.hasFocus()

    def show(self, raws: list[Any]) -> None:
        """Show the nodes' current values: the common one, or blank where they differ."""
        p = self.param
        first = raws[0]
        common = _canonical(p, first)
        self.mixed = any(_canonical(p, r) != common for r in raws[1:])
        self.dirty = False
        self.typed = ""
        problem = None
        if not self.mixed:
            try:
                p.validate(first)
            except ParamError as exc:
                problem = str(exc)
        ed = self.editor
        if isinstance(ed, IntSpin):
            valid = isinstance(first, int) and not isinstance(first, bool) and ed.minimum() <= first <= ed.maximum()
            ed.mixed = self.mixed or not valid
            ed.setValue(first if valid else ed.minimum())
            ed.lineEdit().setPlaceholderText(MIXED if self.mixed else "")
            self.shown = None if ed.mixed else ed.value()
            self.mixed = ed.mixed
        elif isinstance(ed, FloatSpin):
            number = isinstance(first, (int, float)) and not isinstance(first, bool) and math.isfinite(first)
            valid = number and ed.minimum() <= first <= ed.maximum()
            ed.mixed = self.mixed or not valid
            ed.setDecimals(_decimals_for(p, first if number else p.default))
            ed.setSingleStep(_step_for(first if number else p.default))
            ed.setValue(float(first) if valid else ed.minimum())
            ed.lineEdit().setPlaceholderText(MIXED if self.mixed else "")
            self.shown = None if ed.mixed else ed.value()
            self.mixed = ed.mixed
        elif isinstance(ed, QCheckBox):
            if self.mixed or not isinstance(first, bool):
                ed.setTristate(True)
                ed.setCheckState(Qt.CheckState.PartiallyChecked)
            else:
                ed.setTristate(False)
                ed.setChecked(first)
        elif isinstance(ed, QComboBox):
            index = ed.findData(first) if not self.mixed and isinstance(first, str) else -1
            ed.setCurrentIndex(index)
        else:
            ed.setText("" if self.mixed else format_value(p, first))
            ed.setPlaceholderText(MIXED if self.mixed else self.placeholder)
            ed.setModified(False)
        self.was_mixed = self.mixed
        self.set_error(problem)

    def set_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        _mark_invalid(self.editor, bool(message))

    # -- reading what the person chose
    def read(self) -> tuple[bool, Any]:
        """(False, None) when there is nothing to commit, else (True, validated value).
        Raises ParamError for a value the declaration refuses."""
        ed = self.editor
        if isinstance(ed, (IntSpin, FloatSpin)):
            typed, self.typed = self.typed.strip(), ""
            number = _number(typed.replace(ed.locale().decimalPoint(), ".")) if typed else None
            if isinstance(number, (int, float)) and number != ed.value():
                # the box reverted or clamped what was typed: say why instead of quietly ignoring it
                self.param.validate(number)
                if not ed.minimum() <= number <= ed.maximum():
                    low, high = (int(v) if float(v).is_integer() else v for v in (ed.minimum(), ed.maximum()))
                    raise ParamError(f"{self.param.name} must be between {low} and {high}; got {typed}")
            if ed.mixed or ed.value() == self.shown:
                return False, None
            return True, self.param.validate(ed.value())
        if isinstance(ed, QCheckBox):
            state = ed.checkState()
            if state == Qt.CheckState.PartiallyChecked:
                return False, None
            ed.setTristate(False)
            return True, state == Qt.CheckState.Checked
        if isinstance(ed, QComboBox):
            if ed.currentIndex() < 0:
                return False, None
            return True, self.param.validate(ed.currentData())
        text = ed.text()
        if self.mixed and not text.strip():
            return False, None
        return True, parse_value(self.param, text)


def _message_label(kind: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet(f"color: {theme.colours()[kind]};")
    return label


def _framed(editor: QWidget) -> QFrame:
    """The editor inside a thin frame that turns red when its value is refused. (A style sheet on
    the editor itself would replace the native look, spin box arrows included.)"""
    frame = QFrame()
    frame.setObjectName("edit_frame")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(1, 1, 1, 1)
    layout.addWidget(editor)
    _frame_style(frame, None)
    return frame


def _frame_style(frame: QWidget, colour: str | None) -> None:
    frame.setStyleSheet(f"QFrame#edit_frame {{ border: 1px solid {colour or 'transparent'}; border-radius: 4px; }}")


def _mark_invalid(editor: QWidget, invalid: bool) -> None:
    """Mark an editor (the `invalid` property) and colour its frame."""
    if bool(editor.property("invalid")) == invalid:
        return
    editor.setProperty("invalid", invalid)
    frame = editor.parentWidget()
    if frame is not None and frame.objectName() == "edit_frame":
        _frame_style(frame, theme.colours()["error"] if invalid else None)


class _GraphListener:
    """Forwards graph events to an inspector without keeping it alive."""

    def __init__(self, inspector: Inspector):
        self._ref = weakref.ref(inspector)

    def __call__(self, event: str, payload: dict) -> None:
        inspector = self._ref()
        if inspector is None:
            return
        try:
            inspector._on_graph_event(event, payload)
        except RuntimeError:  # the widget is being destroyed
            pass


# ----------------------------------------------------------------------------- the inspector

class Inspector(QWidget):
    """The selected block's (or blocks') editable properties and analysis."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._ids: list[str] = []
        self._id_set: set[str] = set()
        self._fields: dict[str, Field] = {}
        self._updating = False
        self.name_edit: QLineEdit | None = None
        self.name_message: QLabel | None = None
        self.title_label: QLabel | None = None
        self.shape_label: QLabel | None = None
        self.params_label: QLabel | None = None
        self.flops_label: QLabel | None = None
        self.open_button: QPushButton | None = None
        self._diag_box: QVBoxLayout | None = None
        self._flops_job: FlopJob | None = None  # what the FLOP figure shown is (to be) counted for

        self._scroll = QScrollArea(self)
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._scroll)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self._flops_timer = QTimer(self)
        self._flops_timer.setSingleShot(True)
        self._flops_timer.setInterval(FLOPS_IDLE_MS)
        self._flops_timer.timeout.connect(self._request_flops)
        self._theme_timer = QTimer(self)
        self._theme_timer.setSingleShot(True)
        self._theme_timer.setInterval(0)
        self._theme_timer.timeout.connect(self._rebuild)

        # The graph is plain Python: it holds a listener that only weakly refers to this widget,
        # and the listener is removed when the widget goes.
        self._listener = _GraphListener(self)
        self._subscription = {"listener": self._listener, "graph": weakref.ref(document.shown)}
        document.shown.subscribe(self._listener)
        subscription = self._subscription
        self.destroyed.connect(lambda *_: _unsubscribe(subscription))

        document.shownAnalysed.connect(self._on_analysed)
        document.graphReplaced.connect(self._on_graph_replaced)
        document.shownChanged.connect(self._on_graph_replaced)   # a module entered or left
        flop_counter().ready.connect(self._on_flops_ready)
        self._rebuild()

    # ------------------------------------------------------------------ public API
    def set_selection(self, node_ids: list[str]) -> None:
        """Show the given nodes (the canvas selection). Unknown ids are ignored."""
        graph = self.document.shown
        ids = list(dict.fromkeys(n for n in node_ids if n in graph))
        if ids == self._ids:
            self.refresh()
            return
        self._flush()
        self._ids = ids
        self._rebuild()

    def selection(self) -> list[str]:
        return list(self._ids)

    def editor(self, param_name: str) -> QWidget | None:
        """The editor widget of a parameter, or None when it is not shown."""
        field = self._fields.get(param_name)
        return field.editor if field else None

    def error_text(self, param_name: str) -> str:
        """The reason shown under a parameter's editor ("" when none is shown)."""
        field = self._fields.get(param_name)
        return field.error.text() if field and not field.error.isHidden() else ""

    def refresh(self) -> None:
        """Show the graph's current values (never pushes a command, never moves focus)."""
        self._refresh_timer.stop()
        graph = self.document.shown
        if any(n not in graph for n in self._ids):
            self._ids = [n for n in self._ids if n in graph]
            self._rebuild()
            return
        self._updating = True
        try:
            if self.name_edit is not None and len(self._ids) == 1:
                node = graph.node(self._ids[0])
                if not (self.name_edit.isModified() and self.name_edit.hasFocus()):
                    if self.name_edit.text() != node.name:  # renamed underneath (undo): old notes are stale
                        _show_message(self.name_message, None, "muted")
                        _mark_invalid(self.name_edit, False)
                    self.name_edit.setText(node.name)
                    self.name_edit.setModified(False)
            for name, field in self._fields.items():
                if field.busy():
                    continue
                if field.arg is not None:
                    field.show([(graph.node(n).params.get("args") or {}).get(field.arg, field.param.default)
                                for n in field.node_ids])
                    continue
                field.show([graph.node(n).params.get(name, field.param.default) for n in field.node_ids])
        finally:
            self._updating = False
        self._update_analysis()

    # ------------------------------------------------------------------ events
    def _on_graph_event(self, event: str, payload: dict) -> None:
        if not self._ids or event == "node_moved":
            return
        if event == "arguments_changed":      # a module parameter declared or dropped (undo too)
            QTimer.singleShot(0, self, self._rebuild)
            return
        if event in ("reset", "node_removed") or payload.get("node_id") in self._id_set:
            self._refresh_timer.start()

    def _on_analysed(self, analysis: Analysis) -> None:
        if self._ids:
            self._update_analysis()

    def _on_graph_replaced(self) -> None:
        _unsubscribe(self._subscription)
        self._subscription["graph"] = weakref.ref(self.document.shown)
        self.document.shown.subscribe(self._listener)
        self._ids = []
        self._rebuild()

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            timer = getattr(self, "_theme_timer", None)  # None while Qt is still constructing the widget
            if timer is not None:
                timer.start()  # colours come from the theme: rebuild once it has settled

    # ------------------------------------------------------------------ committing edits
    def _flush(self) -> None:
        """Commit what is being typed before the form goes away."""
        if self.name_edit is not None and self.name_edit.isModified():
            self._commit_name()
        for field in list(self._fields.values()):
            if field.dirty:
                self._commit(field)

    def _commit(self, field: Field) -> None:
        if self._updating:
            return
        graph = self.document.shown
        ids = [n for n in field.node_ids if n in graph]
        if not ids:
            return
        try:
            has_value, value = field.read()
        except ParamError as exc:
            field.set_error(str(exc))
            return
        field.dirty = False
        if not has_value:
            field.set_error(None)
            return
        name = field.param.name
        if field.arg is not None:         # a module instance's parameter: one entry of its `args`
            field.set_error(None)
            for n in ids:
                args = dict(graph.node(n).params.get("args") or {})
                if _same(field.param, args.get(field.arg, field.param.default), value) and field.arg not in args:
                    continue
                if _same(field.param, field.param.default, value):
                    args.pop(field.arg, None)     # the module's own value: nothing to give
                else:
                    args[field.arg] = list(value) if isinstance(value, tuple) else value
                if args != (graph.node(n).params.get("args") or {}):
                    self.document.undo_stack.push(SetParams(graph, [n], {"args": args}))
            self.refresh()
            return
        changed = [n for n in ids if not _same(field.param, graph.node(n).params.get(name, _MISSING), value)]
        field.set_error(None)
        if changed:  # one step for all of them; quick repeats (spin box arrows) merge into it
            self.document.undo_stack.push(SetParams(graph, changed, {name: value}))
        self.refresh()

    def _commit_name(self) -> None:
        if self._updating or self.name_edit is None or len(self._ids) != 1:
            return
        graph = self.document.shown
        node_id = self._ids[0]
        if node_id not in graph:
            return
        edit, message = self.name_edit, self.name_message
        node = graph.node(node_id)
        if edit.text() == node.name:  # nothing typed (or the same name again): keep any note shown
            edit.setModified(False)
            return
        wanted = clean_name(edit.text())
        self._updating = True
        try:
            edit.setModified(False)
            if not wanted:
                edit.setText(node.name)
                _show_message(message, "A name needs at least one visible character; the old name is kept.",
                              "error")
                _mark_invalid(edit, True)
                return
            _mark_invalid(edit, False)
            final = graph.unique_name(wanted, exclude=node_id)
            if final != node.name:
                self.document.undo_stack.push(Rename(graph, node_id, wanted))
                final = graph.node(node_id).name
            edit.setText(final)
            if final != wanted:
                _show_message(message, f"“{wanted}” is taken, so the block is named “{final}”.", "muted")
            else:
                _show_message(message, None, "muted")
        finally:
            self._updating = False

    # ------------------------------------------------------------------ building the form
    def _rebuild(self) -> None:
        self._id_set = set(self._ids)
        self._updating = True
        try:
            self._fields = {}
            self.name_edit = self.name_message = self.title_label = self.open_button = None
            self.shape_label = self.params_label = self.flops_label = None
            self._diag_box = None
            old = self._scroll.takeWidget()
            if old is not None:
                old.hide()
                old.deleteLater()
            content = QWidget()
            content.setObjectName("inspector_content")
            layout = QVBoxLayout(content)
            layout.setContentsMargins(12, 12, 12, 12)
            layout.setSpacing(12)
            graph = self.document.shown
            nodes = [graph.node(n) for n in self._ids]
            types = {n.type for n in nodes}
            if not nodes:
                self._build_hint(layout)
            elif len(types) > 1:
                self._build_mixed(layout, nodes)
            else:
                self._build_form(layout, nodes)
            layout.addStretch(1)
            self._scroll.setWidget(content)
        finally:
            self._updating = False
        if self._ids:
            self.refresh()

    def _build_hint(self, layout: QVBoxLayout) -> None:
        hint = QLabel(HINT)
        hint.setObjectName("inspector_hint")
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setStyleSheet(f"color: {theme.colours()['muted']}; padding: 24px 8px;")
        layout.addWidget(hint)

    def _build_mixed(self, layout: QVBoxLayout, nodes) -> None:
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node.type] = counts.get(node.type, 0) + 1
        self.title_label = _title(f"{len(nodes)} blocks of different types selected")
        self.title_label.setWordWrap(True)
        layout.addWidget(self.title_label)
        detail = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        note = QLabel(f"{detail}.\nSelect blocks of one type to edit them together.")
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {theme.colours()['muted']};")
        layout.addWidget(note)

    def _build_form(self, layout: QVBoxLayout, nodes) -> None:
        block = get_block(nodes[0].type)
        single = len(nodes) == 1
        layout.addWidget(self._header(block, nodes))

        # One form for everything, so every label lines up in one column.
        form = _form()
        layout.addLayout(form)
        form.addRow(_section("Properties" if single else f"Properties of {len(nodes)} blocks"))
        if single:
            self.name_edit = QLineEdit()
            self.name_edit.setObjectName("name_edit")
            self.name_edit.setMaxLength(MAX_NAME)
            self.name_edit.setToolTip("The block's name: unique in the model; it names the layer in the code.")
            self.name_edit.editingFinished.connect(self._commit_name)
            self.name_message = _message_label("error")
            self.name_message.setObjectName("name_message")
            self.name_message.hide()
            form.addRow(_row_label("Name", self.name_edit.toolTip()),
                        _stack(_framed(self.name_edit), self.name_message))
        inside = single and bool(self.document.module_path)
        bound = self._bindings(nodes[0].id) if inside else {}
        if block is not None:
            for param in block.params:
                if block.type == MODULE and param.name == "args":
                    continue                  # shown as the module's own parameters below
                field = Field(self, param, [n.id for n in nodes])
                self._fields[param.name] = field
                label = readable(param) + (f" = {bound[param.name]}" if param.name in bound else "")
                tip = param.help + (f"\n\nThe module parameter '{bound[param.name]}' sets it: each instance gives "
                                    "its own value." if param.name in bound else "")
                form.addRow(_row_label(label, tip), field.container)
            if block.type == MODULE and single:
                name = str(nodes[0].params.get("module"))
                self.open_button = QPushButton(f"Open {name}")
                self.open_button.setObjectName("open_module")
                self.open_button.setToolTip("Show the module's blocks to edit them (or double-click the block). "
                                            "Every instance follows; Escape comes back.")
                self.open_button.setEnabled(name in self.document.graph.modules)
                document = self.document
                self.open_button.clicked.connect(
                    lambda _=False, m=name, n=nodes[0].id: document.enter_module(m, document.instance_specs(n)))
                form.addRow("", self.open_button)
                self._build_arguments(form, name, nodes[0].id)
            if inside and block.type not in ("Input", "Output", MODULE) and _exposable(block):
                self._build_expose(form, nodes[0].id, bound)
            if not block.params:
                none = QLabel("This block has no parameters.")
                none.setStyleSheet(f"color: {theme.colours()['muted']};")
                form.addRow(none)

        form.addRow(_section("Analysis"))
        self.params_label = _value_label()
        self.params_label.setObjectName("params_label")
        if single:
            self.shape_label = _value_label()
            self.shape_label.setObjectName("shape_label")
            self.flops_label = _value_label()
            self.flops_label.setObjectName("flops_label")
            form.addRow(_row_label("Output shape", "The output of one sample, without the batch dimension."),
                        self.shape_label)
            form.addRow(_row_label("Parameters", "Learned weights of this block; a frozen block's do not train."),
                        self.params_label)
            form.addRow(_row_label("FLOPs / sample", "Floating-point operations for one sample "
                                   "(counted by torch on the meta device)."), self.flops_label)
            diagnostics = QWidget()
            self._diag_box = QVBoxLayout(diagnostics)
            self._diag_box.setContentsMargins(0, 4, 0, 0)
            self._diag_box.setSpacing(6)
            form.addRow(diagnostics)
        else:
            form.addRow(_row_label("Parameters", "Learned weights of the selected blocks together; "
                                   "frozen ones do not train."), self.params_label)

    # ------------------------------------------------------------------ module parameters
    def _build_arguments(self, form: QFormLayout, module: str, node_id: str) -> None:
        """An instance's values for the parameters its module declares, one field each."""
        definition = self.document.graph.modules.get(module)
        decl = declared(definition, self.document.graph.modules) if definition is not None else []
        if not decl:
            return
        form.addRow(_section("Module parameters"))
        for d in decl:
            sets = ", ".join(f"{definition.node(n).name}.{p}" for n, p in d.targets)
            param = dataclasses.replace(d.param, name=d.name, default=d.default, label=d.name,
                                        help=f"Sets {sets} in this instance (the module's own value: "
                                             f"{format_value(d.param, d.default)}).")
            field = Field(self, param, [node_id])
            field.arg = d.name
            self._fields["args." + d.name] = field
            form.addRow(_row_label(d.name, param.help), field.container)

    def _bindings(self, node_id: str) -> dict[str, str]:
        """Inside a module: the selected block's parameters that a module parameter sets -> its name."""
        return {p: name for name, targets in self.document.shown.arguments.items() for n, p in targets if n == node_id}

    def _build_expose(self, form: QFormLayout, node_id: str, bound: dict[str, str]) -> None:
        form.addRow(_section("Module parameters"))
        for param, name in bound.items():
            unlink = QPushButton(f"Unlink {param}")
            unlink.setObjectName(f"unlink_{param}")
            unlink.setToolTip(f"Stop setting {param} from the module parameter '{name}': every instance then uses "
                              "the value this block has in the module.")
            unlink.clicked.connect(lambda _=False, p=param: self.unexpose(node_id, p))
            form.addRow("", unlink)
        expose = QPushButton("Make a module parameter…")
        expose.setObjectName("expose_param")
        expose.setToolTip("Let each instance of this module give its own value for one of this block's "
                          "parameters (channels, stride, …); several blocks can share one parameter.")
        expose.clicked.connect(lambda _=False: self._expose_dialog(node_id))
        form.addRow("", expose)

    def expose(self, node_id: str, param: str, name: str) -> str | None:
        """Make `param` of block `node_id` (in the module shown) set by the module parameter `name`
        (declared if new, shared if it exists). Returns why not, or None when done."""
        graph = self.document.shown
        node = graph.node(node_id)
        if not ARGUMENT.fullmatch(name) or keyword.iskeyword(name) or name == "self":
            return f"“{name}” cannot name a parameter: a lowercase letter, then letters, digits or _"
        block = get_block(node.type)
        spec = block.param_index.get(param) if block else None
        if spec is None:
            return f"'{node.name}' has no parameter {param!r}"
        targets = [t for t in graph.arguments.get(name, []) if t != (node_id, param)]
        for other, targets_other in graph.arguments.items():
            if other != name and (node_id, param) in targets_other:
                return f"{param} of '{node.name}' is already set by '{other}'"
        if targets:
            first_node, first_param = targets[0]
            first = get_block(graph.node(first_node).type).param_index[first_param] if first_node in graph else None
            if first is not None and first.kind != spec.kind:
                return f"'{name}' sets a {first.kind} parameter; {param} is a {spec.kind}"
        self.document.undo_stack.push(SetArgument(graph, name, targets + [(node_id, param)]))
        self._rebuild()
        return None

    def unexpose(self, node_id: str, param: str) -> None:
        graph = self.document.shown
        for name, targets in graph.arguments.items():
            if (node_id, param) in targets:
                self.document.undo_stack.push(SetArgument(graph, name, [t for t in targets if t != (node_id, param)]))
                break
        self._rebuild()

    def _expose_dialog(self, node_id: str) -> None:
        dialog = ExposeDialog(self, self.document.shown, node_id)
        self._expose = dialog            # kept for tests
        dialog.open()

    def _header(self, block: Block | None, nodes) -> QWidget:
        c = theme.colours()
        header = QWidget()
        row = QHBoxLayout(header)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        stripe = QFrame()
        stripe.setObjectName("category_stripe")
        stripe.setFixedWidth(4)
        colour = theme.CATEGORY_COLOURS.get(block.category, c["muted"]) if block else c["error"]
        stripe.setStyleSheet(f"background: {colour}; border-radius: 2px;")
        row.addWidget(stripe)
        text = QVBoxLayout()
        text.setSpacing(3)
        single = len(nodes) == 1
        module = single and nodes[0].type == MODULE
        title = str(nodes[0].params.get("module")) if module else nodes[0].type
        self.title_label = _title(title if single else f"{len(nodes)} blocks selected")
        self.title_label.setObjectName("inspector_title")
        text.addWidget(self.title_label)
        if block is None:
            sub = "Unknown block type: not in this version of Deepwire"
        else:
            sub = "Module: an instance of this project's module" if module else block.category
            if not single:
                sub = f"{nodes[0].type}  ·  " + sub
        subtitle = QLabel(sub)
        subtitle.setTextFormat(Qt.TextFormat.PlainText)
        subtitle.setStyleSheet(f"color: {colour}; font-weight: 600;")
        text.addWidget(subtitle)
        if block is not None and block.help:
            help_label = QLabel(block.help)
            help_label.setObjectName("block_help")
            help_label.setTextFormat(Qt.TextFormat.PlainText)
            help_label.setWordWrap(True)
            help_label.setStyleSheet(f"color: {c['muted']};")
            text.addWidget(help_label)
        row.addLayout(text, 1)
        return header

    # ------------------------------------------------------------------ analysis
    def _update_analysis(self) -> None:
        if not self._ids or self.params_label is None:
            return
        analysis = self.document.shown_analysis
        if len(self._ids) > 1:
            counts = [analysis.param_counts.get(n) for n in self._ids]
            known = [n for n in counts if n is not None]
            text = f"{sum(known):,}" if known else "—"
            frozen = sum(analysis.frozen_counts.get(n, 0) for n in self._ids if analysis.param_counts.get(n))
            if frozen:
                text += f"  ({sum(known) - frozen:,} trainable, {frozen:,} frozen)"
            if known and len(known) < len(counts):
                text += f"  ({len(counts) - len(known)} unknown)"
            self.params_label.setText(text)
            return
        node_id = self._ids[0]
        spec = analysis.specs.get(node_id)
        if self.shape_label is not None:
            self.shape_label.setText("—" if spec is None else str(spec) + ("  int64 token ids"
                                                                         if spec.dtype == TOKENS else ""))
        count = analysis.param_counts.get(node_id)
        frozen = analysis.frozen_counts.get(node_id, 0) if count else 0
        if count is None:
            text = "—"
        elif frozen and frozen == count:
            text = f"{count:,}, all frozen"
        elif frozen:
            text = f"{count:,}  ({count - frozen:,} trainable, {frozen:,} frozen)"
        else:
            text = f"{count:,}"
        self.params_label.setText(text)
        self._show_diagnostics(analysis.for_node(node_id))
        self._show_flops()

    def _show_diagnostics(self, diagnostics) -> None:
        box = self._diag_box
        if box is None:
            return
        while box.count():
            item = box.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for diag in diagnostics:
            warning = diag.severity == WARNING
            label = _message_label("warning" if warning else "error")
            label.setObjectName("diagnostic")
            label.setText(("Warning: " if warning else "Error: ") + diag.message)
            box.addWidget(label)

    def _show_flops(self) -> None:
        """Show the block's FLOPs if already counted; otherwise "—" until the idle timer asks."""
        label = self.flops_label
        if label is None or len(self._ids) != 1:
            return
        analysis = self.document.shown_analysis
        node_id = self._ids[0]
        job = flops_job(analysis, self.document.shown, node_id, self.document.graph.modules)
        self._flops_job = job
        if job is None:
            label.setText("—")
            label.setToolTip("FLOPs are counted once the block's parameters and input shapes are known.")
            return
        if node_id not in analysis.live:
            label.setText("—")
            label.setToolTip("This block does not lead to an Output, so it does not run.")
            return
        found, flops = _FlopCounter.cached(job[0])
        if not found:
            label.setText("—")
            label.setToolTip("Counting…")
            self._flops_timer.start()  # count when edits have been idle a moment
        elif flops is None:
            label.setText("—")
            label.setToolTip("This block's FLOPs could not be counted.")
        else:
            label.setText(f"{flops:,}" + (f"  ({compact(flops)})" if flops >= 1000 else ""))
            label.setToolTip("Floating-point operations for one sample.")

    def _request_flops(self) -> None:
        """Count the shown block, then the blocks wired to it (likely the next ones looked at)."""
        if len(self._ids) != 1 or self.flops_label is None:
            return
        analysis, graph = self.document.shown_analysis, self.document.shown
        node_id = self._ids[0]
        modules = self.document.graph.modules
        job = flops_job(analysis, graph, node_id, modules)
        if job is None or node_id not in analysis.live:
            return
        near = [n for n in (*graph.nx.predecessors(node_id), *graph.nx.successors(node_id))
                if n != node_id and n in analysis.live and graph.node(n).type != MODULE]
        jobs = [j for j in (flops_job(analysis, graph, n, modules) for n in dict.fromkeys(near)) if j is not None]
        flop_counter().request([job, *jobs[:FLOPS_PREFETCH]])  # one small model for all of them

    def _on_flops_ready(self) -> None:
        job = self._flops_job
        if job is not None and self.flops_label is not None and _FlopCounter.cached(job[0])[0]:
            self._show_flops()


# ----------------------------------------------------------------------------- small widgets

def _unsubscribe(subscription: dict) -> None:
    graph = subscription["graph"]()
    if graph is not None:
        graph.unsubscribe(subscription["listener"])


def _form() -> QFormLayout:
    form = QFormLayout()
    form.setContentsMargins(0, 0, 0, 0)
    form.setHorizontalSpacing(12)
    form.setVerticalSpacing(8)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    form.setFormAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    return form


def _stack(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    for w in widgets:
        layout.addWidget(w)
    return box


def _row_label(text: str, tip: str = "") -> QLabel:
    label = QLabel(text)
    label.setToolTip(tip)
    label.setMinimumHeight(26)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return label


def _value_label() -> QLabel:
    label = QLabel("—")
    label.setIndent(5)  # line up with the text inside the editors above
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMinimumHeight(22)
    return label


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * 1.3)
    font.setBold(True)
    label.setFont(font)
    return label


def _section(text: str) -> QWidget:
    """A small-caps section title followed by a rule."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 4, 0, 0)
    row.setSpacing(8)
    label = QLabel(text.upper())
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * 0.85)
    font.setBold(True)
    label.setFont(font)
    label.setStyleSheet(f"color: {theme.colours()['muted']};")
    row.addWidget(label)
    rule = QFrame()
    rule.setFixedHeight(1)
    rule.setStyleSheet(f"background: {theme.colours()['node_border']};")
    row.addWidget(rule, 1)
    return box


def _show_message(label: QLabel | None, text: str | None, kind: str) -> None:
    if label is None:
        return
    label.setText(text or "")
    label.setStyleSheet(f"color: {theme.colours()[kind]};")
    label.setVisible(bool(text))


EXPOSABLE = ("int", "float", "size", "bool", "choice")


def _exposable(block: Block) -> list[Param]:
    return [p for p in block.params if p.kind in EXPOSABLE]


class ExposeDialog(QDialog):
    """Which parameter of a block inside a module each instance sets, and under what name."""

    def __init__(self, inspector: Inspector, graph: Graph, node_id: str):
        super().__init__(inspector)
        self.inspector, self.node_id = inspector, node_id
        node = graph.node(node_id)
        self.setWindowTitle("Make a module parameter")
        layout = QFormLayout(self)
        self.param = QComboBox()
        self.param.setObjectName("expose_which")
        for p in _exposable(get_block(node.type)):
            self.param.addItem(readable(p), p.name)
        self.name = QComboBox()
        self.name.setObjectName("expose_name")
        self.name.setEditable(True)
        self.name.addItems(list(graph.arguments))
        self.param.currentIndexChanged.connect(self._suggest)
        self._suggest()
        note = QLabel(f"Each instance of this module then gives its own value for this parameter of "
                      f"'{node.name}'. Give another block's parameter the same name to set both.")
        note.setWordWrap(True)
        self.message = _message_label("error")
        self.message.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(note)
        layout.addRow("Parameter", self.param)
        layout.addRow("Name", self.name)
        layout.addRow(self.message)
        layout.addRow(buttons)

    def _suggest(self) -> None:
        param = self.param.currentData() or ""
        suggestion = {"filters": "channels", "units": "features"}.get(param, param)
        if self.name.findText(suggestion) < 0 and not self.name.currentText().strip() or \
                self.name.currentText() in ("channels", "features") or self.name.currentText() in \
                [self.param.itemData(i) for i in range(self.param.count())]:
            self.name.setCurrentText(suggestion)

    def accept(self) -> None:
        problem = self.inspector.expose(self.node_id, self.param.currentData(), self.name.currentText().strip())
        if problem:
            self.message.setText(problem)
            self.message.show()
            return
        super().accept()
