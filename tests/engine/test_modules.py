"""Modules (issue #17): a named sub-graph with Input ports and one Output, used by instances that
follow the definition, repeated in a chain, grouped from a selection and ungrouped again; shapes,
parameters and code come from the definition, and what trains is what exports."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import FormatError, Graph, GraphError, build
from engine.modules import group, ungroup
from engine.project import Project, load_project, save_project
from engine.templates import load_template


def block(units: int = 8) -> Graph:
    return build("Block", [("x", "Input", {"shape": [units]}), ("dense", "Linear", {"units": units}),
                           ("act", "Activation", {"function": "gelu"}), ("y", "Output", {})])


def residual() -> Graph:
    """x + Linear(gelu(Linear(x))): a residual block of width 8."""
    layers = [("x", "Input", {"shape": [8]}), ("fc1", "Linear", {"units": 16, "activation": "gelu"}),
              ("fc2", "Linear", {"units": 8}), ("add", "Add", {}), ("y", "Output", {})]
    return build("Residual", layers, [("x", "fc1"), ("fc1", "fc2"), ("fc2", "add"), ("x", "add"), ("add", "y")])


def model_with(module: Graph, repeat: int = 3) -> Graph:
    graph = build("net", [("x", "Input", {"shape": [8]}),
                          ("stage", "Module", {"module": module.name, "repeat": repeat}),
                          ("head", "Linear", {"units": 3}), ("y", "Output", {})])
    graph.add_module(module.name, module)
    return graph


def test_an_instance_has_its_definitions_shapes_and_each_repeat_its_own_weights():
    graph = model_with(residual(), repeat=3)
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    stage = graph.find("stage").id
    assert analysis.specs[stage].shape == (8,)
    one = 8 * 16 + 16 + 16 * 8 + 8
    assert analysis.param_counts[stage] == 3 * one
    model = compile_graph(graph)
    assert sum(p.numel() for p in model.parameters()) == analysis.total_params == 3 * one + 8 * 3 + 3
    keys = list(model.state_dict())
    assert keys[:4] == ["stage.0.fc1.weight", "stage.0.fc1.bias", "stage.0.fc2.weight", "stage.0.fc2.bias"]
    assert not torch.equal(model.stage[0].fc1.weight, model.stage[1].fc1.weight)
    assert model(torch.randn(5, 8)).shape == (5, 3)


def test_the_code_has_one_class_per_module_and_repeats_as_a_sequential():
    source, _ = generate(model_with(residual(), repeat=4))
    assert source.count("class Residual(nn.Module):") == 1
    assert "self.stage = nn.Sequential(*[Residual() for _ in range(4)])" in source
    assert "x = self.stage(x)" in source
    torch.manual_seed(0)
    a = compile_graph(model_with(residual(), repeat=4))
    namespace: dict = {}
    exec(compile(source, "<export>", "exec"), namespace)    # the source alone, as model.py holds it
    torch.manual_seed(0)
    b = namespace["Net"]()
    x = torch.randn(2, 8)
    assert torch.equal(a(x), b(x)), "what trains is what exports"


def test_a_module_used_with_other_shapes_is_one_class_taking_its_input_size():
    graph = build("net", [("x", "Input", {"shape": [8]}), ("a", "Module", {"module": "Block"}),
                          ("wide", "Linear", {"units": 12}), ("b", "Module", {"module": "Block"}),
                          ("y", "Output", {})])
    graph.add_module("Block", block())
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    assert analysis.specs[graph.find("b").id].shape == (8,)     # Block's Linear has 8 units: (12,) -> (8,)
    source, _ = generate(graph, analysis)
    # as a hand-written block takes its input size: one class, the size an argument
    assert source.count("class Block") == 1 and "def __init__(self, in_features: int):" in source
    assert "nn.Linear(in_features, 8)" in source, source
    assert "self.a = Block(in_features=8)" in source and "self.b = Block(in_features=12)" in source
    model = compile_graph(graph)
    assert model(torch.randn(3, 8)).shape == (3, 8)
    assert model.state_dict()["b.dense.weight"].shape == (8, 12)


def test_a_module_inside_a_module():
    inner = residual()
    outer = build("Stage", [("x", "Input", {"shape": [8]}), ("r", "Module", {"module": "Residual", "repeat": 2}),
                            ("norm", "LayerNorm", {}), ("y", "Output", {})])
    graph = model_with(outer, repeat=2)
    graph.add_module("Residual", inner)
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    model = compile_graph(graph)
    assert "stage.1.r.1.fc2.weight" in model.state_dict()
    assert model(torch.randn(2, 8)).shape == (2, 3)


@pytest.mark.parametrize("case, message", [
    ("unknown", "names the module 'Nope', which this project does not define"),
    ("itself", "contains itself"),
    ("inner error", "inside module 'Residual'"),
    ("repeat two inputs", "only a one-input module can repeat"),
])
def test_instances_say_what_is_wrong_with_their_module(case, message):
    graph = model_with(residual())
    stage = graph.find("stage").id
    if case == "unknown":
        graph.set_params(stage, {"module": "Nope"})
    elif case == "itself":
        definition = graph.modules["Residual"]
        loop = definition.add_node("Module", "loop", {"module": "Residual"})
        definition.connect(definition.find("x").id, loop)
    elif case == "inner error":
        definition = graph.modules["Residual"]
        definition.set_params(definition.find("fc2").id, {"units": 5})     # 5 + 8: Add cannot join them
    else:
        definition = graph.modules["Residual"]
        definition.add_node("Input", "other", {"shape": [8]})
    messages = [d.message for d in analyse(graph).for_node(stage)]
    assert any(message in m for m in messages), messages


def test_modules_are_saved_with_the_project_and_old_files_still_open(tmp_path):
    graph = model_with(residual(), repeat=2)
    torch.manual_seed(1)
    weights = compile_graph(graph).state_dict()
    save_project(tmp_path / "m.deepwire", Project(graph, weights=weights))
    loaded = load_project(tmp_path / "m.deepwire")
    assert list(loaded.graph.modules) == ["Residual"]
    assert loaded.graph.modules["Residual"].to_dict() == graph.modules["Residual"].to_dict()
    model = compile_graph(loaded.graph)
    model.load_state_dict(loaded.weights)
    x = torch.randn(2, 8)
    original = compile_graph(graph)
    original.load_state_dict(weights)
    assert torch.equal(model(x), original(x))
    old = json.loads(load_template("digits_mlp").to_json())
    assert old["format_version"] == 1 and "modules" not in old
    assert Graph.from_dict(old).modules == {}


def test_a_file_with_a_broken_module_is_refused_in_one_line():
    data = model_with(residual()).to_dict()
    data["modules"]["Residual"]["edges"].append({"src": "n404", "dst": "n1", "port": 0})
    with pytest.raises(FormatError, match="module 'Residual': edge"):
        Graph.from_dict(data)
    data = model_with(residual()).to_dict()
    data["modules"] = {"not a name": data["modules"]["Residual"]}
    with pytest.raises(FormatError, match="is not a name"):
        Graph.from_dict(data)


def flat_residual_cnn() -> Graph:
    """The residual CNN template with its residual block inline (the template keeps it as a module)."""
    graph = load_template("residual_cnn")
    ungroup(graph, graph.find("residual_block").id)
    graph.remove_module("ResidualBlock")
    return graph


def same_outputs(before: Graph, after: Graph, rename) -> None:
    """The two graphs compute the same function when `after`'s weights are `before`'s, renamed."""
    torch.manual_seed(0)
    a = compile_graph(before).eval()
    b = compile_graph(after).eval()
    state = {rename(k): v for k, v in a.state_dict().items()}
    b.load_state_dict(state)
    x = torch.randn(4, *analyse(before).specs[analyse(before).inputs[0]].shape)
    assert torch.equal(a(x), b(x))


def test_grouping_a_residual_block_keeps_the_model_and_ungrouping_gives_it_back():
    graph = flat_residual_cnn()
    before = graph.copy()
    ids = [graph.find(n).id for n in ("conv_a", "conv_b", "residual")]
    done = group(graph, ids, analyse(graph).specs, "ResidualBlock")
    assert done.module == "ResidualBlock" and set(graph.modules) == {"ResidualBlock"}
    instance = graph.node(done.node_id)
    assert instance.type == "Module" and graph.inputs_of(done.node_id) == {0: graph.find("stem").id}
    definition = graph.modules["ResidualBlock"]
    assert sorted(n.type for n in definition.nodes()) == ["Add", "Conv2d", "Conv2d", "Input", "Output"]
    assert analyse(graph).ok and analyse(graph).total_params == analyse(before).total_params
    attr = instance.name
    inner = {"conv_a", "conv_b"}
    same_outputs(before, graph, lambda k: f"{attr}.{k}" if k.split(".")[0] in inner else k)

    ungroup(graph, done.node_id)
    assert sorted(n.name for n in graph.nodes()) == sorted(n.name for n in before.nodes())
    same_outputs(before, graph, lambda k: k)


def test_a_selection_that_sends_two_tensors_out_cannot_be_a_module():
    graph = flat_residual_cnn()
    ids = [graph.find(n).id for n in ("stem", "conv_a")]     # stem also feeds the residual Add
    with pytest.raises(GraphError, match="a module returns one tensor"):
        group(graph, ids, analyse(graph).specs)
    with pytest.raises(GraphError, match="leave Inputs and Outputs out"):
        group(graph, [graph.find("image").id], analyse(graph).specs)


def test_ungrouping_a_repeated_instance_unrolls_it():
    graph = model_with(residual(), repeat=3)
    before = graph.copy()
    ungroup(graph, graph.find("stage").id)
    assert sum(1 for n in graph.nodes() if n.type == "Add") == 3
    assert analyse(graph).total_params == analyse(before).total_params

    def rename(key: str) -> str:                 # stage.k.fc1.weight -> fc1, fc1_1, fc1_2 (unique names)
        if not key.startswith("stage."):
            return key
        _, k, layer, rest = key.split(".", 3)
        return f"{layer}{'' if k == '0' else '_' + k}.{rest}"
    same_outputs(before, graph, rename)


def test_a_chain_of_blocks_named_0_1_2_is_written_as_an_nn_sequential():
    """How the PyTorch importer keeps a Sequential's state-dict keys (layer1.0.conv1.weight): a definition that is
    one chain of blocks named by their indices (gaps allowed) is an nn.Sequential, a folded activation takes the
    gap after its layer, and any other definition stays a class."""
    chain = build("Seq", [("x", "Input", {"shape": [8]}), ("0", "Linear", {"units": 16, "activation": "relu"}),
                          ("3", "Linear", {"units": 8}), ("4", "Activation", {"function": "gelu"}),
                          ("y", "Output", {})])
    graph = model_with(chain, repeat=1)
    source, info = generate(graph)
    assert "self.stage = nn.Sequential(" in source
    assert "nn.Linear(8, 16), nn.ReLU(), nn.Identity(), nn.Linear(16, 8), nn.GELU()" in source
    assert "class Seq" not in source
    model = compile_graph(graph)
    assert {"stage.0.weight", "stage.3.bias"} <= set(model.state_dict())
    stage = graph.find("stage").id
    assert info.paths[(stage, chain.find("3").id)] == "stage.3"
    reference = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Identity(), nn.Linear(16, 8), nn.GELU())
    reference.load_state_dict({k.removeprefix("stage."): v for k, v in model.state_dict().items() if "stage" in k})
    x = torch.randn(3, 8)
    assert torch.equal(model.stage(x), reference(x))

    named = build("Seq", [("x", "Input", {"shape": [8]}), ("first", "Linear", {"units": 8}), ("y", "Output", {})])
    assert "class Seq(nn.Module):" in generate(model_with(named, repeat=1))[0]


def test_code_info_maps_each_block_inside_modules_to_its_attribute_path():
    inner = residual()
    outer = build("Stage", [("x", "Input", {"shape": [8]}), ("r", "Module", {"module": "Residual", "repeat": 2}),
                            ("norm", "LayerNorm", {}), ("y", "Output", {})])
    graph = model_with(outer, repeat=2)
    graph.add_module("Residual", inner)
    _, info = generate(graph)
    stage, r, fc2 = graph.find("stage").id, outer.find("r").id, inner.find("fc2").id
    assert info.paths[(stage, 1, r, 0, fc2)] == "stage.1.r.0.fc2"
    keys = set(compile_graph(graph).state_dict())
    assert all(f"{path}.weight" in keys for path in info.paths.values() if path.endswith(("fc1", "fc2")))


def test_an_instance_counts_the_flops_of_every_repeat_and_its_probe_agrees():
    from engine.flops import count_flops, probe_graph, probe_of

    graph = model_with(residual(), repeat=3)
    stage = graph.find("stage").id
    once = sum(count_flops(residual()).values())
    assert once > 0 and count_flops(graph)[stage] == 3 * once
    probe = probe_of(graph, analyse(graph), stage)          # the inspector counts a block alone
    alone, node_id = probe_graph(probe)
    assert count_flops(alone)[node_id] == 3 * once
    graph.modules["Residual"].set_params(graph.modules["Residual"].find("fc1").id, {"units": 32})
    assert probe_of(graph, analyse(graph), stage).key() != probe.key(), "an edit inside is a new count"
