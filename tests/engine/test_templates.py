"""The starter models: Keras' parameter counts, and they compile, run and train."""
import pytest
import torch
from sklearn.datasets import load_digits

from engine.analysis import analyse, output_activation
from engine.compiler import compile_graph
from engine.graph import build
from engine.runtime.losses import make_loss
from engine.templates import BUILDERS, load_template, template_names

KERAS_COUNTS = {"fashion_mnist_mlp": 101_770, "tabular_dnn": 3_457, "image_cnn": 7_393_610}


def test_every_template_file_is_written_from_its_builder():
    assert template_names() == sorted(BUILDERS)
    for name, (builder, _, _) in BUILDERS.items():
        graph = load_template(name)
        built = builder()
        assert [(n.name, n.type, n.params) for n in graph.nodes()] == [
            (n.name, n.type, {**n.params}) for n in built.nodes()], f"run `python -m engine.templates` ({name})"
        assert {m: [(n.name, n.type, n.params) for n in d.nodes()] for m, d in graph.modules.items()} == \
            {m: [(n.name, n.type, n.params) for n in d.nodes()] for m, d in built.modules.items()}, name


def test_templates_show_modules_with_their_repeats():
    """The residual, MobileNet and transformer starters keep their repeated block as a module (issue #17): one
    definition, an instance that applies it `repeat` times, and the description says so."""
    from engine.templates import describe

    expected = {"residual_cnn": ("ResidualBlock", 1), "mobilenet_cnn": ("InvertedResidual", 2),
                "transformer_classifier": ("EncoderBlock", 2), "vit_tiny": ("EncoderBlock", 2)}
    for name, (module, repeat) in expected.items():
        graph = load_template(name)
        assert list(graph.modules) == [module]
        (instance,) = [n for n in graph.nodes() if n.type == "Module"]
        assert instance.params == {"module": module, "repeat": repeat, "args": {}, "trainable": True}
        assert (f"×{repeat}" in describe(name)["description"]) == (repeat > 1)
        definition = graph.modules[module]
        xs = [n.pos[0] for n in definition.nodes()]
        assert min(xs) == 0 and len(set(xs)) > 2, "each definition is laid out too"


@pytest.mark.parametrize("name,count", sorted(KERAS_COUNTS.items()))
def test_parameter_counts_match_keras(name, count):
    graph = load_template(name)
    analysis = analyse(graph)
    assert analysis.total_params == count
    assert sum(p.numel() for p in compile_graph(graph).parameters()) == count


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_template_is_clean_and_runs(name):
    graph = load_template(name)
    analysis = analyse(graph)
    assert analysis.diagnostics == []
    model = compile_graph(graph, analysis).eval()
    xs = []
    for i in analysis.inputs:
        spec = analysis.specs[i]
        xs.append(torch.randint(0, 1000, (2,) + spec.shape) if spec.dtype == "int64" else torch.rand((2,) + spec.shape))
    with torch.no_grad():
        y = model(*xs)
    assert tuple(y.shape) == (2,) + analysis.specs[analysis.outputs[0]].shape


def _train_digits(graph, epochs=60):
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    analysis = analyse(graph)
    model = compile_graph(graph, analysis)
    loss_fn = make_loss("multiclass", output_activation(graph, analysis, analysis.outputs[0]))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    return acc, losses


@pytest.mark.parametrize("final", ["none", "softmax"])
def test_final_softmax_trains_like_logits(final):
    graph = build("digits", [
        ("input", "Input", {"shape": [64]}),
        ("dense", "Linear", {"units": 32, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 10, "activation": final}),
        ("output", "Output", {}),
    ])
    analysis = analyse(graph)
    assert output_activation(graph, analysis, analysis.outputs[0]) == (None if final == "none" else "softmax")
    acc, losses = _train_digits(graph, epochs=15)
    assert acc > 0.95
    assert losses[-1] < 0.3


def test_final_softmax_block_is_recognised_and_probabilities_sum_to_one():
    graph = build("digits", [
        ("input", "Input", {"shape": [64]}),
        ("dense", "Linear", {"units": 10}),
        ("softmax", "Activation", {"function": "softmax"}),
        ("output", "Output", {}),
    ])
    analysis = analyse(graph)
    assert output_activation(graph, analysis, analysis.outputs[0]) == "softmax"
    probs = compile_graph(graph)(torch.rand(4, 64))
    assert torch.allclose(probs.sum(-1), torch.ones(4))


# ----------------------------------------------------------------------------- the data each starter trains on

@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_template_names_a_builtin_dataset_its_input_and_output_fit(name):
    from engine.runtime.data import load_dataset
    from engine.runtime.data.catalog import BUILTINS, fits_output
    from engine.templates import describe
    from engine.training import check_data

    graph = load_template(name)
    assert graph.dataset in BUILTINS, f"{name} names {graph.dataset!r}, not a built-in dataset"
    assert describe(name)["dataset"] == graph.dataset
    analysis = analyse(graph)
    entry = BUILTINS[graph.dataset]
    (spec,) = [analysis.specs[i] for i in analysis.inputs]
    assert (entry.input_shape, entry.dtype) == (spec.shape, spec.dtype)
    assert fits_output(entry, analysis.specs[analysis.outputs[0]].shape)
    if entry.make is not None:          # offline: the data itself, as training checks it
        assert check_data(graph, analysis, load_dataset(graph.dataset)) == []


def test_a_template_written_as_a_graph_file_keeps_its_dataset(tmp_path):
    from engine.project import read_graph

    graph = load_template("tabular_dnn")
    path = tmp_path / "tabular.json"
    path.write_text(graph.to_json())
    assert read_graph(path).dataset == "tabular_binary"
    graph.dataset = None                  # a graph that names none writes no key
    assert "dataset" not in graph.to_dict()


@pytest.mark.slow
def test_the_tabular_and_image_starters_learn_their_data():
    from engine.runtime.data import load_dataset
    from engine.training import TrainConfig, train

    result = train(load_template("tabular_dnn"), load_dataset("tabular_binary"), TrainConfig(epochs=8, device="cpu"))
    assert result.test_metrics["accuracy"] > 0.8
    shapes = load_dataset("shapes")
    keep = slice(0, 200)                  # a fifth of the images, three epochs: already far above chance (10%)
    from dataclasses import replace
    small = replace(shapes, x=shapes.x[keep], y=shapes.y[keep])
    result = train(load_template("image_cnn"), small, TrainConfig(epochs=3, device="cpu", val_split=0.0))
    assert result.history[-1]["accuracy"] > 0.3


@pytest.mark.slow
def test_the_mobilenet_and_vit_starters_learn_digits():
    """The modern vocabulary's starters (depthwise conv, squeeze-and-excitation, ReLU6; class token,
    learned positions, Select) train with the default settings: a few epochs are far above chance."""
    from engine.runtime.data import load_dataset
    from engine.training import TrainConfig, train

    digits = load_dataset("digits_images")
    result = train(load_template("mobilenet_cnn"), digits, TrainConfig(epochs=3, device="cpu"))
    assert result.test_metrics["accuracy"] > 0.7
    result = train(load_template("vit_tiny"), digits, TrainConfig(epochs=5, device="cpu"))
    assert result.test_metrics["accuracy"] > 0.35
