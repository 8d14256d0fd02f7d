"""PyTorch -> graph: run the module's code, trace it with torch.fx, map each operation to a block.

Standard layers become blocks with their parameters and weights; common functional and tensor
operations (activations, flatten, view/reshape, permute, add, cat, mul, mean, scalar scaling)
become the matching blocks. Everything that does not map is collected, with its source line,
into one ModelImportError. The finished graph is compiled, given the module's weights and run
next to the module: if their outputs differ the import is refused, so a graph that silently
differs never comes back.

    loading.py    the user's file, class, instance and weights
    tracing.py    torch.fx's trace and the example run that records every shape
    translate.py  the walk over the trace: each node to its handler
    registry.py   which handler takes which module type, function or tensor method
    handlers/     the handlers, by family: how each becomes blocks, and its weights with them
    hierarchy.py  the source's submodules kept as module definitions and instances (the flat graph otherwise)
    verify.py     the imported graph run against the module
"""
from __future__ import annotations

from ..common import ImportResult, first_nonfinite, nonfinite_note
from . import handlers  # noqa: F401  (registers every handler)
from .hierarchy import group_modules
from .loading import load_model, load_weights
from .tracing import input_specs, propagate, trace
from .translate import Translator
from .verify import verify


def import_torch(source, class_name=None, input_shape=None, weights=None, graph_only: bool = False,
                 keep_modules: bool = True) -> ImportResult:
    """The graph (and weights) of a PyTorch module. `keep_modules`: its submodules become module definitions
    and instances (hierarchy.py), as the source is built; else, or when that grouping fails, one flat graph."""
    model, path, globals_ = load_model(source, class_name)
    title = type(model).__name__
    if weights is not None:
        load_weights(model, weights, title)
    gm = trace(model, title, path)
    shapes, dtypes = input_specs(gm, title, input_shape, globals_)
    example = propagate(gm, shapes, dtypes, title, path)

    translator = Translator(gm, model, title, path, shapes, dtypes)
    translator.run()
    translator.b.prune()
    result_graph, state, compiled = grouped(translator.b, model, example, title) if keep_modules else (None,) * 3
    if result_graph is None:
        result_graph, state, compiled = translator.b.finish(with_weights=True)
        verify(model, compiled, example, title)
    notes = translator.notes
    source_params = sum(p.numel() for p in model.parameters())
    learned = dict(compiled.named_parameters())
    graph_params = sum(v.numel() for k, v in state.items() if k in learned)
    if graph_params != source_params:
        notes.append(f"{title} has {source_params:,} parameters; the graph has {graph_params:,} (modules that "
                     "forward never calls are left out)")
    if graph_only:
        return ImportResult(result_graph, None, notes, source_params)
    bad = first_nonfinite(state)
    if bad is not None:
        notes.append(nonfinite_note(bad, f"{title}'s '{bad.split('.', 1)[0]}'"))
    return ImportResult(result_graph, state, notes, source_params)


def grouped(b, model, example, title):
    """(graph, weights, compiled module) of the import with the source's module hierarchy kept, checked against
    the model; (None, None, None) when there is nothing to group or the grouped graph fails in any way (the flat
    import is then the answer: keeping the hierarchy never loses an import)."""
    try:
        found = group_modules(b, model)
        if found is None:
            return None, None, None
        result_graph, state, compiled = b.finish(True, *found)
        verify(model, compiled, example, title)
        return result_graph, state, compiled
    except Exception:  # noqa: BLE001  (any failure of the grouping falls back to the flat graph, checked again)
        return None, None, None


__all__ = ["import_torch"]
