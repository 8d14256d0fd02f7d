"""PyTorch -> graph: run the module's code, trace it with torch.fx, map each operation to a block.

Standard layers become blocks with their parameters and weights; common functional and tensor
operations (activations, flatten, view/reshape, permute, add, cat, mul, mean, scalar scaling)
become the matching blocks. Everything that does not map is collected, with its source line,
into one ModelImportError. The finished graph is compiled, given the module's weights and run
next to the module: if their outputs differ the import is refused, so a graph that silently
differs never comes back.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import math
import operator
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..blocks import TOKENS
from ..blocks.helpers import HELPERS
from .common import (
    GraphBuilder,
    ImportResult,
    ModelImportError,
    WeightsImportError,
    first_nonfinite,
    nonfinite_note,
)

BATCH = 3        # the example batch: odd, so a reshape that folds the batch away is noticed
_COUNTER = itertools.count()
FUSABLE = ("Linear", "Conv1d", "Conv2d", "ConvTranspose2d")
HELPER_MODULES = ("Normalization", "PositionalEmbedding", "RandomFlip", "RandomRotation", "RandomTranslation",
                  "RandomCrop", "GaussianNoise")
HELPER_FUNCTIONS = ("causal_mask", "bidirectional_last")


# ----------------------------------------------------------------------------- loading

def _load_file(path: Path):
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
        raise ModelImportError(f"running {path.name} failed{_where(exc, path)}: {_exc_text(exc)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _where(exc: BaseException, path: Path | None) -> str:
    """' at line N (`code`)' for the deepest frame of the traceback inside the user's file."""
    frames = traceback.extract_tb(exc.__traceback__)
    chosen = None
    for frame in frames:
        in_user = (path is not None and Path(frame.filename).resolve() == path.resolve()) or (
            path is None and not _library_file(frame.filename))
        if in_user:
            chosen = frame
    if chosen is None:
        return ""
    code = f" (`{chosen.line.strip()}`)" if chosen.line else ""
    return f" at {Path(chosen.filename).name} line {chosen.lineno}{code}"


def _library_file(filename: str) -> bool:
    parts = Path(filename).parts
    return "torch" in parts or "site-packages" in parts or "engine" in parts or filename.startswith("<")


def _is_helper(obj: Any, name: str) -> bool:
    """True when `obj` is Deepwire's own helper of that name (the exact source codegen writes)."""
    if name not in HELPERS:
        return False
    try:
        return inspect.getsource(obj).strip() == HELPERS[name].strip()
    except (OSError, TypeError):
        return False


def _pick_class(module, class_name: str | None, filename: str) -> type:
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ModelImportError(f"{filename} defines no {class_name!r}")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ModelImportError(f"{class_name} in {filename} is not an nn.Module class")
        return cls
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__
             and not _is_helper(v, v.__name__)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelImportError(f"{filename} defines no nn.Module class")
    names = ", ".join(c.__name__ for c in found)
    raise ModelImportError(f"{filename} defines several modules ({names}): choose one with --class")


def _instantiate(cls: type) -> nn.Module:
    try:
        return cls()
    except TypeError as exc:
        raise ModelImportError(f"{cls.__name__}() cannot be built without arguments ({str(exc)[:200]}): give its "
                               "parameters defaults, or import an instance") from None
    except Exception as exc:  # the user's constructor
        raise ModelImportError(f"building {cls.__name__}() failed{_where(exc, None)}: {_exc_text(exc)}") from None


def _read_weights(weights) -> dict[str, torch.Tensor]:
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
            raise ModelImportError(f"cannot read the weights in {path.name}: {_exc_text(exc)}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelImportError("the weights are not a state dict (names -> tensors)")
    return state


# ----------------------------------------------------------------------------- values

class _Pending:
    """A value that is not (yet) a single tensor of the graph."""

    what = "this value"


class _Size(_Pending):
    what = "a tensor's size"


class _Meta(_Pending):
    what = "a tensor's device or dtype"


class _Bad(_Pending):
    """The result of an unsupported operation (already reported)."""


class _Causal(_Pending):
    what = "a causal mask"


class _Rnn(_Pending):
    what = "a recurrent layer's (output, state) pair"

    def __init__(self, fx_node, module, inputs):
        self.fx_node, self.module, self.inputs = fx_node, module, inputs
        self.node_id: str | None = None
        self.mode: str | None = None   # "seq" or "last"


class _RnnSeq(_Pending):
    what = "a recurrent layer's output sequence"

    def __init__(self, rnn):
        self.rnn = rnn


class _RnnState(_Pending):
    what = "a recurrent layer's final state"

    def __init__(self, rnn):
        self.rnn = rnn


class _RnnH(_Pending):
    what = "a recurrent layer's final hidden state"

    def __init__(self, rnn):
        self.rnn = rnn


class _Attn(_Pending):
    what = "an attention layer's (output, weights) pair"

    def __init__(self, make):
        self.make = make
        self.node_id: str | None = None


class _Gap(_Pending):
    """AdaptiveAvgPool(1): a GlobalAvgPool until something needs the trailing 1s."""

    def __init__(self, src: str, rank: int, fx_node):
        self.src, self.rank, self.fx_node = src, rank, fx_node
        self.node_id: str | None = None


class _Unsupported(Exception):
    def __init__(self, message: str):
        super().__init__(message)


# ----------------------------------------------------------------------------- the importer

ACT_MODULES = {nn.ReLU: "relu", nn.GELU: "gelu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Softmax: "softmax",
               nn.LeakyReLU: "leaky_relu", nn.SiLU: "silu", nn.ELU: "elu"}
ACT_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", torch.sigmoid: "sigmoid",
                 F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh", F.softmax: "softmax",
                 torch.softmax: "softmax", F.leaky_relu: "leaky_relu", F.silu: "silu", F.elu: "elu"}
ACT_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax"}
ACT_ARGS = {"gelu": ("input", "approximate"), "softmax": ("input", "dim"),
            "leaky_relu": ("input", "negative_slope", "inplace"), "elu": ("input", "alpha", "inplace")}
ARITH = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.mul: "mul", operator.imul: "mul",
         torch.mul: "mul", operator.sub: "sub", operator.isub: "sub", torch.sub: "sub",
         operator.truediv: "div", operator.itruediv: "div", torch.div: "div"}
ARITH_METHODS = {"add": "add", "mul": "mul", "sub": "sub", "div": "div", "add_": "add", "mul_": "mul"}
RESHAPES_F = {torch.reshape: "reshape", torch.flatten: "flatten", torch.squeeze: "squeeze",
              torch.unsqueeze: "unsqueeze"}
RESHAPES_M = {"view", "reshape", "flatten", "squeeze", "unsqueeze"}
IDENTITY_M = {"contiguous", "clone", "detach"}
POOL_F = {F.max_pool1d: ("Max", 1), F.max_pool2d: ("Max", 2), F.avg_pool1d: ("Avg", 1), F.avg_pool2d: ("Avg", 2)}


def _compact(values) -> Any:
    """(3, 3) -> 3, as a person writes it; (3, 5) stays a list."""
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def _bind(node: fx.Node, names: tuple[str, ...], skip_self: bool = False) -> dict:
    args = dict(zip(names, node.args))
    args.update(node.kwargs)
    return args


class _Importer:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, title: str, path: Path | None,
                 shapes: list[tuple[int, ...]], dtypes: list[str]):
        self.gm, self.root, self.path = gm, root, path
        self.shapes, self.dtypes = shapes, dtypes
        self.b = GraphBuilder(title)
        self.env: dict[fx.Node, Any] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.called: dict[str, fx.Node] = {}
        self.rescale_nodes: set[str] = set()

    # ---------------------------------------------------------------- helpers
    def shape(self, n) -> tuple[int, ...] | None:
        meta = n.meta.get("tensor_meta") if isinstance(n, fx.Node) else None
        if meta is None or not hasattr(meta, "shape"):
            return None
        return tuple(meta.shape)

    def sample(self, n) -> tuple[int, ...]:
        shape = self.shape(n)
        if shape is None or not shape or shape[0] != BATCH:
            raise _Unsupported("changes the batch dimension")
        return shape[1:]

    def line(self, n: fx.Node) -> str:
        trace = n.stack_trace or ""
        frames = re.findall(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)', trace)
        chosen = None
        for filename, lineno, code in frames:
            mine = (self.path is not None and Path(filename).name == self.path.name
                    and Path(filename).resolve() == self.path.resolve()) or (
                self.path is None and not _library_file(filename))
            if mine:
                chosen = (filename, lineno, code)
        if chosen is None and frames:
            chosen = next((f for f in reversed(frames) if not _library_file(f[0])), frames[-1])
        if chosen is None:
            return ""
        filename, lineno, code = chosen
        return f"{Path(filename).name} line {lineno}" + (f" `{code.strip()}`" if code.strip() else "")

    def describe(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return f"{type(self.gm.get_submodule(n.target)).__name__} (self.{n.target})"
        if n.op == "call_method":
            return f".{n.target}()"
        if n.op == "get_attr":
            return f"the tensor self.{n.target}"
        target = n.target
        module = getattr(target, "__module__", None) or ""
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
        if module in ("_operator", "operator"):
            return f"operator {name}"
        if module.startswith("torch._C") or module in ("torch", "torch._VariableFunctions"):
            module = "torch"
        return f"{module}.{name}" if module else name

    def value(self, arg) -> str:
        """The graph node of an fx argument that must be a tensor."""
        v = self.env[arg] if isinstance(arg, fx.Node) else arg
        if isinstance(v, str):
            return v
        if isinstance(v, _Bad):
            raise _BadInput()
        if isinstance(v, _Gap):
            return self.gap_node(v, keep_dims=True)
        if isinstance(v, _RnnSeq):
            return self.rnn_node(v.rnn, "seq")
        if isinstance(v, _Pending):
            raise _Unsupported(f"uses {v.what} as a tensor")
        raise _Unsupported(f"uses the constant {v!r} as a tensor")

    def is_tensor(self, arg) -> bool:
        return isinstance(arg, fx.Node) and not isinstance(self.env.get(arg), (_Size, _Meta, _Causal))

    def add(self, type_name, name, params=None, inputs=(), weights=None, n=None) -> str:
        where = self.line(n) if n is not None else name
        return self.b.add(type_name, name, params, list(inputs), weights, where=f"{name} ({where})" if n else name)

    def module_name(self, target: str) -> str:
        return target.replace(".", "_")

    # ---------------------------------------------------------------- main loop
    def run(self):
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        for i, n in enumerate(inputs):
            name = n.target if len(inputs) > 1 or n.target not in ("x", "inputs", "input", "x_in") else "input"
            self.env[n] = self.b.add("Input", name, {"shape": list(self.shapes[i]), "dtype": self.dtypes[i]})
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                continue
            if n.op == "output":
                self.outputs(n)
                continue
            if any(isinstance(self.env.get(a), _Bad) for a in n.all_input_nodes):
                self.env[n] = _Bad()
                continue
            try:
                self.env[n] = self.map(n)
            except _BadInput:
                self.env[n] = _Bad()
            except _Unsupported as exc:
                self.problems.append(f"{self.line(n) or n.name}: {self.describe(n)} {exc}")
                self.env[n] = _Bad()
            except ModelImportError as exc:
                self.problems.append(str(exc))
                self.env[n] = _Bad()
        for v in set(self.env.values()):
            if isinstance(v, _Rnn) and v.node_id is None:
                self.problems.append(f"{self.line(v.fx_node)}: the output of self.{v.fx_node.target} is never used "
                                     "as a sequence or a last step")
        if self.problems:
            unique = list(dict.fromkeys(self.problems))
            raise ModelImportError(f"cannot import {self.b.graph.name}: {len(unique)} operation"
                                   f"{'s' * (len(unique) != 1)} {'have' if len(unique) != 1 else 'has'} no Deepwire "
                                   "block: " + "; ".join(unique))

    def outputs(self, n: fx.Node) -> None:
        result = n.args[0]
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        for i, v in enumerate(values):
            if not isinstance(v, fx.Node):
                self.problems.append(f"forward returns {type(v).__name__}, not a tensor")
                continue
            if isinstance(self.env.get(v), _Bad):
                continue
            try:
                src = self.value(v)
            except (_Unsupported, _BadInput) as exc:
                if isinstance(exc, _Unsupported):
                    self.problems.append(f"forward returns {self.env[v].what}")
                continue
            self.b.add("Output", "output" if i == 0 else f"output_{i}", {}, [src])

    def map(self, n: fx.Node):
        if n.op == "get_attr":
            raise _Unsupported("is used directly in forward (a free parameter or buffer has no block)")
        if n.op == "call_module":
            return self.call_module(n)
        if n.op == "call_method":
            return self.call_method(n)
        return self.call_function(n)

    # ---------------------------------------------------------------- modules
    def call_module(self, n: fx.Node):
        m = self.gm.get_submodule(n.target)
        has_state = any(True for _ in itertools.chain(m.parameters(), m.buffers()))
        if has_state:
            if n.target in self.called:
                raise _Unsupported("is called more than once: shared weights have no Deepwire block "
                                   "(make one module per use)")
            self.called[n.target] = n
        name = self.module_name(n.target)
        kind = type(m)
        if kind in ACT_MODULES:
            return self.activation(n, ACT_MODULES[kind], self.module_act_args(m), n.args[0])
        if isinstance(m, nn.Identity):
            return self.value(n.args[0])
        if len(n.args) != 1 or n.kwargs:
            if not isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder,
                                  nn.RNNBase)):
                raise _Unsupported("is called with extra arguments")
        state = {k: v for k, v in m.state_dict().items()}
        if kind is nn.Linear:
            src = self.value(n.args[0])
            return self.add("Linear", name, {"units": m.out_features, "bias": m.bias is not None}, [src], state, n)
        if kind in (nn.Conv1d, nn.Conv2d):
            return self.conv(n, m, name, state)
        if kind is nn.ConvTranspose2d:
            if m.groups != 1 or any(d != 1 for d in m.dilation) or m.padding_mode != "zeros":
                raise _Unsupported("with groups, dilation or a padding mode has no Deepwire block")
            params = {"filters": m.out_channels, "kernel_size": _compact(m.kernel_size),
                      "stride": _compact(m.stride), "padding": _compact(m.padding),
                      "output_padding": _compact(m.output_padding), "bias": m.bias is not None}
            return self.add("ConvTranspose2d", name, params, [self.value(n.args[0])], state, n)
        if kind in (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d):
            nd = 1 if kind in (nn.MaxPool1d, nn.AvgPool1d) else 2
            pool = "Max" if kind in (nn.MaxPool1d, nn.MaxPool2d) else "Avg"
            opts = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
                    "dilation": getattr(m, "dilation", 1), "ceil_mode": m.ceil_mode,
                    "return_indices": getattr(m, "return_indices", False),
                    "count_include_pad": getattr(m, "count_include_pad", True),
                    "divisor_override": getattr(m, "divisor_override", None)}
            return self.pool(n, pool, nd, opts, name)
        if kind in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
            return self.adaptive(n, m.output_size, 1 if kind is nn.AdaptiveAvgPool1d else 2)
        if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            if not m.affine or not m.track_running_stats or m.momentum is None:
                raise _Unsupported("without affine weights, running statistics or a momentum has no Deepwire "
                                   "block")
            return self.add("BatchNorm", name, {"eps": float(m.eps), "momentum": float(m.momentum)},
                            [self.value(n.args[0])], state, n)
        if kind is nn.LayerNorm:
            shape = self.sample(n.args[0])
            if tuple(m.normalized_shape) != shape[-1:] or not m.elementwise_affine or m.bias is None:
                raise _Unsupported("normalises over more than the last dimension or has no learned scale and "
                                   "shift; Deepwire's LayerNorm normalises the last dimension")
            return self.add("LayerNorm", name, {"eps": float(m.eps)}, [self.value(n.args[0])], state, n)
        if kind is nn.Dropout:
            return self.add("Dropout", name, {"p": float(m.p)}, [self.value(n.args[0])], None, n)
        if kind is nn.Flatten:
            return self.reshape(n, n.args[0])
        if kind is nn.Unflatten:
            return self.reshape(n, n.args[0])
        if kind is nn.Embedding:
            if m.max_norm is not None:
                raise _Unsupported("with max_norm has no Deepwire block")
            if m.padding_idx is not None:
                self.notes.append(f"Embedding '{name}': padding_idx={m.padding_idx} is not kept (its row now "
                                  "trains like the others)")
            return self.add("Embedding", name, {"num_embeddings": m.num_embeddings,
                                                "embedding_dim": m.embedding_dim}, [self.value(n.args[0])], state, n)
        if isinstance(m, nn.RNNBase):
            return self.rnn(n, m)
        if kind is nn.MultiheadAttention:
            return self.attention(n, m, name, state)
        if kind is nn.TransformerEncoderLayer:
            causal = self.encoder_kwargs(n, ("src_mask", "src_key_padding_mask", "is_causal"))
            return self.encoder_layer(n, m, name, state, self.value(n.args[0]), causal)
        if kind is nn.TransformerEncoder:
            causal = self.encoder_kwargs(n, ("mask", "src_key_padding_mask", "is_causal"))
            src = self.value(n.args[0])
            for i, layer in enumerate(m.layers):
                src = self.encoder_layer(n, layer, f"{name}_{i}", layer.state_dict(), src, causal)
            if m.norm is not None:
                norm = m.norm
                if not isinstance(norm, nn.LayerNorm) or not norm.elementwise_affine or norm.bias is None:
                    raise _Unsupported("has a final norm Deepwire cannot express")
                src = self.add("LayerNorm", f"{name}_norm", {"eps": float(norm.eps)}, [src], norm.state_dict(), n)
            return src
        helper = self.helper_module(m)
        if helper is not None:
            type_name, params, weights = helper(n)
            return self.add(type_name, name, params, [self.value(n.args[0])], weights, n)
        raise _Unsupported("has no Deepwire block")

    def module_act_args(self, m) -> dict:
        if isinstance(m, nn.GELU):
            return {"approximate": m.approximate}
        if isinstance(m, nn.Softmax):
            return {"dim": m.dim}
        if isinstance(m, nn.LeakyReLU):
            return {"negative_slope": m.negative_slope}
        if isinstance(m, nn.ELU):
            return {"alpha": m.alpha}
        return {}

    def conv(self, n, m, name, state):
        if m.padding_mode != "zeros":
            raise _Unsupported(f"with padding_mode={m.padding_mode!r} has no Deepwire block (only zeros)")
        if isinstance(m.padding, str):
            padding = m.padding
        else:
            padding = "valid" if not any(m.padding) else _compact(m.padding)
        nd = 1 if isinstance(m, nn.Conv1d) else 2
        params = {"filters": m.out_channels, "kernel_size": _compact(m.kernel_size), "stride": _compact(m.stride),
                  "padding": padding, "dilation": _compact(m.dilation), "groups": m.groups, "bias": m.bias is not None}
        return self.add(f"Conv{nd}d", name, params, [self.value(n.args[0])], state, n)

    def pool(self, n, pool, nd, opts, name):
        def tup(v):
            return list(v) if isinstance(v, (tuple, list)) else [v] * nd
        if tup(opts.get("dilation", 1)) != [1] * nd or opts.get("ceil_mode") or opts.get("return_indices"):
            raise _Unsupported("with dilation, ceil_mode or return_indices has no Deepwire block")
        if opts.get("divisor_override") is not None:
            raise _Unsupported("with divisor_override has no Deepwire block")
        kernel = tup(opts["kernel_size"])
        stride = tup(opts["stride"]) if opts.get("stride") not in (None, (), []) else kernel
        padding = tup(opts.get("padding", 0))
        if pool == "Avg" and any(padding) and not opts.get("count_include_pad", True):
            raise _Unsupported("with count_include_pad=False has no Deepwire block")
        params = {"kernel_size": _compact(kernel), "stride": 0 if stride == kernel else _compact(stride),
                  "padding": _compact(padding)}
        return self.add(f"{pool}Pool{nd}d", name, params, [self.value(n.args[0])], None, n)

    def adaptive(self, n, output_size, nd):
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
        if any(s != 1 for s in sizes):
            raise _Unsupported("to a size other than 1 has no Deepwire block (GlobalAvgPool averages to 1)")
        src = self.value(n.args[0])
        return _Gap(src, nd + 1, n)

    def gap_node(self, gap: _Gap, keep_dims: bool) -> str:
        if gap.node_id is None:
            gap.node_id = self.add("GlobalAvgPool", "global_avg_pool", {"layout": "channels_first"}, [gap.src])
        if not keep_dims:
            return gap.node_id
        channels = self.b.specs[gap.node_id].shape[0]
        return self.add("Reshape", "reshape", {"shape": [channels] + [1] * (gap.rank - 1)}, [gap.node_id])

    def helper_module(self, m):
        name = type(m).__name__
        if name not in HELPER_MODULES or not _is_helper(type(m), name):
            return None

        def normalization(n):
            shape = self.sample(n.args[0])
            stats = tuple(m.mean.shape)
            if m.eps != 1e-7 or len(stats) != len(shape):
                raise _Unsupported("has statistics Deepwire's Normalization cannot hold")
            rank = len(shape)
            for axis in [rank - 1] + list(range(rank)):
                if stats == tuple(d if i == axis else 1 for i, d in enumerate(shape)):
                    return "Normalization", {"axis": -1 if axis == rank - 1 else axis}, m.state_dict()
            raise _Unsupported(f"keeps statistics of shape {stats}, which is not one axis of {shape}")

        def positional(n):
            shape = self.sample(n.args[0])
            learned = isinstance(m.weight, nn.Parameter)
            if tuple(m.weight.shape) != tuple(shape):
                raise _Unsupported(f"has a table of {tuple(m.weight.shape)} for inputs of {shape}; Deepwire's "
                                   "positional table is as long as the sequence")
            return "PositionalEmbedding", {"kind": "learned" if learned else "sinusoidal"}, m.state_dict()

        makers = {
            "Normalization": normalization,
            "PositionalEmbedding": positional,
            "RandomFlip": lambda n: ("RandomFlip", {"mode": m.mode}, {}),
            "RandomRotation": lambda n: ("RandomRotation", {"degrees": float(m.degrees)}, {}),
            "RandomTranslation": lambda n: ("RandomTranslation", {"height_factor": float(m.height_factor),
                                                                  "width_factor": float(m.width_factor)}, {}),
            "RandomCrop": lambda n: ("RandomCrop", {"padding": int(m.padding)}, {}),
            "GaussianNoise": lambda n: ("GaussianNoise", {"stddev": float(m.stddev)}, {}),
        }
        return makers[name]

    # ---------------------------------------------------------------- recurrent
    def rnn(self, n, m):
        if not m.batch_first:
            raise _Unsupported("uses batch_first=False: Deepwire's sequences are batch-first (B, T, F); build it "
                               "with batch_first=True")
        if getattr(m, "proj_size", 0):
            raise _Unsupported("with proj_size has no Deepwire block")
        if len(n.args) > 1 or n.kwargs:
            raise _Unsupported("is given an initial state; Deepwire's recurrent blocks start from zeros")
        return _Rnn(n, m, [n.args[0]])

    def rnn_node(self, rnn: _Rnn, mode: str) -> str:
        if rnn.node_id is not None:
            if rnn.mode != mode:
                raise _Unsupported(f"uses both the sequence and the last step of self.{rnn.fx_node.target}; "
                                   "a Deepwire recurrent block returns one of them")
            return rnn.node_id
        m = rnn.module
        kind = {nn.RNN: "RNN", nn.LSTM: "LSTM", nn.GRU: "GRU"}.get(type(m))
        if kind is None:
            raise _Unsupported("is a recurrent layer Deepwire does not know")
        params = {"hidden_size": m.hidden_size, "num_layers": m.num_layers, "bidirectional": m.bidirectional,
                  "return_sequences": mode == "seq", "dropout": float(m.dropout) if m.num_layers > 1 else 0.0,
                  "bias": m.bias}
        if kind == "RNN":
            params["nonlinearity"] = m.nonlinearity
        name = self.module_name(rnn.fx_node.target)
        if m.dropout and m.num_layers == 1:
            self.notes.append(f"{kind} '{name}': dropout={m.dropout} does nothing with one layer and is dropped")
        rnn.node_id = self.add(kind, name, params, [self.value(rnn.inputs[0])], m.state_dict(), rnn.fx_node)
        rnn.mode = mode
        return rnn.node_id

    def getitem(self, n):
        base, index = n.args
        v = self.env[base]
        if isinstance(v, _Rnn):
            if index == 0:
                return _RnnSeq(v)
            if index == 1:
                return _RnnH(v) if not isinstance(v.module, nn.LSTM) else _RnnState(v)
        elif isinstance(v, _RnnState):
            if index == 0:
                return _RnnH(v.rnn)
            raise _Unsupported("reads an LSTM's cell state, which no Deepwire block returns")
        elif isinstance(v, _RnnSeq):
            if self.is_last_step(index):
                if v.rnn.module.bidirectional:
                    raise _Unsupported("takes the last step of a bidirectional layer, whose backward half ends at "
                                       "step 0 (use Deepwire's bidirectional_last, or return_sequences)")
                return self.rnn_node(v.rnn, "last")
        elif isinstance(v, _RnnH):
            m = v.rnn.module
            layers = m.num_layers * (2 if m.bidirectional else 1)
            if index in (-1, layers - 1) and not m.bidirectional:
                return self.rnn_node(v.rnn, "last")
            raise _Unsupported("reads a final state Deepwire cannot express (only the last layer of a "
                               "unidirectional layer)")
        elif isinstance(v, _Attn):
            if index == 0:
                if v.node_id is None:
                    v.node_id = v.make()
                return v.node_id
            raise _Unsupported("uses the attention weights, which no Deepwire block returns")
        elif isinstance(v, (_Size, _Meta)):
            return _Size()
        raise _Unsupported("indexes a tensor; Deepwire has no block for that")

    @staticmethod
    def is_last_step(index) -> bool:
        full = slice(None, None, None)
        return (isinstance(index, tuple) and len(index) in (2, 3) and index[0] == full and index[1] == -1
                and all(i == full for i in index[2:]))

    # ---------------------------------------------------------------- attention
    def causal_from(self, value) -> bool:
        if value is None:
            return False
        if isinstance(value, fx.Node) and isinstance(self.env.get(value), _Causal):
            return True
        raise _Unsupported("is given a mask other than Deepwire's causal_mask(); only causal masks map to a block")

    def attention(self, n, m, name, state):
        if not m.batch_first:
            raise _Unsupported("uses batch_first=False: build it with batch_first=True (Deepwire's sequences are "
                               "batch-first)")
        if m.bias_k is not None or m.add_zero_attn:
            raise _Unsupported("with add_bias_kv or add_zero_attn has no Deepwire block")
        args = _bind(n, ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask"))
        if args.get("key_padding_mask") is not None:
            raise _Unsupported("is given a key_padding_mask, which no Deepwire block takes")
        causal = self.causal_from(args.get("attn_mask"))
        if args.get("is_causal") and not causal:
            raise _Unsupported("is_causal needs a causal attn_mask")
        q, k, v = args["query"], args["key"], args["value"]
        mode = "self" if q is k is v else "query_key_value"
        srcs = [self.value(q)] if mode == "self" else [self.value(q), self.value(k), self.value(v)]
        params = {"num_heads": m.num_heads, "mode": mode, "causal": causal, "dropout": float(m.dropout),
                  "bias": m.in_proj_bias is not None or m.out_proj.bias is not None}
        return _Attn(lambda: self.add("MultiheadAttention", name, params, srcs, state, n))

    def encoder_kwargs(self, n, names) -> bool:
        kwargs = dict(zip(("src",) + names, n.args))
        kwargs.update(n.kwargs)
        if kwargs.get(names[1]) is not None:
            raise _Unsupported(f"is given a {names[1]}, which no Deepwire block takes")
        causal = self.causal_from(kwargs.get(names[0]))
        if kwargs.get("is_causal") and not causal:
            raise _Unsupported("is_causal needs a causal mask")
        return causal

    def encoder_layer(self, n, layer, name, state, src, causal):
        if not layer.self_attn.batch_first:
            raise _Unsupported("uses batch_first=False: build it with batch_first=True")
        act = getattr(layer, "activation_relu_or_gelu", 0)
        activation = {1: "relu", 2: "gelu"}.get(act)
        if activation is None:
            raise _Unsupported("uses an activation other than relu or gelu")
        if layer.norm1.eps != 1e-5 or layer.norm2.eps != 1e-5:
            raise _Unsupported(f"uses layer_norm_eps={layer.norm1.eps}; Deepwire's encoder layer uses 1e-5")
        if layer.linear1.bias is None:
            raise _Unsupported("without bias has no Deepwire block")
        params = {"nhead": layer.self_attn.num_heads, "dim_feedforward": layer.linear1.out_features,
                  "dropout": float(layer.dropout.p), "activation": activation, "norm_first": bool(layer.norm_first),
                  "causal": causal}
        return self.add("TransformerEncoderLayer", name, params, [src], state, n)

    # ---------------------------------------------------------------- functions and methods
    def call_function(self, n: fx.Node):
        t = n.target
        if t is operator.getitem:
            return self.getitem(n)
        if t is getattr:
            base, attr = n.args
            if attr in ("shape",):
                return _Size()
            if attr in ("device", "dtype"):
                return _Meta()
            raise _Unsupported(f"reads .{attr}, which Deepwire cannot express")
        helper_name = getattr(t, "__name__", "")
        if helper_name in HELPER_FUNCTIONS and _is_helper(t, helper_name):
            if helper_name == "causal_mask":
                return _Causal()
            v = self.env.get(n.args[0])
            if isinstance(v, _RnnSeq) and v.rnn.module.bidirectional:
                return self.rnn_node(v.rnn, "last")
            raise _Unsupported("is applied to something other than a bidirectional recurrent layer's output")
        if t in ACT_FUNCTIONS:
            name = ACT_FUNCTIONS[t]
            return self.activation(n, name, _bind(n, ACT_ARGS.get(name, ("input",))), n.args[0])
        if t in ARITH:
            return self.arith(n, ARITH[t], n.args[0], n.args[1] if len(n.args) > 1 else n.kwargs.get("other"))
        if t is torch.cat or t is torch.concat or t is torch.concatenate:
            args = _bind(n, ("tensors", "dim"))
            return self.concat(n, args["tensors"], args.get("dim", 0))
        if t in RESHAPES_F:
            return self.reshape(n, n.args[0], RESHAPES_F[t], _bind(n, ("input", "start_dim", "end_dim")))
        if t is torch.mean:
            args = _bind(n, ("input", "dim", "keepdim"))
            return self.mean(n, args["input"], args.get("dim"), args.get("keepdim", False))
        if t is torch.permute:
            args = _bind(n, ("input", "dims"))
            return self.permute(n, args["input"], args["dims"])
        if t is torch.transpose:
            args = _bind(n, ("input", "dim0", "dim1"))
            return self.transpose(n, args["input"], args["dim0"], args["dim1"])
        if t is F.dropout:
            args = _bind(n, ("input", "p", "training", "inplace"))
            return self.add("Dropout", "dropout", {"p": float(args.get("p", 0.5))}, [self.value(args["input"])],
                            None, n)
        if t in POOL_F:
            pool, nd = POOL_F[t]
            names = ("input", "kernel_size", "stride", "padding") + (
                ("dilation", "ceil_mode", "return_indices") if pool == "Max"
                else ("ceil_mode", "count_include_pad", "divisor_override"))
            return self.pool(n, pool, nd, _bind(n, names), f"{pool.lower()}_pool{nd}d")
        if t in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d):
            args = _bind(n, ("input", "output_size"))
            return self.adaptive(n, args["output_size"], 1 if t is F.adaptive_avg_pool1d else 2)
        if t in (operator.floordiv, operator.mod, operator.neg) or not any(self.is_tensor(a) for a in n.args):
            if all(not isinstance(self.env.get(a), str) for a in n.all_input_nodes):
                return _Size()
        raise _Unsupported("has no Deepwire block")

    def call_method(self, n: fx.Node):
        t = n.target
        self_arg = n.args[0]
        if isinstance(self.env.get(self_arg), (_Size, _Meta)):
            return _Size()
        if t == "size":
            return _Size()
        if t in IDENTITY_M:
            return self.value(self_arg)
        if t in ("float",) and self.b.specs.get(self.env.get(self_arg)) is not None:
            if self.b.specs[self.env[self_arg]].dtype != TOKENS:
                return self.value(self_arg)
        if t in ACT_METHODS:
            name = ACT_METHODS[t]
            return self.activation(n, name, _bind(n, ACT_ARGS.get(name, ("input",))), self_arg)
        if t in ARITH_METHODS:
            return self.arith(n, ARITH_METHODS[t], self_arg, n.args[1] if len(n.args) > 1 else n.kwargs.get("other"))
        if t in RESHAPES_M:
            if t == "squeeze" and isinstance(self.env.get(self_arg), _RnnH):
                rnn = self.env[self_arg].rnn
                if rnn.module.num_layers == 1 and not rnn.module.bidirectional:
                    return self.rnn_node(rnn, "last")
            return self.reshape(n, self_arg, t, _bind(n, ("input", "start_dim", "end_dim")))
        if t == "mean":
            args = _bind(n, ("input", "dim", "keepdim"))
            return self.mean(n, self_arg, args.get("dim"), args.get("keepdim", False))
        if t == "permute":
            dims = n.args[1:]
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = dims[0]
            return self.permute(n, self_arg, n.kwargs.get("dims", dims))
        if t == "transpose":
            args = _bind(n, ("input", "dim0", "dim1"))
            return self.transpose(n, self_arg, args["dim0"], args["dim1"])
        raise _Unsupported("has no Deepwire block")

    # ---------------------------------------------------------------- op helpers
    def activation(self, n, name, args, src_arg):
        shape = self.sample(src_arg) if isinstance(src_arg, fx.Node) else None
        if name == "gelu" and args.get("approximate", "none") != "none":
            raise _Unsupported("with approximate='tanh' has no Deepwire block (Deepwire's GELU is exact)")
        if name == "softmax":
            dim = args.get("dim")
            if dim is None or shape is None or dim not in (-1, len(shape)):
                raise _Unsupported("over a dimension other than the last has no Deepwire block")
        if name == "leaky_relu" and float(args.get("negative_slope", 0.01)) != 0.01:
            raise _Unsupported("with a slope other than 0.01 has no Deepwire block")
        if name == "elu" and float(args.get("alpha", 1.0)) != 1.0:
            raise _Unsupported("with alpha other than 1 has no Deepwire block")
        src = self.value(src_arg)
        if (isinstance(src_arg, fx.Node) and len(src_arg.users) == 1 and self.b.type_of(src) in FUSABLE
                and self.b.params_of(src).get("activation") == "none" and not self.b.graph.consumers_of(src)):
            self.b.update(src, {"activation": name})
            return src
        return self.add("Activation", name, {"function": name}, [src], None, n)

    def scalar(self, value) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return None

    def arith(self, n, op, a, b):
        if n.kwargs.get("alpha", 1) != 1:
            raise _Unsupported("with alpha has no Deepwire block")
        ta, tb = self.is_tensor(a), self.is_tensor(b)
        if not ta and not tb:
            return _Size()
        if ta and tb:
            if self.shape(a) != self.shape(b):
                raise _Unsupported(f"combines tensors of different shapes {self.shape(a)[1:]} and "
                                   f"{self.shape(b)[1:]} (broadcasting); Deepwire's merges need equal shapes")
            if op == "add":
                return self.add("Add", "add", {}, [self.value(a), self.value(b)], None, n)
            if op == "mul":
                return self.add("Multiply", "multiply", {}, [self.value(a), self.value(b)], None, n)
            raise _Unsupported("of two tensors has no Deepwire block (Add and Multiply do)")
        tensor, const = (a, b) if ta else (b, a)
        c = self.scalar(const)
        if c is None:
            raise _Unsupported(f"with {type(const).__name__} {const!r} has no Deepwire block")
        if op == "div":
            if not ta:
                raise _Unsupported("divides a number by a tensor; Deepwire has no block for that")
            if c == 0:
                raise _Unsupported("divides by zero")
            scale, offset = 1.0 / c, 0.0
        elif op == "mul":
            scale, offset = c, 0.0
        elif op == "add":
            scale, offset = 1.0, c
        else:  # sub
            scale, offset = (1.0, -c) if ta else (-1.0, c)
        src = self.value(tensor)
        if (len(tensor.users) == 1 and src in self.rescale_nodes and not self.b.graph.consumers_of(src)):
            old = self.b.params_of(src)
            self.b.update(src, {"scale": old["scale"] * scale, "offset": old["offset"] * scale + offset})
            return src
        node_id = self.add("Rescaling", "rescaling", {"scale": scale, "offset": offset}, [src], None, n)
        self.rescale_nodes.add(node_id)
        return node_id

    def concat(self, n, tensors, dim):
        if not isinstance(tensors, (list, tuple)) or len(tensors) < 2:
            raise _Unsupported("of fewer than two tensors has no Deepwire block")
        rank = len(self.shape(tensors[0]) or ())
        dim = dim % rank if rank else dim
        if dim == 0:
            raise _Unsupported("joins along the batch dimension; Deepwire's Concatenate joins within samples")
        sample_dim = -1 if dim == rank - 1 else dim - 1
        return self.add("Concatenate", "concatenate", {"dim": sample_dim}, [self.value(t) for t in tensors], None, n)

    def reshape(self, n, src_arg, kind: str = "", args: dict | None = None):
        v = self.env.get(src_arg)
        out = self.sample(n)
        if isinstance(v, _Gap):
            if len(out) == 1:
                return self.gap_node(v, keep_dims=False)
            src = self.gap_node(v, keep_dims=True)
        else:
            src = self.value(src_arg)
        shape_in = self.b.specs[src].shape
        if tuple(out) == tuple(shape_in):
            return src
        if len(out) == 1 and len(shape_in) > 1:
            return self.add("Flatten", "flatten", {}, [src], None, n)
        return self.add("Reshape", "reshape", {"shape": list(out)}, [src], None, n)

    def mean(self, n, src_arg, dim, keepdim):
        if keepdim:
            raise _Unsupported("with keepdim=True has no Deepwire block")
        full = self.shape(src_arg)
        if full is None or dim is None:
            raise _Unsupported("over every dimension has no Deepwire block")
        rank = len(full)
        dims = {d % rank for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        src = self.value(src_arg)
        if rank == 3 and dims == {1}:
            return self.add("GlobalAvgPool", "global_avg_pool", {"layout": "sequence"}, [src], None, n)
        if rank in (3, 4) and dims == set(range(2, rank)):
            return self.add("GlobalAvgPool", "global_avg_pool", {"layout": "channels_first"}, [src], None, n)
        raise _Unsupported("over these dimensions has no Deepwire block (GlobalAvgPool averages over time, or over "
                           "every position of a (C, L) or (C, H, W) input)")

    def permute(self, n, src_arg, dims):
        full = self.shape(src_arg)
        rank = len(full or ())
        perm = [d % rank for d in dims]
        if sorted(perm) != list(range(rank)) or perm[0] != 0:
            raise _Unsupported("moves the batch dimension; Deepwire's Permute reorders within samples")
        src = self.value(src_arg)
        if perm == list(range(rank)):
            return src
        return self.add("Permute", "permute", {"dims": [p - 1 for p in perm[1:]]}, [src], None, n)

    def transpose(self, n, src_arg, d0, d1):
        rank = len(self.shape(src_arg) or ())
        perm = list(range(rank))
        perm[d0 % rank], perm[d1 % rank] = perm[d1 % rank], perm[d0 % rank]
        return self.permute(n, src_arg, perm)


class _BadInput(Exception):
    """An input of this operation comes from an unsupported one (already reported)."""


# ----------------------------------------------------------------------------- entry point

class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[type], autowrap: tuple):
        super().__init__(autowrap_functions=autowrap)
        self.record_stack_traces = True
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in self.leaves or super().is_leaf_module(m, qualname)


def _normalise_shapes(input_shape) -> list[tuple[int, ...]] | None:
    if input_shape is None:
        return None
    if isinstance(input_shape, str):
        input_shape = [input_shape]
    items = list(input_shape)
    if items and all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        items = [items]
    shapes = []
    for item in items:
        if isinstance(item, str):
            try:
                item = [int(d) for d in item.replace("x", ",").replace(" ", "").strip("()[]").split(",") if d]
            except ValueError:
                raise ModelImportError(f"input shape {item!r} is not whole numbers separated by commas, "
                                       "e.g. 1,28,28") from None
        shape = tuple(int(d) for d in item)
        if not shape or any(d < 1 for d in shape):
            raise ModelImportError(f"input shape {shape} needs positive sizes (without the batch dimension)")
        shapes.append(shape)
    return shapes


def _example(shapes, dtypes, gm: fx.GraphModule) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    sizes = [m.num_embeddings for m in gm.modules() if isinstance(m, nn.Embedding)]
    out = []
    for shape, dtype in zip(shapes, dtypes):
        if dtype == TOKENS:
            out.append(torch.randint(0, min(sizes, default=2), (BATCH, *shape), generator=generator))
        else:
            out.append(torch.randn((BATCH, *shape), generator=generator))
    return out


def _guess_inputs(gm: fx.GraphModule, placeholders) -> tuple[list | None, list[str]]:
    shapes, dtypes = [], []
    for p in placeholders:
        users = [u for u in gm.graph.nodes if p in u.all_input_nodes]
        first = users[0] if users else None
        module = gm.get_submodule(first.target) if first is not None and first.op == "call_module" else None
        dtypes.append(TOKENS if isinstance(module, nn.Embedding) or (first is not None and first.target is F.embedding)
                      else "float32")
        shapes.append((module.in_features,) if isinstance(module, nn.Linear) else None)
    return shapes, dtypes


def import_torch(source, class_name=None, input_shape=None, weights=None, graph_only: bool = False) -> ImportResult:
    path = None
    globals_: dict = {}
    if isinstance(source, nn.Module):
        model = source
    elif isinstance(source, type) and issubclass(source, nn.Module):
        model = _instantiate(source)
    else:
        path = Path(source)
        module = _load_file(path)
        globals_ = vars(module)
        model = _instantiate(_pick_class(module, class_name, path.name))
    title = type(model).__name__
    if path is None:
        try:
            path = Path(inspect.getsourcefile(type(model)))
        except (TypeError, OSError):
            path = None
    if weights is not None:
        try:
            model.load_state_dict(_read_weights(weights), strict=True)
        except RuntimeError as exc:
            raise WeightsImportError(f"the weights do not fit {title}: {str(exc).splitlines()[1:2] or str(exc)}") \
                from None

    # Deepwire's own helpers (in an exported model.py) stay whole: they map to blocks
    leaves = {type(m) for m in model.modules() if type(m).__name__ in HELPER_MODULES
              and _is_helper(type(m), type(m).__name__)}
    forward_globals = getattr(type(model).forward, "__globals__", {})
    autowrap = tuple(f for name in HELPER_FUNCTIONS for f in [forward_globals.get(name)]
                     if f is not None and _is_helper(f, name))
    tracer = _Tracer(leaves, autowrap)
    was_training = model.training
    model.train()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError... from the user's forward
        raise ModelImportError(f"torch.fx cannot trace {title}{_where(exc, path)}: {_exc_text(exc)} (Deepwire "
                               "imports modules whose forward runs the same operations for every input)") from None
    finally:
        model.train(was_training)
    gm = fx.GraphModule(tracer.root, graph, title)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise ModelImportError(f"{title}.forward takes no inputs")

    shapes = _normalise_shapes(input_shape)
    guessed_shapes, dtypes = _guess_inputs(gm, placeholders)
    if shapes is None and "INPUT_SHAPES" in globals_:
        shapes = _normalise_shapes(globals_["INPUT_SHAPES"])
        exported = globals_.get("INPUT_DTYPES")
        if isinstance(exported, (list, tuple)) and len(exported) == len(placeholders):
            dtypes = [TOKENS if d == TOKENS else "float32" for d in exported]
    if shapes is None:
        shapes = guessed_shapes
    if len(shapes) != len(placeholders):
        raise ModelImportError(f"{title}.forward takes {len(placeholders)} input(s) but {len(shapes)} input shape(s) "
                               "were given")
    for p, shape in zip(placeholders, shapes):
        if shape is None:
            raise ModelImportError(f"the shape of {title}'s input '{p.target}' cannot be read from the model: give it "
                                   "without the batch dimension (--input-shape 1,28,28 on the command line)")

    gm.eval()
    example = _example(shapes, dtypes, gm)
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*example)
    except Exception as exc:  # the model refuses inputs of that shape
        raise ModelImportError(f"{title} cannot run on inputs of shape "
                               f"{', '.join(str(s) for s in shapes)}{_where(exc, path)}: {_exc_text(exc)}") from None

    importer = _Importer(gm, model, title, path, shapes, dtypes)
    importer.run()
    result_graph, state, compiled = importer.b.finish(with_weights=True)
    _verify(model, compiled, example, title)
    notes = importer.notes
    source_params = sum(p.numel() for p in model.parameters())
    graph_params = sum(v.numel() for k, v in state.items() if k in dict(compiled.named_parameters()))
    if graph_params != source_params:
        notes.append(f"{title} has {source_params:,} parameters; the graph has {graph_params:,} (modules that "
                     "forward never calls are left out)")
    if graph_only:
        return ImportResult(result_graph, None, notes, source_params)
    bad = first_nonfinite(state)
    if bad is not None:
        notes.append(nonfinite_note(bad, f"{title}'s '{bad.split('.', 1)[0]}'"))
    return ImportResult(result_graph, state, notes, source_params)


def _verify(model: nn.Module, compiled: nn.Module, example: list[torch.Tensor], title: str) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = model(*example)
            got = compiled(*example)
    finally:
        model.train(was_training)
    want = want if isinstance(want, (tuple, list)) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for a, b in zip(want, got):
        if tuple(a.shape) != tuple(b.shape):
            raise ModelImportError(f"the imported graph of {title} returns shape {tuple(b.shape)} instead of "
                                   f"{tuple(a.shape)}; this is an importer bug")
        scale = max(1.0, float(a.abs().max()))
        diff = float((a.float() - b.float()).abs().max())
        if diff > 1e-4 * scale:
            raise ModelImportError(f"the imported graph of {title} does not reproduce its outputs (largest "
                                   f"difference {diff:.3g}); this is an importer bug")
