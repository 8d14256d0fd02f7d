"""train / evaluate / predict / datasets from the command line."""
import json

import numpy as np
import pytest

from engine.cli import main
from engine.data import load_dataset
from engine.project import load_project


@pytest.fixture
def digits_graph(tmp_path):
    path = tmp_path / "digits.json"
    assert main(["new", "digits_mlp", "-o", str(path)]) == 0
    return path


def test_train_saves_a_project_and_prints_json_history(digits_graph, capsys):
    capsys.readouterr()
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert all(h["seconds"] > 0 for h in report["history"])
    assert report["test"]["accuracy"] > 0.8
    assert "epoch 3/3" in err  # progress goes to stderr
    project = load_project(digits_graph.with_suffix(".deepwire"))
    assert project.trained and project.dataset == "digits" and len(project.runs) == 1
    # training again appends to the run history instead of losing it
    assert main(["train", str(digits_graph.with_suffix(".deepwire")), "--dataset", "digits", "--epochs", "1"]) == 0
    assert len(load_project(digits_graph.with_suffix(".deepwire")).runs) == 2


def test_evaluate_prints_the_confusion_matrix_and_predict_writes_outputs(digits_graph, tmp_path, capsys):
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "5", "-o",
                 str(tmp_path / "m.deepwire")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m.deepwire"), "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "confusion matrix" in out and "accuracy" in out and "precision" in out
    x = np.asarray(load_dataset("digits").x[:7], dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "m.deepwire"), "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (7, 10)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    assert main(["predict", str(tmp_path / "m.deepwire"), "--input", str(tmp_path / "x.csv"), "-o",
                 str(tmp_path / "y2.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y2.npy"), y, rtol=1e-5, atol=1e-5)


def test_mismatch_untrained_and_bad_input_are_one_line_errors(digits_graph, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", str(digits_graph), "--dataset", "iris", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "dataset 'iris' gives inputs of shape (4,); input 'input' expects (64,)" in err
    assert err.count("\n") == 1
    assert main(["evaluate", str(digits_graph), "--dataset", "digits"]) == 1
    assert "has no trained weights: train it first" in capsys.readouterr().err
    assert main(["train", str(digits_graph), "--dataset", "no_such_data"]) == 1
    assert "neither a built-in dataset" in capsys.readouterr().err
    assert main(["train", str(digits_graph), "--dataset", "digits", "--lr", "-3"]) == 1
    assert "learning rate" in capsys.readouterr().err
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "1", "-o",
                 str(tmp_path / "m.deepwire")]) == 0
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), dtype=np.float32))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.deepwire"), "--input", str(tmp_path / "bad.npy"), "-o",
                 str(tmp_path / "y.npy")]) == 1
    assert "inputs of shape (5,) per sample; the model expects (64,)" in capsys.readouterr().err


def test_train_refuses_to_overwrite_a_file_that_is_not_a_project(digits_graph, tmp_path, capsys):
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "1", "-o", str(other)]) == 1
    assert other.read_text() == "keep me"


def test_datasets_lists_builtins_with_shapes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits_images" in out and "(1, 8, 8)" in out and "sine_forecast" in out and "(50, 8)" in out
    assert main(["datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"digits", "iris", "wine", "breast_cancer", "diabetes", "fashion_mnist"}
