"""Freezing (issue #19): a block (or a module instance) whose `trainable` is off keeps its weights
bit for bit while the rest trains, stays in evaluation mode (BatchNorm statistics fixed), is
counted apart, and the exported code freezes the same blocks."""
from __future__ import annotations

import numpy as np
import torch

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import build
from engine.runtime.data import Dataset
from engine.runtime.loop import seed_everything
from engine.runtime.settings import TrainConfig
from engine.training import train


def cnn(frozen=("conv", "bn")) -> object:
    rows = [("image", "Input", {"shape": [1, 8, 8]}),
            ("conv", "Conv2d", {"filters": 4, "padding": 1}),
            ("bn", "BatchNorm", {}),
            ("flat", "Flatten", {}),
            ("fc", "Linear", {"units": 3}),
            ("y", "Output", {})]
    graph = build("net", rows)
    for name in frozen:
        graph.find(name).params["trainable"] = False
    return graph


def data(n=96, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[:, 0, 0, 0] > 1).astype(np.int64)
    return Dataset(name="toy", x=x, y=y, task="multiclass", class_names=["a", "b", "c"])


def test_frozen_weights_are_bit_identical_after_training_and_the_rest_moves():
    graph = cnn()
    seed_everything(0)                      # the run's own start: the same fresh weights
    before = compile_graph(graph).state_dict()
    result = train(graph, data(), TrainConfig(epochs=3, batch_size=16, seed=0))
    after = result.state_dict
    for key in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        assert torch.equal(after[key], before[key]), f"{key} moved though frozen"
    assert not torch.equal(after["fc.weight"], before["fc.weight"])


def test_parameter_counts_show_trainable_and_frozen_apart():
    analysis = analyse(cnn())
    assert analysis.ok
    assert analysis.frozen_params == 4 * 9 + 4 + 4 + 4            # conv weight + bias, bn weight + bias
    assert analysis.trainable_params == 256 * 3 + 3
    assert analyse(cnn(frozen=())).frozen_params == 0


def test_exported_code_freezes_the_same_blocks_and_keeps_them_in_eval():
    graph = cnn()
    source, _ = generate(graph)
    namespace: dict = {}
    exec(compile(source, "<model.py>", "exec"), namespace)
    model = namespace["Net"]()
    model.train()
    assert not model.bn.training and model.fc.training
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    model.eval()
    assert not model.fc.training


def test_a_frozen_module_instance_freezes_everything_inside():
    block = build("Block", [("x", "Input", {"shape": [8]}), ("fc", "Linear", {"units": 8}), ("y", "Output", {})])
    graph = build("net", [("x", "Input", {"shape": [8]}),
                          ("body", "Module", {"module": "Block", "repeat": 2, "trainable": False}),
                          ("head", "Linear", {"units": 2}), ("y", "Output", {})])
    graph.add_module("Block", block)
    analysis = analyse(graph)
    assert analysis.frozen_params == 2 * (8 * 8 + 8)
    model = compile_graph(graph)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    # a block frozen inside the definition is frozen in every instance
    graph.find("body").params["trainable"] = True
    block.find("fc").params["trainable"] = False
    assert analyse(graph).frozen_params == 2 * (8 * 8 + 8)
    model = compile_graph(graph)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
