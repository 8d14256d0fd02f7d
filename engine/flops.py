"""FLOPs: the arithmetic one sample costs, counted by compiling the model and running it once
(torch's FlopCounterMode, on the meta device where the model allows).

Apart from `analysis`, which is cheap enough for every edit and never builds a model. Here too
the probe: one block alone in a graph of its own (Inputs of the shapes it is fed, the block, an
Output), for what is asked of a block by itself: its FLOPs (the inspector), whether an exporter
can express it (the ONNX culprit search).
"""
from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis, analyse
from .blocks import TOKENS, TensorSpec
from .blocks.module import MODULE
from .compiler import compile_graph
from .graph import Graph
from .modules import reachable


@dataclass(frozen=True)
class Probe:
    """A block as it stands on its own: its type, validated parameters and (port, shape) fed in."""
    type: str
    params: dict
    inputs: tuple[tuple[int, TensorSpec], ...]
    modules: tuple[tuple[str, str], ...] = ()   # a Module's definitions it needs: (name, the definition's JSON)

    def key(self) -> tuple:
        """What the block's behaviour depends on, hashable: blocks that are alike share it (for a
        Module, its definitions as they are now: an edit inside gives a new key)."""
        return (self.type, repr(sorted(self.params.items())),
                tuple((port, tuple(spec.shape), spec.dtype) for port, spec in self.inputs), self.modules)


def probe_of(graph: Graph, analysis: Analysis, node_id: str, modules: dict[str, Graph] | None = None) -> Probe | None:
    """The probe of a block of `graph`; None while its parameters or an input's shape are unknown.
    Cheap: it looks at the block and its wires only (and, for a Module instance, at the definitions
    it uses, from `modules`, default the graph's own)."""
    params = analysis.params.get(node_id)
    if params is None or node_id not in analysis.specs or node_id not in graph:
        return None
    inputs = []
    for port, src in sorted(graph.inputs_of(node_id).items()):
        spec = analysis.specs.get(src)
        if spec is None:
            return None
        inputs.append((port, spec))
    used: tuple[tuple[str, str], ...] = ()
    if graph.node(node_id).type == MODULE:
        modules = graph.modules if modules is None else modules
        names = reachable([graph.node(node_id).params.get("module")], modules)   # the node's own: analysis may lag
        used = tuple((name, modules[name].to_json(indent=None)) for name in sorted(names))
    return Probe(graph.node(node_id).type, dict(params), tuple(inputs), used)


def add_probe(graph: Graph, probe: Probe) -> str:
    """Add the probe to `graph` (several may share one): Inputs of its shapes, the block, and an
    Output after it (an Output block is its own end). Returns the block's node id."""
    for name, text in probe.modules:
        if name not in graph.modules:
            graph.modules[name] = Graph.from_json(text)
    feeds = [(port, graph.add_node("Input", params={"shape": list(spec.shape), "dtype": spec.dtype}))
             for port, spec in probe.inputs]
    node_id = graph.add_node(probe.type, params=dict(probe.params))
    for port, feed in feeds:
        graph.connect(feed, node_id, port)
    if probe.type != "Output":
        graph.connect(node_id, graph.add_node("Output"), 0)
    return node_id


def probe_graph(probe: Probe, modules: dict[str, Graph] | None = None) -> tuple[Graph, str]:
    """A graph holding the probe alone, and the block's node id in it; `modules`: the project's
    module definitions, which a Module block's probe needs."""
    graph = Graph("probe")
    graph.modules = dict(modules or {})
    return graph, add_probe(graph, probe)


def count_flops(graph: Graph) -> dict[str, int]:
    """FLOPs per node for one sample, counted by torch.utils.flop_counter on a meta-device run;
    {} when the graph has errors."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    analysis = analyse(graph)
    if not analysis.ok:
        return {}
    try:  # the meta device builds even huge models instantly; a few initialisers need real memory
        with torch.device("meta"):
            model, info = compile_graph(graph, analysis=analysis, with_info=True)
    except (NotImplementedError, RuntimeError):
        model, info = compile_graph(graph, analysis=analysis, with_info=True)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = [torch.zeros((1,) + analysis.specs[i].shape, device=device,
                          dtype=torch.long if analysis.specs[i].dtype == TOKENS else torch.float32)
              for i in info.input_ids]
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    per_module = counter.get_flop_counts()
    flops = {}
    for node_id, attr in info.attrs.items():
        counts = per_module.get(f"{type(model).__name__}.{attr}") or per_module.get(attr) or {}
        flops[node_id] = int(sum(counts.values()))
    return flops


__all__ = ["Probe", "add_probe", "count_flops", "probe_graph", "probe_of"]
