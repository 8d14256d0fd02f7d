"""Importing Keras 3 weights (model.weights.h5) with the configuration: the weights files are written
with h5py in Keras 3's layout from random arrays, and the imported PyTorch module is compared with a
NumPy forward pass written directly from those channels-last Keras arrays."""
from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest
import torch

from engine import cli
from engine.compiler import compile_graph
from engine.importers import ModelImportError, WeightsImportError, import_keras

h5py = pytest.importorskip("h5py")

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _layer(cls: str, name: str, **config) -> dict:
    return {"module": "keras.layers", "class_name": cls,
            "config": {"name": name, "trainable": True, "dtype": POLICY, **config}, "registered_name": None}


def _dense(name, units, activation="linear"):
    return _layer("Dense", name, units=units, activation=activation, use_bias=True)


def _input(shape, name="input_layer"):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name},
            "registered_name": None}


def _sequential(name, shape, layers):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": name, "trainable": True, "dtype": POLICY, "layers": [_input(shape), *layers]},
            "registered_name": None, "build_config": {"input_shape": [None, *shape]}}


def _write_weights(path, layers: dict) -> None:
    """Keras 3's layout: layers/<name>/vars/<i>; a recurrent layer's arrays live in its cell."""
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        for name, arrays in layers.items():
            group = f.create_group(f"layers/{name}")
            own = group.create_group("vars")
            if name.startswith(("lstm", "gru")):
                own = group.create_group("cell").create_group("vars")
            for i, array in enumerate(arrays):
                own.create_dataset(str(i), data=np.asarray(array, dtype=np.float32))


def _torch_out(result, x_channels_first: np.ndarray) -> np.ndarray:
    model = compile_graph(result.graph)
    model.load_state_dict(result.weights, strict=True)
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x_channels_first, dtype=np.float32))).numpy()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


RNG = np.random.default_rng(0)

MLP = _sequential("mlp", [28, 28], [_layer("Flatten", "flatten", data_format="channels_last"),
                                     _dense("dense", 128, "relu"), _dense("dense_1", 10)])


def _mlp_arrays():
    return {"dense": [RNG.normal(size=(784, 128)) * 0.05, RNG.normal(size=128) * 0.1],
            "dense_1": [RNG.normal(size=(128, 10)) * 0.1, RNG.normal(size=10) * 0.1]}


def _mlp_reference(arrays, x):
    (k1, b1), (k2, b2) = arrays["dense"], arrays["dense_1"]
    return np.maximum(x.reshape(len(x), -1) @ k1 + b1, 0) @ k2 + b2


def test_mlp_weights(tmp_path):
    arrays = _mlp_arrays()
    _write_weights(tmp_path / "model.weights.h5", arrays)
    result = import_keras(MLP, weights=tmp_path / "model.weights.h5")
    assert set(result.weights) == set(compile_graph(result.graph).state_dict())
    x = RNG.normal(size=(4, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(_torch_out(result, x), _mlp_reference(arrays, x), atol=1e-5)


def _conv2d_valid(x, kernel, bias):   # x (N, H, W, C), kernel (kh, kw, C, O): Keras' channels-last convolution
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[3]))
    for i in range(h):
        for j in range(w):
            out[:, i, j, :] = np.tensordot(x[:, i:i + kh, j:j + kw, :], kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out + bias


def test_cnn_weights_flatten_order(tmp_path):
    config = _sequential("cnn", [8, 8, 1], [
        _layer("Conv2D", "conv2d", filters=4, kernel_size=[3, 3], strides=[1, 1], padding="valid",
               data_format="channels_last", dilation_rate=[1, 1], groups=1, activation="relu", use_bias=True),
        _layer("Flatten", "flatten", data_format="channels_last"), _dense("dense", 3)])
    arrays = {"conv2d": [RNG.normal(size=(3, 3, 1, 4)), RNG.normal(size=4) * 0.1],
              "dense": [RNG.normal(size=(6 * 6 * 4, 3)) * 0.1, RNG.normal(size=3) * 0.1]}
    _write_weights(tmp_path / "cnn.weights.h5", arrays)
    result = import_keras(config, weights=str(tmp_path / "cnn.weights.h5"))
    x = RNG.normal(size=(3, 8, 8, 1)).astype(np.float32)
    feature = np.maximum(_conv2d_valid(x.astype(np.float64), *arrays["conv2d"]), 0)   # (N, 6, 6, 4)
    expected = feature.reshape(len(x), -1) @ arrays["dense"][0] + arrays["dense"][1]   # Keras flattens (H, W, C)
    np.testing.assert_allclose(_torch_out(result, x.transpose(0, 3, 1, 2)), expected, atol=1e-5)


def test_lstm_weights(tmp_path):
    units, features = 4, 3
    config = _sequential("rnn", [5, features], [
        _layer("LSTM", "lstm", units=units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
               return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False),
        _dense("dense", 1)])
    arrays = {"lstm": [RNG.normal(size=(features, 4 * units)) * 0.5, RNG.normal(size=(units, 4 * units)) * 0.5,
                       RNG.normal(size=4 * units) * 0.5],
              "dense": [RNG.normal(size=(units, 1)), RNG.normal(size=1)]}
    _write_weights(tmp_path / "rnn.weights.h5", arrays)
    result = import_keras(config, weights=tmp_path / "rnn.weights.h5")
    x = RNG.normal(size=(2, 5, features))
    kernel, recurrent, bias = arrays["lstm"]
    h, c = np.zeros((2, units)), np.zeros((2, units))
    for t in range(x.shape[1]):   # Keras' gate order: input, forget, cell, output
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    expected = h @ arrays["dense"][0] + arrays["dense"][1]
    np.testing.assert_allclose(_torch_out(result, x), expected, atol=1e-5)


def _gru(name, units, reset_after=True):
    return _layer("GRU", name, units=units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                  return_sequences=False, reset_after=reset_after)


def test_gru_weights_reorder_gates(tmp_path):
    units, features = 3, 2
    config = _sequential("gru", [4, features], [_gru("gru", units), _dense("dense", 2)])
    arrays = {"gru": [RNG.normal(size=(features, 3 * units)), RNG.normal(size=(units, 3 * units)),
                      RNG.normal(size=(2, 3 * units))],
              "dense": [RNG.normal(size=(units, 2)), RNG.normal(size=2)]}
    _write_weights(tmp_path / "gru.weights.h5", arrays)
    result = import_keras(config, weights=tmp_path / "gru.weights.h5")
    x = RNG.normal(size=(2, 4, features))
    kernel, recurrent, (b_in, b_rec) = arrays["gru"]
    h = np.zeros((2, units))
    for t in range(x.shape[1]):   # Keras' gates: update z, reset r, candidate h (reset_after=True)
        xz, xr, xh = np.split(x[:, t] @ kernel + b_in, 3, axis=1)
        hz, hr, hh = np.split(h @ recurrent + b_rec, 3, axis=1)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
    expected = h @ arrays["dense"][0] + arrays["dense"][1]
    np.testing.assert_allclose(_torch_out(result, x), expected, atol=1e-5)

    old = _sequential("gru", [4, features], [_gru("gru", units, reset_after=False), _dense("dense", 2)])
    with pytest.raises(ModelImportError, match="GRU 'gru'.*reset_after=False"):
        import_keras(old, weights=tmp_path / "gru.weights.h5")
    assert import_keras(old).weights is None   # the graph alone still imports


def test_dot_keras_file_brings_its_weights(tmp_path):
    arrays = _mlp_arrays()
    _write_weights(tmp_path / "model.weights.h5", arrays)
    path = tmp_path / "mlp.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        zf.writestr("config.json", json.dumps(MLP))
        zf.write(tmp_path / "model.weights.h5", "model.weights.h5")
    result = import_keras(path)
    assert result.weights is not None
    x = RNG.normal(size=(2, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(_torch_out(result, x), _mlp_reference(arrays, x), atol=1e-5)

    out = tmp_path / "mlp.deepwire"
    assert cli.main(["import", str(path), "-o", str(out)]) == 0
    config = tmp_path / "mlp.json"
    config.write_text(json.dumps(MLP))
    out2 = tmp_path / "mlp2.deepwire"
    assert cli.main(["import", str(config), "--weights", str(tmp_path / "model.weights.h5"), "-o", str(out2)]) == 0
    from engine.project import load_project
    assert torch.equal(load_project(out2).weights["dense.weight"], result.weights["dense.weight"])


def test_normalization_statistics_come_along(tmp_path):
    config = _sequential("m", [6], [_layer("Normalization", "normalization", axis=-1, mean=None, variance=None,
                                           invert=False), _dense("dense", 2)])
    mean, variance = RNG.normal(size=6), RNG.uniform(0.5, 4.0, size=6)
    arrays = {"normalization": [mean, variance, np.array(10.0)], "dense": [RNG.normal(size=(6, 2)), RNG.normal(size=2)]}
    _write_weights(tmp_path / "m.weights.h5", arrays)
    assert import_keras(config).weights is None   # without weights the graph imports as before
    result = import_keras(config, weights=tmp_path / "m.weights.h5")
    x = RNG.normal(size=(3, 6))
    expected = (x - mean) / np.sqrt(variance) @ arrays["dense"][0] + arrays["dense"][1]
    np.testing.assert_allclose(_torch_out(result, x), expected, atol=1e-5)

    fixed = _sequential("m", [6], [_layer("Normalization", "normalization", axis=-1, mean=list(mean),
                                          variance=list(variance), invert=False), _dense("dense", 2)])
    _write_weights(tmp_path / "fixed.weights.h5", {"dense": arrays["dense"]})   # Keras files no variables for it
    result = import_keras(fixed, weights=tmp_path / "fixed.weights.h5")
    np.testing.assert_allclose(_torch_out(result, x), expected, atol=1e-5)
    assert not any("not kept" in note for note in result.notes)
    assert any("Normalization 'normalization'" in note and "not kept" in note for note in import_keras(fixed).notes)


def test_weights_the_graph_cannot_take_are_refused(tmp_path):
    arrays = _mlp_arrays()
    arrays["dense_2"] = [np.ones((10, 3)), np.zeros(3)]   # a layer the model does not have
    _write_weights(tmp_path / "extra.weights.h5", arrays)
    with pytest.raises(WeightsImportError, match=r"holds weights for layers/dense_2 that no layer of the graph "
                                                 r"takes.*import the graph alone"):
        import_keras(MLP, weights=tmp_path / "extra.weights.h5")
    assert import_keras(MLP, weights=tmp_path / "extra.weights.h5", graph_only=True).weights is None


def test_weights_errors(tmp_path, monkeypatch):
    arrays = _mlp_arrays()
    del arrays["dense_1"]
    _write_weights(tmp_path / "part.weights.h5", arrays)
    with pytest.raises(WeightsImportError, match=r"no weights for Dense 'dense_1' \(looked under layers/dense_1\)"):
        import_keras(MLP, weights=tmp_path / "part.weights.h5")
    arrays = _mlp_arrays()
    arrays["dense"][0] = arrays["dense"][0][:700]
    _write_weights(tmp_path / "bad.weights.h5", arrays)
    with pytest.raises(WeightsImportError, match=r"Dense 'dense'.*weight shape \(128, 700\).*needs \(128, 784\)"):
        import_keras(MLP, weights=tmp_path / "bad.weights.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ModelImportError, match="install h5py: pip install h5py"):
        import_keras(MLP, weights=tmp_path / "part.weights.h5")


def test_tf_keras_2_weights_layout(tmp_path):
    """tf.keras 2's save_weights HDF5: layer_names on the root, weight_names on each layer's group."""
    arrays = _mlp_arrays()
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"flatten", b"dense", b"dense_1"]
        f.create_group("flatten").attrs["weight_names"] = []
        for name, (kernel, bias) in arrays.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=kernel.astype(np.float32))
            group.create_dataset(f"{name}/bias:0", data=bias.astype(np.float32))
    result = import_keras(MLP, weights=path)
    x = RNG.normal(size=(2, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(_torch_out(result, x), _mlp_reference(arrays, x), atol=1e-5)
    with h5py.File(path, "a") as f:   # a layer the model does not have
        f.attrs["layer_names"] = [b"flatten", b"dense", b"dense_1", b"extra"]
        group = f.create_group("extra")
        group.attrs["weight_names"] = [b"extra/kernel:0"]
        group.create_dataset("extra/kernel:0", data=np.ones((2, 2), dtype=np.float32))
    with pytest.raises(WeightsImportError, match="holds weights for 'extra' that no layer of the graph takes"):
        import_keras(MLP, weights=path)
