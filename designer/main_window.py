"""The main window: canvas in the centre, palette left, inspector right, problems and code
below; menus, toolbar, status bar; New / Open / Save / Save As / Recent / Export."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from PySide6.QtCore import QRectF, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.analysis import analyse
from engine.blocks.module import MODULE
from engine.codegen import CodegenError, generate
from engine.graph import FormatError, GraphError
from engine.modules import group
from engine.modules import ports as module_ports
from engine.naming import to_class_name
from engine.templates import STARTER, describe, template_names

from . import theme
from .canvas import GraphScene, GraphView
from .canvas.items import NODE_WIDTH
from .code_view import CodeView
from .commands import GroupNodes, RemoveModule, RenameModule, UngroupNode, fragment, paste_nodes
from .curves import CurvesView
from .dataset_dialog import image_cache_action
from .document import Document
from .finetune import FineTuning, params_text
from .import_dialog import (
    ImportModelDialog,
    in_designer_words,
    module_classes,  # noqa: F401  (importable from here, as it was)
    run_import,
)
from .inspector import Inspector
from .mime import FRAGMENT_MIME
from .module_bar import ModuleBar
from .palette import Palette
from .problems import ProblemsView
from .quickadd import QuickAdd
from .results import ResultsView
from .training_panel import TrainingPanel

FILE_FILTER = "Deepwire projects (*.deepwire);;Graph files (*.json);;All files (*)"
IMPORT_FILTER = "Models (*.py *.keras *.json);;PyTorch modules (*.py);;Keras models (*.keras *.json);;All files (*)"
MAX_RECENT = 8
STATE_VERSION = 1  # of the dock layout kept in the settings (saveState); a new layout starts afresh

SHORTCUTS = [
    ("Add a block", "drag from the palette, double-click it, Tab, double-click the canvas, or just type"),
    ("Connect", "drag from an output (right) to an input (left), either direction"),
    ("Add a connected block", "drag a wire from a port into empty space"),
    ("Insert into a wire", "drop a block from the palette onto the wire"),
    ("Quick fixes", "right-click a wire"),
    ("Select", "click; Shift+click adds, Ctrl+click toggles; drag on empty canvas; Ctrl+A"),
    ("Move", "drag, or the arrow keys (Shift: 1 px)"),
    ("Zoom / pan", "wheel (around the cursor); middle button or Space+drag"),
    ("Fit all / selection", "Home (again: the whole graph, however small) / F (with blocks selected)"),
    ("Hide / show the side panels", "Ctrl+B (the bottom panel: Ctrl+J)"),
    ("Delete", "Delete or Backspace"),
    ("Copy / cut / paste / duplicate", "Ctrl+C / Ctrl+X / Ctrl+V / Ctrl+D"),
    ("Undo / redo", "Ctrl+Z / Ctrl+Shift+Z or Ctrl+Y"),
    ("Arrange", "Ctrl+L"),
    ("Group into a module / ungroup", "Ctrl+G / Ctrl+Shift+G"),
    ("Open a module / back out", "double-click its block / Escape"),
    ("Freeze / unfreeze (fine-tuning)", "right-click a block: Freeze, Unfreeze, Freeze Everything Before This Block"),
    ("Train / pause / stop", "F5 / F6 / Shift+F5"),
    ("Training panel", "Ctrl+T"),
]


class MainWindow(QMainWindow):
    def __init__(self, document: Document | None = None, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings or QSettings("Deepwire", "Deepwire")
        self.document = document or Document()
        self.scene = GraphScene(self.document, self)
        self.view = GraphView(self.scene, self)
        self.module_bar = ModuleBar(self.document, self)
        centre = QWidget(self)
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.module_bar)
        centre_layout.addWidget(self.view, 1)
        self.setCentralWidget(centre)
        self._view_states: list[tuple] = []   # per module level entered: the view and selection to come back to
        self.palette_widget = Palette(self)
        self.inspector = Inspector(self.document, self)
        self.problems = ProblemsView(self)
        self.code = CodeView(self)
        self.curves = CurvesView(self)
        self.results = ResultsView(self)
        self.training = TrainingPanel(self.document, self.curves, self.results, self)
        self.quick_add = QuickAdd(self)
        self._quick_pos = None
        self._quick_port = None
        self._quick_after = None   # the block a keyboard quick add was opened beside
        self._last_code = ""       # the last code of a graph without errors, shown marked stale after
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_status()
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self._restore_layout()

        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.view.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.scene.quickAddRequested.connect(self._quick_add_from_port)
        self.view.quickAddRequested.connect(self._quick_add_at)
        self.quick_add.chosen.connect(self._quick_add_chosen)
        self.palette_widget.addRequested.connect(self._add_from_palette)
        self.palette_widget.moduleOpenRequested.connect(self.open_module)
        self.palette_widget.moduleDeleteRequested.connect(self.delete_module)
        self.palette_widget.moduleRenameRequested.connect(lambda name: self.rename_module(name))
        self.scene.moduleOpenRequested.connect(self.open_module)
        self.view.escapeUnused.connect(self._escape)
        self.document.shownChanged.connect(self._shown_changed)
        self.problems.nodeActivated.connect(self.select_and_centre)
        self.document.analysed.connect(self._analysed)
        self.document.modifiedChanged.connect(lambda _: self._update_title())
        self.document.pathChanged.connect(lambda _: self._update_title())
        self.document.graphReplaced.connect(self._graph_replaced)
        self.bottom_tabs.currentChanged.connect(lambda _: self._refresh_code())
        self.training.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.training.deviceText.connect(self.status_device.setText)
        self.training.runStarted.connect(self._run_started)
        self.training.session.runningChanged.connect(self._running_changed)
        self.status_device.setText(f"Device: {self.training.device.currentText()}")
        self._analysed(self.document.analysis)
        self._update_title()

    # ------------------------------------------------------------------ layout
    def _build_docks(self) -> None:
        def dock(title, widget, area, name):
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(widget)
            d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                          | QDockWidget.DockWidgetClosable)
            self.addDockWidget(area, d)
            return d

        self.palette_dock = dock("Blocks", self.palette_widget, Qt.LeftDockWidgetArea, "palette")
        self.inspector_dock = dock("Inspector", self.inspector, Qt.RightDockWidgetArea, "inspector")
        self.bottom_tabs = QTabWidget(self)
        self.bottom_tabs.addTab(self.problems, "Problems")
        self.bottom_tabs.addTab(self.code, "Code")
        self.bottom_tabs.addTab(self.curves, "Training curves")
        self.bottom_tabs.addTab(self.results, "Results")
        self.bottom_dock = dock("Problems, code and training", self.bottom_tabs, Qt.BottomDockWidgetArea, "bottom")
        self.training_dock = dock("Training", self.training, Qt.RightDockWidgetArea, "training")
        self.tabifyDockWidget(self.inspector_dock, self.training_dock)
        self.inspector_dock.raise_()
        self.resizeDocks([self.palette_dock, self.inspector_dock], [210, 300], Qt.Horizontal)
        self.resizeDocks([self.bottom_dock], [200], Qt.Vertical)

    def _side_docks(self) -> list[QDockWidget]:
        return [self.palette_dock, self.inspector_dock, self.training_dock]

    def _toggle_side_panels(self) -> None:
        """Ctrl+B: hide the side panels (the canvas takes their room), or bring back those that were open."""
        docks = self._side_docks()
        open_now = [d for d in docks if not d.isHidden()]
        if open_now:
            self._side_open = [d.objectName() for d in open_now]
            for d in open_now:
                d.hide()
        else:
            front = [d for d in docks if d.objectName() in self._side_open] or docks
            for d in front:
                d.show()
            if self.inspector_dock in front:
                self.inspector_dock.raise_()
        self._side_panels_changed()

    def _side_panels_changed(self) -> None:
        self.act_side_panels.setChecked(any(not d.isHidden() for d in self._side_docks()))

    def _restore_layout(self) -> None:
        """The panels as they were left last time (sizes, which are open, floating, tabbed)."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state, STATE_VERSION)
        side = self.settings.value("window/side_open")
        if side:
            self._side_open = [str(v) for v in ([side] if isinstance(side, str) else side)]
        self._side_panels_changed()

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(STATE_VERSION))
        self.settings.setValue("window/side_open", self._side_open)
        self.settings.sync()

    def _action(self, text, slot, shortcut=None, tip=""):
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        stack = self.document.undo_stack
        self.act_new = self._action("&New…", self.new_from_gallery, QKeySequence.New, "Start from a template")
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence.Open)
        self.act_save = self._action("&Save", self.save, QKeySequence.Save)
        self.act_save_as = self._action("Save &As…", self.save_as, QKeySequence.SaveAs)
        self.act_export = self._action("&Export…", self.export_dialog, "Ctrl+E",
                                       "Export PyTorch code, TorchScript or ONNX")
        self.act_import_model = self._action("&Import Model…", self.import_model_dialog, "Ctrl+I",
                                             "Open a PyTorch module (.py) or a Keras model (.keras, .json) as a graph")
        self.act_load_weights = self._action("Load &Weights…", self.load_weights_dialog, None,
                                             "Load weights you already have (.safetensors, .pt, Keras .weights.h5, "
                                             "a project) into the model, with a report before anything changes")
        self.act_reopen_last = self._action("Reopen &Last File at Start", self._toggle_reopen_last, None,
                                            "Start with the file that was open last; off: start with a new model")
        self.act_reopen_last.setCheckable(True)
        self.act_reopen_last.setChecked(self.reopen_last_enabled())
        self.act_quit = self._action("&Quit", self.close, QKeySequence.Quit)
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence.Undo)
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts(list(dict.fromkeys(
            [*QKeySequence.keyBindings(QKeySequence.Redo), QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])))
        self.addActions([self.act_undo, self.act_redo])
        self.act_cut = self._action("Cu&t", self.cut, QKeySequence.Cut)
        self.act_copy = self._action("&Copy", self.copy, QKeySequence.Copy)
        self.act_paste = self._action("&Paste", self.paste, QKeySequence.Paste)
        self.act_duplicate = self._action("&Duplicate", self.duplicate, "Ctrl+D")
        self.act_delete = self._action("&Delete", self.scene.delete_selection,
                                       [QKeySequence(Qt.Key_Delete), QKeySequence(Qt.Key_Backspace)])
        self.act_select_all = self._action("Select &All", self.select_all, QKeySequence.SelectAll)
        self.act_arrange = self._action("A&rrange", self.arrange, "Ctrl+L", "Lay the graph out left to right")
        self.act_fit = self._action("Fit &All", self.view.fit_all, "Home")
        self.act_fit_sel = self._action("Fit &Selection", self._fit_selection_or_type, "F")
        self.act_zoom_in = self._action("Zoom &In", lambda: self.view.zoom_by(1.25), QKeySequence.ZoomIn)
        self.act_zoom_out = self._action("Zoom &Out", lambda: self.view.zoom_by(0.8), QKeySequence.ZoomOut)
        self.act_snap = self._action("Snap to &Grid", self._toggle_snap, "Ctrl+'")
        self.act_group = self._action("&Group into Module…", lambda: self.group_selection(), "Ctrl+G",
                                      "Make the selected blocks a module of their own: one block, reusable, "
                                      "one class in the code")
        self.act_ungroup = self._action("&Ungroup Module", self.ungroup_selection, "Ctrl+Shift+G",
                                        "Put the module's blocks in place of the selected module block")
        self.act_open_module = self._action("&Open Module", self._open_selected_module, None,
                                            "Show the selected module block's blocks to edit them (double-click)")
        self.act_leave_module = self._action("&Back Out of Module", self._escape, None,
                                             "Back to the graph the module is used in (Escape)")
        self.act_ungroup.setEnabled(False)
        self.act_open_module.setEnabled(False)
        self.act_leave_module.setEnabled(False)
        self.act_snap.setCheckable(True)
        self.act_theme = self._action("&Light Theme", self._toggle_theme)
        self.act_theme.setCheckable(True)
        self.act_shortcuts = self._action("&Keyboard Shortcuts", self.show_shortcuts, "F1")
        self.act_train = self._action("&Train", self.train, "F5", "Train the model on the chosen data")
        self.act_pause = self._action("&Pause / Resume", self.training.toggle_pause, "F6")
        self.act_stop = self._action("&Stop", self.training.stop, "Shift+F5",
                                     "End the run after this batch, keeping the best weights so far")
        self.act_import_data = self._action("&Import Dataset…", self._import_dataset, None,
                                            "Train on a CSV, NPZ, IDX folder or image folder")
        self.act_training_panel = self._action("Show Training &Panel", self._show_training_panel, "Ctrl+T")
        self.act_side_panels = self._action("&Side Panels", self._toggle_side_panels, "Ctrl+B",
                                            "Hide the blocks, inspector and training panels to give the canvas room")
        self.act_side_panels.setCheckable(True)
        self.act_side_panels.setChecked(True)
        self.act_bottom_panel = self.bottom_dock.toggleViewAction()
        self.act_bottom_panel.setShortcut("Ctrl+J")
        self.addAction(self.act_bottom_panel)
        self._side_open = ["palette", "inspector", "training"]  # the side panels Ctrl+B brings back
        self.act_pause.setEnabled(False)
        self.act_stop.setEnabled(False)
        for action in (self.act_fit, self.act_fit_sel, self.act_delete):
            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            self.view.addAction(action)
        self.finetune = FineTuning(self)   # Freeze, Unfreeze, Freeze Everything Before, New Head (#19)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addActions([self.act_new, self.act_open])
        self.recent_menu = m.addMenu("Open &Recent")
        m.addAction(self.act_reopen_last)
        m.addSeparator()
        m.addActions([self.act_save, self.act_save_as])
        m.addSeparator()
        m.addActions([self.act_import_model, self.act_load_weights, self.act_export])
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions([self.act_cut, self.act_copy, self.act_paste, self.act_duplicate, self.act_delete])
        m.addSeparator()
        m.addAction(self.act_select_all)
        m.addSeparator()
        m.addActions([self.act_group, self.act_ungroup, self.act_open_module, self.act_leave_module])
        m.addSeparator()
        m.addActions(self.finetune.actions)
        self.scene.node_menu_actions = [self.act_open_module, self.act_group, self.act_ungroup, None,
                                        *self.finetune.actions, None,
                                        self.act_copy, self.act_duplicate, self.act_delete]
        m = bar.addMenu("&View")
        m.addActions([self.act_fit, self.act_fit_sel, self.act_zoom_in, self.act_zoom_out])
        m.addSeparator()
        m.addActions([self.act_arrange, self.act_snap, self.act_theme])
        m.addSeparator()
        m.addAction(self.act_side_panels)
        for d in (self.palette_dock, self.inspector_dock, self.training_dock, self.bottom_dock):
            m.addAction(d.toggleViewAction())
        for d in self._side_docks():
            d.visibilityChanged.connect(lambda _visible: self._side_panels_changed())
        m = bar.addMenu("&Train")
        m.addActions([self.act_train, self.act_pause, self.act_stop])
        m.addSeparator()
        m.addActions([self.act_import_data, self.act_training_panel])
        self.act_clear_image_cache = image_cache_action(self, m)     # "Clear Image Cache (1.2 GB)…"
        m.addAction(self.act_clear_image_cache)
        m = bar.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        tools = self.addToolBar("Main")
        tools.setObjectName("main_toolbar")
        tools.setMovable(False)
        tools.addActions([self.act_new, self.act_open, self.act_save])
        tools.addSeparator()
        tools.addActions(self._toolbar_undo_redo())
        tools.addSeparator()
        tools.addActions([self.act_arrange, self.act_fit])
        tools.addSeparator()
        tools.addActions([self.act_train, self.act_stop])
        self._refresh_recent()

    def _toolbar_undo_redo(self) -> list[QAction]:
        """Undo / Redo for the toolbar: short labels that do not shift the buttons after them; what
        they undo is in the tooltip (the Edit menu names it in full)."""
        stack = self.document.undo_stack
        undo, redo = QAction("Undo", self), QAction("Redo", self)
        undo.triggered.connect(stack.undo)
        redo.triggered.connect(stack.redo)

        undo.setEnabled(stack.canUndo())
        redo.setEnabled(stack.canRedo())
        stack.canUndoChanged.connect(undo.setEnabled)
        stack.canRedoChanged.connect(redo.setEnabled)

        def tip(action: QAction, verb: str, keys: str):
            def show(text: str) -> None:
                try:
                    action.setToolTip(f"{verb} {text} ({keys})" if text else verb)
                except RuntimeError:  # the window is gone; the document's stack outlives it
                    pass
            return show

        stack.undoTextChanged.connect(tip(undo, "Undo", "Ctrl+Z"))
        stack.redoTextChanged.connect(tip(redo, "Redo", "Ctrl+Shift+Z"))
        self.tool_undo, self.tool_redo = undo, redo
        return [undo, redo]

    def _build_status(self) -> None:
        self.status_nodes = QLabel()
        self.status_params = QLabel()
        self.status_device = QLabel(self._device_text())
        for w in (self.status_nodes, self.status_params, self.status_device):
            w.setContentsMargins(8, 0, 8, 0)
            self.statusBar().addPermanentWidget(w)

    @staticmethod
    def _device_text() -> str:
        try:
            import torch
            if torch.cuda.is_available():
                return f"Device: {torch.cuda.get_device_name(0)}"
        except Exception:  # torch is there, but a broken driver must not stop the window
            pass
        return "Device: CPU"

    # ------------------------------------------------------------------ updates
    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.document.title}{' •' if self.document.modified else ''} — Deepwire")

    def _analysed(self, analysis) -> None:
        self._refresh_modules()
        self.problems.set_analysis(self.document.graph, analysis)
        n = len(self.document.graph)
        self.status_nodes.setText(f"{n} block{'s' * (n != 1)}")
        # A count over a graph with errors covers only the part that could be analysed: not shown as the total.
        self.status_params.setText(params_text(analysis))
        errors = len(analysis.errors)
        self.bottom_tabs.setTabText(0, f"Problems ({errors + len(analysis.warnings)})"
                                    if analysis.diagnostics else "Problems")
        self._refresh_code()

    def _refresh_code(self) -> None:
        """The code of the graph; while it has errors, the code of the part that leads to an Output
        when only blocks outside that part have them, else the last good code, marked out of date."""
        if self.bottom_tabs.currentWidget() is not self.code:
            return
        graph, analysis = self.document.graph, self.document.analysis
        try:
            if analysis.ok:
                self._last_code = generate(graph, analysis)[0]
                self.code.set_source(self._last_code)
                return
            part = self._code_of_connected_part(graph, analysis)
        except CodegenError as exc:
            self.code.set_message(str(exc))
            return
        if part is not None:
            source, left_out = part
            names = ", ".join(f"‘{graph.node(n).name}’" for n in left_out[:3]) + (" …" if len(left_out) > 3 else "")
            self.code.set_source(source, note=f"Not wired to an Output, so not in the model: {names}. "
                                 "This is the code of the rest.")
        elif self._last_code:
            self.code.set_source(self._last_code, note="Out of date: the graph has errors (see Problems). "
                                 "This is its code from before them.")
        else:
            self.code.set_message("The graph has errors; fix them (see Problems) to see its code.")

    @staticmethod
    def _code_of_connected_part(graph, analysis):
        """(source, ids left out) of the graph without the blocks that lead to no Output, when all
        errors are in those; else None."""
        live = analysis.live
        if not live or any(d.node_id is None or d.node_id in live for d in analysis.errors):
            return None
        left_out = [n for n in graph.node_ids() if n not in live]
        part = graph.copy()
        for node_id in left_out:
            part.remove_node(node_id)
        part_analysis = analyse(part)
        if not part_analysis.ok:
            return None
        return generate(part, part_analysis)[0], left_out

    def _graph_replaced(self) -> None:
        self._last_code = ""  # another graph: the old one's code is nothing to show
        self._view_states = []
        self.act_leave_module.setEnabled(False)
        QTimer.singleShot(0, self.view.show_graph)

    def _selection_changed(self) -> None:
        try:
            ids = self.scene.selected_node_ids()
        except RuntimeError:  # the scene is going away
            return
        graph = self.document.shown
        instances = [n for n in ids if n in graph and graph.node(n).type == MODULE]
        self.act_group.setEnabled(bool(ids))
        self.act_ungroup.setEnabled(len(instances) == 1 and len(ids) == 1)
        self.act_open_module.setEnabled(len(instances) == 1 and len(ids) == 1)
        self.inspector.set_selection(ids)
        if ids and not self.inspector_dock.isHidden() and self.inspector_dock.visibleRegion().isEmpty():
            self.inspector_dock.raise_()  # behind the Training panel: a selected block brings it to the front

    def arrange(self) -> None:
        """Arrange, then show the arranged graph."""
        if self.scene.arrange():
            self.view.show_graph()

    def select_and_centre(self, node_id: str) -> None:
        if node_id not in self.document.shown and node_id in self.document.graph:
            self.document.leave_module(0)  # a problem of the model's, shown while a module is open
        self.scene.select_nodes([node_id])
        self.view.centre_on_node(node_id)

    def _fit_selection_or_type(self) -> None:
        """F fits the selection; with nothing selected it is the first letter typed to add a block."""
        if self.scene.selected_node_ids():
            self.view.fit_selection()
        else:
            self._quick_add_at(self.view._cursor_scene_pos(), "f")

    def select_all(self) -> None:
        for item in self.scene.node_items.values():
            item.setSelected(True)

    def _toggle_snap(self) -> None:
        self.scene.snap = self.act_snap.isChecked()

    def _toggle_theme(self) -> None:
        theme.apply(QApplication.instance(), dark=not self.act_theme.isChecked())
        self.scene.setBackgroundBrush(theme.colour("canvas"))
        self.scene.rebuild()

    # ------------------------------------------------------------------ quick add
    # ------------------------------------------------------------------ modules
    def group_selection(self, name: str | None = None) -> str | None:
        """Group the selected blocks into a new module (one undo step), asking its name unless given.
        A selection that cannot be a module is explained in the status bar and nothing changes.
        Returns the new module's name."""
        ids = self.scene.selected_node_ids()
        if not ids:
            self._say("Select the blocks to group into a module first.")
            return None
        top, graph = self.document.graph, self.document.shown
        self.document.refresh()            # the shapes as they are now, not as of the last pause in editing
        analysis = self.document.shown_analysis
        try:  # tried on a copy first, so a selection that cannot be a module is told before a name is asked
            group(graph.copy(), ids, analysis.specs, "Probe")
        except GraphError as exc:
            self._say(f"Cannot group into a module: {exc}.")
            return None
        if name is None:
            name = self.ask_module_name(self.suggest_module_name(ids))
            if name is None:
                return None
        wanted = name if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) else to_class_name(name, "Module")
        command = GroupNodes(top, graph, ids, analysis.specs, wanted)
        try:
            module = command.first()
        except GraphError as exc:
            self._say(f"Cannot group into a module: {exc}.")
            return None
        self.document.undo_stack.push(command)
        self.scene.select_nodes([command.node_id])
        renamed = f" (“{name}” was taken or is not a name)" if module != name else ""
        self._say(f"Grouped {len(ids)} block{'s' * (len(ids) != 1)} into the module {module}{renamed}: "
                  "double-click it to edit the module.")
        return module

    def suggest_module_name(self, node_ids) -> str:
        """A class name for a new module made of these blocks: ResidualBlock when it adds a skip, else
        after its first block's type (Conv2dBlock)."""
        graph = self.document.shown
        types = [graph.node(n).type for n in graph.node_ids() if n in set(node_ids)]
        base = "ResidualBlock" if "Add" in types else (types[0] + "Block") if types else "Module"
        return self.document.graph.module_name(base)

    def ask_module_name(self, suggested: str) -> str | None:
        """The new module's name, or None when cancelled."""
        text, ok = QInputDialog.getText(self, "Group into Module", "Name of the new module (it becomes a class "
                                        "in the generated code, e.g. ResidualBlock):", QLineEdit.Normal, suggested)
        text = text.strip()
        return text if ok and text else None

    def ungroup_selection(self) -> list[str]:
        """Put the selected module block's blocks in its place (one undo step); returns their ids."""
        graph = self.document.shown
        ids = self.scene.selected_node_ids()
        if len(ids) != 1 or graph.node(ids[0]).type != MODULE:
            self._say("Select one module block to ungroup.")
            return []
        command = UngroupNode(self.document.graph, graph, ids[0])
        try:
            added = command.first()
        except GraphError as exc:
            self._say(f"Cannot ungroup: {exc}.")
            return []
        self.document.undo_stack.push(command)
        self.scene.select_nodes(added)
        return added

    def open_module(self, name: str) -> bool:
        """Show the module's own graph on the canvas (edits there change every instance)."""
        if name not in self.document.graph.modules:
            self._say(f"This project has no module named {name}.")
            return False
        if name in self.document.module_path:
            self._say(f"{name} is open already (a module cannot contain itself).")
            return False
        state = (self.view.transform(), self.view.centre_scene_pos(), self.scene.selected_node_ids(),
                 self.view.keep_fitted)
        self._view_states.append(state)
        ids = self.scene.selected_node_ids()        # opened from its instance (a double-click selects it first)
        one = ids[0] if len(ids) == 1 and ids[0] in self.document.shown else None
        specs = (self.document.instance_specs(one) if one is not None
                 and self.document.shown.node(one).params.get("module") == name else None)
        if not self.document.enter_module(name, specs):
            self._view_states.pop()
            return False
        return True

    def _open_selected_module(self) -> None:
        ids = self.scene.selected_node_ids()
        graph = self.document.shown
        if len(ids) == 1 and graph.node(ids[0]).type == MODULE:
            self.open_module(str(graph.node(ids[0]).params.get("module")))

    def _escape(self) -> None:
        """Escape on the canvas with nothing else to cancel: one level out of the module shown."""
        if self.document.module_path:
            self.document.leave_module(len(self.document.module_path) - 1)

    def delete_module(self, name: str) -> bool:
        """Delete an unused module definition (one undo step)."""
        uses = self.document.module_uses().get(name)
        if uses is None:
            return False
        if uses:
            self._say(f"{name} is used by {uses} block{'s' * (uses != 1)}: delete or ungroup them first.")
            return False
        self.document.undo_stack.push(RemoveModule(self.document.graph, name))
        self._say(f"Deleted the module {name} (Ctrl+Z brings it back).")
        return True

    def rename_module(self, name: str, new: str | None = None) -> str | None:
        """Rename a module and every instance's reference to it (one undo step); asks the name unless
        given. Returns the name it got."""
        graph = self.document.graph
        if name not in graph.modules:
            return None
        if new is None:
            text, ok = QInputDialog.getText(self, "Rename Module", "New name of the module (a class in the code):",
                                            QLineEdit.Normal, name)
            new = text.strip() if ok else ""
            if not new:
                return None
        wanted = new if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", new) else to_class_name(new, "Module")
        if wanted == name:
            return name
        final = graph.module_name(wanted)
        self.document.undo_stack.push(RenameModule(graph, name, final))
        if final != new:
            self._say(f"The module is named {final} (“{new}” was taken or is not a name).")
        return final

    def _shown_changed(self) -> None:
        """A module entered or left: back out, the view and selection are as they were before entering."""
        depth = len(self.document.module_path)
        self.act_leave_module.setEnabled(depth > 0)
        if depth < len(self._view_states):
            transform, centre, selected, fitted = self._view_states[depth]
            del self._view_states[depth:]
            self.view.setTransform(transform)
            self.view.set_zoom(transform.m11())
            self.view.centerOn(centre)
            self.view.keep_fitted = fitted
            self.scene.select_nodes(selected)
        else:
            del self._view_states[depth:]
            self.view.show_graph()
        self.view.setFocus()

    def _refresh_modules(self) -> None:
        """The palette's Modules section: the project's modules, how much each is used, what each takes."""
        graph = self.document.graph
        uses = self.document.module_uses()
        tips = {}
        for name, definition in graph.modules.items():
            inputs = [definition.node(n).name for n in module_ports(definition)[0]]
            blocks = sum(1 for n in definition.nodes() if n.type not in ("Input", "Output"))
            tips[name] = (f"<p><b>{html.escape(name)}</b> (module)</p><p>{blocks} block{'s' * (blocks != 1)}; "
                          f"input{'s' * (len(inputs) != 1)}: {html.escape(', '.join(inputs) or 'none')}; "
                          f"used by {uses[name]}.</p><p>Drag it onto the canvas or double-click it to add an "
                          "instance; right-click to open or delete it.</p>")
        self.palette_widget.set_modules(uses, tips)

    def _say(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    def _quick_add_at(self, scene_pos, text: str) -> None:
        """Tab, typing or a double-click on the canvas. With one block selected (only the keyboard
        can leave one: a click on the canvas clears it), the new block goes beside it."""
        selected = self.scene.selected_node_ids()
        self._quick_after = selected[0] if len(selected) == 1 else None
        if self._quick_after is not None:
            item = self.scene.node_items[self._quick_after]
            scene_pos = item.sceneBoundingRect().topRight()
            if not self.view.viewport().rect().contains(self.view.mapFromScene(scene_pos)):
                scene_pos = self.view.centre_scene_pos()
        self._quick_pos, self._quick_port = scene_pos, None
        self.quick_add.popup(self.view.mapToGlobal(self.view.mapFromScene(scene_pos)), text,
                             modules=self.document.addable_modules())

    def _quick_add_from_port(self, scene_pos, port) -> None:
        self._quick_pos, self._quick_port, self._quick_after = scene_pos, port, None
        self.quick_add.popup(self.view.mapToGlobal(self.view.mapFromScene(scene_pos)), "",
                             self.scene.blocks_that_fit(port), modules=self.document.addable_modules())

    def _quick_add_chosen(self, type_name: str) -> None:
        pos = self._quick_pos if self._quick_pos is not None else self.view.centre_scene_pos()
        port, self._quick_port = self._quick_port, None
        after, self._quick_after = self._quick_after, None
        if port is not None and port.scene() is None:
            port = None
        if after is not None and after in self.document.shown:
            new = self.scene.add_block_after(type_name, after)
        elif port is not None:
            new = self.scene.add_block(type_name, pos, port)  # where the wire was dropped
        else:
            new = self._add_clear_of_others(type_name, pos)
        self._reveal([new] if new else [])
        self.view.setFocus()

    def _add_from_palette(self, type_name: str) -> None:
        """A double-click or Enter in the palette: beside the one selected block, like quick add;
        else in the middle of the view, clear of the blocks there."""
        selected = self.scene.selected_node_ids()
        if len(selected) == 1:
            new = self.scene.add_block_after(type_name, selected[0])
        else:
            new = self._add_clear_of_others(type_name, self.view.centre_scene_pos())
        self._reveal([new] if new else [])

    def _add_clear_of_others(self, type_name: str, pos):
        spot = self.scene.free_spot(pos.x() - NODE_WIDTH / 2, pos.y() - 20)
        return self.scene.add_block(type_name, pos, top_left=spot)

    def _reveal(self, node_ids) -> None:
        """Scroll (never zoom) so that new blocks are in view."""
        rect = QRectF()
        for node_id in node_ids:
            item = self.scene.node_items.get(node_id)
            if item is not None:
                rect = rect.united(item.sceneBoundingRect())
        if not rect.isNull():
            self.view.ensureVisible(rect, 40, 40)

    # ------------------------------------------------------------------ clipboard
    def copy(self) -> None:
        ids = self.scene.selected_node_ids()
        if not ids:
            return
        from PySide6.QtCore import QMimeData
        data = QMimeData()
        payload = json.dumps(fragment(self.document.shown, ids))
        data.setData(FRAGMENT_MIME, payload.encode("utf-8"))
        data.setText(payload)
        QApplication.clipboard().setMimeData(data)

    def cut(self) -> None:
        self.copy()
        self.scene.delete_selection()

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime is None or not mime.hasFormat(FRAGMENT_MIME):
            return
        try:
            data = json.loads(bytes(mime.data(FRAGMENT_MIME)).decode("utf-8"))
            self._paste(data)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.statusBar().showMessage(f"Cannot paste: {exc}", 6000)

    def duplicate(self) -> None:
        ids = self.scene.selected_node_ids()
        if ids:
            self._paste(fragment(self.document.shown, ids))

    def _paste(self, data: dict) -> None:
        """The copies land clear of every block (below the originals), selected and in view."""
        offset = self.scene.paste_offset(data.get("nodes", []))
        ids = paste_nodes(self.document.undo_stack, self.document.shown, data, offset)
        self.scene.select_nodes(ids)
        self._reveal(ids)

    # ------------------------------------------------------------------ training
    def train(self) -> None:
        self._show_training_panel()
        self.training.start()

    def _show_training_panel(self) -> None:
        self.training_dock.show()
        self.training_dock.raise_()

    def _import_dataset(self) -> None:
        self._show_training_panel()
        self.training.import_dataset()

    def _run_started(self) -> None:
        self.bottom_dock.show()
        self.bottom_tabs.setCurrentWidget(self.curves)
        if not self.bottom_dock.isFloating() and self.bottom_dock.height() < 300:
            self.resizeDocks([self.bottom_dock], [max(300, self.height() // 3)], Qt.Vertical)

    def _running_changed(self, running: bool) -> None:
        self.act_train.setEnabled(not running)
        self.act_pause.setEnabled(running)
        self.act_stop.setEnabled(running)

    # ------------------------------------------------------------------ files
    def maybe_save(self) -> bool:
        """True when it is fine to drop the current document (saved, discarded, or unchanged)."""
        if not self.training.confirm_stop():
            return False
        if not self.document.modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to {self.document.title}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Save:
            return self.save()
        return answer == QMessageBox.Discard

    def new_from_gallery(self) -> None:
        if not self.maybe_save():
            return
        dialog = TemplateGallery(self)
        if dialog.exec() == QDialog.Accepted and dialog.choice is not None:
            if dialog.choice:
                self.document.new_from_template(dialog.choice)
            else:
                self.document.new_empty()

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open", self._last_dir(), FILE_FILTER)
        if path:
            self.open_path(path, ask=False)

    def open_path(self, path, ask: bool = True, quiet: bool = False) -> bool:
        """Open a file; `quiet`: a failure is told in the status bar, not in a message box."""
        if ask and not self.maybe_save():
            return False
        try:
            self.document.open(path)
        except (FormatError, OSError) as exc:
            if quiet:
                self.statusBar().showMessage(f"{Path(path).name} cannot be opened: {exc}", 12000)
            else:
                QMessageBox.warning(self, "Cannot open", f"{Path(path).name} cannot be opened:\n\n{exc}")
            return False
        notes = getattr(self.document.project, "notes", None)
        if notes:
            self.statusBar().showMessage(f"{Path(path).name}: " + "; ".join(notes), 12000)
        self._add_recent(path)
        return True

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        suggested = str(Path(self._last_dir()) / (self.document.graph.name.replace(" ", "_") + ".deepwire"))
        path, _ = QFileDialog.getSaveFileName(self, "Save As", suggested, FILE_FILTER)
        return self._save_to(Path(path)) if path else False

    def _save_to(self, path: Path) -> bool:
        try:
            saved = self.document.save(path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save",
                                f"{path} could not be written:\n\n{exc}\n\nYour work is still open.")
            return False
        self._add_recent(saved)
        self.statusBar().showMessage(f"Saved {saved}", 4000)
        return True

    def import_model_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import a model", self._last_dir(), IMPORT_FILTER)
        if path:
            self.import_model(path)

    def import_model(self, path, class_name: str | None = None, input_shape=None, confirm: bool = True) -> bool:
        """Turn a PyTorch module or a Keras model file into the open document (unsaved). A .py file with
        `confirm` goes through the Import dialog (trust, class, input shape, graph only; a failure is shown
        there and can be corrected); without `confirm` (scripts, tests) it is imported as given."""
        from engine.importers import ModelImportError
        from engine.project import Project

        path = Path(path)
        if path.suffix.lower() == ".py" and confirm:
            dialog = ImportModelDialog(self, path, class_name, input_shape)
            accepted = dialog.exec() == QDialog.Accepted and dialog.outcome is not None
            outcome = dialog.outcome
            dialog.deleteLater()
            if not accepted:
                return False
        else:
            try:
                outcome = run_import(self, path, class_name, input_shape)
            except ModelImportError as exc:
                QMessageBox.warning(self, "Cannot import", f"{path.name} could not be imported.\n\n"
                                    + in_designer_words(str(exc)))
                return False
            if outcome is None:      # the graph alone was declined
                return False
        result, graph_only = outcome
        self.document.replace(Project(result.graph, weights=result.weights), None)
        self.document.mark_changed()
        n = len(result.graph)
        if graph_only:
            result.notes.append("imported without weights: the blocks start from fresh weights")
        notes = "".join(f"\n• {note}" for note in result.notes)
        self.statusBar().showMessage(f"Imported {path.name}: {n} blocks", 8000)
        if notes and confirm:
            QMessageBox.information(self, "Imported", f"Imported {path.name} as {n} blocks.{notes}")
        return True

    def load_weights_dialog(self) -> None:
        from engine.weights_load import FILE_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Load weights into the model", self._last_dir(), FILE_FILTER)
        if path:
            self.load_weights(path)

    def load_weights(self, path) -> bool:
        """Match a weights file to the model (engine.weights_load), show the report, and on Apply set the
        project's weights through an undoable command. False when nothing was applied."""
        from engine.weights_load import WeightsLoadError, load_weights

        from .commands import SetWeights
        from .weights_dialog import LoadWeightsDialog

        path = Path(path)
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            report = load_weights(self.document.graph, path, current=self.document.project.weights)
        except WeightsLoadError as exc:
            failure = str(exc)
        else:
            failure = None
        finally:
            QApplication.restoreOverrideCursor()
        if failure is not None:
            QMessageBox.warning(self, "Cannot load weights", failure)
            self.statusBar().showMessage(f"Weights not loaded: {failure}", 10000)
            return False
        dialog = LoadWeightsDialog(self, report)
        accepted = dialog.exec() == QDialog.Accepted and report.ok
        dialog.deleteLater()
        if not accepted:
            self.statusBar().showMessage(f"Weights from {path.name} not loaded", 6000)
            return False
        self.document.undo_stack.push(SetWeights(self.document, report.applied_state, f"load weights from {path.name}",
                                                 source=f"{path.name}: {report.headline()}"))
        self.statusBar().showMessage(f"Loaded weights: {report.headline()}. Training now starts from them "
                                     "(Start from: Loaded weights); freeze blocks to keep them fixed.", 12000)
        return True

    def export_dialog(self) -> None:
        """One dialog: the format first, then a destination folder, which may be new (it is created);
        a folder that is not empty is written into only when the user says so (the CLI's --force)."""
        from engine.export import ExportError, export

        analysis = self.document.refresh()
        if not analysis.ok:
            QMessageBox.warning(self, "Cannot export", "The graph has errors, so it cannot be exported yet; fix them "
                                "first (see Problems):\n\n" + "\n".join(f"• {d.message}" for d in analysis.errors[:5]))
            return
        last = str(self.settings.value("export/format", "python"))
        dialog = ExportDialog(self, self.document.graph.name, self._last_dir(), last)
        while dialog.exec() == QDialog.Accepted:
            fmt, folder = dialog.format(), dialog.folder()
            QApplication.setOverrideCursor(Qt.WaitCursor)
            try:
                result = export(self.document.project, fmt, folder, force=dialog.force)
            except (ExportError, OSError) as exc:
                failure = exc
            else:
                failure = None
            finally:
                QApplication.restoreOverrideCursor()
            if failure is not None:
                QMessageBox.warning(self, "Cannot export", f"{FORMAT_INFO[fmt][0]} to {folder}:\n\n{failure}")
                continue   # the dialog again, as it was: another format or folder may do
            self.settings.setValue("export/format", fmt)
            notes = "\n".join(result.notes)
            self.statusBar().showMessage(f"Exported {FORMAT_INFO[fmt][0]} to {folder}", 8000)
            QMessageBox.information(self, "Exported", f"{FORMAT_INFO[fmt][0]} written to {folder}:\n"
                                    + "\n".join(f"  {Path(p).name}" for p in result.files)
                                    + (f"\n\n{notes}" if notes else ""))
            return

    def reopen_last_enabled(self) -> bool:
        value = self.settings.value("reopen_last", True)
        return value not in (False, "false", "0", 0)

    def _toggle_reopen_last(self) -> None:
        self.settings.setValue("reopen_last", self.act_reopen_last.isChecked())
        self.settings.sync()

    def reopen_last(self) -> bool:
        """At start: open the file that was open last (the first of the recent files), when the
        setting is on and the file is still there. True when it was opened."""
        if not self.reopen_last_enabled():
            return False
        recent = self.recent_files()
        if not recent or not Path(recent[0]).is_file():
            return False
        return self.open_path(recent[0], ask=False, quiet=True)

    def _last_dir(self) -> str:
        if self.document.path:
            return str(self.document.path.parent)
        return str(self.settings.value("last_dir", str(Path.home())))

    def _add_recent(self, path) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path] + recent[: MAX_RECENT - 1])
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._refresh_recent()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        files = [p for p in self.recent_files() if Path(p).exists()]
        for path in files:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_path(p)).setToolTip(path)
        self.recent_menu.setEnabled(bool(files))

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{a}</b></td><td>{b}</td></tr>" for a, b in SHORTCUTS)
        QMessageBox.information(self, "Keyboard and mouse", f"<table cellspacing='6'>{rows}</table>")

    # ------------------------------------------------------------------ window events
    def closeEvent(self, event):
        if self.maybe_save():
            self.save_layout()
            self.training.session.shutdown()   # never leave a training process behind
            event.accept()
        else:
            event.ignore()

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0].toLocalFile())
            event.acceptProposedAction()


class TemplateGallery(QDialog):
    """New: pick a starter model."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New from a template")
        self.choice: str | None = None
        layout = QVBoxLayout(self)
        self.list = QListWidget(self)
        empty = QListWidgetItem("Empty canvas\nStart from nothing: drag blocks from the palette")
        empty.setData(Qt.UserRole, "")
        self.list.addItem(empty)
        for name in [STARTER] + [n for n in template_names() if n != STARTER]:
            info = describe(name)
            item = QListWidgetItem(f"{info['title']}\n{info['description']}")
            item.setData(Qt.UserRole, name)
            self.list.addItem(item)
        self.list.setCurrentRow(1)
        self.list.setWordWrap(True)
        self.list.setSpacing(4)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        layout.addWidget(self.list)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(520, 460)

    def accept(self):
        item = self.list.currentItem()
        self.choice = item.data(Qt.UserRole) if item else None
        super().accept()


# The export formats in the order the Export dialog offers them: (title, what it gives)
FORMAT_INFO = {
    "python": ("Python bundle", "model.py (the generated PyTorch source), the weights, train.py to train on, and a "
               "test that checks the bundle gives this app's outputs; requirements.txt lists what each needs "
               "(model.py alone: PyTorch)."),
    "onnx": ("ONNX", "model.onnx for any batch size, for ONNX Runtime, TensorRT, OpenVINO and other runtimes."),
    "torchscript": ("TorchScript", "model.pt: torch.jit.load runs it without the Python source, in Python or in C++ "
                    "(LibTorch)."),
    "weights": ("Weights only", "weights.safetensors: the parameters alone, to load into the model's code "
                "(load_state_dict)."),
}


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


class ExportDialog(QDialog):
    """Export: the format (with what each gives), then the destination folder (typed, or chosen with
    Browse…; a new one is created). Export asks before writing into a folder that is not empty."""

    def __init__(self, parent, model_name: str, start_dir: str, fmt: str = "python"):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.force = False              # the user agreed to write into a folder that is not empty
        self._start_dir = Path(start_dir or Path.home())
        self._slug = re.sub(r"[^A-Za-z0-9_-]+", "_", model_name).strip("_") or "model"
        self._folder_edited = False     # typed or browsed: format changes no longer rename it
        layout = QVBoxLayout(self)
        formats = QGroupBox("Format", self)
        form_layout = QVBoxLayout(formats)
        self.format_buttons: dict[str, QRadioButton] = {}
        self._group = QButtonGroup(self)
        muted = theme.colours()["muted"]
        for name, (title, what) in FORMAT_INFO.items():
            button = QRadioButton(title, formats)
            button.setObjectName(f"format-{name}")
            line = QLabel(what, formats)
            line.setWordWrap(True)
            line.setStyleSheet(f"color: {muted}; margin-left: 24px")
            if name == "onnx" and not onnx_available():
                button.setEnabled(False)
                line.setText(what + " Not available: install the onnx package (pip install 'deepwire[onnx]').")
            self._group.addButton(button)
            self.format_buttons[name] = button
            form_layout.addWidget(button)
            form_layout.addWidget(line)
        layout.addWidget(formats)

        where = QGroupBox("Destination folder", self)
        where_layout = QVBoxLayout(where)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit(where)
        self.folder_edit.setPlaceholderText("A folder; a new one is created")
        self.folder_edit.textEdited.connect(self._edited)
        self.folder_edit.textChanged.connect(lambda _: self._check_folder())
        self.browse_button = QPushButton("Browse…", where)
        self.browse_button.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)
        where_layout.addLayout(row)
        self.folder_note = QLabel(where)
        self.folder_note.setWordWrap(True)
        where_layout.addWidget(self.folder_note)
        layout.addWidget(where)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel, self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self._group.buttonToggled.connect(self._format_changed)
        start = self.format_buttons.get(fmt)
        if start is None or not start.isEnabled():
            start = self.format_buttons["python"]
        start.setChecked(True)
        self._suggest()
        self.resize(580, max(self.layout().heightForWidth(580), self.minimumSizeHint().height()))

    # ------------------------------------------------------------------ state
    def format(self) -> str:
        return next(name for name, b in self.format_buttons.items() if b.isChecked())

    def folder(self) -> Path:
        """The destination as typed: ~ expanded, a relative path taken from the project's folder."""
        text = self.folder_edit.text().strip()
        path = Path(text).expanduser()
        return path if path.is_absolute() else self._start_dir / path

    def _suggest(self) -> None:
        """Until the user types or browses, the destination is a new folder beside the project,
        named after the model and the format."""
        if not self._folder_edited:
            self.folder_edit.setText(str(self._start_dir / f"{self._slug}_{self.format()}"))

    def _format_changed(self, button, checked: bool) -> None:
        if checked:
            self._suggest()

    def _edited(self, _text: str) -> None:
        self._folder_edited = True

    def _browse(self) -> None:
        current = self.folder()
        start = next((p for p in (current, *current.parents) if p.is_dir()), self._start_dir)
        chosen = QFileDialog.getExistingDirectory(self, "Export to folder", str(start))
        if chosen:
            self._folder_edited = True
            self.folder_edit.setText(chosen)

    def _check_folder(self) -> bool:
        """Say what Export will do with the folder; False (Export disabled) when it cannot."""
        colours = theme.colours()
        ok, text, colour = True, "", colours["muted"]
        if not self.folder_edit.text().strip():
            ok, text, colour = False, "Type or choose a folder.", colours["error"]
        else:
            folder = self.folder()
            try:
                if not folder.exists():
                    text = f"A new folder will be created: {folder}"
                elif not folder.is_dir():
                    ok, text, colour = False, f"{folder} is a file, not a folder.", colours["error"]
                elif any(folder.iterdir()):
                    text = f"{folder} is not empty: you will be asked before its files are replaced."
                    colour = colours["warning"]
                else:
                    text = f"Into the empty folder {folder}"
            except OSError as exc:
                ok, text, colour = False, f"{folder} cannot be read: {exc.strerror or exc}", colours["error"]
        self.folder_note.setText(text)
        self.folder_note.setStyleSheet(f"color: {colour}")
        self.export_button.setEnabled(ok)
        return ok

    def accept(self) -> None:
        if not self._check_folder():
            return
        folder = self.folder()
        self.force = False
        try:
            full = folder.is_dir() and any(folder.iterdir())
        except OSError:
            full = False
        if full:
            if not self._confirm_replace(folder):
                return
            self.force = True
        super().accept()

    def _confirm_replace(self, folder: Path) -> bool:
        box = QMessageBox(QMessageBox.Warning, "Replace files?", f"The folder {folder} is not empty.", parent=self)
        box.setObjectName("deepwire-export-replace")
        box.setInformativeText(f"Export the {FORMAT_INFO[self.format()][0]} into it? Files it holds with the "
                               "names the export writes are replaced; its other files are kept.")
        replace = box.addButton("Replace", QMessageBox.DestructiveRole)
        cancel = box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        return clicked is replace
