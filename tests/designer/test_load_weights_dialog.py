"""File > Load Weights…: the report before anything changes, Apply through the undo stack (undo gives back the
very weights the model had), Cancel changes nothing, a refused file is explained."""
from __future__ import annotations

import time

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox
from safetensors.torch import save_file
from torch import nn

from designer.weights_dialog import LoadWeightsDialog
from engine.weights_load import fresh_state


def when_shown(predicate, action, seconds: float = 8.0) -> None:
    """Once a visible top-level widget matches `predicate`, run `action(widget)` from the modal's event loop."""
    deadline = time.monotonic() + seconds

    def poll():
        for w in QApplication.topLevelWidgets():
            if w.isVisible() and predicate(w):
                action(w)
                return
        if time.monotonic() > deadline:
            for w in QApplication.topLevelWidgets():
                if isinstance(w, QDialog) and w.isVisible():
                    w.reject()
            return
        QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def _file(window, tmp_path, name="pretrained.safetensors", head_units=None):
    """A state dict for the window's model, every name under "model." (as Lightning saves it), the weights
    not the model's fresh ones; with head_units, the last Linear has that many units."""
    state = {f"model.{k}": (v + 1.5 if v.is_floating_point() else v)
             for k, v in fresh_state(window.document.graph, seed=3).items()}
    if head_units is not None:
        last = [k for k in state if k.endswith(".weight")][-1]
        state[last] = torch.zeros(head_units, state[last].shape[1])
        state[last[:-len("weight")] + "bias"] = torch.zeros(head_units)
    save_file(state, str(tmp_path / name))
    return tmp_path / name, state


def test_apply_loads_the_weights_and_undo_gives_back_the_previous_ones(window, tmp_path):
    doc = window.document
    before = {k: torch.zeros_like(v) for k, v in fresh_state(doc.graph).items()}
    doc.set_weights(before)
    path, state = _file(window, tmp_path)
    seen = []

    def apply(dialog):
        seen.append((dialog.headline.text(), dialog.apply_button.isEnabled()))
        dialog.apply_button.click()

    when_shown(lambda w: isinstance(w, LoadWeightsDialog), apply)
    assert window.load_weights(path) is True
    headline, enabled = seen[0]
    assert enabled and headline.startswith(f"{len(state)} of the model's {len(state)} tensors from pretrained")
    loaded = doc.project.weights
    assert set(loaded) == {k[len("model."):] for k in state}
    assert all(torch.equal(loaded[k[len("model."):]], v) for k, v in state.items())
    assert doc.modified
    assert "Loaded weights" in window.statusBar().currentMessage()
    # the next runs start from them (fine-tuning), and the project says where they came from
    assert doc.project.start_weights is loaded and doc.project.config.start_from == "weights"
    assert doc.project.start_source.startswith("pretrained.safetensors")
    doc.undo_stack.undo()
    assert doc.project.weights is before
    assert doc.project.start_weights is None and doc.project.config.start_from == "fresh"
    doc.undo_stack.redo()
    assert doc.project.weights is loaded and doc.project.config.start_from == "weights"


def test_a_changed_head_is_reported_by_block_and_keeps_the_current_weights(window, tmp_path):
    doc = window.document
    current = fresh_state(doc.graph, seed=9)
    doc.set_weights(current)
    path, state = _file(window, tmp_path, head_units=3)
    seen = []

    def look(dialog):
        top = dialog.tree.topLevelItem(0)
        seen.append((top.text(0), top.child(0).text(1), top.child(0).text(2)))
        dialog.apply_button.click()

    when_shown(lambda w: isinstance(w, LoadWeightsDialog), look)
    assert window.load_weights(path)
    title, block, detail = seen[0]
    head = [n for n in doc.graph.nodes() if n.type == "Linear"][-1].name
    assert title == "Blocks that keep current weights (1)" and block == head
    assert "here, (3," in detail and "in the file" in detail
    weights = doc.project.weights
    last = [k for k in weights if k.endswith(".weight")][-1]
    assert torch.equal(weights[last], current[last])


def test_cancel_changes_nothing(window, tmp_path):
    doc = window.document
    path, _ = _file(window, tmp_path)
    when_shown(lambda w: isinstance(w, LoadWeightsDialog), lambda d: d.reject())
    assert window.load_weights(path) is False
    assert doc.project.weights is None and doc.undo_stack.count() == 0 and not doc.modified


def test_nothing_matching_offers_no_apply(window, tmp_path):
    save_file({"encoder.w": torch.zeros(3, 3, 3)}, str(tmp_path / "other.safetensors"))
    seen = []

    def look(dialog):
        seen.append((dialog.apply_button.isEnabled(), dialog.headline.text()))
        dialog.reject()

    when_shown(lambda w: isinstance(w, LoadWeightsDialog), look)
    assert window.load_weights(tmp_path / "other.safetensors") is False
    assert seen == [(False, "No tensor in other.safetensors fits the graph: nothing is loaded.")]
    assert window.document.project.weights is None


def test_a_pickled_model_is_refused_with_the_reason(window, tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "model.pt")
    seen = []

    def read(box):
        seen.append(box.text())
        box.accept()

    when_shown(lambda w: isinstance(w, QMessageBox), read)
    assert window.load_weights(tmp_path / "model.pt") is False
    assert "pickle" in seen[0] and "state_dict" in seen[0]
    assert window.document.project.weights is None


def test_the_file_menu_offers_load_weights(window):
    file_menu = window.menuBar().actions()[0].menu()
    assert window.act_load_weights in file_menu.actions()
