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
from engine.modules import concrete, reachable
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
    shownChanged = Signal()        # the canvas shows another graph: a module entered or left
    shownAnalysed = Signal(object)  # Analysis of the shown graph (the model's, or the module's being edited)

    def __init__(self, graph: Graph | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.path: Path | None = None
        self.project = Project(graph or Graph("untitled"))
        self._changed_outside_graph = False   # settings, runs, weights: not undoable, but unsaved work
        self.analysis: Analysis = analyse(self.graph)
        self.shown_analysis: Analysis = self.analysis
        # the modules entered, outermost first, and their definitions (a definition replaced or
        # removed underneath, e.g. by undo, takes the canvas back out of it)
        self.module_path: list[str] = []
        self._entered: list[Graph] = []
        self._entered_specs: list[list | None] = []   # the shapes the instance opened from gave its inputs
        self._watched: list[Graph] = []   # the model and every module definition: edits in any re-analyse
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(ANALYSIS_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self._watch()

    # ------------------------------------------------------------------ state
    @property
    def graph(self) -> Graph:
        return self.project.graph

    @property
    def shown(self) -> Graph:
        """The graph the canvas shows and edits: the model, or the module definition entered.
        Saving, training, export and the code always use `graph`, the model."""
        return self._entered[-1] if self._entered else self.graph

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

    def set_start(self, weights: dict | None, source: str, start_from: str) -> None:
        """The weights fine-tuning runs start from, where they came from, and whether runs start there."""
        from dataclasses import replace

        self.project.start_weights, self.project.start_source = weights, source
        self.project.config = replace(self.project.config, start_from=start_from)
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
        if event == "modules_changed":
            self._watch()
            self._check_path()
        if event != "node_moved":
            self._timer.start()

    def _watch(self) -> None:
        """Listen to the model and to every module definition (an edit inside one changes every instance)."""
        wanted = [self.graph, *(d for d in self.graph.modules.values() if d is not self.graph)]
        for graph in self._watched:
            if not any(graph is w for w in wanted):
                graph.unsubscribe(self._on_graph_event)
        for graph in wanted:
            if not any(graph is w for w in self._watched):
                graph.subscribe(self._on_graph_event)
        self._watched = wanted

    def _unwatch(self) -> None:
        for graph in self._watched:
            graph.unsubscribe(self._on_graph_event)
        self._watched = []

    def refresh(self) -> Analysis:
        self._timer.stop()
        self.analysis = analyse(self.graph)
        self._analyse_shown()
        self.analysed.emit(self.analysis)
        self.shownAnalysed.emit(self.shown_analysis)
        return self.analysis

    def _analyse_shown(self) -> None:
        if not self._entered:
            self.shown_analysis = self.analysis
            return
        specs = self._entered_specs[-1] if len(self._entered_specs) == len(self._entered) else None
        # opened from an instance: the shapes that instance gives (the node ids are the definition's own)
        shown = concrete(self.shown, specs) if specs else self.shown
        self.shown_analysis = analyse(shown, modules=self.graph.modules)

    # ------------------------------------------------------------------ modules: which graph is shown
    def enter_module(self, name: str, specs: list | None = None) -> bool:
        """Show (and edit) the definition of module `name`, one level deeper. False when the project
        has no such module, or it is already entered (a module that contains itself). `specs`: the
        input shapes of the instance it is opened from (instance_specs), shown inside instead of the
        shapes the definition's Inputs were saved with."""
        definition = self.graph.modules.get(name)
        if definition is None or name in self.module_path:
            return False
        self.module_path.append(name)
        self._entered.append(definition)
        self._entered_specs.append(list(specs) if specs else None)
        self._shown_changed()
        return True

    def instance_specs(self, node_id: str) -> list | None:
        """The input shapes of the Module instance `node_id` of the graph shown, or None if unknown."""
        graph, analysis = self.shown, self.shown_analysis
        if node_id not in graph:
            return None
        sources = analysis.inputs_of(graph, node_id)
        return [analysis.specs[s] for s in sources] if sources and all(s in analysis.specs for s in sources) else None

    def leave_module(self, depth: int = 0) -> None:
        """Go back out to `depth` modules deep (0: the model)."""
        depth = max(0, depth)
        if depth >= len(self.module_path):
            return
        del self.module_path[depth:]
        del self._entered[depth:]
        del self._entered_specs[depth:]
        self._shown_changed()

    def _shown_changed(self) -> None:
        self._analyse_shown()
        self.shownChanged.emit()
        self.shownAnalysed.emit(self.shown_analysis)

    def _check_path(self) -> None:
        """A module entered that the project no longer holds (undo of its grouping, a deleted module):
        the canvas goes back out to the last level that still exists. A renamed one stays shown."""
        for depth, (name, definition) in enumerate(zip(self.module_path, self._entered)):
            if self.graph.modules.get(name) is definition:
                continue
            renamed = next((n for n, d in self.graph.modules.items() if d is definition), None)
            if renamed is not None:      # renamed: still shown, under its new name
                self.module_path[depth] = renamed
                continue
            self.leave_module(depth)
            return

    def module_uses(self) -> dict[str, int]:
        """How many instances name each module, in the model and in every definition."""
        counts = dict.fromkeys(self.graph.modules, 0)
        for graph in (self.graph, *self.graph.modules.values()):
            for node in graph.nodes():
                if node.type == "Module" and node.params.get("module") in counts:
                    counts[node.params["module"]] += 1
        return counts

    def addable_modules(self) -> list[str]:
        """The modules an instance of which may be added to the shown graph: inside a module, not that
        module, nor one that contains it (a module cannot contain itself)."""
        names = list(self.graph.modules)
        if not self.module_path:
            return names
        inside = set(self.module_path)
        return [name for name in names if not inside & set(reachable([name], self.graph.modules))]

    # ------------------------------------------------------------------ files
    def replace(self, project: Project, path: Path | None) -> None:
        self._unwatch()
        self.project = project
        self.module_path, self._entered, self._entered_specs = [], [], []
        self._watch()
        self.path = path
        self._changed_outside_graph = False
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._timer.stop()
        self.analysis = analyse(self.graph)  # before the views rebuild, so they build once
        self.shown_analysis = self.analysis
        self.graphReplaced.emit()
        self.pathChanged.emit(path)
        self.modifiedChanged.emit(False)
        self.analysed.emit(self.analysis)
        self.shownAnalysed.emit(self.shown_analysis)

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
