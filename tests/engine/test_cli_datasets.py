"""The CLI trains on the data a template or project names, and names the data that fits."""
import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.graph import build
from engine.project import load_project


@pytest.mark.slow
def test_new_writes_the_templates_dataset_and_train_uses_it(tmp_path, capsys):
    path = tmp_path / "mlp.json"
    assert main(["new", "digits_mlp", "-o", str(path)]) == 0
    assert "trains on digits" in capsys.readouterr().out
    assert json.loads(path.read_text())["dataset"] == "digits"
    assert main(["train", str(path), "--epochs", "1", "--batch-size", "128"]) == 0      # no --dataset
    err = capsys.readouterr().err
    assert "no --dataset given: using digits" in err
    project = load_project(path.with_suffix(".deepwire"))
    assert project.dataset == "digits" and project.runs[-1]["dataset"] == "digits"
    # evaluate takes the project's data too
    assert main(["evaluate", str(path.with_suffix(".deepwire"))]) == 0
    assert "test samples of 'digits'" in capsys.readouterr().out


def test_data_of_another_shape_names_the_builtin_that_fits(tmp_path, capsys):
    path = tmp_path / "cnn.json"
    assert main(["new", "digits_cnn", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "dataset 'digits' gives inputs of shape (64,); input 'image' expects (1, 8, 8)" in err
    assert err.endswith("use --dataset digits_images, which gives (1, 8, 8)") and err.count("\n") == 0
    assert not path.with_suffix(".deepwire").exists()
    # token ids: the built-in of the same shape that holds numbers is not the one to name
    path = tmp_path / "transformer.json"
    assert main(["new", "transformer_classifier", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "1"]) == 1
    assert "use --dataset token_classification, which gives (64,) token ids" in capsys.readouterr().err


def test_a_graph_that_names_no_dataset_asks_for_one_and_suggests_what_fits(tmp_path, capsys):
    graph = build("imported", [("x", "Input", {"shape": [1, 8, 8]}), ("flat", "Flatten", {}),
                               ("fc", "Linear", {"units": 10}), ("y", "Output", {})])
    path = tmp_path / "imported.json"
    path.write_text(graph.to_json())
    assert main(["train", str(path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "names no dataset: pass --dataset" in err and "(--dataset digits_images fits this model)" in err
    assert not path.with_suffix(".deepwire").exists()


@pytest.mark.parametrize("template, dataset", [("tabular_dnn", "tabular_binary"), ("image_cnn", "shapes")])
def test_an_exported_untrained_template_trains_on_its_dataset(tmp_path, capsys, template, dataset):
    path = tmp_path / "graph.json"
    assert main(["new", template, "-o", str(path)]) == 0
    assert main(["export", str(path), "-o", str(tmp_path / "bundle")]) == 0
    train_py = (tmp_path / "bundle" / "train.py").read_text()
    assert f'DATASET = "{dataset}"' in train_py
    assert Path(tmp_path / "bundle" / "requirements.txt").is_file()
