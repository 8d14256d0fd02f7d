"""Fine-tuning in the designer, end to end (issue #19): weights loaded from a file are where the next
run starts (the Training panel shows Start from: weights), a frozen block keeps them bit for bit, and
the run record says where they came from."""
from __future__ import annotations

import time

import pytest
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from safetensors.torch import save_file

from designer.commands import SetParams
from designer.weights_dialog import LoadWeightsDialog


def apply_when_shown(seconds: float = 8.0) -> None:
    deadline = time.monotonic() + seconds

    def poll():
        for w in QApplication.topLevelWidgets():
            if isinstance(w, LoadWeightsDialog) and w.isVisible():
                w.apply_button.click()
                return
        if time.monotonic() < deadline:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def train_once(qtbot, panel):
    with qtbot.waitSignal(panel.session.finished, timeout=60_000) as blocker:
        QTest.mouseClick(panel.train_button, Qt.LeftButton)
    return blocker.args[0]


@pytest.mark.slow
def test_load_weights_freeze_a_block_and_fine_tune(qtbot, window, tmp_path):
    panel = window.training
    panel.set_dataset("digits")
    panel.epochs.setValue(1)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    first_run = train_once(qtbot, panel)
    pretrained = {k: v.clone().contiguous() for k, v in first_run.result.state_dict.items()}
    path = tmp_path / "pretrained.safetensors"
    save_file(pretrained, str(path))

    apply_when_shown()
    assert window.load_weights(path)
    assert window.document.project.config.start_from == "weights"
    assert panel.config_from_fields().start_from == "weights"          # the panel follows
    graph = window.document.graph
    first = next(n for n in graph.nodes() if n.type == "Linear")
    window.document.undo_stack.push(SetParams(graph, [first.id], {"trainable": False}))

    outcome = train_once(qtbot, panel)
    result = outcome.result
    assert result.start["from"] == "weights" and result.frozen == [first.name]
    weights = window.document.project.weights
    for key in (f"{first.name}.weight", f"{first.name}.bias"):
        assert torch.equal(weights[key], pretrained[key]), "the frozen block kept the loaded weights"
    moved = [k for k in weights if k.split(".")[0] != first.name and k.endswith(".weight")]
    assert moved and any(not torch.equal(weights[k], pretrained[k]) for k in moved)
    run = window.document.project.runs[-1]
    assert run["start"]["from"] == "weights" and run["frozen"] == [first.name]
