"""File → Import Model for a PyTorch .py file: one dialog with the file, the trust confirmation (importing
runs the file's code), the class, the input shape (checked as it is typed) and "graph only". A failed
import is explained inside the dialog, in the designer's words, with every choice kept: correct, Import again.

`run_import` is the import itself (shared with Keras files and with scripts that call
`MainWindow.import_model` directly): it asks "Import the graph without weights?" when the weights that
come with a model cannot all be placed in its graph.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from . import theme

SHAPE_FIELD = "Input shape"
MAX_SAMPLE_VALUES = 100_000_000   # one sample bigger than this is a typo: the import would run out of memory


# ----------------------------------------------------------------------------- reading the file (never running it)


def module_classes(path: Path) -> list[str]:
    """The classes a Python file defines, read without running it (to ask which one to import)."""
    return list(read_source(path).classes)


@dataclass
class SourceInfo:
    classes: dict[str, list[str] | None] = field(default_factory=dict)   # class -> forward's inputs (None: unknown)
    modules: list[str] = field(default_factory=list)     # the classes that look like nn.Modules, in file order
    recorded_shapes: list[tuple[int, ...]] | None = None  # INPUT_SHAPES of a model.py exported by Deepwire
    names_in: dict[str, set[str]] = field(default_factory=dict, repr=False)   # class -> the names its body uses

    def suggested_class(self) -> str | None:
        """The class to offer first: the last module no other class in the file uses (the whole model, not
        one of its parts); else the last module; else the last class."""
        used = {name for name in self.modules for other, names in self.names_in.items()
                if other != name and name in names}
        top = [name for name in self.modules if name not in used]
        for candidates in (top, self.modules, list(self.classes)):
            if candidates:
                return candidates[-1]
        return None


def read_source(path: Path) -> SourceInfo:
    """What the dialog can know about a .py file from its syntax alone: its classes, the inputs of each one's
    forward, which look like modules, and the input shapes a Deepwire export records."""
    info = SourceInfo()
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return info
    defs = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def bases(node: ast.ClassDef) -> list[str]:
        return [ast.unparse(b) for b in node.bases]

    def is_module(name: str, seen=()) -> bool:
        node = defs.get(name)
        if node is None or name in seen:
            return False
        return any(b.split(".")[-1] in ("Module", "Sequential", "ModuleList") or is_module(b, (*seen, name))
                   for b in bases(node))

    def inputs(name: str, seen=()) -> list[str] | None:
        node = defs.get(name)
        if node is None or name in seen:
            return None
        forward = next((f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and f.name == "forward"), None)
        if forward is None:   # inherited: from a class of this file, or unknown (nn.Sequential takes one input)
            for base in bases(node):
                if base in defs:
                    return inputs(base, (*seen, name))
            return ["input"] if any(b.split(".")[-1] == "Sequential" for b in bases(node)) else None
        a = forward.args
        if a.vararg is not None:
            return None
        names = [arg.arg for arg in (*a.posonlyargs, *a.args)][1:] + [arg.arg for arg in a.kwonlyargs]
        return names or None

    for name, node in defs.items():
        info.classes[name] = inputs(name)
        info.names_in[name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
                             {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        if is_module(name):
            info.modules.append(name)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "INPUT_SHAPES"
                                                 for t in node.targets)):
            try:
                shapes = [tuple(int(d) for d in s) for s in ast.literal_eval(node.value)]
            except (ValueError, TypeError, SyntaxError):
                continue
            info.recorded_shapes = shapes or None
    return info


# ----------------------------------------------------------------------------- shapes as typed


def parse_shape(text: str) -> tuple[int, ...] | None:
    """One sample's shape as the user types it: whole numbers separated by commas, e.g. 1,28,28 (brackets and
    a trailing comma are allowed: (20,)). None when empty. Raises ValueError with what to write instead."""
    s = text.strip()
    if not s:
        return None
    s = s.strip("()[] ")
    parts = [p.strip() for p in s.split(",")]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()                  # "20," as in Python's (20,)
    if parts == [""]:
        raise ValueError("Write the sizes as numbers separated by commas, e.g. 1,28,28.")
    for p in parts:
        if p == "":
            raise ValueError("A size is missing between two commas: write numbers separated by commas, e.g. 1,28,28.")
        if not re.fullmatch(r"[0-9]+", p):
            raise ValueError(f"‘{p}’ is not a whole number: write numbers separated by commas, e.g. 1,28,28.")
        if int(p) < 1:
            raise ValueError("Sizes start at 1.")
    shape = tuple(int(p) for p in parts)
    total = 1
    for d in shape:
        total *= d
    if total > MAX_SAMPLE_VALUES:
        raise ValueError(f"{_shape_text(shape)} is {total:,} values for one sample: leave the batch out, and "
                         "check the sizes.")
    return shape


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def in_designer_words(message: str, fields: list[str] | None = None) -> str:
    """An importer message as the dialog says it: the command line's flags become the dialog's fields."""
    text = message
    m = re.match(r"the shape of (.+?)'s input '(.+?)' cannot be read from the model\b", text)
    if m:
        cls, name = m.groups()
        where = f"‘{SHAPE_FIELD} of {name}’" if fields and len(fields) > 1 else f"‘{SHAPE_FIELD}’"
        return (f"The shape of {cls}'s input ‘{name}’ cannot be read from the model (it does not start with a "
                f"Linear layer, and the file does not record it). Type one sample's shape, without the batch, in "
                f"{where}: numbers separated by commas, e.g. 1,28,28 for a 28×28 grayscale image.")
    # torch.fx's ShapeProp wraps the model's own error in its internals (node, meta, stack): not for the user
    text = re.sub(r"(cannot run on inputs of shape .*?): RuntimeError: ShapeProp error for:.*$",
                  r"\1. Check the shape: one sample, without the batch dimension.", text)
    text = re.sub(r"\s*\((--[a-z-]+[^)]*) on the command line\)", r" (\1)", text)
    text = re.sub(r"(choose|give) (it|one) with --class", r"\1 \2 in the ‘Class’ list", text)
    text = re.sub(r"--input-shape(?: [0-9,()x]+)?", f"the ‘{SHAPE_FIELD}’ field", text)
    text = re.sub(r"--class\b", "the ‘Class’ list", text)
    text = re.sub(r"--no-weights\b", "‘Graph only, no weights’", text)
    text = re.sub(r"\bdeepwire import\b", "Import Model", text)
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text   # not "Model.py"


# ----------------------------------------------------------------------------- the import itself


def run_import(parent: QWidget | None, path: Path, class_name: str | None = None, input_shape=None,
               graph_only: bool = False, flat: bool = False):
    """Import `path` (a .py module or a Keras file). Returns (ImportResult, graph_only), or None when the
    weights cannot all be placed and the user declined "Import the graph without weights?". Raises
    ModelImportError for anything else that fails. `flat`: a PyTorch module's submodules become loose
    blocks instead of modules."""
    from engine.importers import WeightsImportError, import_keras, import_torch

    path = Path(path)
    while True:
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            if path.suffix.lower() == ".py":
                return import_torch(path, class_name, input_shape, graph_only=graph_only, flat=flat), graph_only
            return import_keras(path, graph_only=graph_only), graph_only
        except WeightsImportError as exc:
            if graph_only:
                raise
            failure = exc
        finally:
            QApplication.restoreOverrideCursor()
        # the graph would import but its weights cannot all be placed: the user chooses, nothing is dropped silently
        if QMessageBox.question(
                parent, "Weights cannot be imported",
                f"The weights in {path.name} cannot all be placed in the graph:\n\n{failure}\n\n"
                "Import the graph without weights? Its blocks will start from fresh weights.",
                QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel) != QMessageBox.Yes:
            return None
        graph_only = True


# ----------------------------------------------------------------------------- the dialog


class ImportModelDialog(QDialog):
    """Import a PyTorch module from a .py file. On success `outcome` is (ImportResult, graph_only)."""

    def __init__(self, parent: QWidget | None, path, class_name: str | None = None, input_shape=None):
        super().__init__(parent)
        self.path = Path(path)
        self.outcome = None
        self.info = read_source(self.path)
        self.setWindowTitle(f"Import {self.path.name}")
        colours = theme.colours()
        self._muted, self._error = colours["muted"], colours["error"]

        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.form = form
        self.file_label = QLabel(f"<b>{_html(self.path.name)}</b> &nbsp;<span style='color:{self._muted}'>"
                                 f"in {_html(str(self.path.parent))}</span>", self)
        self.file_label.setToolTip(str(self.path))
        self.file_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("File", self.file_label)

        self.trust_note = QLabel(f"Importing runs the Python code in {_html(self.path.name)}, as running it yourself "
                                 "would. Only import files you trust.", self)
        self.trust_note.setWordWrap(True)
        self.trust_note.setStyleSheet(f"color: {colours['warning']}")
        form.addRow(self.trust_note)
        self.trust_check = QCheckBox(f"I trust {self.path.name}: run its code to import it", self)
        self.trust_check.toggled.connect(lambda _: self._update())
        form.addRow(self.trust_check)

        self.class_combo = QComboBox(self)
        self.class_combo.setToolTip("The nn.Module class to import; it is built with no arguments")
        self.class_combo.addItems(list(self.info.classes))
        form.addRow("Class", self.class_combo)

        self.shape_edits: list[QLineEdit] = []
        self._shape_labels: list[QLabel] = []
        self._inputs: list[str] | None = None
        self._shape_needed = False        # the last import said the shape cannot be read from the model
        self._typed_for: dict[str | None, str] = {}   # what was typed per input name, across class changes
        self.shape_note = QLabel(self)
        self.shape_note.setWordWrap(True)
        self.shape_note.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.shape_note.setMinimumHeight(3 * self.shape_note.fontMetrics().lineSpacing())  # no jumps as one types
        form.addRow("", self.shape_note)

        self.graph_only_check = QCheckBox("Graph only, no weights: the blocks start from fresh weights", self)
        self.graph_only_check.setToolTip("Import the module's layers and connections without its weights")
        form.addRow(self.graph_only_check)
        self.flat_check = QCheckBox("Flat: every layer a loose block, no modules", self)
        self.flat_check.setObjectName("import-flat")
        self.flat_check.setToolTip("By default the model's submodules (a ResNet's blocks, a transformer's layers) "
                                   "become modules on the canvas, and the exported code keeps the same nesting and "
                                   "weight names. Tick this for one flat graph of layers instead.")
        form.addRow(self.flat_check)
        layout.addLayout(form)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("import-error")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label.setStyleSheet(f"color: {self._error}; border: 1px solid {self._error}; border-radius: 3px;"
                                       " padding: 6px")
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)
        layout.addStretch(1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel, self)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.AcceptRole)
        self.import_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        if not self.info.classes:
            self.class_combo.setEnabled(False)
            self._show_error(f"{self.path.name} defines no class to import: it needs an nn.Module subclass.")
        chosen = class_name if class_name in self.info.classes else self.info.suggested_class()
        if chosen:
            self.class_combo.setCurrentText(chosen)
        self._class_changed()
        self.class_combo.currentTextChanged.connect(lambda _: self._class_changed())
        if input_shape is not None:
            if isinstance(input_shape, str):
                texts = [input_shape]
            else:
                shapes = [input_shape] if input_shape and isinstance(input_shape[0], int) else list(input_shape)
                texts = [s if isinstance(s, str) else ",".join(str(d) for d in s) for s in shapes]
            if len(self.shape_edits) == 1:
                self.shape_edits[0].setText("; ".join(texts) if len(texts) > 1 else texts[0])
            else:
                for edit, text in zip(self.shape_edits, texts):
                    edit.setText(text)
        self._update()
        self.resize(600, max(self.layout().heightForWidth(600), self.minimumSizeHint().height()))

    # ------------------------------------------------------------------ the shape fields
    def _class_changed(self) -> None:
        """One shape field per input of the chosen class's forward; one field taking several shapes
        (separated by ;) when its inputs cannot be read from the file. What was typed is kept."""
        inputs = self.info.classes.get(self.class_combo.currentText())
        self._shape_needed = False
        if self.shape_edits and inputs == self._inputs:
            self._update()
            return
        typed = [e.text() for e in self.shape_edits]
        for name, text in zip(self._field_names(), typed):
            self._typed_for[name] = text        # back in its field if a class with that input is chosen again
        for label in self._shape_labels:
            self.form.removeRow(label)     # deletes the label and its field
        self.shape_edits, self._shape_labels, self._inputs = [], [], inputs
        row = self._shape_row()
        for i, name in enumerate(self._field_names()):
            edit = QLineEdit(self)
            edit.setObjectName(f"shape-{name or 0}")
            edit.setClearButtonEnabled(True)
            label = QLabel(f"{SHAPE_FIELD} of ‘{name}’" if name else SHAPE_FIELD, self)
            label.setBuddy(edit)
            self.form.insertRow(row + i, label, edit)
            self.shape_edits.append(edit)
            self._shape_labels.append(label)
        recorded = self.info.recorded_shapes
        if recorded and len(recorded) == len(self.shape_edits):
            for edit, shape in zip(self.shape_edits, recorded):
                edit.setPlaceholderText(",".join(str(d) for d in shape))
        elif recorded and len(self.shape_edits) == 1:
            self.shape_edits[0].setPlaceholderText("; ".join(",".join(str(d) for d in s) for s in recorded))
        else:
            for edit in self.shape_edits:
                edit.setPlaceholderText("e.g. 1,28,28")
        if len(self.shape_edits) > 1 and all(name in self._typed_for for name in self._field_names()):
            for edit, name in zip(self.shape_edits, self._field_names()):
                edit.setText(self._typed_for[name])
        elif len(typed) == len(self.shape_edits):
            for edit, text in zip(self.shape_edits, typed):
                edit.setText(text)
        elif typed and self._several_in_one():
            self.shape_edits[0].setText("; ".join(t for t in typed if t.strip()))
        elif typed:
            for edit, text in zip(self.shape_edits, typed):
                edit.setText(text)
        for edit in self.shape_edits:
            edit.textChanged.connect(lambda _: self._update())
        self._update()

    def _field_names(self) -> list[str | None]:
        return list(self._inputs) if self._inputs and len(self._inputs) > 1 else [None]

    def _shape_row(self) -> int:
        row, _ = self.form.getWidgetPosition(self.shape_note)
        return row

    def _several_in_one(self) -> bool:
        return len(self.shape_edits) == 1 and self._inputs is None

    def shapes(self) -> list[tuple[int, ...]] | None:
        """The shapes typed, one per input; None when left empty. Raises ValueError saying what is expected."""
        if self._several_in_one():
            texts = [t for t in self.shape_edits[0].text().split(";")]
            if len(texts) > 1 and not texts[-1].strip():
                texts.pop()
        else:
            texts = [e.text() for e in self.shape_edits]
        shapes = []
        for i, text in enumerate(texts):
            try:
                shapes.append(parse_shape(text))
            except ValueError as exc:
                if len(texts) > 1:
                    which = (f"‘{self._inputs[i]}’" if self._inputs and len(self._inputs) > 1
                             else f"the {_ordinal(i)} shape")
                    raise ValueError(f"{which[:1].upper()}{which[1:]}: {exc}") from None
                raise
        given = [s for s in shapes if s is not None]
        if not given:
            return None
        if len(given) != len(shapes):
            raise ValueError("Give every input a shape, or leave them all empty.")
        return given

    def _hint(self) -> str:
        several = len(self.shape_edits) > 1 or self._several_in_one()
        what = ("One sample's shape, without the batch: numbers separated by commas, e.g. 1,28,28 for a 28×28 "
                "grayscale image, 20 for 20 features.")
        if self._several_in_one():
            what += " A model with several inputs: one shape per input, separated by ; (e.g. 1,28,28; 10)."
        recorded = self.info.recorded_shapes
        if self._shape_needed:
            return what
        if recorded:
            shapes = ", ".join(_shape_text(s) for s in recorded)
            return (f"{what} Can stay empty: {self.path.name} was exported by Deepwire and records "
                    f"{'them' if len(recorded) > 1 else 'it'}: {shapes}.")
        return (f"{what} Can stay empty when the model starts with a Linear layer (its size is read from it) or "
                f"was exported by Deepwire{' (then leave them all empty)' if several else ''}.")

    # ------------------------------------------------------------------ state
    def _update(self) -> bool:
        """Check what is typed as it is typed; Import is enabled only when it all can be tried."""
        ok = bool(self.info.classes) and self.trust_check.isChecked()
        try:
            shapes = self.shapes()
        except ValueError as exc:
            self.shape_note.setText(str(exc))
            self.shape_note.setStyleSheet(f"color: {self._error}")
            ok = False
        else:
            if shapes and len(shapes) == 1:
                self.shape_note.setText(f"One sample of shape {_shape_text(shapes[0])}; the batch dimension is "
                                        "added for you.")
            elif shapes:
                names = self._inputs if self._inputs and len(self._inputs) == len(shapes) else \
                    [_ordinal(i) for i in range(len(shapes))]
                read = ", ".join(f"{name} {_shape_text(s)}" for name, s in zip(names, shapes))
                self.shape_note.setText(f"One sample: {read}; the batch dimension is added for you.")
            else:
                self.shape_note.setText(self._hint())
            self.shape_note.setStyleSheet(f"color: {self._muted}")
        self.import_button.setEnabled(ok)
        if not self.trust_check.isChecked():
            self.import_button.setToolTip(f"Confirm that you trust {self.path.name} first")
        else:
            self.import_button.setToolTip("")
        return ok

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    # ------------------------------------------------------------------ import
    def accept(self) -> None:
        """Import with the choices made. On failure the dialog stays, says why and keeps every choice."""
        from engine.importers import ModelImportError

        if not self._update():
            return
        shapes = self.shapes()
        self._show_error("")
        self.import_button.setEnabled(False)
        self.import_button.setText("Importing…")
        self.import_button.repaint()
        try:
            outcome = run_import(self, self.path, self.class_combo.currentText(), shapes,
                                 graph_only=self.graph_only_check.isChecked(), flat=self.flat_check.isChecked())
        except ModelImportError as exc:
            self._failed(str(exc))
            return
        finally:
            self.import_button.setText("Import")
            self._update()
        if outcome is None:      # weights that cannot be placed, and the graph alone was declined
            self._show_error("The weights cannot all be placed in the graph. Tick ‘Graph only, no weights’ to "
                             "import the graph alone, or press Cancel.")
            self.graph_only_check.setFocus()
            return
        self.outcome = outcome
        super().accept()

    def _failed(self, message: str) -> None:
        text = in_designer_words(message, self._inputs)
        self._shape_needed = "cannot be read from the model" in message
        self._update()
        self._show_error(f"{self.path.name} could not be imported. {text}")
        self.resize(self.width(), max(self.height(), self.layout().heightForWidth(self.width())))
        lowered = message.lower()
        if "input shape" in lowered or "input-shape" in lowered or "inputs of shape" in lowered \
                or "input(s)" in lowered or "cannot be read from the model" in lowered:
            self.shape_edits[0].setFocus()
            self.shape_edits[0].selectAll()
        elif "--class" in lowered or "defines no" in lowered or "is not an nn.module" in lowered:
            self.class_combo.setFocus()


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ordinal(i: int) -> str:
    return ["first", "second", "third", "fourth", "fifth"][i] if i < 5 else f"#{i + 1}"
