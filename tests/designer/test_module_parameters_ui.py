"""Module parameters in the designer (issue #17): inside a module, a block's parameter is made a
parameter of the module (one gesture, undoable); each instance then shows a field for it, and the
value it gives changes that instance's shapes only."""
from __future__ import annotations

from PySide6.QtWidgets import QPushButton

from designer.inspector import ExposeDialog, IntSpin
from engine.project import Project

RESIDUAL = ("conv_a", "conv_b", "residual")


def select(window, *names):
    graph = window.document.shown
    window.scene.select_nodes([graph.find(n).id for n in names])


def grouped_twice(window, monkeypatch, graph):
    """The residual CNN grouped into ResidualBlock, entered from its instance."""
    window.document.replace(Project(graph), None)
    select(window, *RESIDUAL)
    monkeypatch.setattr(window, "ask_module_name", lambda suggested: "ResidualBlock")
    window.act_group.trigger()
    graph = window.document.graph
    instance = next(n.id for n in graph.nodes() if n.type == "Module")
    window.document.refresh()
    return graph, instance


def test_make_a_parameter_inside_then_set_it_on_the_instance(window, monkeypatch, residual_cnn):
    graph, instance = grouped_twice(window, monkeypatch, residual_cnn)
    doc = window.document
    definition = graph.modules["ResidualBlock"]
    doc.enter_module("ResidualBlock", doc.instance_specs(instance))
    conv_a = definition.find("conv_a").id
    window.scene.select_nodes([conv_a])
    assert window.inspector.findChild(QPushButton, "expose_param") is not None

    # the dialog: which parameter, under what name (a conv's filters suggest "channels")
    window.inspector._expose_dialog(conv_a)
    dialog: ExposeDialog = window.inspector._expose
    dialog.param.setCurrentIndex(dialog.param.findData("kernel_size"))
    dialog.name.setCurrentText("kernel")
    dialog.accept()
    assert definition.arguments == {"kernel": [(conv_a, "kernel_size")]}
    assert not dialog.isVisible()
    # a bad name is refused in the dialog, which stays open
    window.inspector._expose_dialog(conv_a)
    bad = window.inspector._expose
    bad.name.setCurrentText("Not a name")
    bad.accept()
    assert "cannot name a parameter" in bad.message.text()
    bad.reject()

    # the field's label says what sets it; undo and redo the declaration
    window.scene.select_nodes([conv_a])
    assert "kernel_size" in window.inspector._bindings(conv_a)
    doc.undo_stack.undo()
    assert definition.arguments == {}
    doc.undo_stack.redo()
    assert definition.arguments == {"kernel": [(conv_a, "kernel_size")]}

    # back out: the instance has a field for it; a value changes this instance only, undoably
    doc.leave_module(0)
    window.scene.select_nodes([instance])
    spin = window.inspector.editor("args.kernel")
    assert spin is not None
    before = doc.refresh().param_counts[instance]
    assert not isinstance(spin, IntSpin)              # a size: "5" or "5, 3"
    spin.setText("5")
    spin.editingFinished.emit()
    assert graph.node(instance).params["args"] == {"kernel": 5}
    assert doc.refresh().ok
    assert doc.analysis.param_counts[instance] > before                 # 5x5 kernels hold more weights
    assert definition.find("conv_a").params["kernel_size"] != 5           # the definition is unchanged
    doc.undo_stack.undo()
    assert graph.node(instance).params["args"] == {}


def test_stop_setting_a_parameter_from_the_module(window, monkeypatch, residual_cnn):
    graph, instance = grouped_twice(window, monkeypatch, residual_cnn)
    doc = window.document
    definition = graph.modules["ResidualBlock"]
    doc.enter_module("ResidualBlock")
    conv_b = definition.find("conv_b").id
    window.scene.select_nodes([conv_b])
    assert window.inspector.expose(conv_b, "stride", "stride") is None
    # one name sets parameters of one kind: a size and a size may share it, not a size and a number
    assert "already set by" in window.inspector.expose(conv_b, "stride", "step")
    assert "sets a size parameter" in window.inspector.expose(conv_b, "filters", "stride")
    assert window.inspector.findChild(QPushButton, "unlink_stride") is not None
    window.inspector.unexpose(conv_b, "stride")
    assert definition.arguments == {}
    doc.undo_stack.undo()
    assert definition.arguments == {"stride": [(conv_b, "stride")]}
