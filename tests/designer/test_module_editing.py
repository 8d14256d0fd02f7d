"""Modules in the designer (issue #17): group a selection into a module and back, open a module
on the canvas and edit it (every instance follows), the palette's Modules section, the instance's
block and inspector, and files that keep modules."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from designer.commands import Connect, SetParams
from designer.inspector import IntSpin
from designer.mime import MODULE_PREFIX
from engine.project import Project

RESIDUAL = ("conv_a", "conv_b", "residual")


def open_residual(window, graph):
    window.document.replace(Project(graph), None)
    window.document.undo_stack.setClean()
    return window.document.graph


def select(window, *names):
    graph = window.document.shown
    window.scene.select_nodes([graph.find(n).id for n in names])


def grouped(window, monkeypatch, graph, name="ResidualBlock"):
    """The residual CNN with conv_a, conv_b and residual grouped (through the Edit menu's action)."""
    graph = open_residual(window, graph)
    select(window, *RESIDUAL)
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: name)
    window.act_group.trigger()
    return graph


def test_group_into_module_is_one_step_that_undo_and_redo_restore_exactly(window, monkeypatch, residual_cnn):
    graph = open_residual(window, residual_cnn)
    before = graph.to_dict()
    select(window, *RESIDUAL)
    asked = []
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: asked.append(suggested) or "ResidualBlock")
    window.act_group.trigger()
    assert asked == ["ResidualBlock"]                      # suggested from the blocks: it adds a skip
    assert list(graph.modules) == ["ResidualBlock"]
    instance = [n for n in graph.nodes() if n.type == "Module"]
    assert len(instance) == 1
    assert instance[0].params == {"module": "ResidualBlock", "repeat": 1, "args": {}, "trainable": True}
    assert all(graph.find(n) is None for n in RESIDUAL)
    assert window.scene.selected_node_ids() == [instance[0].id]
    assert window.document.undo_stack.count() == 1 and window.document.modified
    assert "•" in window.windowTitle()
    assert window.document.refresh().ok
    after = graph.to_dict()

    window.act_undo.trigger()
    assert graph.to_dict() == before                       # ids, names, positions, order, wires; no module
    assert set(window.scene.node_items) == set(graph.node_ids())
    assert not window.document.modified
    window.act_redo.trigger()
    assert graph.to_dict() == after
    assert set(window.scene.node_items) == set(graph.node_ids())


def test_a_selection_that_cannot_be_a_module_is_explained_and_changes_nothing(window, monkeypatch, residual_cnn):
    graph = open_residual(window, residual_cnn)
    before = graph.to_dict()
    asked = []
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: asked.append(suggested) or "Bad")
    select(window, "stem", "conv_a")                       # two blocks send tensors out: stem and conv_a
    window.act_group.trigger()
    assert "Cannot group into a module" in window.statusBar().currentMessage()
    assert "returns one tensor" in window.statusBar().currentMessage()
    select(window, "image", "stem")                        # the model's own Input
    window.act_group.trigger()
    assert "Input" in window.statusBar().currentMessage()
    assert graph.to_dict() == before and window.document.undo_stack.count() == 0 and not asked


def test_cancelling_the_name_changes_nothing(window, monkeypatch, residual_cnn):
    graph = open_residual(window, residual_cnn)
    before = graph.to_dict()
    select(window, *RESIDUAL)
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: None)
    window.act_group.trigger()
    assert graph.to_dict() == before and window.document.undo_stack.count() == 0


def test_a_typed_name_becomes_a_class_name(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn, name="my residual block")
    assert list(graph.modules) == ["MyResidualBlock"]


def test_ungroup_puts_the_blocks_back_and_undoes(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    with_module = graph.to_dict()
    window.act_ungroup.trigger()
    names = {n.name for n in graph.nodes()}
    assert set(RESIDUAL) <= names and not any(n.type == "Module" for n in graph.nodes())
    assert "ResidualBlock" in graph.modules                # the definition stays
    assert window.document.refresh().ok
    ungrouped = graph.to_dict()
    window.act_undo.trigger()
    assert graph.to_dict() == with_module
    window.act_redo.trigger()
    assert graph.to_dict() == ungrouped


def test_open_a_module_edit_it_and_every_instance_and_the_model_follow(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    doc = window.document
    instance = next(n.id for n in graph.nodes() if n.type == "Module")
    window.scene.add_block(MODULE_PREFIX + "ResidualBlock", QPointF(0, 600))   # a second instance
    second = window.scene.selected_node_ids()[0]
    doc.undo_stack.push(Connect(graph, graph.find("stem").id, second, 0))
    total = doc.refresh().param_counts[instance]

    # a double-click on the instance opens the module: the canvas shows its definition
    item = window.scene.node_items[instance]
    window.view.centerOn(item)
    at = window.view.mapFromScene(item.sceneBoundingRect().center())
    QTest.mouseDClick(window.view.viewport(), Qt.LeftButton, Qt.NoModifier, at)
    assert doc.module_path == ["ResidualBlock"]
    assert not window.module_bar.isHidden()
    assert window.module_bar.texts() == [graph.name, "ResidualBlock"]
    definition = graph.modules["ResidualBlock"]
    assert set(window.scene.node_items) == set(definition.node_ids())

    # an edit inside is an ordinary undoable command on the definition; the model is re-analysed
    conv_b = definition.find("conv_b").id
    window.scene.select_nodes([conv_b])
    assert window.inspector.selection() == [conv_b]
    window.inspector.editor("kernel_size").setText("5")
    window.inspector.editor("kernel_size").editingFinished.emit()
    assert definition.node(conv_b).params["kernel_size"] == 5
    top = doc.refresh()
    assert top.param_counts[instance] > total and top.param_counts[second] == top.param_counts[instance]
    assert doc.shown_analysis.specs[conv_b] is not None    # analysed inside too
    assert doc.analysis is top and doc.graph is graph     # saving, training, code: the model

    # an error inside shows on the inner block and at the instances
    doc.undo_stack.push(SetParams(definition, conv_b, {"filters": 3}))
    doc.refresh()
    assert doc.shown_analysis.for_node(definition.find("residual").id)
    assert window.scene.node_items[definition.find("residual").id].face.badge_colour is not None
    assert doc.analysis.for_node(instance) and doc.analysis.for_node(second)
    doc.undo_stack.undo()

    # back: the breadcrumb's first crumb, then Escape from inside again
    window.module_bar.crumbs[0].click()
    assert doc.module_path == [] and window.module_bar.isHidden()
    assert set(window.scene.node_items) == set(graph.node_ids())
    assert window.scene.selected_node_ids() == [second]    # the selection as it was before opening
    window.open_module("ResidualBlock")
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key_Escape)
    assert doc.module_path == []
    # undoing the edit made inside, from outside, still changes the module
    doc.undo_stack.undo()
    assert definition.node(conv_b).params["kernel_size"] == 3
    assert doc.refresh().param_counts[instance] == total


def test_undoing_the_grouping_while_inside_goes_back_out(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    assert window.open_module("ResidualBlock")
    window.act_undo.trigger()
    assert window.document.module_path == [] and not graph.modules
    assert set(window.scene.node_items) == set(graph.node_ids())
    assert graph.find("conv_a") is not None


def test_grouping_inside_a_module_keeps_the_new_module_in_the_model(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    window.open_module("ResidualBlock")
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: "Pair")
    select(window, "conv_a", "conv_b")
    window.act_group.trigger()
    assert sorted(graph.modules) == ["Pair", "ResidualBlock"]
    assert not graph.modules["ResidualBlock"].modules
    assert window.document.refresh().ok, [d.message for d in window.document.analysis.diagnostics]
    window.act_undo.trigger()
    assert list(graph.modules) == ["ResidualBlock"]
    assert graph.modules["ResidualBlock"].find("conv_a") is not None


def test_palette_lists_modules_and_adds_instances(window, monkeypatch, residual_cnn):
    palette = window.palette_widget
    assert palette.tree.indexOfTopLevelItem(palette.modules_top) < 0   # no modules: no section
    with pytest.raises(KeyError):
        palette.item_for("Module")                          # the generic block is not a palette item
    graph = grouped(window, monkeypatch, residual_cnn)
    window.document.refresh()
    assert palette.tree.indexOfTopLevelItem(palette.modules_top) == 0
    item = palette.module_item("ResidualBlock")
    assert item.data(0, Qt.UserRole) == MODULE_PREFIX + "ResidualBlock"
    mime = palette.tree.mimeData([item])
    assert bytes(mime.data("application/x-deepwire-block")).decode() == MODULE_PREFIX + "ResidualBlock"
    window.scene.clearSelection()
    palette.tree.itemDoubleClicked.emit(item, 0)
    instances = [n for n in graph.nodes() if n.type == "Module"]
    assert len(instances) == 2 and instances[1].params["module"] == "ResidualBlock"
    assert instances[1].name.startswith("residual_block")
    window.document.refresh()
    assert palette.module_item("ResidualBlock").data(0, Qt.UserRole + 1) == "2 in use"
    # a module cannot be deleted while it is used; unused, it can (undoably)
    assert not window.delete_module("ResidualBlock")
    window.act_undo.trigger()                               # the second instance goes
    window.scene.select_nodes([n.id for n in graph.nodes() if n.type == "Module"])
    window.scene.delete_selection()
    assert window.delete_module("ResidualBlock") and not graph.modules
    window.document.refresh()
    assert palette.tree.indexOfTopLevelItem(palette.modules_top) < 0
    window.act_undo.trigger()
    assert "ResidualBlock" in graph.modules


def test_quick_add_offers_modules_by_name_not_the_generic_block(window, monkeypatch, residual_cnn):
    grouped(window, monkeypatch, residual_cnn)
    window.scene.clearSelection()
    window._quick_add_at(window.view.centre_scene_pos(), "Resid")
    quick = window.quick_add
    offered = [quick.list.item(i).data(Qt.UserRole) for i in range(quick.list.count())]
    assert offered[0] == MODULE_PREFIX + "ResidualBlock"
    window._quick_add_at(window.view.centre_scene_pos(), "Modul")
    offered = [quick.list.item(i).data(Qt.UserRole) for i in range(quick.list.count())]
    assert "Module" not in offered
    quick.hide()
    # inside the module, the module itself is not offered (it cannot contain itself)
    window.open_module("ResidualBlock")
    window._quick_add_at(window.view.centre_scene_pos(), "Resid")
    offered = [quick.list.item(i).data(Qt.UserRole) for i in range(quick.list.count())]
    assert MODULE_PREFIX + "ResidualBlock" not in offered
    quick.hide()
    assert window.scene.add_block(MODULE_PREFIX + "ResidualBlock", QPointF()) is None
    assert "contain itself" in window.statusBar().currentMessage()


def test_instance_block_and_inspector(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    doc = window.document
    instance = next(n.id for n in graph.nodes() if n.type == "Module")
    doc.refresh()
    item = window.scene.node_items[instance]
    assert [p.label for p in item.inputs] == ["x"]
    assert "ResidualBlock" in item.face.subtitle.text()
    assert "params" in item.face.info.text() and "→" in item.face.info.text()
    window.scene.select_nodes([instance])
    spin = window.inspector.editor("repeat")
    assert isinstance(spin, IntSpin)
    spin.setValue(3)
    assert graph.node(instance).params["repeat"] == 3
    doc.refresh()
    assert "×3" in item.face.subtitle.text()
    assert doc.analysis.ok
    combo = window.inspector.editor("module")
    assert [combo.itemText(i) for i in range(combo.count())] == ["ResidualBlock"]
    assert window.inspector.findChild(type(window.inspector.open_button), "open_module") is not None
    doc.undo_stack.undo()
    assert graph.node(instance).params["repeat"] == 1


def test_projects_and_graph_files_keep_modules(window, monkeypatch, tmp_path, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    window.open_module("ResidualBlock")              # saving while a module is shown saves the model
    expected = graph.to_dict()
    for name in ("model.deepwire", "model.json"):
        path = tmp_path / name
        assert window._save_to(path)
        assert not window.document.modified
        window.document.new_empty()
        assert window.document.module_path == [] and window.module_bar.isHidden()
        assert window.open_path(path, ask=False)
        reopened = window.document.graph
        assert reopened.to_dict()["modules"] == expected["modules"]
        assert [n.type for n in reopened.nodes()] == [n["type"] for n in expected["nodes"]]
        window.document.refresh()
        assert window.palette_widget.module_item("ResidualBlock") is not None
        assert window.document.analysis.ok
        graph = reopened


def test_autosave_copies_the_modules(window, monkeypatch, residual_cnn):
    from designer.recovery import _snapshot

    graph = grouped(window, monkeypatch, residual_cnn)
    text = _snapshot(window.document.project).graph.to_json()
    assert '"modules"' in text and "ResidualBlock" in text
    assert text == graph.to_json()


def test_rename_a_module_renames_its_instances_and_undoes(window, monkeypatch, residual_cnn):
    graph = grouped(window, monkeypatch, residual_cnn)
    before = graph.to_dict()
    window.open_module("ResidualBlock")
    assert window.rename_module("ResidualBlock", "Block") == "Block"
    assert list(graph.modules) == ["Block"]
    assert [n.params["module"] for n in graph.nodes() if n.type == "Module"] == ["Block"]
    assert window.document.module_path == ["Block"]          # still shown, under its new name
    assert window.document.refresh().ok
    assert window.module_bar.texts()[-1] == "Block"
    window.act_undo.trigger()
    assert graph.to_dict() == before and window.document.module_path == ["ResidualBlock"]


def test_a_module_opened_from_an_instance_shows_that_instances_shapes(window, monkeypatch, residual_cnn):
    """Inside, the blocks show the shapes the instance opened from gives them, not the shapes the
    module's Inputs were saved with; opened from the palette (no instance), the saved ones."""
    from engine.graph import build

    graph = grouped(window, monkeypatch, residual_cnn)
    definition = graph.modules["ResidualBlock"]
    x = next(n.id for n in definition.nodes() if n.type == "Input")
    saved = definition.node(x).params["shape"]
    wide = build("wide", [("image", "Input", {"shape": [1, 12, 12]}),
                          ("stem", "Conv2d", {"filters": 16, "kernel_size": 3, "padding": "same"}),
                          ("block", "Module", {"module": "ResidualBlock"}), ("out", "Output", {})])
    graph.add_module("ResidualBlock", definition)
    doc = window.document
    for node in wide.nodes():       # a second model around the same module: (16, 12, 12) goes in
        graph.add_node(node.type, "w_" + node.name, node.params, (0.0, 900.0), node_id="w" + node.id)
    for edge in wide.edges():
        graph.connect("w" + edge.src, "w" + edge.dst, edge.port)
    doc.refresh()
    window.scene.select_nodes(["w" + wide.find("block").id])
    window.act_open_module.trigger()
    conv_b = definition.find("conv_b").id
    assert doc.module_path == ["ResidualBlock"]
    assert doc.shown_analysis.specs[x].shape == (16, 12, 12)
    assert doc.shown_analysis.specs[conv_b].shape == (16, 12, 12)            # (saved: 8x8 images)
    assert definition.node(x).params["shape"] == saved, "the definition itself is left as it was"
    doc.leave_module()
    window.scene.select_nodes([])
    window.open_module("ResidualBlock")                  # from the palette: no instance, the saved shapes
    assert list(doc.shown_analysis.specs[x].shape) == list(saved)
