"""A Keras weights file (.weights.h5, or a .keras file's model.weights.h5), read defensively: the whole file is
audited before any array is read (`_audit`), a .keras member is copied out with its sizes checked
(`_member_to_file`), and `_WeightsFile` finds each layer's arrays where Keras files them."""
from __future__ import annotations

import math
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from ..common import ModelImportError, WeightsImportError
from .reading import _shown

WEIGHTS_MEMBER = "model.weights.h5"
MAX_WEIGHTS = 4 * 2**30        # bytes all the arrays of a weights file may declare (a project file's weights limit)
MAX_EXPANSION = 100            # a compressed member or dataset may declare at most this many times what it stores
SMALL = 2**20                  # sizes below this are not compared with what the file stores
MAX_OBJECTS = 100_000          # links in one weights file
MAX_DEPTH = 32                 # nesting of its groups
FILTERS = {1, 2, 3, 4, 5, 6, 32000}   # gzip, shuffle, fletcher32, szip, nbit, scale-offset, lzf: HDF5's own
NESTED = {"query": ("query_dense", "_query_dense"), "key": ("key_dense", "_key_dense"),
          "value": ("value_dense", "_value_dense"), "output": ("output_dense", "_output_dense")}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise WeightsImportError("reading Keras weights (.weights.h5) needs h5py: install h5py: pip install h5py "
                                 "(or pip install deepwire[keras])") from None
    return h5py


def _audit(h5py, f, size: int) -> list[str]:
    """Refuse what could make reading the file read another file or exhaust memory, before any data is read:
    links other than hard links, datasets kept outside the file (external storage) or virtual ones, unknown
    compression filters, and arrays that declare more than the file can hold. Returns every dataset's path."""
    datasets: list[str] = []
    total, count = 0, 0
    budget = min(MAX_WEIGHTS, max(SMALL, size * MAX_EXPANSION))
    stack = [(f, "", 0)]
    while stack:
        group, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelImportError(f"the weights file nests its groups more than {MAX_DEPTH} deep ({_shown(path)}); "
                                   "refused")
        for key in group.keys():
            count += 1
            if count > MAX_OBJECTS:
                raise ModelImportError(f"the weights file holds more than {MAX_OBJECTS:,} objects; refused")
            full = f"{path}/{key}" if path else key
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelImportError(f"the weights file's {_shown(full)} is an external link to "
                                       f"{_shown(link.filename)}; refused (weights must be inside the file)")
            if not isinstance(link, h5py.HardLink):
                raise ModelImportError(f"the weights file's {_shown(full)} is a {type(link).__name__}; refused "
                                       "(Keras writes plain groups and datasets)")
            obj = group.get(key)
            if isinstance(obj, h5py.Group):
                stack.append((obj, full, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                total += _audit_dataset(obj, full, total, budget)
                datasets.append(full)
    return datasets


def _audit_dataset(ds, name: str, total: int, budget: int) -> int:
    shown = _shown(name)
    if ds.is_virtual:
        raise ModelImportError(f"the weights file's dataset {shown} is a virtual dataset (it reads other files); "
                               "refused")
    if ds.external:
        raise ModelImportError(f"the weights file's dataset {shown} keeps its data in another file "
                               f"({_shown(ds.external[0][0])}); refused")
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in FILTERS]
    if unknown:
        raise ModelImportError(f"the weights file's dataset {shown} needs HDF5 filter {unknown[0]}, which is not "
                               "one of HDF5's own; refused")
    shape = ds.shape
    declared = math.prod(shape) * ds.dtype.itemsize if shape is not None else 0
    stored = ds.id.get_storage_size()
    if declared > MAX_WEIGHTS:
        raise ModelImportError(f"the weights file's dataset {shown} declares {declared:,} bytes (shape {shape}), "
                               f"more than the {MAX_WEIGHTS // 2**30} GiB limit; refused")
    if declared > SMALL and declared > stored * (MAX_EXPANSION if filters else 1):
        raise ModelImportError(f"the weights file's dataset {shown} declares {declared:,} bytes (shape {shape}) but "
                               f"stores {stored:,}; the file is damaged or hostile, refused")
    if total + declared > budget:
        raise ModelImportError(f"the weights file's dataset {shown} takes its arrays past {budget:,} bytes, more "
                               "than a file of this size can hold; refused")
    return declared


def _member_to_file(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str):
    """A .keras file's weights member, copied into a temporary file (never held in memory whole), after checking
    its declared size against the limits, and counting what really comes out of the decompressor."""
    import tempfile

    if info.file_size > MAX_WEIGHTS:
        raise ModelImportError(f"{label}: {info.filename} declares {info.file_size:,} bytes, more than the "
                               f"{MAX_WEIGHTS // 2**30} GiB limit; refused")
    if info.file_size > SMALL and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise ModelImportError(f"{label}: {info.filename} would expand {info.compress_size:,} bytes to "
                               f"{info.file_size:,}; the file is damaged or hostile, refused")
    out = tempfile.TemporaryFile()
    try:
        got = 0
        with zf.open(info) as src:
            while got <= info.file_size:
                chunk = src.read(min(1 << 20, info.file_size + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                if got > info.file_size:
                    raise ModelImportError(f"{label}: {info.filename} expands to more than the {info.file_size:,} "
                                           "bytes it declares; refused")
                out.write(chunk)
        if got < info.file_size:
            raise ModelImportError(f"{label}: {info.filename} is truncated")
        out.seek(0)
        return out
    except ModelImportError:
        out.close()
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        out.close()
        raise ModelImportError(f"{label}: {info.filename} is damaged ({_shown(str(exc))})") from None


class _WeightsFile:
    """The arrays of each Keras layer in a weights.h5, audited first (see `_audit`). Keras 3 files a layer's
    arrays under `layers/<path>/vars/<i>`, where the path comes from the layer's class and its order among the
    model's layers of that class (`keras_paths`); recurrent layers keep theirs under `cell/`, Bidirectional
    under `forward_layer/` and `backward_layer/`, MultiHeadAttention under `query_dense/`... Files whose layers
    are filed by name are read too, and tf.keras 2's `save_weights` layout (`layer_names`, `weight_names`)."""

    def __init__(self, h5py, f, size: int, paths: dict[str, str]):
        self.h5py = h5py
        self.datasets = _audit(h5py, f, size)
        root = f
        if "model_weights" in f and "layer_names" not in f.attrs and isinstance(f["model_weights"], h5py.Group):
            root = f["model_weights"]
        self.root = root
        self.legacy = "layer_names" in root.attrs
        self.paths = paths
        self.used: set[str] = set()       # the groups whose arrays were taken (their HDF5 names)
        self.layers = None
        self.prefix = ""
        if not self.legacy:
            for key in ("layers", "_layer_checkpoint_dependencies"):   # the second: Keras 2.13's .keras files
                group = root.get(key)
                if isinstance(group, h5py.Group):
                    self.layers, self.prefix = group, group.name.lstrip("/") + "/"
                    break
        self.by_meta: dict[str, str] = {}
        if self.layers is not None:
            for key in self.layers.keys():
                vars_ = self.layers[key].get("vars") if isinstance(self.layers[key], h5py.Group) else None
                meta = _attr_text(vars_, "name") if isinstance(vars_, h5py.Group) else None
                if meta is not None:
                    self.by_meta.setdefault(meta, key)

    def where(self, name: str) -> str:
        return f"layers/{self.paths[name]}" if name in self.paths else f"layers/{name}"

    def _read(self, ds, label: str):
        import numpy as np

        if not isinstance(ds, self.h5py.Dataset):
            raise WeightsImportError(f"the weights file's {_shown(label)} is not an array")
        if ds.dtype.kind not in "biuf" or ds.shape is None:
            raise WeightsImportError(f"the weights file's {_shown(ds.name)} holds {ds.dtype}, not numbers")
        return np.asarray(ds[()])

    def _vars(self, group, recurrent: bool = False) -> list | None:
        h5py = self.h5py
        vars_ = group.get("vars") if isinstance(group, h5py.Group) else None
        if recurrent and (not isinstance(vars_, h5py.Group) or not len(vars_)):
            cell = group.get("cell") if isinstance(group, h5py.Group) else None
            vars_ = cell.get("vars") if isinstance(cell, h5py.Group) else None
        if not isinstance(vars_, h5py.Group):
            return None
        self.used.add(vars_.name)
        keys = sorted(vars_.keys(), key=lambda k: (0, int(k)) if k.isdigit() else (1, k))
        return [self._read(vars_[k], f"{vars_.name}/{k}") for k in keys]

    def group(self, name: str):
        """The layer's group: at the path Keras 3 derives for it, else the one whose metadata or key is its name."""
        if self.layers is None:
            return None
        for key in (self.paths.get(name), self.by_meta.get(name), name):
            if key is not None and key in self.layers and isinstance(self.layers[key], self.h5py.Group):
                return self.layers[key]
        return None

    def arrays(self, name: str, part: str | None = None, recurrent: bool = False) -> list | None:
        """The layer's arrays in the order of layer.weights; None when the file has no such layer. `part`:
        Bidirectional's 'forward' / 'backward' layer, or MultiHeadAttention's 'query', 'key', 'value', 'output'."""
        if self.legacy:
            return self._legacy(name, part)
        group = self.group(name)
        if group is None:
            return None
        if part in ("forward", "backward"):
            group = group.get(f"{part}_layer")
            return self._vars(group, recurrent=True) if group is not None else None
        if part is not None:
            for key in NESTED[part]:
                if isinstance(group.get(key), self.h5py.Group):
                    return self._vars(group[key])
            return None
        return self._vars(group, recurrent)

    def _legacy(self, name: str, part: str | None) -> list | None:
        names = _attr_list(self.root, "layer_names")
        if name not in names or not isinstance(self.root.get(name), self.h5py.Group):
            return None
        group = self.root[name]
        self.used.add(group.name)
        wnames = _attr_list(group, "weight_names")
        arrays = [self._read(group.get(w), f"{name}/{w}") for w in wnames]
        if part in ("forward", "backward"):
            half = len(arrays) // 2
            arrays = arrays[:half] if part == "forward" else arrays[half:]
        return arrays

    def unplaced(self) -> str | None:
        """The first group of the file that holds arrays no layer took (as "path" or "path ('layer name')")."""
        if self.legacy:
            for name in _attr_list(self.root, "layer_names"):
                group = self.root.get(name)
                if isinstance(group, self.h5py.Group) and group.name not in self.used \
                        and _attr_list(group, "weight_names"):
                    return f"'{_shown(name)}'"
            return None
        if self.layers is None:
            return None
        owner = {path: name for name, path in self.paths.items()}
        for ds in self.datasets:
            parent = "/" + ds.rsplit("/", 1)[0]
            if not ds.startswith(self.prefix) or parent in self.used or "seed_generator" in ds:
                continue
            key = ds[len(self.prefix):].split("/", 1)[0]
            name = owner.get(key) or next((m for m, k in self.by_meta.items() if k == key), None)
            return f"layers/{_shown(key)}" + (f" ('{_shown(name)}')" if name else "")
        return None


def _attr_text(obj, key: str) -> str | None:
    """A short string attribute, or None (an attribute's declared size is checked before it is read)."""
    raw = _attr(obj, key, 4096)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


def _attr_list(obj, key: str) -> list[str]:
    raw = _attr(obj, key, 16 * 2**20)
    if raw is None:
        return []
    try:
        items = list(raw.reshape(-1)) if hasattr(raw, "reshape") else [raw]
    except TypeError:
        return []
    return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in items]


def _attr(obj, key: str, limit: int):
    import h5py

    try:
        if obj is None or key not in obj.attrs:
            return None
        aid = h5py.h5a.open(obj.id, key.encode())
        shape = aid.shape
        if math.prod(shape or ()) * max(aid.dtype.itemsize, 1) > limit:
            raise WeightsImportError(f"the weights file's attribute {_shown(key)} of {_shown(obj.name)} is too large")
        return obj.attrs[key]
    except (OSError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ModelImportError):
            raise
        return None


@contextmanager
def _opened(weights, label: str):
    """(h5py, the open HDF5 file, its size) for a path, a binary file object, or bytes."""
    h5py = _h5py()
    handle = None
    try:
        if isinstance(weights, (str, Path)):
            size = Path(weights).stat().st_size
            target = str(weights)
        else:
            if isinstance(weights, (bytes, bytearray)):
                import io

                weights = io.BytesIO(weights)
            weights.seek(0, 2)
            size = weights.tell()
            weights.seek(0)
            target = weights
        try:
            handle = h5py.File(target, "r")
        except (OSError, ValueError) as exc:
            raise ModelImportError(f"{label} is not a readable HDF5 file ({_shown(str(exc))})") from None
        yield h5py, handle, size
    finally:
        if handle is not None:
            handle.close()
