"""A new head for a dataset (#19): the last Linear gets the data's classes, the rest is kept."""
import numpy as np
import torch

from engine.analysis import analyse, output_activation
from engine.compiler import compile_graph
from engine.graph import build
from engine.head import apply_plan, find_head, plan_head, refit_weights
from engine.runtime.data import Dataset, describe_builtins
from engine.templates import load_template
from engine.training import check_data


def data(task: str, classes: int = 3, features: int = 64, target: int | None = None) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, features)).astype(np.float32)
    if task == "regression":
        y = rng.normal(size=(30,) if target is None else (30, target)).astype(np.float32)
    else:
        y = np.arange(30) % classes
    return Dataset(name="d", x=x, y=y, task=task)


def input_shape(graph) -> tuple[int, ...]:
    analysis = analyse(graph)
    return analysis.specs[analysis.inputs[0]].shape


def chain(*layers):
    names = [row[0] for row in layers]
    return build("m", list(layers), list(zip(names, names[1:])))


def test_a_ten_class_model_gets_a_three_class_head_and_then_fits_the_data():
    graph = load_template("digits_mlp")
    dataset = data("multiclass", 3)
    assert any("3 classes in the data" in p for p in check_data(graph, analyse(graph), dataset))
    before = {n.id: dict(n.params) for n in graph.nodes()}

    plan = plan_head(graph, analyse(graph), dataset)

    head = graph.find("dense_1")
    assert plan.ok and plan.node_id == head.id
    assert plan.changes == {head.id: {"units": 3}}
    assert plan.label == "Set 'dense_1' to 3 units"
    assert "3 units for 3 classes" in plan.message
    apply_plan(graph, plan)
    assert check_data(graph, analyse(graph), dataset) == []
    changed = [n.id for n in graph.nodes() if n.params != before[n.id]]
    assert changed == [head.id]      # the rest of the model is kept


def test_binary_data_gets_one_unit_and_a_softmax_head_becomes_sigmoid():
    graph = load_template("image_cnn")         # ends in a Linear with softmax
    head = find_head(graph, analyse(graph))[0]
    shape = input_shape(graph)
    dataset = Dataset(name="b", x=np.zeros((4, *shape), np.float32), y=np.array([0, 1, 0, 1]), task="binary")

    plan = plan_head(graph, analyse(graph), dataset)

    assert plan.changes == {head: {"units": 1, "activation": "sigmoid"}}
    assert "sigmoid instead of softmax" in plan.message
    apply_plan(graph, plan)
    analysis = analyse(graph)
    assert check_data(graph, analysis, dataset) == []
    assert output_activation(graph, analysis, analysis.outputs[0]) == "sigmoid"


def test_a_softmax_block_after_the_head_is_set_where_it_is():
    graph = chain(("x", "Input", {"shape": [4]}), ("hidden", "Linear", {"units": 8}),
                  ("head", "Linear", {"units": 5}), ("drop", "Dropout", {}),
                  ("probs", "Activation", {"function": "softmax"}), ("out", "Output", {}))
    plan = plan_head(graph, analyse(graph), data("binary", features=4))
    assert plan.node_id == graph.find("head").id
    assert plan.changes == {graph.find("head").id: {"units": 1}, graph.find("probs").id: {"function": "sigmoid"}}


def test_multiclass_from_a_sigmoid_head_becomes_softmax_and_a_frozen_head_is_unfrozen():
    graph = load_template("tabular_dnn")        # 1 unit, sigmoid
    head = find_head(graph, analyse(graph))[0]
    graph.set_params(head, {"trainable": False})
    plan = plan_head(graph, analyse(graph), data("multiclass", 4, features=input_shape(graph)[0]))

    assert plan.changes == {head: {"units": 4, "activation": "softmax", "trainable": True}}
    assert "unfrozen" in plan.message


def test_regression_targets_set_the_width_and_drop_a_softmax_on_the_linear():
    graph = chain(("x", "Input", {"shape": [4]}), ("head", "Linear", {"units": 5, "activation": "softmax"}),
                  ("out", "Output", {}))
    plan = plan_head(graph, analyse(graph), data("regression", features=4, target=2))
    assert plan.changes == {graph.find("head").id: {"units": 2, "activation": "none"}}


def test_why_not_an_output_that_is_not_a_linear_a_sequence_and_an_output_that_fits():
    pooled = chain(("x", "Input", {"shape": [3, 8, 8]}), ("conv", "Conv2d", {"filters": 5}),
                   ("pool", "GlobalAvgPool", {}), ("out", "Output", {}))
    plan = plan_head(pooled, analyse(pooled), data("multiclass", 3))
    assert not plan.ok and plan.node_id is None
    assert plan.message == ("the output comes from GlobalAvgPool 'pool', not a Linear: add a Linear before "
                            "Output 'out' to be the head")

    seq = chain(("x", "Input", {"shape": [6, 4]}), ("head", "Linear", {"units": 5}), ("out", "Output", {}))
    plan = plan_head(seq, analyse(seq), data("multiclass", 3))
    assert not plan.ok and "flatten or pool before it" in plan.message

    digits = load_template("digits_mlp")
    plan = plan_head(digits, analyse(digits), data("multiclass", 10))
    assert not plan.ok and plan.message == "the model's output already fits the data (10 classes)"

    broken = chain(("x", "Input", {"shape": [4]}), ("head", "Linear", {"units": 0}), ("out", "Output", {}))
    assert "fix the graph's errors first" in plan_head(broken, analyse(broken), data("multiclass")).message


def test_a_built_in_datasets_description_is_enough():
    graph = load_template("digits_mlp")
    info = {d["name"]: d for d in describe_builtins()}
    plan = plan_head(graph, analyse(graph), info["wine"])
    assert plan.changes == {graph.find("dense_1").id: {"units": info["wine"]["num_classes"]}}
    plan = plan_head(graph, analyse(graph), info["diabetes"])
    assert plan.changes == {graph.find("dense_1").id: {"units": 1}}


def test_refit_keeps_the_backbone_weights_and_gives_the_head_fresh_ones():
    graph = load_template("digits_mlp")
    torch.manual_seed(5)
    trained = {k: v.detach().clone() for k, v in compile_graph(graph).state_dict().items()}
    apply_plan(graph, plan_head(graph, analyse(graph), data("multiclass", 3)))

    state, replaced = refit_weights(graph, trained, seed=0)

    assert sorted(replaced) == ["dense_1.bias", "dense_1.weight"]
    assert state["dense_1.weight"].shape == (3, trained["dense_1.weight"].shape[1])
    assert all(state[k] is trained[k] for k in trained if k not in replaced)
    model = compile_graph(graph)
    model.load_state_dict(state, strict=True)          # export and training can use it as it is
    assert refit_weights(graph, None) == (None, [])
