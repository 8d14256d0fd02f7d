"""Loading weights a user already has into a graph (fine-tuning): a state-dict file (.safetensors, or a
.pt / .pth read with torch.load(weights_only=True), a checkpoint's state dict under "state_dict" / "model"
included), a Keras weights file (.weights.h5 / .h5, each layer's arrays converted by the Keras importer's
handlers into the block it matches) or another Deepwire project's weights.

Nothing is applied here: `match_weights` returns a `WeightsReport` that says, before anything changes, which
of the model's tensors the file gives (matched by name, a common prefix such as "model." or "module." stripped
or added, else by structure: order and shape), which the file lacks (they keep the model's current weights, or
fresh ones), which it holds that the model does not use, and which have another shape (a new head with other
units keeps fresh weights: the report names the block). `WeightsReport.applied_state` is then the model's whole
state dict, ready to become Project.weights.

    report = load_weights(graph, "resnet18.safetensors", current=project.weights)
    print(report.summary())
    if report.applied_state is not None:
        project.weights = report.applied_state

Bad input is refused with one clear line (`WeightsLoadError`): a pickle of code in a .pt, a file far larger
than the model needs (its size is read before its tensors: a safetensors header, a Keras file's audited
datasets, a project's weights member, a .pt file's size), a file whose tensors match nothing. NaN or infinite
values are warned about (naming the tensor); floating dtypes are converted, other dtype differences listed.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .analysis import analyse
from .blocks.module import MODULE
from .codegen import CodegenError, generate
from .compiler import load_source
from .graph import FormatError, Graph

# A file may hold up to SIZE_FACTOR times the bytes the model's own state takes (a checkpoint with an
# optimizer's moments, float64 copies), and never less than MIN_LIMIT; anything larger is refused unread.
SIZE_FACTOR = 8
MIN_LIMIT = 4 * 2**20
# prefixes a state dict's names commonly carry (DataParallel, Lightning, torch.compile, wrappers)
COMMON_PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "network.", "backbone.")
# where checkpoints keep the state dict
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "state_dict_ema")
SAFETENSORS = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
PROJECT_SUFFIX = ".deepwire"
FILE_FILTER = "Weights (*.safetensors *.pt *.pth *.bin *.ckpt *.h5 *.hdf5 *.keras *.deepwire);;All files (*)"
_ITEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
         "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8, "C64": 8}
_MAX_HEADER = 100_000_000


class WeightsLoadError(ValueError):
    """Weights that cannot be read or are refused; the message is one line for the user."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class WeightsFile:
    """What a weights file holds: `tensors` by name (PyTorch's layout), or for a Keras file `keras_layers`
    (its layers' arrays are converted when they are matched against a graph, by the block each one fits)."""

    path: Path
    kind: str                                   # "safetensors", "torch", "project", "keras"
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    nbytes: int = 0                             # what its tensors take
    keras_layers: list[KerasLayer] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.keras_layers) if self.kind == "keras" else len(self.tensors)


@dataclass
class KerasLayer:
    key: str          # where the file keeps it (layers/<key> in Keras 3; its name in a tf.keras 2 file)
    name: str         # the layer's name
    cls: str | None   # its Keras class, as the file tells it (None when unknown)
    within: tuple[str, ...] = ()    # the names of the nested models it is in, outermost first

    @property
    def path(self) -> str:
        """Its name with the nested models' names, as the report names a block in a module: "block › conv"."""
        return " › ".join(self.within + (self.name,))

    @property
    def shown(self) -> str:
        return self.path if self.name == self.key else f"{self.path} (layers/{self.key})"


@dataclass
class Matched:
    target: str                 # the model's state-dict name
    source: str                 # the file's name for it
    block: str                  # the graph block it belongs to
    how: str                    # "name" or "order"
    shape: tuple
    converted: str = ""         # "float16 -> float32" when the dtype was converted


@dataclass
class Mismatched:
    target: str
    source: str
    block: str
    target_shape: tuple
    source_shape: tuple
    why: str = ""               # another dtype that cannot be converted, a Keras layer that does not fit


@dataclass
class WeightsReport:
    source: str                                  # the file's name
    kind: str
    total: int                                   # tensors in the model's state
    matched: list[Matched] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)         # (target, block): keep their weights
    unexpected: list[str] = field(default_factory=list)                  # in the file, unused
    mismatched: list[Mismatched] = field(default_factory=list)
    nonfinite: list[str] = field(default_factory=list)                   # matched tensors holding NaN / inf
    notes: list[str] = field(default_factory=list)
    keeps: str = "fresh"                         # what unmatched tensors keep: "fresh" or "current" weights
    applied_state: dict[str, torch.Tensor] | None = None   # the whole state to apply; None: nothing matches

    @property
    def ok(self) -> bool:
        return self.applied_state is not None

    @property
    def by_name(self) -> int:
        return sum(m.how == "name" for m in self.matched)

    @property
    def by_order(self) -> int:
        return sum(m.how == "order" for m in self.matched)

    @property
    def loaded_blocks(self) -> list[str]:
        """The blocks whose every tensor comes from the file."""
        kept = set(self.kept_blocks)
        return list(dict.fromkeys(m.block for m in self.matched if m.block not in kept))

    @property
    def kept_blocks(self) -> list[str]:
        """The blocks (names in the graph) with at least one tensor the file does not give: they keep
        their current or fresh weights there (a new head with another number of units, for one)."""
        return list(dict.fromkeys([b for _, b in self.missing] + [m.block for m in self.mismatched]))

    def headline(self) -> str:
        """One line: what would be (or was) loaded."""
        if not self.ok:
            return f"No tensor in {self.source} fits the graph: nothing is loaded"
        how = []
        if self.by_name:
            how.append(f"{self.by_name} by name")
        if self.by_order:
            how.append(f"{self.by_order} by order")
        return (f"{len(self.matched)} of the model's {self.total} tensors from {self.source} ({', '.join(how)}); "
                f"{len(self.kept_blocks)} block{'s' * (len(self.kept_blocks) != 1)} keep {self.keeps} weights")

    def summary(self, limit: int = 20) -> str:
        """The report as text: counts, then each list (the first `limit` entries of each)."""
        lines = [self.headline() + "."]
        lines.append(f"Matched: {len(self.matched)} ({self.by_name} by name, {self.by_order} by order); missing "
                     f"from the file: {len(self.missing)}; shape mismatches: {len(self.mismatched)}; unused in the "
                     f"file: {len(self.unexpected)}.")

        def section(title: str, items: list[str]) -> None:
            if items:
                lines.append("")
                lines.append(f"{title}:")
                lines.extend(f"  {item}" for item in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")

        section(f"Blocks that keep {self.keeps} weights", [
            b + (f" ({self._why_kept(b)})" if self._why_kept(b) else "") for b in self.kept_blocks])
        section("Mismatches (not loaded)", [
            f"{m.target} {_shape_text(m.target_shape)} <- {m.source}"
            + (f": {m.why}" if m.why else f" {_shape_text(m.source_shape)}") for m in self.mismatched])
        section(f"Missing from the file (keep {self.keeps} weights)", [f"{t} ({b})" for t, b in self.missing])
        section("Unused in the file", self.unexpected)
        section("Matched by order (the names differ)", [f"{m.target} <- {m.source}" for m in self.matched
                                                        if m.how == "order"])
        section("Converted", [f"{m.target}: {m.converted}" for m in self.matched if m.converted])
        section("Warnings", [f"{name} holds NaN or infinite values: the model's outputs will be NaN"
                             for name in self.nonfinite] + self.notes)
        return "\n".join(lines)

    def _why_kept(self, block: str) -> str:
        shapes = [m for m in self.mismatched if m.block == block]
        if shapes:
            m = shapes[0]
            return m.why or f"{_leaf(m.target)} is {_shape_text(m.target_shape)} here, " \
                            f"{_shape_text(m.source_shape)} in the file"
        return "not in the file"


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


# ----------------------------------------------------------------------------- the model's side

@dataclass
class ModelState:
    """The state a graph's model has when built fresh (with `seed`), and which block each tensor belongs to."""

    state: dict[str, torch.Tensor]
    blocks: dict[str, str]           # state key -> the block's name in the graph ("stage › conv" inside a module)
    block_keys: list[tuple[str, str, object, str]]   # (attribute path, block name, the Node, its Keras name)
    graph: Graph
    info: object

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state.values())

    @property
    def limit(self) -> int:
        """The most bytes a weights file for this model may hold."""
        return max(MIN_LIMIT, SIZE_FACTOR * self.nbytes)


def model_state(graph: Graph, seed: int = 0) -> ModelState:
    """The fresh state of the graph's model (built with `seed`, the global random state left as it was) and
    each tensor's block. Raises WeightsLoadError when the graph has errors."""
    try:
        analysis = analyse(graph)
        source, info = generate(graph, analysis)
    except CodegenError as exc:
        raise WeightsLoadError(f"the graph has errors, so no weights can be loaded into it yet ({exc})") from None
    cls = load_source(source, info.class_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    places = _block_places(graph, info)
    blocks: dict[str, str] = {}
    ordered = sorted(places, key=len, reverse=True)        # the deepest attribute path first
    for key in state:
        blocks[key] = next((places[a][0] for a in ordered if key.startswith(a + ".")), key.rsplit(".", 1)[0])
    first = {}
    for i, key in enumerate(state):
        attr = next((a for a in ordered if key.startswith(a + ".")), None)
        if attr is not None:
            first.setdefault(attr, i)
    block_keys = [(a, places[a][0], places[a][1], places[a][2]) for a in sorted(first, key=first.get)]
    return ModelState(state, blocks, block_keys, graph, info)


def fresh_state(graph: Graph, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict the graph's model starts from, built with `seed`."""
    return model_state(graph, seed).state


def _block_places(graph: Graph, info) -> dict[str, tuple[str, object, object]]:
    """Each leaf block's attribute path -> (its name as the report shows it, the Node, its graph)."""
    out: dict[str, tuple[str, object, object]] = {}
    for node_id, attr in info.attrs.items():
        node = graph.node(node_id)
        if node.type != MODULE:
            out[attr] = (node.name, node, graph)
    for path, attr in info.paths.items():
        names, current, node, within = [], graph, None, graph
        for step in path:
            if isinstance(step, int):
                names[-1] += f"[{step}]"
                continue
            if current is None or step not in current:
                node = None
                break
            node, within = current.node(step), current
            names.append(node.name)
            current = graph.modules.get(node.params.get("module")) if node.type == MODULE else None
        if node is not None and node.type != MODULE:
            out[attr] = (" › ".join(names), node, within)
    return out


# ----------------------------------------------------------------------------- reading

def read_weights(path: str | os.PathLike, max_bytes: int | None = None) -> WeightsFile:
    """Read a weights file, refusing one whose tensors take more than `max_bytes` before reading them.
    Raises WeightsLoadError (one line) on anything unreadable, unsafe or too large."""
    path = Path(path)
    if not path.exists():
        raise WeightsLoadError(f"{path} does not exist")
    if not path.is_file():
        raise WeightsLoadError(f"{path.name} is not a regular file")
    name = path.name.lower()
    with open(path, "rb") as f:
        head = f.read(16)
    if name.endswith(PROJECT_SUFFIX) or (head[:2] == b"PK" and _is_project_zip(path)):
        return _read_project(path, max_bytes)
    if name.endswith(KERAS_SUFFIXES) or head[:8] == b"\x89HDF\r\n\x1a\n":
        return _read_keras(path, max_bytes)
    if name.endswith(SAFETENSORS) or (not name.endswith(TORCH_SUFFIXES) and _looks_safetensors(head)):
        return _read_safetensors(path, max_bytes)
    return _read_torch(path, max_bytes)


def _too_large(path: Path, nbytes: int, max_bytes: int | None) -> None:
    if max_bytes is not None and nbytes > max_bytes:
        raise WeightsLoadError(f"{path.name} holds {_size_text(nbytes)} of weights, far more than this model needs "
                               f"(at most {_size_text(max_bytes)} are read for it): refused, it is not read. Is it "
                               "the weights of another, larger model?")


def _looks_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{"


def _read_safetensors(path: Path, max_bytes: int | None) -> WeightsFile:
    """The header first (names, dtypes, shapes, offsets: what the file will take), then the tensors."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise WeightsLoadError(f"{path.name} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", raw)
            if length > min(_MAX_HEADER, size - 8):
                raise WeightsLoadError(f"{path.name} is not a readable safetensors file (its header claims "
                                       f"{length:,} bytes)")
            header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WeightsLoadError(f"{path.name} is not a readable safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise WeightsLoadError(f"{path.name} is not a readable safetensors file")
    declared = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            declared += math.prod(int(d) for d in entry["shape"]) * _ITEM.get(entry["dtype"], 8)
        except (KeyError, TypeError, ValueError):
            raise WeightsLoadError(f"{path.name}: the header entry of {key[:60]!r} is damaged") from None
    _too_large(path, declared, max_bytes)
    if declared > size:
        raise WeightsLoadError(f"{path.name} declares {declared:,} bytes of tensors but holds {size:,}: it is "
                               "truncated or damaged")
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    except Exception as exc:  # safetensors' errors have several types
        raise WeightsLoadError(f"{path.name} is not a readable safetensors file ({_one_line(exc)})") from None
    return WeightsFile(path, "safetensors", tensors, nbytes=declared)


def _read_torch(path: Path, max_bytes: int | None) -> WeightsFile:
    """torch.load with weights_only=True: tensors and plain containers only, never a pickle of code."""
    import pickle

    _too_large(path, path.stat().st_size, max_bytes)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text or "Weights only load failed" in text:
            raise WeightsLoadError(
                f"{path.name} was refused: it is a pickle of Python objects (such as a whole model saved with "
                "torch.save(model)), which Deepwire never loads, since loading it could run code. Save "
                "model.state_dict() instead, or the weights as .safetensors") from None
        raise WeightsLoadError(f"{path.name} is not a readable PyTorch weights file ({_one_line(exc)})") from None
    except Exception as exc:  # torch.load raises many types on damaged files
        raise WeightsLoadError(f"{path.name} is not a readable PyTorch weights file ({_one_line(exc)})") from None
    notes: list[str] = []
    state = _state_of(data, path, notes)
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    return WeightsFile(path, "torch", state, notes, nbytes)


def _state_of(data, path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """The state dict in what torch.load returned: itself, or a checkpoint's "state_dict" / "model" / ..."""
    if isinstance(data, torch.Tensor):
        raise WeightsLoadError(f"{path.name} holds one tensor, not a state dict (names -> tensors)")
    if not isinstance(data, dict):
        raise WeightsLoadError(f"{path.name} holds a {type(data).__name__}, not a state dict (names -> tensors)")
    for _ in range(2):   # a checkpoint, possibly wrapping another
        if any(isinstance(v, torch.Tensor) for v in data.values()):
            break
        inner = next((k for k in CHECKPOINT_KEYS if isinstance(data.get(k), dict)), None)
        if inner is None:
            break
        others = [k for k in data if k != inner]
        notes.append(f"{path.name} is a checkpoint: its state dict under {inner!r} is read"
                     + (f" (not its {', '.join(map(repr, others[:4]))}{' ...' if len(others) > 4 else ''})"
                        if others else ""))
        data = data[inner]
    state = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    dropped = [str(k) for k, v in data.items() if not isinstance(v, torch.Tensor)]
    if not state:
        raise WeightsLoadError(f"{path.name} holds no tensors under names (not a state dict, nor a checkpoint "
                               f"with one under {', '.join(map(repr, CHECKPOINT_KEYS[:3]))})")
    if dropped:
        notes.append(f"{path.name}: {len(dropped)} entr{'ies' if len(dropped) > 1 else 'y'} that are not tensors "
                     f"ignored ({', '.join(map(repr, dropped[:3]))})")
    return state


def _is_project_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return "project.json" in zf.namelist() and "graph.json" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _read_project(path: Path, max_bytes: int | None) -> WeightsFile:
    from .project import load_project

    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            declared = zf.getinfo("weights.safetensors").file_size if "weights.safetensors" in names else 0
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsLoadError(f"{path.name} is not a readable Deepwire project ({_one_line(exc)})") from None
    if not declared:
        raise WeightsLoadError(f"{path.name} holds no trained weights (train it first, or load another file)")
    _too_large(path, declared, max_bytes)
    try:
        project = load_project(path)
    except FormatError as exc:
        raise WeightsLoadError(str(exc)) from None
    if not project.weights:
        raise WeightsLoadError(f"{path.name} holds no trained weights")
    notes = [n for n in project.notes if "NaN" not in n]   # non-finite values are reported per tensor
    return WeightsFile(path, "project", dict(project.weights), notes, declared)


# ----------------------------------------------------------------------------- Keras

# the Keras layer classes whose weights each block type can take, for matching by order
KERAS_CLASSES = {
    "Linear": ("Dense",), "Conv1d": ("Conv1D",), "Conv2d": ("Conv2D",),
    "ConvTranspose1d": ("Conv1DTranspose",), "ConvTranspose2d": ("Conv2DTranspose",),
    "DepthwiseConv2d": ("DepthwiseConv2D",), "SeparableConv2d": ("SeparableConv2D",),
    "BatchNorm": ("BatchNormalization",), "LayerNorm": ("LayerNormalization",), "Embedding": ("Embedding",),
    "PReLU": ("PReLU",), "LSTM": ("LSTM", "Bidirectional"), "GRU": ("GRU", "Bidirectional"),
    "RNN": ("SimpleRNN", "Bidirectional"), "MultiheadAttention": ("MultiHeadAttention",),
    "Normalization": ("Normalization",), "GroupNorm": ("GroupNormalization",), "LayerScale": ("LayerScale",),
}
_RECURRENT = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}


def _keras_classes() -> dict[str, str]:
    from .importers.keras import LAYERS, _snake

    return {_snake(cls): cls for cls in LAYERS}


def _read_keras(path: Path, max_bytes: int | None) -> WeightsFile:
    """A Keras weights file's layers (audited as the Keras importer audits it); the arrays are read when they
    are converted. A .keras file: its model.weights.h5."""
    from .importers.common import ModelImportError
    from .importers.keras.weights_file import WEIGHTS_MEMBER, _opened

    if path.name.lower().endswith(".keras"):
        raise WeightsLoadError(f"{path.name} is a whole Keras model: import it with File > Import Model, or load "
                               f"its weights file ({WEIGHTS_MEMBER}, from model.save_weights)")
    try:
        with _opened(path, path.name) as (h5py, f, size):
            store = _keras_store(h5py, f, size)
            declared = 0
            for ds in store.datasets:
                obj = f[ds]
                declared += math.prod(obj.shape or ()) * obj.dtype.itemsize
                del obj
            _too_large(path, declared, max_bytes)
            layers = _keras_layers(store, f)
    except ModelImportError as exc:
        raise WeightsLoadError(f"{path.name}: {exc}") from None
    if not layers:
        raise WeightsLoadError(f"{path.name} holds no Keras layer weights")
    return WeightsFile(path, "keras", nbytes=declared, keras_layers=layers)


def _keras_store(h5py, f, size: int):
    from .importers.common import ModelImportError
    from .importers.keras.weights_file import _WeightsFile

    try:
        return _WeightsFile(h5py, f, size, {})
    except ModelImportError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ModelImportError(f"it cannot be read ({_one_line(exc)})") from None


def _keras_layers(store, f) -> list[KerasLayer]:
    """The layers of the file that hold arrays, in the file's order (Keras 3: by class, then by number)."""
    from .importers.keras.weights_file import _attr_list, _attr_text

    classes = _keras_classes()
    out: list[KerasLayer] = []
    if store.legacy:
        config = _legacy_classes(f)
        for name in _attr_list(store.root, "layer_names"):
            group = store.root.get(name)
            if isinstance(group, store.h5py.Group) and _attr_list(group, "weight_names"):
                cls = config.get(name) or classes.get(re.sub(r"_\d+$", "", name))
                out.append(KerasLayer(name, name, cls))
        return out
    if store.layers is None:
        return out
    h5py = store.h5py

    def order(key: str):
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
        return m.group(1), int(m.group(2) or 0)

    def holds(group) -> bool:
        found = []
        group.visit(lambda n: found.append(n) if "seed_generator" not in n and "layers/" not in n
                    and isinstance(group.get(n), h5py.Dataset) else None)
        return bool(found)

    def walk(layers_group, key_prefix: str, names: tuple[str, ...]) -> None:
        for key in sorted(layers_group.keys(), key=order):
            group = layers_group.get(key)
            if not isinstance(group, h5py.Group):
                continue
            vars_ = group.get("vars")
            name = _attr_text(vars_, "name") if isinstance(vars_, h5py.Group) else None
            name = name or key
            inner = group.get("layers")
            if isinstance(inner, h5py.Group):       # a nested model: its layers, under its name
                walk(inner, f"{key_prefix}{key}/layers/", names + (name,))
            elif holds(group):
                out.append(KerasLayer(key_prefix + key, name, classes.get(order(key)[0]), names))

    walk(store.layers, "", ())
    return out


def _legacy_classes(f) -> dict[str, str]:
    """A tf.keras 2 whole-model .h5: its configuration names each layer's class."""
    from .importers.keras.weights_file import _attr_text

    try:
        text = _attr_text(f, "model_config")
        config = json.loads(text) if text else None
        layers = config["config"]["layers"]
        return {lay["config"]["name"]: lay["class_name"] for lay in layers}
    except (TypeError, KeyError, ValueError):
        return {}


def _keras_match(ms: ModelState, wf: WeightsFile, report: WeightsReport) -> dict[str, torch.Tensor]:
    """Each weighted block gets the Keras layer of its name, else the next of a class it can take (in the file's
    order); the layer's handler converts its arrays into the block's tensors."""
    from .importers.common import ModelImportError
    from .importers.keras import LAYERS
    from .importers.keras.registry import LayerWeights
    from .importers.keras.weights_file import _opened

    state, out = ms.state, {}
    by_path = {layer.path: layer for layer in wf.keras_layers}
    leaves: dict[str, list] = {}
    for layer in wf.keras_layers:
        leaves.setdefault(layer.name, []).append(layer)
    block_leaves: dict[str, int] = {}
    for _attr, _shown, node, _graph in ms.block_keys:
        block_leaves[node.name] = block_leaves.get(node.name, 0) + 1
    used: set[str] = set()
    plan = []
    for attr, shown, node, graph in ms.block_keys:          # by name first: the path of names, else a unique name
        layer = by_path.get(shown)
        if layer is None and len(leaves.get(node.name, ())) == 1 and block_leaves[node.name] == 1:
            layer = leaves[node.name][0]
        if layer is not None and layer.key not in used and (layer.cls in KERAS_CLASSES.get(node.type, ())
                                                            or layer.cls is None):
            used.add(layer.key)
            plan.append((attr, shown, node, graph, layer, "name"))
        else:
            plan.append((attr, shown, node, graph, None, ""))
    for i, (attr, shown, node, graph, layer, _how) in enumerate(plan):   # then by order, class by class
        if layer is not None:
            continue
        wanted = KERAS_CLASSES.get(node.type, ())
        layer = next((la for la in wf.keras_layers if la.key not in used and la.cls in wanted), None)
        if layer is not None:
            used.add(layer.key)
            plan[i] = (attr, shown, node, graph, layer, "order")
    try:
        with _opened(wf.path, wf.path.name) as (h5py, f, size):
            store = _keras_store(h5py, f, size)
            store.paths = {la.path: la.key for la in wf.keras_layers} if not store.legacy else {}
            for attr, shown, node, graph, layer, how in plan:
                keys = [k for k in state if k.startswith(attr + ".")]
                if layer is None:
                    report.missing.extend((k, shown) for k in keys)
                    continue
                full = attr + "."
                shapes = {k[len(full):]: tuple(state[k].shape) for k in keys}
                source = f"Keras {layer.cls or 'layer'} '{layer.shown}'"
                handler = None
                try:
                    handler, cfg, extra = _keras_conversion(node, graph, layer, shapes, ms, LAYERS, store)
                    tensors = handler.weights(LayerWeights(handler, layer.path if not store.legacy else layer.name,
                                                           cfg, extra, store, shapes))
                except (ModelImportError, KeyError, TypeError, ValueError, IndexError, RuntimeError,
                        AttributeError) as exc:
                    why = _one_line(exc)
                    where = f"{handler.keras_class} '{layer.path}'" if handler is not None else ""
                    for head in (f"{where}: ", f"{where} "):
                        if where and why.startswith(head):
                            why = why[len(head):]
                    key = keys[0] if keys else attr
                    report.mismatched.append(Mismatched(key, source, shown, tuple(state[key].shape) if keys else (),
                                                        (), why))
                    report.missing.extend((k, shown) for k in keys[1:])
                    continue
                for k in keys:
                    rel = k[len(full):]
                    value = tensors.get(rel)
                    if value is None:
                        report.missing.append((k, shown))
                    elif tuple(value.shape) != tuple(state[k].shape):
                        report.mismatched.append(Mismatched(k, f"{source} {rel}", shown, tuple(state[k].shape),
                                                            tuple(value.shape)))
                    else:
                        out[k] = value
                        report.matched.append(Matched(k, f"{source} {rel}", shown, how, tuple(value.shape)))
    except ModelImportError as exc:
        raise WeightsLoadError(f"{wf.path.name}: {exc}") from None
    report.unexpected.extend(f"Keras {la.cls or 'layer'} '{la.shown}'" for la in wf.keras_layers
                             if la.key not in used)
    return out


def _keras_conversion(node, graph, layer: KerasLayer, shapes: dict, ms: ModelState, handlers: dict, store):
    """(the handler, the layer configuration it reads, its `extra`) for converting `layer`'s arrays into
    `node`'s tensors: the configuration as the block's parameters and state say it."""
    cls = layer.cls or (KERAS_CLASSES.get(node.type) or (None,))[0]
    if cls not in handlers:
        raise ValueError(f"the Keras layer class {cls} has no conversion")
    handler = handlers[cls]
    params = node.params
    cfg = {"use_bias": any("bias" in k.split(".")[-1] for k in shapes)}
    extra = None
    if node.type in _RECURRENT:
        inner = handlers[_RECURRENT[node.type]]
        extra = inner
        cfg["units"] = int(params.get("hidden_size", 0))
        cfg["reset_after"] = True
        if int(params.get("num_layers", 1)) != 1:
            raise ValueError("a Keras layer is one recurrent layer; this block stacks several")
    elif node.type == "MultiheadAttention":
        heads = int(params.get("num_heads", 1))
        width = shapes.get("out_proj.weight", (0,))[0]
        cfg.update(num_heads=heads, key_dim=width // max(heads, 1))
    elif node.type == "BatchNorm":
        # Keras files [gamma if scale] [beta if center] mean, variance
        count = len(store.arrays(layer.path if not store.legacy else layer.name) or ())
        cfg.update(scale=count != 2, center=count >= 3)
    elif node.type == "Linear":
        extra = _flatten_order(node, graph, ms)
    return handler, cfg, extra


def _flatten_order(node, graph, ms: ModelState):
    """A Linear after a Flatten of a (C, H, W) image (or of a (C, T) sequence a 1-D convolution made): Keras
    flattened it channels-last, so the kernel's rows come in that order (the Keras importer's rule)."""
    sources = list(graph.inputs_of(node.id).values())
    if len(sources) != 1 or graph is not ms.graph:    # inside a module: not carried (the shapes are its instance's)
        return None
    flat = graph.node(sources[0])
    if flat.type != "Flatten":
        return None
    analysis = analyse(graph)
    before = analysis.inputs_of(graph, flat.id)
    if not before or before[0] not in analysis.specs:
        return None
    shape = tuple(analysis.specs[before[0]].shape)
    if len(shape) == 2 and not _one_d_channels_first(graph, before[0]):
        return None
    if len(shape) not in (2, 3):
        return None
    keras_shape = shape[1:] + shape[:1]
    order = torch.arange(math.prod(shape)).reshape(keras_shape).permute(len(shape) - 1, *range(len(shape) - 1))
    order = tuple(order.reshape(-1).tolist())
    return None if order == tuple(range(len(order))) else order


def _one_d_channels_first(graph, node_id: str) -> bool:
    """The (C, T) output of a 1-D convolution or pooling, through blocks that keep its layout."""
    keep = {"Activation", "BatchNorm", "Dropout", "GaussianNoise", "Add", "Multiply"}
    for _ in range(64):
        node = graph.node(node_id)
        if node.type.endswith("1d"):
            return True
        if node.type not in keep:
            return False
        node_id = graph.inputs_of(node_id).get(0)
        if node_id is None:
            return False
    return False


# ----------------------------------------------------------------------------- matching

def load_weights(graph: Graph, path: str | os.PathLike, current: dict | None = None, seed: int = 0) -> WeightsReport:
    """read_weights (bounded by what the graph's model needs) + match_weights."""
    ms = model_state(graph, seed)
    wf = read_weights(path, ms.limit)
    return match_weights(ms, wf, current)


def match_weights(model: Graph | ModelState, wf: WeightsFile, current: dict | None = None,
                  seed: int = 0) -> WeightsReport:
    """Match a file's tensors to a graph's model (a Graph, or its `model_state`) and build the report. `current`:
    the weights the model has now (Project.weights): tensors the file does not give keep them when they fit the
    graph, else the fresh ones (built with `seed`). Raises WeightsLoadError when nothing in the file fits."""
    ms = model if isinstance(model, ModelState) else model_state(model, seed)
    state = ms.state
    base = state
    keeps = "fresh"
    if current and set(current) == set(state) and all(tuple(current[k].shape) == tuple(v.shape)
                                                       for k, v in state.items()):
        base, keeps = current, "current"
    report = WeightsReport(source=wf.path.name, kind=wf.kind, total=len(state), keeps=keeps, notes=list(wf.notes))
    if wf.kind == "keras":
        found = _keras_match(ms, wf, report)
    else:
        found = _tensor_match(ms, wf.tensors, report, sorted_names=wf.kind in ("safetensors", "project"))
    # dtypes: a floating one converted, any other difference listed and not applied
    applied: dict[str, torch.Tensor] = {}
    kept: list[Matched] = []
    for m in report.matched:
        value, want = found[m.target], state[m.target]
        if value.dtype != want.dtype:
            if value.is_floating_point() and want.is_floating_point():
                m.converted = f"{_dtype(value)} -> {_dtype(want)}"
                value = value.to(want.dtype)
            else:
                report.mismatched.append(Mismatched(m.target, m.source, m.block, m.shape, m.shape,
                                                    f"{_dtype(value)} in the file, {_dtype(want)} here"))
                continue
        applied[m.target] = value.detach().to("cpu").clone().contiguous()
        kept.append(m)
    report.matched = kept
    report.nonfinite = [k for k, v in applied.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not applied:
        report.applied_state = None
        what = f"{wf.count} tensor{'s' * (wf.count != 1)}" if wf.kind != "keras" else \
            f"{wf.count} Keras layer{'s' * (wf.count != 1)}"
        report.notes.insert(0, f"none of the {what} in {wf.path.name} fits the graph (no name, nor the order and "
                               "shapes, agree): nothing is applied")
        return report
    report.applied_state = {k: applied.get(k, base[k]) for k in state}
    return report


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _natural(name: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def _modules(keys: list[str]) -> dict[str, list[str]]:
    """Tensor names grouped by their module (the name without its last part), in the order given."""
    out: dict[str, list[str]] = {}
    for key in keys:
        out.setdefault(key.rsplit(".", 1)[0] if "." in key else "", []).append(key)
    return out


def _pair_modules(left: list[str], rest: list[str], state: dict, source: dict,
                  aligned: bool = True) -> list[tuple[str, str]]:
    """(model name, file name) pairs by structure, module by module: the model's modules and the file's in
    order, aligned where their tensors agree in role (weight, bias, ...) and shape; then the same kind of
    module left on both sides, first to first; then modules with the same roles but other shapes (a changed
    block: listed as a mismatch). `aligned=False`: the file's order is not the model's (a safetensors file
    sorts its names), so only the kinds of module are paired, first to first in the names' order."""
    mine, theirs = _modules(left), _modules(rest)

    def roles(keys, shapes, with_shape=True):
        return tuple(sorted((_leaf(k), tuple(shapes[k].shape) if with_shape else ()) for k in keys))

    a = [roles(v, state) for v in mine.values()]
    b = [roles(v, source) for v in theirs.values()]
    m_names, t_names = list(mine), list(theirs)
    pairs: dict[str, str] = {}
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if aligned else ():
        if op == "equal":
            pairs.update(zip(m_names[i1:i2], t_names[j1:j2]))
    for strict in (True, False):
        for i, m in enumerate(m_names):
            if m in pairs:
                continue
            taken = set(pairs.values())
            want = a[i] if strict else roles(mine[m], state, False)
            for j, t in enumerate(t_names):
                if t not in taken and (b[j] if strict else roles(theirs[t], source, False)) == want:
                    pairs[m] = t
                    break
    out = []
    for m, t in pairs.items():
        by_role = {_leaf(k): k for k in theirs[t]}
        out.extend((k, by_role[_leaf(k)]) for k in mine[m] if _leaf(k) in by_role)
    return out


def _tensor_match(ms: ModelState, source: dict[str, torch.Tensor], report: WeightsReport,
                  sorted_names: bool = False) -> dict:
    """By name (after the best prefix change), then the rest by order and shape."""
    state, blocks = ms.state, ms.blocks
    strip, add = _best_prefix({k: tuple(v.shape) for k, v in state.items()},
                              {k: tuple(v.shape) for k, v in source.items()})
    if strip or add:
        report.notes.append(f"the file's names carry {strip!r} where the model's carry {add!r}" if strip and add
                            else f"the file's names start with {strip!r}, stripped" if strip
                            else f"{add!r} added to the file's names")
    found: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    left: list[str] = []

    def place(key: str, name: str, how: str) -> None:
        """The file's tensor `name` for the model's `key` (matched `how`), or a shape mismatch."""
        if tuple(source[name].shape) == tuple(state[key].shape):
            found[key] = source[name]
            report.matched.append(Matched(key, name, blocks[key], how, tuple(state[key].shape)))
        else:
            report.mismatched.append(Mismatched(key, name, blocks[key], tuple(state[key].shape),
                                                tuple(source[name].shape)))

    for key in state:
        name = strip + key[len(add):] if key.startswith(add) else None
        if name is not None and name in source:
            used.add(name)
            place(key, name, "name")
        else:
            left.append(key)
    rest = [k for k in source if k not in used]
    if sorted_names:   # a safetensors file keeps its names sorted, not in the model's order: numbers in order
        rest.sort(key=_natural)
    if left and rest:
        paired = _pair_modules(left, rest, state, source, aligned=not sorted_names)
        for key, name in paired:
            place(key, name, "order")
        done_t, done_s = {k for k, _ in paired}, {n for _, n in paired}
        left = [k for k in left if k not in done_t]
        rest = [k for k in rest if k not in done_s]
    report.missing.extend((k, blocks[k]) for k in left)
    report.unexpected.extend(rest)
    order = {k: i for i, k in enumerate(state)}
    report.matched.sort(key=lambda m: order[m.target])
    report.mismatched.sort(key=lambda m: order[m.target])
    return found


def _best_prefix(targets: dict[str, tuple], sources: dict[str, tuple]) -> tuple[str, str]:
    """(strip, add): the prefix the file's names carry where the model's carry `add` ("module.", "model."),
    chosen so that the most names agree with the same shapes (then the most names)."""

    def prefixes(names: list[str]) -> list[str]:
        counts: dict[str, int] = {}
        for name in names:
            parts = name.split(".")
            for n in (1, 2):
                if len(parts) > n:
                    p = ".".join(parts[:n]) + "."
                    counts[p] = counts.get(p, 0) + 1
        common = sorted(counts, key=lambda p: (-counts[p], p))[:16]
        return list(dict.fromkeys([p for p in COMMON_PREFIXES if p in counts] + common))

    def score(strip: str, add: str) -> tuple[int, int]:
        names = [(k, strip + k[len(add):]) for k in targets if k.startswith(add)]
        agree = [(k, n) for k, n in names if n in sources]
        return sum(targets[k] == sources[n] for k, n in agree), len(agree)

    best, best_score = ("", ""), score("", "")
    for strip in prefixes(list(sources)):
        s = score(strip, "")
        if s > best_score:
            best, best_score = (strip, ""), s
    for add in prefixes(list(targets)):
        s = score("", add)
        if s > best_score:
            best, best_score = ("", add), s
    return best


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
