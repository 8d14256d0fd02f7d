"""Placing a Keras weights file's arrays in the imported graph: each layer's handler converts its arrays
(`LayerHandler.weights`), and the result must cover the generated module's whole state, with nothing in the file
left over."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ...analysis import analyse
from ..common import ModelImportError, WeightsImportError, first_nonfinite, load_fitting, nonfinite_note
from .reading import _shown
from .registry import LayerWeights
from .weights_file import WEIGHTS_MEMBER, _member_to_file, _opened, _WeightsFile

if TYPE_CHECKING:
    from .importer import Importer, Scope

GRAPH_ALONE = "; import the graph alone (without weights) to start from fresh ones"


def _load_weights(importer: Importer, graph, model, h5file, label: str) -> dict:
    """Convert the weights of every layer, check they cover the generated module's whole state and that the file
    holds nothing else, load them. Damaged or hostile files raise ModelImportError; weights that cannot all be
    placed WeightsImportError, naming the first layer."""
    from ...codegen import generate

    analysis = analyse(graph)
    _, info = generate(graph, analysis)
    state = model.state_dict()
    with _opened(h5file, label) as (h5py, f, size):
        try:
            store = _WeightsFile(h5py, f, size, importer.top_scope.paths)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelImportError):
                raise
            raise ModelImportError(f"{label} cannot be read ({_shown(str(exc))})") from None
        weights: dict = {}
        places = _Places(store, state, graph.modules, weights, info)
        places.scope(importer.top_scope, graph, analysis, ())
        store.paths = importer.top_scope.paths
        left = store.unplaced()
        if left:
            raise WeightsImportError(f"the weights file holds weights for {left} that no layer of the graph takes")
    if importer.scrambled:
        raise WeightsImportError("cannot import the Keras weights: the flattening order differs from Keras' before "
                                 + ", ".join(importer.scrambled))
    load_fitting(model, weights, "the converted Keras weights", "; this is an importer bug")
    bad = first_nonfinite(weights)
    if bad is not None:
        importer.notes.append(nonfinite_note(bad, places.layer_of.get(bad, f"'{bad.split('.', 1)[0]}'")))
    return weights


class _Places:
    """Each layer's arrays converted into the generated module's state (`weights`, by state key), the layers of a
    nested model (a Module instance) under the instance's attribute (codegen's attribute paths)."""

    def __init__(self, store, state: dict, modules: dict, weights: dict, info):
        self.store, self.state, self.modules, self.weights, self.info = store, state, modules, weights, info
        self.layer_of: dict[str, str] = {}   # state key -> the layer, as messages name it

    def attr(self, path: tuple) -> str | None:
        """The attribute path of the block at `path` (node ids from the top graph down to it)."""
        return self.info.attrs.get(path[0]) if len(path) == 1 else self.info.paths.get(path)

    def scope(self, scope: Scope, graph, analysis, path: tuple) -> None:
        within = scope.within if path else ""
        layer_of = {node: f"{cls} '{name}'{within}" for cls, name, _, nodes in scope.counts for node in nodes}
        for node_id in analysis.order:
            attr = self.attr(path + (node_id,))
            keys = [k for k in self.state if attr and k.startswith(f"{attr}.")]
            if not keys:
                continue
            child = scope.children.get(node_id)
            if child is not None:   # a nested model: its definition's blocks, each application's under its own
                definition = self.modules[graph.node(node_id).params["module"]]
                inner = analysis.modules[node_id]
                for k, applied in enumerate(inner):
                    self.scope(child, definition, applied, path + ((node_id, k) if len(inner) > 1 else (node_id,)))
                continue
            where = layer_of.get(node_id, f"'{graph.node(node_id).name}'{within}")
            if node_id not in scope.convert:
                raise WeightsImportError(f"cannot import the Keras weights: {where} has no weight conversion")
            handler, name, cfg, extra = scope.convert[node_id]
            full = f"{attr}."
            shapes = {k[len(full):]: tuple(self.state[k].shape) for k in keys}
            self.store.paths = scope.paths
            try:
                tensors = handler.weights(LayerWeights(handler, name, cfg, extra, self.store, shapes))
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OSError, AttributeError) as exc:
                if isinstance(exc, ModelImportError):
                    raise
                raise WeightsImportError(f"{where}: its weights cannot be read ({_shown(str(exc))})") from None
            for key, value in tensors.items():
                if full + key not in self.state:
                    raise WeightsImportError(f"{where}: the weights file's {key} has no place in the graph")
                if tuple(value.shape) != tuple(self.state[full + key].shape):
                    raise WeightsImportError(f"{where}: the weights file's arrays give {key} shape "
                                             f"{tuple(value.shape)} but the graph needs "
                                             f"{tuple(self.state[full + key].shape)}")
                self.weights[full + key] = value
                self.layer_of[full + key] = where
            for key in keys:
                if key not in self.weights:
                    raise WeightsImportError(f"{where}: the weights file has nothing for {key[len(full):]}")


def _placed(load):
    try:
        return load()
    except WeightsImportError as exc:
        raise WeightsImportError(str(exc) + GRAPH_ALONE) from None


def _own_weights(importer: Importer, graph, torch_model, path: Path) -> dict | None:
    """A .keras file's own weights (model.weights.h5), or None when it holds none (a JSON config, or a model
    without weights)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None   # a JSON configuration
    with zf:
        names = zf.namelist()
        if WEIGHTS_MEMBER not in names:
            others = [n for n in names if n.endswith((".h5", ".weights.json", ".npz"))]
            if others:
                raise WeightsImportError(f"{path.name} keeps its weights in {_shown(others[0])}, which Deepwire does "
                                         f"not read (it reads {WEIGHTS_MEMBER}){GRAPH_ALONE}")
            return None
        info = zf.getinfo(WEIGHTS_MEMBER)
        label = f"{path.name}'s {WEIGHTS_MEMBER}"
        with _member_to_file(zf, info, path.name) as copy:
            state = _placed(lambda: _load_weights(importer, graph, torch_model, copy, label))
    importer.notes.append(f"the trained weights in {label} are imported")
    return state
