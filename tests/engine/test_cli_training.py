"""train / evaluate / predict / datasets from the command line."""
import json
import math

import numpy as np
import pytest

from engine.cli import main
from engine.runtime.data import load_dataset
from engine.project import load_project


@pytest.fixture
def digits_graph(tmp_path):
    path = tmp_path / "digits.json"
    assert main(["new", "digits_mlp", "-o", str(path)]) == 0
    return path


@pytest.mark.slow
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


# ----------------------------------------------------------------------------- runs that end badly, outputs that fail

def _write_graph(path, nodes):
    from engine.graph import build
    path.write_text(build(path.stem, nodes).to_json())     # wired in a chain
    return path


def regression_graph(tmp_path, features=3):
    return _write_graph(tmp_path / "reg.json", [("x", "Input", {"shape": [features]}),
                                                ("fc", "Linear", {"units": 1}), ("y", "Output", {})])


def test_a_regression_csv_with_one_huge_target_is_saved_and_shows_its_metric_as_not_finite(tmp_path, capsys):
    from engine.runtime.data import split_dataset
    from engine.training import TrainConfig
    rng = np.random.default_rng(0)
    x = np.column_stack([np.arange(200), rng.normal(size=(200, 2))])
    y = x[:, 1] - 0.5 * x[:, 2]
    csv = tmp_path / "values.csv"

    def write(targets):
        rows = ["a,b,c,target"] + [f"{r[0]:.0f},{r[1]:.5f},{r[2]:.5f},{t:.6g}" for r, t in zip(x, targets)]
        csv.write_text("\n".join(rows) + "\n")

    write(y)
    config = TrainConfig()
    test_rows = split_dataset(load_dataset(str(csv)), config.val_split, config.test_split, config.seed).x_test[:, 0]
    y[int(test_rows[0])] = 1e38          # finite in float32; its squared error is not: the test MSE is inf
    write(y)
    graph = regression_graph(tmp_path)
    out = tmp_path / "reg.deepwire"
    capsys.readouterr()
    assert main(["train", str(graph), "--dataset", str(csv), "--epochs", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mse inf" in printed and f"saved {out}" in printed
    run = load_project(out).runs[-1]                 # written, and it reads back
    assert run["test"]["mse"] is None and math.isfinite(run["test"]["mae"])
    assert main(["evaluate", str(out), "--dataset", str(csv)]) == 0
    assert "mse inf" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--dataset", str(csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mse"] is None      # valid JSON: null, as in the project file


def test_a_missing_output_folder_is_refused_before_the_first_batch(digits_graph, tmp_path, capsys):
    capsys.readouterr()
    missing = tmp_path / "missing" / "x.deepwire"
    assert main(["train", str(digits_graph), "--dataset", "digits", "-o", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "the folder" in err and "does not exist" in err
    assert "epoch" not in err and err.count("\n") == 1          # no training happened
    (tmp_path / "a_folder.deepwire").mkdir()
    assert main(["train", str(digits_graph), "--dataset", "digits", "-o", str(tmp_path / "a_folder.deepwire")]) == 1
    assert "it is a folder" in capsys.readouterr().err


def _full_disk(monkeypatch, fail_times=1):
    """save_project raises ENOSPC the first `fail_times` times, as a full disk does."""
    import errno

    from engine import project
    real = project.save_project
    calls = []

    def save(path, proj):
        calls.append(path)
        if len(calls) <= fail_times:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, proj)

    monkeypatch.setattr(project, "save_project", save)
    return calls


def test_a_full_disk_at_the_end_keeps_the_trained_project_beside_the_input(digits_graph, tmp_path, monkeypatch,
                                                                           capsys):
    out = tmp_path / "out" / "m.deepwire"
    out.parent.mkdir()
    calls = _full_disk(monkeypatch)
    capsys.readouterr()
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "1", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "could not write" in err and "No space left on device" in err and "saved to" in err
    assert not out.exists()
    rescued = calls[1]
    assert rescued.parent == digits_graph.parent and str(rescued) in err
    project = load_project(rescued)
    assert project.trained and project.runs[-1]["epochs_run"] == 1


def test_when_the_inputs_folder_is_full_too_the_project_goes_to_the_state_folder(digits_graph, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setenv("DEEPWIRE_STATE_DIR", str(tmp_path / "state"))
    calls = _full_disk(monkeypatch, fail_times=2)
    capsys.readouterr()
    assert main(["train", str(digits_graph), "--dataset", "digits", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    rescued = calls[2]
    assert rescued.parent == tmp_path / "state" / "rescued" and str(rescued) in err
    assert load_project(rescued).trained


def _set_config(project_path, **values):
    """Rewrite the config.json of a project file (as a hand-made or hostile file would say it)."""
    import zipfile
    with zipfile.ZipFile(project_path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    config.update(values)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(project_path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_a_project_file_never_chooses_where_checkpoints_are_written(tmp_path, capsys):
    from engine.project import Project, save_project
    from engine.templates import load_template
    path = tmp_path / "p.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    elsewhere = tmp_path / "somewhere" / "else"
    _set_config(path, checkpoint_dir=str(elsewhere))
    capsys.readouterr()
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "1"]) == 0
    assert "checkpoint folder is ignored" in capsys.readouterr().err
    assert not (tmp_path / "somewhere").exists()
    assert load_project(path).config.checkpoint_dir is None
    chosen = tmp_path / "chosen"
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "2", "--checkpoint-dir", str(chosen)]) == 0
    assert sorted(p.name for p in chosen.iterdir()) == ["epoch_0001.safetensors", "epoch_0002.safetensors"]
    saved = load_project(path)
    assert saved.config.checkpoint_dir is None and saved.runs[-1]["config"]["checkpoint_dir"] is None


def test_a_non_finite_setting_in_a_project_file_is_never_used(tmp_path, capsys):
    import zipfile

    from engine.project import Project, save_project
    from engine.templates import load_template
    path = tmp_path / "p.deepwire"
    save_project(path, Project(load_template("digits_mlp")))
    _set_config(path, grad_clip=1.0)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    assert b'"grad_clip": 1.0' in members["config.json"]
    members["config.json"] = members["config.json"].replace(b'"grad_clip": 1.0', b'"grad_clip": 1e309')   # inf
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    capsys.readouterr()
    assert main(["train", str(path), "--dataset", "digits", "--epochs", "1"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert any("grad_clip" in line for line in notes)      # refused: back to its default, and the user is told
    assert load_project(path).config.grad_clip == 0.0


def test_stopped_before_the_first_batch_writes_nothing(digits_graph, tmp_path, monkeypatch, capsys):
    from engine import training

    class StoppedAtOnce(training.TrainControl):     # Ctrl-C before the first batch
        def __init__(self):
            super().__init__()
            self.stop()

    monkeypatch.setattr(training, "TrainControl", StoppedAtOnce)
    out = tmp_path / "m.deepwire"
    capsys.readouterr()
    assert main(["train", str(digits_graph), "--dataset", "digits", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "stopped before the first batch: nothing was trained" in err and "was not written" in err
    assert not out.exists() and not list(tmp_path.glob("*.deepwire"))


def test_a_nan_after_good_epochs_saves_the_best_epoch_and_says_so(tmp_path, capsys):
    graph = _write_graph(tmp_path / "diverge.json", [("x", "Input", {"shape": [10]}), ("fc", "Linear", {"units": 64}),
                                                     ("fc2", "Linear", {"units": 1}), ("y", "Output", {})])
    out = tmp_path / "d.deepwire"
    capsys.readouterr()
    # SGD on the raw diabetes targets: one-cycle's rising learning rate makes the loss overflow in epoch 2
    assert main(["train", str(graph), "--dataset", "diabetes", "--epochs", "10", "--optimizer", "sgd", "--lr", "0.01",
                 "--schedule", "one_cycle", "--device", "cpu", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "the loss became" in captured.err and "kept the weights of epoch 1" in captured.err
    assert "best weights kept" in captured.out
    project = load_project(out)
    run = project.runs[-1]
    assert run["stopped"] == "diverged" and run["best_epoch"] == 1 and len(run["history"]) == 1
    assert all(bool(np.isfinite(t.numpy()).all()) for t in project.weights.values())
