"""The python export: a folder a person can zip and hand over.

    model.py              the generated module, the very source the app trains, plus load()
    weights.safetensors   the trained weights and buffers (normalisation statistics included)
    train.py              a standalone training script with the project's settings: `python
                          train.py` repeats the app's run, `torchrun ... train.py` scales it out
    reference.npz         sample inputs and the app's outputs for them
    test_export.py        checks that model.py + weights reproduce those outputs exactly
    README.md             how to load, predict, fine-tune and train (also distributed)
    requirements.txt      exactly the packages the files need (`pip install -r requirements.txt`)

What each file needs: model.py imports torch alone; its load() reads safetensors; test_export.py
and train.py need numpy; train.py needs scikit-learn only for scikit-learn's built-in datasets
and Pillow only for image folders (requirements.txt lists those only when the bundle's own data
needs them).

Nothing a user typed reaches the files as code: model.py is codegen's source (names are
checked identifiers); the dataset path is written as an ASCII string literal; titles pass
through `safe_text`.
"""
from __future__ import annotations

import inspect
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

REFERENCE_SAMPLES = 8
FILES = ("model.py", "weights.safetensors", "train.py", "reference.npz", "test_export.py", "README.md",
         "requirements.txt")
# What the bundle's files import, as requirement lines (the app's own lower bounds, pyproject.toml)
TORCH, SAFETENSORS, NUMPY, SKLEARN, PILLOW = ("torch>=2.2", "safetensors>=0.4", "numpy>=1.24", "scikit-learn>=1.3",
                                              "pillow>=9.1")
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
        "train.py": train_source(info, project.config, spec, final, title).encode("utf-8"),
        "reference.npz": _npz_bytes(arrays),
        "test_export.py": TEST_SOURCE.encode("utf-8"),
        "README.md": readme_source(info, project, spec, title).encode("utf-8"),
        "requirements.txt": requirements_source(spec).encode("utf-8"),
    }
    written = []
    for name in FILES:
        path = out_dir / name
        atomic_write_bytes(path, contents[name])
        path.chmod(0o644)   # a folder to hand over: readable like any file written by hand
        written.append(path)
    return written


# ----------------------------------------------------------------------------- model.py

MODEL_APPENDIX = '''

# ----------------------------------------------------------------------------- added by the export

INPUT_SHAPES = @@INPUT_SHAPES@@  # forward's inputs, without the batch dimension
INPUT_DTYPES = @@INPUT_DTYPES@@  # "int64": token ids
OUTPUT_SHAPES = @@OUTPUT_SHAPES@@


def load(path="weights.safetensors", device="cpu") -> @@CLASS@@:
    """The model with the weights in `path`, in evaluation mode, on `device`. Needs the
    safetensors package (the module above needs only PyTorch).

    A relative path that does not exist in the current folder is looked up next to this file.
    """
    import os

    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError("loading weights needs the safetensors package: pip install safetensors") from None
    path = os.fspath(path)
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), path)
    model = @@CLASS@@()
    model.load_state_dict(load_file(path))
    return model.to(device).eval()
'''


def model_source(source: str, info: CodeInfo) -> str:
    """codegen's source, unchanged, followed by load() and the input/output shape constants."""
    return source + _fill(MODEL_APPENDIX, {
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
        text = f"    {name}: {kind} = {_literal(value)}"
        lines.append(f"{text:<38}  # {comment}" if comment else text)
    return "\n".join(lines)


def train_source(info: CodeInfo, config, dataset: str | None, final: str | None, title: str) -> str:
    """train.py for this model, these settings and this dataset."""
    from ..runtime.data.catalog import normalise_name
    from ..runtime.data.idx import FILES as IDX_FILES
    from ..runtime.data.idx import MIRRORS, SHA256

    name = normalise_name(dataset) if dataset else ""
    generated = generated_source(name)
    generated_table = f"{{{_literal(name)}: {name}}}" if generated else "{}"
    return _fill(TRAIN_TEMPLATE, {
        "TITLE": title,
        "VERSION": __version__,
        "CLASS": info.class_name,
        "CONFIG_FIELDS": _config_lines(config),
        "DATASET": _literal(str(dataset)) if dataset else "None",
        "FINAL": _literal(final),
        "GENERATED": generated,
        "GENERATED_TABLE": generated_table,
        "IDX_FILES": "(\n" + "".join(f"    {_literal(f)},\n" for f in IDX_FILES) + ")",
        "IDX_MIRRORS": _dict_literal({k: list(v) for k, v in MIRRORS.items()}),
        "IDX_SHA256": _dict_literal(SHA256),
    })


def generated_source(name: str) -> str:
    """The source of the function train.py makes a generated built-in with (named after it), or ""."""
    from ..runtime.data import catalog

    if name == "sine_forecast":
        return SINE_SOURCE
    if name == "token_classification":
        return TOKEN_SOURCE
    made = {"tabular_binary": (catalog.tabular_arrays, "binary"), "shapes": (catalog.shapes_arrays, "multiclass")}
    if name not in made:
        return ""
    function, task = made[name]
    return (inspect.getsource(function) + f"\n\ndef {name}() -> Data:\n    x, y = {function.__name__}()\n"
            f"    return Data(x, y, {_literal(task)})\n\n\n")


def requirements_source(dataset: str | None) -> str:
    """requirements.txt: what the bundle's files import, with scikit-learn and Pillow only when
    train.py's own data needs them (else as comments)."""
    from ..runtime.data import idx
    from ..runtime.data.catalog import is_builtin, normalise_name

    name = normalise_name(str(dataset)) if dataset else ""
    path = Path(str(dataset)).expanduser() if dataset and not is_builtin(str(dataset)) else None
    sklearn = name in SKLEARN_BUILTINS
    images = bool(path is not None and _is_dir(path) and not idx.find_files(path))
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
    return repr(value)


def _dict_literal(d: dict) -> str:
    lines = ["{"]
    for key, value in d.items():
        if isinstance(value, dict):
            lines.append(f"    {_literal(key)}: {{")
            lines += [f"        {_literal(k)}: {_literal(v)}," for k, v in value.items()]
            lines.append("    },")
        else:
            lines.append(f"    {_literal(key)}: [")
            lines += [f"        {_literal(v)}," for v in value]
            lines.append("    ],")
    return "\n".join(lines + ["}"])


def _fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        return values[match.group(1)]

    return re.sub(r"@@([A-Z_0-9]+)@@", replace, template)


TRAIN_TEMPLATE = r'''#!/usr/bin/env python3
"""Train @@TITLE@@ the way Deepwire does: alone, or on many processes with torchrun.

Written by Deepwire @@VERSION@@ next to model.py. Needs PyTorch and numpy (requirements.txt);
scikit-learn only for scikit-learn's datasets (digits, digits_images, iris, wine,
breast_cancer, diabetes; the train/validation/test split uses it when installed, else an
identical numpy copy of its algorithm); Pillow only for image folders; safetensors to read
and write .safetensors files (without it the trained weights are written as a .pt file).

    python train.py                              # CPU, or the first GPU
    python train.py --epochs 5 --data data.csv   # other data, fewer epochs
    python train.py --init weights.safetensors   # fine-tune the exported weights
    torchrun --nproc_per_node=4 train.py         # 4 processes: DistributedDataParallel

One process repeats the app's run: the same seeded split, initial weights and batch order,
the same loss, optimizer and schedule, and at the end the weights of the best validation
epoch. Under torchrun every process takes its share of each epoch (batch_size samples per
process and step; gradients are averaged), and process 0 alone writes the weights. The
result goes to trained.safetensors: weights.safetensors, the exported weights, stays as it is.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import math
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # model.py lies next to this script

from model import INPUT_DTYPES, INPUT_SHAPES, OUTPUT_SHAPES, @@CLASS@@  # noqa: E402

# ============================================================================ settings

@dataclass(frozen=True)
class Config:
    """The project's training settings when it was exported (Deepwire's TrainConfig)."""

@@CONFIG_FIELDS@@


CONFIG = Config()
DATASET = @@DATASET@@  # a built-in dataset's name or a path; --data replaces it
FINAL_ACTIVATION = @@FINAL@@  # the model ends in "softmax", "sigmoid" or neither (None)


# ============================================================================ data

@dataclass
class Data:
    """Samples in PyTorch layout, batch first: x is (N, *input shape), y is (N,) or (N, k).

    task: "multiclass", "binary" or "regression". x_test / y_test: a predefined test split."""

    x: np.ndarray
    y: np.ndarray
    task: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: int | None = None   # the number of classes, when the data says more than its labels


def load_data(spec: str, target: str | None = None) -> Data:
    """A built-in dataset by name, or a .csv / .npz file, an IDX folder or an image folder."""
    name = spec.strip().lower().replace("-", "_").replace(" ", "_")
    if name in SKLEARN_DATASETS:
        return load_sklearn(name)
    if name in GENERATED_DATASETS:
        return GENERATED_DATASETS[name]()
    if name in IDX_MIRRORS:
        return load_idx_builtin(name)
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join([*SKLEARN_DATASETS, *GENERATED_DATASETS, *IDX_MIRRORS])
        raise SystemExit(f"{spec!r} is neither a dataset this script knows ({known}) nor an existing file "
                         "or folder: pass --data")
    if path.is_dir():
        files = find_idx_files(path)
        return read_idx_set(files, path) if files else load_image_folder(path)
    if path.suffix.lower() == ".csv":
        return load_csv(path, target)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise SystemExit(f"{path.name}: use a .csv or .npz file, or a folder")


def classification(k: int) -> str:
    return "binary" if k == 2 else "multiclass"


# ---------------------------------------------------------------------------- scikit-learn built-ins

SKLEARN_DATASETS = {  # name: (sklearn.datasets loader, task, as 1x8x8 images)
    "digits": ("load_digits", "multiclass", False),
    "digits_images": ("load_digits", "multiclass", True),
    "iris": ("load_iris", "multiclass", False),
    "wine": ("load_wine", "multiclass", False),
    "breast_cancer": ("load_breast_cancer", "binary", False),
    "diabetes": ("load_diabetes", "regression", False),
}


def load_sklearn(name: str) -> Data:
    from sklearn import datasets

    loader, task, images = SKLEARN_DATASETS[name]
    bunch = getattr(datasets, loader)()
    x = np.asarray(bunch.data, dtype=np.float32)
    if images:
        x = x.reshape(len(x), 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.float32 if task == "regression" else np.int64)
    return Data(x, y, task)


@@GENERATED@@GENERATED_DATASETS = @@GENERATED_TABLE@@  # Deepwire's seeded synthetic datasets


# ---------------------------------------------------------------------------- IDX files (MNIST style)

IDX_FILES = @@IDX_FILES@@
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_MIRRORS = @@IDX_MIRRORS@@
IDX_SHA256 = @@IDX_SHA256@@


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The IDX files in `folder` by their standard name (gzipped or not, '-idx' or '.idx')."""
    found = {}
    for base in IDX_FILES:
        dotted = base.replace("-idx", ".idx")
        for candidate in (base, base + ".gz", dotted, dotted + ".gz"):
            if (folder / candidate).is_file():
                found[base] = folder / candidate
                break
    return found


def read_idx(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES or not 1 <= head[3] <= 4:
            raise SystemExit(f"{path.name} is not an IDX file")
        dims = tuple(int(d) for d in np.frombuffer(f.read(4 * head[3]), dtype=">u4"))
        body = f.read()
    return np.frombuffer(body, dtype=np.dtype(IDX_TYPES[head[2]]), count=math.prod(dims)).reshape(dims)


def read_idx_set(files: dict[str, Path], folder: Path, num_classes: int | None = None) -> Data:
    """Training images and labels, with the t10k files as the test split."""
    missing = [base for base in IDX_FILES if base not in files]
    if missing:
        raise SystemExit(f"{folder} lacks the IDX files {', '.join(missing)}")
    x, y, x_test, y_test = (read_idx(files[base]) for base in IDX_FILES)
    y, y_test = y.astype(np.int64), y_test.astype(np.int64)
    k = num_classes or max(int(y.max(initial=0)), int(y_test.max(initial=0))) + 1
    return Data(x.astype(np.float32), y, classification(max(k, 2)), x_test.astype(np.float32), y_test, k)


def deepwire_cache() -> Path:
    """Where Deepwire keeps downloads: $DEEPWIRE_CACHE_DIR, else $XDG_CACHE_HOME/deepwire, else ~/.cache/deepwire."""
    if os.environ.get("DEEPWIRE_CACHE_DIR"):
        return Path(os.environ["DEEPWIRE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "deepwire"


def load_idx_builtin(name: str) -> Data:
    """MNIST / Fashion-MNIST from Deepwire's folders, else downloaded (checksums checked)."""
    folders = [deepwire_cache() / "datasets" / name]
    if os.environ.get("DEEPWIRE_DATA_DIR"):
        folders.insert(0, Path(os.environ["DEEPWIRE_DATA_DIR"]).expanduser() / name)
    for folder in folders:
        files = find_idx_files(folder)
        if len(files) == len(IDX_FILES):
            return read_idx_set(files, folder, num_classes=10)
    download_idx(name, folders[-1])
    return read_idx_set(find_idx_files(folders[-1]), folders[-1], num_classes=10)


def download_idx(name: str, folder: Path) -> None:
    import hashlib
    import urllib.request

    folder.mkdir(parents=True, exist_ok=True)
    for base in IDX_FILES:
        if base in find_idx_files(folder):
            continue
        filename = base + ".gz"
        for url in IDX_MIRRORS[name]:
            try:
                with urllib.request.urlopen(url + filename, timeout=30) as response:
                    payload = response.read()
            except OSError as error:
                print(f"cannot download {url + filename}: {error}")
                continue
            if hashlib.sha256(payload).hexdigest() == IDX_SHA256[name][filename]:
                (folder / (filename + ".part")).write_bytes(payload)
                os.replace(folder / (filename + ".part"), folder / filename)
                break
            print(f"{url + filename}: wrong checksum")
        else:
            raise SystemExit(f"{name}: put the four IDX files into {folder}, or pass --data FOLDER")


# ---------------------------------------------------------------------------- CSV

MISSING = {"", "na", "n/a", "nan", "null"}


def load_csv(path: Path, target: str | None = None) -> Data:
    """A table with a header row. Numeric columns are features, text columns are one-hot
    encoded (sorted values). The target (default: the last column) is a class when it is text
    or holds at most 20 distinct whole numbers, else a value to regress."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if any(d in first for d in ",;\t") else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)]
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise SystemExit(f"{path.name}: every row needs {len(header)} values, like the header")
    t = len(header) - 1
    if target is not None and target in header:
        t = header.index(target)
    elif target is not None:
        folded = [i for i, h in enumerate(header) if h.lower() == target.strip().lower()]
        if len(folded) != 1:
            raise SystemExit(f"{path.name} has no column {target!r}")
        t = folded[0]
    columns = [[row[j].strip() for row in body] for j in range(len(header))]
    for name, column in zip(header, columns):
        if any(v.lower() in MISSING for v in column):
            raise SystemExit(f"{path.name}: column {name!r} has missing values; fill them in")

    features = []
    for j, column in enumerate(columns):
        if j == t:
            continue
        numbers = as_numbers(column)
        if numbers is not None:
            features.append(numbers[:, None])
            continue
        categories = {c: k for k, c in enumerate(sorted(set(column)))}
        onehot = np.zeros((len(column), len(categories)), dtype=np.float32)
        onehot[np.arange(len(column)), [categories[v] for v in column]] = 1.0
        features.append(onehot)
    x = np.concatenate(features, axis=1).astype(np.float32)

    labels = columns[t]
    numbers = as_numbers(labels)
    if numbers is None:
        classes = {c: k for k, c in enumerate(sorted(set(labels)))}
        y = np.array([classes[v] for v in labels], dtype=np.int64)
    elif np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)) and len(np.unique(numbers)) <= 20:
        classes = np.unique(numbers)
        y = np.searchsorted(classes, numbers).astype(np.int64)
    else:
        return Data(x, numbers.astype(np.float32), "regression")
    if len(classes) < 2:
        raise SystemExit(f"{path.name}: the target column has a single value")
    return Data(x, y, classification(len(classes)))


def as_numbers(column: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in column], dtype=np.float64)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- NPZ (Keras' layout)

def load_npz(path: Path) -> Data:
    """x_train, y_train and optionally x_test, y_test (x, y also accepted); never unpickled.
    Channels-last images become channels-first; integer (N, T) inputs are token ids; integer
    labels are classes, one-hot rows become class ids; float labels are regressed."""
    with np.load(path, allow_pickle=False) as z:
        xk = "x_train" if "x_train" in z.files else "x"
        yk = "y_train" if "y_train" in z.files else "y"
        if xk not in z.files or yk not in z.files:
            raise SystemExit(f"{path.name} needs arrays named x_train and y_train")
        x, y = z[xk], z[yk]
        has_test = "x_test" in z.files and "y_test" in z.files
        x_test, y_test = (z["x_test"], z["y_test"]) if has_test else (None, None)
    x, y = npz_inputs(x), npz_targets(y)
    if has_test:
        x_test, y_test = npz_inputs(x_test), npz_targets(y_test)
    if y.dtype.kind in "iu":
        classes = np.unique(y if y_test is None else np.concatenate([y, y_test]))
        y = np.searchsorted(classes, y).astype(np.int64)
        y_test = None if y_test is None else np.searchsorted(classes, y_test).astype(np.int64)
        return Data(x, y, classification(len(classes)), x_test, y_test)
    y_test = None if y_test is None else y_test.astype(np.float32)
    return Data(x, y.astype(np.float32), "regression", x_test, y_test)


def npz_inputs(a: np.ndarray) -> np.ndarray:
    if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    if a.dtype.kind in "iu" and a.dtype != np.uint8 and a.ndim == 2 and (a.size == 0 or a.min() >= 0):
        return a.astype(np.int64)
    return a.astype(np.float32)


def npz_targets(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2 and a.shape[1] > 1 and len(a) and np.isin(a, (0, 1)).all() and (a.sum(axis=1) == 1).all():
        a = a.argmax(axis=1).astype(np.int64)
    return a.astype(np.int64) if a.dtype.kind == "b" else a


# ---------------------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_image_folder(folder: Path) -> Data:
    """One subfolder of images per class (sorted names), resized to the model's input size;
    float32 pixels 0..255, (3, H, W) RGB or (1, H, W) grayscale as the model expects."""
    from PIL import Image

    shape = tuple(INPUT_SHAPES[0])
    size = (shape[2], shape[1]) if len(shape) == 3 else None   # PIL sizes are (width, height)
    mode = "L" if len(shape) == 3 and shape[0] == 1 else "RGB"
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(p, k) for k, sub in enumerate(classes) for p in sorted(sub.rglob("*"))
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    if len(classes) < 2 or not files:
        raise SystemExit(f"{folder} needs one subfolder of images per class (at least two)")
    images = []
    for p, _ in files:
        with Image.open(p) as im:
            im = im.convert(mode)
            size = size or im.size
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32)
        images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    y = np.array([k for _, k in files], dtype=np.int64)
    return Data(np.stack(images), y, classification(len(classes)))


# ============================================================================ split

@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split(data: Data, val_split: float, test_split: float, seed: int) -> Splits:
    """Deepwire's seeded split, stratified by class for classification. Fractions are of all
    samples; a predefined test split is kept and only validation is carved from the rest."""
    n = len(data.x)
    idx = np.arange(n)
    stratify = data.task in ("multiclass", "binary")
    has_test = data.x_test is not None and data.y_test is not None
    if has_test:
        n_test, rest, test_idx = 0, idx, idx[:0]
    else:
        n_test = int(round(test_split * n))
        rest, test_idx = carve(idx, data.y, n_test, stratify, seed)
    n_val = int(round(val_split * n))
    if n_val + n_test >= n and n_val + n_test > 0:
        raise SystemExit(f"{n} samples are too few to split off validation and test data")
    train_idx, val_idx = carve(rest, data.y, n_val, stratify, seed + 1)
    if has_test:
        x_test, y_test = np.array(data.x_test), np.array(data.y_test)
    else:
        x_test, y_test = data.x[test_idx], data.y[test_idx]
    return Splits(data.x[train_idx], data.y[train_idx], data.x[val_idx], data.y[val_idx], x_test, y_test)


def carve(idx: np.ndarray, y: np.ndarray, count: int, stratify: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) with `count` carved rows; stratified unless a class is too small for it."""
    if count <= 0:
        return idx, idx[:0]
    if stratify:
        try:
            return train_test_split(idx, count, seed, y[idx])
        except ValueError:
            pass
    return train_test_split(idx, count, seed)


def train_test_split(idx, count, seed, stratify=None):
    """scikit-learn's train_test_split(idx, test_size=count, random_state=seed, stratify=...)."""
    try:
        from sklearn.model_selection import train_test_split as sklearn_split
    except ImportError:
        return numpy_train_test_split(idx, count, seed, stratify)
    kept, carved = sklearn_split(idx, test_size=count, random_state=seed, stratify=stratify)
    return kept, carved


def numpy_train_test_split(idx, count, seed, stratify=None):
    """The same split as scikit-learn's ShuffleSplit / StratifiedShuffleSplit, in numpy."""
    n = len(idx)
    if not 0 < count < n:
        raise ValueError(f"cannot carve {count} of {n} samples")
    n_train = n - count
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return idx[permutation[count:]], idx[permutation[:count]]
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    if class_counts.min() < 2 or n_train < len(classes) or count < len(classes):
        raise ValueError("too few samples per class to stratify")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = approximate_mode(class_counts, n_train, rng)
    t_i = approximate_mode(class_counts - n_i, count, rng)
    train, test = [], []
    for i in range(len(classes)):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[: n_i[i]])
        test.extend(members[n_i[i]: n_i[i] + t_i[i]])
    return idx[rng.permutation(train)], idx[rng.permutation(test)]


def approximate_mode(class_counts, n_draws, rng):
    """How many of `n_draws` samples each class gets (ties broken at random)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


# ============================================================================ training pieces

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(spec: str) -> torch.device:
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(spec)


def to_tensors(x: np.ndarray, y: np.ndarray, task: str, device: torch.device):
    xt = torch.as_tensor(np.ascontiguousarray(x))
    xt = xt.long() if xt.dtype in (torch.int32, torch.int64) else xt.float()
    yt = torch.as_tensor(np.ascontiguousarray(y))
    if task == "multiclass":
        yt = yt.long()
    else:
        yt = yt.float()
        if yt.dim() == 1:
            yt = yt.unsqueeze(1)
    return xt.to(device), yt.to(device)


EPS = 1e-7


def make_loss(setting: str, task: str, final_activation: str | None):
    """The loss for the task; a final Softmax or Sigmoid in the model is never applied twice."""
    if setting in ("mse", "mae"):
        return F.l1_loss if setting == "mae" else F.mse_loss
    task = {"cross_entropy": "multiclass", "binary_cross_entropy": "binary"}.get(setting, task)
    if task == "multiclass":
        if final_activation == "softmax":
            return lambda probs, target: F.nll_loss(torch.log(probs.clamp(EPS, 1.0)), target)
        return F.cross_entropy
    if task == "binary":
        if final_activation == "sigmoid":
            return lambda probs, target: F.binary_cross_entropy(probs.clamp(EPS, 1 - EPS), target.to(probs.dtype))
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return F.mse_loss


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)


def make_scheduler(config: Config, optimizer, steps_per_epoch: int):
    """(scheduler, when it steps: 'batch', 'epoch' or 'plateau')."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), "epoch"
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs), "epoch"
    if config.schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=max(steps_per_epoch, 1)), "batch"
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma,
                                                          patience=config.plateau_patience), "plateau"
    return None, None


@torch.no_grad()
def fit_normalizers(model: nn.Module, x: torch.Tensor, batch_size: int = 4096, limit: int = 100_000) -> None:
    """Fit every Normalization block on the training data that reaches it, in order."""
    norms = [m for m in model.modules() if type(m).__name__ == "Normalization" and hasattr(m, "fit")]
    was_training = model.training
    model.eval()
    sample = x[:limit]
    for norm in norms:
        seen: list[torch.Tensor] = []
        hook = norm.register_forward_pre_hook(lambda mod, args, out=seen: out.append(args[0].detach()))
        try:
            for start in range(0, len(sample), batch_size):
                model(sample[start:start + batch_size])
        finally:
            hook.remove()
        norm.fit(torch.cat(seen).float())
    model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, loss_fn, world: int, rank: int,
             batch_size: int = 1024) -> dict:
    """Loss and accuracy (classification) or mean absolute error (regression), in evaluation
    mode. Each process takes every world-th sample; the sums are added over processes."""
    was_training = model.training
    model.eval()
    x, y = x[rank::world], y[rank::world]
    loss_sum = torch.zeros((), device=x.device)
    score = torch.zeros((), device=x.device, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model(xb).float()
        loss_sum += loss_fn(out, yb) * len(xb)
        if task == "multiclass":
            score += (out.argmax(dim=-1) == yb).sum()
        elif task == "binary":
            threshold = 0.5 if FINAL_ACTIVATION == "sigmoid" else 0.0
            score += ((out > threshold).long().view(-1) == yb.view(-1).long()).sum()
        else:
            score += (out - yb.view_as(out)).abs().sum()
    model.train(was_training)
    loss_sum, count, score = all_sum([loss_sum, len(x), score], x.device)
    if count == 0:
        return {}
    return {"loss": loss_sum / count, "mae" if task == "regression" else "accuracy": score / count}


# ============================================================================ distributed

def setup_processes(device_spec: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Started by torchrun (which sets RANK and WORLD_SIZE), this
    joins the process group, NCCL on GPUs and gloo on CPUs; each process takes the GPU of its
    LOCAL_RANK. Started alone, it is process 0 of 1."""
    device = resolve_device(device_spec)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise SystemExit("distributed training runs on CUDA GPUs or on CPUs: pass --device cuda or --device cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def all_sum(values: list, device: torch.device) -> list[float]:
    """The values (numbers or 0-d tensors) summed over all processes."""
    total = torch.stack([torch.as_tensor(v, device=device).double() for v in values])
    if dist.is_initialized():
        dist.all_reduce(total)
    return total.tolist()


# ============================================================================ the run

def check_fits(data: Data) -> None:
    """Stop with a clear message when the data does not fit the model."""
    if len(INPUT_SHAPES) != 1 or len(OUTPUT_SHAPES) != 1:
        raise SystemExit(f"train.py trains models with one input and one output; this one has "
                         f"{len(INPUT_SHAPES)} and {len(OUTPUT_SHAPES)}")
    shape, out = tuple(data.x.shape[1:]), tuple(OUTPUT_SHAPES[0])
    if shape != tuple(INPUT_SHAPES[0]):
        raise SystemExit(f"the data's samples have shape {shape}; the model expects {tuple(INPUT_SHAPES[0])}")
    if np.issubdtype(data.x.dtype, np.integer) != (INPUT_DTYPES[0] == "int64"):
        raise SystemExit(f"the model's input takes {INPUT_DTYPES[0]} values; the data holds {data.x.dtype}")
    if data.task == "multiclass":
        classes = data.classes or max(int(a.max()) for a in (data.y, data.y_test) if a is not None and len(a)) + 1
        if out != (classes,):
            raise SystemExit(f"the data has {classes} classes; the model outputs {out}")
    elif data.task == "binary" and out not in ((1,), (2,)):
        raise SystemExit(f"the data has 2 classes; the model outputs {out}: end with 1 (sigmoid) or 2 units")
    elif data.task == "regression" and out != (tuple(data.y.shape[1:]) or (1,)):
        raise SystemExit(f"the data's targets have shape {tuple(data.y.shape[1:]) or (1,)}; the model outputs {out}")


def train(config: Config, args, rank: int, world: int, device: torch.device) -> None:
    log = print if rank == 0 else (lambda *a, **k: None)
    spec = args.data or DATASET
    if not spec:
        raise SystemExit("which data? pass --data with a built-in name, a .csv or .npz file, or a folder")
    data = load_data(spec, args.target)
    check_fits(data)
    task = "multiclass" if data.task == "binary" and tuple(OUTPUT_SHAPES[0]) == (2,) else data.task
    loss_fn = make_loss(config.loss, task, FINAL_ACTIVATION)

    # From here on, the app's order: seed, build the model, split, fit the normalisation.
    seed_everything(config.seed)
    model = @@CLASS@@()
    parts = split(data, config.val_split, config.test_split, config.seed)
    x_train, y_train = to_tensors(parts.x_train, parts.y_train, task, device)
    x_val, y_val = to_tensors(parts.x_val, parts.y_val, task, device)
    x_test, y_test = to_tensors(parts.x_test, parts.y_test, task, device)
    if args.init:
        model.load_state_dict(read_weights(args.init))
    model.to(device)
    if not args.init:
        fit_normalizers(model, x_train)
    net = model
    if dist.is_initialized():
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if world > 1:
        torch.manual_seed(config.seed + rank)   # each process its own dropout and augmentation

    # Each process takes every world-th position of the epoch's shuffled order (one process:
    # all of it). The order comes from one seeded generator, the same in every process.
    n, bs = len(x_train), config.batch_size
    positions = torch.tensor(list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)),
                             dtype=torch.long, device=device)
    steps_per_epoch = math.ceil(len(positions) / bs)
    optimizer = make_optimizer(config, model.parameters())
    scheduler, when = make_scheduler(config, optimizer, steps_per_epoch)
    use_amp = bool(config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    log(f"{spec}: {len(x_train)} training, {len(x_val)} validation, {len(x_test)} test samples; "
        f"{world} process{'es' if world > 1 else ''} on {device}")

    best_loss, best_epoch, best_state, bad_epochs = math.inf, None, None, 0
    stopped_early = False
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=generator).to(device)[positions]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for b in range(steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = x_train[idx], y_train[idx]
            with torch.autocast(device.type, enabled=use_amp):
                out = net(xb)
            loss = loss_fn(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
            if when == "batch":
                scheduler.step()
            loss_sum += loss.detach() * len(idx)
            if task == "multiclass":
                correct += (out.argmax(dim=-1) == yb).sum()
        loss_total, seen, correct_total = all_sum([loss_sum, len(order), correct], device)
        record = {"loss": loss_total / max(seen, 1)}
        if task == "multiclass":
            record["accuracy"] = correct_total / max(seen, 1)
        val = evaluate(model, x_val, y_val, task, loss_fn, world, rank)
        record.update({f"val_{k}": v for k, v in val.items()})
        monitored = record.get("val_loss", record["loss"])
        if not math.isfinite(monitored):
            raise SystemExit(f"the loss became {monitored} at epoch {epoch}: lower the learning rate")
        if monitored < best_loss:
            best_loss, best_epoch, bad_epochs = monitored, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if when == "epoch":
            scheduler.step()
        elif when == "plateau":
            scheduler.step(monitored)
        log(f"epoch {epoch}/{config.epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in record.items())
            + f"  {time.perf_counter() - started:.2f} s", flush=True)
        if config.early_stopping and bad_epochs >= config.patience:
            stopped_early = True
            log(f"early stopping: no better validation loss for {config.patience} epochs")
            break

    if best_state is not None and (config.restore_best or stopped_early):
        model.load_state_dict(best_state)
        log(f"restored the weights of epoch {best_epoch} (the best validation loss, {best_loss:.4f})")
    test = evaluate(model, x_test, y_test, task, loss_fn, world, rank)
    if test:
        log("test  " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    if rank == 0:
        out = save_weights(model, Path(args.out) if args.out else HERE / "trained.safetensors")
        log(f"saved the trained weights to {out}")
    if dist.is_initialized():   # everyone waits until the weights are written
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
    print(f"process {rank + 1}/{world} finished", flush=True)


def read_weights(path: str) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def save_weights(model: nn.Module, path: Path) -> Path:
    """The state dict (weights and buffers) as safetensors; torch.save's .pt without that package."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file, path = None, path.with_suffix(".pt")
    partial = path.with_name(path.name + ".part")
    if save_file is not None:
        save_file(state, str(partial))
    else:
        torch.save(state, partial)
    os.replace(partial, path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, help=f"epochs to train (default {CONFIG.epochs})")
    parser.add_argument("--device", help=f"auto, cpu, cuda, cuda:N or mps (default {CONFIG.device}); under "
                                         "torchrun each process takes the GPU of its LOCAL_RANK")
    parser.add_argument("--data", help=f"a built-in dataset, a .csv or .npz file, or a folder (default {DATASET})")
    parser.add_argument("--target", help="CSV: the column to predict (default: the last)")
    parser.add_argument("--init", help="start from these weights instead of new ones, e.g. weights.safetensors")
    parser.add_argument("--out", help="where to write the trained weights (default: trained.safetensors here)")
    args = parser.parse_args(argv)
    config = CONFIG if args.epochs is None else replace(CONFIG, epochs=args.epochs)
    if config.epochs < 1:
        parser.error("--epochs must be at least 1")
    rank, world, device = setup_processes(args.device or config.device)
    try:
        train(config, args, rank, world, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''

SINE_SOURCE = r'''def sine_forecast() -> Data:
    """Windows of 50 steps of 8 noisy sine channels; target: channel 0 one step later."""
    rng = np.random.default_rng(20240501)
    n, t, c = 2000, 50, 8
    periods = np.array([16.0, 16.0, 9.0, 23.0, 31.0, 12.5, 40.0, 7.0])
    freq = np.broadcast_to(1.0 / periods, (n, c)).copy()
    freq[:, :2] *= rng.uniform(0.85, 1.15, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, c))
    phase[:, 1] = phase[:, 0] + np.pi / 2           # channel 1: the cosine of channel 0
    amp = rng.uniform(0.5, 1.5, size=(n, c))
    amp[:, 1] = amp[:, 0]
    steps = np.arange(t + 1, dtype=np.float64)
    clean = amp[:, None, :] * np.sin(2 * np.pi * freq[:, None, :] * steps[None, :, None] + phase[:, None, :])
    noisy = clean + rng.normal(0.0, 0.1, size=clean.shape)
    return Data(noisy[:, :t, :].astype(np.float32), noisy[:, t, 0].astype(np.float32), "regression")


'''

TOKEN_SOURCE = r'''def token_classification() -> Data:
    """Sequences of 64 token ids; class 1 when a marker of set A (ids 1..10) occurs more often
    than a marker of set B (ids 11..20). The other tokens are random ids 21..999."""
    rng = np.random.default_rng(20240502)
    n, length, vocab = 4000, 64, 1000
    x = rng.integers(21, vocab, size=(n, length), dtype=np.int64)
    count_a = rng.integers(1, 9, size=n)
    count_b = rng.integers(1, 8, size=n)
    count_b = np.where(count_b >= count_a, count_b + 1, count_b)   # 1..8, never equal to count_a
    markers_a = np.arange(1, 11)
    markers_b = np.arange(11, 21)
    order = np.argsort(rng.random((n, length)), axis=1)            # random distinct positions per row
    pick_a = rng.integers(0, len(markers_a), size=(n, 8))
    pick_b = rng.integers(0, len(markers_b), size=(n, 8))
    for i in range(n):
        a, b = count_a[i], count_b[i]
        x[i, order[i, :a]] = markers_a[pick_a[i, :a]]
        x[i, order[i, a:a + b]] = markers_b[pick_b[i, :b]]
    return Data(x, (count_a > count_b).astype(np.int64), "binary")


'''


# ----------------------------------------------------------------------------- test_export.py

TEST_SOURCE = '''"""Checks that model.py with weights.safetensors reproduces the outputs Deepwire computed at
export (reference.npz): exactly, on the CPU, with the same dtype.

    python test_export.py        or        pytest test_export.py

Another CPU or PyTorch version may differ in the last bits: allow that with, e.g.,
EXPORT_TEST_ATOL=1e-6.
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model as exported  # noqa: E402

ATOL = float(os.environ.get("EXPORT_TEST_ATOL", "0"))


def test_exported_model_reproduces_the_reference_outputs():
    net = exported.load(HERE / "weights.safetensors", device="cpu")
    with np.load(HERE / "reference.npz", allow_pickle=False) as ref:
        inputs = [torch.from_numpy(ref[f"input_{i}"]) for i in range(len(exported.INPUT_SHAPES))]
        expected = [torch.from_numpy(ref[f"output_{i}"]) for i in range(len(exported.OUTPUT_SHAPES))]
    with torch.no_grad():
        outputs = net(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == len(expected)
    for i, (got, want) in enumerate(zip(outputs, expected)):
        assert got.dtype == want.dtype, f"output {i}: dtype {got.dtype}, expected {want.dtype}"
        assert got.shape == want.shape, f"output {i}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        same = torch.equal(got, want) or torch.allclose(got, want, rtol=0, atol=ATOL, equal_nan=True)
        if not same:
            gap = (got - want).abs().nan_to_num(nan=float("inf")).max().item()
            raise AssertionError(f"output {i} differs from the reference by up to {gap:.3g} "
                                 f"(allowed {ATOL:g}; set EXPORT_TEST_ATOL to allow more)")


if __name__ == "__main__":
    test_exported_model_reproduces_the_reference_outputs()
    print("ok: the exported model reproduces the reference outputs")
'''


# ----------------------------------------------------------------------------- README.md

README_TEMPLATE = '''# @@TITLE@@

Exported by Deepwire @@VERSION@@: the PyTorch module the app trained, its weights, and a script
to train it again, alone or on many processes. @@TRAINED@@

| file | what it is |
| --- | --- |
| `model.py` | the model: `@@CLASS@@`, exactly the source the app trained, plus `load()` |
| `weights.safetensors` | the weights and buffers (normalisation statistics included) |
| `train.py` | a standalone training script with the project's settings at the top |
| `reference.npz` | sample inputs and the app's outputs for them |
| `test_export.py` | checks that `model.py` + weights reproduce those outputs exactly |
| `requirements.txt` | the packages these files need, for this bundle's data |

What each file needs:

- `model.py`: PyTorch alone, to import it and run the model; `load()` also needs safetensors.
- `test_export.py`: PyTorch, safetensors and numpy (and pytest, to run it under pytest).
- `train.py`: PyTorch and numpy; safetensors for `.safetensors` weights; scikit-learn only for
  scikit-learn's datasets; Pillow only for folders of images.

`pip install -r requirements.txt` installs PyTorch, safetensors and numpy@@EXTRA_NEEDS@@.

Inputs (without the batch dimension): @@INPUTS@@. Outputs: @@OUTPUTS@@.

## Load and predict

```python
import torch
from model import load

model = load("weights.safetensors")       # evaluation mode, on the CPU
@@EXAMPLE@@
with torch.no_grad():
    y = model(@@ARGS@@)@@OUTPUT_NOTE@@
```

`load(path, device="cuda")` puts it on a GPU. Without `load()`: `model = @@CLASS@@()` and
`model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))`
(`pip install safetensors`).

Check the export: `python test_export.py` (or `pytest test_export.py`).

## Fine-tune

In your own loop: `model = load(); model.train()`, then any optimizer over `model.parameters()`.
Or with the script, starting from the exported weights instead of new ones:

```bash
python train.py --init weights.safetensors --epochs 3
```

## Train

```bash
python train.py                    # the project's settings and data (@@DATASET@@)
python train.py --data other.csv --epochs 20 --device cuda
```

The settings (optimizer, learning rate, schedule, loss, epochs, batch size, seed, splits) are the
`Config` at the top of `train.py`. Data: @@GENERATED_DATA@@a scikit-learn built-in (digits,
digits_images, iris, wine, breast_cancer, diabetes), MNIST / Fashion-MNIST, a `.csv` (`--target
COLUMN`, default the last), a `.npz` (`x_train`, `y_train`, optionally `x_test`, `y_test`), a folder
of IDX files, or a folder with one subfolder of images per class. One process repeats the app's
run: same split, same initial weights, same batches, same result. The trained weights go to
`trained.safetensors` (`--out` to choose); `weights.safetensors` is never overwritten.

Needs PyTorch and numpy; scikit-learn only for scikit-learn's datasets (`pip install
scikit-learn`); Pillow only for image folders (`pip install pillow`); safetensors to read and
write `.safetensors` (without it a `.pt` file is written).

## Train on many processes: torchrun

```bash
torchrun --nproc_per_node=4 train.py                 # 4 GPUs (NCCL), or 4 CPU processes (gloo)
```

Each process trains on its share of every epoch (`batch_size` samples per process and step, so
the global batch is `batch_size` x processes; raise the learning rate to match if you like),
gradients are averaged by `DistributedDataParallel`, metrics are summed over processes, and only
process 0 writes `trained.safetensors`.

Several machines: run the same command on each, with torchrun's rendezvous flags:

```bash
# on every machine (HOST: one of them, reachable by the others)
torchrun --nnodes=2 --nproc_per_node=4 --rdzv_id=run1 --rdzv_backend=c10d \\
         --rdzv_endpoint=HOST:29500 train.py
# or with fixed ranks
torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --master_addr=HOST --master_port=29500 train.py
torchrun --nnodes=2 --node_rank=1 --nproc_per_node=4 --master_addr=HOST --master_port=29500 train.py
```

Every machine needs this folder and the data at the same path.
'''


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
    return _fill(README_TEMPLATE, {
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
        "GENERATED_DATA": (f"this bundle's own generated data (`{name}`, made with numpy), " if generated_source(name)
                           else ""),
    })


def _display(text: str) -> str:
    """A dataset name or path for the README: printable, no Markdown code fences."""
    cleaned = "".join(ch if ch.isprintable() and ch not in "`|<>" else "?" for ch in str(text))
    return f"`{cleaned[:200]}`"
