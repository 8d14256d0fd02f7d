"""The designer changes the project's settings, data, weights and runs only through Document, and
records a run as the CLI does (Project.record_run)."""
import ast
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine.cli import main
from engine.project import load_project

DESIGNER = Path(__file__).resolve().parents[2] / "designer"
PROJECT_FIELDS = {"config", "dataset", "dataset_options", "runs", "weights", "checkpoints"}


def test_no_view_assigns_the_projects_fields():
    """Only document.py writes project.<field> (the views call its methods)."""
    offenders = []
    for path in sorted(DESIGNER.rglob("*.py")):
        if path.name == "document.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for target in targets:
                for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if (isinstance(t, ast.Attribute) and t.attr in PROJECT_FIELDS
                            and "project" in ast.unparse(t.value)):
                        offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(t)}")
    assert offenders == []


def test_a_setting_a_dataset_and_restored_weights_change_the_project_through_document(qtbot, window):
    doc, panel = window.document, window.training
    assert not doc.modified
    calls = []
    doc.projectChanged.connect(lambda: calls.append(doc.project.config.epochs))
    with qtbot.waitSignal(doc.modifiedChanged):
        panel.epochs.setValue(panel.epochs.value() + 3)
    assert doc.modified and doc.project.config.epochs == panel.epochs.value() and calls
    # later changes are signalled too (the document is modified already), so autosave can see each
    before = len(calls)
    panel.lr.setValue(panel.lr.value() * 2)
    panel.set_dataset("iris")
    assert len(calls) == before + 2 and doc.project.dataset == "iris"
    panel.set_dataset("iris")               # no change: no signal
    assert len(calls) == before + 2


def test_document_methods_report_whether_anything_changed(window):
    from dataclasses import replace
    doc = window.document
    assert not doc.set_training_config(doc.project.config) and not doc.modified
    assert doc.set_training_config(replace(doc.project.config, epochs=7)) and doc.modified
    assert doc.set_dataset("data.csv", {"target": "y"}) and doc.project.dataset_options == {"target": "y"}
    assert not doc.set_dataset("data.csv", {"target": "y"})
    doc.set_weights(None)
    assert doc.project.weights is None


@pytest.mark.slow
def test_a_designer_run_and_a_cli_run_of_one_model_record_the_same_fields(qtbot, window, tmp_path):
    panel = window.training
    panel.set_dataset("digits")
    panel.epochs.setValue(1)
    panel.batch_size.setValue(64)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    with qtbot.waitSignal(panel.session.finished, timeout=60_000):
        QTest.mouseClick(panel.train_button, Qt.LeftButton)
    path = window.document.save(tmp_path / "model.deepwire")
    assert main(["train", str(path), "--epochs", "1"]) == 0
    project = load_project(path)
    designer_run, cli_run = project.runs
    assert [designer_run["id"], cli_run["id"]] == [1, 2]
    assert set(designer_run) == set(cli_run)
    for key in ("dataset", "dataset_name", "task", "class_names", "batches_per_epoch"):
        assert designer_run[key] == cli_run[key], key
    assert len(cli_run["batch_losses"]) == cli_run["batches_per_epoch"] > 0
    assert sorted(project.checkpoints) == [1, 2]     # both runs' epochs kept
