"""The project file: one zip holding the graph, training settings, trained weights and run history.

Members: project.json (format, versions, dataset), graph.json (engine.graph's JSON),
config.json (TrainConfig), weights.safetensors (trained weights and buffers, normalisation
statistics included), history.json (runs with metrics per epoch), checkpoints.safetensors (the
weights of the runs' epochs, to restore one: tensors named "run<id>/epoch<n>/<name>", at most
CHECKPOINT_BUDGET bytes, newest runs first). Written atomically and read without pickle:
weights are safetensors, everything else JSON.

Memory: safetensors members are streamed between the zip and the tensors in both directions, so
saving or loading a project holds its weights once (no serialised copy beside them), and
`load_project_graph` (what `deepwire check` reads) reads project.json and graph.json only.
Numbers JSON cannot hold (inf, nan) in the run history are stored as null.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from . import __version__
from .fileio import atomic_writer
from .graph import FormatError, Graph
from .runtime.settings import ConfigError, TrainConfig

PROJECT_FORMAT = "deepwire-project"
PROJECT_VERSION = 1
SUFFIX = ".deepwire"
MEMBERS = {"project.json", "graph.json", "config.json", "weights.safetensors", "history.json",
           "checkpoints.safetensors", "start.safetensors"}
# Epoch weights a project keeps (in memory and in its file): enough for every epoch of the
# tutorials' models over many runs, bounded for big ones (whose oldest runs and epochs go first).
CHECKPOINT_BUDGET = 64 * 2**20
MAX_MEMBER = 4 * 2**30            # weights.safetensors
MAX_CHECKPOINTS = 16 * CHECKPOINT_BUDGET   # checkpoints.safetensors (larger: noted and not read)
MAX_JSON = 64 * 2**20             # history.json (larger: noted and not read)
MAX_SMALL_JSON = 64 * 2**20       # graph.json (a graph file's limit), and members this version does not read
MAX_META = 2**20                  # project.json, config.json (a few hundred bytes when Deepwire writes them)
MAX_ENTRIES = 64                  # members in one project zip
LIMITS = {"weights.safetensors": MAX_MEMBER, "start.safetensors": MAX_MEMBER,
          "checkpoints.safetensors": MAX_CHECKPOINTS, "history.json": MAX_JSON, "project.json": MAX_META,
          "config.json": MAX_META}
# What the members a project reads may expand to in all, as the zip declares it (members it
# does not read are not counted). Read, a JSON member takes up to ~12 times its size as Python
# objects; tensors take their size: see docs/FORMAT.md for the resulting bound on memory.
MAX_TOTAL = 2 * MAX_MEMBER + MAX_CHECKPOINTS + MAX_JSON + MAX_SMALL_JSON + 2 * MAX_META
_CHUNK = 1 << 20                  # bytes per read or write between the zip and memory
# safetensors' dtype names (those this torch has)
_DTYPES = {name: getattr(torch, attr) for name, attr in (
    ("F64", "float64"), ("F32", "float32"), ("F16", "float16"), ("BF16", "bfloat16"), ("I64", "int64"),
    ("I32", "int32"), ("I16", "int16"), ("I8", "int8"), ("U8", "uint8"), ("BOOL", "bool"),
    ("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"), ("U32", "uint32"),
    ("U64", "uint64"), ("C64", "complex64")) if hasattr(torch, attr)}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MAX_TENSOR_HEADER = 100_000_000  # safetensors' own limit on its JSON header
_CHECKPOINT_KEY = re.compile(r"run(\d{1,9})/epoch(\d{1,9})/(.+)")
# Names and first bytes that mark a Python pickle (torch.save, joblib, pickle.dump): never loaded.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".bin", ".dill")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.+ -]{0,127}(/[A-Za-z0-9_.+-][A-Za-z0-9_.+ -]{0,127}){0,7}/?")


@dataclass
class Project:
    graph: Graph
    config: TrainConfig = field(default_factory=TrainConfig)
    weights: dict[str, torch.Tensor] | None = None
    runs: list[dict] = field(default_factory=list)
    dataset: str | None = None
    # How an imported dataset is read: {"target": CSV column, "image_size": [h, w], "grayscale": bool}
    dataset_options: dict = field(default_factory=dict)
    # the weights a run set to start_from "weights" starts from (loaded from a file: fine-tuning), and
    # where they came from ("resnet18.safetensors: 120 of 122 tensors"); kept apart from `weights`,
    # which each run replaces, so every fine-tuning run starts from the same place
    start_weights: dict[str, torch.Tensor] | None = None
    start_source: str = ""
    # run id -> epoch -> weights of that epoch (see keep_checkpoints)
    checkpoints: dict[int, dict[int, dict[str, torch.Tensor]]] = field(default_factory=dict, compare=False)
    # What load_project read but did not use or had to change (unknown members, a device this
    # machine lacks), one sentence each, for the caller to show. Never saved.
    notes: list[str] = field(default_factory=list, compare=False)

    @property
    def trained(self) -> bool:
        return bool(self.weights)

    def keep_checkpoints(self, run_id: int, checkpoints: dict[int, dict], budget: int = CHECKPOINT_BUDGET) -> None:
        """Hold a run's epoch weights; then drop what exceeds `budget` bytes over all runs: the
        newest run first, and within a run its best epoch (from `runs`), its last, then the later ones."""
        self.checkpoints[int(run_id)] = {int(e): dict(state) for e, state in checkpoints.items()}
        best = {r["id"]: r.get("best_epoch") for r in self.runs if isinstance(r, dict) and isinstance(r.get("id"), int)}
        used = 0
        for run in sorted(self.checkpoints, reverse=True):
            epochs = self.checkpoints[run]
            order = sorted(epochs, reverse=True)
            if best.get(run) in epochs:
                order.remove(best[run])
                order.insert(0, best[run])
            for epoch in order:
                size = sum(t.numel() * t.element_size() for t in epochs[epoch].values() if hasattr(t, "numel"))
                if used + size > budget:
                    del epochs[epoch]
                else:
                    used += size
            if not epochs:
                del self.checkpoints[run]

    def next_run_id(self) -> int:
        """The id the next run gets, the one rule for the designer and the CLI: one more than the
        highest id recorded (1 for the first run)."""
        return max((r["id"] for r in self.runs if isinstance(r, dict) and type(r.get("id")) is int), default=0) + 1

    def record_run(self, result, *, config: TrainConfig, dataset: str | None, started_at: str,
                   options: dict | None = None, dataset_name: str = "", batch_losses=(), batches_per_epoch: int = 0,
                   apply_weights: bool = True) -> dict:
        """Record a finished run (a training.TrainResult), the one way the designer and the CLI do it:
        the run record (id: next_run_id; the data, settings, task, class names, summary and its
        batch losses averaged down to MAX_SAVED_BATCH_POINTS) is added to `runs`, its epochs' weights
        are kept within the budget (keep_checkpoints), and the project takes the run's settings and
        data, and its weights unless apply_weights is False (the graph changed during the run).
        Returns the record."""
        losses = list(batch_losses)
        run_id = self.next_run_id()
        run = {"id": run_id, "started_at": started_at, "dataset": dataset or "", "dataset_name": dataset_name or "",
               "config": config.to_dict(), "task": result.task, "class_names": result.class_names,
               **result.summary(), "batch_losses": downsample(losses), "batches_per_epoch": int(batches_per_epoch)}
        if len(losses) > MAX_SAVED_BATCH_POINTS:
            run["batch_losses_downsampled_from"] = len(losses)
        self.runs.append(run)
        self.keep_checkpoints(run_id, result.checkpoints or {})     # after the record: it names the best epoch
        self.config, self.dataset = config, dataset
        if options is not None:
            self.dataset_options = dict(options)
        if apply_weights:
            self.weights = result.state_dict
        return run


MAX_SAVED_BATCH_POINTS = 2000     # batch losses kept per run in the project file (averaged down)


def downsample(values: list[float], limit: int = MAX_SAVED_BATCH_POINTS) -> list[float]:
    """At most `limit` points, each the mean of its stretch, so the saved curve keeps its shape."""
    if len(values) <= limit:
        return [float(v) for v in values]
    import numpy as np

    edges = np.linspace(0, len(values), limit + 1).astype(int)
    sums = np.add.reduceat(np.asarray(values, dtype=np.float64), edges[:-1])
    return (sums / np.diff(edges)).tolist()


def is_project_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def save_project(path: str | os.PathLike, project: Project) -> None:
    """Write the project atomically: the old file or the new one is always whole. The weights go
    from the tensors straight into the file (no copy of them in memory); numbers JSON cannot hold
    (inf, nan: a run whose loss overflowed) are written as null, so a finished run always saves."""
    meta = {"format": PROJECT_FORMAT, "format_version": PROJECT_VERSION, "app_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset": project.dataset,
            "dataset_options": dataset_options(project.dataset_options),
            "trained": project.trained, "start_source": project.start_source}
    with atomic_writer(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", json.dumps(meta, indent=2))
        zf.writestr("graph.json", project.graph.to_json())
        zf.writestr("config.json", _json_text(project.config.to_dict(), indent=2))
        zf.writestr("history.json", _json_text(project.runs, indent=1))
        if project.weights:
            _write_tensors(zf, "weights.safetensors", project.weights)
        if project.start_weights:
            _write_tensors(zf, "start.safetensors", project.start_weights)
        if project.checkpoints:
            _write_tensors(zf, "checkpoints.safetensors",
                           {f"run{run}/epoch{epoch}/{name}": t for run, epochs in project.checkpoints.items()
                            for epoch, state in epochs.items() for name, t in state.items()})


def load_project(path: str | os.PathLike, *, weights: bool = True) -> Project:
    """Read a project file. Raises FormatError (one clear line) on anything unreadable or unsafe.

    Nothing in the file is executed: members are JSON and safetensors only. Refused: member
    names that are absolute, contain `..` or odd characters, symlinks, encrypted members,
    pickles, more than MAX_ENTRIES members, and sizes over the limits, checked both on the
    sizes the zip declares and on the bytes it really expands to (a zip bomb).

    What costs only itself is not refused but noted in Project.notes: a training setting this
    version cannot use (it falls back to its default), damaged epoch weights, unknown members.
    Trained weights holding NaN or infinite values load with a note naming the first tensor.

    weights=False reads neither weights.safetensors nor checkpoints.safetensors (only their
    first bytes, for the pickle check): for callers that need the graph, settings or history;
    such a Project must not be saved back over its file (its weights would be lost)."""
    path = Path(path)
    notes: list[str] = []
    with _open_zip(path) as zf:
        infos = _checked_members(zf, path, notes)
        meta, graph = _graph(zf, infos, path)
        config = TrainConfig()
        if "config.json" in infos:
            config = _config(_json(zf, infos["config.json"], path, lenient=True), path, notes)
        runs = _history(zf, infos["history.json"], path) if "history.json" in infos else []
        state, checkpoints, start = None, {}, None
        if weights:
            if "weights.safetensors" in infos:
                state = _read_tensors(zf, infos["weights.safetensors"], path)
                _note_non_finite(state, path, notes)
            if "start.safetensors" in infos:
                start = _read_tensors(zf, infos["start.safetensors"], path)
            if "checkpoints.safetensors" in infos:
                checkpoints = _checkpoints(zf, infos["checkpoints.safetensors"], path, notes)
        else:
            for name in ("weights.safetensors", "checkpoints.safetensors", "start.safetensors"):
                if name in infos:
                    _refuse_pickle(zf, infos[name], path)
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), str) else None
    source = meta.get("start_source") if isinstance(meta.get("start_source"), str) else ""
    options = dataset_options(meta.get("dataset_options"))
    return Project(graph=graph, config=config, weights=state, runs=runs, checkpoints=checkpoints, dataset=dataset,
                   dataset_options=options, notes=notes, start_weights=start, start_source=source[:300])


def load_project_graph(path: str | os.PathLike) -> Graph:
    """Only the graph of a project file (what `deepwire check`, `summary` and `code` need): the
    archive is checked as load_project checks it (names, sizes, pickles), project.json and
    graph.json are read, and nothing else is: the weights are never decompressed."""
    path = Path(path)
    with _open_zip(path) as zf:
        infos = _checked_members(zf, path, [])
        _meta, graph = _graph(zf, infos, path)
        for name in ("weights.safetensors", "checkpoints.safetensors", "start.safetensors"):
            if name in infos:
                _refuse_pickle(zf, infos[name], path)
    return graph


MAX_GRAPH_BYTES = 64 * 1024 * 1024    # a graph file (JSON); a project file is as large as its weights


def read_graph(path: str | os.PathLike) -> Graph:
    """Load a graph file (or the graph of a project file). Raises FormatError with one clear line
    on anything unreadable: only regular files are read, and never more than MAX_GRAPH_BYTES."""
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise FormatError(f"{path} is a folder, not a graph file")
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{path.name} is not a regular file (a device, pipe or socket); choose a graph file")
        with open(path, "rb") as f:
            head = f.read(2)
            if head == b"PK":       # a project file: its size is its weights', checked member by member
                project = True
            else:
                project = False
                if st.st_size > MAX_GRAPH_BYTES:
                    raise FormatError(f"{path.name} is {st.st_size // 2**20} MiB; a graph file is at most "
                                      f"{MAX_GRAPH_BYTES // 2**20} MiB")
                raw = head + f.read(MAX_GRAPH_BYTES + 1 - len(head))
    except FormatError:
        raise
    except IsADirectoryError:
        raise FormatError(f"{path} is a folder, not a graph file") from None
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    if project:   # only the graph: the weights, settings and history are not read (see load_project_graph)
        return load_project_graph(path)
    if len(raw) > MAX_GRAPH_BYTES:
        raise FormatError(f"{path.name} grew past {MAX_GRAPH_BYTES // 2**20} MiB while being read; "
                          "a graph file is at most that")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"{path.name} is not a text file (not UTF-8): is it a Deepwire graph?") from None
    return Graph.from_json(text)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"{path} is a folder, not a Deepwire project") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise FormatError(f"{path.name} is not a Deepwire project (not a readable zip: {_one_line(exc)})") from None


def _graph(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], path: Path) -> tuple[dict, Graph]:
    """project.json, checked (format, version), and the graph."""
    if "project.json" not in infos or "graph.json" not in infos:
        raise FormatError(f"{path.name} is a zip file but not a Deepwire project (no project.json/graph.json)")
    meta = _json(zf, infos["project.json"], path)
    if not isinstance(meta, dict) or meta.get("format") != PROJECT_FORMAT:
        raise FormatError(f"{path.name} is not a Deepwire project")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise FormatError(f"{path.name}: the project format version is missing")
    if version > PROJECT_VERSION:
        raise FormatError(f"{path.name} was saved by a newer Deepwire (project format {version}; this "
                          f"version reads up to {PROJECT_VERSION}): update Deepwire to open it")
    if version < 1:
        raise FormatError(f"{path.name}: project format version {version} is older than any Deepwire release")
    try:
        return meta, Graph.from_dict(_json(zf, infos["graph.json"], path))
    except FormatError as exc:
        raise FormatError(f"{path.name}: graph.json: {exc}") from None


def _history(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> list:
    """The runs; a number JSON cannot hold (1e400, NaN, Infinity) becomes None, as save_project
    writes it, so the project can be saved again."""
    raw = _read(zf, info, path)
    try:
        text = raw.decode("utf-8")
        del raw
        runs = json.loads(text, parse_float=_finite_or_none, parse_constant=lambda _name: None)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise FormatError(f"{path.name}: history.json is damaged ({_one_line(exc)})") from None
    if not isinstance(runs, list):
        raise FormatError(f"{path.name}: history.json must be a list of runs")
    return runs


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _json_text(value, indent: int | None = None) -> str:
    """`value` as standard JSON: tensors and numpy values as plain numbers or lists, and numbers
    JSON cannot hold (inf, -inf, nan) as null."""
    try:
        return json.dumps(value, indent=indent, allow_nan=False, default=_plain)
    except ValueError:   # a non-finite float somewhere: write it as null (a circular value raises again)
        text = json.dumps(value, allow_nan=True, default=_plain)
        return json.dumps(json.loads(text, parse_constant=lambda _name: None), indent=indent, allow_nan=False)


def _checkpoints(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, notes: list[str]) -> dict:
    """The epochs' weights; damage costs only them (a note), never the project. A pickle is refused."""
    try:
        tensors = _read_tensors(zf, info, path)
    except _Pickled:
        raise
    except FormatError as exc:
        detail = exc.detail if isinstance(exc, _Unreadable) else str(exc)
        notes.append(f"{path.name}: the saved epochs' weights are damaged and were not read ({detail})")
        return {}
    out: dict[int, dict[int, dict]] = {}
    odd = 0
    for key, tensor in tensors.items():
        match = _CHECKPOINT_KEY.fullmatch(key)
        if match is None:
            odd += 1
            continue
        out.setdefault(int(match[1]), {}).setdefault(int(match[2]), {})[match[3]] = tensor
    if odd:
        notes.append(f"{path.name}: ignored {odd} tensor(s) in checkpoints.safetensors with names this version "
                     "of Deepwire does not use")
    return out


# ----------------------------------------------------------------------------- safetensors, streamed

class _Unreadable(FormatError):
    """A member that cannot be read; `detail` is the reason without the file's name."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class _Pickled(FormatError):
    pass


def _read_tensors(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> dict[str, torch.Tensor]:
    """A safetensors member, decompressed straight into its tensors: what it takes in memory is
    the tensors themselves (no copy of the member beside them). The layout is checked before any
    tensor is allocated: known dtypes, sizes that match the shapes, offsets that tile the data
    exactly, and data that fills the member as the zip declares it."""
    member = _short_name(info.filename)
    label = "the weights" if info.filename == "weights.safetensors" else member

    def damaged(why: str) -> _Unreadable:
        return _Unreadable(f"{path.name}: {label} are damaged ({why})" if label == "the weights"
                           else f"{path.name}: {member} is damaged ({why})", why)

    if sys.byteorder != "little":   # safetensors is little-endian: let the library swap bytes
        return _read_tensors_by_library(zf, info, path, damaged)
    size = info.file_size
    try:
        with zf.open(info) as f:
            head = _read_exactly(f, 8)
            _refuse_pickle_head(head + (f.read(512) if head[:2] == b"PK" else b""), info, path)
            if len(head) < 8:
                raise damaged("shorter than a safetensors header")
            length = int.from_bytes(head, "little")
            if length > min(_MAX_TENSOR_HEADER, size - 8):
                raise damaged(f"its header claims {length:,} bytes")
            try:
                header = json.loads(_read_exactly(f, length).decode("utf-8"), parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError, RecursionError, FormatError) as exc:
                raise damaged(f"its header is not JSON: {_one_line(exc)}") from None
            layout = _tensor_layout(header, size - 8 - length, damaged)
            tensors = {}
            for name, dtype, shape, nbytes in layout:
                raw = torch.empty(nbytes, dtype=torch.uint8)
                if nbytes and _read_into(f, memoryview(raw.numpy())) < nbytes:
                    raise damaged("it is truncated")
                if dtype is torch.bool:
                    raw.clamp_(max=1)     # a bool is 0 or 1; any other byte would be an odd bool
                tensors[name] = raw.view(dtype).reshape(shape)
            if f.read(1):
                raise FormatError(f"{path.name}: {member} expands to more than the {size:,} bytes it declares; "
                                  "the file is damaged or hostile")
    except FormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise damaged(_one_line(exc)) from None
    return tensors


def _tensor_layout(header, data_size: int, damaged) -> list[tuple[str, torch.dtype, list[int], int]]:
    """(name, dtype, shape, bytes) in the order of the data, or `damaged` raised."""
    if not isinstance(header, dict):
        raise damaged("its header is not an object")
    entries = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict):
            raise damaged(f"tensor {_short_name(name)} is not described")
        dtype = _DTYPES.get(spec.get("dtype")) if isinstance(spec.get("dtype"), str) else None
        shape, offsets = spec.get("shape"), spec.get("data_offsets")
        if dtype is None:
            raise damaged(f"tensor {_short_name(name)} has an unknown dtype {_short_name(str(spec.get('dtype')))}")
        if not (isinstance(shape, list) and len(shape) <= 64 and all(_whole(d) for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o) for o in offsets)):
            raise damaged(f"tensor {_short_name(name)} has an invalid shape or offsets")
        nbytes = math.prod(shape) * dtype.itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise damaged(f"tensor {_short_name(name)} does not hold what its shape needs")
        entries.append((offsets[0], name, dtype, shape, nbytes))
    entries.sort(key=lambda e: (e[0], e[4]))
    at = 0
    for begin, name, _dtype, _shape, nbytes in entries:
        if begin != at:
            raise damaged(f"tensor {_short_name(name)} overlaps another or leaves a gap")
        at += nbytes
    if at != data_size:
        raise damaged(f"its tensors take {at:,} bytes of the {data_size:,} it holds")
    return [(name, dtype, shape, nbytes) for _begin, name, dtype, shape, nbytes in entries]


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def _read_tensors_by_library(zf, info, path, damaged) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    raw = _read(zf, info, path)
    _refuse_pickle_head(bytes(raw[:512]), info, path)
    try:
        return load(bytes(raw))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as exc:
        raise damaged(_one_line(exc)) from None


def _write_tensors(zf: zipfile.ZipFile, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Write `tensors` as a safetensors member (stored, not compressed), each tensor's bytes
    straight from its memory into the file."""
    state = {}
    for key, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.dtype not in _DTYPE_NAMES:
            raise ValueError(f"cannot store the {tensor.dtype} tensor {key!r} in a project")
        state[key] = tensor
    if sys.byteorder != "little":
        from safetensors.torch import save

        zf.writestr(name, save(state), compress_type=zipfile.ZIP_STORED)
        return
    header, at = {}, 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        header[key] = {"dtype": _DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                       "data_offsets": [at, at + nbytes]}
        at += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)      # the data starts 8-byte aligned, as safetensors writes it
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    with zf.open(info, "w", force_zip64=8 + len(text) + at >= zipfile.ZIP64_LIMIT) as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for tensor in state.values():
            if tensor.numel():
                data = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
                for i in range(0, len(data), 64 * _CHUNK):
                    out.write(data[i:i + 64 * _CHUNK])


def _note_non_finite(weights: dict[str, torch.Tensor], path: Path, notes: list[str]) -> None:
    """A note naming the first tensor that holds NaN or an infinity (such a model predicts NaN)."""
    bad = [name for name, tensor in weights.items() if not _all_finite(tensor)]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        notes.append(f"{path.name}: the trained weights hold NaN or infinite values (in {_short_name(bad[0])}"
                     f"{more}), so the model's predictions will be NaN; retrain, or restore an earlier epoch")


def _all_finite(tensor: torch.Tensor) -> bool:
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    flat = tensor.reshape(-1)
    step = 1 << 24      # a bounded temporary per check, however large the tensor
    for i in range(0, flat.numel(), step):
        part = flat[i:i + step]
        if part.dtype.itemsize == 1:       # float8: no isfinite of its own
            part = part.float()
        if not bool(torch.isfinite(part).all()):
            return False
    return True


def dataset_options(raw) -> dict:
    """The load_dataset keywords a project may carry, checked: anything else is dropped."""
    out: dict = {}
    if not isinstance(raw, dict):
        return out
    if isinstance(raw.get("target"), str) and 0 < len(raw["target"]) <= 256:
        out["target"] = raw["target"]
    size = raw.get("image_size")
    if (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in size)):
        out["image_size"] = (size[0], size[1])
    if raw.get("grayscale") is True:
        out["grayscale"] = True
    return out


def _checked_members(zf: zipfile.ZipFile, path: Path, notes: list[str]) -> dict[str, zipfile.ZipInfo]:
    """The members by name, after refusing anything unsafe; unknown members are noted, never read."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise FormatError(f"{path.name} holds {len(infos)} files; a Deepwire project holds at most {MAX_ENTRIES}")
    members: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        shown = _short_name(name)
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
            raise FormatError(f"{path.name}: refused, it holds a file with an unsafe path ({shown})")
        if not _SAFE_NAME.fullmatch(name):
            raise FormatError(f"{path.name}: refused, it holds a file with an unusual name ({shown})")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise FormatError(f"{path.name}: refused, {shown} is a symbolic link")
        if info.flag_bits & 0x1:
            raise FormatError(f"{path.name}: refused, {shown} is encrypted")
        if name in seen:
            raise FormatError(f"{path.name}: refused, it holds {shown} twice")
        seen.add(name)
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise FormatError(f"{path.name}: refused, it holds a Python pickle ({shown}), which Deepwire never "
                              "loads (it could run code)")
        limit = LIMITS.get(name, MAX_SMALL_JSON)
        if info.file_size > limit and name == "checkpoints.safetensors":   # costs only the epochs' weights
            notes.append(f"{path.name}: the saved epochs' weights were not read ({info.file_size:,} bytes; at most "
                         f"{limit:,})")
            continue
        if info.file_size > limit and name == "history.json":   # costs only the run history
            notes.append(f"{path.name}: the run history was not read ({info.file_size:,} bytes; at most {limit:,}); "
                         "saving this project will not keep it")
            continue
        if info.file_size > limit:
            raise FormatError(f"{path.name}: {shown} is too large ({info.file_size:,} bytes; at most {limit:,})")
        if name in MEMBERS:
            total += info.file_size
        if total > MAX_TOTAL:
            raise FormatError(f"{path.name} is too large: its files expand to more than "
                              f"{MAX_TOTAL / 2**30:.1f} GiB")
        members[name] = info
    for name, info in members.items():
        if name in MEMBERS or name.endswith("/"):
            continue
        if _looks_pickled(_read(zf, info, path, 16)):
            raise FormatError(f"{path.name}: refused, {_short_name(name)} is a Python pickle, which Deepwire never "
                              "loads (it could run code)")
        notes.append(f"{path.name}: ignored {_short_name(name)}, which this version of Deepwire does not use")
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, first: int | None = None) -> bytearray:
    """A member's bytes (or its `first` bytes), read into one buffer of the declared size and
    counting what really comes out of the decompressor: more than the declared size or the
    member's limit is refused without being held in memory."""
    limit = min(info.file_size, LIMITS.get(info.filename, MAX_SMALL_JSON))
    want = limit if first is None else min(first, limit)
    data = bytearray(want)
    try:
        with zf.open(info) as f:
            got = _read_into(f, memoryview(data))
            if first is None and f.read(1):
                raise FormatError(f"{path.name}: {_short_name(info.filename)} expands to more than the "
                                  f"{limit:,} bytes it declares; the file is damaged or hostile")
    except FormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise FormatError(f"{path.name}: {_short_name(info.filename)} is damaged ({_one_line(exc)})") from None
    if got < want:
        if first is None:
            raise FormatError(f"{path.name}: {_short_name(info.filename)} is truncated")
        del data[got:]
    return data


def _read_into(f, buffer: memoryview) -> int:
    """Fill `buffer` from `f` a chunk at a time; the bytes read (fewer at the end of `f`)."""
    got, size = 0, len(buffer)
    while got < size:
        n = f.readinto(buffer[got:got + _CHUNK])
        if not n:
            break
        got += n
    return got


def _read_exactly(f, size: int) -> bytes:
    data = bytearray(size)
    return bytes(data[:_read_into(f, memoryview(data))])


def _looks_pickled(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and the protocol number; torch.save writes a zip
    whose records end in .pkl."""
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or (head[:2] == b"PK" and b".pkl" in head)


def _refuse_pickle_head(head: bytes, info: zipfile.ZipInfo, path: Path) -> None:
    if _looks_pickled(head):
        raise _Pickled(f"{path.name}: {_short_name(info.filename)} holds a Python pickle, which Deepwire never "
                       "loads (it could run code); save the weights as safetensors")


def _refuse_pickle(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """The pickle check of a safetensors member that is not read: its first bytes only. Damage
    there is not this reader's concern (the member is not used)."""
    try:
        with zf.open(info) as f:
            head = _read_exactly(f, 8)
            if head[:2] == b"PK":
                head += _read_exactly(f, 512)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError):
        return
    _refuse_pickle_head(head, info, path)


def _config(data, path: Path, notes: list[str]) -> TrainConfig:
    """The training settings; one this version cannot use (out of range, not finite, of the wrong
    kind) falls back to its default with a note, so that a bad setting never costs the project."""
    if not isinstance(data, dict):
        notes.append(f"{path.name}: config.json does not hold training settings; the defaults are used")
        return TrainConfig()
    known = [f.name for f in fields(TrainConfig)]
    given = {k: data[k] for k in known if k in data}
    try:
        return _noted(TrainConfig.from_dict({k: v for k, v in given.items() if _finite_setting(v)}), given, path, notes)
    except (ConfigError, TypeError, ValueError, OverflowError, AttributeError):
        pass
    kept: dict = {}
    for name in known:      # one setting at a time, in TrainConfig's order: keep each that still validates
        if name not in given or not _finite_setting(given[name]):
            continue
        try:
            TrainConfig.from_dict(dict(kept, **{name: given[name]}))
        except (ConfigError, TypeError, ValueError, OverflowError, AttributeError):
            continue
        kept[name] = given[name]
    try:
        return _noted(TrainConfig.from_dict(kept), given, path, notes)
    except (ConfigError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise FormatError(f"{path.name}: invalid training settings: {_one_line(exc)}") from None


def _noted(config: TrainConfig, given: dict, path: Path, notes: list[str]) -> TrainConfig:
    """Notes for the settings in `given` that `config` does not hold (they fell back to their defaults)."""
    reset = [name for name, value in given.items() if not _same_setting(getattr(config, name), value)]
    if "device" in reset:   # a project trained on a GPU opens on a machine without one
        notes.append(f"{path.name}: the device {_short_name(str(given['device']))} is not available here; "
                     "training will use 'auto'")
        reset.remove("device")
    if reset:
        shown = ", ".join(f"{name} = {_short_name(_setting_text(given[name]))[1:-1]}" for name in reset[:5])
        more = f" and {len(reset) - 5} more" if len(reset) > 5 else ""
        notes.append(f"{path.name}: the training setting{'s' if len(reset) > 1 else ''} {shown}{more} could not be "
                     "used; back to the default" + ("s" if len(reset) > 1 else ""))
    return config


def _finite_setting(value) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def _same_setting(held, given) -> bool:
    return type(held) is type(given) and held == given


def _setting_text(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number" if math.isnan(value) else ("infinity" if value > 0 else "minus infinity")
    return json.dumps(value, default=str)[:40]


def _json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, lenient: bool = False):
    """A JSON member. lenient: NaN and Infinity read as floats (for the settings, which then fall
    back to their defaults) rather than refusing the file."""
    raw = _read(zf, info, path)
    try:
        text = raw.decode("utf-8")
        del raw
        return json.loads(text, parse_constant=float if lenient else _no_constant)
    except FormatError as exc:
        raise FormatError(f"{path.name}: {info.filename}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{path.name}: {info.filename} is damaged ({_one_line(exc)})") from None
    except ValueError as exc:  # an integer too long to read
        raise FormatError(f"{path.name}: {info.filename} is damaged ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _short_name(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_constant(name: str):
    raise FormatError(f"the file contains {name}, which is not a number JSON allows")


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a project")
