"""Loading weights a user already has into a graph (engine.weights_load): real torchvision / timm state dicts
(tests/fixtures/weights, written by make_fixtures.py) and real Keras 3 weights files (the model.weights.h5 inside
the tests/fixtures/keras models, the file Keras' save_weights writes), matched by name, prefix or order, with the
report said before anything is applied, and the hostile or wrong files refused."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.compiler import compile_graph
from engine.graph import Graph
from engine.project import Project, save_project
from engine.weights_load import WeightsLoadError, fresh_state, load_weights, read_weights

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WEIGHTS = FIXTURES / "weights"
KERAS = FIXTURES / "keras"


def _graph(name: str) -> Graph:
    return Graph.from_json((WEIGHTS / f"{name}.graph.json").read_text())


def _outputs(graph: Graph, state: dict, x: np.ndarray) -> np.ndarray:
    model = compile_graph(graph)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def _assert_reproduces(graph: Graph, state: dict, name: str) -> None:
    data = np.load(WEIGHTS / f"{name}.npz")
    np.testing.assert_allclose(_outputs(graph, state, data["x"]), data["y"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tv_resnet", "timm_resnet"])
def test_zoo_state_dict_loads_by_name_and_reproduces_the_model(name):
    graph = _graph(name)
    report = load_weights(graph, WEIGHTS / f"{name}.safetensors")
    assert report.ok and report.total == len(report.matched) == report.by_name
    assert not (report.missing or report.unexpected or report.mismatched or report.nonfinite)
    assert "0 blocks keep fresh weights" in report.headline()
    _assert_reproduces(graph, report.applied_state, name)


def test_checkpoint_with_module_prefix_is_unwrapped_and_stripped():
    graph = _graph("tv_resnet")
    report = load_weights(graph, WEIGHTS / "tv_resnet_checkpoint.pth")
    assert report.by_name == report.total
    assert any("'state_dict'" in n and "'epoch'" in n for n in report.notes)
    assert any("'module.'" in n and "stripped" in n for n in report.notes)
    _assert_reproduces(graph, report.applied_state, "tv_resnet")


def test_model_prefix_added_when_the_graph_wraps_the_file(tmp_path):
    """The graph's names carry a prefix the file lacks: a model saved from its backbone alone."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    stripped = {k[len("layer1."):]: v for k, v in state.items() if k.startswith("layer1.")}
    save_file(stripped, str(tmp_path / "block.safetensors"))
    report = load_weights(_graph("tv_resnet"), tmp_path / "block.safetensors")
    assert len(report.matched) == len(stripped) and report.by_name == len(stripped)
    assert any("'layer1.' added" in n for n in report.notes)
    assert {b.split(" › ")[0] for b in report.loaded_blocks} == {"layer1"}
    assert "conv1" in report.kept_blocks and "fc" in report.kept_blocks


def test_new_head_keeps_fresh_weights_and_the_report_names_the_block():
    graph = _graph("tv_resnet")
    fc = next(n for n in graph.nodes() if n.name == "fc")
    graph.set_params(fc.id, {"units": 5})
    report = load_weights(graph, WEIGHTS / "tv_resnet.safetensors")
    assert report.kept_blocks == ["fc"]
    assert {(m.target, m.target_shape, m.source_shape) for m in report.mismatched} == {
        ("fc.weight", (5, 16), (10, 16)), ("fc.bias", (5,), (10,))}
    fresh = fresh_state(graph)
    assert torch.equal(report.applied_state["fc.weight"], fresh["fc.weight"])
    assert torch.equal(report.applied_state["layer2.0.conv1.weight"],
                       read_weights(WEIGHTS / "tv_resnet.safetensors").tensors["layer2.0.conv1.weight"])
    text = report.summary()
    assert "fc (weight is (5, 16) here, (10, 16) in the file)" in text
    assert "fc.weight (5, 16) <- fc.weight (10, 16)" in text


@pytest.mark.parametrize("name, file", [("tv_resnet", "tv_resnet.safetensors"),
                                        ("timm_resnet", "timm_resnet.safetensors"),
                                        ("tv_resnet", "tv_resnet_checkpoint.pth")])
def test_renamed_blocks_match_by_order_and_still_reproduce(name, file):
    """Every block renamed, inside the modules too: no name agrees, the structure (order, shapes) places all."""
    graph = _graph(name)
    for g in (graph, *graph.modules.values()):
        for i, node in enumerate(list(g.nodes())):
            if node.type not in ("Input", "Output"):
                g.rename(node.id, f"renamed_{i}")
    report = load_weights(graph, WEIGHTS / file)
    assert report.by_order == len(report.matched) == report.total
    assert not report.missing and not report.unexpected
    _assert_reproduces(graph, report.applied_state, name)
    assert "Matched by order" in report.summary()


def test_current_weights_are_kept_where_the_file_has_nothing(tmp_path):
    from safetensors.torch import load_file, save_file

    graph = _graph("tv_resnet")
    current = {k: torch.full_like(v, 7) if v.is_floating_point() else v for k, v in fresh_state(graph).items()}
    state = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("fc.")}, str(tmp_path / "backbone.safetensors"))
    report = load_weights(graph, tmp_path / "backbone.safetensors", current=current)
    assert report.keeps == "current" and report.kept_blocks == ["fc"]
    assert torch.equal(report.applied_state["fc.bias"], current["fc.bias"])
    assert torch.equal(report.applied_state["conv1.weight"], state["conv1.weight"])


def test_half_precision_is_converted_and_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(tmp_path / "h.safetensors"))
    report = load_weights(_graph("tv_resnet"), tmp_path / "h.safetensors")
    assert len(report.matched) == report.total
    assert report.applied_state["conv1.weight"].dtype == torch.float32
    assert "conv1.weight: float16 -> float32" in report.summary()


def test_integer_dtype_mismatch_is_listed_not_applied(tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    state["bn1.num_batches_tracked"] = torch.tensor(3.0)
    save_file(state, str(tmp_path / "f.safetensors"))
    report = load_weights(_graph("tv_resnet"), tmp_path / "f.safetensors")
    bad = [m for m in report.mismatched if m.target == "bn1.num_batches_tracked"]
    assert bad and "float32 in the file, int64 here" in bad[0].why
    assert report.applied_state["bn1.num_batches_tracked"].dtype == torch.int64


def test_nan_weights_are_warned_naming_the_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    state["layer1.0.conv2.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    report = load_weights(_graph("tv_resnet"), tmp_path / "nan.safetensors")
    assert report.nonfinite == ["layer1.0.conv2.weight"]
    assert "layer1.0.conv2.weight holds NaN or infinite values" in report.summary()


def test_a_file_that_matches_nothing_applies_nothing(tmp_path):
    torch.save({"encoder.w": torch.zeros(3, 3, 3), "decoder.w": torch.zeros(7)}, tmp_path / "other.pt")
    report = load_weights(_graph("tv_resnet"), tmp_path / "other.pt")
    assert not report.ok and report.applied_state is None and not report.matched
    assert report.headline().startswith("No tensor in other.pt fits the graph")
    assert sorted(report.unexpected) == ["decoder.w", "encoder.w"]


def test_a_pickled_model_is_refused_with_a_clear_message(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "model.pt")    # a whole module: unpickling it could run code
    with pytest.raises(WeightsLoadError, match="refused: it is a pickle of Python objects.*state_dict"):
        load_weights(_graph("tv_resnet"), tmp_path / "model.pt")


def test_a_file_far_larger_than_the_model_is_refused_before_it_is_read(tmp_path):
    """The safetensors header declares 1 GiB of tensors: refused from the header alone (the file is tiny)."""
    import json
    import struct

    header = json.dumps({"big": {"dtype": "F32", "shape": [2**28], "data_offsets": [0, 2**30]}}).encode()
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    with pytest.raises(WeightsLoadError, match=r"holds 1\.0 GiB of weights, far more than this model needs"):
        load_weights(_graph("tv_resnet"), tmp_path / "huge.safetensors")
    torch.save({"w": torch.zeros(2**21)}, tmp_path / "big.pt")    # 8 MiB for a model of 21 KiB
    with pytest.raises(WeightsLoadError, match="far more than this model needs"):
        load_weights(_graph("tv_resnet"), tmp_path / "big.pt")


def test_another_projects_weights(tmp_path):
    from safetensors.torch import load_file

    graph = _graph("tv_resnet")
    weights = load_file(str(WEIGHTS / "tv_resnet.safetensors"))
    save_project(tmp_path / "trained.deepwire", Project(graph, weights=weights))
    report = load_weights(_graph("tv_resnet"), tmp_path / "trained.deepwire")
    assert report.kind == "project" and report.by_name == report.total
    _assert_reproduces(graph, report.applied_state, "tv_resnet")
    save_project(tmp_path / "untrained.deepwire", Project(graph))
    with pytest.raises(WeightsLoadError, match="holds no trained weights"):
        load_weights(graph, tmp_path / "untrained.deepwire")


# ----------------------------------------------------------------------------- Keras

KERAS_NAMES = ["tabular_dnn", "lstm", "bidirectional_gru", "residual_cnn", "attention", "mobile_block", "nested",
               "repeated_blocks", "sequence_layers", "squeeze_excite"]


def _keras_weights(name: str, tmp_path: Path) -> Path:
    """The fixture's model.weights.h5: what Keras 3's model.save_weights writes."""
    path = tmp_path / f"{name}.weights.h5"
    with zipfile.ZipFile(KERAS / f"{name}.keras") as zf:
        path.write_bytes(zf.read("model.weights.h5"))
    return path


def _keras_outputs(graph, state, data) -> np.ndarray:
    model = compile_graph(graph)
    model.load_state_dict(state, strict=True)
    inputs = [data["x"]] + ([data["x2"]] if "x2" in data else [])
    inputs = [x.transpose(0, 3, 1, 2) if x.ndim == 4 else x for x in inputs]   # Keras' (H, W, C) -> (C, H, W)
    with torch.no_grad():
        return model.eval()(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]).numpy()


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_keras_weights_file_into_the_imported_graph_reproduces_keras(name, tmp_path):
    pytest.importorskip("h5py")
    from engine.importers import import_keras

    graph = import_keras(KERAS / f"{name}.keras", graph_only=True).graph
    report = load_weights(graph, _keras_weights(name, tmp_path))
    assert report.kind == "keras" and len(report.matched) == report.total
    assert not (report.missing or report.mismatched or report.unexpected)
    data = np.load(KERAS / f"{name}.npz")
    want = data["y"]
    np.testing.assert_allclose(_keras_outputs(graph, report.applied_state, data), want,
                               atol=1e-5 * max(1.0, float(np.abs(want).max())), rtol=0)


def test_keras_weights_into_a_graph_with_other_names_match_by_order(tmp_path):
    pytest.importorskip("h5py")
    from engine.importers import import_keras

    graph = import_keras(KERAS / "residual_cnn.keras", graph_only=True).graph
    for node in list(graph.nodes()):
        graph.rename(node.id, f"my_{node.name}")
    report = load_weights(graph, _keras_weights("residual_cnn", tmp_path))
    assert report.by_order == report.total and report.by_name == 0
    data = np.load(KERAS / "residual_cnn.npz")
    np.testing.assert_allclose(_keras_outputs(graph, report.applied_state, data), data["y"], atol=1e-4, rtol=0)


def test_keras_head_with_other_units_keeps_fresh_weights(tmp_path):
    pytest.importorskip("h5py")
    from engine.importers import import_keras

    graph = import_keras(KERAS / "tabular_dnn.keras", graph_only=True).graph
    head = next(n for n in graph.nodes() if n.name == "probability")
    graph.set_params(head.id, {"units": 3})
    report = load_weights(graph, _keras_weights("tabular_dnn", tmp_path))
    assert report.kept_blocks == ["probability"]
    assert {m.target_shape for m in report.mismatched} == {(3, 32), (3,)}
    assert {m.source_shape for m in report.mismatched} == {(1, 32), (1,)}
    assert len(report.matched) == 4


def test_a_keras_model_file_is_pointed_to_import(tmp_path):
    with pytest.raises(WeightsLoadError, match="Import Model"):
        read_weights(KERAS / "tabular_dnn.keras")
