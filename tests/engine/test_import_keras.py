"""Importing Keras models from their JSON configuration (no TensorFlow): the configs below are written
the way Keras 3's `model.to_json()` and a `.keras` file's config.json write them, and the expected
parameter counts are what `model.summary()` reports, worked out by hand."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch

from engine import cli
from engine.analysis import analyse
from engine.compiler import compile_graph
from engine.importers import ModelImportError, import_keras
from engine.templates import load_template

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
          "registered_name": None}
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def _layer(cls: str, name: str, build_shape=None, **config) -> dict:
    layer = {"module": "keras.layers", "class_name": cls,
             "config": {"name": name, "trainable": True, "dtype": POLICY, **config}, "registered_name": None}
    if build_shape is not None:
        layer["build_config"] = {"input_shape": [None, *build_shape]}
    return layer


def _dense(name, units, activation="linear", shape=None):
    return _layer("Dense", name, shape, units=units, activation=activation, use_bias=True,
                  kernel_initializer=GLOROT, bias_initializer=ZEROS, kernel_regularizer=None,
                  bias_regularizer=None, kernel_constraint=None, bias_constraint=None)


def _conv2d(name, filters, shape, activation="relu", padding="valid", strides=(1, 1)):
    return _layer("Conv2D", name, shape, filters=filters, kernel_size=[3, 3], strides=list(strides), padding=padding,
                  data_format="channels_last", dilation_rate=[1, 1], groups=1, activation=activation, use_bias=True,
                  kernel_initializer=GLOROT, bias_initializer=ZEROS)


def _pool(name, shape):
    return _layer("MaxPooling2D", name, shape, pool_size=[2, 2], padding="valid", strides=[2, 2],
                  data_format="channels_last")


def _input(shape, name="input_layer", dtype="float32"):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": [None, *shape], "dtype": dtype, "sparse": False, "name": name},
            "registered_name": None}


def _sequential(name, shape, layers):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": name, "trainable": True, "dtype": POLICY, "layers": [_input(shape), *layers]},
            "registered_name": None, "build_config": {"input_shape": [None, *shape]},
            "compile_config": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"}}


def _kt(layer: str, shape) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, *shape], "dtype": "float32", "keras_history": [layer, 0, 0]}}


def _call(layer: dict, *args, **kwargs) -> dict:
    layer = dict(layer, name=layer["config"]["name"])
    layer["inbound_nodes"] = [{"args": list(args), "kwargs": kwargs}]
    return layer


def _functional(name, layers, inputs, outputs):
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers,
                       "input_layers": inputs, "output_layers": outputs},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _canon(graph):
    analysis = analyse(graph)
    index = {node_id: i for i, node_id in enumerate(analysis.order)}
    return [(graph.node(n).type, analysis.params[n], [index[s] for s in analysis.inputs_of(graph, n)])
            for n in analysis.order]


def _runs(graph, batch=2):
    """The graph compiles and runs on a batch of its input shape; returns the output."""
    analysis = analyse(graph)
    assert analysis.diagnostics == []
    spec = analysis.specs[analysis.inputs[0]]
    x = (torch.randint(0, 10, (batch, *spec.shape)) if spec.dtype == "int64" else torch.randn(batch, *spec.shape))
    with torch.no_grad():
        return compile_graph(graph).eval()(x)


FASHION = _sequential("sequential", [28, 28], [
    _layer("Flatten", "flatten", [28, 28], data_format="channels_last"),
    _dense("dense", 128, "relu", [784]),
    _dense("dense_1", 10, "linear", [128]),
])


def test_fashion_mnist_mlp_from_to_json_text():
    text = json.dumps(dict(FASHION, keras_version="3.3.3", backend="tensorflow"))
    result = import_keras(text)
    graph = result.graph
    # model.summary(): dense 784*128 + 128 = 100,480; dense_1 128*10 + 10 = 1,290
    assert result.source_params == 100_480 + 1_290 == 101_770
    assert analyse(graph).total_params == 101_770
    assert _canon(graph) == _canon(load_template("fashion_mnist_mlp"))
    assert [n.name for n in graph.nodes()] == ["input_layer", "flatten", "dense", "dense_1", "output"]
    assert result.notes == [] and result.weights is None
    assert [n.pos[0] for n in graph.nodes()] == [0, 280, 560, 840, 1120]
    assert _runs(graph).shape == (2, 10)


def test_dot_keras_file(tmp_path):
    path = tmp_path / "mlp.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.3.3", "date_saved": "2024-05-01@10:00:00"}))
        zf.writestr("config.json", json.dumps(FASHION))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelImportError, match="mlp.keras's model.weights.h5 is not a readable HDF5 file"):
        import_keras(path)   # damaged weights are never replaced by fresh ones silently
    result = import_keras(path, graph_only=True)
    assert analyse(result.graph).total_params == 101_770 and result.weights is None
    (tmp_path / "plain.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(ModelImportError, match="not a readable .keras file|without config.json"):
        import_keras(tmp_path / "plain.zip")


def test_tabular_dnn_functional():
    layers = [
        dict(_input([20]), name="input_layer", inbound_nodes=[]),
        _call(_dense("dense", 64, "relu", [20]), _kt("input_layer", [20])),
        _call(_layer("Dropout", "dropout", [64], rate=0.2, seed=None, noise_shape=None), _kt("dense", [64])),
        _call(_dense("dense_1", 32, "relu", [64]), _kt("dropout", [64])),
        _call(_dense("dense_2", 1, "sigmoid", [32]), _kt("dense_1", [32])),
    ]
    result = import_keras(_functional("tabular", layers, [["input_layer", 0, 0]], [["dense_2", 0, 0]]))
    # 20*64 + 64 = 1,344; 64*32 + 32 = 2,080; 32 + 1 = 33
    assert result.source_params == 1_344 + 2_080 + 33 == analyse(result.graph).total_params == 3_457
    assert _canon(result.graph) == _canon(load_template("tabular_dnn"))


def test_a_branch_that_reaches_no_output_is_left_out_with_a_note():
    layers = [
        dict(_input([20]), name="input_layer", inbound_nodes=[]),
        _call(_dense("dense", 8, "relu", [20]), _kt("input_layer", [20])),
        _call(_dense("unused", 4, "relu", [20]), _kt("input_layer", [20])),   # a dead end
        _call(_dense("out", 1, "linear", [8]), _kt("dense", [8])),
    ]
    result = import_keras(_functional("branch", layers, [["input_layer", 0, 0]], [["out", 0, 0]]))
    assert [n.name for n in result.graph.nodes()] == ["input_layer", "dense", "out", "output"]
    assert result.notes == ["Dense 'unused' reaches no output of the model and is left out"]


def test_cnn_channels_last_becomes_channels_first():
    model = _sequential("image_cnn", [128, 128, 3], [
        _layer("Rescaling", "rescaling", [128, 128, 3], scale=1 / 255, offset=0.0),
        _conv2d("conv2d", 32, [128, 128, 3]),
        _pool("max_pooling2d", [126, 126, 32]),
        _conv2d("conv2d_1", 64, [63, 63, 32]),
        _pool("max_pooling2d_1", [61, 61, 64]),
        _layer("Flatten", "flatten", [30, 30, 64], data_format="channels_last"),
        _dense("dense", 128, "relu", [57600]),
        _dense("dense_1", 10, "softmax", [128]),
    ])
    result = import_keras(model)
    graph = result.graph
    assert graph.find("input_layer").params["shape"] == [3, 128, 128]
    assert "Permute" not in [n.type for n in graph.nodes()]
    # conv2d 3*3*3*32 + 32 = 896; conv2d_1 3*3*32*64 + 64 = 18,496; dense 30*30*64*128 + 128 = 7,372,928;
    # dense_1 128*10 + 10 = 1,290
    assert result.source_params == 896 + 18_496 + 7_372_928 + 1_290 == 7_393_610
    assert analyse(graph).total_params == 7_393_610
    assert _canon(graph) == _canon(load_template("image_cnn"))


def _mnist_like(side: int) -> dict:
    out = (side + 1) // 2
    return _sequential("mnist", [side * side], [
        _layer("Reshape", "reshape", [side * side], target_shape=[side, side, 1]),
        _conv2d("conv", 8, [side, side, 1], padding="same", strides=(2, 2)),
        _layer("BatchNormalization", "bn", [out, out, 8], axis=-1, momentum=0.99, epsilon=0.001, center=True,
               scale=True),
        _layer("GlobalAveragePooling2D", "gap", [out, out, 8], data_format="channels_last", keepdims=False),
        _dense("out", 10, "softmax", [8]),
    ])


def test_reshape_to_an_image_and_strided_same_padding():
    result = import_keras(_mnist_like(27))
    graph = result.graph
    # (27, 27, 1) -> (1, 27, 27) by the Reshape itself: one channel goes first without moving an element
    assert not any(n.type == "Permute" for n in graph.nodes())
    assert list(graph.find("reshape").params["shape"]) == [1, 27, 27]
    assert graph.find("conv").params["padding"] == [1, 1]   # Keras' 'same' at stride 2, written out
    bn = graph.find("bn").params
    assert bn["momentum"] == pytest.approx(0.01) and bn["eps"] == pytest.approx(0.001)
    analysis = analyse(graph)
    assert analysis.specs[graph.find("conv").id].shape == (8, 14, 14)   # ceil(27 / 2), as in Keras
    # conv 3*3*1*8 + 8 = 80; bn 4*8 = 32 in Keras (2*8 = 16 learned here); out 8*10 + 10 = 90
    assert result.source_params == 80 + 32 + 90
    assert analysis.total_params == 80 + 16 + 90
    assert any("BatchNormalization 'bn'" in note and "buffers" in note for note in result.notes)
    assert _runs(graph).shape == (2, 10)
    # TensorFlow pads 28 by 0 on top and 1 below: a ZeroPad block, then the convolution 'valid'
    even = import_keras(_mnist_like(28)).graph
    pad = next(n for n in even.nodes() if n.type == "ZeroPad2d")
    assert (pad.params["top"], pad.params["bottom"], pad.params["left"], pad.params["right"]) == (0, 1, 0, 1)
    assert even.find("conv").params["padding"] == "valid"
    assert analyse(even).specs[even.find("conv").id].shape == (8, 14, 14)
    assert _runs(even).shape == (2, 10)


def test_lstm_counts_differ_by_the_second_bias_and_say_so():
    model = _sequential("sequence_lstm", [50, 8], [
        _layer("LSTM", "lstm", [50, 8], units=64, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
               return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
               dropout=0.0, recurrent_dropout=0.0),
        _dense("dense", 32, "relu", [64]),
        _dense("dense_1", 1, "linear", [32]),
    ])
    result = import_keras(model)
    # Keras: lstm 4*(64*(8+64) + 64) = 18,688; dense 64*32 + 32 = 2,080; dense_1 33
    assert result.source_params == 18_688 + 2_080 + 33 == 20_801
    # PyTorch's LSTM has b_ih and b_hh: 4*64 more
    assert analyse(result.graph).total_params == 20_801 + 4 * 64
    assert _canon(result.graph) == _canon(load_template("sequence_lstm"))
    assert len(result.notes) == 1 and "LSTM 'lstm'" in result.notes[0] and "two bias vectors" in result.notes[0]


def test_functional_sequence_model_with_attention_and_merges():
    seq = [20, 8]
    layers = [
        dict(_input(seq, "series"), name="series", inbound_nodes=[]),
        _call(_layer("Conv1D", "conv", seq, filters=16, kernel_size=[3], strides=[1], padding="same",
                     data_format="channels_last", dilation_rate=[1], groups=1, activation="relu", use_bias=True),
              _kt("series", seq)),
        _call(_layer("BatchNormalization", "bn", [20, 16], axis=-1, momentum=0.9, epsilon=0.001, center=True,
                     scale=True), _kt("conv", [20, 16])),
        _call(_layer("LSTM", "lstm", seq, units=16, return_sequences=True, activation="tanh",
                     recurrent_activation="sigmoid", use_bias=True), _kt("series", seq)),
        _call(_layer("MultiHeadAttention", "mha", None, num_heads=2, key_dim=8, value_dim=8, dropout=0.0,
                     use_bias=True, output_shape=None, attention_axes=None),
              _kt("lstm", [20, 16]), _kt("lstm", [20, 16]), use_causal_mask=True),
        _call(_layer("Add", "add"), [_kt("bn", [20, 16]), _kt("mha", [20, 16])]),
        _call(_layer("LayerNormalization", "ln", [20, 16], axis=-1, epsilon=0.001, center=True, scale=True,
                     rms_scaling=False), _kt("add", [20, 16])),
        _call(_layer("GlobalAveragePooling1D", "gap", [20, 16], data_format="channels_last", keepdims=False),
              _kt("ln", [20, 16])),
        _call(_dense("side", 4, "linear", [16]), _kt("gap", [16])),
        _call(_layer("Concatenate", "concat", axis=-1), [_kt("gap", [16]), _kt("side", [4])]),
        _call(_dense("head", 3, "softmax", [20]), _kt("concat", [20])),
    ]
    result = import_keras(_functional("mixer", layers, [["series", 0, 0]], [["head", 0, 0]]))
    graph = result.graph
    analysis = analyse(graph)
    assert analysis.diagnostics == []
    assert graph.find("mha").params["causal"] is True and graph.find("mha").params["mode"] == "self"
    assert graph.find("gap").params["layout"] == "sequence"
    assert graph.find("concat").params["dim"] == -1
    # conv 3*8*16 + 16 = 400; bn 4*16 = 64; lstm 4*(16*24 + 16) = 1,600; mha 4*16*16 + 4*16 = 1,088;
    # ln 2*16 = 32; side 16*4 + 4 = 68; head 20*3 + 3 = 63
    assert result.source_params == 400 + 64 + 1_600 + 1_088 + 32 + 68 + 63 == 3_315
    assert analysis.total_params == 3_315 - 2 * 16 + 4 * 16   # bn's moving statistics; lstm's second bias
    assert {n.split("'")[1] for n in result.notes} == {"bn", "lstm"}
    # the conv runs channels-first, so one Permute brings the series in and the Add lines the branches up
    assert [n.type for n in graph.nodes()].count("Permute") >= 2
    assert _runs(graph).shape == (2, 3)


def test_embedding_input_becomes_token_ids():
    model = _sequential("text", [30], [
        _layer("Embedding", "embedding", [30], input_dim=500, output_dim=16, mask_zero=False),
        _layer("GlobalAveragePooling1D", "gap", [30, 16], data_format="channels_last", keepdims=False),
        _dense("out", 2, "softmax", [16]),
    ])
    result = import_keras(model)
    assert result.graph.find("input_layer").params == {"shape": [30], "dtype": "int64"}
    assert result.source_params == 500 * 16 + 16 * 2 + 2 == analyse(result.graph).total_params
    assert _runs(result.graph).shape == (2, 2)


def test_keras2_functional_config():
    model = {"class_name": "Functional", "keras_version": "2.15.0", "backend": "tensorflow", "config": {
        "name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 10], "dtype": "float32", "sparse": False, "name": "input_1"}},
            {"class_name": "Dense", "name": "a", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "a", "units": 10, "activation": "tanh", "use_bias": True}},
            {"class_name": "Add", "name": "sum", "inbound_nodes": [[["a", 0, 0, {}], ["input_1", 0, 0, {}]]],
             "config": {"name": "sum"}},
            {"class_name": "Dense", "name": "b", "inbound_nodes": [[["sum", 0, 0, {}]]],
             "config": {"name": "b", "units": 1, "activation": "linear", "use_bias": False}},
        ],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["b", 0, 0]]}}
    result = import_keras(json.dumps(model))
    graph = result.graph
    add = graph.find("sum")
    assert sorted(graph.node(s).name for s in graph.inputs_of(add.id).values()) == ["a", "input_1"]
    assert result.source_params == 110 + 10 == analyse(graph).total_params


def test_unsupported_layers_are_named():
    model = _sequential("odd", [32, 32, 3], [
        _conv2d("conv", 8, [32, 32, 3]),
        _layer("ConvLSTM2D", "gmp", [30, 30, 8], filters=8, kernel_size=3),
        {"module": None, "class_name": "MyLayer", "config": {"name": "mine"}, "registered_name": "Custom>MyLayer"},
        _dense("out", 2, shape=[8]),
    ])
    with pytest.raises(ModelImportError) as info:
        import_keras(model)
    message = str(info.value)
    assert "ConvLSTM2D 'gmp'" in message and "MyLayer 'mine'" in message and "2 layers" in message
    assert "\n" not in message


def test_refusals_say_why(tmp_path):
    variable = _sequential("v", [None, 8], [_layer("LSTM", "lstm", [None, 8], units=4)])
    with pytest.raises(ModelImportError, match="variable size"):
        import_keras(variable)
    mha = _sequential("m", [10, 16], [_layer("MultiHeadAttention", "mha", num_heads=4, key_dim=64)])
    with pytest.raises(ModelImportError, match="key_dim must be"):
        import_keras(mha)
    with pytest.raises(ModelImportError, match="subclassed"):
        import_keras({"class_name": "MyModel", "config": {"units": 3}})
    with pytest.raises(ModelImportError, match="not valid JSON"):
        import_keras("{not json")
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 8)
    with pytest.raises(ModelImportError, match="legacy HDF5"):
        import_keras(h5)


def test_cli_import_keras(tmp_path, capsys):
    source = tmp_path / "model.json"
    source.write_text(json.dumps(_sequential("lstm", [50, 8], [_layer("LSTM", "lstm", units=8),
                                                               _dense("d", 1, shape=[8])])))
    out = tmp_path / "lstm.json"
    assert cli.main(["import", str(source), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "note: LSTM 'lstm'" in captured.err
    assert cli.main(["check", str(out)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_sequential("x", [4], [_layer("Lambda", "fn", function="lambda x: x")])))
    capsys.readouterr()
    assert cli.main(["import", str(bad), "-o", str(tmp_path / "bad_out.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Lambda 'fn'" in err
    assert cli.main(["import", str(source), "--class", "X", "-o", str(tmp_path / "x.json")]) == 2
