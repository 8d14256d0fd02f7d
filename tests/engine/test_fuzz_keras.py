"""Fuzzing the Keras importer with mutated model configurations: a clean `ModelImportError` (one line that
names the layer it is about, or the model when no layer is to blame) or a valid graph, never a traceback.

The configurations start from real Keras 3 files (tests/fixtures/keras), a few written by hand in Keras 2's and
Keras 3's formats, and are damaged at the JSON level: keys dropped, values of the wrong type or size, layers
removed, duplicated or swapped, inbound nodes pointing nowhere. Some go through `deepwire import` (exit 2 with one
line on stderr), some with the file's own weights (a weights refusal is exit 1).

CI runs DEEPWIRE_FUZZ_EXAMPLES examples (default 300); $DEEPWIRE_FUZZ_REPORT receives the outcome counts.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cli
from engine.analysis import analyse
from engine.importers import ModelImportError, WeightsImportError, import_keras
from engine.importers.keras import _shown, _snake

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"
EXAMPLES = int(os.environ.get("DEEPWIRE_FUZZ_EXAMPLES", "300"))
# The suite's own run tries the same examples every time (a test suite passes or fails every time);
# a run that sets DEEPWIRE_FUZZ_EXAMPLES (benchmarks/reliability_report.py) explores new ones.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="DEEPWIRE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
TRIED: Counter = Counter()
WORK = Path(tempfile.mkdtemp(prefix="deepwire-fuzz-keras-"))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    shutil.rmtree(WORK, ignore_errors=True)
    path = os.environ.get("DEEPWIRE_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps({"keras config": dict(sorted(TRIED.items()))}, indent=2))


# ----------------------------------------------------------------------------- the starting configurations

def _real() -> dict[str, tuple[dict, bytes]]:
    out = {}
    for path in sorted(FIXTURES.glob("*.keras")):
        with zipfile.ZipFile(path) as zf:
            out[path.stem] = (json.loads(zf.read("config.json")), zf.read("model.weights.h5"))
    return out


def _kl(cls, name, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


HAND = {
    "cnn": {"class_name": "Sequential", "config": {"name": "cnn", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 13, 13, 3], "name": "image"}},
        _kl("Rescaling", "scale", scale=1 / 255, offset=0.0),
        _kl("Conv2D", "conv", filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same", activation="relu"),
        _kl("MaxPooling2D", "pool", pool_size=[2, 2], strides=None, padding="valid"),
        _kl("BatchNormalization", "bn", axis=-1, momentum=0.99, epsilon=1e-3),
        _kl("Flatten", "flat"), _kl("Dropout", "drop", rate=0.5), _kl("Dense", "out", units=5, activation="softmax")]}},
    "text": {"class_name": "Sequential", "config": {"name": "text", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 10], "name": "tokens", "dtype": "int32"}},
        _kl("Embedding", "embed", input_dim=50, output_dim=8),
        _kl("Conv1D", "conv1d", filters=8, kernel_size=3, padding="valid", activation="relu"),
        _kl("Bidirectional", "bi", layer={"class_name": "LSTM", "config": {"name": "lstm", "units": 4,
                                                                          "return_sequences": True}}),
        _kl("GlobalAveragePooling1D", "gap"), _kl("Dense", "logits", units=3)]}},
    "keras2": {"class_name": "Model", "config": {"name": "k2", "layers": [
        {"class_name": "InputLayer", "name": "in", "config": {"batch_input_shape": [None, 6], "name": "in"},
         "inbound_nodes": []},
        {"class_name": "Dense", "name": "a", "config": {"name": "a", "units": 4, "activation": "relu"},
         "inbound_nodes": [[["in", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "b", "config": {"name": "b", "units": 4},
         "inbound_nodes": [[["in", 0, 0, {}]]]},
        {"class_name": "Concatenate", "name": "cat", "config": {"name": "cat", "axis": -1},
         "inbound_nodes": [[["a", 0, 0, {}], ["b", 0, 0, {}]]]},
        {"class_name": "Multiply", "name": "mul", "config": {"name": "mul"},
         "inbound_nodes": [[["cat", 0, 0, {}], ["cat", 0, 0, {}]]]},
        {"class_name": "Reshape", "name": "r", "config": {"name": "r", "target_shape": [2, 4]},
         "inbound_nodes": [[["mul", 0, 0, {}]]]},
        {"class_name": "Permute", "name": "p", "config": {"name": "p", "dims": [2, 1]},
         "inbound_nodes": [[["r", 0, 0, {}]]]},
        {"class_name": "LayerNormalization", "name": "ln", "config": {"name": "ln", "axis": -1},
         "inbound_nodes": [[["p", 0, 0, {}]]]},
        {"class_name": "Softmax", "name": "sm", "config": {"name": "sm", "axis": -1},
         "inbound_nodes": [[["ln", 0, 0, {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["sm", 0, 0]]}},
}
REAL = _real()
BASES = [(name, config, weights) for name, (config, weights) in REAL.items()] + \
        [(name, config, None) for name, config in HAND.items()]


# ----------------------------------------------------------------------------- mutations

DEEP = "a list nested 3000 deep"   # made fresh for each use (a shared one could be mutated into a cycle)
JUNK = [DEEP, None, 0, -1, 1, 3, 2**40, -(2**63), 1.5, float("nan"), float("inf"), "", "x", "relu", "same", "Dense",
        True, False, [], {}, [None], [1, 2, 3], [[1]], {"class_name": "Lambda"}, {"class_name": "__keras_tensor__"},
        {"config": None}, ["nowhere", 0, 0], ["input_layer", 5, 2], "9" * 400, [[]] * 3]


def _deep(depth: int = 3000) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _paths(tree) -> list[tuple]:
    """Every place in the tree (not below depth 40: DEEP is entered only that far)."""
    out, stack = [], [((), tree)]
    while stack:
        prefix, item = stack.pop()
        out.append(prefix)
        if len(prefix) >= 40:
            continue
        if isinstance(item, dict):
            stack += [(prefix + (key,), value) for key, value in item.items()]
        elif isinstance(item, list):
            stack += [(prefix + (i,), value) for i, value in enumerate(item)]
    return out


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _layers(tree) -> list | None:
    cfg = tree.get("config") if isinstance(tree, dict) else None
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    return layers if isinstance(layers, list) else None


def mutate(draw, tree: dict) -> list[str]:
    """Apply one mutation to `tree` in place; returns a description."""
    layers = _layers(tree)
    kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "delete", "list", "layer", "rename",
                                 "ref"]))
    if kind == "layer" and layers:
        op = draw(st.sampled_from(["remove", "duplicate", "swap", "class"]))
        i = draw(st.integers(0, len(layers) - 1))
        if op == "remove":
            del layers[i]
        elif op == "duplicate":
            try:
                layers.insert(i, copy.deepcopy(layers[i]))
            except RecursionError:   # it holds a DEEP list
                layers.insert(i, layers[i])
        elif op == "swap":
            j = draw(st.integers(0, len(layers) - 1))
            layers[i], layers[j] = layers[j], layers[i]
        elif isinstance(layers[i], dict):
            layers[i]["class_name"] = draw(st.sampled_from(
                ["Dense", "LSTM", "GRU", "Conv1D", "Conv2D", "Add", "Flatten", "Embedding", "MultiHeadAttention",
                 "Bidirectional", "BatchNormalization", "Normalization", "Reshape", "InputLayer", "Sequential",
                 "Lambda", "Activation", "Permute", "Concatenate", "GlobalAveragePooling2D"]))
        return [f"layer {op} {i}"]
    if kind == "ref":   # point a tensor reference somewhere else
        refs = [p for p in _paths(tree) if p and p[-1] == "keras_history"] + \
               [p for p in _paths(tree) if len(p) > 1 and p[-2] == "inbound_nodes"]
        if refs:
            path = draw(st.sampled_from(refs))
            value = draw(st.sampled_from([["nowhere", 0, 0], ["input_layer", 0, 1], [0, 0, 0], [], None,
                                          [["nowhere", 0, 0, {}]], {"args": "x"}, {"args": [], "kwargs": 3}]))
            _get(tree, path[:-1])[path[-1]] = value
            return [f"ref {path}"]
    paths = [p for p in _paths(tree) if p]
    if not paths:
        return ["nothing left"]
    path = draw(st.sampled_from(paths))
    parent, key = _get(tree, path[:-1]), path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "list" and isinstance(parent[key], list):
        op = draw(st.sampled_from(["truncate", "extend", "empty"]))
        if op == "truncate":
            del parent[key][draw(st.integers(0, len(parent[key]))):]
        elif op == "extend":
            parent[key].append(draw(st.sampled_from(JUNK)))
        else:
            parent[key] = []
    elif kind == "rename" and isinstance(parent[key], str):
        parent[key] = parent[key] + draw(st.sampled_from(["_x", "", " ", "\n", "'"]))
    else:
        value = draw(st.sampled_from(JUNK))
        parent[key] = _deep() if value is DEEP else copy.deepcopy(value)
    return [f"{kind} {path}"]


@st.composite
def configs(draw):
    name, base, weights = draw(st.sampled_from(BASES))
    tree = copy.deepcopy(base)
    done = []
    for _ in range(draw(st.integers(1, 3))):
        done += mutate(draw, tree)
    return name, tree, weights, done


# ----------------------------------------------------------------------------- the checks

MODEL_LEVEL = re.compile(   # failures no single layer is to blame for; the others must quote a layer's name
    r"not a Keras|model has no layers|configuration has no layers|names no outputs|in a circle|"
    r"nests too deeply|the model has [\d,]+ layers|"
    r"layer \d+ of the model|layers/\S+")


def _names(tree) -> set[str]:
    """Every layer name (and every string) of the configuration: what a message may quote."""
    found = set()
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            found.update((item, _shown(item), _snake(item)))   # an unnamed Sequential layer is called after its class
    return found


def check_message(message: str, tree) -> None:
    assert message and "\n" not in message, message
    assert len(message) < 2000, message
    named = any(f"'{name}'" in message for name in _names(tree) if name)
    assert named or MODEL_LEVEL.search(message), f"{message!r} names no layer"


def _run(tree, weights: bytes | None) -> str:
    try:
        if weights is not None:
            result = import_keras(tree, weights=io.BytesIO(weights))
        else:
            result = import_keras(tree)
    except WeightsImportError as exc:
        check_message(str(exc), tree)
        return "weights refused"
    except ModelImportError as exc:
        check_message(str(exc), tree)
        return "clean error"
    analysis = analyse(result.graph)
    assert analysis.ok and not analysis.diagnostics
    return "valid import"


@FUZZ
@given(configs(), st.integers(0, 9))
def test_mutated_keras_configs_import_or_fail_in_one_line(case, dice):
    name, tree, weights, done = case
    outcome = _run(tree, weights if dice < 3 else None)
    TRIED[outcome] += 1
    if dice == 9:   # the command line: exit 0 or 2 (1 with weights), one line on stderr when it fails
        try:
            text = json.dumps(tree)
        except (RecursionError, ValueError):   # nested deeper than JSON writes (or reads)
            return
        path = WORK / "model.json"
        path.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            code = cli.main(["import", str(path), "-o", str(WORK / "graph.json"), "--force"])
        finally:
            sys.stdout, sys.stderr = old
        if outcome == "valid import":
            assert code == 0, err.getvalue()
        else:
            assert code == 2 and err.getvalue().count("\n") == 1, err.getvalue()


def test_the_starting_configurations_import():
    """The mutations start from valid models: each imports (with its weights, for the real ones)."""
    for name, config, weights in BASES:
        assert _run(config, weights) == "valid import", name
