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
    from .importer import Importer

GRAPH_ALONE = "; import the graph alone (without weights) to start from fresh ones"


def _load_weights(importer: Importer, graph, model, h5file, label: str) -> dict:
    """Convert the weights of every layer, check they cover the generated module's whole state and that the file
    holds nothing else, load them. Damaged or hostile files raise ModelImportError; weights that cannot all be
    placed WeightsImportError, naming the first layer."""
    from ...codegen import generate

    _, info = generate(graph, analyse(graph))
    state = model.state_dict()
    layer_of = {node: f"{cls} '{name}'" for cls, name, _, nodes in importer.counts for node in nodes}
    with _opened(h5file, label) as (h5py, f, size):
        try:
            store = _WeightsFile(h5py, f, size, importer.paths)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelImportError):
                raise
            raise ModelImportError(f"{label} cannot be read ({_shown(str(exc))})") from None
        weights: dict = {}
        for node_id in analyse(graph).order:
            attr = info.attrs.get(node_id)
            keys = [k for k in state if attr and k.startswith(f"{attr}.")]
            if not keys:
                continue
            where = layer_of.get(node_id, f"'{graph.node(node_id).name}'")
            if node_id not in importer.convert:
                raise WeightsImportError(f"cannot import the Keras weights: {where} has no weight conversion")
            handler, name, cfg, extra = importer.convert[node_id]
            shapes = {k[len(attr) + 1:]: tuple(state[k].shape) for k in keys}
            try:
                tensors = handler.weights(LayerWeights(handler, name, cfg, extra, store, shapes))
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError, OSError, AttributeError) as exc:
                if isinstance(exc, ModelImportError):
                    raise
                raise WeightsImportError(f"{where}: its weights cannot be read ({_shown(str(exc))})") from None
            for key, value in tensors.items():
                full = f"{attr}.{key}"
                if full not in state:
                    raise WeightsImportError(f"{where}: the weights file's {key} has no place in the graph")
                if tuple(value.shape) != tuple(state[full].shape):
                    raise WeightsImportError(f"{where}: the weights file's arrays give {key} shape "
                                             f"{tuple(value.shape)} but the graph needs {tuple(state[full].shape)}")
                weights[full] = value
            for key in keys:
                if key not in weights:
                    raise WeightsImportError(f"{where}: the weights file has nothing for {key[len(attr) + 1:]}")
        left = store.unplaced()
        if left:
            raise WeightsImportError(f"the weights file holds weights for {left} that no layer of the graph takes")
    if importer.scrambled:
        raise WeightsImportError("cannot import the Keras weights: the flattening order differs from Keras' before "
                                 + ", ".join(importer.scrambled))
    load_fitting(model, weights, "the converted Keras weights", "; this is an importer bug")
    bad = first_nonfinite(weights)
    if bad is not None:
        attr = bad.split(".", 1)[0]
        node = next((n for n, a in info.attrs.items() if a == attr), None)
        importer.notes.append(nonfinite_note(bad, layer_of.get(node, f"'{attr}'")))
    return weights


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
