"""Prototype fixes (monkeypatches) used only to measure what an engine change would save."""
import re
import sys
sys.path.insert(0, __import__("os").path.dirname(__file__))
import engine.graph as G
import engine.analysis as A
import engine.codegen as C
import analysis_fixed as AF
from engine.blocks import REGISTRY

orig = {"load_node": G.Graph._load_node, "inputs_of": G.Graph.inputs_of,
        "consumers_of": G.Graph.consumers_of, "analyse": A.analyse, "c_analyse": C.analyse}


def _load_node(self, i, item):
    # same checks as engine's, but a set of taken names instead of unique_name()'s full scan
    if not isinstance(item, dict):
        raise G.FormatError(f"node {i} is not an object")
    node_id, name, type_name = item.get("id"), item.get("name"), item.get("type")
    if not isinstance(node_id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", node_id):
        raise G.FormatError(f"node {i} has an invalid id")
    if node_id in self._g:
        raise G.FormatError(f"node id {node_id!r} appears twice")
    if not isinstance(name, str) or not G.clean_name(name):
        name = type_name.lower()
    taken = self.__dict__.setdefault("_taken", set())
    base = G.clean_name(name) or "node"
    if base in taken:
        stem = re.sub(r"_\d+$", "", base) or base
        k = 1
        while f"{stem}_{k}" in taken:
            k += 1
        base = f"{stem}_{k}"
    taken.add(base)
    params = item.get("params", {})
    pos = item.get("pos", [0, 0])
    block = REGISTRY.get(type_name)
    full = block.defaults() if block else {}
    full.update(params)
    self._g.add_node(node_id, node=G.Node(node_id, base, type_name, full, (float(pos[0]), float(pos[1]))))


def inputs_of(self, node_id):
    return {k: u for u, keys in self._g._pred[node_id].items() for k in keys}


def consumers_of(self, node_id):
    return [(v, k) for v, keys in self._g._succ[node_id].items() for k in keys]


def apply(on: bool):
    G.Graph._load_node = _load_node if on else orig["load_node"]
    G.Graph.inputs_of = inputs_of if on else orig["inputs_of"]
    G.Graph.consumers_of = consumers_of if on else orig["consumers_of"]
    C.analyse = AF.analyse if on else orig["c_analyse"]
