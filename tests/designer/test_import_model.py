"""File → Import Model: a PyTorch module or a Keras config becomes the open, editable graph.

A .py file goes through one Import dialog (issue #14, item 4): the file, the trust confirmation, the class,
the input shape checked as it is typed, "graph only". A failed import is explained in the dialog, in the
designer's words, with every choice kept, and Import can be pressed again. The tests drive the real dialog
from File → Import Model, as a user would."""
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QMessageBox

import designer.main_window as mw
from designer.import_dialog import ImportModelDialog
from designer.main_window import module_classes
from engine.compiler import compile_graph

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"

MODEL = '''
import torch
from torch import nn


class Helper:
    pass


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.body(x)
'''


def block_types(graph) -> list[str]:
    """The types of the blocks in the graph and in its modules (an imported submodule may become one)."""
    return [n.type for g in (graph, *graph.modules.values()) for n in g.nodes()]


def test_classes_are_listed_without_running_the_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL + "\nraise SystemExit('this line must not run')\n")
    assert module_classes(path) == ["Helper", "Net"]


CNN = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))
'''

TWO_INPUTS = '''
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.enc = Encoder()
        self.out = nn.Linear(4 * 14 + 8, 2)

    def forward(self, series, features):
        a = torch.flatten(self.conv(series), 1)
        return self.out(torch.cat([a, self.enc(features)], dim=1))
'''


@pytest.fixture(autouse=True)
def _close_what_a_test_left_open():
    yield
    for w in QApplication.topLevelWidgets():
        if isinstance(w, (QMessageBox, QDialog)) and w.isVisible():
            w.reject()


@pytest.fixture
def boxes(monkeypatch):
    """Message boxes shown, by kind: none may block a test."""
    shown = {"warning": [], "information": [], "question": []}
    for kind in shown:
        monkeypatch.setattr(QMessageBox, kind, lambda *a, _k=kind, **k: shown[_k].append(a[2]) or QMessageBox.Ok)
    return shown


def in_import_dialog(steps, seconds: float = 20.0) -> None:
    """Run `steps(dialog)` from the modal Import dialog's own event loop once it shows; the dialog is closed
    afterwards if `steps` left it open (or failed), so a failing test never hangs."""
    deadline = time.monotonic() + seconds

    def poll():
        dialog = next((w for w in QApplication.topLevelWidgets()
                       if isinstance(w, ImportModelDialog) and w.isVisible()), None)
        if dialog is not None:
            try:
                steps(dialog)
            finally:
                if dialog.isVisible():
                    dialog.reject()
        elif time.monotonic() < deadline:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def choose_file(monkeypatch, path) -> None:
    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))


def tick(qtbot, check) -> None:
    qtbot.mouseClick(check, Qt.LeftButton, pos=QPoint(8, check.height() // 2))   # on its box


def type_shape(qtbot, edit, text: str) -> None:
    edit.selectAll()
    if text:
        qtbot.keyClicks(edit, text)
    else:
        qtbot.keyClick(edit, Qt.Key_Delete)


def press_import(qtbot, dialog) -> None:
    qtbot.mouseClick(dialog.import_button, Qt.LeftButton)


def test_import_a_pytorch_module_with_its_weights(qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    choose_file(monkeypatch, path)
    seen = {}

    def steps(dialog):
        seen["title"] = dialog.windowTitle()
        seen["labels"] = " ".join(w.text() for w in dialog.findChildren(QLabel))
        seen["class"] = dialog.class_combo.currentText()
        seen["enabled before trust"] = dialog.import_button.isEnabled()
        tick(qtbot, dialog.trust_check)
        press_import(qtbot, dialog)                  # the shape left empty: Net starts with a Linear

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert "model.py" in seen["title"] and "runs the Python code in model.py" in seen["labels"]
    assert seen["class"] == "Net"                    # the module, not the Helper class defined before it
    assert not seen["enabled before trust"]          # nothing runs until the user says the file is trusted
    graph = window.document.graph
    assert block_types(graph).count("Linear") == 2
    assert window.document.modified and window.document.path is None
    model = compile_graph(graph)
    model.load_state_dict(window.document.project.weights)
    assert window.document.analysis.ok
    assert window.scene.node_items and len(window.scene.node_items) == len(graph)
    assert model(torch.randn(4, 20)).shape == (4, 3)
    assert not boxes["warning"]


def test_cancelling_the_dialog_runs_nothing_and_changes_nothing(qtbot, window, tmp_path, monkeypatch, boxes):
    ran = tmp_path / "ran.txt"
    path = tmp_path / "model.py"
    path.write_text(MODEL + f"\nopen({str(ran)!r}, 'w').write('ran')\n")
    choose_file(monkeypatch, path)
    before = window.document.graph.to_dict()
    seen = {}

    def steps(dialog):
        type_shape(qtbot, dialog.shape_edits[0], "20")
        press_import(qtbot, dialog)                  # not trusted yet: the button is disabled, nothing runs
        seen["open after Import"] = dialog.isVisible()
        seen["tip"] = dialog.import_button.toolTip()
        qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Cancel), Qt.LeftButton)
        seen["closed by Cancel"] = not dialog.isVisible()

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert seen == {"open after Import": True, "tip": "Confirm that you trust model.py first", "closed by Cancel": True}
    assert not ran.exists()
    assert window.document.graph.to_dict() == before and not window.document.modified


def test_an_empty_shape_is_explained_in_the_dialog_and_corrected_without_starting_over(
        qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "cnn.py"
    path.write_text(CNN)
    choose_file(monkeypatch, path)
    seen = {}

    def steps(dialog):
        tick(qtbot, dialog.trust_check)
        seen["hint"] = dialog.shape_note.text()
        press_import(qtbot, dialog)                  # the shape left empty: a Conv2d cannot tell it
        seen["error"] = dialog.error_label.text() if dialog.error_label.isVisible() else ""
        seen["still open"] = dialog.isVisible()
        seen["kept"] = (dialog.trust_check.isChecked(), dialog.class_combo.currentText(),
                        dialog.graph_only_check.isChecked())
        seen["focus"] = dialog.focusWidget() is dialog.shape_edits[0]
        type_shape(qtbot, dialog.shape_edits[0], "1,8,8")
        press_import(qtbot, dialog)                  # again, corrected
        seen["closed"] = not dialog.isVisible()

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert "Linear" in seen["hint"] and "exported by Deepwire" in seen["hint"] and "1,28,28" in seen["hint"]
    assert seen["still open"] and seen["kept"] == (True, "Net", False)
    assert "Input shape" in seen["error"] and "--input-shape" not in seen["error"]
    assert "command line" not in seen["error"] and "1,28,28" in seen["error"] and "cnn.py" in seen["error"]
    assert seen["focus"] and seen["closed"] and not boxes["warning"]
    graph = window.document.graph
    assert [n.type for n in graph.nodes()] == ["Input", "Conv2d", "Flatten", "Linear", "Output"]
    assert next(n for n in graph.nodes() if n.type == "Input").params["shape"] in ([1, 8, 8], (1, 8, 8))
    assert window.document.analysis.ok and window.document.project.weights


def test_the_shape_is_checked_as_it_is_typed(qtbot, tmp_path):
    path = tmp_path / "cnn.py"
    path.write_text(CNN)
    dialog = ImportModelDialog(None, path)
    qtbot.addWidget(dialog)
    dialog.show()
    tick(qtbot, dialog.trust_check)
    edit = dialog.shape_edits[0]
    said = {}
    for text in ["1,28,,", "1,28,x", "1,0,28", "1 28 28", "(1, 28, 28)", "20,", ""]:
        type_shape(qtbot, edit, text)
        said[text] = (dialog.shape_note.text(), dialog.import_button.isEnabled())
    assert "missing between two commas" in said["1,28,,"][0] and not said["1,28,,"][1]
    assert "‘x’ is not a whole number" in said["1,28,x"][0] and not said["1,28,x"][1]
    assert "start at 1" in said["1,0,28"][0] and not said["1,0,28"][1]
    assert "separated by commas" in said["1 28 28"][0] and not said["1 28 28"][1]
    assert "(1, 28, 28)" in said["(1, 28, 28)"][0] and "batch" in said["(1, 28, 28)"][0] and said["(1, 28, 28)"][1]
    assert "(20,)" in said["20,"][0] and said["20,"][1]
    assert "Can stay empty" in said[""][0] and said[""][1]


def test_a_model_with_two_inputs_gets_a_shape_field_for_each(qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "two.py"
    path.write_text(TWO_INPUTS)
    choose_file(monkeypatch, path)
    seen = {}

    def steps(dialog):
        seen["class"] = dialog.class_combo.currentText()
        seen["fields"] = [dialog.form.labelForField(e).text() for e in dialog.shape_edits]
        tick(qtbot, dialog.trust_check)
        type_shape(qtbot, dialog.shape_edits[0], "3,16")
        seen["one of two"] = (dialog.shape_note.text(), dialog.import_button.isEnabled())
        type_shape(qtbot, dialog.shape_edits[1], "8")
        seen["both"] = dialog.shape_note.text()
        dialog.class_combo.setCurrentText("Encoder")     # one input: one field
        seen["Encoder"] = [(dialog.form.labelForField(e).text(), e.text()) for e in dialog.shape_edits]
        dialog.class_combo.setCurrentText("TwoInputs")   # back: both shapes as typed
        press_import(qtbot, dialog)

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert seen["class"] == "TwoInputs"              # the whole model, not the Encoder it is built from
    assert seen["fields"] == ["Input shape of ‘series’", "Input shape of ‘features’"]
    assert "every input" in seen["one of two"][0] and not seen["one of two"][1]
    assert "series (3, 16)" in seen["both"] and "features (8,)" in seen["both"]
    assert seen["Encoder"] == [("Input shape", "3,16")]
    inputs = [n.params["shape"] for n in window.document.graph.nodes() if n.type == "Input"]
    assert sorted(tuple(s) for s in inputs) == [(3, 16), (8,)] and window.document.analysis.ok


def test_a_file_exported_by_deepwire_needs_no_shape(qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "model.py"
    path.write_text(CNN + "\n\nINPUT_SHAPES = [(1, 8, 8)]  # forward's inputs, without the batch dimension\n")
    choose_file(monkeypatch, path)
    seen = {}

    def steps(dialog):
        seen["hint"] = dialog.shape_note.text()
        seen["placeholder"] = dialog.shape_edits[0].placeholderText()
        tick(qtbot, dialog.trust_check)
        press_import(qtbot, dialog)

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert "exported by Deepwire" in seen["hint"] and "(1, 8, 8)" in seen["hint"] and seen["placeholder"] == "1,8,8"
    assert [n.type for n in window.document.graph.nodes()][:2] == ["Input", "Conv2d"] and not boxes["warning"]


def test_a_wrong_class_is_explained_and_another_can_be_chosen(qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    choose_file(monkeypatch, path)
    seen = {}

    def steps(dialog):
        seen["classes"] = [dialog.class_combo.itemText(i) for i in range(dialog.class_combo.count())]
        dialog.class_combo.setCurrentText("Helper")
        tick(qtbot, dialog.trust_check)
        type_shape(qtbot, dialog.shape_edits[0], "20")
        press_import(qtbot, dialog)
        seen["error"] = dialog.error_label.text()
        seen["kept"] = (dialog.shape_edits[0].text(), dialog.trust_check.isChecked())
        dialog.class_combo.setCurrentText("Net")
        press_import(qtbot, dialog)

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert seen["classes"] == ["Helper", "Net"]
    assert "Helper" in seen["error"] and "not an nn.Module" in seen["error"] and seen["kept"] == ("20", True)
    assert block_types(window.document.graph).count("Linear") == 2 and not boxes["warning"]


def test_graph_only_imports_the_module_without_its_weights(qtbot, window, tmp_path, monkeypatch, boxes):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    choose_file(monkeypatch, path)

    def steps(dialog):
        tick(qtbot, dialog.trust_check)
        tick(qtbot, dialog.graph_only_check)
        press_import(qtbot, dialog)

    in_import_dialog(steps)
    window.act_import_model.trigger()
    assert block_types(window.document.graph).count("Linear") == 2
    assert window.document.project.weights is None
    assert boxes["information"] and "without weights" in boxes["information"][0]


def test_scripts_import_a_module_directly_and_failures_name_no_command_line_flag(window, tmp_path, boxes):
    path = tmp_path / "cnn.py"
    path.write_text(CNN)
    before = window.document.graph.to_dict()
    assert not window.import_model(path, class_name="Net", confirm=False)
    assert len(boxes["warning"]) == 1 and "Input shape" in boxes["warning"][0]
    assert "--input-shape" not in boxes["warning"][0]
    assert window.document.graph.to_dict() == before
    assert window.import_model(path, class_name="Net", input_shape=[1, 8, 8], confirm=False)
    assert [n.type for n in window.document.graph.nodes()][:2] == ["Input", "Conv2d"]


def test_a_failing_import_shows_one_message_and_keeps_the_canvas(window, tmp_path, monkeypatch):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "mystery"}}]}}))
    before = window.document.graph.to_dict()
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]) or QMessageBox.Ok)
    assert not window.import_model(path, confirm=False)
    assert len(shown) == 1 and shown[0]
    assert window.document.graph.to_dict() == before


def _keras_with_unplaceable_weights(tmp_path):
    """The tutorial DNN saved by Keras, with its first layer made narrower than the weights Keras saved."""
    real = FIXTURES / "tabular_dnn.keras"
    path = tmp_path / "narrower.keras"
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                hidden = next(la for la in config["config"]["layers"] if la["config"]["name"] == "hidden")
                hidden["config"]["units"] = 48
                data = json.dumps(config).encode()
            dst.writestr(info.filename, data)
    return path


def test_weights_that_cannot_be_placed_ask_before_importing_the_graph_alone(window, tmp_path, monkeypatch):
    path = _keras_with_unplaceable_weights(tmp_path)
    before = window.document.graph.to_dict()
    asked, warned = [], []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]) or QMessageBox.Ok)
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: QMessageBox.Ok)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Cancel)
    assert not window.import_model(path)
    assert len(asked) == 1 and "Import the graph without weights?" in asked[0] and "Dense 'hidden'" in asked[0]
    assert window.document.graph.to_dict() == before and not warned   # declined: nothing changed

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    assert window.import_model(path)
    graph = window.document.graph
    assert [n.name for n in graph.nodes() if n.type == "Linear"] == ["hidden", "hidden_2", "probability"]
    assert window.document.project.weights is None and window.document.analysis.ok and not warned


def test_a_real_keras_file_comes_with_the_outputs_keras_computed(window, monkeypatch):
    real = FIXTURES / "tabular_dnn.keras"
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: QMessageBox.Ok)
    assert window.import_model(real)
    model = compile_graph(window.document.graph)
    model.load_state_dict(window.document.project.weights)
    expected = np.load(real.with_suffix(".npz"))
    with torch.no_grad():
        got = model.eval()(torch.from_numpy(expected["x"])).numpy()
    np.testing.assert_allclose(got, expected["y"], atol=1e-5)


NESTED = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.relu(self.fc(x)) + x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.blocks(x))
'''


@pytest.mark.parametrize("flat", [False, True])
def test_submodules_become_modules_unless_flat_is_ticked(qtbot, window, tmp_path, monkeypatch, boxes, flat):
    path = tmp_path / "nested.py"
    path.write_text(NESTED)
    choose_file(monkeypatch, path)

    def steps(dialog):
        tick(qtbot, dialog.trust_check)
        type_shape(qtbot, dialog.shape_edits[0], "8")
        if flat:
            tick(qtbot, dialog.flat_check)
        press_import(qtbot, dialog)

    in_import_dialog(steps)
    window.act_import_model.trigger()
    graph = window.document.graph
    if flat:
        assert not graph.modules and block_types(graph).count("Linear") == 3
    else:
        assert list(graph.modules) == ["Block"] and "Module" in block_types(graph)
    assert window.document.project.weights is not None
