"""Per-instance module parameters (issue #17): a module declares parameters (channels, stride) that
set its blocks' values; each instance gives its own, shapes are inferred through them, and the code
is one class that takes them as arguments, as torchvision's BasicBlock(inplanes, planes, stride)."""
from __future__ import annotations

import pytest
import torch

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import FormatError, Graph, GraphError, build
from engine.modules import declared, ungroup


def basic_block() -> Graph:
    """conv-bn-relu-conv-bn plus a 1x1 projection shortcut: a ResNet basic block whose width and
    stride are the module's parameters."""
    block = build("BasicBlock", [
        ("x", "Input", {"shape": [16, 16, 16]}),
        ("conv1", "Conv2d", {"filters": 16, "padding": 1, "bias": False}),
        ("bn1", "BatchNorm", {}),
        ("relu1", "Activation", {"function": "relu"}),
        ("conv2", "Conv2d", {"filters": 16, "padding": 1, "bias": False}),
        ("bn2", "BatchNorm", {}),
        ("shortcut", "Conv2d", {"filters": 16, "kernel_size": 1, "bias": False}),
        ("add", "Add", {}),
        ("relu2", "Activation", {"function": "relu"}),
        ("y", "Output", {}),
    ], wires=[("x", "conv1"), ("conv1", "bn1"), ("bn1", "relu1"), ("relu1", "conv2"), ("conv2", "bn2"),
              ("x", "shortcut"), ("bn2", "add"), ("shortcut", "add"), ("add", "relu2"), ("relu2", "y")])
    ids = {n.name: n.id for n in block.nodes()}
    block.set_argument("channels", [(ids["conv1"], "filters"), (ids["conv2"], "filters"),
                                    (ids["shortcut"], "filters")])
    block.set_argument("stride", [(ids["conv1"], "stride"), (ids["shortcut"], "stride")])
    return block


def resnet(stages=((16, 1, 2), (32, 2, 2), (64, 2, 2))) -> Graph:
    """A small ResNet from one module: each stage one instance (its channels and stride) repeated."""
    rows = [("image", "Input", {"shape": [3, 32, 32]}),
            ("stem", "Conv2d", {"filters": 16, "padding": 1, "activation": "relu"})]
    for k, (channels, stride, repeat) in enumerate(stages):
        args = {"channels": channels} | ({"stride": stride} if stride != 1 else {})
        rows.append((f"layer{k + 1}", "Module", {"module": "BasicBlock", "repeat": 1, "args": args}))
        if repeat > 1:
            rows.append((f"layer{k + 1}_rest", "Module", {"module": "BasicBlock", "repeat": repeat - 1,
                                                         "args": {"channels": channels}}))
    rows += [("pool", "GlobalAvgPool", {}), ("fc", "Linear", {"units": 10}), ("logits", "Output", {})]
    graph = build("resnet", rows)
    graph.add_module("BasicBlock", basic_block())
    return graph


def test_each_instance_gives_its_parameters_and_shapes_follow():
    graph = resnet()
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    shapes = {graph.node(n).name: analysis.specs[n].shape for n in analysis.order}
    assert shapes["layer1"] == (16, 32, 32)
    assert shapes["layer2"] == (32, 16, 16) and shapes["layer2_rest"] == (32, 16, 16)
    assert shapes["layer3"] == (64, 8, 8)
    assert [d.name for d in declared(graph.modules["BasicBlock"])] == ["channels", "stride"]
    # the definition itself is left as it was drawn
    assert graph.modules["BasicBlock"].find("conv1").params["filters"] == 16


def test_the_code_is_one_class_taking_the_parameters_and_trains_what_exports():
    graph = resnet()
    source, _ = generate(graph)
    assert source.count("class BasicBlock") == 1, source
    assert "def __init__(self, in_channels: int, channels: int = 16, stride=1):" in source
    assert "nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)" in source
    assert "self.layer2 = BasicBlock(in_channels=16, channels=32, stride=2)" in source
    assert "self.layer2_rest = BasicBlock(in_channels=32, channels=32)" in source
    assert max(len(line) for line in source.splitlines()) <= 99
    torch.manual_seed(0)
    trained = compile_graph(graph)
    namespace: dict = {}
    exec(compile(source, "<model.py>", "exec"), namespace)
    torch.manual_seed(0)
    exported = namespace["Resnet"]()
    assert list(exported.state_dict()) == list(trained.state_dict())
    trained.eval()
    exported.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(trained(x), exported(x)), "what trains is what exports"
    assert trained.state_dict()["layer3.shortcut.weight"].shape == (64, 32, 1, 1)


def test_a_parameter_the_module_does_not_declare_or_a_bad_value_is_shown_at_the_instance():
    graph = resnet()
    graph.find("layer2").params["args"] = {"width": 3}
    errors = [d for d in analyse(graph).errors if d.node_id == graph.find("layer2").id]
    assert errors and "has no parameter 'width'" in errors[0].message and "channels, stride" in errors[0].message
    graph.find("layer2").params["args"] = {"channels": 0}
    errors = [d for d in analyse(graph).errors if d.node_id == graph.find("layer2").id]
    assert errors and "channels" in errors[0].message


def test_declared_parameters_survive_saving_and_copying():
    graph = resnet()
    again = Graph.from_json(graph.to_json())
    assert again.modules["BasicBlock"].arguments == graph.modules["BasicBlock"].arguments
    assert again.find("layer3").params["args"] == {"channels": 64, "stride": 2}
    assert generate(again)[0] == generate(graph)[0]
    data = graph.to_dict()
    data["modules"]["BasicBlock"]["arguments"] = {"channels": "conv1"}
    with pytest.raises(FormatError, match="channels"):
        Graph.from_dict(data)


def test_a_parameter_whose_block_was_deleted_is_dropped_not_an_error():
    graph = resnet()
    block = graph.modules["BasicBlock"]
    block.remove_node(block.find("shortcut").id)
    assert [d.name for d in declared(block)] == ["channels", "stride"]      # conv1 still uses both
    assert [t for t in declared(block)[1].targets] == [(block.find("conv1").id, "stride")]
    with pytest.raises(GraphError, match="not a Python word"):
        block.set_argument("class", [(block.find("conv1").id, "filters")])


def test_ungroup_writes_the_instance_values_into_the_blocks():
    graph = resnet(stages=((16, 1, 1), (32, 2, 1)))
    before = analyse(graph).specs[graph.find("logits").id]
    ungroup(graph, graph.find("layer2").id)
    strides = {n.name: tuple(n.params["stride"]) if isinstance(n.params["stride"], (list, tuple))
               else (n.params["stride"],) * 2 for n in graph.nodes() if n.type == "Conv2d"}
    filters = {n.name: n.params["filters"] for n in graph.nodes() if n.type == "Conv2d"}
    # the first stage's blocks (ungrouped, not the second's) keep the definition's values
    assert sorted((filters[k], strides[k]) for k in strides if k != "stem") == [(32, (1, 1)), (32, (2, 2)),
                                                                                 (32, (2, 2))]
    analysis = analyse(graph)
    assert analysis.ok and analysis.specs[graph.find("logits").id] == before


def test_a_parameter_a_block_computes_with_keeps_one_class_per_value():
    """A parameter the code cannot write as it is (here a Reshape's target, used in forward) leaves the
    class per value: still correct code, as before."""
    block = build("Head", [("x", "Input", {"shape": [16]}), ("fc", "Linear", {"units": 8}),
                           ("shape", "Reshape", {"shape": [2, 4]}), ("y", "Output", {})])
    block.set_argument("units", [(block.find("fc").id, "units")])
    graph = build("net", [("x", "Input", {"shape": [16]}),
                          ("a", "Module", {"module": "Head", "args": {}}), ("flat", "Flatten", {}),
                          ("b", "Module", {"module": "Head", "args": {}}), ("flat2", "Flatten", {}),
                          ("y", "Output", {})])
    graph.find("b").params["args"] = {}
    graph.add_module("Head", block)
    source, _ = generate(graph)
    assert compile_graph(graph)(torch.randn(2, 16)).shape == (2, 8)
    assert "units: int = 8" in source


def test_a_parameter_may_set_what_an_instance_inside_gives_its_own_module():
    """Stage(width) holds a Block instance; Stage's parameter sets the Block's own `units` parameter
    (target "args.units"): shapes follow, and what trains is what exports."""
    inner = build("Block", [("x", "Input", {"shape": [8]}), ("fc", "Linear", {"units": 8}), ("y", "Output", {})])
    inner.set_argument("units", [(inner.find("fc").id, "units")])
    stage = build("Stage", [("x", "Input", {"shape": [8]}), ("block", "Module", {"module": "Block"}),
                            ("norm", "LayerNorm", {}), ("y", "Output", {})])
    stage.set_argument("width", [(stage.find("block").id, "args.units")])
    graph = build("net", [("x", "Input", {"shape": [8]}), ("a", "Module", {"module": "Stage", "args": {"width": 12}}),
                          ("b", "Module", {"module": "Stage", "args": {"width": 5}}), ("y", "Output", {})])
    graph.add_module("Block", inner)
    graph.add_module("Stage", stage)
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.diagnostics]
    assert analysis.specs[graph.find("a").id].shape == (12,) and analysis.specs[graph.find("b").id].shape == (5,)
    assert [d.default for d in declared(stage, graph.modules)] == [8]       # the Block's own value
    graph.find("b").params["args"] = {"width": 0}
    assert any("width" in d.message for d in analyse(graph).errors)        # checked as units are
    graph.find("b").params["args"] = {"width": 5}
    source, _ = generate(graph)
    torch.manual_seed(0)
    trained = compile_graph(graph)
    namespace: dict = {}
    exec(compile(source, "<model.py>", "exec"), namespace)
    torch.manual_seed(0)
    exported = namespace["Net"]()
    x = torch.randn(3, 8)
    assert torch.equal(trained(x), exported(x))
    assert trained.state_dict()["b.block.fc.weight"].shape == (5, 12)
