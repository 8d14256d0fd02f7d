"""The python export: a folder a person can zip and hand over.

    model.py              the generated module, the very source the app trains, plus load()
    weights.safetensors   the trained weights and buffers (normalisation statistics included)
    train.py              a short training script with the project's settings: `python
                          train.py` repeats the app's run, `torchrun ... train.py` scales it out
    deepwire_runtime/     what train.py runs: engine/runtime, copied unchanged (the settings,
                          losses, optimizers, the loop's pieces, torchrun helpers, the datasets)
    reference.npz         sample inputs and the app's outputs for them
    test_export.py        checks that model.py + weights reproduce those outputs exactly
    README.md             how to load, predict, fine-tune and train (also distributed)
    requirements.txt      exactly the packages the files need (`pip install -r requirements.txt`)

The texts are resource files in templates/ with @@NAME@@ fields. What each file needs:
model.py imports torch alone; its load() reads safetensors; test_export.py and train.py need
numpy; train.py needs scikit-learn only for scikit-learn's built-in datasets and Pillow only
for image folders (requirements.txt lists those only when the bundle's own data needs them).

Nothing a user typed reaches the files as code: model.py is codegen's source (names are
checked identifiers); the dataset path and options are written as ASCII literals; titles pass
through `safe_text`.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..analysis import analyse, output_activation
from ..blocks import TOKENS
from ..codegen import CodeInfo, generate, safe_text
from ..compiler import compile_graph
from ..fileio import atomic_write_bytes
from ..runtime.settings import SETTINGS
from ..threads import run_with_default_threads

TEMPLATES = Path(__file__).resolve().parent / "templates"
RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
RUNTIME_PACKAGE = "deepwire_runtime"


def _runtime_files() -> tuple[str, ...]:
    """engine/runtime's modules, as the bundle names them (deepwire_runtime/...)."""
    return tuple(sorted(f"{RUNTIME_PACKAGE}/{p.relative_to(RUNTIME).as_posix()}" for p in RUNTIME.rglob("*.py")))


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.in").read_text(encoding="utf-8")


REFERENCE_SAMPLES = 8
FILES = ("model.py", "weights.safetensors", "train.py", "reference.npz", "test_export.py", "README.md",
         "requirements.txt", *_runtime_files())
# What the bundle's files import, as requirement lines (the app's own lower bounds, pyproject.toml)
TORCH, SAFETENSORS, NUMPY, SKLEARN, PILLOW, PYARROW = ("torch>=2.2", "safetensors>=0.4", "numpy>=1.24",
                                                       "scikit-learn>=1.3", "pillow>=9.1", "pyarrow>=14")
START = "start.safetensors"   # the weights a fine-tuning run starts from (start_from "weights")
# train.py's built-ins that scikit-learn provides (the others are generated with numpy, or IDX files)
SKLEARN_BUILTINS = ("digits", "digits_images", "iris", "wine", "breast_cancer", "diabetes")


def export_python(project, out_dir: Path, dataset: str | None = None) -> list[Path]:
    """Write the bundle into `out_dir` (an existing, empty folder) and return the files written.

    `dataset` (else `project.dataset`, else the dataset the graph names, as a template does) is
    the data train.py loads and reference.npz samples; without trained weights the model's
    initial weights for the project's seed are exported. Raises CodegenError when the graph has
    errors."""
    out_dir = Path(out_dir)
    graph = project.graph
    analysis = analyse(graph)
    source, info = generate(graph, analysis)
    spec = dataset if dataset is not None else (project.dataset or graph.dataset)

    if not project.weights:   # untrained: the initial weights for the project's seed
        torch.manual_seed(project.config.seed)
        model = compile_graph(graph, analysis)
    else:
        model = compile_graph(graph, analysis)
        model.load_state_dict(project.weights, strict=True)
    model.eval()
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}

    inputs = _reference_inputs(model, info, spec)

    def reference_outputs():
        with torch.no_grad():
            return model(*inputs)

    # with the thread count a fresh process has, as test_export.py will: bit for bit the same sums
    outputs = run_with_default_threads(reference_outputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    arrays = {f"input_{i}": t.numpy() for i, t in enumerate(inputs)}
    arrays.update({f"output_{i}": t.detach().cpu().numpy() for i, t in enumerate(outputs)})

    final = output_activation(graph, analysis, analysis.outputs[0]) if len(analysis.outputs) == 1 else None
    title = safe_text(graph.name)
    contents: dict[str, bytes] = {
        "model.py": model_source(source, info).encode("utf-8"),
        "weights.safetensors": _safetensors_bytes(state),
        "train.py": train_source(info, project.config, spec, final, title,
                                 project.dataset_options if spec == project.dataset else {}).encode("utf-8"),
        "reference.npz": _npz_bytes(arrays),
        "test_export.py": template("test_export.py").encode("utf-8"),
        "README.md": readme_source(info, project, spec, title).encode("utf-8"),
        "requirements.txt": requirements_source(spec).encode("utf-8"),
    }
    for name in FILES:
        if name.startswith(RUNTIME_PACKAGE + "/"):
            contents[name] = (RUNTIME / name.split("/", 1)[1]).read_bytes()
    start = project.start_weights or project.weights
    if project.config.start_from == "weights" and start:   # train.py fine-tunes from the same weights
        contents[START] = _safetensors_bytes({k: v.detach().to("cpu", copy=True).contiguous()
                                              for k, v in start.items()})
    written = []
    for name in [*FILES, *(n for n in contents if n not in FILES)]:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, contents[name])
        path.chmod(0o644)   # a folder to hand over: readable like any file written by hand
        written.append(path)
    return written


# ----------------------------------------------------------------------------- model.py

def model_source(source: str, info: CodeInfo) -> str:
    """codegen's source, unchanged, followed by load() and the input/output shape constants."""
    return source + _fill(template("model_load.py"), {
        "CLASS": info.class_name,
        "INPUT_SHAPES": repr([tuple(s.shape) for s in info.input_specs]),
        "INPUT_DTYPES": _literal([s.dtype for s in info.input_specs]),
        "OUTPUT_SHAPES": repr([tuple(s.shape) for s in info.output_specs]),
    })


# ----------------------------------------------------------------------------- weights, reference

def _safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.clone() for k, v in state.items()})   # clones: no two names share storage


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _reference_inputs(model: nn.Module, info: CodeInfo, spec: str | None) -> list[torch.Tensor]:
    """A few samples of the dataset when it is at hand and fits the model, else seeded random
    inputs of the model's input shapes (token ids below the smallest Embedding's size)."""
    sample = _dataset_sample(model, info, spec)
    if sample is not None:
        return [sample]
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for input_spec in info.input_specs:
        shape = (REFERENCE_SAMPLES, *input_spec.shape)
        if input_spec.dtype == TOKENS:
            high = min((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), default=10)
            inputs.append(torch.randint(0, high, shape, generator=generator))
        else:
            inputs.append(torch.randn(shape, generator=generator))
    return inputs


def _dataset_sample(model: nn.Module, info: CodeInfo, spec: str | None) -> torch.Tensor | None:
    if not spec or len(info.input_specs) != 1:
        return None
    from ..runtime.data import DataError, idx, load_dataset
    from ..runtime.data.catalog import BUILTINS, normalise_name

    entry = BUILTINS.get(normalise_name(str(spec)))
    if entry is None and Path(str(spec)).expanduser().is_dir() and not idx.find_files(Path(str(spec)).expanduser()):
        return None   # an image folder: too slow to read for a few samples
    if entry is not None and entry.make is None and not idx.available(entry.name):
        return None   # an IDX built-in that is not on disk: never download during an export
    try:
        ds = load_dataset(str(spec))
    except (DataError, OSError, ValueError):
        return None
    want = info.input_specs[0]
    if ds.input_shape != tuple(want.shape) or ds.dtype != want.dtype or len(ds.x) == 0:
        return None
    x = torch.from_numpy(np.array(ds.x[:REFERENCE_SAMPLES]))
    x = x.long() if want.dtype == TOKENS else x.float()
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # e.g. token ids beyond the embedding: fall back to random inputs
        return None
    return x


# ----------------------------------------------------------------------------- train.py

# TrainConfig field, type, comment: every setting that train.py reads (engine.runtime.settings.SETTINGS)
CONFIG_FIELDS = tuple((s.name, s.python_type, s.described) for s in SETTINGS if s.export)


def _config_lines(config) -> str:
    lines = []
    for name, kind, comment in CONFIG_FIELDS:
        value = getattr(config, name)
        value = {"int": int, "float": float, "bool": bool, "str": str}[kind](value)
        text = f"    {name}={_literal(value)},"
        lines.append(f"{text:<36}  # {comment}" if comment else text)
    return "\n".join(lines)


def train_source(info: CodeInfo, config, dataset: str | None, final: str | None, title: str,
                 options: dict | None = None) -> str:
    """train.py for this model, these settings and this dataset (read with these load options)."""
    options = options or {}
    return _fill(template("train.py"), {
        "TITLE": title,
        "VERSION": __version__,
        "CLASS": info.class_name,
        "CONFIG_FIELDS": _config_lines(config),
        "DATASET": _literal(str(dataset)) if dataset else "None",
        "DATA_OPTIONS": "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in options.items()) + "}",
        "FINAL": _literal(final),
    })


def _generated(name: str) -> bool:
    """A built-in Deepwire makes with numpy (not scikit-learn's, not downloaded)."""
    from ..runtime.data.catalog import BUILTINS

    entry = BUILTINS.get(name)
    return entry is not None and entry.make is not None and name not in SKLEARN_BUILTINS


def requirements_source(dataset: str | None) -> str:
    """requirements.txt: what the bundle's files import, with scikit-learn and Pillow only when
    train.py's own data needs them (else as comments)."""
    from ..runtime.data import idx
    from ..runtime.data.catalog import is_builtin, normalise_name

    name = normalise_name(str(dataset)) if dataset else ""
    path = Path(str(dataset)).expanduser() if dataset and not is_builtin(str(dataset)) else None
    sklearn = name in SKLEARN_BUILTINS
    images = bool(path is not None and _is_dir(path) and not idx.find_files(path))
    table = bool(path is not None and path.suffix.lower() == ".csv")
    lines = [
        "# What this folder needs: pip install -r requirements.txt",
        "# model.py imports torch alone; load() reads the weights with safetensors;",
        "# test_export.py and train.py need numpy too.",
        TORCH,
        SAFETENSORS,
        NUMPY,
        f"{SKLEARN:<20}# train.py's data, {name}, is one of scikit-learn's datasets" if sklearn else
        f"# {SKLEARN:<18}# only for train.py --data with one of scikit-learn's datasets (digits, iris, ...)",
        f"{PILLOW:<20}# train.py's data is a folder of images" if images else
        f"# {PILLOW:<18}# only for train.py --data with a folder of images",
        f"{PYARROW:<20}# train.py's data is a CSV file" if table else
        f"# {PYARROW:<18}# only for train.py --data with a CSV file",
    ]
    return "\n".join(lines) + "\n"


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _literal(value) -> str:
    """A Python literal for a value: strings double-quoted and pure ASCII, whatever they hold."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)   # JSON's escapes are Python's too
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        return values[match.group(1)]

    return re.sub(r"@@([A-Z_0-9]+)@@", replace, template)


# ----------------------------------------------------------------------------- README.md

def readme_source(info: CodeInfo, project, dataset: str | None, title: str) -> str:
    from ..runtime.data.catalog import normalise_name

    example, args = [], []
    for i, s in enumerate(info.input_specs):
        name = "x" if len(info.input_specs) == 1 else f"x{i}"
        dims = ", ".join(str(d) for d in s.shape)
        if s.dtype == TOKENS:
            example.append(f"{name} = torch.randint(0, 10, (4, {dims}))   # a batch of 4: token ids")
        else:
            example.append(f"{name} = torch.randn(4, {dims})   # a batch of 4")
        args.append(name)
    shapes = [f"`{tuple(s.shape)}`" + (" token ids (int64)" if s.dtype == TOKENS else " float32")
              for s in info.input_specs]
    outputs = [f"`{tuple(s.shape)}`" for s in info.output_specs]
    needs = requirements_source(dataset)
    name = normalise_name(str(dataset)) if dataset else ""
    extra = "".join(f", and {label} for `train.py`'s data" for package, label in
                    ((SKLEARN, "scikit-learn"), (PILLOW, "Pillow")) if f"\n{package}" in needs)
    trained = ("The weights are the trained ones." if project.weights else
               f"**The project was not trained**: the weights are the initial ones (seed {project.config.seed}).")
    return _fill(template("README.md"), {
        "TITLE": title,
        "VERSION": __version__,
        "CLASS": info.class_name,
        "TRAINED": trained,
        "INPUTS": ", ".join(shapes) or "none",
        "OUTPUTS": ", ".join(outputs) or "none",
        "EXAMPLE": "\n".join(example),
        "ARGS": ", ".join(args),
        "OUTPUT_NOTE": ("   # a tuple: one tensor per output" if len(info.output_specs) > 1
                        else f"   # shape (4, {', '.join(str(d) for d in info.output_specs[0].shape)})"
                        if info.output_specs else ""),
        "DATASET": _display(dataset) if dataset else "none set: pass --data",
        "EXTRA_NEEDS": extra,
        "GENERATED_DATA": (f"this bundle's own generated data (`{name}`, made with numpy), " if _generated(name)
                           else ""),
    })


def _display(text: str) -> str:
    """A dataset name or path for the README: printable, no Markdown code fences."""
    cleaned = "".join(ch if ch.isprintable() and ch not in "`|<>" else "?" for ch in str(text))
    return f"`{cleaned[:200]}`"
