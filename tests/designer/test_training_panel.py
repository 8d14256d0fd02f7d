"""Training in the designer, driven through the widgets: pick data, click Train, watch, stop, save."""
import math
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from designer.dataset_dialog import DatasetImportDialog
from engine.graph import build
from engine.project import load_project
from engine.templates import template_names

RUN_TIMEOUT_MS = 60_000


def configure(panel, epochs=2, batch=32, dataset="digits", lr=None):
    panel.set_dataset(dataset)
    panel.epochs.setValue(epochs)
    panel.batch_size.setValue(batch)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    if lr is not None:
        panel.lr.setValue(lr)


def click_train(qtbot, window):
    panel = window.training
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        QTest.mouseClick(panel.train_button, Qt.LeftButton)
    return blocker.args[0]


@pytest.mark.slow
def test_train_button_runs_and_shows_the_engines_results(qtbot, window):
    panel = window.training
    configure(panel, epochs=2)
    outcome = click_train(qtbot, window)
    result = outcome.result
    batches = math.ceil(len_train(panel) / 32)
    counts = window.curves.point_counts()
    assert counts["batch_loss"] == 2 * batches          # one point per batch
    assert counts["epoch_loss"] == 2 and counts["val_loss"] == 2   # one point per epoch
    accuracy = result.test_metrics["accuracy"]
    assert accuracy > 0.8
    shown = f"{accuracy:.2%}"
    assert shown in panel.status_label.text()
    assert shown in panel.runs_list.item(0).text()
    qtbot.waitUntil(lambda: shown in window.results.headline(), timeout=1000)   # filled in the next turns
    assert window.results.confusion_cell(0, 0) == result.test_metrics["confusion_matrix"][0][0]
    assert window.document.project.weights is not None and window.document.modified
    assert window.bottom_tabs.currentWidget() is window.curves
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()


def len_train(panel):
    from engine.runtime.data import load_dataset, split_dataset
    config = panel.config_from_fields()
    return len(split_dataset(load_dataset("digits"), config.val_split, config.test_split, config.seed).x_train)


@pytest.mark.slow
def test_stop_ends_the_run_within_a_second_and_keeps_weights(qtbot, window):
    panel = window.training
    configure(panel, epochs=500, batch=8)
    with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
        QTest.mouseClick(panel.train_button, Qt.LeftButton)
    assert panel.stop_button.isEnabled() and not panel.train_button.isEnabled()
    with qtbot.waitSignal(panel.session.finished, timeout=5_000) as blocker:
        started = time.perf_counter()
        QTest.mouseClick(panel.stop_button, Qt.LeftButton)
    assert time.perf_counter() - started < 1.0
    assert blocker.args[0].result.stopped == "user"
    assert "stopped by you" in panel.status_label.text()
    assert window.document.project.weights is not None


@pytest.mark.slow
def test_pause_holds_the_run_and_resume_goes_on(qtbot, window):
    panel = window.training
    configure(panel, epochs=500, batch=8)
    with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
        panel.train_button.click()
    panel.pause_button.click()
    assert panel.pause_button.text() == "Resume"
    qtbot.wait(300)   # a report already on its way may still arrive
    before = window.curves.point_counts()["batch_loss"]
    qtbot.wait(400)
    assert window.curves.point_counts()["batch_loss"] == before
    panel.pause_button.click()
    qtbot.waitUntil(lambda: window.curves.point_counts()["batch_loss"] > before, timeout=5_000)
    with qtbot.waitSignal(panel.session.finished, timeout=5_000):
        panel.stop_button.click()


def diverging_regression():
    return build("diverge", [("x", "Input", {"shape": [10]}), ("fc", "Linear", {"units": 64}),
                             ("fc2", "Linear", {"units": 1}), ("y", "Output", {})],
                 [("x", "fc"), ("fc", "fc2"), ("fc2", "y")])


@pytest.mark.slow
def test_nan_run_shows_its_message_and_the_next_run_succeeds(qtbot, window):
    from engine.project import Project
    window.document.replace(Project(diverging_regression(), dataset="diabetes"), None)
    panel = window.training
    configure(panel, epochs=3, dataset="diabetes", lr=1.0)
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    with qtbot.waitSignal(panel.session.failed, timeout=RUN_TIMEOUT_MS) as blocker:
        panel.train_button.click()
        assert panel.session.running
    assert "loss became" in blocker.args[0]
    assert "failed" in panel.status_label.text() and "learning rate" in panel.status_label.text()
    assert panel.train_button.isEnabled()
    panel.lr.setValue(0.01)
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("adam"))
    outcome = click_train(qtbot, window)
    assert math.isfinite(outcome.result.history[-1]["loss"])
    assert panel.runs_list.count() == 1      # the failed run left no entry


def test_data_mismatch_is_named_before_anything_runs(qtbot, window):
    panel = window.training
    configure(panel, dataset="breast_cancer")
    assert "input" in panel.fit_label.text() and "(64,)" in panel.fit_label.text()
    panel.train_button.click()
    assert not panel.session.running
    assert "Cannot train" in panel.status_label.text() and "'" in panel.status_label.text()


@pytest.mark.slow
def test_editing_during_a_run_never_changes_it(qtbot, window):
    panel = window.training
    configure(panel, epochs=3)
    graph = window.document.graph
    with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
        panel.train_button.click()
    hidden = next(n for n in graph.nodes() if n.type == "Linear")
    from designer.commands import SetParams
    window.document.undo_stack.push(SetParams(graph, [hidden.id], {"out_features": 7}))
    assert "changed since this run started" in panel.changed_label.text()
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args[0].result.stopped == "completed"
    assert window.document.project.weights is None   # the run's weights do not fit the edited graph
    assert "not applied" in panel.status_label.text()


@pytest.mark.slow
def test_runs_are_kept_in_the_project_after_save_and_reopen(qtbot, window, tmp_path):
    panel = window.training
    configure(panel, epochs=2)
    first = click_train(qtbot, window)
    panel.epochs.setValue(1)
    click_train(qtbot, window)
    path = tmp_path / "mlp.deepwire"
    assert window.document.save(path) == path
    assert not window.document.modified
    project = load_project(path)
    assert [r["id"] for r in project.runs] == [1, 2]
    assert project.runs[0]["test"]["accuracy"] == first.result.test_metrics["accuracy"]
    assert len(project.runs[0]["batch_losses"]) == 2 * math.ceil(len_train(panel) / 32)
    window.document.new_from_template("digits_mlp")
    assert panel.runs_list.count() == 0
    window.open_path(path, ask=False)
    assert panel.runs_list.count() == 2
    assert panel.epochs.value() == 1 and panel.dataset_spec() == "digits"
    panel.runs_list.setCurrentRow(0)
    panel._run_clicked(panel.runs_list.item(0))
    assert window.curves.point_counts()["epoch_loss"] == 2
    panel.runs_list.item(0).setCheckState(Qt.Checked)
    panel.runs_list.item(1).setCheckState(Qt.Checked)
    assert {"Run 1", "Run 2"} <= set(window.curves.legend_names())


@pytest.mark.slow
def test_restore_an_epochs_weights_also_after_save_and_reopen(qtbot, window, tmp_path):
    panel = window.training
    configure(panel, epochs=3)
    outcome = click_train(qtbot, window)
    run_id = str(panel.runs_list.item(0).data(Qt.UserRole)["id"])
    epoch_one = outcome.result.checkpoints[1]
    assert panel.restore_epoch(run_id, 1, ask=False)
    weights = window.document.project.weights
    assert all(np.array_equal(weights[k].numpy(), epoch_one[k].numpy()) for k in epoch_one)
    assert not panel.restore_epoch(run_id, 99, ask=False)
    assert "Cannot restore" in panel.status_label.text()
    path = tmp_path / "restored.deepwire"                 # the epochs' weights are saved with the project
    window.document.save(path)
    window.document.open(path)
    assert window.training.restore_epoch(run_id, 2, ask=False)
    weights = window.document.project.weights
    assert all(np.array_equal(weights[k].numpy(), outcome.result.checkpoints[2][k].numpy()) for k in epoch_one)


def test_import_a_csv_dataset_previews_and_trains(qtbot, window, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 64))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path = tmp_path / "points.csv"
    lines = [",".join([f"f{i}" for i in range(64)] + ["label"])]
    lines += [",".join([f"{v:.4f}" for v in row] + [str(k)]) for row, k in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    dialog = DatasetImportDialog(window)
    qtbot.addWidget(dialog)
    dialog.set_path(str(path))
    assert dialog.dataset is not None and dialog.target_combo.currentText() == "label"
    assert "300 samples" in dialog.summary.text() and "binary" in dialog.summary.text()
    assert dialog.classes.rowCount() == 2
    assert dialog.rows.isVisible() or dialog.rows.rowCount() == 5
    window.training.accept_import(dialog.spec, dialog.dataset, dialog.options)
    panel = window.training
    assert panel.dataset_spec() == str(path)
    assert "does not fit" in panel.fit_label.text()   # the digits MLP has 10 outputs, the data 2 classes
    dialog.set_path(str(tmp_path / "missing.csv"))
    assert dialog.dataset is None and "missing.csv" in dialog.summary.text()


def test_devices_listed_are_real_and_shown_in_the_status_bar(qtbot, window):
    panel = window.training
    ids = [panel.device.itemData(i) for i in range(panel.device.count())]
    assert ids[0] == "auto" and "cpu" in ids
    panel.device.setCurrentIndex(ids.index("cpu"))
    assert window.status_device.text() == "Device: CPU"


def os_threads():
    import os
    return len(os.listdir("/proc/self/task"))


def child_processes():
    import os
    pids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="counts threads through /proc")
@pytest.mark.slow
def test_train_stop_cycles_leave_no_threads_behind(qtbot, window):
    panel = window.training
    configure(panel, epochs=500, batch=8)

    def cycle():
        with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
            panel.train_button.click()
        with qtbot.waitSignal(panel.session.finished, timeout=5_000):
            panel.stop_button.click()

    cycle()
    qtbot.wait(50)
    before = os_threads()
    for _ in range(4):
        cycle()
    qtbot.wait(50)
    assert os_threads() <= before
    assert panel.runs_list.count() == 5
    assert len(child_processes()) <= 1          # at most the spare, warming up for the next run
    panel.session.shutdown()                    # closing the window
    assert not child_processes()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="POSIX signals")
@pytest.mark.slow
def test_a_crashed_training_process_is_reported_and_the_next_run_works(qtbot, window):
    import signal
    panel = window.training
    configure(panel, epochs=500, batch=8)
    with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
        panel.train_button.click()
    with qtbot.waitSignal(panel.session.failed, timeout=10_000) as blocker:
        panel.session._process.proc.send_signal(signal.SIGKILL)   # as the system's out-of-memory killer would
    assert "killed by SIGKILL" in blocker.args[0]
    assert "failed" in panel.status_label.text() and "out of memory" in panel.status_label.text()
    assert panel.train_button.isEnabled() and window.isVisible()
    configure(panel, epochs=1)
    assert click_train(qtbot, window).result.stopped == "completed"
    assert panel.runs_list.count() == 1


@pytest.mark.slow
def test_an_imported_csv_and_its_target_column_survive_save_and_reopen(qtbot, window, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 64))
    path = tmp_path / "table.csv"
    rows = [",".join(["label"] + [f"f{i}" for i in range(64)])]   # the target is the FIRST column
    rows += [",".join([str(i % 10)] + [f"{v:.3f}" for v in r]) for i, r in enumerate(x)]
    path.write_text("\n".join(rows) + "\n")
    dialog = DatasetImportDialog(window)
    qtbot.addWidget(dialog)
    dialog.set_path(str(path))
    dialog.target_combo.setCurrentIndex(0)
    assert dialog.load_preview() and dialog.options == {"target": "label"}
    panel = window.training
    panel.accept_import(dialog.spec, dialog.dataset, dialog.options)
    assert panel.fit_problems() == []          # 64 features, 10 classes: fits the digits MLP
    panel.epochs.setValue(1)
    assert click_train(qtbot, window).dataset_name == "table"    # trains on the previewed data
    saved = tmp_path / "with_csv.deepwire"
    window.document.save(saved)
    window.document.new_from_template("digits_mlp")
    window.open_path(saved, ask=False)
    assert panel.dataset_spec() == str(path)
    assert window.document.project.dataset_options == {"target": "label"}
    panel.epochs.setValue(1)
    with qtbot.waitSignals([panel.session.finished], raising=False, timeout=RUN_TIMEOUT_MS) as blocker:
        panel.train_button.click()
    assert blocker.signal_triggered, panel.status_label.text()


def test_epoch_weights_are_bounded_newest_run_first(window):
    import torch

    from engine.project import CHECKPOINT_BUDGET
    panel = window.training
    project = window.document.project
    epoch_bytes = CHECKPOINT_BUDGET // 5                      # five epochs fill the budget
    for run in (1, 2):
        project.runs.append({"id": run, "best_epoch": 1})
        project.keep_checkpoints(run, {e: {"w": torch.zeros(epoch_bytes // 4)} for e in (1, 2, 3)})
    assert sorted(project.checkpoints[2]) == [1, 2, 3]          # the newest run whole
    assert sorted(project.checkpoints[1]) == [1, 3]             # the older one: its best and its last epoch
    assert panel.restore_epoch("1", 1, ask=False) is False       # the weights do not fit this graph…
    assert "do not fit" in panel.status_label.text()
    assert not panel.restore_epoch("1", 2, ask=False)           # …and epoch 2 was let go
    assert "only epochs 1, 3 of run 1 are kept" in panel.status_label.text()


def test_a_training_process_that_cannot_start_is_a_failed_run_not_a_crash(qtbot, window, monkeypatch, tmp_path):
    import sys
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    panel = window.training
    configure(panel, epochs=1)
    with qtbot.waitSignal(panel.session.failed, timeout=5_000) as blocker:
        panel.train_button.click()
    assert "could not start" in blocker.args[0]
    assert "failed" in panel.status_label.text() and panel.train_button.isEnabled()
    assert not panel.session.running


@pytest.mark.slow
def test_a_run_stopped_before_its_first_batch_records_nothing(qtbot, window):
    panel = window.training
    configure(panel, epochs=500, batch=8)
    assert window.document.project.weights is None
    with qtbot.waitSignal(panel.session.failed, timeout=RUN_TIMEOUT_MS) as blocker:
        panel.train_button.click()
        panel.stop_button.click()           # at once: the run has not reached its first batch
    assert blocker.args[0].startswith("stopped before the first batch")
    assert "stopped before its first batch: nothing was trained" in panel.status_label.text()
    assert "failed" not in panel.status_label.text() and panel.progress.format() == "Stopped"
    assert window.document.project.weights is None and window.document.project.runs == []
    assert panel.runs_list.count() == 0 and window.curves.point_counts()["batch_loss"] == 0
    assert panel.train_button.isEnabled()


@pytest.mark.slow
def test_a_nan_after_good_epochs_keeps_the_best_epochs_weights_and_says_so(qtbot, window):
    import torch

    from engine.project import Project
    window.document.replace(Project(diverging_regression(), dataset="diabetes"), None)
    panel = window.training
    configure(panel, epochs=10, dataset="diabetes", lr=0.01)
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    panel.schedule.setCurrentIndex(panel.schedule.findData("one_cycle"))   # the rising rate overflows in epoch 2
    result = click_train(qtbot, window).result
    assert result.stopped == "diverged" and result.best_epoch == 1 and len(result.history) == 1
    status = panel.status_label.text()
    assert "ended at epoch 2, where the loss stopped being a number" in status
    assert "the weights of its best epoch, 1, were kept" in status and "The loss became" in status
    weights = window.document.project.weights
    assert all(torch.equal(weights[k], result.checkpoints[1][k]) for k in result.checkpoints[1])
    run = window.document.project.runs[-1]
    assert run["stopped"] == "diverged" and "epoch 2" in run["note"]
    assert panel.runs_list.count() == 1 and "loss not finite" in panel.runs_list.item(0).text()


def test_a_reopened_run_with_metrics_saved_as_null_shows_them_as_not_finite(qtbot, window):
    from engine.project import Project
    from engine.templates import load_template
    runs = [{"id": 1, "dataset": "digits", "task": "multiclass", "stopped": "completed", "epochs_run": 1,
             "history": [{"epoch": 1, "loss": None, "val_loss": 0.5, "accuracy": 0.9, "val_accuracy": None}],
             "test": {"loss": None, "accuracy": 0.8, "confusion_matrix": [[4, 1], [1, 4]],
                      "precision": [0.8, None], "recall": [0.8, 0.8]}},
            {"id": 2, "dataset": "values.csv", "task": "regression", "stopped": "completed", "epochs_run": 1,
             "history": [{"epoch": 1, "loss": None, "val_loss": None}],
             "test": {"loss": None, "mae": None, "mse": None, "r2": None}, "batch_losses": [1.0, None]}]
    window.document.replace(Project(load_template("digits_mlp"), runs=runs, dataset="digits"), None)
    panel = window.training
    assert panel.runs_list.count() == 2
    assert "test MAE not finite" in panel.runs_list.item(1).text()
    assert "mse: not finite" in panel.runs_list.item(1).toolTip()
    assert window.results.headline() == "Test MAE not finite · MSE not finite · R² not finite"   # the last run
    panel._run_clicked(panel.runs_list.item(0))
    assert window.results.headline() == "Test accuracy 80.00% · loss not finite"
    assert "test accuracy 80.00%" in panel.runs_list.item(0).text()


@pytest.mark.slow
def test_the_designer_never_writes_where_a_project_file_says(qtbot, window, tmp_path):
    from engine.project import Project
    from engine.templates import load_template
    from engine.training import TrainConfig
    elsewhere = tmp_path / "chosen-by-the-file"
    window.document.replace(Project(load_template("digits_mlp"), TrainConfig(checkpoint_dir=str(elsewhere)),
                                    dataset="digits"), None)
    panel = window.training
    configure(panel, epochs=1)
    assert click_train(qtbot, window).result.stopped == "completed"
    assert not elsewhere.exists()
    assert window.document.project.config.checkpoint_dir is None


# ----------------------------------------------------------------------------- the data each model opens with

@pytest.mark.parametrize("name", template_names())
def test_every_template_opens_with_its_dataset_selected_and_trainable(window, name):
    from engine.templates import describe
    window.document.new_from_template(name)
    panel = window.training
    assert panel.dataset_spec() == describe(name)["dataset"] == window.document.project.dataset
    assert panel.fit_problems() == [] and not panel.fit_label.isVisible(), panel.fit_label.text()
    assert panel.train_button.isEnabled() and not panel.fix_input_button.isVisible()


def test_an_imported_model_preselects_the_builtin_its_input_fits(window):
    from engine.project import Project
    imported = build("imported", [("x", "Input", {"shape": [1, 8, 8]}), ("flat", "Flatten", {}),
                                  ("fc", "Linear", {"units": 10}), ("y", "Output", {})])
    window.document.replace(Project(imported), None)        # as Import Model leaves it: no dataset
    panel = window.training
    assert panel.dataset_spec() == "digits_images" and window.document.project.dataset == "digits_images"
    assert panel.fit_problems() == [] and not window.document.modified
    odd = build("odd", [("x", "Input", {"shape": [7]}), ("fc", "Linear", {"units": 1}), ("y", "Output", {})])
    window.document.replace(Project(odd), None)             # nothing fits: the list shows what Train would use
    assert window.document.project.dataset is None and panel.dataset_spec() == "digits"


def test_set_input_to_the_datas_shape_in_one_click_through_the_undo_stack(qtbot, window):
    from engine.project import Project
    from engine.templates import load_template
    window.document.replace(Project(load_template("tabular_dnn"), dataset="breast_cancer"), None)
    panel = window.training
    assert "expects (20,)" in panel.fit_label.text()
    panel.train_button.click()
    assert "Cannot train" in panel.status_label.text() and "expects (20,)" in panel.status_label.text()
    assert panel.fix_input_button.isVisible() and panel.fix_input_button.text() == "Set Input to (30,)"
    steps = window.document.undo_stack.count()
    QTest.mouseClick(panel.fix_input_button, Qt.LeftButton)
    graph = window.document.graph
    assert graph.find("input").params["shape"] == [30] and window.document.undo_stack.count() == steps + 1
    assert panel.fit_problems() == [] and not panel.fit_label.isVisible()
    assert not panel.fix_input_button.isVisible()
    assert not panel.status_label.isVisible(), panel.status_label.text()   # "Cannot train" went with its cause
    window.document.undo_stack.undo()
    qtbot.waitUntil(lambda: panel.fix_input_button.isVisible(), timeout=2000)
    assert graph.find("input").params["shape"] == [20] and "expects (20,)" in panel.fit_label.text()


def test_use_the_builtin_that_fits_the_input_in_one_click(window):
    from engine.project import Project
    from engine.templates import load_template
    window.document.replace(Project(load_template("digits_cnn"), dataset="digits"), None)
    panel = window.training
    assert "expects (1, 8, 8)" in panel.fit_label.text()
    assert panel.fix_dataset_button.isVisible()
    assert panel.fix_dataset_button.text() == "Use digits_images, which gives (1, 8, 8)"
    assert panel.fix_input_button.text() == "Set Input to (64,)"
    QTest.mouseClick(panel.fix_dataset_button, Qt.LeftButton)
    assert panel.dataset_spec() == "digits_images" == window.document.project.dataset
    assert not panel.fit_label.isVisible() and not panel.fix_dataset_button.isVisible()


def test_token_ids_and_numbers_of_one_shape_are_told_apart(window):
    panel = window.training
    window.document.new_from_template("transformer_classifier")
    panel.set_dataset("digits")                              # (64,) numbers for a (64,) token-id input
    assert "gives numbers (float32); input 'tokens' is set to int64" in panel.fit_label.text()
    assert panel.fix_dataset_button.text() == "Use token_classification, which gives (64,) token ids"


def test_a_cannot_train_message_follows_its_cause(window):
    panel = window.training
    panel.set_dataset("iris")
    panel.train_button.click()
    assert "Cannot train" in panel.status_label.text() and "(4,)" in panel.status_label.text()
    panel.set_dataset("wine")                                # still does not fit: the message says why now
    assert "(13,)" in panel.status_label.text() and "(4,)" not in panel.status_label.text()
    panel.set_dataset("digits")                              # fits: no message left
    assert not panel.status_label.isVisible()


def test_a_project_whose_csv_is_missing_shows_that_csv_not_a_builtin(window, tmp_path):
    from engine.project import Project
    from engine.templates import load_template
    gone = str(tmp_path / "gone" / "table.csv")
    window.document.replace(Project(load_template("digits_mlp"), dataset=gone), None)
    panel = window.training
    assert panel.dataset_spec() == gone and "(not found)" in panel.dataset_combo.currentText()
    assert "not on this machine" in panel.dataset_info.text()
    panel.train_button.click()
    assert not panel.session.running and "Cannot train" in panel.status_label.text()
    panel.set_dataset("digits")                              # another choice is the one in use
    assert window.document.project.dataset == "digits" and not panel.status_label.isVisible()
    panel.set_dataset(gone)                                  # picked again: still missing, and said so
    assert window.document.project.dataset == gone and "not on this machine" in panel.fit_label.text()


# ----------------------------------------------------------------------------- figures true of the moment

def report(epoch, batch, batches=40, epochs=3, eta=12.0):
    return {"epoch": epoch, "epochs": epochs, "batch": batch, "batches": batches,
            "step": (epoch - 1) * batches + batch, "total_steps": epochs * batches, "losses": [0.5] * 2,
            "samples_per_s": 900.0, "lr": 1e-3, "eta_s": eta, "gpu_memory": None}


def test_the_panel_and_the_curves_name_the_same_batch(qtbot, window):
    import re
    panel, curves = window.training, window.curves
    curves.start_run("1", "multiclass", 3)

    def batches():
        shown = re.search(r"batch (\d+)/", panel.progress.format())
        header = re.search(r"batch (\d+)/", curves.status.text())
        return shown and int(shown.group(1)), header and int(header.group(1))

    for batch in (6, 12, 24):
        panel.session.batch.emit(report(1, batch))           # as the training process's reports arrive
        left, right = batches()
        assert left == right or right is None, (left, right)
        qtbot.wait(10)
    qtbot.waitUntil(lambda: batches() == (24, 24), timeout=2000)


def test_no_eta_once_the_run_is_over(qtbot, window):
    panel = window.training
    panel.session.batch.emit(report(2, 30))
    qtbot.waitUntil(lambda: "ETA" in panel.stats.text(), timeout=2000)
    panel.session.failed.emit("killed by SIGKILL")           # the run ended
    assert "ETA" not in panel.stats.text() and "samples/s" in panel.stats.text()


@pytest.mark.slow
def test_graph_changed_note_follows_undo_and_goes_with_the_run(qtbot, window):
    from designer.commands import SetParams
    panel = window.training
    configure(panel, epochs=500, batch=8)
    graph = window.document.graph
    with qtbot.waitSignal(panel.session.batch, timeout=RUN_TIMEOUT_MS):
        panel.train_button.click()
    hidden = next(n for n in graph.nodes() if n.type == "Linear")
    stack = window.document.undo_stack
    stack.push(SetParams(graph, [hidden.id], {"units": 7}, merge=False))
    assert "changed since this run started" in panel.changed_label.text() and panel.changed_label.isVisible()
    stack.undo()                                             # the graph is the run's again
    assert not panel.changed_label.isVisible()
    qtbot.waitUntil(lambda: "ETA" in panel.stats.text(), timeout=5_000)
    with qtbot.waitSignal(panel.session.finished, timeout=5_000):
        panel.stop_button.click()
    assert not panel.changed_label.isVisible() and "ETA" not in panel.stats.text()
    assert "not applied" not in panel.status_label.text()
    assert window.document.project.weights is not None     # the graph was the run's: its weights apply
