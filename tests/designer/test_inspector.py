"""The inspector driven as a user would: typing into its fields, pressing Enter, choosing items."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLabel, QLineEdit, QSpinBox

from designer import theme
from designer.commands import RemoveNodes, SetParams
from designer.document import Document
from designer.inspector import HINT, Inspector, format_value, parse_value, readable
from engine.blocks import ParamError, get_block
from engine.graph import build


def mlp():
    return build("mlp", [
        ("input", "Input", {"shape": [20]}),
        ("dense", "Linear", {"units": 64, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])


@pytest.fixture
def documents():
    made = []
    yield made
    for document in made:  # a Document destroyed with unsaved edits reports cleanChanged to a dead
        document.undo_stack.setClean()  # receiver (document.py): keep the test output quiet


@pytest.fixture
def doc(documents):
    document = Document(mlp())
    documents.append(document)
    return document


@pytest.fixture
def inspector(qtbot, doc):
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.resize(340, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def nid(doc, name):
    return doc.graph.find(name).id


def params(doc, name):
    return doc.graph.find(name).params


def type_into(qtbot, widget, text):
    """Replace a field's text by typing, then press Enter."""
    line = widget.lineEdit() if isinstance(widget, QSpinBox) or hasattr(widget, "lineEdit") else widget
    line.selectAll()
    qtbot.keyClick(line, Qt.Key_Delete)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key_Return)


# ----------------------------------------------------------------------------- one block

def test_nothing_selected_shows_a_hint(inspector):
    hint = inspector.findChild(QLabel, "inspector_hint")
    assert hint is not None and hint.text() == HINT
    assert inspector.findChildren(QLineEdit) == []


def test_form_is_generated_from_the_declaration(inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    block = get_block("Linear")
    for param in block.params:
        editor = inspector.editor(param.name)
        assert editor is not None and editor.toolTip() == param.help
    assert isinstance(inspector.editor("units"), QSpinBox)
    assert (inspector.editor("units").minimum(), inspector.editor("units").maximum()) == (1, 1_000_000)
    assert isinstance(inspector.editor("bias"), QCheckBox)
    assert isinstance(inspector.editor("activation"), QComboBox)
    assert inspector.editor("units").value() == 64
    assert inspector.editor("activation").currentText() == "relu"
    assert inspector.name_edit.text() == "dense"
    assert inspector.title_label.text() == "Linear"
    help_label = inspector.findChild(QLabel, "block_help")
    assert help_label.text() == block.help and help_label.wordWrap()
    assert inspector.shape_label.text() == "(64,)"
    assert inspector.params_label.text() == "1,344"


def test_input_shape_is_an_ints_editor(inspector, doc):
    inspector.set_selection([nid(doc, "input")])
    editor = inspector.editor("shape")
    assert isinstance(editor, QLineEdit) and editor.text() == "20"


def test_editing_units_is_one_undo_step_and_reshapes(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "256")
    assert doc.undo_stack.count() == 0          # nothing per keystroke
    qtbot.keyClick(spin, Qt.Key_Return)
    spin.editingFinished.emit()                 # focus leaving as well: still one step
    assert doc.undo_stack.count() == 1
    assert params(doc, "dense")["units"] == 256
    qtbot.waitUntil(lambda: inspector.shape_label.text() == "(256,)")
    assert doc.analysis.specs[nid(doc, "dense")].shape == (256,)
    assert inspector.params_label.text() == f"{20 * 256 + 256:,}"


def test_setting_a_spin_value_then_finishing_is_one_step(inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    spin.setValue(32)
    spin.editingFinished.emit()
    assert doc.undo_stack.count() == 1 and params(doc, "dense")["units"] == 32


def test_undo_restores_the_field(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    type_into(qtbot, spin, "99")
    assert params(doc, "dense")["units"] == 99
    doc.undo_stack.undo()
    qtbot.waitUntil(lambda: spin.value() == 64)
    assert params(doc, "dense")["units"] == 64
    assert doc.undo_stack.count() == 1 and doc.undo_stack.index() == 0  # nothing pushed by the refresh
    qtbot.waitUntil(lambda: inspector.shape_label.text() == "(64,)")
    doc.undo_stack.redo()
    qtbot.waitUntil(lambda: spin.value() == 99)


def test_follows_changes_made_elsewhere(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    doc.undo_stack.push(SetParams(doc.graph, nid(doc, "dense"), {"activation": "gelu", "bias": False}))
    qtbot.waitUntil(lambda: inspector.editor("activation").currentText() == "gelu")
    assert inspector.editor("bias").isChecked() is False
    assert doc.undo_stack.count() == 1


def test_invalid_ints_text_is_refused_at_the_field(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "input")])
    edit = inspector.editor("shape")
    type_into(qtbot, edit, "3, x")
    assert doc.undo_stack.count() == 0
    assert params(doc, "input")["shape"] == [20]
    reason = inspector.error_text("shape")
    assert "whole number" in reason and "'x'" in reason
    error_label = inspector.findChild(QLabel, "error_shape")
    assert error_label.isVisible()
    assert edit.property("invalid") is True
    assert theme.colours()["error"] in edit.parentWidget().styleSheet()   # the red frame
    assert edit.text() == "3, x"                  # left for the person to fix
    type_into(qtbot, edit, "[4, 5]")
    assert doc.undo_stack.count() == 1
    assert tuple(params(doc, "input")["shape"]) == (4, 5)
    assert inspector.error_text("shape") == "" and not error_label.isVisible()
    assert edit.text() == "4, 5"
    qtbot.waitUntil(lambda: inspector.shape_label.text() == "(4, 5)")


def test_out_of_bounds_text_shows_the_param_error(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "input")])
    type_into(qtbot, inspector.editor("shape"), "0")
    assert "at least 1" in inspector.error_text("shape")
    assert doc.undo_stack.count() == 0


def test_out_of_range_spin_value_is_refused_with_a_reason(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    type_into(qtbot, spin, "0")
    assert doc.undo_stack.count() == 0 and params(doc, "dense")["units"] == 64
    assert "at least 1" in inspector.error_text("units")
    assert spin.property("invalid") is True
    type_into(qtbot, spin, "5")
    assert params(doc, "dense")["units"] == 5 and inspector.error_text("units") == ""


@pytest.mark.parametrize("name,param,typed,reason", [
    ("dense", "units", "-5", "at least 1"),          # the minus sign was dropped: -5 became 5
    ("dense", "units", "3000000000", "at most"),     # past what the box holds: the last digit was dropped
])
def test_a_typed_number_outside_the_range_is_refused_not_changed(qtbot, inspector, doc, name, param, typed, reason):
    inspector.set_selection([nid(doc, name)])
    spin = inspector.editor(param)
    type_into(qtbot, spin, typed)
    assert doc.undo_stack.count() == 0 and params(doc, name)[param] == 64
    assert reason in inspector.error_text(param) and spin.property("invalid") is True


def test_a_negative_probability_is_refused_not_made_positive(qtbot, documents):
    document = Document(build("m", [("input", "Input", {"shape": [4]}), ("drop", "Dropout", {"p": 0.25}),
                                    ("output", "Output", {})]))
    documents.append(document)
    widget = Inspector(document)
    qtbot.addWidget(widget)
    widget.show()
    widget.set_selection([document.graph.find("drop").id])
    type_into(qtbot, widget.editor("p"), "-0.5")
    assert document.graph.find("drop").params["p"] == 0.25 and document.undo_stack.count() == 0
    assert widget.error_text("p")


def test_rename_to_a_taken_name_gives_a_unique_one(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    type_into(qtbot, inspector.name_edit, "dense_1")
    assert doc.undo_stack.count() == 1
    name = doc.graph.node(nid(doc, "dense_1")).name
    mine = doc.graph.node(inspector.selection()[0]).name
    assert mine != name and mine.startswith("dense") and mine == inspector.name_edit.text()
    assert len({n.name for n in doc.graph.nodes()}) == len(doc.graph)
    message = inspector.findChild(QLabel, "name_message")
    assert message.isVisible() and mine in message.text()
    doc.undo_stack.undo()
    qtbot.waitUntil(lambda: inspector.name_edit.text() == "dense")


def test_rename(qtbot, inspector, doc):
    node_id = nid(doc, "dense")
    inspector.set_selection([node_id])
    type_into(qtbot, inspector.name_edit, "hidden")
    assert doc.graph.node(node_id).name == "hidden" and doc.undo_stack.count() == 1
    type_into(qtbot, inspector.name_edit, "hidden")   # unchanged: nothing more
    assert doc.undo_stack.count() == 1


def test_empty_name_is_refused(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    type_into(qtbot, inspector.name_edit, "   ")
    assert doc.undo_stack.count() == 0
    assert params(doc, "dense") is not None and doc.graph.find("dense") is not None
    assert inspector.name_edit.text() == "dense"
    message = inspector.findChild(QLabel, "name_message")
    assert message.isVisible() and "name" in message.text().lower()


def test_float_and_bool_editors(qtbot, doc, inspector):
    drop = doc.graph.add_node("Dropout", "drop", {"p": 0.5})
    doc.refresh()
    inspector.set_selection([drop])
    spin = inspector.editor("p")
    assert spin.text() == "0.5" and spin.decimals() == 6 and spin.singleStep() == pytest.approx(0.1)
    type_into(qtbot, spin, "0.25")
    assert doc.graph.node(drop).params["p"] == 0.25 and doc.undo_stack.count() == 1

    inspector.set_selection([nid(doc, "dense")])
    check = inspector.editor("bias")
    qtbot.keyClick(check, Qt.Key_Space)
    assert params(doc, "dense")["bias"] is False and doc.undo_stack.count() == 2


def test_rounded_float_is_not_pushed_when_untouched(inspector, doc):
    node = doc.graph.add_node("Rescaling", "rescale", {"scale": 1 / 255})
    inspector.set_selection([node])
    spin = inspector.editor("scale")
    spin.editingFinished.emit()
    assert doc.undo_stack.count() == 0
    assert doc.graph.node(node).params["scale"] == 1 / 255


def test_small_float_gets_enough_decimals(inspector, doc):
    node = doc.graph.add_node("LayerNorm", "norm", {"eps": 1e-5})
    inspector.set_selection([node])
    spin = inspector.editor("eps")
    assert spin.value() == pytest.approx(1e-5) and spin.text() == "0.00001"
    assert spin.singleStep() <= 1e-5


def test_size_and_padding_fields(qtbot, documents):
    doc = Document(build("cnn", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("conv", "Conv2d", {"filters": 4, "kernel_size": 3}),
        ("output", "Output", {}),
    ]))
    documents.append(doc)
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.set_selection([nid(doc, "conv")])
    kernel, padding = widget.editor("kernel_size"), widget.editor("padding")
    assert kernel.text() == "3" and padding.text() == "valid"
    type_into(qtbot, kernel, "3")                 # the same value: nothing to do
    assert doc.undo_stack.count() == 0
    type_into(qtbot, kernel, "3, 5")
    assert tuple(params(doc, "conv")["kernel_size"]) == (3, 5)
    type_into(qtbot, padding, "SAME")
    assert params(doc, "conv")["padding"] == "same"
    type_into(qtbot, padding, "sideways")
    assert "same" in widget.error_text("padding") and doc.undo_stack.count() == 2


def test_parse_and_format():
    block = get_block("Conv2d")
    kernel, padding = block.param_index["kernel_size"], block.param_index["padding"]
    shape = get_block("Input").param_index["shape"]
    assert parse_value(kernel, "3") == 3
    assert parse_value(kernel, "3, 5") == (3, 5)
    assert parse_value(kernel, "[3, 5]") == (3, 5)
    assert parse_value(kernel, "(3, 5)") == (3, 5)
    assert parse_value(padding, "Same") == "same"
    assert parse_value(shape, "784") == (784,)
    assert parse_value(shape, "[28, 28]") == (28, 28)
    for bad in ("", "2.5", "3, x", "1, 2, 3"):
        with pytest.raises(ParamError):
            parse_value(kernel, bad)
    assert format_value(kernel, (3, 3)) == "3" and format_value(kernel, [3, 5]) == "3, 5"
    assert format_value(shape, (28, 28)) == "28, 28" and format_value(padding, "same") == "same"
    assert readable(kernel) == "Kernel size"


# ----------------------------------------------------------------------------- several blocks

def test_two_linears_change_activation_in_one_step(qtbot, inspector, doc):
    a, b = nid(doc, "dense"), nid(doc, "dense_1")
    inspector.set_selection([a, b])
    assert inspector.name_edit is None
    assert inspector.title_label.text() == "2 blocks selected"
    combo = inspector.editor("activation")
    assert combo.currentIndex() == -1            # relu and none differ
    assert inspector.editor("bias").isChecked()  # common value shown
    combo.setCurrentIndex(combo.findText("gelu"))
    assert doc.undo_stack.count() == 1
    assert params(doc, "dense")["activation"] == params(doc, "dense_1")["activation"] == "gelu"
    doc.undo_stack.undo()
    assert params(doc, "dense")["activation"] == "relu" and params(doc, "dense_1")["activation"] == "none"
    qtbot.waitUntil(lambda: combo.currentIndex() == -1)


def test_two_linears_mixed_units_typed_once(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense"), nid(doc, "dense_1")])
    spin = inspector.editor("units")
    assert spin.text() == ""                     # 64 and 10: no common value
    spin.editingFinished.emit()                  # leaving it blank changes nothing
    assert doc.undo_stack.count() == 0
    qtbot.keyClicks(spin, "32")
    qtbot.keyClick(spin, Qt.Key_Return)
    assert doc.undo_stack.count() == 1
    assert params(doc, "dense")["units"] == params(doc, "dense_1")["units"] == 32
    qtbot.waitUntil(lambda: spin.text() == "32")
    qtbot.waitUntil(lambda: inspector.params_label.text() == f"{20 * 32 + 32 + 32 * 32 + 32:,}")


def test_mixed_bool_is_indeterminate_and_one_click_sets_all(qtbot, inspector, doc):
    doc.graph.set_params(nid(doc, "dense_1"), {"bias": False})
    inspector.set_selection([nid(doc, "dense"), nid(doc, "dense_1")])
    check = inspector.editor("bias")
    assert check.checkState() == Qt.PartiallyChecked
    qtbot.keyClick(check, Qt.Key_Space)
    assert doc.undo_stack.count() == 1
    assert params(doc, "dense")["bias"] is params(doc, "dense_1")["bias"] is True
    assert not check.isTristate()


def test_mixed_types_are_not_editable(inspector, doc):
    inspector.set_selection([nid(doc, "dense"), nid(doc, "input")])
    assert "2 blocks of different types selected" in inspector.title_label.text()
    assert inspector.findChildren(QLineEdit) == []
    assert inspector.findChildren(QSpinBox) == [] and inspector.findChildren(QComboBox) == []
    assert inspector.editor("units") is None


# ----------------------------------------------------------------------------- the graph underneath

def test_removed_node_falls_back_to_the_hint(qtbot, inspector, doc):
    node_id = nid(doc, "dense")
    inspector.set_selection([node_id])
    doc.undo_stack.push(RemoveNodes(doc.graph, [node_id]))
    qtbot.waitUntil(lambda: inspector.selection() == [])
    assert inspector.findChild(QLabel, "inspector_hint") is not None


def test_graph_replaced(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    doc.new_from_template("digits_mlp")
    assert inspector.selection() == []
    dense = nid(doc, "dense")
    inspector.set_selection([dense])
    spin = inspector.editor("units")
    assert spin.value() == 64
    doc.undo_stack.push(SetParams(doc.graph, dense, {"units": 12}))  # the new graph is followed
    qtbot.waitUntil(lambda: spin.value() == 12)


def test_refresh_keeps_a_field_being_typed_in(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    inspector.activateWindow()
    spin = inspector.editor("units")
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "77")
    doc.undo_stack.push(SetParams(doc.graph, nid(doc, "dense"), {"bias": False}))
    inspector.refresh()
    assert spin.hasFocus() and spin.text() == "77"
    assert not inspector.editor("bias").isChecked()
    qtbot.keyClick(spin, Qt.Key_Return)
    assert params(doc, "dense")["units"] == 77 and doc.undo_stack.count() == 2


def test_diagnostics_are_shown(qtbot, inspector, doc):
    node = doc.graph.add_node("Dropout", "loose")
    doc.refresh()
    inspector.set_selection([node])
    texts = [label.text() for label in inspector.findChildren(QLabel, "diagnostic")]
    assert any("no input" in t for t in texts)
    assert inspector.shape_label.text() == "—"


def test_flops_are_counted_in_the_background(qtbot, inspector, doc):
    import designer.inspector as inspector_module
    inspector_module._FLOPS_CACHE.clear()   # another test may have counted the same block already
    inspector.set_selection([nid(doc, "dense")])
    assert inspector.flops_label.text() == "—"   # not computed while selecting
    qtbot.waitUntil(lambda: inspector.flops_label.text() != "—", timeout=60_000)
    assert inspector.flops_label.text().startswith(f"{2 * 20 * 64:,}")
    inspector.set_selection([nid(doc, "dense_1")])  # same graph: from the cache, at once
    assert inspector.flops_label.text() == f"{2 * 64 * 10:,}  (1.3 k)"


def test_flops_of_a_block_in_a_big_graph_are_counted_for_that_block_alone(qtbot, documents, monkeypatch):
    import time

    import designer.inspector as inspector_module
    from engine.graph import Graph
    graph = Graph("long")
    prev = graph.add_node("Input", "input", {"shape": [16]})
    for i in range(1000):
        node = graph.add_node("Linear", f"dense_{i}", {"units": 16 + i % 7})
        graph.connect(prev, node, 0)
        prev = node
    graph.connect(prev, graph.add_node("Output", "output"), 0)
    doc = Document(graph)
    documents.append(doc)
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    sizes = []
    real = inspector_module.count_flops
    monkeypatch.setattr(inspector_module, "count_flops", lambda g: (sizes.append(len(g)), real(g))[1])
    target = graph.find("dense_500").id
    t0 = time.perf_counter()
    widget.set_selection([target])
    widget._request_flops()  # what the idle timer does
    assert time.perf_counter() - t0 < 0.5  # generous on a busy machine; it is a few ms
    width_in, width_out = 16 + 499 % 7, 16 + 500 % 7
    qtbot.waitUntil(lambda: widget.flops_label.text() != "—", timeout=60_000)
    assert widget.flops_label.text().startswith(f"{2 * width_in * width_out:,}")
    assert sizes and max(sizes) < 60  # a small model: the block and its neighbours, not 1,002 blocks
    widget.set_selection([graph.find("dense_501").id])  # a neighbour: counted with it, shown at once
    assert widget.flops_label.text().startswith(f"{2 * width_out * (16 + 501 % 7):,}")


def test_spin_box_arrow_presses_are_one_undo_step(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    spin.setFocus()
    for _ in range(4):
        qtbot.keyClick(spin, Qt.Key_Up)
    qtbot.keyClick(spin, Qt.Key_Down)
    assert params(doc, "dense")["units"] == 67
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert params(doc, "dense")["units"] == 64
    qtbot.waitUntil(lambda: spin.value() == 64)
    doc.undo_stack.redo()
    assert params(doc, "dense")["units"] == 67


def test_arrows_back_to_the_start_leave_no_step(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key_Up)
    qtbot.keyClick(spin, Qt.Key_Down)
    assert params(doc, "dense")["units"] == 64 and doc.undo_stack.count() == 0


def test_edits_apart_in_time_or_of_other_parameters_stay_separate(qtbot, inspector, doc, monkeypatch):
    import designer.commands as commands
    inspector.set_selection([nid(doc, "dense")])
    spin = inspector.editor("units")
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key_Up)
    inspector.editor("bias").click()                 # another parameter: its own step
    assert doc.undo_stack.count() == 2
    monkeypatch.setattr(commands, "MERGE_WINDOW_S", -1.0)  # as if the next press came much later
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key_Up)
    assert doc.undo_stack.count() == 3
    doc.undo_stack.undo()
    assert params(doc, "dense")["units"] == 65


def test_arrows_on_two_blocks_are_one_step(qtbot, inspector, doc):
    doc.graph.set_params(nid(doc, "dense_1"), {"units": 64})
    inspector.set_selection([nid(doc, "dense"), nid(doc, "dense_1")])
    spin = inspector.editor("units")
    spin.setFocus()
    for _ in range(3):
        qtbot.keyClick(spin, Qt.Key_Up)
    assert params(doc, "dense")["units"] == params(doc, "dense_1")["units"] == 67
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert params(doc, "dense")["units"] == params(doc, "dense_1")["units"] == 64


def test_render_conv2d_dark(qtbot, tmp_path):
    theme.apply(QApplication.instance(), dark=True)
    doc = Document()
    doc.new_from_template("digits_cnn")
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.resize(340, 720)
    widget.show()
    widget.set_selection([nid(doc, "conv2d")])
    qtbot.waitExposed(widget)
    image = widget.grab().toImage()
    path = tmp_path / "inspector.png"
    assert image.save(str(path)) and path.stat().st_size > 0
    assert widget.editor("padding").text() == "same" and widget.editor("filters").value() == 16


@pytest.mark.parametrize("dark", [True, False])
def test_an_unchecked_check_box_can_be_seen(qtbot, dark):
    from PySide6.QtWidgets import QListWidget, QListWidgetItem, QRadioButton, QVBoxLayout, QWidget
    try:
        theme.apply(QApplication.instance(), dark=dark)
        window = QWidget()   # as in the app: on a panel or dialog of the window colour
        qtbot.addWidget(window)
        layout = QVBoxLayout(window)
        runs = QListWidget()
        item = QListWidgetItem("run 1")
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Unchecked)
        runs.addItem(item)
        widgets = (QCheckBox(), QRadioButton(), runs)  # anywhere in the app, not only in the inspector
        for widget in widgets:
            layout.addWidget(widget)
        window.show()
        qtbot.waitExposed(window)
        for widget in widgets:
            rect = (runs.visualItemRect(item).adjusted(0, 0, -runs.visualItemRect(item).width() + 24, 0)
                    if widget is runs else widget.rect())
            image = widget.grab(rect).toImage() if widget is not runs else runs.viewport().grab(rect).toImage()
            role = QPalette.Base if widget is runs else QPalette.Window
            background = window.palette().color(role).lightness() if widget is not runs else \
                runs.palette().color(role).lightness()
            outline = [image.pixelColor(x, y).lightness() for x in range(image.width()) for y in range(image.height())]
            assert max(abs(v - background) for v in outline) > 40, type(widget).__name__  # it was 15 on dark
    finally:
        theme.apply(QApplication.instance(), dark=True)


def test_theme_change_rebuilds_in_the_new_colours(qtbot, inspector, doc):
    inspector.set_selection([nid(doc, "dense")])
    try:
        theme.apply(QApplication.instance(), dark=False)
        qtbot.waitUntil(lambda: inspector.editor("units") is not None
                        and theme.colours()["error"] in inspector.findChild(QLabel, "error_units").styleSheet())
        assert inspector.editor("units").value() == 64
    finally:
        theme.apply(QApplication.instance(), dark=True)


def test_unknown_block_type_shows_its_name_only(qtbot, documents):
    from engine.graph import Graph
    data = mlp().to_dict()
    data["nodes"].append({"id": "x1", "name": "mystery", "type": "FancyLayer", "params": {"k": 1}, "pos": [0, 0]})
    doc = Document(Graph.from_dict(data))
    documents.append(doc)
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.set_selection(["x1"])
    assert widget.title_label.text() == "FancyLayer"
    assert widget.name_edit.text() == "mystery" and widget.editor("k") is None
    assert any("unknown block type" in label.text() for label in widget.findChildren(QLabel, "diagnostic"))
