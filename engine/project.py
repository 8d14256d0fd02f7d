"""The project file: one zip holding the graph, training settings, trained weights and run history.

Members: project.json (format, versions, dataset), graph.json (engine.graph's JSON),
config.json (TrainConfig), weights.safetensors (trained weights and buffers, normalisation
statistics included), history.json (runs with metrics per epoch), checkpoints.safetensors (the
weights of the runs' epochs, to restore one: tensors named "run<id>/epoch<n>/<name>", at most
CHECKPOINT_BUDGET bytes, newest runs first). Written atomically and read without pickle:
weights are safetensors, everything else JSON.
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .fileio import atomic_write_bytes
from .graph import FormatError, Graph
from .training import ConfigError, TrainConfig

PROJECT_FORMAT = "deepwire-project"
PROJECT_VERSION = 1
SUFFIX = ".deepwire"
MEMBERS = {"project.json", "graph.json", "config.json", "weights.safetensors", "history.json",
           "checkpoints.safetensors"}
MAX_MEMBER = 4 * 2**30            # weights.safetensors, checkpoints.safetensors
MAX_JSON = 256 * 2**20            # history.json
MAX_SMALL_JSON = 64 * 2**20       # project.json, graph.json, config.json (a graph file's limit)
MAX_ENTRIES = 64                  # members in one project zip
MAX_TOTAL = 2 * MAX_MEMBER + 2 * MAX_JSON
LIMITS = {"weights.safetensors": MAX_MEMBER, "checkpoints.safetensors": MAX_MEMBER, "history.json": MAX_JSON}
# Epoch weights a project keeps (in memory and in its file): enough for every epoch of the
# tutorials' models over many runs, bounded for big ones (whose oldest runs and epochs go first).
CHECKPOINT_BUDGET = 64 * 2**20
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


def is_project_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def save_project(path: str | os.PathLike, project: Project) -> None:
    """Write the project atomically: the old file or the new one is always whole."""
    from safetensors.torch import save

    meta = {"format": PROJECT_FORMAT, "format_version": PROJECT_VERSION, "app_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset": project.dataset,
            "dataset_options": dataset_options(project.dataset_options),
            "trained": project.trained}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", json.dumps(meta, indent=2))
        zf.writestr("graph.json", project.graph.to_json())
        zf.writestr("config.json", json.dumps(project.config.to_dict(), indent=2))
        zf.writestr("history.json", json.dumps(project.runs, indent=1, allow_nan=False, default=_plain))
        if project.weights:
            tensors = {k: v.detach().cpu().contiguous() for k, v in project.weights.items()}
            zf.writestr("weights.safetensors", save(tensors), compress_type=zipfile.ZIP_STORED)
        if project.checkpoints:
            tensors = {f"run{run}/epoch{epoch}/{name}": t.detach().cpu().contiguous()
                       for run, epochs in project.checkpoints.items() for epoch, state in epochs.items()
                       for name, t in state.items()}
            zf.writestr("checkpoints.safetensors", save(tensors), compress_type=zipfile.ZIP_STORED)
    atomic_write_bytes(path, buffer.getvalue())


def load_project(path: str | os.PathLike) -> Project:
    """Read a project file. Raises FormatError (one clear line) on anything unreadable or unsafe.

    Nothing in the file is executed: members are JSON and safetensors only. Refused: member
    names that are absolute, contain `..` or odd characters, symlinks, encrypted members,
    pickles, more than MAX_ENTRIES members, and sizes over the limits, checked both on the
    sizes the zip declares and on the bytes it really expands to (a zip bomb)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"{path} is a folder, not a Deepwire project") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise FormatError(f"{path.name} is not a Deepwire project (not a readable zip: {_one_line(exc)})") from None
    notes: list[str] = []
    with zf:
        infos = _checked_members(zf, path, notes)
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
            graph = Graph.from_dict(_json(zf, infos["graph.json"], path))
        except FormatError as exc:
            raise FormatError(f"{path.name}: graph.json: {exc}") from None
        config = TrainConfig()
        if "config.json" in infos:
            config = _config(_json(zf, infos["config.json"], path), path, notes)
        runs = _json(zf, infos["history.json"], path) if "history.json" in infos else []
        if not isinstance(runs, list):
            raise FormatError(f"{path.name}: history.json must be a list of runs")
        weights = None
        if "weights.safetensors" in infos:
            raw = _read(zf, infos["weights.safetensors"], path)
            if _looks_pickled(raw):
                raise FormatError(f"{path.name}: weights.safetensors holds a Python pickle, which Deepwire never "
                                  "loads (it could run code); re-save the weights as safetensors")
            try:
                weights = load(raw)
            except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as exc:
                raise FormatError(f"{path.name}: the weights are damaged ({_one_line(exc)})") from None
        checkpoints = {}
        if "checkpoints.safetensors" in infos:
            raw = _read(zf, infos["checkpoints.safetensors"], path)
            if _looks_pickled(raw):
                raise FormatError(f"{path.name}: checkpoints.safetensors holds a Python pickle, which Deepwire "
                                  "never loads (it could run code)")
            checkpoints = _checkpoints(raw, path, notes)
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), str) else None
    options = dataset_options(meta.get("dataset_options"))
    return Project(graph=graph, config=config, weights=weights, runs=runs, checkpoints=checkpoints, dataset=dataset,
                   dataset_options=options, notes=notes)


def _checkpoints(raw: bytes, path: Path, notes: list[str]) -> dict:
    """The epochs' weights; damage costs only them (a note), never the project."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(raw)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as exc:
        notes.append(f"{path.name}: the saved epochs' weights are damaged and were not read ({_one_line(exc)})")
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
        if name in members:
            raise FormatError(f"{path.name}: refused, it holds {shown} twice")
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise FormatError(f"{path.name}: refused, it holds a Python pickle ({shown}), which Deepwire never "
                              "loads (it could run code)")
        limit = LIMITS.get(name, MAX_SMALL_JSON)
        if info.file_size > limit:
            raise FormatError(f"{path.name}: {shown} is too large ({info.file_size:,} bytes; at most {limit:,})")
        total += info.file_size
        if total > MAX_TOTAL:
            raise FormatError(f"{path.name} is too large: its files expand to more than {MAX_TOTAL // 2**30} GiB")
        members[name] = info
    for name, info in members.items():
        if name in MEMBERS or name.endswith("/"):
            continue
        if _looks_pickled(_read(zf, info, path, 16)):
            raise FormatError(f"{path.name}: refused, {_short_name(name)} is a Python pickle, which Deepwire never "
                              "loads (it could run code)")
        notes.append(f"{path.name}: ignored {_short_name(name)}, which this version of Deepwire does not use")
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, first: int | None = None) -> bytes:
    """A member's bytes (or its `first` bytes), counting what really comes out of the decompressor:
    more than the declared size or the member's limit is refused without being held in memory."""
    limit = min(info.file_size, LIMITS.get(info.filename, MAX_SMALL_JSON))
    want = limit if first is None else min(first, limit)
    parts, got = [], 0
    try:
        with zf.open(info) as f:
            while got < want:
                chunk = f.read(min(1 << 20, want - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
            if first is None and f.read(1):
                raise FormatError(f"{path.name}: {_short_name(info.filename)} expands to more than the "
                                  f"{limit:,} bytes it declares; the file is damaged or hostile")
    except FormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise FormatError(f"{path.name}: {_short_name(info.filename)} is damaged ({_one_line(exc)})") from None
    data = b"".join(parts)
    if first is None and len(data) < info.file_size:
        raise FormatError(f"{path.name}: {_short_name(info.filename)} is truncated")
    return data


def _looks_pickled(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and the protocol number; torch.save writes a zip
    whose records end in .pkl."""
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or (head[:2] == b"PK" and b".pkl" in head)


def _config(data, path: Path, notes: list[str]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(data)
    except (ConfigError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        first = exc
    # A project trained on a GPU opens on a machine without one: the device falls back to 'auto'.
    if isinstance(data, dict) and data.get("device") not in (None, "auto"):
        try:
            config = TrainConfig.from_dict(dict(data, device="auto"))
        except (ConfigError, TypeError, ValueError, OverflowError, AttributeError):
            pass
        else:
            notes.append(f"{path.name}: the device {_short_name(str(data.get('device')))} is not available "
                         "here; training will use 'auto'")
            return config
    raise FormatError(f"{path.name}: invalid training settings: {_one_line(first)}") from None


def _json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
    raw = _read(zf, info, path)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
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
