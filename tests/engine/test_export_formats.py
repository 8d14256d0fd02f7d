"""TorchScript, ONNX and weights exports reproduce the app's outputs; bad exports explain themselves."""
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.export import ExportError, build_model, example_inputs, export
from engine.graph import build
from engine.project import Project
from engine.templates import load_template
from engine.training import TrainConfig

TEMPLATES = ["fashion_mnist_mlp", "image_cnn", "sequence_lstm", "transformer_classifier", "residual_cnn"]


def project_of(name):
    return Project(load_template(name), TrainConfig(seed=3))


@pytest.mark.parametrize("name", TEMPLATES)
def test_torchscript_round_trip(name, tmp_path):
    project = project_of(name)
    result = export(project, "torchscript", tmp_path)
    loaded = torch.jit.load(str(result.files[0]))
    model, _ = build_model(project)
    x = example_inputs(project, batch=3)
    with torch.no_grad():
        assert torch.allclose(loaded(*x), model(*x), atol=1e-6)
    assert any("untrained" in n for n in result.notes)


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_onnx_round_trip_with_a_dynamic_batch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    project = project_of(name)
    path = export(project, "onnx", tmp_path).files[0]
    session = ort.InferenceSession(str(path))
    model, _ = build_model(project)
    for batch in (1, 5):
        x = example_inputs(project, batch=batch)
        (y,) = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), x)})
        with torch.no_grad():
            np.testing.assert_allclose(y, model(*x).numpy(), atol=1e-5, rtol=1e-5)


def test_trained_weights_are_what_is_exported(tmp_path):
    from safetensors.torch import load_file

    project = project_of("digits_mlp")
    model, _ = build_model(project)
    weights = {k: v + 1 for k, v in model.state_dict().items()}
    project.weights = weights
    result = export(project, "weights", tmp_path)
    saved = load_file(result.files[0])
    assert all(torch.equal(saved[k], weights[k]) for k in weights) and result.notes == []


def test_graph_with_errors_is_refused_with_its_diagnostics(tmp_path):
    graph = build("bad", [("input", "Input", {"shape": [784]}), ("conv", "Conv2d", {}), ("out", "Output", {})])
    with pytest.raises(ExportError, match="Conv2d 'conv' needs a \\(C, H, W\\) input"):
        export(Project(graph), "onnx", tmp_path / "out")


def test_weights_that_do_not_fit_the_graph_are_refused(tmp_path):
    project = project_of("digits_mlp")
    project.weights = {"dense.weight": torch.zeros(3, 3)}
    with pytest.raises(ExportError, match="do not match the graph"):
        export(project, "weights", tmp_path)


def test_a_folder_with_files_is_not_overwritten_without_force(tmp_path, capsys):
    graph_file = tmp_path / "m.json"
    assert main(["new", "digits_mlp", "-o", str(graph_file)]) == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(graph_file), "--format", "torchscript", "-o", str(out)]) == 1
    assert "not empty; use --force" in capsys.readouterr().err
    assert not (out / "model.pt").exists()
    assert main(["export", str(graph_file), "--format", "torchscript", "-o", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert (out / "model.pt").exists() and (out / "keep.txt").read_text() == "mine"
    assert "untrained" in captured.err


def test_onnx_failure_names_the_node(tmp_path, monkeypatch):
    pytest.importorskip("onnx")           # the onnx extra: without it the export says so before naming a node
    pytest.importorskip("onnxscript")
    from engine import export as export_module

    project = project_of("digits_cnn")
    real = export_module._onnx_bytes

    def refuse_convolutions(model, example, names, opset):
        if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            raise RuntimeError("Exporting the operator 'aten::_convolution' is not supported")
        return real(model, example, names, opset)

    monkeypatch.setattr(export_module, "_onnx_bytes", refuse_convolutions)
    with pytest.raises(ExportError, match="ONNX cannot express Conv2d 'conv2d': Exporting the operator"):
        export(project, "onnx", tmp_path)
