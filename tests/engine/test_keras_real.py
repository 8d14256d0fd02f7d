"""Files saved by real Keras 3 (tests/fixtures/keras, written by make_fixtures.py with KERAS_BACKEND=torch):
each imports with its weights and the imported model reproduces the outputs Keras computed."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import cli
from engine.compiler import compile_graph
from engine.importers import WeightsImportError, import_keras
from engine.project import load_project

h5py = pytest.importorskip("h5py")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"
NAMES = ["tabular_dnn", "auto_named", "lstm", "normalized_dnn", "bidirectional_gru", "residual_cnn", "residual_mlp",
         "attention", "cross_attention",
         # the layers and patterns of keras.applications (test_keras_applications.py checks how they map)
         "mobile_block", "strided_same", "separable_upsampling", "squeeze_excite", "nested", "sequence_layers",
         "repeated_blocks"]


def _outputs(graph, weights, data) -> np.ndarray:
    model = compile_graph(graph)
    model.load_state_dict(weights, strict=True)
    inputs = [data["x"]] + ([data["x2"]] if "x2" in data else [])
    inputs = [x.transpose(0, 3, 1, 2) if x.ndim == 4 else x for x in inputs]   # Keras' (H, W, C) -> (C, H, W)
    with torch.no_grad():
        return model.eval()(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]).numpy()


def _assert_reproduces(result, name: str) -> None:
    data = np.load(FIXTURES / f"{name}.npz")
    got, want = _outputs(result.graph, result.weights, data), data["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, float(np.abs(want).max())), rtol=0)


def _copy_with(tmp_path, name: str, config=None, weights=None) -> Path:
    """A copy of a fixture with its config.json and/or model.weights.h5 changed by callables."""
    path = tmp_path / f"{name}_changed.keras"
    with zipfile.ZipFile(FIXTURES / f"{name}.keras") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json" and config is not None:
                tree = json.loads(data)
                config(tree)
                data = json.dumps(tree).encode()
            if info.filename == "model.weights.h5" and weights is not None:
                h5 = tmp_path / "member.h5"
                h5.write_bytes(data)
                with h5py.File(h5, "a") as f:
                    weights(f)
                data = h5.read_bytes()
            dst.writestr(info.filename, data)
    return path


def _layer(tree, name):
    return next(la for la in tree["config"]["layers"] if la["config"]["name"] == name)


@pytest.mark.parametrize("name", NAMES)
def test_real_keras_file_reproduces_keras_outputs(name):
    result = import_keras(FIXTURES / f"{name}.keras")
    assert result.weights is not None
    assert any("trained weights" in note and "are imported" in note for note in result.notes)
    assert not any("fresh" in note for note in result.notes)
    _assert_reproduces(result, name)


def test_named_layers_and_later_models_find_their_weights():
    """Keras files weights by class and order (layers/dense, layers/dense_1...), not by the layer's name."""
    with zipfile.ZipFile(FIXTURES / "auto_named.keras") as zf:
        names = [la["config"]["name"] for la in json.loads(zf.read("config.json"))["config"]["layers"]]
    assert names[1:] == ["dense_2", "batch_normalization_1", "dense_3"]   # built after another model
    result = import_keras(FIXTURES / "auto_named.keras")
    assert [n.name for n in result.graph.nodes()][1:4] == ["dense_2", "batch_normalization_1", "dense_3"]
    _assert_reproduces(result, "auto_named")
    named = import_keras(FIXTURES / "tabular_dnn.keras")   # hidden, drop, hidden_2, probability
    assert [n.name for n in named.graph.nodes() if n.type == "Linear"] == ["hidden", "hidden_2", "probability"]


def test_attention_axes_written_by_keras_import_with_weights():
    with zipfile.ZipFile(FIXTURES / "attention.keras") as zf:
        config = json.loads(zf.read("config.json"))
    assert _layer(config, "attention")["config"]["attention_axes"] == [1]
    result = import_keras(FIXTURES / "attention.keras")
    attention = next(n for n in result.graph.nodes() if n.type == "MultiheadAttention")
    assert attention.params["num_heads"] == 2
    _assert_reproduces(result, "attention")
    _layer(config, "attention")["config"]["attention_axes"] = [2]
    with pytest.raises(Exception, match="attention_axes"):
        import_keras(config)


def test_weights_that_cannot_be_placed_fail_unless_the_graph_alone_is_asked_for(tmp_path, capsys):
    def narrower(tree):
        _layer(tree, "hidden")["config"]["units"] = 48
    path = _copy_with(tmp_path, "tabular_dnn", config=narrower)
    with pytest.raises(WeightsImportError,
                       match=r"^Dense 'hidden':.*shape \(64, 20\).*needs \(48, 20\).*import the graph alone"):
        import_keras(path)
    out = tmp_path / "out.deepwire"
    assert cli.main(["import", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Dense 'hidden'" in err and "--no-weights" in err and not out.exists()
    assert cli.main(["import", str(path), "--no-weights", "-o", str(out)]) == 0
    assert "without weights" in capsys.readouterr().out
    assert load_project(out).weights is None and len(load_project(out).graph) == 6

    out2 = tmp_path / "real.deepwire"   # the unchanged file brings its weights into the project
    assert cli.main(["import", str(FIXTURES / "tabular_dnn.keras"), "-o", str(out2)]) == 0
    assert "with weights" in capsys.readouterr().out
    project = load_project(out2)
    data = np.load(FIXTURES / "tabular_dnn.npz")
    np.testing.assert_allclose(_outputs(project.graph, project.weights, data), data["y"], atol=1e-5)


def test_a_layer_missing_from_the_weights_file_is_named(tmp_path):
    def drop(f):
        del f["layers/dense_1"]
    path = _copy_with(tmp_path, "residual_mlp", weights=drop)
    with pytest.raises(WeightsImportError, match=r"no weights for Dense 'branch' \(looked under layers/dense_1\)"):
        import_keras(path)
    assert import_keras(path, graph_only=True).weights is None


def test_weights_the_model_has_no_layer_for_are_named(tmp_path):
    def extra(f):
        f.create_dataset("layers/dense_9/vars/0", data=np.ones((3, 3), dtype="float32"))
    path = _copy_with(tmp_path, "lstm", weights=extra)
    with pytest.raises(WeightsImportError, match="holds weights for layers/dense_9 that no layer of the graph takes"):
        import_keras(path)


def test_nan_weights_import_with_a_note_naming_the_layer(tmp_path, capsys):
    def poison(f):
        kernel = f["layers/dense_1/vars/0"]
        values = kernel[()]
        values[0, 0], values[1, 0] = np.nan, np.inf
        kernel[...] = values
    path = _copy_with(tmp_path, "tabular_dnn", weights=poison)
    result = import_keras(path)
    assert any("Dense 'hidden_2' holds NaN or infinite weights (hidden_2.weight)" in n for n in result.notes)
    clean = import_keras(FIXTURES / "tabular_dnn.keras")
    assert not any("NaN" in n for n in clean.notes)
    assert cli.main(["import", str(path), "-o", str(tmp_path / "nan.deepwire")]) == 0
    assert "note: Dense 'hidden_2' holds NaN or infinite weights" in capsys.readouterr().err


def test_a_weights_file_given_beside_a_json_config(tmp_path):
    with zipfile.ZipFile(FIXTURES / "bidirectional_gru.keras") as zf:
        (tmp_path / "model.json").write_bytes(zf.read("config.json"))
        (tmp_path / "model.weights.h5").write_bytes(zf.read("model.weights.h5"))
    result = import_keras(tmp_path / "model.json", weights=tmp_path / "model.weights.h5")
    _assert_reproduces(result, "bidirectional_gru")
    assert import_keras(tmp_path / "model.json").weights is None   # a JSON config alone brings none
    with pytest.raises(WeightsImportError, match="LSTM 'encoder'"):   # another model's weights do not fit it
        import_keras(FIXTURES / "lstm.keras", weights=tmp_path / "model.weights.h5")
