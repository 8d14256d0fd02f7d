"""The designer's main window as the tests drive it: the digits MLP open, shown, nothing unsaved."""
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from designer import theme
from designer.document import Document
from designer.gc_guard import GuiThreadCollector
from designer.main_window import MainWindow
from engine.graph import Graph, build, layered_layout


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_on_the_gui_thread(qapp):
    """As the app does (designer/gc_guard.py): threads beside the GUI never finalise Qt objects.
    Per module: stopping costs a full collection."""
    guard = GuiThreadCollector().start()
    yield
    guard.stop()


@pytest.fixture
def window(qtbot, tmp_path):
    theme.apply(QApplication.instance(), dark=True)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(Document(), settings)
    win.document.new_from_template("digits_mlp")
    qtbot.addWidget(win)
    win.resize(1300, 850)
    win.show()
    qtbot.waitExposed(win)
    win.document.undo_stack.setClean()
    real_maybe_save = win.maybe_save
    win.maybe_save = lambda: True  # pytest-qt closes the window before fixtures end: no modal prompt then
    win.real_maybe_save = real_maybe_save
    yield win
    win.training.session.shutdown()    # never leave a training process behind
    QApplication.clipboard().clear()  # offscreen Qt crashes at exit if the clipboard still holds our data


@pytest.fixture
def residual_cnn() -> Graph:
    """A small residual CNN laid out left to right, its residual block (conv_a, conv_b, residual: a
    skip wire from stem) made of plain blocks, not a module."""
    conv = {"filters": 16, "kernel_size": 3, "padding": "same"}
    layers = [("image", "Input", {"shape": [1, 8, 8]}), ("stem", "Conv2d", dict(conv, activation="relu")),
              ("conv_a", "Conv2d", dict(conv, activation="relu")), ("conv_b", "Conv2d", conv),
              ("residual", "Add", {}), ("relu", "Activation", {"function": "relu"}),
              ("pool", "GlobalAvgPool", {}), ("dense", "Linear", {"units": 10}), ("output", "Output", {})]
    names = [row[0] for row in layers]
    graph = build("residual_cnn", layers, list(zip(names, names[1:])) + [("stem", "residual")])
    for node, pos in layered_layout(graph, 280.0, 140.0, wrap=False).items():   # one row: the skip wire's lane
        graph.move(node, pos)
    return graph
