"""How the layers and patterns of keras.applications map to blocks (issue #16): the real Keras files written by
tests/fixtures/keras/make_fixtures.py (test_keras_real.py checks each reproduces Keras' outputs), and hand-written
configurations for what those files cannot show (refusals, nested models' names)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from engine.analysis import analyse
from engine.importers import ModelImportError, import_keras

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"


def _graph(name: str):
    pytest.importorskip("h5py")
    result = import_keras(FIXTURES / f"{name}.keras")
    assert result.weights is not None
    return result, result.graph


def _types(graph) -> dict[str, str]:
    return {n.name: n.type for n in graph.nodes()}


def test_fixtures_stay_small():
    for path in FIXTURES.glob("*.keras"):
        assert path.stat().st_size < 100_000, path.name


# ----------------------------------------------------------------------------- the real files

def test_mobilenet_downsampling_pads_then_convolves_each_channel():
    result, graph = _graph("mobile_block")
    pad = graph.find("pad").params
    assert (pad["top"], pad["bottom"], pad["left"], pad["right"]) == (0, 1, 0, 1)
    depthwise = graph.find("depthwise")
    assert depthwise.type == "DepthwiseConv2d" and depthwise.params["depth_multiplier"] == 2
    assert list(depthwise.params["stride"]) == [2, 2] and depthwise.params["padding"] == "valid"
    assert graph.find("relu6").params["function"] == "relu6"
    assert graph.find("pointwise").params["activation"] == "hardswish"
    assert graph.find("max").type == "GlobalMaxPool"
    # the depthwise weight: (3 channels x 2, 1, 3, 3), channel i * 2 + m as Keras orders them
    assert tuple(result.weights[f"{_attr(graph, 'depthwise')}.weight"].shape) == (6, 1, 3, 3)


def _attr(graph, name: str) -> str:
    from engine.codegen import generate

    return generate(graph, analyse(graph))[1].attrs[graph.find(name).id]


def test_strided_same_pads_the_odd_zero_at_the_end():
    _, graph = _graph("strided_same")
    types = _types(graph)
    assert types["conv_pad"] == types["depthwise_pad"] == "ZeroPad2d"
    for name in ("conv_pad", "depthwise_pad"):
        p = graph.find(name).params
        assert (p["top"], p["bottom"], p["left"], p["right"]) == (0, 1, 0, 1)
    assert graph.find("conv").params["padding"] == "valid"
    specs = analyse(graph).specs
    assert specs[graph.find("conv").id].shape == (4, 4, 4)            # ceil(8 / 2), as in Keras
    assert specs[graph.find("depthwise").id].shape == (4, 2, 2)
    pool = graph.find("max").params     # padding (0, 1): one on both sides would shift the windows
    assert list(pool["padding"]) == [0, 0] and pool["ceil_mode"] is True
    avg = graph.find("avg").params      # Keras averages over the input alone
    assert list(avg["padding"]) == [1, 1] and avg["count_include_pad"] is False


def test_separable_upsampling_and_transpose():
    _, graph = _graph("separable_upsampling")
    types = _types(graph)
    assert types["separable"] == "SeparableConv2d" and graph.find("separable").params["depth_multiplier"] == 2
    assert graph.find("up").params["mode"] == "nearest" and graph.find("up_bilinear").params["mode"] == "bilinear"
    assert types["transpose"] == "ConvTranspose2d"
    assert types["crop"] == types["crop_1"] == "Slice"   # one Slice per cropped dimension
    specs = analyse(graph).specs
    assert specs[graph.find("transpose").id].shape == (3, 48, 48)
    assert specs[graph.find("crop_1").id].shape == (3, 45, 45)


def test_squeeze_excite_broadcasts_without_permutes():
    """EfficientNet's SE block: Reshape (C,) -> (1, 1, C) becomes (C, 1, 1) directly, and Multiply broadcasts it
    over the feature map; `x + 3.0` and `* (1 / 6)` are Rescalings."""
    result, graph = _graph("squeeze_excite")
    types = _types(graph)
    assert "Permute" not in types.values()
    assert list(graph.find("se_reshape").params["shape"]) == [8, 1, 1]
    assert types["excite"] == types["gated"] == "Multiply"
    assert types["drop_connect"] == "StochasticDepth" and graph.find("drop_connect").params["mode"] == "row"
    assert types["pool"] == "Reduce" and graph.find("pool").params["keepdims"] is True
    assert graph.find("add").params == {"scale": 1.0, "offset": 3.0}
    assert graph.find("multiply").params["scale"] == pytest.approx(1 / 6)
    assert graph.find("hard_sigmoid").params["function"] == "hardsigmoid"
    assert graph.find("normalizer").params["axis"] == 0      # over the channels of (C, H, W)


def test_nested_models_become_modules_with_their_weights():
    result, graph = _graph("nested")
    types = _types(graph)
    assert types["stem"] == types["block"] == "Module"        # each nested model: one instance of its definition
    assert graph.find("stem").params == {"module": "Stem", "repeat": 1, "args": {}, "trainable": True}
    assert list(graph.modules) == ["Stem", "Block"]
    stem, block = (_types(graph.modules[m]) for m in ("Stem", "Block"))
    assert stem["stem_conv"] == "Conv2d" and stem["stem_norm"] == "LayerNorm"
    assert block["block_in"] == "Input" and block["block_dw"] == "DepthwiseConv2d"
    assert block["block_scale"] == "LayerScale"
    assert graph.modules["Block"].find("block_scale").params == {"init_value": 0.5, "layout": "channels_last",
                                                                  "trainable": True}
    assert types["scaled_add"] == "Add" and graph.find("scaled_add_scale").params["scale"] == pytest.approx(0.17)
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(FIXTURES / "nested.keras") as zf:   # Keras files them under the nested model's layers/
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            assert "layers/sequential/layers/conv2d/vars" in f and "layers/functional/layers/dense_1/vars" in f
    # placed under the instances' attributes
    assert {"stem.stem_conv.weight", "block.block_dw.weight", "block.block_scale.gamma"} <= set(result.weights)
    # conv 2*2*3*6 + 6, norm 12, depthwise 9*6 + 6, dense 6*12 + 12 and 12*6 + 6, scale 6, residual 6*6 + 6,
    # logits 6*2 + 2: all learned here as in Keras
    assert result.source_params == analyse(graph).total_params == 78 + 12 + 60 + 84 + 78 + 6 + 42 + 14


def test_nested_models_built_alike_share_one_definition_with_weights_of_their_own():
    result, graph = _graph("repeated_blocks")
    assert [(n.name, n.params["module"]) for n in graph.nodes() if n.type == "Module"] == \
        [("block_a", "BlockA"), ("block_b", "BlockA")]
    assert list(graph.modules) == ["BlockAMlp", "BlockA"]     # the Sequential inside each: one definition too
    assert graph.modules["BlockA"].find("block_a_mlp").params["module"] == "BlockAMlp"
    a, b = result.weights["block_a.block_a_mlp.expand.weight"], result.weights["block_b.block_a_mlp.expand.weight"]
    assert a.shape == b.shape == (12, 6) and not bool((a == b).all())
    assert result.source_params == analyse(graph).total_params == 2 * (6 * 12 + 12 + 12 * 6 + 6) + 6 * 3 + 3


def test_one_dimensional_layers():
    _, graph = _graph("sequence_layers")
    types = _types(graph)
    assert types["pad"] == "ZeroPad1d" and (graph.find("pad").params["left"], graph.find("pad").params["right"]) \
        == (1, 2)
    assert graph.find("conv").params["padding"] == [1]          # 13 at stride 2: even padding, written out
    assert graph.find("prelu").params["per_channel"] is True
    assert graph.find("groups").params["num_groups"] == 3
    assert types["up"] == "Upsample1d" and types["transpose"] == "ConvTranspose1d"
    assert graph.find("transpose").params["activation"] == "mish"
    assert graph.find("out").params["activation"] == "softplus"


# ----------------------------------------------------------------------------- hand-written configurations

def _input(shape, name):
    return {"class_name": "InputLayer", "name": name, "config": {"batch_shape": [None, *shape], "name": name},
            "inbound_nodes": []}


def _call(cls, name, args, **config):
    refs = [a if not isinstance(a, str) else {"class_name": "__keras_tensor__", "config": {"keras_history": [a, 0, 0]}}
            for a in args]
    return {"class_name": cls, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [{"args": refs, "kwargs": {}}]}


def _functional(layers, inputs, outputs, name="f"):
    return {"class_name": "Functional", "config": {"name": name, "layers": layers,
                                                   "input_layers": [[i, 0, 0] for i in inputs],
                                                   "output_layers": [[o, 0, 0] for o in outputs]}}


def _nested_model(inner_name="inner", dead=False):
    inner = _functional([_input([4], "inner_in"), _call("Dense", "dense", ["inner_in"], units=3)],
                        ["inner_in"], ["dense"], name=inner_name)
    layers = [_input([4], "x"), _call("Dense", "dense", ["x"], units=4),
              dict(_call("Functional", inner_name, ["dense"]), config=inner["config"])]
    return _functional(layers, ["x"], ["dense" if dead else inner_name])


def test_a_nested_models_layers_keep_their_names_in_its_module():
    graph = import_keras(_nested_model()).graph
    assert {n.name for n in graph.nodes()} == {"x", "dense", "inner", "output"}
    definition = graph.modules["Inner"]
    assert [(n.name, n.type) for n in definition.nodes()] == [("inner_in", "Input"), ("dense", "Linear"),
                                                              ("output", "Output")]
    assert analyse(graph).specs[graph.find("inner").id].shape == (3,)


def test_a_nested_model_that_reaches_no_output_is_left_out_with_its_module():
    result = import_keras(_nested_model(dead=True))
    assert result.graph.modules == {} and "inner" not in {n.name for n in result.graph.nodes()}
    assert "Functional 'inner' reaches no output of the model and is left out" in result.notes
    assert result.source_params == 4 * 4 + 4 + 4 * 3 + 3


def test_a_nested_model_called_twice_is_still_refused():
    model = _nested_model()
    call = model["config"]["layers"][2]
    call["inbound_nodes"] = call["inbound_nodes"] * 2
    with pytest.raises(ModelImportError, match="'inner' is called 2 times: shared layers"):
        import_keras(model)


def test_what_a_nested_model_cannot_map_names_the_model():
    inner = {"class_name": "Sequential", "config": {"name": "stem", "layers": [
        {"class_name": "Lambda", "config": {"name": "fn"}}]}}
    model = _functional([_input([4], "x"), dict(_call("Sequential", "stem", ["x"]), config=inner["config"])],
                        ["x"], ["stem"])
    with pytest.raises(ModelImportError, match="Lambda 'fn' \\(in the nested model 'stem'\\) has no Deepwire block"):
        import_keras(model)


@pytest.mark.parametrize("layer, message", [
    (_call("ReLU", "r", ["x"], max_value=3.0), "max_value other than 6"),
    (_call("Dense", "d", ["x", 2.0], units=2), "number 2.0 among its inputs"),
    (_call("Dropout", "d", ["x"], rate=0.5, noise_shape=[None, 4]), "noise_shape"),
    (_call("Activation", "a", ["x"], activation="leaky_relu"), "activation 'leaky_relu'"),
])
def test_refusals_of_the_new_layers_say_why(layer, message):
    model = _functional([_input([4], "x"), layer], ["x"], [layer["name"]])
    with pytest.raises(ModelImportError, match=message):
        import_keras(model)


def test_a_transposed_convolution_keras_backends_disagree_on_is_refused():
    layer = _call("Conv2DTranspose", "up", ["x"], filters=2, kernel_size=3, strides=2, padding="same")
    model = _functional([_input([4, 4, 3], "x"), layer], ["x"], ["up"])
    with pytest.raises(ModelImportError, match="pads differently in Keras' backends"):
        import_keras(model)
    layer["config"]["kernel_size"] = 4      # consistent: (4 - 1) * 2 + 4 - 2 * 1 = 8 = 4 * 2
    graph = import_keras(model).graph
    assert analyse(graph).specs[graph.find("up").id].shape == (2, 8, 8)


def test_layers_keras_froze_import_frozen_and_reproduce_its_outputs():
    """trainable=False on a layer, and on a nested base model (the Keras transfer-learning recipe), imports as
    frozen blocks: a frozen module instance for the base, a frozen Linear; the rest trains. Keras' outputs."""
    import numpy as np
    import torch

    from engine.analysis import analyse
    from engine.compiler import compile_graph

    result, graph = _graph("frozen_base")
    assert graph.find("base").type == "Module" and graph.find("base").params["trainable"] is False
    assert graph.find("frozen_dense").params["trainable"] is False
    assert graph.find("tuned_dense").params["trainable"] is True and graph.find("head").params["trainable"] is True
    analysis = analyse(graph)
    assert analysis.frozen_params == (6 * 8 + 8) + 2 * 8 + (8 * 8 + 8)       # base (Dense, BN weight and bias), Dense
    model = compile_graph(graph)
    model.load_state_dict(result.weights)
    model.train()                                          # a frozen block stays in eval mode while the rest trains
    assert not model.base.training and model.head.training
    reference = np.load(FIXTURES / "frozen_base.npz")
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(reference["x"]).float())
    assert np.allclose(out.numpy(), reference["y"], atol=1e-5)
