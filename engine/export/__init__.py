"""Export a project: a standalone Python bundle, TorchScript, ONNX, or the weights alone.

Every format starts from the module the app trains (the source `codegen` writes, with the
project's weights), so what exports is what was trained. A graph with errors is refused
with its diagnostics; an untrained project exports its initial weights and says so.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..analysis import analyse
from ..blocks import TOKENS
from ..codegen import CodegenError
from ..compiler import compile_graph
from ..flops import probe_graph, probe_of

FORMATS = ("python", "torchscript", "onnx", "weights")


class ExportError(RuntimeError):
    """An export that cannot be made. The message is for the user."""


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_model(project) -> tuple[torch.nn.Module, list[str]]:
    """The project's model in evaluation mode with its trained weights (or, untrained, the
    initial weights for its seed), and notes for the user."""
    analysis = analyse(project.graph)
    if not analysis.ok:
        raise ExportError("the graph has errors, so it cannot be exported: "
                          + "; ".join(d.message for d in analysis.errors[:5]))
    notes = []
    torch.manual_seed(project.config.seed)
    try:
        model = compile_graph(project.graph, analysis)
    except CodegenError as exc:
        raise ExportError(str(exc)) from None
    if project.weights:
        try:
            model.load_state_dict(project.weights, strict=True)
        except RuntimeError as exc:
            raise ExportError("the saved weights do not match the graph (was it edited after training?): "
                              + str(exc).splitlines()[0]) from None
    else:
        notes.append("this project is untrained: the export holds its initial weights (seed "
                     f"{project.config.seed}); train it first for a useful model")
    return model.eval(), notes


def example_inputs(project, batch: int = 2) -> tuple[torch.Tensor, ...]:
    analysis = analyse(project.graph)
    out = []
    generator = torch.Generator().manual_seed(0)
    for node_id in analysis.inputs:
        if node_id not in analysis.live:
            continue
        spec = analysis.specs[node_id]
        if spec.dtype == TOKENS:
            high = _token_bound(project.graph, analysis, node_id)
            out.append(torch.randint(0, high, (batch,) + spec.shape, generator=generator))
        else:
            out.append(torch.rand((batch,) + spec.shape, generator=generator))
    return tuple(out)


def _token_bound(graph, analysis, input_id) -> int:
    """Example token ids must be valid for every block that reads them (as each block declares)."""
    from ..analysis import token_bounds

    return min((bound for _, bound in token_bounds(graph, analysis, input_id)), default=2)


def prepare_folder(out_dir: Path, force: bool) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} is not empty; use --force to write into it (files of the same name are "
                          "replaced)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def export(project, fmt: str, out_dir: str | Path, force: bool = False, dataset: str | None = None) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model, notes = build_model(project)
    folder = prepare_folder(Path(out_dir), force)
    if fmt == "python":
        from .python_bundle import export_python

        files = export_python(project, folder, dataset)
    elif fmt == "weights":
        files = [export_weights(model, folder / "weights.safetensors")]
    elif fmt == "torchscript":
        path, how = export_torchscript(model, example_inputs(project), folder / "model.pt")
        files = [path]
        if how == "traced":
            notes.append("TorchScript could not script this model, so it was traced: control flow is frozen "
                         "for inputs shaped like the example")
    else:
        files = [export_onnx(project, model, folder / "model.onnx")]
    return ExportResult(files, notes)


def export_weights(model: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save

    from ..fileio import atomic_write_bytes

    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))
    return path


def export_torchscript(model: torch.nn.Module, example: tuple, path: Path) -> tuple[Path, str]:
    """model.pt loadable with torch.jit.load; scripted, or traced where scripting cannot."""
    from ..fileio import atomic_write_bytes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module, how = torch.jit.script(model), "scripted"
        except Exception:  # TorchScript's frontend raises many kinds; tracing is the documented fallback
            try:
                module, how = torch.jit.trace(model, example, check_trace=False), "traced"
            except Exception as exc:
                raise ExportError(f"TorchScript cannot capture this model: {str(exc).splitlines()[0][:300]}") from None
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path, how


def export_onnx(project, model: torch.nn.Module, path: Path, opset: int = 17) -> Path:
    """model.onnx with a dynamic batch dimension, checked with onnx.checker."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'deepwire[onnx]' (or onnx onnxscript)") \
            from None
    example = example_inputs(project)
    names = [f"input_{i}" if len(example) > 1 else "input" for i in range(len(example))]
    try:
        data = _onnx_bytes(model, example, names, opset)
    except Exception as exc:
        culprit = _onnx_culprit(project, opset)
        where = f"{culprit}: " if culprit else ""
        raise ExportError(f"ONNX cannot express {where or 'this model: '}{str(exc).splitlines()[0][:300]}") from None
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    from ..fileio import atomic_write_bytes

    atomic_write_bytes(path, data)
    return path


def _onnx_bytes(model, example, names, opset) -> bytes:
    n_out = len(analyse_outputs(model, example))
    outputs = [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
    axes = {name: {0: "batch"} for name in names + outputs}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, buffer, dynamo=False, opset_version=opset, input_names=names,
                          output_names=outputs, dynamic_axes=axes)
    return buffer.getvalue()


def analyse_outputs(model, example) -> tuple:
    with torch.no_grad():
        out = model(*example)
    return out if isinstance(out, tuple) else (out,)


def _onnx_culprit(project, opset) -> str | None:
    """Export each block alone (its probe: engine.flops) to find the first one ONNX cannot
    express: "Type 'name'"."""
    graph = project.graph
    analysis = analyse(graph)
    for node_id in analysis.order:
        node = graph.node(node_id)
        probe = probe_of(graph, analysis, node_id)
        if node.type in ("Input", "Output") or node_id not in analysis.live or probe is None:
            continue
        single, _block = probe_graph(probe)
        try:
            model = compile_graph(single).eval()
            inputs = example_inputs(type("P", (), {"graph": single})())
            _onnx_bytes(model, inputs, [f"input_{i}" for i in range(len(inputs))], opset)
        except Exception:
            return f"{node.type} '{node.name}'"
    return None
