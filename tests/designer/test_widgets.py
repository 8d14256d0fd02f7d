"""The palette, quick-add popup, problems list and code view, driven like a person would."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication

from designer.code_view import CodeView
from designer.mime import BLOCK_MIME
from designer.palette import Palette
from designer.problems import ProblemsView
from designer.quickadd import QuickAdd
from engine.analysis import ERROR, WARNING, Analysis, Diagnostic, analyse
from engine.blocks import REGISTRY
from engine.graph import build

# ----------------------------------------------------------------------------- palette


@pytest.fixture
def palette(qtbot):
    widget = Palette()
    qtbot.addWidget(widget)
    widget.resize(300, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def visible(palette: Palette) -> dict[str, list[str]]:
    """Visible category -> its visible block types."""
    tree = palette.tree
    out = {}
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        if not top.isHidden():
            out[top.text(0)] = [top.child(j).text(0) for j in range(top.childCount()) if not top.child(j).isHidden()]
    return out


def test_palette_lists_every_block_by_category(palette):
    shown = visible(palette)
    assert list(shown)[:2] == ["Input/Output", "Core"]
    # every block but the generic Module: the project's own modules are listed instead (test_modules.py)
    assert sorted(t for types in shown.values() for t in types) == sorted(set(REGISTRY) - {"Module"})
    assert palette.item_for("Linear").parent().font(0).bold()
    assert palette.item_for("Linear").parent().isExpanded()


def test_palette_search_hides_categories_without_a_match(qtbot, palette):
    qtbot.keyClicks(palette.search, "lstm")
    assert visible(palette) == {"Recurrent": ["LSTM"]}
    palette.search.clear()
    assert len(visible(palette)) > 5


def test_palette_search_finds_keras_names_case_insensitively(qtbot, palette):
    qtbot.keyClicks(palette.search, "Dense")
    assert visible(palette) == {"Core": ["Linear"]}


def test_palette_search_reads_help_text(qtbot, palette):
    qtbot.keyClicks(palette.search, "residual")  # Add's help: "... (residual connections)"
    assert "Add" in visible(palette).get("Merge", [])


def test_palette_enter_adds_first_match(qtbot, palette):
    qtbot.keyClicks(palette.search, "conv")
    with qtbot.waitSignal(palette.addRequested) as signal:
        qtbot.keyClick(palette.search, Qt.Key_Return)
    assert signal.args == ["Conv1d"]


def test_palette_enter_prefers_a_name_over_a_mention_in_help(qtbot, palette):
    """'dense' is Linear's Keras name; other blocks only mention dense layers in their help."""
    qtbot.keyClicks(palette.search, "dense")
    with qtbot.waitSignal(palette.addRequested) as signal:
        qtbot.keyClick(palette.search, Qt.Key_Return)
    assert signal.args == ["Linear"]


def test_palette_mime_data_carries_the_block_type(palette):
    data = palette.tree.mimeData([palette.item_for("Conv2d")])
    assert BLOCK_MIME in data.formats()
    assert bytes(data.data(BLOCK_MIME)).decode("utf-8") == "Conv2d"
    category = palette.item_for("Conv2d").parent()
    assert palette.tree.mimeData([category]) is None
    assert not category.flags() & Qt.ItemIsDragEnabled


def test_palette_double_click_emits_add_requested(qtbot, palette):
    tree = palette.tree
    item = palette.item_for("Dropout")
    tree.scrollToItem(item)
    center = tree.visualItemRect(item).center()
    with qtbot.waitSignal(palette.addRequested) as signal:
        # A real double-click is press, release, double-click; QTest's mouseDClick sends only the last.
        qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=center)
        qtbot.mouseDClick(tree.viewport(), Qt.LeftButton, pos=center)
    assert signal.args == ["Dropout"]


def test_palette_enter_in_tree_emits_add_requested(qtbot, palette):
    palette.tree.setCurrentItem(palette.item_for("GRU"))
    with qtbot.waitSignal(palette.addRequested) as signal:
        qtbot.keyClick(palette.tree, Qt.Key_Return)
    assert signal.args == ["GRU"]


def test_palette_rows_have_icons_and_wrapped_tooltips(palette):
    item = palette.item_for("Linear")
    assert not item.icon(0).isNull()
    assert item.toolTip(0).startswith("<p>")  # rich text, which Qt wraps
    assert "Dense" in item.toolTip(0)


# ----------------------------------------------------------------------------- quick add


@pytest.fixture
def quick(qtbot):
    widget = QuickAdd()
    qtbot.addWidget(widget)
    return widget


def rows(quick: QuickAdd) -> list[str]:
    return [quick.list.item(i).text() for i in range(quick.list.count())]


def test_quickadd_is_non_blocking(quick):
    quick.popup(QPoint(50, 50))
    assert quick.isVisible()  # popup() returned while the popup is still open
    assert quick.windowFlags() & Qt.Popup == Qt.Popup
    assert len(rows(quick)) == len(REGISTRY) - 1  # not the generic Module: modules are offered by name


def test_quickadd_filters_as_you_type_prefix_first(qtbot, quick):
    quick.popup(QPoint(50, 50))
    qtbot.keyClicks(quick.edit, "norm")
    listed = rows(quick)
    assert listed[0] == "Normalization"  # starts with "norm"
    assert {"BatchNorm", "LayerNorm"} <= set(listed)
    assert "Linear" not in listed
    quick.edit.clear()
    qtbot.keyClicks(quick.edit, "dense")  # the Keras name
    assert rows(quick) == ["Linear"]


def test_quickadd_enter_emits_the_top_match_and_hides(qtbot, quick):
    quick.popup(QPoint(50, 50))
    qtbot.keyClicks(quick.edit, "gr")
    assert rows(quick)[0] == "GRU"
    with qtbot.waitSignal(quick.chosen) as signal:
        qtbot.keyClick(quick.edit, Qt.Key_Return)
    assert signal.args == ["GRU"]
    assert not quick.isVisible()


def test_quickadd_arrows_move_the_selection_while_typing(qtbot, quick):
    quick.popup(QPoint(50, 50), text="conv")
    assert quick.edit.text() == "conv"
    second = rows(quick)[1]
    qtbot.keyClick(quick.edit, Qt.Key_Down)
    qtbot.keyClick(quick.edit, Qt.Key_Down)
    qtbot.keyClick(quick.edit, Qt.Key_Up)
    assert quick.current_type() == second
    with qtbot.waitSignal(quick.chosen) as signal:
        qtbot.keyClick(quick.edit, Qt.Key_Enter)
    assert signal.args == [second]


def test_quickadd_allowed_restricts_the_list(qtbot, quick):
    quick.popup(QPoint(50, 50), allowed=["Linear", "Dropout", "Output"])
    assert sorted(rows(quick)) == ["Dropout", "Linear", "Output"]
    qtbot.keyClicks(quick.edit, "o")
    assert "Conv2d" not in rows(quick)
    quick.hide()
    quick.popup(QPoint(50, 50))  # the next popup lists everything again
    assert len(rows(quick)) == len(REGISTRY) - 1  # not the generic Module: modules are offered by name


def test_quickadd_escape_hides_without_choosing(qtbot, quick):
    chosen = []
    quick.chosen.connect(chosen.append)
    quick.popup(QPoint(50, 50), text="lin")
    with qtbot.waitSignal(quick.cancelled):
        qtbot.keyClick(quick.edit, Qt.Key_Escape)
    assert not quick.isVisible()
    assert chosen == []


def test_quickadd_click_chooses(qtbot, quick):
    quick.popup(QPoint(50, 50), text="drop")
    item = quick.list.item(0)
    with qtbot.waitSignal(quick.chosen) as signal:
        qtbot.mouseClick(quick.list.viewport(), Qt.LeftButton, pos=quick.list.visualItemRect(item).center())
    assert signal.args == ["Dropout"]


def test_quickadd_stays_on_screen(quick):
    area = QGuiApplication.primaryScreen().availableGeometry()
    quick.popup(area.bottomRight() + QPoint(500, 500))
    assert area.contains(quick.frameGeometry())


# ----------------------------------------------------------------------------- problems


def broken_graph():
    """An LSTM fed a 3-D tensor (shape error) and a Linear that leads nowhere (warning)."""
    return build("m", [("input", "Input", {"shape": [4, 5, 6]}), ("dense", "Linear", {"units": 3}),
                       ("lstm", "LSTM", {}), ("out", "Output", {}), ("stray", "Linear", {"units": 2})],
                 wires=[("input", "stray"), ("input", "dense"), ("dense", "lstm"), ("lstm", "out")])


@pytest.fixture
def problems(qtbot):
    widget = ProblemsView()
    qtbot.addWidget(widget)
    widget.resize(700, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_problems_lists_errors_before_warnings_with_node_names(problems):
    graph = broken_graph()
    analysis = analyse(graph)
    assert analysis.errors and analysis.warnings
    problems.set_analysis(graph, analysis)
    tree = problems.tree
    texts = [[tree.topLevelItem(i).text(c) for c in range(3)] for i in range(tree.topLevelItemCount())]
    assert [t[0] for t in texts] == ["Error", "Warning"]
    assert [t[1] for t in texts] == ["lstm", "stray"]
    assert "sequence" in texts[0][2]
    assert problems.header.text() == "1 error, 1 warning"
    assert not tree.topLevelItem(0).icon(0).isNull()


def test_problems_sorts_errors_first_keeping_analysis_order(problems):
    graph = broken_graph()
    lstm, stray = graph.find("lstm").id, graph.find("stray").id
    analysis = Analysis(diagnostics=[
        Diagnostic(stray, WARNING, "dangling", "w1"),
        Diagnostic(lstm, ERROR, "shape", "e1"),
        Diagnostic(None, ERROR, "no-input", "e2"),
        Diagnostic(lstm, WARNING, "no-effect", "w2"),
    ])
    problems.set_analysis(graph, analysis)
    tree = problems.tree
    assert [tree.topLevelItem(i).text(2) for i in range(4)] == ["e1", "e2", "w1", "w2"]
    assert problems.node_ids() == [lstm, None, stray, lstm]
    assert tree.topLevelItem(1).text(1) == "(graph)"
    assert problems.header.text() == "2 errors, 2 warnings"
    problems.set_analysis(graph, Analysis())
    assert problems.header.text() == "No problems"
    assert tree.topLevelItemCount() == 0


def test_problems_click_emits_the_node_id(qtbot, problems):
    graph = broken_graph()
    problems.set_analysis(graph, analyse(graph))
    tree = problems.tree
    item = tree.topLevelItem(1)  # the warning on 'stray'
    with qtbot.waitSignal(problems.nodeActivated) as signal:
        qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(item).center())
    assert signal.args == [graph.find("stray").id]


def test_problems_graph_wide_rows_emit_nothing(qtbot, problems):
    graph = build("m", [("a", "Linear", {"units": 2})])
    problems.set_analysis(graph, analyse(graph))  # no Input, no Output: graph-wide errors
    emitted = []
    problems.nodeActivated.connect(emitted.append)
    tree = problems.tree
    items = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    item = next(item for item in items if item.text(1) == "(graph)")
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(item).center())
    assert emitted == []


def test_problems_long_messages_wrap(problems):
    graph = broken_graph()
    problems.resize(420, 300)
    problems.set_analysis(graph, analyse(graph))
    tree = problems.tree
    one_line = tree.fontMetrics().height()
    assert tree.visualItemRect(tree.topLevelItem(0)).height() > 1.5 * one_line


# ----------------------------------------------------------------------------- code view

SOURCE = '''import torch
# a comment
class Net(torch.nn.Module):
    """A docstring
    on several lines
    """

    @property
    def size(self):
        return len("text # not a comment") + 42
'''


def formats(view: CodeView, line: int) -> list:
    return view.document().findBlockByNumber(line).layout().formats()


def colour_at(view: CodeView, line: int, column: int):
    for r in formats(view, line):
        if r.start <= column < r.start + r.length:
            return r.format.foreground().color().name()
    return None


@pytest.fixture
def code(qtbot):
    view = CodeView()
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_code_view_is_read_only_monospace(code):
    assert code.isReadOnly()
    assert code.lineWrapMode() == CodeView.NoWrap
    assert code.font().fixedPitch() or code.fontInfo().fixedPitch()


def test_code_view_highlights(code):
    code.set_source(SOURCE)
    keyword = colour_at(code, 0, 0)              # import
    comment = colour_at(code, 1, 0)              # # a comment
    docstring_middle = colour_at(code, 4, 6)     # "on several lines"
    string = colour_at(code, 3, 6)               # """A docstring
    assert keyword and comment and string
    assert keyword != comment
    assert docstring_middle == string
    assert colour_at(code, 6, 0) is None          # blank line after the docstring: plain again
    assert colour_at(code, 9, 19) == string       # the '#' inside a string stays a string
    assert colour_at(code, 9, 15) not in (None, keyword, string)  # len: a builtin
    assert colour_at(code, 7, 4) not in (None, keyword)  # @property: a decorator
    assert colour_at(code, 8, 13) not in (None, keyword, string)  # self


def test_code_view_keeps_scroll_position(code):
    text = "\n".join(f"x_{i} = {i}  # line {i}" for i in range(300))
    code.set_source(text)
    bar = code.verticalScrollBar()
    bar.setValue(120)
    code.set_source(text.replace("x_5 = 5", "x_5 = 6"))
    assert code.toPlainText().startswith("x_0")
    assert bar.value() == 120
    code.set_source("x = 1")  # shorter: clamped, no error
    assert bar.value() == 0


def test_code_view_message_replaces_code(code):
    text = "\n".join(f"y_{i} = {i}" for i in range(300))
    code.set_source(text)
    code.verticalScrollBar().setValue(80)
    message = "The graph has errors; fix them to see the code."
    code.set_message(message)
    assert code.toPlainText() == ""
    assert code.placeholderText() == message
    assert code.source == ""
    code.set_source(text)
    assert code.placeholderText() == ""
    assert code.verticalScrollBar().value() == 80


@pytest.mark.parametrize("old,new", [
    ("a\nb\nc\n", "a\nB\nc\n"), ("a\nb\nc\n", "a\nb\nx\nc\n"), ("a\nb\nc\n", "a\nc\n"),
    ("a\nb\n", "z\na\nb\n"), ("a\nb\n", "a\nb\nz\n"), ("a\n", "b\n"), ("x = 1\n", ""), ("a\nb", "a\nb\nc"),
])
def test_code_view_updates_only_changed_lines_to_exactly_the_new_text(code, old, new):
    code.set_source(old)
    code.set_source(new)
    assert code.toPlainText() == new
