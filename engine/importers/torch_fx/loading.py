"""Running the user's file and building the module: every failure becomes one ModelImportError line.

The .py file runs under a fresh module name (its folder on sys.path only while it runs, the module dropped
again if it fails); the class needs a constructor without arguments; weights are read with torch.load's
weights_only=True or safetensors, never by unpickling arbitrary objects. Errors name the line of the user's
file they come from.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import itertools
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...blocks.helpers import HELPERS
from ..common import ModelImportError, WeightsImportError

_COUNTER = itertools.count()


def load_file(path: Path):
    if not path.is_file():
        raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    if path.suffix != ".py":
        raise ModelImportError(f"{path.name}: give a Python file (.py) that defines the module")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"deepwire_import_{digest}_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # the file is the user's code: anything may come out of it
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModelImportError(f"running {path.name} failed{where(exc, path)}: {exc_text(exc)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def exc_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def where(exc: BaseException, path: Path | None) -> str:
    """' at line N (`code`)' for the deepest frame of the traceback inside the user's file."""
    frames = traceback.extract_tb(exc.__traceback__)
    chosen = None
    for frame in frames:
        in_user = (path is not None and Path(frame.filename).resolve() == path.resolve()) or (
            path is None and not library_file(frame.filename))
        if in_user:
            chosen = frame
    if chosen is None:
        return ""
    code = f" (`{chosen.line.strip()}`)" if chosen.line else ""
    return f" at {Path(chosen.filename).name} line {chosen.lineno}{code}"


_TORCH = str(Path(torch.__file__).resolve().parent)
_ENGINE = str(Path(__file__).resolve().parents[2])


@functools.lru_cache(maxsize=4096)
def internal_file(filename: str) -> bool:
    """A file of torch itself or of Deepwire's engine (not a model library such as torchvision or timm)."""
    if filename.startswith("<"):
        return True
    resolved = str(Path(filename).resolve())
    return any(resolved == root or resolved.startswith(root + "/") for root in (_TORCH, _ENGINE))


def library_file(filename: str) -> bool:
    parts = Path(filename).parts
    return "torch" in parts or "site-packages" in parts or "engine" in parts or filename.startswith("<")


def is_helper(obj: Any, name: str) -> bool:
    """True when `obj` is Deepwire's own helper of that name (the exact source codegen writes)."""
    if name not in HELPERS:
        return False
    try:
        return inspect.getsource(obj).strip() == HELPERS[name].strip()
    except (OSError, TypeError):
        return False


def pick_class(module, class_name: str | None, filename: str) -> type:
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ModelImportError(f"{filename} defines no {class_name!r}")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ModelImportError(f"{class_name} in {filename} is not an nn.Module class")
        return cls
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__
             and not is_helper(v, v.__name__)]
    if len(found) == 1:
        return found[0]
    roots = outermost(found)
    if len(roots) == 1:     # the model and the module classes it builds on (an exported model.py)
        return roots[0]
    if not found:
        raise ModelImportError(f"{filename} defines no nn.Module class")
    names = ", ".join(c.__name__ for c in found)
    raise ModelImportError(f"{filename} defines several modules ({names}): choose one with --class")


def outermost(classes: list[type]) -> list[type]:
    """The classes whose name no other of them calls (`Block()` in the model's __init__)."""
    sources = {}
    for cls in classes:
        try:
            sources[cls] = inspect.getsource(cls)
        except (OSError, TypeError):
            return classes
    return [c for c in classes
            if not any(re.search(rf"\b{re.escape(c.__name__)}\(", sources[o]) for o in classes if o is not c)]


def instantiate(cls: type) -> nn.Module:
    try:
        return cls()
    except TypeError as exc:
        raise ModelImportError(f"{cls.__name__}() cannot be built without arguments ({str(exc)[:200]}): give its "
                               "parameters defaults, or import an instance") from None
    except Exception as exc:  # the user's constructor
        raise ModelImportError(f"building {cls.__name__}() failed{where(exc, None)}: {exc_text(exc)}") from None


def read_weights(weights) -> dict[str, torch.Tensor]:
    if isinstance(weights, dict):
        state = weights
    else:
        path = Path(weights)
        if not path.is_file():
            raise ModelImportError(f"weights file {path} does not exist")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # safetensors / unpickler errors of many kinds
            raise ModelImportError(f"cannot read the weights in {path.name}: {exc_text(exc)}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelImportError("the weights are not a state dict (names -> tensors)")
    return state


def load_weights(model: nn.Module, weights, title: str) -> None:
    try:
        model.load_state_dict(read_weights(weights), strict=True)
    except RuntimeError as exc:
        raise WeightsImportError(f"the weights do not fit {title}: {str(exc).splitlines()[1:2] or str(exc)}") \
            from None


def load_model(source, class_name: str | None) -> tuple[nn.Module, Path | None, dict]:
    """(the module, the file its class comes from or None, the globals of the user's file or {}) for a .py
    file (its code runs), an nn.Module class or an instance."""
    path = None
    globals_: dict = {}
    if isinstance(source, nn.Module):
        model = source
    elif isinstance(source, type) and issubclass(source, nn.Module):
        model = instantiate(source)
    else:
        path = Path(source)
        module = load_file(path)
        globals_ = vars(module)
        model = instantiate(pick_class(module, class_name, path.name))
    if path is None:
        try:
            path = Path(inspect.getsourcefile(type(model)))
        except (TypeError, OSError):
            path = None
    return model, path, globals_
