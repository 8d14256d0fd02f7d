"""The results view: test metrics as engine.training.evaluate(detail=True) reports them."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from designer import theme
from designer.results import HINT, MAX_SAMPLES, ResultsView, thumbnail


@pytest.fixture
def view(qtbot):
    theme.apply(QApplication.instance(), dark=True)
    widget = ResultsView()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


MATRIX = [[5, 1, 0], [2, 7, 1], [0, 0, 9]]
NAMES = ["cat", "dog", "bird"]


def classification_metrics(matrix=MATRIX):
    m = np.array(matrix)
    tp = np.diag(m)
    return {"loss": 0.4321, "accuracy": float(tp.sum() / m.sum()), "confusion_matrix": matrix,
            "precision": (tp / m.sum(0).clip(1)).tolist(), "recall": (tp / m.sum(1).clip(1)).tolist()}


def test_starts_with_a_hint_and_clear_returns_to_it(view):
    assert view.stack.currentWidget() is view.hint and view.hint.text() == HINT
    assert view.headline() == "" and view.sample_labels() == []
    view.show_results("multiclass", classification_metrics(), NAMES)
    assert view.stack.currentWidget() is view.scroll
    view.clear()
    assert view.stack.currentWidget() is view.hint and view.hint.text() == HINT
    assert view.headline() == "" and view.confusion_cell(0, 0) is None     # no numbers of the old run left


def test_confusion_matrix_cells_and_labels(view):
    metrics = classification_metrics()
    view.show_results("multiclass", metrics, NAMES)
    for r, row in enumerate(MATRIX):
        for c, count in enumerate(row):
            assert view.confusion_cell(r, c) == count
    # rows are the true classes, columns the predicted ones, both named; recall and precision alongside
    headers = [view.table.horizontalHeaderItem(i).text() for i in range(view.table.columnCount())]
    rows = [view.table.verticalHeaderItem(i).text() for i in range(view.table.rowCount())]
    assert headers == NAMES + ["recall"] and rows == NAMES + ["precision"]
    assert view.table.item(1, 3).text() == "70%"          # recall of dog: 7 of 10
    assert view.table.item(3, 0).text() == "71%"          # precision of cat: 5 of 7
    assert "predicted" in view.matrix_title.text() and "true" in view.matrix_title.text()
    # the diagonal is drawn in another colour than the mistakes
    assert view.table.item(0, 0).background().color() != view.table.item(1, 0).background().color()
    assert view.table.isVisible() and not view.scatter.isVisible()
    # the whole 3x3 matrix is visible without scrolling
    assert not view.table.verticalScrollBar().isVisible() and not view.table.horizontalScrollBar().isVisible()
    head = view.headline()
    assert "accuracy" in head.lower() and "84.00%" in head and "0.4321" in head
    assert "25 test samples, 4 misclassified" in view.detail_label.text()


def test_binary_without_class_names_uses_indices(view):
    view.show_results("binary", classification_metrics([[40, 2], [3, 55]]), None)
    assert [view.table.horizontalHeaderItem(i).text() for i in range(2)] == ["0", "1"]
    assert view.confusion_cell(1, 0) == 3 and "95.00%" in view.headline()


def test_samples_list_the_misclassified_first_marked_in_red(view):
    rng = np.random.default_rng(0)
    x = rng.random((30, 1, 8, 8)).astype(np.float32)
    y_true = np.array([i % 3 for i in range(30)])
    y_pred = y_true.copy()
    wrong = [4, 11, 25]
    y_pred[wrong] = (y_true[wrong] + 1) % 3
    view.show_results("multiclass", classification_metrics(), NAMES, {"x": x, "y_true": y_true, "y_pred": y_pred})
    labels = view.sample_labels()
    assert len(labels) == MAX_SAMPLES
    expected_wrong = [f"{NAMES[y_pred[i]]}\n(true: {NAMES[y_true[i]]})" for i in wrong]
    assert labels[:3] == expected_wrong
    assert labels[3:6] == [NAMES[y_true[i]] for i in (0, 1, 2)]        # then the correct ones, in order
    assert all("true" not in label for label in labels[3:])
    tiles = [view.samples_grid.itemAt(i).widget() for i in range(view.samples_grid.count())]
    red = theme.colours()["error"]
    assert all(red in tile.styleSheet() for tile in tiles[:3]) and not any(red in t.styleSheet() for t in tiles[3:])
    assert "3 misclassified" in view.samples_title.text()
    # showing other results replaces the tiles
    view.show_results("multiclass", classification_metrics(), NAMES,
                      {"x": x[:5, 0], "y_true": y_true[:5], "y_pred": y_true[:5]})   # (N, H, W), all right
    QApplication.processEvents()
    assert view.sample_labels() == [NAMES[y] for y in y_true[:5]] and view.samples_grid.count() == 5


def test_non_image_samples_show_no_thumbnails(view):
    view.show_results("binary", classification_metrics([[4, 1], [0, 5]]), ["no", "yes"],
                      {"x": np.zeros((10, 30)), "y_true": np.zeros(10), "y_pred": np.ones(10)})
    assert view.sample_labels() == [] and view.samples_grid.count() == 0


def test_thumbnail_handles_grey_and_colour_images():
    assert not thumbnail(np.arange(64.0).reshape(8, 8)).isNull()
    colour = thumbnail(np.random.default_rng(0).random((3, 16, 16)))
    assert colour.width() == colour.height() == 72
    flat = thumbnail(np.ones((1, 28, 28)))                   # a constant image does not divide by zero
    assert not flat.isNull()


def test_regression_headline_and_scatter(view):
    rng = np.random.default_rng(1)
    y_true = rng.normal(0, 1, (50, 1))
    y_pred = y_true + rng.normal(0, 0.1, (50, 1))
    view.show_results("regression", {"loss": 0.0104, "mae": 0.0812, "mse": 0.0104, "r2": 0.9876}, None,
                      {"y_true": y_true, "y_pred": y_pred})
    head = view.headline()
    assert "R²" in head and "0.9876" in head and "MAE 0.0812" in head and "MSE 0.0104" in head
    assert view.scatter.isVisible() and not view.table.isVisible()
    x, y = view.scatter_data()
    assert np.allclose(x, y_true.ravel()) and np.allclose(y, y_pred.ravel())
    lx, ly = view.identity_line.getData()
    assert np.array_equal(lx, ly) and lx[0] < min(x.min(), y.min()) and lx[-1] > max(x.max(), y.max())
    assert view.sample_labels() == []


def test_no_test_split_says_so(view):
    view.show_results("multiclass", {}, NAMES)
    assert view.stack.currentWidget() is view.hint and "test split" in view.hint.text()


def test_metrics_that_are_not_finite_show_as_such(view):
    """Live: inf / nan as the engine computed them; reopened: null in the file, "not finite" here."""
    view.show_results("regression", {"loss": float("inf"), "mae": 1.5e36, "mse": float("inf"), "r2": float("nan")},
                      None, {"y_true": np.array([1.0, 2.0, 1e38]), "y_pred": np.array([1.1, 1.9, 3.0])})
    assert view.headline() == "Test MAE 1.500e+36 · MSE inf · R² nan"
    x, _ = view.scatter_data()
    assert len(x) == 3 and np.isfinite(x).all()
    view.show_results("regression", {"loss": None, "mae": 2.0, "mse": None, "r2": None}, None, None)
    assert view.headline() == "Test MAE 2 · MSE not finite · R² not finite"
    metrics = classification_metrics()
    metrics.update(loss=None, accuracy=None)
    metrics["precision"][1] = None
    view.show_results("multiclass", metrics, NAMES)
    assert view.headline() == "Test accuracy not finite · loss not finite"
    assert view.table.item(3, 1).text() == "not finite"          # the precision row
    assert view.confusion_cell(1, 1) == 7
