"""The open document: the engine graph (the one source of truth), its undo stack, the file
it lives in, and its analysis, refreshed shortly after each edit.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.analysis import Analysis, analyse
from engine.fileio import atomic_write_text, read_graph
from engine.graph import Graph
from engine.project import SUFFIX, Project, is_project_file, load_project, save_project
from engine.templates import STARTER, describe, load_template

ANALYSIS_DELAY_MS = 40


class Document(QObject):
    analysed = Signal(object)      # Analysis, after edits settle
    modifiedChanged = Signal(bool)
    pathChanged = Signal(object)   # Path | None
    graphReplaced = Signal()       # a new graph object (new/open)

    def __init__(self, graph: Graph | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.path: Path | None = None
        self.project = Project(graph or Graph("untitled"))
        self._changed_outside_graph = False   # settings, runs, weights: not undoable, but unsaved work
        self.analysis: Analysis = analyse(self.graph)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(ANALYSIS_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.graph.subscribe(self._on_graph_event)

    # ------------------------------------------------------------------ state
    @property
    def graph(self) -> Graph:
        return self.project.graph

    @property
    def modified(self) -> bool:
        return self._changed_outside_graph or not self.undo_stack.isClean()

    def mark_changed(self) -> None:
        """Training settings, a new run or restored weights changed the project: it needs saving."""
        if not self._changed_outside_graph:
            self._changed_outside_graph = True
            self.modifiedChanged.emit(True)

    @property
    def title(self) -> str:
        name = self.path.name if self.path else f"{self.graph.name} (unsaved)"
        return name

    def _clean_changed(self, clean: bool) -> None:
        self.modifiedChanged.emit(self.modified)

    def _on_graph_event(self, event: str, payload: dict) -> None:
        if event != "node_moved":
            self._timer.start()

    def refresh(self) -> Analysis:
        self._timer.stop()
        self.analysis = analyse(self.graph)
        self.analysed.emit(self.analysis)
        return self.analysis

    # ------------------------------------------------------------------ files
    def replace(self, project: Project, path: Path | None) -> None:
        self.graph.unsubscribe(self._on_graph_event)
        self.project = project
        self.graph.subscribe(self._on_graph_event)
        self.path = path
        self._changed_outside_graph = False
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._timer.stop()
        self.analysis = analyse(self.graph)  # before the views rebuild, so they build once
        self.graphReplaced.emit()
        self.pathChanged.emit(path)
        self.modifiedChanged.emit(False)
        self.analysed.emit(self.analysis)

    def new_empty(self) -> None:
        self.replace(Project(Graph("untitled")), None)

    def new_from_template(self, name: str = STARTER) -> None:
        self.replace(Project(load_template(name), dataset=describe(name)["dataset"] or None), None)

    def open(self, path: str | Path) -> None:
        """Load a graph .json or a project file. Raises FormatError; the document is unchanged then."""
        path = Path(path)
        if is_project_file(path):
            project = load_project(path)
        else:
            project = Project(read_graph(path))
        self.replace(project, path)

    def save(self, path: str | Path | None = None) -> Path:
        """Save atomically: a project file keeps weights and history; a .json holds the graph only."""
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no file name yet: use Save As")
        if target.suffix.lower() == ".json":
            if self.project.dataset:          # the graph file names the data picked in the Training panel
                self.graph.dataset = self.project.dataset
            atomic_write_text(target, self.graph.to_json() + "\n")
        else:
            if not target.suffix:
                target = target.with_suffix(SUFFIX)
            save_project(target, self.project)
        self.path = target
        self._changed_outside_graph = False
        self.undo_stack.setClean()
        self.modifiedChanged.emit(False)
        self.pathChanged.emit(target)
        return target
