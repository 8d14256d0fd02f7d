"""A new head for a dataset (fine-tuning, issue #19): which block to change, and to what, so the
model's output fits the data's classes or targets while everything before it stays as it is.

The decision is made here, without Qt, so the designer's quick fix, its canvas command and any
other caller agree:

    plan = plan_head(graph, analysis, dataset)     # a Dataset, or describe_builtins()'s dict
    if plan.ok:
        for node_id, params in plan.changes.items():
            graph.set_params(node_id, params)
    else:
        print(plan.message)                        # why not: e.g. the output is not a Linear

The head is the Linear the Output's value comes from, through blocks that hold no weights and keep the
shape (Activation, Dropout, ...). Its units become what `engine.training.check_data` asks for: the
number of classes (multiclass), 1 (binary: a sigmoid, or logits the loss applies it to; a final softmax
over one unit would always say 1, so it becomes a sigmoid), or the target's width (regression). A frozen
head is unfrozen: its weights are new and must learn. `refit_weights` then keeps every tensor of a
model's weights that still fits the changed graph and gives the head fresh ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analysis import Analysis, output_activation
from .blocks import REGISTRY
from .graph import Graph

HEAD_TYPE = "Linear"


@dataclass(frozen=True)
class HeadPlan:
    """What to set (`changes`: node id -> parameters, the head first), or why nothing can be (`message`).

    `node_id` is the head Linear when one was found (also when it already fits: then `changes` is
    empty). `label` is short, for a button or menu ("Set 'dense_2' to 10 units"); `message` is the
    sentence for the status bar."""

    node_id: str | None
    changes: dict[str, dict] = field(default_factory=dict)
    message: str = ""
    label: str = ""
    units: int | None = None

    @property
    def ok(self) -> bool:
        return bool(self.changes)


def data_facts(dataset: Any) -> tuple[str, int | None, tuple[int, ...]]:
    """(task, number of classes, target shape) of a Dataset, or of a describe_builtins() dict (whose
    regression targets are one value each)."""
    if isinstance(dataset, dict):
        task = str(dataset.get("task", ""))
        classes = dataset.get("num_classes")
        target = tuple(dataset.get("target_shape") or ())
    else:
        task = str(getattr(dataset, "task", ""))
        classes = getattr(dataset, "num_classes", None)
        target = tuple(getattr(dataset, "target_shape", ()) or ())
    return task, (int(classes) if classes else None), target


def _name(graph: Graph, node_id: str) -> str:
    node = graph.node(node_id)
    return f"{node.type} '{node.name}'"


def find_head(graph: Graph, analysis: Analysis) -> tuple[str | None, str]:
    """(the node the model's one Output gets its value from, past weightless shape-keeping blocks;
    a message when there is no single Output)."""
    outputs = [o for o in analysis.outputs if o in analysis.live] or list(analysis.outputs)
    if len(outputs) != 1:
        return None, f"a new head needs a model with one Output; this one has {len(outputs)}"
    node_id = outputs[0]
    seen = set()
    while True:
        sources = analysis.inputs_of(graph, node_id)
        if len(sources) != 1:
            return None, f"{_name(graph, node_id)} has no input wired"
        src = sources[0]
        if src in seen:   # a cycle is an analysis error; never loop on one
            return None, "the graph has a cycle"
        seen.add(src)
        node = graph.node(src)
        ins = analysis.inputs_of(graph, src)
        passes = (node.type != HEAD_TYPE and len(ins) == 1 and not analysis.param_counts.get(src)
                  and REGISTRY.get(node.type) is not None and REGISTRY[node.type].category != "Modules"
                  and analysis.specs.get(src) is not None and analysis.specs.get(src) == analysis.specs.get(ins[0]))
        if not passes:
            return src, ""
        node_id = src


def plan_head(graph: Graph, analysis: Analysis, dataset: Any) -> HeadPlan:
    """The parameters that give the model a head for `dataset`'s classes or targets (see the module's
    docstring), or a HeadPlan with no changes and a message saying why not."""
    if not analysis.ok:
        return HeadPlan(None, message="fix the graph's errors first (see Problems): a new head needs its shapes")
    task, classes, target = data_facts(dataset)
    head, why = find_head(graph, analysis)
    if head is None:
        return HeadPlan(None, message=why)
    node = graph.node(head)
    out_id = [o for o in analysis.outputs if o in analysis.live][0]
    out = analysis.specs.get(out_id)
    if node.type != HEAD_TYPE:
        return HeadPlan(None, message=f"the output comes from {_name(graph, head)}, not a Linear: add a Linear "
                                      f"before Output '{graph.node(out_id).name}' to be the head")
    spec = analysis.specs.get(head)
    if spec is None or spec.rank != 1:
        return HeadPlan(head, message=f"{_name(graph, head)} outputs {spec}, not one value per class: flatten or "
                                      "pool before it (Flatten, GlobalAvgPool), then it can be the head")

    final = output_activation(graph, analysis, out_id)
    act_node = analysis.inputs_of(graph, out_id)[0]      # where that final activation is set
    act_key = "function" if graph.node(act_node).type == "Activation" else "activation"
    params = analysis.params.get(head, {})
    extra: dict[str, dict] = {}
    notes: list[str] = []
    if task == "multiclass":
        if not classes:
            return HeadPlan(head, message="the data's number of classes is not known yet")
        units, why = classes, f"{classes} classes"
        fits = out is not None and out.shape == (classes,)
        if final == "sigmoid":        # one sigmoid per class is not what cross-entropy expects
            extra.setdefault(act_node, {})[act_key] = "softmax"
            notes.append("softmax instead of sigmoid")
    elif task == "binary":
        units, why = 1, "2 classes, binary"
        fits = out is not None and out.shape in ((1,), (2,))
        if final == "softmax":        # softmax over one unit is always 1
            extra.setdefault(act_node, {})[act_key] = "sigmoid"
            notes.append("sigmoid instead of softmax")
    elif task == "regression":
        shape = target or (1,)
        if len(shape) != 1:
            return HeadPlan(head, message=f"the data's targets have shape {shape}: a Linear head gives one vector; "
                                          "reshape after it to match")
        units, why = shape[0], f"{shape[0]} target value{'s' * (shape[0] != 1)}"
        fits = out is not None and out.shape == shape
        if final == "softmax":        # values, not a distribution: softmax over one unit is always 1
            if act_key == "activation":
                extra.setdefault(act_node, {})[act_key] = "none"
                notes.append("no softmax (the targets are values)")
            else:
                notes.append(f"remove the Softmax {_name(graph, act_node)}: the targets are values")
    else:
        return HeadPlan(head, message=f"unknown task {task!r}")

    name = node.name
    if fits:
        return HeadPlan(head, message=f"the model's output already fits the data ({why})", units=units)
    changes: dict[str, dict] = {head: {"units": units}}
    for node_id, more in extra.items():
        changes.setdefault(node_id, {}).update(more)
    if params.get("trainable") is False or node.params.get("trainable") is False:
        changes[head]["trainable"] = True
        notes.append("unfrozen: its new weights must learn")
    label = f"Set '{name}' to {units} unit{'s' * (units != 1)}"
    message = (f"New head: Linear '{name}' now has {units} unit{'s' * (units != 1)} for {why}"
               + ("; " + "; ".join(notes) if notes else "") + ". Its weights start fresh; the rest is kept.")
    return HeadPlan(head, changes, message, label, units)


def apply_plan(graph: Graph, plan: HeadPlan) -> None:
    """Set the plan's parameters on `graph` (the CLI and tests; the designer pushes undo commands)."""
    for node_id, params in plan.changes.items():
        graph.set_params(node_id, params)


def refit_weights(graph: Graph, weights: dict | None, seed: int = 0) -> tuple[dict | None, list[str]]:
    """`weights` (a model's state dict) made to fit `graph` again after its head changed: every tensor
    whose name and shape still fit is kept, the others are the fresh ones the graph's model starts from
    with `seed`. Returns (state, the names of the tensors that were replaced or added). None stays None.
    Raises engine.weights_load.WeightsLoadError when the graph has errors."""
    if not weights:
        return weights, []
    from .weights_load import fresh_state

    fresh = fresh_state(graph, seed)
    state, replaced = {}, []
    for key, tensor in fresh.items():
        old = weights.get(key)
        if old is not None and tuple(old.shape) == tuple(tensor.shape):
            state[key] = old
        else:
            state[key] = tensor
            replaced.append(key)
    return state, replaced
