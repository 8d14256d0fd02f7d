"""File → Import Model: a PyTorch module or a Keras config becomes the open, editable graph."""
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from PySide6.QtWidgets import QMessageBox

import designer.main_window as mw
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


def test_classes_are_listed_without_running_the_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL + "\nraise SystemExit('this line must not run')\n")
    assert module_classes(path) == ["Helper", "Net"]


def test_import_a_pytorch_module_with_its_weights(window, tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: QMessageBox.Ok)
    monkeypatch.setattr(mw, "_choose", lambda parent, title, label, options: ("Net", True))
    monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getText", lambda *a, **k: ("", True))
    assert window.import_model(path)
    assert "runs the Python code" in asked[0]          # the user was told and asked first
    graph = window.document.graph
    assert [n.type for n in graph.nodes()].count("Linear") == 2
    assert window.document.modified and window.document.path is None
    model = compile_graph(graph)
    model.load_state_dict(window.document.project.weights)
    assert window.document.analysis.ok
    assert window.scene.node_items and len(window.scene.node_items) == len(graph)
    assert model(torch.randn(4, 20)).shape == (4, 3)


def test_declining_the_warning_changes_nothing(window, tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    before = window.document.graph.to_dict()
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.Cancel)
    assert not window.import_model(path)
    assert window.document.graph.to_dict() == before


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
