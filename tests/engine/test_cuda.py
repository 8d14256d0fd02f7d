"""The CUDA path: runs only where a GPU is present (CI has none; the GPU machine runs it)."""
import pytest
import torch

from engine.runtime.data import load_dataset
from engine.templates import load_template
from engine.training import Callbacks, TrainConfig, available_devices, predict, resolve_device, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@cuda
def test_auto_picks_the_gpu_and_devices_list_it_by_name_and_memory():
    assert resolve_device("auto").type == "cuda"
    gpus = [d for d in available_devices() if d["id"].startswith("cuda")]
    assert gpus and gpus[0]["memory"] > 0 and gpus[0]["name"]


@cuda
@pytest.mark.parametrize("amp", [False, True])
def test_training_on_the_gpu_reaches_the_cpu_accuracy(amp):
    memory = []
    result = train(load_template("digits_cnn"), load_dataset("digits_images"),
                   TrainConfig(epochs=15, device="cuda", amp=amp),
                   Callbacks(batch_end=lambda info: memory.append(info["gpu_memory"])))
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).is_cuda
    assert result.test_metrics["accuracy"] >= 0.95
    assert all(v.device.type == "cpu" for v in result.state_dict.values())
    assert memory and all(m and m > 0 for m in memory)
    y = predict(result.model, load_dataset("digits_images").x[:8], device="cuda")
    assert y.shape == (8, 10)


@cuda
def test_transformer_and_lstm_train_on_the_gpu():
    r = train(load_template("transformer_classifier"), load_dataset("token_classification"),
              TrainConfig(epochs=2, device="cuda", batch_size=64))
    assert r.history[-1]["loss"] < r.history[0]["loss"] * 1.5
    r = train(load_template("sequence_lstm"), load_dataset("sine_forecast"),
              TrainConfig(epochs=2, device="cuda:0", batch_size=64, amp=True))
    assert r.test_metrics["mse"] < 1.0


@cuda
def test_same_seed_same_result_on_the_gpu():
    ds = load_dataset("digits")
    a = train(load_template("digits_mlp"), ds, TrainConfig(epochs=2, device="cuda", seed=3))
    b = train(load_template("digits_mlp"), ds, TrainConfig(epochs=2, device="cuda", seed=3))
    assert all(torch.allclose(a.state_dict[k], b.state_dict[k], atol=1e-6) for k in a.state_dict)
