"""Freezing and a new head on the canvas (#19): what a user sees and does."""
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QContextMenuEvent
from PySide6.QtWidgets import QApplication, QMenu

import designer.canvas.scene as scene_module
from designer import theme
from designer.canvas.items import SNOWFLAKE
from engine.project import Project
from engine.weights_load import fresh_state


def settle(window, qtbot):
    """Wait for the debounced analysis, as the eye would."""
    window.document.refresh()
    qtbot.wait(10)


def item(window, name):
    return window.scene.node_items[window.document.graph.find(name).id]


def body_colour(node_item) -> QColor:
    return node_item.brush().color()


class RecordingMenu(QMenu):
    shown: list = []

    def exec(self, *args):  # noqa: A003 (Qt name)
        RecordingMenu.shown = [a.text() for a in self.actions() if not a.isSeparator()]


def right_click(window, name, monkeypatch) -> list[str]:
    monkeypatch.setattr(scene_module, "QMenu", RecordingMenu)
    target = item(window, window.document.graph.find(name).name)
    point = window.view.mapFromScene(target.sceneBoundingRect().center())
    QApplication.sendEvent(window.view.viewport(),
                           QContextMenuEvent(QContextMenuEvent.Mouse, point, window.view.viewport().mapToGlobal(point)))
    return RecordingMenu.shown


def test_freeze_from_the_blocks_menu_makes_it_look_frozen_and_undo_thaws_it(window, qtbot, monkeypatch):
    dense, head = item(window, "dense"), item(window, "dense_1")
    trainable_body = body_colour(dense)
    assert not dense.frozen and not dense.face.title.text().startswith(SNOWFLAKE)

    shown = right_click(window, "dense", monkeypatch)
    assert "&Freeze" in shown and "U&nfreeze" not in shown          # only what applies is offered
    assert "New &Head for This Dataset" in shown
    window.finetune.act_freeze.trigger()

    graph = window.document.graph
    assert graph.find("dense").params["trainable"] is False
    assert dense.frozen and dense.face.title.text() == f"{SNOWFLAKE} dense"    # at once, before any analysis
    assert body_colour(dense) != trainable_body
    assert body_colour(dense).blue() > body_colour(head).blue()        # cooler than its trainable neighbour
    assert "Frozen dense" in window.statusBar().currentMessage()
    assert window.document.undo_stack.undoText() == "freeze dense"

    shown = right_click(window, "dense", monkeypatch)
    assert "U&nfreeze" in shown and "&Freeze" not in shown

    window.document.undo_stack.undo()
    assert graph.find("dense").params["trainable"] is True
    assert not dense.frozen and dense.face.title.text() == "dense"
    assert body_colour(dense) == trainable_body
    window.document.undo_stack.redo()
    assert dense.frozen


def test_freezing_in_the_inspector_changes_the_look_too(window, qtbot):
    from designer.commands import SetParams

    graph = window.document.graph
    window.document.undo_stack.push(SetParams(graph, graph.find("dense_1").id, {"trainable": False}))
    assert item(window, "dense_1").frozen
    settle(window, qtbot)
    count = window.document.analysis.param_counts[window.document.graph.find("dense_1").id]
    assert item(window, "dense_1").face.info.text().endswith(f"{count:,} frozen")


def test_freeze_everything_before_the_head_is_one_step(window, qtbot, residual_cnn, monkeypatch):
    window.document.replace(Project(residual_cnn), None)
    graph, scene = window.document.graph, window.scene
    scene.select_nodes([graph.find("dense").id])
    assert window.finetune.act_freeze_before.isEnabled()
    assert "Freeze Everything &Before This Block" in right_click(window, "dense", monkeypatch)

    window.finetune.act_freeze_before.trigger()

    frozen = sorted(n.name for n in graph.nodes() if n.params.get("trainable") is False)
    assert frozen == ["conv_a", "conv_b", "stem"]                    # the backbone; the head still trains
    assert all(scene.node_items[graph.find(n).id].frozen for n in frozen)
    assert not scene.node_items[graph.find("dense").id].frozen
    assert window.document.undo_stack.undoText() == "freeze everything before dense"
    window.document.undo_stack.undo()
    assert not any(n.params.get("trainable") is False for n in graph.nodes())


def test_counts_show_trainable_and_frozen_apart(window, qtbot):
    graph = window.document.graph
    window.scene.select_nodes([graph.find("dense").id])
    settle(window, qtbot)
    total = window.document.analysis.total_params
    assert window.status_params.text() == f"{total:,} parameters"
    dense_count = window.document.analysis.param_counts[graph.find("dense").id]

    window.finetune.act_freeze.trigger()
    settle(window, qtbot)

    assert window.status_params.text() == (f"{total:,} parameters ({total - dense_count:,} trainable, "
                                           f"{dense_count:,} frozen)")
    assert window.inspector.params_label.text() == f"{dense_count:,}, all frozen"
    window.scene.select_nodes([graph.find("dense").id, graph.find("dense_1").id])
    settle(window, qtbot)
    assert window.inspector.params_label.text() == (f"{total:,}  ({total - dense_count:,} trainable, "
                                                    f"{dense_count:,} frozen)")


def test_far_out_and_in_the_light_theme_a_frozen_block_still_stands_out(window, qtbot):
    graph = window.document.graph
    window.scene.set_trainable([graph.find("dense").id], False)
    dense, head = item(window, "dense"), item(window, "dense_1")
    window.scene.set_detail(False)                  # the level of detail far out: plain tinted boxes
    assert not dense.face.isVisible()
    assert body_colour(dense) != body_colour(head)
    window.scene.set_detail(True)
    theme.apply(QApplication.instance(), dark=False)
    try:
        window.scene.rebuild()
        dense, head = item(window, "dense"), item(window, "dense_1")
        assert dense.frozen and body_colour(dense) != body_colour(head)
        assert body_colour(dense).blue() > body_colour(dense).red()
    finally:
        theme.apply(QApplication.instance(), dark=True)


def test_data_with_other_classes_offers_a_new_head_and_it_keeps_the_other_weights(window, qtbot):
    document = window.document
    graph = document.graph
    document.set_weights(fresh_state(graph, seed=3))
    before = document.project.weights
    window.training.set_dataset("iris")       # 3 classes; digits_mlp ends in 10 units (and takes 64 features)
    settle(window, qtbot)
    problems = window.problems
    assert problems.data_box.isVisibleTo(window) and "3 classes" in problems.data_label.text()
    assert problems.data_fix.isVisibleTo(window) and problems.data_fix.text() == "Quick fix: Set 'dense_1' to 3 units"

    qtbot.mouseClick(problems.data_fix, Qt.LeftButton)
    settle(window, qtbot)

    assert graph.find("dense_1").params["units"] == 3
    assert graph.find("dense").params["units"] == 64
    weights = document.project.weights
    assert weights["dense_1.weight"].shape == (3, 64)
    assert weights["dense.weight"] is before["dense.weight"]          # the backbone's weights are kept
    assert "3 units for 3 classes" in window.statusBar().currentMessage()
    assert not any("classes" in p for p in window.training.fit_problems())
    assert not problems.data_fix.isVisibleTo(window)    # the head fits (the input's 64 features still do not)

    document.undo_stack.undo()                         # one step: units and weights together
    assert graph.find("dense_1").params["units"] == 10
    assert document.project.weights is before


def test_new_head_says_why_not(window, qtbot, residual_cnn):
    window.document.replace(Project(residual_cnn), None)
    graph = window.document.graph
    pool, out = graph.find("pool").id, graph.find("output").id
    from designer.commands import Connect, RemoveNodes
    stack = window.document.undo_stack
    stack.push(RemoveNodes(graph, [graph.find("dense").id]))
    stack.push(Connect(graph, pool, out, 0))
    settle(window, qtbot)
    depth = stack.count()

    window.finetune.act_new_head.trigger()

    assert stack.count() == depth
    assert window.statusBar().currentMessage().startswith(
        "No new head: the output comes from GlobalAvgPool 'pool', not a Linear")


def test_freeze_with_nothing_to_freeze_says_so(window, qtbot):
    graph = window.document.graph
    window.scene.select_nodes([graph.find("output").id])
    assert not window.finetune.act_freeze.isEnabled() and not window.finetune.act_unfreeze.isEnabled()
    assert window.scene.freeze_selection() == 0
    assert window.statusBar().currentMessage() == "Nothing to freeze: no selected block holds weights."
