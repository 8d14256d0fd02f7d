"""Curves of runs whose numbers were not all finite: live ones (inf, nan) and saved ones (null)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from designer import theme
from designer.curves import CurvesView


@pytest.fixture
def view(qtbot):
    theme.apply(QApplication.instance(), dark=True)
    widget = CurvesView()
    qtbot.addWidget(widget)
    widget.resize(900, 360)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_a_saved_run_with_null_values_redraws_without_them(view):
    # as load_project gives a run whose validation loss overflowed in epoch 2 (saved as null)
    history = [{"epoch": 1, "loss": 3.0, "val_loss": 2.0, "val_mae": 1.0, "best": True},
               {"epoch": 2, "loss": 2.5, "val_loss": None, "val_mae": None, "best": False},
               {"epoch": 3, "loss": None, "val_loss": 1.5, "val_mae": 0.8, "best": True}]
    view.show_history("7", history, [4.0, None, 3.0, 2.0, None, 1.0], 2)
    counts = view.point_counts()
    assert counts["epoch_loss"] == 2 and counts["val_loss"] == 2 and counts["val_metric"] == 2
    assert counts["batch_loss"] == 6
    assert np.isfinite(view.smoothed_losses()).all()          # the smoothing steps over the gaps
    assert view.status.text() == "3 epochs · loss not finite · val loss 1.5"
    assert list(view.best_item.getData()[0]) == [3.0]


def test_live_values_that_are_not_finite_are_named_not_drawn(view):
    view.start_run("8", "regression", epochs=2)
    view.add_epoch({"epoch": 1, "loss": 2.0, "val_loss": 1.0, "val_mae": float("inf"), "best": True})
    view.add_epoch({"epoch": 2, "loss": float("nan"), "val_loss": float("inf"), "val_mae": 0.5, "best": False})
    counts = view.point_counts()
    assert counts["epoch_loss"] == 1 and counts["val_loss"] == 1 and counts["val_metric"] == 1
    view.show_history("8", [{"epoch": 1, "loss": 2.0, "val_loss": float("inf")}], None, None)
    assert view.status.text() == "1 epochs · loss 2 · val loss inf"


def test_comparing_with_a_run_that_holds_nulls(view):
    view.start_run("9", "multiclass")
    runs = [("Run 1", [{"epoch": 1, "loss": 1.0, "val_loss": None, "val_accuracy": 0.5},
                       {"epoch": 2, "loss": 0.8, "val_loss": 0.7, "val_accuracy": None}])]
    view.overlay(runs)
    assert "Run 1" in view.legend_names("loss") and "Run 1" in view.legend_names("metric")
    loss_items = [item for plot, item in view._overlay_items if plot is view.loss_plot]
    assert list(loss_items[0].getOriginalDataset()[1]) == [0.7]
