"""The training loop: real accuracy on built-in data, reproducibility, stop/pause, failures."""
import math
import threading

import numpy as np
import pytest
import torch

from engine.runtime.data import Dataset, load_dataset
from engine.graph import build
from engine.project import Project, load_project, save_project
from engine.templates import load_template
from engine.training import (
    Callbacks,
    ConfigError,
    NothingTrained,
    TrainConfig,
    TrainControl,
    TrainingError,
    predict,
    resolve_device,
    train,
)


@pytest.mark.slow
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


@pytest.mark.slow
def test_lstm_beats_repeating_the_last_value_on_the_sine_task():
    ds = load_dataset("sine_forecast")
    result = train(load_template("sequence_lstm"), ds, TrainConfig(epochs=8, batch_size=64, lr=3e-3))
    from engine.runtime.data import split_dataset
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


FLOAT_SETTINGS = ("lr", "weight_decay", "momentum", "gamma", "grad_clip", "val_split", "test_split")


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_every_float_setting_refuses_non_finite_values(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        TrainConfig(**{name: value}).validate()


def test_settings_read_from_a_file_are_checked_like_typed_ones():
    import json
    # JSON reads 1e309 as inf: a project file could carry it without any "Infinity" in it
    with pytest.raises(ConfigError, match="grad_clip must be a finite number, not inf"):
        TrainConfig.from_dict(json.loads('{"grad_clip": 1e309}'))
    with pytest.raises(ConfigError, match="epochs must be a whole number"):
        TrainConfig.from_dict({"epochs": 2.5})
    with pytest.raises(ConfigError, match="early_stopping must be true or false"):
        TrainConfig.from_dict({"early_stopping": "yes"})
    with pytest.raises(ConfigError, match="optimizer must be text"):
        TrainConfig.from_dict({"optimizer": ["adam"]})
    assert TrainConfig.from_dict({"grad_clip": 1e308}).grad_clip == 1e308


def test_the_seed_is_kept_to_what_the_generators_take():
    for seed in (-1, 2**31, 2**63, 10**30):
        with pytest.raises(ConfigError, match="seed must be a whole number from 0 to"):
            TrainConfig(seed=seed).validate()
    result = train(iris_linear(), load_dataset("iris"), TrainConfig(epochs=1, seed=2**31 - 1, device="cpu"))
    assert result.stopped == "completed"


def iris_linear():
    return build("iris", [("input", "Input", {"shape": [4]}), ("dense", "Linear", {"units": 3}),
                          ("output", "Output", {})])


def test_a_run_stopped_before_its_first_batch_is_not_a_trained_model():
    control = TrainControl()
    control.stop()
    failures, finished = [], []
    with pytest.raises(NothingTrained, match="stopped before the first batch: nothing was trained"):
        train(iris_linear(), load_dataset("iris"), TrainConfig(epochs=3, device="cpu"),
              Callbacks(failed=failures.append, finished=finished.append), control)
    assert failures and not finished


def poison_training_after(monkeypatch, forwards: int) -> None:
    """From the `forwards`+1-th training-mode forward pass on, the model outputs NaN (evaluation
    passes stay finite): a run that diverges at a known batch."""
    from engine import training
    original = training.compile_graph
    calls = [0]

    def compile_and_poison(*args, **kwargs):
        model = original(*args, **kwargs)

        def hook(module, inputs, output):
            if module.training:
                calls[0] += 1
                if calls[0] > forwards:
                    return output * float("nan")
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(training, "compile_graph", compile_and_poison)


def test_a_nan_after_good_epochs_keeps_the_best_epoch_and_says_where(monkeypatch):
    ds = load_dataset("iris")
    config = TrainConfig(epochs=10, batch_size=16, lr=0.05, device="cpu", restore_best=False)
    batches = math.ceil(len(__import__("engine.runtime.data", fromlist=["split_dataset"]).split_dataset(
        ds, config.val_split, config.test_split, config.seed).x_train) / config.batch_size)
    poison_training_after(monkeypatch, 3 * batches + 2)      # epoch 4, batch 3
    epochs = []
    result = train(iris_linear(), ds, config, Callbacks(epoch_end=epochs.append))
    assert result.stopped == "diverged"
    assert [r["epoch"] for r in result.history] == [1, 2, 3] == [r["epoch"] for r in epochs]
    assert "the loss became nan at epoch 4, batch 3" in result.note
    assert f"kept the weights of epoch {result.best_epoch}" in result.note
    best = result.checkpoints[result.best_epoch]
    assert all(torch.equal(best[k], result.state_dict[k]) for k in best)     # even with restore_best off
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    assert math.isfinite(result.test_metrics["loss"]) and result.test_metrics["accuracy"] > 0
    assert result.summary()["note"] == result.note


def test_a_nan_in_the_first_epoch_is_still_a_failure(monkeypatch):
    poison_training_after(monkeypatch, 1)
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, batch 2: lower the learning rate"):
        train(iris_linear(), load_dataset("iris"), TrainConfig(epochs=3, batch_size=16, device="cpu"))


def test_a_checkpoint_folder_that_fills_up_costs_the_files_not_the_run(tmp_path, monkeypatch):
    import errno

    from engine import fileio
    real = fileio.atomic_write_bytes
    writes = []

    def full_after_two(path, data):
        writes.append(path)
        if len(writes) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(fileio, "atomic_write_bytes", full_after_two)
    result = train(iris_linear(), load_dataset("iris"), TrainConfig(epochs=4, device="cpu",
                                                                     checkpoint_dir=str(tmp_path)))
    assert result.stopped == "completed" and len(result.history) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.safetensors", "epoch_0002.safetensors"]
    assert "stop before epoch 3 (No space left on device)" in result.note
    assert len(writes) == 3          # no further tries once the disk is full
