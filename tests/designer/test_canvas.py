"""The designer driven as a user would: real mouse, key and drop events on the real widgets."""
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsPathItem

from designer import theme
from designer.canvas.interactions import MoveBlocks, WireDrag
from designer.document import Document
from designer.main_window import MainWindow
from designer.mime import BLOCK_MIME
from engine.graph import build
from engine.templates import template_names


def graph_state(graph):
    return graph.to_dict()


def vp(window, scene_point):
    return window.view.mapFromScene(scene_point)


def drag(qtbot, window, start: QPointF, end: QPointF):
    viewport = window.view.viewport()
    a, b = vp(window, start), vp(window, end)
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, a)
    for i in range(1, 6):
        QTest.mouseMove(viewport, a + (b - a) * i / 5)
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, b)


def drop_block(window, type_name: str, scene_point: QPointF):
    mime = QMimeData()
    mime.setData(BLOCK_MIME, type_name.encode())
    viewport = window.view.viewport()
    pos = QPointF(vp(window, scene_point))
    for event in (QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
                  QDragMoveEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
                  QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)):
        QApplication.sendEvent(viewport, event)


def node(window, name):
    return window.document.graph.find(name)


def test_palette_drop_adds_a_block_where_it_lands_and_undo_removes_it(window, qtbot):
    before = graph_state(window.document.graph)
    centre = window.view.centre_scene_pos()
    item = window.palette_widget.item_for("Conv2d")
    mime = window.palette_widget.tree.mimeData([item])
    assert bytes(mime.data(BLOCK_MIME)).decode() == "Conv2d"
    drop_block(window, "Conv2d", centre)
    added = [n for n in window.document.graph.nodes() if n.type == "Conv2d"]
    assert len(added) == 1
    assert abs(added[0].pos[0] + 95 - centre.x()) < 25 and abs(added[0].pos[1] + 20 - centre.y()) < 25
    assert window.document.modified and "•" in window.windowTitle()
    window.document.undo_stack.undo()
    assert graph_state(window.document.graph) == before


def test_connect_two_ports_by_dragging_and_refuse_a_cycle(window, qtbot):
    graph = window.document.graph
    dense = node(window, "dense")
    dense_1 = node(window, "dense_1")
    window.scene.stack.push(__import__("designer.commands", fromlist=["Disconnect"]).Disconnect(
        graph, next(e for e in graph.edges() if e.dst == dense_1.id)))
    assert graph.inputs_of(dense_1.id) == {}
    src = window.scene.node_items[dense.id].output
    dst = window.scene.node_items[dense_1.id].inputs[0]
    drag(qtbot, window, src.scenePos(), dst.scenePos())
    assert graph.inputs_of(dense_1.id) == {0: dense.id}
    # dragging dense_1's output back into dense's input would make a cycle: refused with a reason
    messages = []
    window.scene.message.connect(messages.append)
    edges_before = len(graph.edges())
    drag(qtbot, window, window.scene.node_items[dense_1.id].output.scenePos(),
         window.scene.node_items[dense.id].inputs[0].scenePos())
    assert len(graph.edges()) == edges_before
    assert any("cycle" in m for m in messages)


def test_delete_key_removes_selection_and_undo_restores_exactly(window, qtbot):
    before = graph_state(window.document.graph)
    window.scene.select_nodes([node(window, "dense").id])
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Delete)
    assert node(window, "dense") is None
    assert all(e.src != "dense" for e in window.document.graph.edges())
    window.document.undo_stack.undo()
    assert graph_state(window.document.graph) == before
    window.document.undo_stack.redo()
    assert node(window, "dense") is None


def test_every_edit_kind_undoes_to_the_exact_graph(window, qtbot):
    from designer.commands import AddNode, Connect, MoveNodes, Rename, SetParams
    graph, stack = window.document.graph, window.document.undo_stack
    states = [graph_state(graph)]
    dense = node(window, "dense").id
    stack.push(SetParams(graph, dense, {"units": 32}))
    states.append(graph_state(graph))
    stack.push(Rename(graph, dense, "hidden"))
    states.append(graph_state(graph))
    stack.push(MoveNodes(graph, {dense: (graph.node(dense).pos, (500.0, 300.0))}))
    states.append(graph_state(graph))
    add = AddNode(graph, "Dropout", (100.0, 100.0))
    stack.push(add)
    states.append(graph_state(graph))
    stack.push(Connect(graph, node(window, "input").id, add.node_id, 0))
    states.append(graph_state(graph))
    window.scene.arrange()
    states.append(graph_state(graph))
    window.scene.select_nodes([dense])
    window.scene.delete_selection()
    states.append(graph_state(graph))
    for expected in reversed(states[:-1]):
        stack.undo()
        assert graph_state(graph) == expected
    for expected in states[1:]:
        stack.redo()
        assert graph_state(graph) == expected


def test_a_mouse_drag_of_a_node_is_one_undo_step(window, qtbot):
    graph = window.document.graph
    dense = node(window, "dense")
    item = window.scene.node_items[dense.id]
    start = item.sceneBoundingRect().center()
    count = window.document.undo_stack.count()
    top = item.sceneBoundingRect().top()
    drag(qtbot, window, QPointF(start.x(), top + 12), QPointF(start.x() + 120, top + 72))
    assert window.document.undo_stack.count() == count + 1
    assert abs(graph.node(dense.id).pos[0] - item.pos().x()) < 1e-6
    window.document.undo_stack.undo()
    assert item.pos().x() == graph.node(dense.id).pos[0]


def test_escape_cancels_a_wire_drag_and_leaves_graph_and_undo_stack_unchanged(window, qtbot):
    graph, stack, scene = window.document.graph, window.document.undo_stack, window.scene
    before, count = graph_state(graph), stack.count()
    src = scene.node_items[node(window, "dense").id].output
    dst = scene.node_items[node(window, "dense_1").id].inputs[0]
    paths_before = sum(type(i) is QGraphicsPathItem for i in scene.items())
    viewport = window.view.viewport()
    a, b = vp(window, src.scenePos()), vp(window, dst.scenePos() + QPointF(0, 200))
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(viewport, (a + b) / 2)
    assert isinstance(scene.interaction, WireDrag)
    assert any(p.highlighted for i in scene.node_items.values() for p in i.inputs)
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Escape)
    assert scene.interaction is None
    QTest.mouseMove(viewport, b)
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, b)  # on empty canvas: no quick add
    assert not window.quick_add.isVisible()
    assert not any(p.highlighted for i in scene.node_items.values() for p in i.inputs)
    assert sum(type(i) is QGraphicsPathItem for i in scene.items()) == paths_before  # the dashed wire is gone
    assert graph_state(graph) == before and stack.count() == count


def test_escape_cancels_a_block_move_and_puts_the_block_back(window, qtbot):
    graph, stack, scene = window.document.graph, window.document.undo_stack, window.scene
    before, count = graph_state(graph), stack.count()
    dense = node(window, "dense")
    item = scene.node_items[dense.id]
    start_pos = (item.pos().x(), item.pos().y())
    rect = item.sceneBoundingRect()
    viewport = window.view.viewport()
    a = vp(window, QPointF(rect.center().x(), rect.top() + 12))
    b = vp(window, QPointF(rect.center().x() + 120, rect.top() + 72))
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, a)
    for i in range(1, 4):
        QTest.mouseMove(viewport, a + (b - a) * i / 3)
    assert isinstance(scene.interaction, MoveBlocks)
    assert (item.pos().x(), item.pos().y()) != start_pos
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Escape)
    assert scene.interaction is None
    assert (item.pos().x(), item.pos().y()) == start_pos
    QTest.mouseMove(viewport, b + (b - a))  # the rest of the drag moves nothing
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, b + (b - a))
    assert (item.pos().x(), item.pos().y()) == start_pos
    assert graph_state(graph) == before and stack.count() == count


def test_copy_paste_keeps_internal_wires_and_makes_names_unique(window, qtbot):
    graph = window.document.graph
    ids = [node(window, "dense").id, node(window, "dense_1").id]
    window.scene.select_nodes(ids)
    window.copy()
    window.paste()
    names = sorted(n.name for n in graph.nodes())
    assert len(names) == len(set(names)) == 7
    pasted = window.scene.selected_node_ids()
    assert len(pasted) == 2
    assert any(e.src in pasted and e.dst in pasted for e in graph.edges())
    window.document.undo_stack.undo()
    assert len(graph) == 5


def test_quick_add_from_a_port_connects_the_new_block(window, qtbot):
    graph = window.document.graph
    dense_1 = node(window, "dense_1")
    out_port = window.scene.node_items[dense_1.id].output
    empty = out_port.scenePos() + QPointF(260, 220)
    drag(qtbot, window, out_port.scenePos(), empty)
    assert window.quick_add.isVisible()
    qtbot.keyClicks(window.quick_add.findChild(__import__("PySide6.QtWidgets", fromlist=["QLineEdit"]).QLineEdit),
                    "Dropout")
    QTest.keyClick(window.quick_add.findChild(__import__("PySide6.QtWidgets", fromlist=["QLineEdit"]).QLineEdit),
                   Qt.Key_Return)
    new = [n for n in graph.nodes() if n.type == "Dropout"]
    assert len(new) == 1 and graph.inputs_of(new[0].id) == {0: dense_1.id}


def test_problem_click_selects_its_node_and_mismatch_turns_the_wire_red(window, qtbot):
    graph = window.document.graph
    dense = node(window, "dense")
    window.inspector.set_selection([])
    drop_point = window.view.centre_scene_pos()
    edge = next(e for e in graph.edges() if e.dst == dense.id)
    from designer.commands import Connect, Disconnect
    stack = window.document.undo_stack
    conv = window.scene.add_block("Conv2d", drop_point)
    stack.push(Disconnect(graph, edge))
    stack.push(Connect(graph, edge.src, conv, 0))
    window.document.refresh()
    tree = window.problems.findChild(__import__("PySide6.QtWidgets", fromlist=["QTreeWidget"]).QTreeWidget)
    assert tree.topLevelItemCount() >= 1
    wire = window.scene.edge_items[(edge.src, conv, 0)]
    assert wire.bad
    rows = window.problems.node_ids()
    assert conv in rows and graph.find("dense").id in rows  # the Conv2d mismatch and the now unfed dense
    for row, node_id in enumerate(rows):
        window.scene.clearSelection()
        tree.itemClicked.emit(tree.topLevelItem(row), 0)
        assert window.scene.selected_node_ids() == [node_id]


def test_inspector_edit_changes_code_and_wire_shape(window, qtbot):
    graph = window.document.graph
    dense = node(window, "dense")
    window.bottom_tabs.setCurrentWidget(window.code)
    window.scene.select_nodes([dense.id])  # the inspector follows the canvas selection
    units = window.inspector.editor("units")
    units.setValue(48)
    units.editingFinished.emit()
    window.document.refresh()
    assert graph.node(dense.id).params["units"] == 48
    assert "nn.Linear(64, 48)" in window.code.toPlainText()
    wire = next(w for k, w in window.scene.edge_items.items() if k[0] == dense.id)
    assert wire.label.text() == "(48,)"


def test_arrange_lays_out_left_to_right(window, qtbot):
    graph = window.document.graph
    for n in graph.nodes():
        graph.move(n.id, (0.0, 0.0))
    window.scene.arrange()
    xs = [graph.node(n).pos[0] for n in __import__("networkx").topological_sort(graph.nx)]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_save_then_open_round_trip(window, qtbot, tmp_path):
    path = tmp_path / "model.deepwire"
    assert window._save_to(path)
    assert not window.document.modified and "•" not in window.windowTitle()
    before = graph_state(window.document.graph)
    window.document.new_from_template("image_cnn")
    assert window.open_path(path, ask=False)
    assert graph_state(window.document.graph) == before
    assert str(path.resolve()) in window.recent_files()


def test_a_bad_file_keeps_the_canvas(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    before = graph_state(window.document.graph)
    assert not window.open_path(bad, ask=False)
    assert shown and "not valid JSON" in shown[0]
    assert graph_state(window.document.graph) == before


@pytest.mark.parametrize("name", template_names())
def test_every_template_opens_clean(window, qtbot, name):
    window.document.new_from_template(name)
    assert window.document.analysis.diagnostics == []
    assert len(window.scene.node_items) == len(window.document.graph)
    assert len(window.scene.edge_items) == len(window.document.graph.edges())
    assert "Problems" == window.bottom_tabs.tabText(0)


def test_typing_on_the_canvas_opens_quick_add(window, qtbot):
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_L)
    assert window.quick_add.isVisible()
    window.quick_add.hide()
    QTest.keyClick(window.view, Qt.Key_Tab)
    assert window.quick_add.isVisible()
    window.quick_add.hide()


def test_document_from_a_built_graph_mirrors_it(qtbot, tmp_path):
    graph = build("m", [("input", "Input", {"shape": [4]}), ("dense", "Linear", {"units": 2}),
                        ("output", "Output", {})])
    win = MainWindow(Document(graph), QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(win)
    assert len(win.scene.node_items) == 3 and len(win.scene.edge_items) == 2


def test_closing_with_unsaved_changes_asks_first(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Cancel)
    window.scene.add_block("Dropout", window.view.centre_scene_pos())
    assert window.real_maybe_save() is False and asked and "Save the changes" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Discard)
    assert window.real_maybe_save() is True


def test_quick_fix_on_a_mismatched_wire_inserts_a_reshape(window, qtbot):
    from designer.commands import Connect, Disconnect
    window.document.new_from_template("fashion_mnist_mlp")
    graph, stack = window.document.graph, window.document.undo_stack
    flatten = graph.find("flatten")
    conv = window.scene.add_block("Conv2d", window.view.centre_scene_pos())
    dense = graph.find("dense")
    edge = next(e for e in graph.edges() if e.dst == dense.id)
    stack.push(Disconnect(graph, edge))
    stack.push(Connect(graph, flatten.id, conv, 0))
    window.document.refresh()
    from engine.graph import Edge
    fixes = window.scene.quick_fixes(Edge(flatten.id, conv, 0))
    labels = [f[0] for f in fixes]
    assert any(label.startswith("Insert Reshape: (784,) → (1, 28, 28) → (32, 26, 26)") for label in labels), labels
    before = stack.count()
    label, type_name, params = next(f for f in fixes if f[1] == "Reshape")
    window.scene.apply_fix(Edge(flatten.id, conv, 0), type_name, params, window.view.centre_scene_pos())
    window.document.refresh()
    assert stack.count() == before + 1
    assert not [d for d in window.document.analysis.for_node(conv) if d.severity == "error"]


def test_minimap_appears_for_a_graph_that_does_not_fit_and_moves_the_view(window, qtbot):
    window.view.resetTransform()
    window.view.fit_all()
    window.view.minimap.refresh()
    assert not window.view.minimap.isVisible()  # the small starter graph fits
    from designer.commands import AddNode
    for i in range(30):
        window.document.undo_stack.push(AddNode(window.document.graph, "Linear", (i * 300.0, 2000.0)))
    window.view.resetTransform()
    window.view.centerOn(0, 0)
    window.view.minimap.refresh()
    assert window.view.minimap.isVisible()
    minimap = window.view.minimap
    before = minimap.visible_rect()
    target = minimap.mapFromScene(QPointF(6000, 2000))
    QTest.mouseClick(minimap, Qt.LeftButton, Qt.NoModifier, target)
    after = minimap.visible_rect()
    assert after.center().x() > before.center().x() + 1000
    # the picture of the graph is drawn once; moving the view only moves the frame over it
    renders = minimap.renders
    window.view.centerOn(3000, 2000)
    window.view.zoom_by(1.25)
    QApplication.processEvents()
    minimap.repaint()
    assert minimap.renders == renders and minimap.isVisible()
    # a change to the graph draws it again, once the changes pause
    window.document.undo_stack.push(AddNode(window.document.graph, "Linear", (9300.0, 2000.0)))
    qtbot.waitUntil(lambda: minimap.renders == renders + 1, timeout=3000)
    assert minimap.content_rect().right() > 9300


def test_the_minimap_shows_the_blocks_in_their_colours(window, qtbot):
    from designer.commands import AddNode
    for i in range(30):
        window.document.undo_stack.push(AddNode(window.document.graph, "Conv2d", (i * 300.0, 2000.0)))
    window.view.resetTransform()
    window.view.centerOn(0, 0)
    minimap = window.view.minimap
    minimap.refresh()
    assert minimap.isVisible()
    image = minimap.grab().toImage()
    conv = QColor(theme.CATEGORY_COLOURS["Convolution"])
    found = sum(1 for x in range(image.width()) for y in range(image.height())
                if _close(image.pixelColor(x, y), conv))
    assert found >= 30  # a dot (at least) for each Conv2d


def test_new_offers_an_empty_canvas_and_the_templates(window, qtbot, monkeypatch):
    from designer.main_window import TemplateGallery
    gallery = TemplateGallery(window)
    qtbot.addWidget(gallery)
    assert gallery.list.count() == 1 + len(template_names())
    assert gallery.list.item(0).data(Qt.UserRole) == ""
    monkeypatch.setattr(TemplateGallery, "exec", lambda self: (self.list.setCurrentRow(0), self.accept(), 1)[2])
    window.new_from_gallery()
    assert len(window.document.graph) == 0 and not window.scene.node_items


def test_dropping_a_block_on_a_wire_inserts_it_into_the_wire(window, qtbot):
    graph = window.document.graph
    dense, dense_1 = node(window, "dense"), node(window, "dense_1")
    wire = window.scene.edge_items[(dense.id, dense_1.id, 0)]
    middle = wire.path().pointAtPercent(0.5)
    drop_block(window, "Dropout", middle)
    dropout = next(n for n in graph.nodes() if n.type == "Dropout")
    assert graph.inputs_of(dropout.id) == {0: dense.id} and graph.inputs_of(dense_1.id) == {0: dropout.id}
    window.document.undo_stack.undo()
    assert graph.inputs_of(dense_1.id) == {0: dense.id} and len(graph) == 5


def test_far_out_blocks_are_plain_boxes_and_fit_all_shows_a_long_graph(window, qtbot):
    from designer.canvas.view import READABLE_ZOOM
    from designer.commands import AddNode
    for i in range(60):
        window.document.undo_stack.push(AddNode(window.document.graph, "Linear", (i * 300.0, 0.0)))
    window.view.fit_all()                  # Home: as much as fits at a size the names can be read
    assert window.view.zoom() == pytest.approx(READABLE_ZOOM) and window.scene.detail
    window.view.fit_all()                  # Home again: all of it, however small
    visible = window.view.minimap.visible_rect()
    assert all(visible.contains(item.sceneBoundingRect()) for item in window.scene.node_items.values())
    item = next(iter(window.scene.node_items.values()))
    assert window.view.zoom() < 0.3 and not item.face.isVisible() and not window.scene.detail
    port = item.output.scenePos()
    assert window.scene.port_at(port) is None  # no wires are dragged from ports too small to see
    window.view.resetTransform()
    assert item.face.isVisible() and window.scene.detail
    assert window.scene.port_at(port) is item.output


def _close(a, b, tolerance=24):
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) <= tolerance


def test_a_block_is_two_items_and_its_ports_are_found_by_position(window, qtbot):
    scene = window.scene
    nodes, wires = len(scene.node_items), len(scene.edge_items)
    assert len(scene.items()) == 2 * nodes + 2 * wires  # body + face; curve + shape label
    dense = scene.node_items[node(window, "dense").id]
    out = dense.output.scenePos()
    assert scene.port_at(out + QPointF(7, -6)) is dense.output  # easier to hit than to see
    assert scene.port_at(out + QPointF(30, 0)) is None
    assert scene.port_at(dense.inputs[0].scenePos()) is dense.inputs[0]
    assert dense.output.toolTip() == "output" and dense.inputs[0].toolTip() == "in"  # as the block names it


def test_the_face_shows_name_type_and_shape(window, qtbot):
    dense = window.scene.node_items[node(window, "dense").id]
    face = dense.face
    assert face.title.text() == "dense"
    assert face.subtitle.text().startswith("Linear")
    assert face.info.text().startswith("→ (") and "params" in face.info.text()
    window.view.resetTransform()
    window.view.centerOn(dense)
    image = window.view.viewport().grab().toImage()
    rect = window.view.mapFromScene(dense.sceneBoundingRect()).boundingRect().intersected(image.rect())
    text = QColor(theme.colours()["text"])
    bright = sum(1 for x in range(rect.left(), rect.right()) for y in range(rect.top(), rect.bottom())
                 if _close(image.pixelColor(x, y), text, 60))
    assert bright > 40  # the texts are painted


def test_a_skip_wire_arcs_around_the_blocks_it_skips(window, qtbot, residual_cnn):
    from engine.project import Project
    window.document.replace(Project(residual_cnn), None)
    graph, scene = window.document.graph, window.scene
    stem, residual = graph.find("stem").id, graph.find("residual").id
    skip = next(w for k, w in scene.edge_items.items() if k[0] == stem and k[1] == residual)
    between = [scene.node_items[graph.find(n).id].sceneBoundingRect() for n in ("conv_a", "conv_b")]
    path = skip.path()
    points = [path.pointAtPercent(i / 100) for i in range(1, 100)]
    assert skip.routed and not any(r.contains(p) for r in between for p in points)
    assert points[0].y() != points[50].y()  # it leaves its lane to arc over or under
    plain = next(w for k, w in scene.edge_items.items() if k[0] == stem and k[1] != residual)
    assert not plain.routed
    # move the blocks in between out of the way: the wire straightens; undo: it bends again
    from designer.commands import MoveNodes
    moves = {graph.find(n).id: (graph.find(n).pos, (graph.find(n).pos[0], graph.find(n).pos[1] + 600))
             for n in ("conv_a", "conv_b")}
    window.document.undo_stack.push(MoveNodes(graph, moves))
    qtbot.waitUntil(lambda: not skip.routed, timeout=2000)  # re-routed once the moves are done
    window.document.undo_stack.undo()
    qtbot.waitUntil(lambda: skip.routed, timeout=2000)
    path = skip.path()
    assert not any(r.contains(path.pointAtPercent(i / 100)) for r in between for i in range(1, 100))


def test_an_edited_parameter_shows_on_the_block_face(window, qtbot):
    from designer.commands import SetParams
    dense = node(window, "dense_1")        # the last Linear: no activation yet
    face = window.scene.node_items[dense.id].face
    assert "relu" not in face.subtitle.text()
    window.document.undo_stack.push(SetParams(window.document.graph, [dense.id], {"activation": "relu"}))
    qtbot.waitUntil(lambda: "relu" in face.subtitle.text(), timeout=2_000)   # after the analysis it waits for


def test_no_minimap_over_a_graph_that_only_pokes_out_of_the_view(window, qtbot):
    minimap = window.view.minimap
    window.view.resetTransform()
    window.view.fit_all()
    content = minimap.content_rect()
    window.view.zoom_by(1.2)           # the graph now pokes out a little at both ends
    window.view.centerOn(content.center())
    minimap.refresh()
    assert not minimap.visible_rect().contains(content)
    assert not minimap.isVisible()     # it would only cover the blocks being worked on
    window.view.zoom_by(3.0)           # now the graph is much larger than the view
    minimap.refresh()
    assert minimap.isVisible()


def test_the_quick_add_popup_shrinks_as_the_search_narrows(window, qtbot):
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_I)
    popup = window.quick_add
    tall = popup.height()
    QTest.keyClicks(popup.edit, "nput")
    assert popup.list.count() == 1
    assert popup.height() < tall - 40      # no empty frame around a one-line list
    qtbot.waitUntil(lambda: popup.edit.geometry().top() < 12, timeout=1000)   # the field stays at the top
    popup.hide()


def test_toolbar_undo_keeps_its_label_and_names_the_step_in_its_tooltip(window, qtbot):
    from designer.commands import AddNode
    assert not window.tool_undo.isEnabled()
    window.document.undo_stack.push(AddNode(window.document.graph, "Linear", (0.0, 400.0)))
    assert window.tool_undo.isEnabled() and window.tool_undo.text() == "Undo"
    assert window.document.undo_stack.undoText() in window.tool_undo.toolTip()
    window.tool_undo.trigger()
    assert not window.tool_undo.isEnabled() and window.tool_redo.isEnabled()


def test_at_the_readable_zoom_every_block_shows_its_type_and_shape_lines(window, qtbot):
    """A fit stops at READABLE_ZOOM, which is the scale the detail lines need: Qt's level of detail
    came out a hair below it for blocks at some places (translations), which then showed their
    titles alone. Rendered here as the screen paints, at exactly that zoom."""
    from PySide6.QtGui import QImage, QPainter, QTransform

    from designer.canvas.items import DETAIL_TEXT_MIN_LOD, _lod
    from designer.canvas.view import READABLE_ZOOM

    assert READABLE_ZOOM == DETAIL_TEXT_MIN_LOD
    for x in (0, 35, 280, 1260):           # places where the raw level of detail is 0.5999999999999979
        assert _lod(QTransform(0.6, 0, 0, 0.6, x * 0.6 + 18, -150 * 0.6 + 242)) == DETAIL_TEXT_MIN_LOD
    graph = build("m", [("x", "Input", {"shape": [8]}), ("dense", "Linear", {"units": 4}), ("y", "Output", {})])
    from engine.project import Project
    window.document.replace(Project(graph), None)
    face = window.scene.node_items[graph.find("dense").id].face
    image = QImage(400, 200, QImage.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setTransform(QTransform(0.6, 0, 0, 0.6, 18, -150 * 0.6 + 242 - 100))
    drawn = []
    original = painter.drawStaticText
    painter.drawStaticText = lambda point, text: (drawn.append(text.text()), original(point, text))
    face.paint(painter, None)
    painter.end()
    assert face.subtitle.text() in drawn and face.info.text() in drawn, drawn
