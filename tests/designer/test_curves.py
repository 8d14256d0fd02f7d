"""The live training curves: fed with the dicts engine.training's callbacks send."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from designer import theme
from designer.curves import CurvesView, Ema, Series, smoothing_for


@pytest.fixture
def view(qtbot):
    theme.apply(QApplication.instance(), dark=True)
    widget = CurvesView()
    qtbot.addWidget(widget)
    widget.resize(900, 360)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def batch_info(epoch, batch, batches, losses):
    return {"epoch": epoch, "epochs": 3, "batch": batch, "batches": batches, "step": (epoch - 1) * batches + batch,
            "total_steps": 3 * batches, "losses": list(losses), "samples_per_s": 1000.0, "lr": 1e-3, "eta_s": 1.0,
            "gpu_memory": None}


def epoch_record(epoch, loss, val_loss, accuracy=None, val_accuracy=None, best=False, **extra):
    record = {"epoch": epoch, "epochs": 3, "loss": loss, "val_loss": val_loss, "lr": 1e-3, "best": best,
              "seconds": 0.5, "samples_per_s": 1000.0}
    if accuracy is not None:
        record["accuracy"] = accuracy
    if val_accuracy is not None:
        record["val_accuracy"] = val_accuracy
    record.update(extra)
    return record


def feed_classification(view, epochs=3, batches=10):
    view.start_run("run-1", "multiclass")
    for e in range(1, epochs + 1):
        view.add_batches(batch_info(e, 4, batches, [2.0 / e] * 4))
        view.add_batches(batch_info(e, batches, batches, [1.9 / e] * (batches - 4)))
        view.add_epoch(epoch_record(e, 1.9 / e, 2.0 / e, accuracy=0.5 + 0.1 * e, val_accuracy=0.45 + 0.1 * e,
                                    best=True))


def test_point_counts_follow_the_reports(view):
    view.start_run("run-1", "multiclass")
    assert view.point_counts() == {"batch_loss": 0, "smoothed_loss": 0, "epoch_loss": 0, "val_loss": 0,
                                   "accuracy": 0, "val_metric": 0}
    view.add_batches(batch_info(1, 3, 10, [2.3, 2.2, 2.1]))
    view.add_batches(batch_info(1, 10, 10, [2.0] * 7))
    view.add_batches(batch_info(1, 10, 10, []))            # an empty report changes nothing
    view.add_epoch(epoch_record(1, 2.1, 2.0, accuracy=0.3, val_accuracy=0.35, best=True))
    view.add_batches(batch_info(2, 5, 10, [1.5] * 5))
    counts = view.point_counts()
    assert counts == {"batch_loss": 15, "smoothed_loss": 3, "epoch_loss": 1, "val_loss": 1,
                      "accuracy": 1, "val_metric": 1}
    x, y = view.batch_item.getOriginalDataset()
    # batch b of B in epoch e sits at e - 1 + b / B
    assert np.allclose(x[:3], [0.1, 0.2, 0.3]) and x[9] == pytest.approx(1.0) and x[10] == pytest.approx(1.1)
    assert list(y[:3]) == [2.3, 2.2, 2.1]
    ex, ey = view.val_metric_item.getOriginalDataset()
    assert list(ex) == [1.0] and ey[0] == pytest.approx(35.0)     # accuracy shown in per cent
    # a new run starts empty
    view.start_run("run-2", "multiclass")
    assert set(view.point_counts().values()) == {0}


def test_many_reports_grow_the_arrays(view):
    view.start_run("long", "multiclass")
    rng = np.random.default_rng(1)
    values = rng.uniform(0.1, 2.0, 5000)
    for i in range(0, 5000, 50):
        epoch, batch = i // 1000 + 1, i % 1000 + 50
        view.add_batches(batch_info(epoch, batch, 1000, values[i:i + 50]))
    assert view.point_counts()["batch_loss"] == 5000
    x, y = view.batch_item.getOriginalDataset()
    assert np.array_equal(y, values)
    assert np.all(np.diff(x) > 0) and x[-1] == pytest.approx(5.0)


def test_series_doubles_and_keeps_its_data():
    s = Series(capacity=4)
    for i in range(10):
        s.append(i, 2 * i)
    s.extend(np.arange(10, 15), np.arange(20, 30, 2))
    assert len(s) == 15 and list(s.x) == list(range(15)) and list(s.y) == [2 * i for i in range(15)]
    s.clear()
    assert len(s) == 0 and len(s.x) == 0


def test_smoothed_loss_lies_between_the_raw_extremes_and_is_smoother(view):
    view.start_run("noisy", "multiclass")
    rng = np.random.default_rng(0)
    raw = 1.0 + rng.normal(0, 0.3, 400)
    for i in range(0, 400, 20):
        view.add_batches(batch_info(i // 100 + 1, i % 100 + 20, 100, raw[i:i + 20]))
    smooth = view.smoothed_losses()
    assert len(smooth) == len(raw)
    # each smoothed value is a weighted mean of the losses so far
    running_min, running_max = np.minimum.accumulate(raw), np.maximum.accumulate(raw)
    assert np.all(smooth >= running_min - 1e-12) and np.all(smooth <= running_max + 1e-12)
    assert smooth[0] == pytest.approx(raw[0])          # bias-corrected: no pull towards 0 at the start
    assert np.std(np.diff(smooth)) < 0.2 * np.std(np.diff(raw))
    # the reports were handed to pyqtgraph in one go, when the event loop next ran
    assert view.smooth_item.getOriginalDataset()[1] is None
    QApplication.processEvents()
    # the line is drawn through the smoothed value at the end of each report (every 20th batch here)
    x, drawn = view.smooth_item.getOriginalDataset()
    assert np.array_equal(drawn, smooth[19::20]) and np.allclose(x, np.arange(20, 401, 20) / 100)


def test_ema_is_bias_corrected_and_skips_non_finite():
    ema = Ema(0.9)
    assert ema.feed([5.0, 5.0]) == pytest.approx([5.0, 5.0])
    out = ema.feed([float("nan"), 1.0])
    assert out[0] == pytest.approx(5.0) and 1.0 < out[1] < 5.0
    assert smoothing_for(45) == pytest.approx(0.9) and smoothing_for(100_000) == pytest.approx(0.99)


def test_log_scale_checkbox_switches_the_loss_axis(view, qtbot):
    feed_classification(view)
    assert not view.log_scale() and not view.loss_plot.getAxis("left").logMode
    view.log_check.click()
    assert view.log_scale() and view.loss_plot.getAxis("left").logMode
    x, y = view.val_loss_item.getData()           # drawn as log10 of the losses
    assert y[0] == pytest.approx(np.log10(2.0))
    view.set_log_scale(False)
    assert not view.log_check.isChecked() and not view.log_scale()
    view.set_log_scale(True)
    assert view.log_check.isChecked() and view.log_scale()


def click_point(view, scene_pos: QPointF):
    viewport = view.plots.viewport()
    at = view.plots.mapFromScene(scene_pos)
    QTest.mouseMove(viewport, at)
    QTest.mouseClick(viewport, Qt.LeftButton, Qt.NoModifier, at)


def test_clicking_an_epoch_point_emits_the_run_and_epoch(view, qtbot):
    feed_classification(view)
    QApplication.processEvents()
    with qtbot.waitSignal(view.epochClicked, timeout=2000) as blocker:
        click_point(view, view.epoch_point_scene_pos("val_loss", 2))
    assert blocker.args == ["run-1", 2]
    with qtbot.waitSignal(view.epochClicked, timeout=2000) as blocker:
        click_point(view, view.epoch_point_scene_pos("val_metric", 3))
    assert blocker.args == ["run-1", 3]
    # a click on empty plot area says nothing
    received = []
    view.epochClicked.connect(lambda *args: received.append(args))
    empty = view.loss_plot.vb.mapViewToScene(QPointF(0.3, 0.2))
    click_point(view, empty)
    QApplication.processEvents()
    assert received == []


def test_hover_names_the_nearest_epoch_point(view):
    feed_classification(view)
    QApplication.processEvents()
    view._mouse_moved((view.epoch_point_scene_pos("val_loss", 2),))
    assert "epoch 2" in view.hover_text and "validation: 1" in view.hover_text
    view._mouse_moved((view.epoch_point_scene_pos("accuracy", 3),))
    assert "epoch 3" in view.hover_text and "80.00%" in view.hover_text
    # between epoch points on the loss plot: the batch loss under the cursor
    view._mouse_moved((view.loss_plot.vb.mapViewToScene(QPointF(1.5, 1.2)),))
    assert "batch loss" in view.hover_text and "smoothed" in view.hover_text


def test_overlay_adds_legend_entries_and_clear_removes_them(view):
    feed_classification(view)
    before_loss, before_metric = view.legend_names("loss"), view.legend_names("metric")
    assert "validation" in before_loss
    other = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "val_accuracy": 0.2 * e} for e in range(1, 5)]
    view.overlay([("run-a", other), ("run-b", other[:2])])
    assert view.legend_names("loss") == before_loss + ["run-a", "run-b"]
    assert view.legend_names("metric") == before_metric + ["run-a", "run-b"]
    pens = {item.opts["pen"].color().name() for _, item in view._overlay_items}
    assert len(pens) == 2                                   # distinct colours per run
    _, y = view._overlay_items[1][1].getOriginalDataset()   # run-a's validation accuracy, in per cent
    assert list(y) == pytest.approx([20.0, 40.0, 60.0, 80.0])
    view.start_run("run-2", "multiclass")                    # a new live run keeps the comparison
    assert view.legend_names("loss") == ["run-a", "run-b"]   # and names no curve it has not drawn yet
    view.overlay([("run-c", other)])                         # replaces the previous overlay
    assert view.legend_names("loss").count("run-a") == 0 and "run-c" in view.legend_names("loss")
    view.clear_overlay()
    assert view.legend_names("loss") == [] and view.legend_names("metric") == []
    feed_classification(view)
    view.overlay([("run-a", other)])
    view.clear()
    assert view.legend_names("loss") == [] and set(view.point_counts().values()) == {0}


def test_regression_plots_validation_mae(view):
    view.start_run("reg", "regression")
    view.add_batches(batch_info(1, 5, 5, [30.0, 20.0, 10.0, 8.0, 7.0]))
    view.add_epoch({"epoch": 1, "loss": 12.0, "val_loss": 9.0, "val_mae": 2.5, "val_mse": 9.0, "lr": 1e-3,
                    "best": True, "seconds": 0.1})
    counts = view.point_counts()
    assert counts["val_metric"] == 1 and counts["accuracy"] == 0 and counts["batch_loss"] == 5
    assert list(view.val_metric_item.getOriginalDataset()[1]) == [2.5]
    assert "MAE" in view.metric_plot.titleLabel.text


def test_show_history_redraws_a_saved_run(view):
    history = [epoch_record(e, 1.0 / e, 1.1 / e, accuracy=0.5, val_accuracy=0.4 + 0.1 * e, best=e < 3)
               for e in range(1, 5)]
    losses = list(np.linspace(2.0, 0.2, 40))
    view.show_history("saved", history, losses, 10)
    counts = view.point_counts()
    assert counts == {"batch_loss": 40, "smoothed_loss": 40, "epoch_loss": 4, "val_loss": 4,
                      "accuracy": 4, "val_metric": 4}
    x, _ = view.batch_item.getOriginalDataset()
    assert x[0] == pytest.approx(0.1) and x[-1] == pytest.approx(4.0)
    assert view.run_id == "saved"
    assert list(view.best_item.getData()[0]) == [2.0]      # the last improving epoch is marked
    # without batch losses, or without the batch count (spread evenly over the epochs)
    view.show_history("saved", history, None, None)
    assert view.point_counts()["batch_loss"] == 0 and view.point_counts()["val_loss"] == 4
    view.show_history("saved", history, losses, None)
    assert view.batch_item.getOriginalDataset()[0][-1] == pytest.approx(4.0)
    # a long saved run: every batch kept, the smoothed line thinned out, ending at the last batch
    long = list(np.linspace(2.0, 0.2, 20_000))
    view.show_history("saved", history, long, 5000)
    counts = view.point_counts()
    assert counts["batch_loss"] == 20_000 and 3000 <= counts["smoothed_loss"] <= 4001
    sx, sy = view.smooth_item.getOriginalDataset()
    assert sx[-1] == pytest.approx(4.0) and sy[-1] == pytest.approx(view.smoothed_losses()[-1])
    # a regression history switches the metric plot to MAE
    view.show_history("reg", [{"epoch": 1, "loss": 3.0, "val_loss": 2.0, "val_mae": 1.0, "val_mse": 2.0}], None, None)
    assert view.point_counts()["val_metric"] == 1 and "MAE" in view.metric_plot.titleLabel.text


def test_x_range_follows_whole_epochs_until_the_user_zooms(view):
    feed_classification(view, epochs=2)
    (x0, x1), _ = view.loss_plot.vb.viewRange()
    assert x0 <= 0 and 2.0 <= x1 < 2.2
    view.add_batches(batch_info(3, 2, 10, [0.5, 0.5]))
    assert view.point_counts()["batch_loss"] == 22
    assert 3.0 <= view.loss_plot.vb.viewRange()[0][1] < 3.2
    view.loss_plot.vb.sigRangeChangedManually.emit([True, True])
    assert not view.following()
    view.fit()
    assert view.following()


def test_long_runs_keep_markers_only_on_the_validation_curves(qtbot):
    from designer.curves import MARKER_EPOCHS, CurvesView
    view = CurvesView()
    qtbot.addWidget(view)
    view.start_run("1", "multiclass")
    for epoch in range(1, MARKER_EPOCHS + 2):
        view.add_epoch({"epoch": epoch, "loss": 1 / epoch, "val_loss": 1.1 / epoch, "accuracy": 0.5,
                        "val_accuracy": 0.5})
    assert view.epoch_loss_item.opts["symbol"] is None and view.accuracy_item.opts["symbol"] is None
    assert view.val_loss_item.opts["symbol"] == "o" and view.val_metric_item.opts["symbol"] == "o"
    view.start_run("2", "multiclass")
    view.add_epoch({"epoch": 1, "loss": 1.0, "val_loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.5})
    assert view.epoch_loss_item.opts["symbol"] == "o"     # a new, short run has them again


@pytest.mark.parametrize("task, metric_legend", [("multiclass", ["train", "validation"]), ("binary", ["validation"]),
                                                 ("regression", ["validation"])])
def test_the_legends_name_only_the_curves_drawn(view, task, metric_legend):
    view.start_run("r", task)
    assert view.legend_names("loss") == [] and view.legend_names("metric") == []
    view.add_batches(batch_info(1, 10, 10, [0.7] * 10))
    view._flush()
    assert view.legend_names("loss") == ["train (smoothed)"]
    # the engine measures training accuracy for multiclass runs only
    metric = {"val_mae": 0.4} if task == "regression" else {"val_accuracy": 0.8}
    if task == "multiclass":
        metric["accuracy"] = 0.75
    view.add_epoch(epoch_record(1, 0.7, 0.6, best=True, **metric))
    assert view.legend_names("loss") == ["train (smoothed)", "train (epoch)", "validation"]
    assert view.legend_names("metric") == metric_legend
    counts = view.point_counts()
    assert (counts["accuracy"] > 0) == ("train" in view.legend_names("metric"))


def test_the_header_names_the_batch_the_panel_shows(view):
    view.start_run("r", "multiclass")
    view.add_batches(batch_info(1, 6, 40, [0.9] * 6))
    view.show_progress(batch_info(1, 6, 40, []))
    view.add_batches(batch_info(1, 24, 40, [0.8] * 18))     # arrived, not shown yet
    assert view.status.text().startswith("epoch 1 · batch 6/40")
    view.show_progress(batch_info(1, 24, 40, []))
    assert view.status.text().startswith("epoch 1 · batch 24/40")
