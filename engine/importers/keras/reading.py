"""Reading a Keras model's configuration: the file (.keras zip, JSON text or file, or a dict), and the small
helpers that read and show its values (shapes, tensor references, names)."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from ..common import ModelImportError

MAX_CONFIG = 64 * 2**20


def _read(source) -> dict:
    if isinstance(source, dict):
        return source
    if isinstance(source, (str, Path)) and not (isinstance(source, str) and source.lstrip().startswith("{")):
        path = Path(source)
        if not path.is_file():
            raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x89HDF"):
            raise ModelImportError(f"{path.name} is a legacy HDF5 model: save it with model.save('model.keras') or "
                                   "write model.to_json() to a file, then import that")
        if head.startswith(b"PK"):
            try:
                with zipfile.ZipFile(path) as zf:
                    info = zf.getinfo("config.json")
                    if info.file_size > MAX_CONFIG:
                        raise ModelImportError(f"{path.name}: config.json is too large")
                    text = zf.read(info).decode("utf-8")
            except KeyError:
                raise ModelImportError(f"{path.name} is a zip file without config.json: not a .keras model") from None
            except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
                raise ModelImportError(f"{path.name} is not a readable .keras file ({exc})") from None
        else:
            if path.stat().st_size > MAX_CONFIG:
                raise ModelImportError(f"{path.name} is too large for a model configuration")
            try:
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ModelImportError(f"{path.name} is not a text file: give a .keras file or Keras JSON") from None
    else:
        text = str(source)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelImportError(f"not a Keras model configuration: not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ModelImportError("not a Keras model configuration: the JSON is not an object")
    return data


def _shape(value) -> list | None:
    if isinstance(value, dict) and "items" in value:   # tf.keras' TensorShape serialisation
        value = value["items"]
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        config = value.get("config")
        value = config.get("value") if isinstance(config, dict) else None
    return list(value) if isinstance(value, (list, tuple)) else None


def _tensor_refs(obj) -> list:
    """The keras_history ([layer, node, tensor]) of every tensor in a serialised call argument."""
    if isinstance(obj, dict):
        config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        if obj.get("class_name") == "__keras_tensor__":
            return [config.get("keras_history")]
        if obj.get("class_name") in ("__tuple__", "__list__"):
            return _tensor_refs(config.get("value", []))
        return []
    if isinstance(obj, (list, tuple)):
        return [r for item in obj for r in _tensor_refs(item)]
    return []


def _ref(value) -> tuple[str, int, int]:
    """A checked tensor reference: (layer name, node index, tensor index)."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str) \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:]):
        raise ValueError(f"it refers to a tensor as {_what(value)}, not [layer, node, index]")
    return (value[0], value[1], value[2])


def _first(cfg: dict, *keys):
    for key in keys:
        if cfg.get(key):
            return cfg[key]
    return None


def _what(value, limit: int = 60) -> str:
    """A value from the configuration, shown short and on one line (never a traceback, however it nests)."""
    if isinstance(value, str):
        return repr(_shown(value)[:limit])
    try:
        return _shown(repr(value))[:limit]
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"


def _brief(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, (ValueError, TypeError, AttributeError)) else repr(exc)
    return _shown(" ".join(text.split()))[:120]


def _shown(name: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(name))
    return text if len(text) <= 120 else text[:117] + "..."


def _snake(name: str) -> str:
    """Keras' naming.to_snake_case, which names a layer's weights in a Keras 3 file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_paths(layers: list) -> dict[str, str]:
    """Each layer's name -> where Keras 3 files its weights under `layers/`: its class in snake case, numbered
    among the model's layers of the same class (dense, dense_1, ...), whatever the layer is called."""
    used: dict[str, int] = {}
    paths: dict[str, str] = {}
    for layer in layers:
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            continue
        base = _snake(layer["class_name"])
        if base in used:
            used[base] += 1
            path = f"{base}_{used[base]}"
        else:
            used[base] = 0
            path = base
        config = layer.get("config")
        name = layer.get("name") if isinstance(layer.get("name"), str) else None
        if name is None and isinstance(config, dict) and isinstance(config.get("name"), str):
            name = config["name"]
        if name is not None and name not in paths:
            paths[name] = path
    return paths
