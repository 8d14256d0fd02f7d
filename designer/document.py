"""The open document: the engine graph (the one source of truth), its undo stack, the file
it lives in, and its analysis, refreshed shortly after each edit.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from engine.analysis import Analysis, analyse
from engine.fileio import atomic_write_text
from engine.graph import Graph
from engine.project import SUFFIX, Project, is_project_file, load_project, read_graph, save_project
from engine.templates import STARTER, describe, load_template
from engine.training import TrainConfig

ANALYSIS_DELAY_MS = 40


class Document(QObject):
    analysed = Signal(object)      # Analysis, after edits settle
    modifiedChanged = Signal(bool)
    pathChanged = Signal(object)   # Path | None
    graphReplaced = Signal()       # a new graph object (new/open)
    projectChanged = Signal()      # settings, dataset, weights or runs changed (each time; not undoable)

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
        self.projectChanged.emit()

    # ------------------------------------------------------------------ the project's other parts
    # Views change settings, data, weights and runs only through these (never by assigning the
    # project's fields), so that each change marks the document modified and autosave sees it.
    def set_training_config(self, config: TrainConfig) -> bool:
        """The training settings (validated by the caller); True when they changed."""
        if config == self.project.config:
            return False
        self.project.config = config
        self.mark_changed()
        return True

    def set_dataset(self, name: str | None, options: dict | None = None, *, unsaved: bool = True) -> bool:
        """The data the project trains on and how it is read (load_dataset's keywords). unsaved=False:
        a default chosen on opening, which does not make the project need saving. True when it changed."""
        options = dict(options or {})
        project = self.project
        if name == project.dataset and options == project.dataset_options:
            return False
        project.dataset, project.dataset_options = name, options
        if unsaved:
            self.mark_changed()
        return True

    def set_weights(self, weights: dict | None) -> None:
        """The model's trained weights (e.g. an epoch's, restored)."""
        self.project.weights = weights
        self.mark_changed()

    def record_run(self, result, **run) -> dict:
        """Record a finished run in the project (Project.record_run: the same record the CLI writes)
        and return its record."""
        record = self.project.record_run(result, **run)
        self.mark_changed()
        return record

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
