"""The Keras importer's layer handlers (engine/importers/keras/registry.py): every layer type the documentation
names as supported has one, and a new layer type is one small registered class whose structure and weights
import together (and leave nothing behind when it is unregistered)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import analyse
from engine.importers import ModelImportError, WeightsImportError, import_keras
from engine.importers.keras import LAYERS, LayerHandler, Skip, T, register, unregister
from engine.importers.keras.registry import kernel_and_bias

DOCS = Path(__file__).resolve().parents[2] / "docs" / "IMPORT.md"


def _documented() -> set[str]:
    """The layer classes docs/IMPORT.md lists under "Supported layers" (`MaxPooling1D/2D` is two of them)."""
    text = DOCS.read_text(encoding="utf-8")
    paragraph = text.split("Supported layers:", 1)[1].split("\n\n", 1)[0]
    names = set()
    for item in re.findall(r"`([A-Za-z0-9/]+)(?:\([^`]*\))?`", paragraph):
        head, *tails = item.split("/")
        names.add(head)
        names.update(re.sub(r"\d+D$", tail, head) for tail in tails)
    return {n for n in names if n[0].isupper() and n != "InputLayer"}   # the importer reads inputs itself


def _input(shape, name="x", dtype="float32"):
    return {"class_name": "InputLayer", "config": {"batch_shape": [None, *shape], "dtype": dtype, "name": name}}


def _sequential(shape, *layers):
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [_input(shape), *layers]}}


def _layer(cls, name, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


def _call(cls, name, *inputs, **config):
    return {"class_name": cls, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [i, 0, 0]}}
                                        for i in inputs], "kwargs": {}}]}


def _functional(layers, outputs):
    return {"class_name": "Functional", "config": {"name": "f", "layers": layers,
                                                   "output_layers": [[o, 0, 0] for o in outputs]}}


@pytest.fixture
def doubler():
    """A made-up layer, Doubler(factor): x * factor, as a Rescaling block; registered for one test."""
    @register("Doubler")
    class Doubler(LayerHandler):
        def build(self, k, name, cfg, ins, kw):
            if cfg.get("factor", 2) <= 0:
                raise Skip("with a factor below 1 has no Deepwire block")
            return self.block(k, name, "Rescaling", {"scale": float(cfg.get("factor", 2)), "offset": 0.0}, ins[0])
    try:
        yield Doubler
    finally:
        unregister("Doubler")


@pytest.fixture
def projection():
    """A made-up weighted layer, Projection(units): a Linear without bias whose kernel the file keeps as
    (units, inputs), PyTorch's own layout."""
    @register("Projection")
    class Projection(LayerHandler):
        param_note = "a made-up layer counts its parameters twice"

        def build(self, k, name, cfg, ins, kw):
            t = ins[0]
            units, n_in = int(cfg["units"]), k.kshape(t)[-1]
            out = self.block(k, name, "Linear", {"units": units, "bias": False, "activation": "none"}, t,
                             2 * units * n_in)
            self.converts(k, out.node, name, cfg)
            return T(out.node, out.perm)

        def weights(self, w):
            return kernel_and_bias(w, lambda kernel: kernel)
    try:
        yield Projection
    finally:
        unregister("Projection")


# ----------------------------------------------------------------------------- the registry

def test_every_documented_layer_has_a_handler_and_every_handler_is_documented():
    documented = _documented()
    assert {"Dense", "Conv2D", "MaxPooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "LSTM",
            "Bidirectional", "MultiHeadAttention", "LeakyReLU", "RandomTranslation"} <= documented
    assert sorted(documented - set(LAYERS)) == [], "documented as supported, but no handler"
    assert sorted(set(LAYERS) - documented) == [], "a handler docs/IMPORT.md does not list as supported"


def test_each_handler_is_registered_under_its_own_class_name():
    for keras_class, handler in LAYERS.items():
        assert isinstance(handler, LayerHandler)
        assert handler.keras_class == keras_class
        assert type(handler).build is not LayerHandler.build, f"{keras_class} maps to no block"


def test_layers_with_weights_convert_them():
    """The handlers that keep weights in Keras each say how to convert them; the others have nothing to convert."""
    weighted = {c for c, h in LAYERS.items() if type(h).weights is not LayerHandler.weights}
    assert weighted == {"Dense", "Conv1D", "Conv2D", "Embedding", "BatchNormalization", "LayerNormalization",
                        "Normalization", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "MultiHeadAttention",
                        "DepthwiseConv2D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
                        "GroupNormalization", "LayerScale", "PReLU"}


def test_a_class_name_takes_one_handler_and_options_must_exist():
    with pytest.raises(ValueError, match="'Dense' already has a handler"):
        register("Dense")(LayerHandler)
    assert type(LAYERS["Dense"]).__name__ == "Dense"
    with pytest.raises(TypeError, match="no option 'nd'"):
        register("Made_up_layer", nd=2)(LayerHandler)
    assert "Made_up_layer" not in LAYERS


# ----------------------------------------------------------------------------- adding a layer type

def test_a_registered_layer_imports_and_unregistering_removes_it(doubler):
    model = _sequential([4], _layer("Doubler", "twice", factor=3), _layer("Dense", "out", units=2))
    graph = import_keras(model).graph
    node = graph.find("twice")
    assert node.type == "Rescaling" and node.params["scale"] == 3.0
    assert graph.node(graph.inputs_of(graph.find("out").id)[0]).name == "twice"

    unregister("Doubler")
    assert "Doubler" not in LAYERS
    with pytest.raises(ModelImportError, match="Doubler 'twice' has no Deepwire block"):
        import_keras(model)


def test_a_handler_refusal_is_named_with_its_layer(doubler):
    with pytest.raises(ModelImportError) as info:
        import_keras(_sequential([4], _layer("Doubler", "never", factor=0)))
    assert str(info.value) == ("cannot import the Keras model: 1 layer cannot be imported: Doubler 'never' with a "
                               "factor below 1 has no Deepwire block")


def test_a_one_input_handler_is_not_given_two(doubler):
    model = _functional([_input([4], "a"), _input([4], "b"), _call("Doubler", "both", "a", "b")], ["both"])
    with pytest.raises(ModelImportError, match="Doubler 'both' takes 2 inputs"):
        import_keras(model)


def test_a_registered_layer_converts_its_own_weights(projection):
    h5py = pytest.importorskip("h5py")
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4)   # (units, inputs)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("layers/projection/vars").create_dataset("0", data=kernel)
    model = _sequential([4], _layer("Projection", "proj", units=3, use_bias=False))

    result = import_keras(model, weights=buffer.getvalue())
    node = result.graph.find("proj")
    (key,) = result.weights
    assert np.array_equal(result.weights[key].numpy(), kernel)
    assert analyse(result.graph).param_counts[node.id] == 12 and result.source_params == 24
    assert any("Projection 'proj' has 12 parameters here and 24 in Keras: a made-up layer counts" in n
               for n in result.notes)

    with h5py.File(buffer, "a") as f:
        del f["layers/projection"]
    with pytest.raises(WeightsImportError, match=r"no weights for Projection 'proj' \(looked under "
                                                 r"layers/projection\)"):
        import_keras(model, weights=buffer.getvalue())


def test_a_layer_without_a_weight_conversion_refuses_weights():
    """A handler that builds a weighted block but says nothing of its weights: the import names it."""
    class Unconverted(LayerHandler):
        def build(self, k, name, cfg, ins, kw):
            out = self.block(k, name, "Linear", {"units": 2, "bias": False, "activation": "none"}, ins[0])
            self.converts(k, out.node, name, cfg)
            return out
    register("Unconverted")(Unconverted)
    try:
        h5py = pytest.importorskip("h5py")
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            f.create_group("layers/unconverted/vars").create_dataset("0", data=np.zeros((4, 2), np.float32))
        with pytest.raises(WeightsImportError, match="Unconverted 'u': its weights have no conversion"):
            import_keras(_sequential([4], _layer("Unconverted", "u")), weights=buffer.getvalue())
    finally:
        unregister("Unconverted")


# ----------------------------------------------------------------------------- what is not supported

@pytest.mark.parametrize("model, message", [
    (_sequential([4, 4, 3], _layer("ConvLSTM2D", "clstm")), "ConvLSTM2D 'clstm' has no Deepwire block"),
    (_functional([_input([4], "a"), _call("Lambda", "fn", "a")], ["fn"]), "Lambda 'fn' has no Deepwire block"),
    (_sequential([4], _layer("Sequential", "inner")), "Sequential 'inner' is a nested model"),
    (_sequential([4], _layer("__init__", "odd")), "__init__ 'odd' has no Deepwire block"),
])
def test_an_unsupported_layer_is_named(model, message):
    with pytest.raises(ModelImportError) as info:
        import_keras(model)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_after_a_failed_layer_only_layers_without_a_handler_are_named():
    model = _sequential([4], _layer("Dense", "bad", units=2, activation="mystery"), _layer("Dense", "fine", units=2),
                        _layer("Lambda", "fn"))
    with pytest.raises(ModelImportError) as info:
        import_keras(model)
    message = str(info.value)
    assert "2 layers cannot be imported" in message and "Dense 'bad' activation 'mystery'" in message
    assert "Lambda 'fn' has no Deepwire block" in message and "'fine'" not in message
