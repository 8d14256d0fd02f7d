"""Fine-tuning gestures (issue #19): Freeze / Unfreeze the selected blocks, Freeze Everything Before
a block (the backbone), and New Head for This Dataset, as actions of the main window (Edit menu and
a block's right-click menu), each one undo step; the model-wide parameter count with trainable and
frozen apart; the Problems panel's quick fix when the data's classes do not fit the model's head.

The decisions are the engine's (engine.head.plan_head, refit_weights); the scene does the freezing
(GraphScene.set_trainable). This module wires them to actions and the status bar.
"""
from __future__ import annotations

from engine.analysis import Analysis
from engine.head import HeadPlan, plan_head, refit_weights

from .commands import SetParams, SetWeights

_BUILTINS: dict | None = None


def params_text(analysis: Analysis) -> str:
    """The status bar's count: '12,345 parameters', or with any frozen
    '12,345 parameters (2,345 trainable, 10,000 frozen)' (as Keras' summary counts them)."""
    if not analysis.ok:   # over a graph with errors the count covers only part of it: no total
        return "parameters: fix the errors to count them"
    total, frozen = analysis.total_params, analysis.frozen_params
    if not frozen:
        return f"{total:,} parameters"
    return f"{total:,} parameters ({analysis.trainable_params:,} trainable, {frozen:,} frozen)"


def _builtins() -> dict:
    global _BUILTINS
    if _BUILTINS is None:
        from engine.runtime.data import describe_builtins
        _BUILTINS = {b["name"]: b for b in describe_builtins()}
    return _BUILTINS


class FineTuning:
    """The fine-tuning actions of `window` (a MainWindow), made with its `_action`."""

    def __init__(self, window):
        self.window = window
        scene, document = window.scene, window.document
        self.act_freeze = window._action(
            "&Freeze", scene.freeze_selection, None,
            "Freeze the selected blocks: their weights stay as they are while the rest trains (fine-tuning)")
        self.act_unfreeze = window._action("U&nfreeze", scene.unfreeze_selection, None,
                                           "Let the selected frozen blocks train again")
        self.act_freeze_before = window._action(
            "Freeze Everything &Before This Block", self.freeze_before, None,
            "Freeze every block with weights that feeds the selected block: the backbone before a new head")
        self.act_new_head = window._action(
            "New &Head for This Dataset", self.new_head, None,
            "Set the last Linear's units to the chosen data's classes (or targets), keeping the rest of the model")
        self.actions = [self.act_freeze, self.act_unfreeze, self.act_freeze_before, self.act_new_head]
        scene.selectionChanged.connect(self.update_actions)
        document.undo_stack.indexChanged.connect(lambda _: self.update_actions())
        document.shownChanged.connect(self.update_actions)
        document.analysed.connect(lambda _: self.update_data())
        document.projectChanged.connect(self.update_data)
        window.problems.dataFixRequested.connect(self.new_head)
        self.update_actions()
        self.update_data()

    # ------------------------------------------------------------------ freezing
    def update_actions(self) -> None:
        try:
            scene = self.window.scene
            ids = scene.selected_node_ids()
        except RuntimeError:  # the window is going away
            return
        freezable = scene.freezable(ids)
        frozen = scene.frozen_ids(ids)
        self.act_freeze.setEnabled(len(frozen) < len(freezable))
        self.act_unfreeze.setEnabled(bool(frozen))
        self.act_freeze_before.setEnabled(len(ids) == 1 and bool(scene.upstream_freezable(ids[0])))
        self.act_new_head.setEnabled(not self.window.document.module_path)   # the model's head, not a module's

    def freeze_before(self) -> None:
        ids = self.window.scene.selected_node_ids()
        if len(ids) == 1:
            self.window.scene.freeze_before(ids[0])

    # ------------------------------------------------------------------ new head
    def dataset(self):
        """What is known of the chosen data without loading it: a built-in's description, or the
        imported Dataset the Training panel holds; None when nothing is known."""
        training = self.window.training
        spec = training.dataset_spec()
        if spec in _builtins():
            return _builtins()[spec]
        imported = getattr(training, "_imported", {}).get(spec)
        return imported[0] if imported else None

    def plan(self) -> HeadPlan:
        dataset = self.dataset()
        if dataset is None:
            return HeadPlan(None, message="choose the data to train on first (Training panel)")
        document = self.window.document
        return plan_head(document.graph, document.analysis, dataset)

    def new_head(self) -> bool:
        """Give the model a head for the chosen data: one undo step that sets the head's parameters and
        keeps every weight of the project that still fits (the head's start fresh)."""
        window, document = self.window, self.window.document
        if document.module_path:
            document.leave_module(0)
        document.refresh()
        plan = self.plan()
        if not plan.ok:
            window.statusBar().showMessage(f"No new head: {plan.message}.", 10000)
            return False
        graph = document.graph
        weights, replaced = document.project.weights, []
        if weights:
            changed = graph.copy()
            for node_id, params in plan.changes.items():
                changed.set_params(node_id, params)
            try:
                weights, replaced = refit_weights(changed, weights, document.project.config.seed)
            except Exception:  # weights that cannot be refitted stay; a run or export then says why
                weights, replaced = document.project.weights, []
        stack = document.undo_stack
        stack.beginMacro(f"new head: {plan.label[0].lower()}{plan.label[1:]}")
        try:
            for node_id, params in plan.changes.items():
                stack.push(SetParams(graph, node_id, params, merge=False))
            if replaced:
                stack.push(SetWeights(document, weights, "fresh weights for the new head"))
        finally:
            stack.endMacro()
        window.scene.select_nodes([plan.node_id])
        note = (f" The project's weights are kept for every other block ({len(replaced)} tensors of the head "
                "are new)." if replaced else "")
        if getattr(document.project, "start_weights", None):
            note += " Runs from the loaded weights keep them too, with a fresh head."
        window.statusBar().showMessage(plan.message + note + " Undo puts it back.", 12000)
        return True

    # ------------------------------------------------------------------ data problems
    def update_data(self) -> None:
        """The Problems panel's data line: how the chosen data does not fit the model, and the quick
        fix when a new head would make it fit."""
        window = self.window
        try:
            problems = window.training.fit_problems()
            plan = self.plan() if problems else None
            fix = plan is not None and plan.ok
            window.problems.set_data_problems(problems, plan.label if fix else None, plan.message if fix else "")
        except RuntimeError:  # the window is going away (the document outlives it)
            return
