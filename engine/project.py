"""The project file: one zip holding the graph, training settings, trained weights and run history.

Members: project.json (format, versions, dataset), graph.json (engine.graph's JSON),
config.json (TrainConfig), weights.safetensors (trained weights and buffers, normalisation
statistics included), history.json (runs with metrics per epoch). Written atomically and
read without pickle: weights are safetensors, everything else JSON.
"""
from __future__ import annotations

import io
import json
import os
import time
import zipfile
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
MEMBERS = {"project.json", "graph.json", "config.json", "weights.safetensors", "history.json"}
MAX_MEMBER = 4 * 2**30
MAX_JSON = 256 * 2**20


@dataclass
class Project:
    graph: Graph
    config: TrainConfig = field(default_factory=TrainConfig)
    weights: dict[str, torch.Tensor] | None = None
    runs: list[dict] = field(default_factory=list)
    dataset: str | None = None

    @property
    def trained(self) -> bool:
        return bool(self.weights)


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
    atomic_write_bytes(path, buffer.getvalue())


def load_project(path: str | os.PathLike) -> Project:
    """Read a project file. Raises FormatError (one clear line) on anything unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FormatError(f"{path} does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"{path.name} is not a Deepwire project (not a readable zip: {exc})") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        if "project.json" not in infos or "graph.json" not in infos:
            raise FormatError(f"{path.name} is a zip file but not a Deepwire project (no project.json/graph.json)")
        for info in infos.values():
            limit = MAX_MEMBER if info.filename.endswith(".safetensors") else MAX_JSON
            if info.file_size > limit:
                raise FormatError(f"{path.name}: {info.filename} is too large ({info.file_size} bytes)")
        meta = _json(zf, "project.json", path)
        if not isinstance(meta, dict) or meta.get("format") != PROJECT_FORMAT:
            raise FormatError(f"{path.name} is not a Deepwire project")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise FormatError(f"{path.name}: the project format version is missing")
        if version > PROJECT_VERSION:
            raise FormatError(f"{path.name} was saved by a newer Deepwire (project format {version}; this "
                              f"version reads up to {PROJECT_VERSION}): update Deepwire to open it")
        graph = Graph.from_dict(_json(zf, "graph.json", path))
        config = TrainConfig()
        if "config.json" in infos:
            try:
                config = TrainConfig.from_dict(_json(zf, "config.json", path))
            except (ConfigError, TypeError) as exc:
                raise FormatError(f"{path.name}: invalid training settings: {exc}") from None
        runs = _json(zf, "history.json", path) if "history.json" in infos else []
        if not isinstance(runs, list):
            raise FormatError(f"{path.name}: history.json must be a list of runs")
        weights = None
        if "weights.safetensors" in infos:
            try:
                weights = load(zf.read("weights.safetensors"))
            except (SafetensorError, ValueError, RuntimeError) as exc:
                raise FormatError(f"{path.name}: the weights are damaged ({exc})") from None
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), str) else None
    return Project(graph=graph, config=config, weights=weights, runs=runs, dataset=dataset)


def _json(zf: zipfile.ZipFile, name: str, path: Path):
    try:
        return json.loads(zf.read(name).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{path.name}: {name} is damaged ({exc})") from None


def _no_constant(name: str):
    raise FormatError(f"the file contains {name}, which is not a number JSON allows")


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a project")
