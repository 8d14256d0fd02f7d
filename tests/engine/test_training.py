"""The training loop: real accuracy on built-in data, reproducibility, stop/pause, failures."""
import math
import threading

import numpy as np
import pytest
import torch

from engine.data import Dataset, load_dataset
from engine.graph import build
from engine.project import Project, load_project, save_project
from engine.templates import load_template
from engine.training import (
    Callbacks,
    ConfigError,
    TrainConfig,
    TrainControl,
    TrainingError,
    predict,
    resolve_device,
    train,
)


def test_digits_mlp_reaches_95_percent_test_accuracy():
    result = train(load_template("digits_mlp"), load_dataset("digits"), TrainConfig(epochs=25, batch_size=32))
    assert result.test_metrics["accuracy"] >= 0.95
    assert len(result.test_metrics["confusion_matrix"]) == 10
    assert result.stopped == "completed" and len(result.history) == 25


def tabular_for_breast_cancer():
    return build("breast cancer", [
        ("input", "Input", {"shape": [30]}), ("normalization", "Normalization", {}),
        ("dense", "Linear", {"units": 64, "activation": "relu"}), ("dropout", "Dropout", {"p": 0.2}),
        ("dense_1", "Linear", {"units": 32, "activation": "relu"}),
        ("dense_2", "Linear", {"units": 1, "activation": "sigmoid"}), ("output", "Output", {})])


def test_breast_cancer_dnn_with_final_sigmoid_reaches_94_percent():
    result = train(tabular_for_breast_cancer(), load_dataset("breast_cancer"), TrainConfig(epochs=30))
    assert result.test_metrics["accuracy"] >= 0.94
    # the normalisation statistics were fitted on the training data and are part of the weights
    assert result.state_dict["normalization.std"].abs().max() > 10


def test_lstm_beats_repeating_the_last_value_on_the_sine_task():
    ds = load_dataset("sine_forecast")
    result = train(load_template("sequence_lstm"), ds, TrainConfig(epochs=8, batch_size=64, lr=3e-3))
    from engine.data import split_dataset
    splits = split_dataset(ds, 0.1, 0.2, 0)
    baseline = float(np.mean((splits.x_test[:, -1, 0] - splits.y_test) ** 2))
    assert result.test_metrics["mse"] < baseline * 0.8


def test_same_seed_gives_the_same_weights_and_another_seed_does_not():
    ds = load_dataset("iris")
    graph = build("iris", [("input", "Input", {"shape": [4]}), ("dense", "Linear", {"units": 8, "activation": "relu"}),
                           ("dropout", "Dropout", {"p": 0.3}), ("dense_1", "Linear", {"units": 3}),
                           ("output", "Output", {})])
    a = train(graph, ds, TrainConfig(epochs=3, seed=7)).state_dict
    b = train(graph, ds, TrainConfig(epochs=3, seed=7)).state_dict
    c = train(graph, ds, TrainConfig(epochs=3, seed=8)).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_stop_ends_the_run_within_one_batch_and_keeps_the_best_weights():
    control = TrainControl()
    graph = load_template("digits_mlp")
    ds = load_dataset("digits")

    def on_batch(info):
        if info["epoch"] == 2:
            control.stop()

    result = train(graph, ds, TrainConfig(epochs=50, batch_size=8), Callbacks(batch_end=on_batch), control)
    assert result.stopped == "user"
    assert len(result.history) == 2  # the interrupted epoch is recorded, nothing after it
    assert result.best_epoch in (1, 2)


def test_no_batch_runs_after_stop_is_set():
    control = TrainControl()
    trained_after_stop = []
    graph = load_template("digits_mlp")

    def on_batch(info):
        if info["step"] > 3:
            control.stop()

    from engine import training
    original = training.compile_graph

    def compile_and_watch(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda m, a: trained_after_stop.append(1) if (m.training and control.stopped) else None)
        return model

    training.compile_graph = compile_and_watch
    try:
        train(graph, load_dataset("digits"), TrainConfig(epochs=5, batch_size=4), Callbacks(batch_end=on_batch),
              control)
    finally:
        training.compile_graph = original
    assert trained_after_stop == []


def test_pause_holds_the_loop_until_resume():
    control = TrainControl()
    seen = []

    def on_batch(info):
        seen.append(info["step"])
        if len(seen) == 1:
            control.pause()
            threading.Timer(0.3, control.resume).start()

    result = train(load_template("digits_mlp"), load_dataset("digits"), TrainConfig(epochs=1),
                   Callbacks(batch_end=on_batch), control)
    assert result.stopped == "completed" and len(result.history) == 1


def test_nan_loss_names_epoch_and_batch_and_the_next_run_works():
    ds = load_dataset("iris")
    bad_x = np.array(ds.x, dtype=np.float32)
    bad_x[::3] = np.nan
    bad = Dataset("iris with holes", bad_x, np.array(ds.y), "multiclass", ds.class_names)
    graph = build("iris", [("input", "Input", {"shape": [4]}), ("dense", "Linear", {"units": 3}),
                           ("output", "Output", {})])
    failures = []
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, batch \d+"):
        train(graph, bad, TrainConfig(epochs=2), Callbacks(failed=failures.append))
    assert failures and "epoch 1" in failures[0]["message"]
    result = train(graph, ds, TrainConfig(epochs=2))
    assert result.stopped == "completed"


def test_exceptions_inside_the_loop_become_messages():
    graph = load_template("digits_mlp")
    failures = []

    def explode(info):
        raise KeyError("boom")

    with pytest.raises(TrainingError, match="training failed: KeyError"):
        train(graph, load_dataset("digits"), TrainConfig(epochs=1),
              Callbacks(batch_end=explode, failed=failures.append))
    assert failures


@pytest.mark.parametrize("dataset,template,fragment", [
    ("iris", "digits_mlp", "dataset 'iris' gives inputs of shape (4,); input 'input' expects (64,)"),
    ("digits_images", "digits_mlp", "expects (64,)"),
    ("digits", "tabular_dnn", "expects (20,)"),
])
def test_data_model_mismatch_is_explained_before_training(dataset, template, fragment):
    with pytest.raises(TrainingError) as err:
        train(load_template(template), load_dataset(dataset), TrainConfig(epochs=1))
    assert fragment in str(err.value)


def test_class_count_mismatch():
    graph = build("m", [("input", "Input", {"shape": [64]}), ("dense", "Linear", {"units": 1}),
                        ("output", "Output", {})])
    with pytest.raises(TrainingError, match="10 classes in the data, the model outputs 1 value"):
        train(graph, load_dataset("digits"), TrainConfig(epochs=1))


def test_token_ids_beyond_the_embedding_are_explained():
    graph = load_template("transformer_classifier")
    graph.set_params(graph.find("embedding").id, {"num_embeddings": 100})
    with pytest.raises(TrainingError, match="raise its num_embeddings to at least"):
        train(graph, load_dataset("token_classification"), TrainConfig(epochs=1))


def test_early_stopping_restores_the_best_epoch():
    result = train(load_template("digits_mlp"), load_dataset("digits"),
                   TrainConfig(epochs=60, lr=0.05, early_stopping=True, patience=2))
    assert result.stopped == "early_stopping"
    best = result.checkpoints[result.best_epoch]
    assert all(torch.equal(best[k], result.state_dict[k]) for k in best)
    assert len(result.history) == result.best_epoch + 2


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adamw", "cosine"), ("rmsprop", "one_cycle"),
                                                ("adam", "plateau")])
def test_optimizers_and_schedules_train(optimizer, schedule):
    config = TrainConfig(epochs=4, optimizer=optimizer, schedule=schedule, lr=0.01, weight_decay=1e-4,
                         nesterov=optimizer == "sgd", grad_clip=1.0)
    result = train(load_template("digits_mlp"), load_dataset("digits"), config)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    if schedule in ("step", "cosine"):
        assert result.history[-1]["lr"] <= 0.01


def test_regression_reports_mae():
    ds = load_dataset("diabetes")
    graph = build("reg", [("input", "Input", {"shape": [10]}), ("norm", "Normalization", {}),
                          ("dense", "Linear", {"units": 16, "activation": "relu"}), ("dense_1", "Linear", {"units": 1}),
                          ("output", "Output", {})])
    result = train(graph, ds, TrainConfig(epochs=40, lr=0.01, batch_size=16))
    assert result.test_metrics["mae"] < 60  # the targets span 25..346; predicting the mean gives ~65
    assert "r2" in result.test_metrics and result.test_metrics["r2"] > 0.2


def test_checkpoints_on_disk_one_per_epoch(tmp_path):
    from safetensors.torch import load_file
    result = train(load_template("digits_mlp"), load_dataset("digits"),
                   TrainConfig(epochs=3, checkpoint_dir=str(tmp_path)))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["epoch_0001.safetensors", "epoch_0002.safetensors", "epoch_0003.safetensors"]
    last = load_file(tmp_path / "epoch_0003.safetensors")
    assert torch.equal(last["dense.weight"], result.checkpoints[3]["dense.weight"])


def test_project_file_round_trip_keeps_weights_and_history(tmp_path):
    graph = load_template("digits_mlp")
    ds = load_dataset("digits")
    result = train(graph, ds, TrainConfig(epochs=2))
    path = tmp_path / "digits.deepwire"
    save_project(path, Project(graph, TrainConfig(epochs=2), result.state_dict, [result.summary()], "digits"))
    loaded = load_project(path)
    from engine.compiler import compile_graph
    model = compile_graph(loaded.graph)
    model.load_state_dict(loaded.weights)
    np.testing.assert_array_equal(predict(model, ds.x[:20]), predict(result.model, ds.x[:20]))
    assert loaded.runs[0]["history"][1]["epoch"] == 2 and loaded.dataset == "digits"
    assert loaded.config.epochs == 2


def test_devices_and_settings_are_checked():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="learning rate"):
        TrainConfig(lr=-1).validate()
    with pytest.raises(ConfigError, match="Nesterov"):
        TrainConfig(optimizer="adam", nesterov=True).validate()


@pytest.mark.parametrize("scheme,check", [
    ("xavier_uniform", lambda w: w.abs().max() <= math.sqrt(6 / (256 + 256)) + 1e-6),
    ("xavier_normal", lambda w: abs(w.std().item() - math.sqrt(2 / (256 + 256))) < 0.01),
    ("kaiming_uniform", lambda w: w.abs().max() <= math.sqrt(6 / 256) + 1e-6),
    ("kaiming_normal", lambda w: abs(w.std().item() - math.sqrt(2 / 256)) < 0.01),
])
def test_initialisation_choices_give_their_documented_statistics(scheme, check):
    from engine.compiler import compile_graph
    graph = build("m", [("input", "Input", {"shape": [256]}), ("dense", "Linear", {"units": 256, "init": scheme}),
                        ("output", "Output", {})])
    model = compile_graph(graph)
    assert check(model.dense.weight.detach())
    assert torch.count_nonzero(model.dense.bias) == 0


def test_orthogonal_recurrent_weights():
    from engine.compiler import compile_graph
    graph = build("m", [("input", "Input", {"shape": [5, 8]}),
                        ("lstm", "LSTM", {"hidden_size": 16, "init": "orthogonal"}),
                        ("output", "Output", {})])
    w = compile_graph(graph).lstm.weight_hh_l0.detach()  # (4H, H): orthonormal columns
    assert torch.allclose(w.T @ w, torch.eye(16), atol=1e-5)
