"""`deepwire train --weights FILE --freeze NAME,...` (issue #19): start from weights a user has,
keep some blocks fixed, and the run record says where the weights came from and what was frozen."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from engine import cli
from engine.project import load_project


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    graph = folder / "mlp.json"
    assert cli.main(["new", "digits_mlp", "-o", str(graph)]) == 0
    first = folder / "first.deepwire"
    assert cli.main(["train", str(graph), "--dataset", "digits", "--epochs", "1", "-o", str(first)]) == 0
    weights = folder / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in load_project(first).weights.items()}, str(weights))
    return folder, graph, weights, load_project(first).weights


def test_train_from_a_state_dict_with_a_frozen_block(pretrained, capsys):
    folder, graph, weights, state = pretrained
    first_linear = next(k.split(".")[0] for k in state if k.endswith(".weight") and state[k].ndim == 2)
    out = folder / "tuned.deepwire"
    code = cli.main(["train", str(graph), "--dataset", "digits", "--epochs", "1", "--seed", "4",
                     "--weights", str(weights), "--freeze", first_linear, "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Matched: 6" in captured.err                         # the report is shown before training
    summary = json.loads(captured.out)
    assert summary["start"]["from"] == "weights" and "pretrained.safetensors" in summary["start"]["source"]
    assert summary["frozen"] == [first_linear] and summary["frozen_params"] > 0
    project = load_project(out)
    run = project.runs[-1]
    assert run["config"]["start_from"] == "weights" and run["frozen"] == [first_linear]
    for key in (f"{first_linear}.weight", f"{first_linear}.bias"):
        assert torch.equal(project.weights[key], state[key]), "a frozen block keeps the loaded weights"
    assert project.start_weights is not None and "pretrained.safetensors" in project.start_source
    assert project.graph.find(first_linear).params["trainable"] is False


def test_bad_freeze_names_and_weights_that_fit_nothing_are_refused(pretrained, tmp_path, capsys):
    folder, graph, weights, _ = pretrained
    assert cli.main(["train", str(graph), "--dataset", "digits", "--epochs", "1", "--freeze", "nosuch",
                     "-o", str(tmp_path / "a.deepwire")]) == 1
    assert "no block named nosuch" in capsys.readouterr().err
    assert cli.main(["train", str(graph), "--dataset", "digits", "--epochs", "1", "--freeze", "output",
                     "-o", str(tmp_path / "b.deepwire")]) == 1
    assert "no weights to freeze" in capsys.readouterr().err
    other = tmp_path / "other.safetensors"
    save_file({"unrelated.weight": torch.zeros(3, 3)}, str(other))
    assert cli.main(["train", str(graph), "--dataset", "digits", "--epochs", "1", "--weights", str(other),
                     "-o", str(tmp_path / "c.deepwire")]) == 1
    assert "c.deepwire" not in [p.name for p in tmp_path.iterdir()]
