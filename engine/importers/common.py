"""What both importers share: the result, the error, and a graph builder that checks as it goes."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..analysis import analyse
from ..blocks import REGISTRY, ParamError, ShapeError, TensorSpec
from ..codegen import CodegenError, generate
from ..compiler import load_source
from ..graph import Graph, GraphError
from ..templates import layout


def load_fitting(model: torch.nn.Module, weights: dict, what: str, hint: str = "", assign: bool = False) -> None:
    """Load `weights` into `model` after checking they fit it: the same names, the same shapes.
    Raises ModelImportError naming the first mismatches; `what` names the weights, `hint` ends
    the message. `assign`: the model's tensors become copies of the weights (a model made on
    the meta device)."""
    state = model.state_dict()
    missing, extra = sorted(set(state) - set(weights)), sorted(set(weights) - set(state))
    if missing or extra:
        raise ModelImportError(f"{what} do not fit the graph (missing {missing[:3]}, unexpected {extra[:3]}){hint}")
    for key, value in weights.items():
        if tuple(value.shape) != tuple(state[key].shape):
            raise ModelImportError(f"{what} for {key} have shape {tuple(value.shape)} but the graph needs "
                                   f"{tuple(state[key].shape)}{hint}")
    if assign:
        weights = {k: v.clone() for k, v in weights.items()}   # the result's weights stay the caller's own
    model.load_state_dict(weights, strict=True, assign=assign)


class ModelImportError(ValueError):
    """A model that cannot be imported. The message is one line naming every problem."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class WeightsImportError(ModelImportError):
    """The model's graph can be imported but the weights it comes with cannot all be placed in it. Nothing is
    imported: importing the graph alone (`graph_only=True`, `deepwire import --no-weights`) is the user's choice,
    never a silent fallback."""


def first_nonfinite(weights: dict) -> str | None:
    """The first key (in the dict's order) whose tensor holds NaN or an infinity; None when all are finite."""
    for key, value in weights.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return key
    return None


def nonfinite_note(key: str, where: str) -> str:
    return (f"{where} holds NaN or infinite weights ({key}): the model's outputs will be NaN or infinite until "
            "they are retrained or replaced")


@dataclass
class ImportResult:
    graph: Graph
    weights: dict[str, torch.Tensor] | None = None   # the generated module's state_dict layout
    notes: list[str] = field(default_factory=list)
    source_params: int | None = None                 # what the original framework counts

    @property
    def total_params(self) -> int:
        return analyse(self.graph).total_params


class GraphBuilder:
    """Adds blocks one at a time, validating parameters and inferring shapes immediately, so a
    mapping mistake is reported at the layer that caused it."""

    def __init__(self, name: str):
        self.graph = Graph(name or "model")
        self.specs: dict[str, TensorSpec] = {}
        self.node_weights: dict[str, dict[str, torch.Tensor]] = {}
        self.requested: dict[str, str] = {}     # node id -> the name it was added under (before made unique)
        self.origins: dict[str, object] = {}    # node id -> what the importer was translating (`origin`)
        self.origin: object = None

    def add(self, type_name: str, name: str, params: dict | None = None, inputs: list[str] = (),
            weights: dict[str, torch.Tensor] | None = None, where: str = "") -> str:
        block = REGISTRY[type_name]
        params = dict(params or {})
        where = where or name
        try:
            clean = block.validate_params(params)
            specs = [self.specs[s] for s in inputs]
            spec = block.infer(clean, specs)
        except (ParamError, ShapeError) as exc:
            raise ModelImportError(f"{where}: {type_name} {exc}") from None
        try:
            node_id = self.graph.add_node(type_name, name, params)
            for port, src in enumerate(inputs):
                self.graph.connect(src, node_id, port)
        except GraphError as exc:   # e.g. more blocks than a graph may hold
            raise ModelImportError(f"{where}: {exc}") from None
        self.specs[node_id] = spec
        self.requested[node_id] = name
        if self.origin is not None:
            self.origins[node_id] = self.origin
        if weights is not None:
            self.node_weights[node_id] = weights
        return node_id

    def update(self, node_id: str, params: dict) -> None:
        node = self.graph.node(node_id)
        block = REGISTRY[node.type]
        merged = dict(node.params, **params)
        block.validate_params(merged)
        self.graph.set_params(node_id, params)

    def type_of(self, node_id: str) -> str:
        return self.graph.node(node_id).type

    def params_of(self, node_id: str) -> dict:
        return self.graph.node(node_id).params

    def prune(self) -> None:
        """Remove the blocks that reach no Output (e.g. a Keras branch that reaches no output)."""
        analysis = analyse(self.graph)
        for node_id in [n for n in self.graph.node_ids() if n not in analysis.live]:
            self.graph.remove_node(node_id)

    def finish(self, with_weights: bool, graph: Graph | None = None,
               places: dict[str, tuple] | None = None) -> tuple[Graph, dict[str, torch.Tensor] | None, torch.nn.Module]:
        """Lay the graph out, check it has no diagnostics, and map the collected weights onto
        the generated module's state_dict. Returns (graph, weights or None, model).

        `graph`: another graph holding the same blocks (the built one grouped into modules), where
        `places` gives each block's node ids from the top-level graph down to it (codegen's
        CodeInfo.paths); the built graph itself by default."""
        if graph is None:
            self.prune()
            graph = self.graph
        layout(graph)
        analysis = analyse(graph)
        if analysis.diagnostics:
            first = analysis.diagnostics[0]
            raise ModelImportError(f"the imported graph has problems ({first.message}); this is an importer bug")
        try:
            source, info = generate(graph, analysis)
        except CodegenError as exc:
            raise ModelImportError(f"the imported graph cannot be built: {exc}") from None
        model_class = load_source(source, info.class_name)
        if not with_weights:
            return graph, None, model_class().eval()
        with torch.device("meta"):   # no memory and no random init for weights about to be replaced
            model = model_class()
        weights = {}
        for node_id, tensors in self.node_weights.items():
            path = (places or {}).get(node_id, (node_id,))
            attr = info.attrs.get(path[0]) if len(path) == 1 else info.paths.get(path)
            if attr is None:
                continue
            for key, value in tensors.items():
                weights[f"{attr}.{key}"] = value.detach().to("cpu", torch.float32 if value.is_floating_point()
                                                             else value.dtype).clone()
        load_fitting(model, weights, "the imported weights", "; this is an importer bug", assign=True)
        if any(t.is_meta for t in (*model.parameters(), *model.buffers())):   # a buffer no state dict holds
            model = model_class()
            load_fitting(model, weights, "the imported weights", "; this is an importer bug")
        return graph, weights, model.eval()
