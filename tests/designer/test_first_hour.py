"""The first hour (issue #14): every gesture lands where the eye expects. Driven as a user would:
keys, drops and shortcuts on the real window."""
import pytest
from PySide6.QtCore import QMimeData, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTabBar

from designer.canvas.items import NODE_WIDTH
from designer.canvas.view import READABLE_ZOOM
from designer.document import Document
from designer.main_window import MainWindow
from designer.mime import BLOCK_MIME


def node(window, name):
    return window.document.graph.find(name)


def drop_block(window, type_name: str, scene_point: QPointF):
    mime = QMimeData()
    mime.setData(BLOCK_MIME, type_name.encode())
    pos = QPointF(window.view.mapFromScene(scene_point))
    for event in (QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
                  QDragMoveEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
                  QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)):
        QApplication.sendEvent(window.view.viewport(), event)


def rects(window, ids=None):
    items = window.scene.node_items
    return {n: items[n].sceneBoundingRect() for n in (ids if ids is not None else items)}


def overlapping(window) -> list[tuple[str, str]]:
    """Pairs of blocks whose boxes touch or overlap."""
    found = rects(window)
    names = {n: window.document.graph.node(n).name for n in found}
    keys = sorted(found)
    return [(names[a], names[b]) for i, a in enumerate(keys) for b in keys[i + 1:]
            if found[a].intersects(found[b])]


def visible(window) -> QRectF:
    return window.view.mapToScene(window.view.viewport().rect()).boundingRect()


def all_in_view(window) -> bool:
    shown = visible(window)
    return all(shown.contains(r) for r in rects(window).values())


def settle(qtbot, window):
    """Let the fit that follows an open or a resize happen."""
    for _ in range(3):
        qtbot.wait(30)
        QApplication.processEvents()


def press(window, key, modifiers=Qt.NoModifier, widget=None):
    """A key on the canvas of the active window (shortcuts go to the active window only)."""
    window.activateWindow()
    for _ in range(50):
        if QApplication.activeWindow() is window:
            break
        QTest.qWait(10)
    QTest.keyClick(widget or window.view, key, modifiers)


# ----------------------------------------------------------------------------- 3. quick add beside

def quick_add(window, qtbot, text: str):
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Tab)
    assert window.quick_add.isVisible()
    QTest.keyClicks(window.quick_add.edit, text)
    QTest.keyClick(window.quick_add.edit, Qt.Key_Return)


def test_quick_add_with_a_block_selected_lands_beside_it_and_is_wired_from_it(window, qtbot):
    graph, stack = window.document.graph, window.document.undo_stack
    dense = node(window, "dense")
    window.scene.select_nodes([dense.id])
    before, steps = graph.to_dict(), stack.count()
    quick_add(window, qtbot, "Dropout")
    dropout = next(n for n in graph.nodes() if n.type == "Dropout")
    assert graph.inputs_of(dropout.id) == {0: dense.id}
    box, origin = rects(window, [dropout.id])[dropout.id], rects(window, [dense.id])[dense.id]
    assert box.left() > origin.right()                  # downstream, not on top of it
    assert abs(box.top() - origin.top()) < 400           # beside it
    assert overlapping(window) == []                     # dense_1 sits right of dense: it went elsewhere
    assert visible(window).contains(box)
    assert window.scene.selected_node_ids() == [dropout.id]
    assert stack.count() == steps + 1
    stack.undo()
    assert graph.to_dict() == before


def test_quick_add_of_a_block_that_cannot_take_the_shape_lands_beside_it_unwired(window, qtbot):
    graph = window.document.graph
    messages = []
    window.scene.message.connect(messages.append)
    dense_1 = node(window, "dense_1")                   # gives (10,): a Conv2d needs an image
    window.scene.select_nodes([dense_1.id])
    quick_add(window, qtbot, "Conv2d")
    conv = next(n for n in graph.nodes() if n.type == "Conv2d")
    assert graph.inputs_of(conv.id) == {}
    assert rects(window, [conv.id])[conv.id].left() > rects(window, [dense_1.id])[dense_1.id].right()
    assert overlapping(window) == []
    assert any("Conv2d cannot take" in m for m in messages)


def test_adding_from_the_palette_with_a_block_selected_lands_beside_it_too(window, qtbot):
    graph = window.document.graph
    dense_1 = node(window, "dense_1")
    window.scene.select_nodes([dense_1.id])
    QTest.keyClicks(window.palette_widget.search, "Dropout")
    QTest.keyClick(window.palette_widget.search, Qt.Key_Return)
    dropout = next(n for n in graph.nodes() if n.type == "Dropout")
    assert graph.inputs_of(dropout.id) == {0: dense_1.id}
    assert rects(window, [dropout.id])[dropout.id].left() > rects(window, [dense_1.id])[dense_1.id].right()
    assert overlapping(window) == []


def test_quick_add_with_nothing_selected_does_not_cover_the_block_under_the_cursor(window, qtbot):
    graph = window.document.graph
    window.scene.clearSelection()
    centre = window.view.centre_scene_pos()
    assert any(r.contains(centre) for r in rects(window).values())   # the view is centred on a block
    quick_add(window, qtbot, "Dropout")
    dropout = next(n for n in graph.nodes() if n.type == "Dropout")
    assert overlapping(window) == []
    assert abs(graph.node(dropout.id).pos[0] + NODE_WIDTH / 2 - centre.x()) < 2   # straight above or below it
    assert visible(window).contains(rects(window, [dropout.id])[dropout.id])


# ----------------------------------------------------------------------------- 7. seeing the whole graph

def test_the_starter_opens_whole_and_readable_in_the_default_window(window, qtbot):
    window.resize(1440, 900)
    window.document.new_from_template("digits_mlp")
    settle(qtbot, window)
    assert window.view.zoom() >= READABLE_ZOOM - 1e-9
    assert all_in_view(window)                            # Input and Output both in view


def chain(blocks: int):
    """Input -> `blocks` Linear layers -> Output, laid out as the designer lays graphs out."""
    from engine.graph import build
    from engine.project import Project
    from engine.templates import layout

    graph = build("chain", [("input", "Input", {"shape": [8]}), *[(f"dense_{i}", "Linear", {"units": 8})
                                                                   for i in range(blocks)], ("output", "Output", {})])
    layout(graph)
    return Project(graph)


def test_a_graph_too_long_for_the_view_opens_readable_from_its_input(window, qtbot):
    window.document.replace(chain(40), None)             # even in rows of four, far taller than the view
    settle(qtbot, window)
    assert window.view.zoom() == pytest.approx(READABLE_ZOOM)
    assert window.scene.node_items[node(window, "input").id].face.isVisible()
    assert visible(window).contains(rects(window, [node(window, "input").id]).popitem()[1])
    qtbot.waitUntil(window.view.minimap.isVisible, timeout=2000)   # the rest: a scroll away, and in the overview


def test_fit_all_keeps_names_readable_then_home_again_shows_everything(window, qtbot):
    window.document.replace(chain(40), None)
    settle(qtbot, window)
    window.view.zoom_by(3.0)
    messages = []
    window.view.message.connect(messages.append)
    press(window, Qt.Key_Home)
    assert window.view.zoom() == pytest.approx(READABLE_ZOOM) and not all_in_view(window)
    assert messages and "Home again" in messages[-1]
    press(window, Qt.Key_Home)
    assert all_in_view(window) and window.view.zoom() < READABLE_ZOOM


def test_arrange_refits_the_view(window, qtbot):
    window.resize(1440, 900)
    graph = window.document.graph
    for i, n in enumerate(graph.nodes()):
        graph.move(n.id, (i * 1500.0, (i % 2) * 1200.0))
    window.view.set_zoom(1.0)
    window.view.centerOn(0, 0)
    assert not all_in_view(window)
    press(window, Qt.Key_L, Qt.ControlModifier)
    assert overlapping(window) == []
    assert all_in_view(window) and window.view.zoom() >= READABLE_ZOOM


def test_side_panels_collapse_to_give_the_canvas_room_and_stay_so_next_time(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(Document(), settings)
    qtbot.addWidget(win)
    win.maybe_save = lambda: True
    win.document.replace(chain(4), None)                        # six blocks in one row
    win.resize(1440, 900)
    win.show()
    qtbot.waitExposed(win)
    settle(qtbot, win)
    narrow = win.view.viewport().width()
    assert not all_in_view(win)                                   # too long for the canvas beside the panels
    press(win, Qt.Key_B, Qt.ControlModifier)
    settle(qtbot, win)
    assert win.palette_dock.isHidden() and win.inspector_dock.isHidden() and win.training_dock.isHidden()
    assert win.view.viewport().width() > narrow + 400
    assert all_in_view(win) and win.view.zoom() >= READABLE_ZOOM  # the view refits into the room
    assert not win.act_side_panels.isChecked()
    short = win.view.viewport().height()
    press(win, Qt.Key_J, Qt.ControlModifier)                      # and the bottom panel
    settle(qtbot, win)
    assert win.bottom_dock.isHidden() and win.view.viewport().height() > short + 100
    press(win, Qt.Key_J, Qt.ControlModifier)
    assert not win.bottom_dock.isHidden()
    win.close()
    win.training.session.shutdown()

    again = MainWindow(Document(), settings)
    qtbot.addWidget(again)
    again.maybe_save = lambda: True
    again.show()
    qtbot.waitExposed(again)
    assert again.palette_dock.isHidden() and again.inspector_dock.isHidden()
    press(again, Qt.Key_B, Qt.ControlModifier)
    assert not again.palette_dock.isHidden() and not again.inspector_dock.isHidden()
    assert again.act_side_panels.isChecked()
    again.training.session.shutdown()


# ----------------------------------------------------------------------------- 8. blocks land clear

def test_a_block_dropped_on_a_wire_makes_room_for_itself(window, qtbot):
    graph, stack = window.document.graph, window.document.undo_stack
    dense, dense_1 = node(window, "dense"), node(window, "dense_1")
    before, steps = graph.to_dict(), stack.count()
    wire = window.scene.edge_items[(dense.id, dense_1.id, 0)]
    drop_block(window, "Dropout", wire.path().pointAtPercent(0.5))
    dropout = next(n for n in graph.nodes() if n.type == "Dropout")
    assert graph.inputs_of(dropout.id) == {0: dense.id} and graph.inputs_of(dense_1.id) == {0: dropout.id}
    assert overlapping(window) == []
    found = rects(window, [dense.id, dropout.id, dense_1.id])
    assert found[dense.id].right() < found[dropout.id].left() < found[dropout.id].right() < found[dense_1.id].left()
    assert graph.node(dropout.id).pos[1] == graph.node(dense.id).pos[1]    # the row stays straight
    xs = [n.pos[0] for n in sorted(graph.nodes(), key=lambda n: n.pos[0])]
    assert all(b - a >= NODE_WIDTH + 60 for a, b in zip(xs, xs[1:]))   # room for the wire labels
    assert stack.count() == steps + 1
    stack.undo()
    assert graph.to_dict() == before


def test_pasted_blocks_land_clear_of_the_originals_selected_and_in_view(window, qtbot):
    graph = window.document.graph
    ids = [node(window, "dense").id, node(window, "dense_1").id]
    window.scene.select_nodes(ids)
    window.view.setFocus()
    press(window, Qt.Key_C, Qt.ControlModifier)
    for count in (7, 9):
        press(window, Qt.Key_V, Qt.ControlModifier)
        assert len(graph) == count
        pasted = window.scene.selected_node_ids()
        assert len(pasted) == 2 and not set(pasted) & set(ids)
        assert overlapping(window) == []
        shown = visible(window)
        assert all(shown.contains(r) for r in rects(window, pasted).values())
    press(window, Qt.Key_D, Qt.ControlModifier)                  # duplicate the copies just pasted
    assert len(graph) == 11 and overlapping(window) == []


# ----------------------------------------------------------------------------- 10. smaller habits

def test_ctrl_y_redoes(window, qtbot):
    graph, stack = window.document.graph, window.document.undo_stack
    window.scene.add_block("Dropout", window.view.centre_scene_pos())
    assert len(graph) == 6
    press(window, Qt.Key_Z, Qt.ControlModifier)
    assert len(graph) == 5
    press(window, Qt.Key_Y, Qt.ControlModifier)
    assert len(graph) == 6
    stack.undo()
    press(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert len(graph) == 6


def front_tab(window) -> str:
    bar = next(b for b in window.findChildren(QTabBar) if "Inspector" in [b.tabText(i) for i in range(b.count())])
    return bar.tabText(bar.currentIndex())


def test_selecting_a_block_while_training_is_in_front_shows_the_inspector(window, qtbot):
    press(window, Qt.Key_T, Qt.ControlModifier)                  # the Training panel
    qtbot.waitUntil(lambda: front_tab(window) == "Training", timeout=2000)
    dense = window.scene.node_items[node(window, "dense").id]
    QTest.mouseClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier,
                     window.view.mapFromScene(dense.sceneBoundingRect().center() + QPointF(0, 12)))
    assert window.scene.selected_node_ids() == [dense.node_id]
    qtbot.waitUntil(lambda: front_tab(window) == "Inspector", timeout=2000)
    assert window.inspector.editor("units") is not None and window.inspector.editor("units").isVisible()


def test_the_code_tab_keeps_showing_code_through_a_stray_block_and_an_error(window, qtbot):
    graph, stack = window.document.graph, window.document.undo_stack
    window.bottom_tabs.setCurrentWidget(window.code)
    window.document.refresh()
    good = window.code.toPlainText()
    assert "nn.Linear(64, 64)" in good and window.code.note == ""
    # a stray block, wired to nothing: the code of the model is still there, with a word about it
    window.scene.add_block("Dropout", window.view.centre_scene_pos() + QPointF(0, 300))
    window.document.refresh()
    assert window.code.toPlainText() == good
    assert "dropout" in window.code.note and window.code.banner.isVisible()
    stack.undo()
    window.document.refresh()
    assert window.code.note == "" and not window.code.banner.isVisible()
    # an error in the model itself: the last good code, marked out of date
    from designer.commands import SetParams
    stack.push(SetParams(graph, node(window, "dense").id, {"units": 0}))
    window.document.refresh()
    assert window.code.toPlainText() == good and "Out of date" in window.code.note
    # another graph: the old graph's code is not shown for it
    window.document.new_from_template("sequence_lstm")
    stack.push(SetParams(window.document.graph, window.document.graph.find("lstm").id, {"hidden_size": 0}))
    window.document.refresh()
    assert "nn.Linear(64, 64)" not in window.code.toPlainText()


# ----------------------------------------------------------------------------- item 9: the status bar's count

def test_the_status_bar_counts_parameters_only_of_a_graph_it_can_count(qtbot, window):
    from designer.commands import AddNode

    label = window.status_params
    qtbot.waitUntil(lambda: label.text() == "4,810 parameters", timeout=3_000)    # the digits MLP
    whole = label.text()
    window.document.undo_stack.push(AddNode(window.document.graph, "Linear", (0.0, 400.0), None, "stray"))
    qtbot.waitUntil(lambda: "fix the errors" in label.text(), timeout=3_000)   # not a partial count
    window.document.undo_stack.undo()
    qtbot.waitUntil(lambda: label.text() == whole, timeout=3_000)


def test_a_graph_saved_as_json_names_the_dataset_picked_for_it(qtbot, window, tmp_path):
    from engine.project import read_graph

    window.document.project.dataset = "digits_images"
    path = window.document.save(tmp_path / "net.json")
    assert read_graph(path).dataset == "digits_images"


def test_the_training_panel_fits_its_dock_at_the_default_size_without_a_sideways_scroll(qtbot, window):
    """A long dataset entry made the panel wider than its dock: fields were cut at the right edge."""
    from PySide6.QtWidgets import QScrollArea

    window.resize(1440, 900)
    window.training_dock.raise_()
    settle(qtbot, window)
    assert window.training.isVisible()
    scroll = window.training.findChild(QScrollArea)
    assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width(), (
        scroll.widget().minimumSizeHint().width(), scroll.viewport().width())
