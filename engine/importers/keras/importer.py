"""The importer: the graph being built from a Keras configuration, the tensors' orders, and the walk over a
Sequential or functional model's layers, each mapped by its handler (`registry.LAYERS`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...analysis import analyse
from ...blocks import TOKENS, TensorSpec
from ...blocks.module import MODULE
from ...graph import Graph, GraphError
from ...naming import to_class_name
from ...templates import layout
from ..common import GraphBuilder, ImportResult, ModelImportError
from . import layers as _handlers  # noqa: F401  (importing them registers the handlers)
from .reading import _brief, _first, _read, _ref, _shape, _shown, _snake, _tensor_refs, _what, keras_paths
from .registry import CONSTANTS, LAYERS, LayerHandler, Skip, T, _channels_first, tensor_inputs
from .weights import _load_weights, _own_weights, _placed

MODELS = ("Sequential", "Functional", "Model")
MAX_LAYERS = 2000
CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, ZeroDivisionError)


@dataclass
class Scope:
    """The top model or one nested model (a module's instance): what placing its blocks' weights needs."""

    convert: dict[str, tuple[LayerHandler, str, dict, Any]] = field(default_factory=dict)   # node -> (handler,
    #                                                                           layer name, config, extra)
    counts: list[tuple[str, str, int, list[str]]] = field(default_factory=list)  # (class, name, keras params, nodes)
    paths: dict[str, str] = field(default_factory=dict)   # layer name -> where Keras 3 files its weights (under
    #                                                       layers/)
    children: dict[str, Scope] = field(default_factory=dict)   # Module instance node -> the nested model's scope
    model: tuple[str, str] = ("", "")   # a nested model's class and name

    @property
    def what(self) -> str:
        return f"{self.model[0]} '{_shown(self.model[1])}'"

    @property
    def within(self) -> str:
        return f" (in the nested model '{_shown(self.model[1])}')"


class Importer:
    """A Keras model being imported: the graph built so far and what the weights need to be placed. While a
    nested model is built, `b` and `scope` are its definition's."""

    def __init__(self, name: str):
        self.b = self.top = GraphBuilder(name)
        self.scope = self.top_scope = Scope()
        self.notes: list[str] = []
        self.tokens: set[str] = set()   # input layers that feed an Embedding (a handler that takes_tokens)
        self.scrambled: list[str] = []   # layers whose weights-free mapping depends on a Keras flat order
        self.without_weights: list[str] = []   # notes that hold when the graph is imported without weights
        self.depth = 0                 # how deep in nested models the import is

    @property
    def convert(self) -> dict[str, tuple[LayerHandler, str, dict, Any]]:
        return self.scope.convert

    @property
    def counts(self) -> list[tuple[str, str, int, list[str]]]:
        return self.scope.counts

    @property
    def paths(self) -> dict[str, str]:
        return self.scope.paths

    # ---------------------------------------------------------------- tensors
    def kshape(self, t: T) -> tuple[int, ...]:
        dw = self.b.specs[t.node].shape
        out = [0] * len(dw)
        for i, p in enumerate(t.perm):
            out[p] = dw[i]
        return tuple(out)

    def ensure(self, t: T, perm: tuple[int, ...], name: str) -> T:
        if t.perm == tuple(perm):
            return t
        dims = [t.perm.index(p) for p in perm]
        node = self.b.add("Permute", f"{name}_permute", {"dims": dims}, [t.node])
        return T(node, tuple(perm))

    def keras_order(self, t: T, name: str) -> T:
        return self.ensure(t, tuple(range(len(t.perm))), name)

    def last_axis(self, t: T, axis: int, name: str) -> T:
        """Make Keras sample axis `axis` the last Deepwire dim (the others keep their order)."""
        if t.perm[-1] == axis:
            return t
        return self.ensure(t, tuple(p for p in t.perm if p != axis) + (axis,), name)

    def first_axis(self, t: T, axis: int, name: str) -> T:
        if t.perm[0] == axis:
            return t
        return self.ensure(t, (axis,) + tuple(p for p in t.perm if p != axis), name)

    def sample_axis(self, axis, rank: int) -> int:
        """A Keras axis (counting the batch as 0, negatives from the end) -> a sample axis."""
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise Skip(f"over several axes {list(axis)} has no Deepwire block")
            axis = axis[0]
        full = int(axis) % (rank + 1)
        if full == 0:
            raise Skip("works over the batch axis, which Deepwire cannot express")
        return full - 1

    def count(self, cls: str, name: str, keras_params: int, nodes: list[str]) -> None:
        self.counts.append((cls, name, keras_params, nodes))

    # ---------------------------------------------------------------- inputs
    def input_layer(self, name: str, shape: list | None, dtype: str | None, where: str | None = None) -> T:
        """`where`: how messages name the input (default: InputLayer 'name')."""
        where = where or f"InputLayer '{name}'"
        if shape is None:
            raise ModelImportError(f"the model's input shape is not in its configuration ({where}): build the model "
                                   "(call it or give an Input) before saving it")
        sample = shape[1:]
        if not sample or any(d is None for d in sample):
            raise ModelImportError(f"{where} has a variable size {_what(tuple(sample), 80)}: Deepwire needs a fixed "
                                   "shape; give every dimension except the batch a size in Keras")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in sample):
            raise ModelImportError(f"{where} has a shape Deepwire cannot read ({_what(tuple(sample), 80)})")
        rank = len(sample)
        perm = _channels_first(rank) if rank == 3 else tuple(range(rank))
        dw_shape = [int(sample[p]) for p in perm]
        tokens = name in self.tokens
        node = self.b.add("Input", name, {"shape": dw_shape, "dtype": TOKENS if tokens else "float32"}, where=where)
        return T(node, perm)

    # ---------------------------------------------------------------- layers
    def layer(self, cls: str, name: str, cfg: dict, ins: list[T], kwargs: dict) -> T:
        handler = LAYERS.get(cls)
        if kwargs.get("mask") is not None:
            raise Skip("is given a mask, which Deepwire does not carry")
        if CONSTANTS in kwargs and not getattr(handler, "takes_constants", False):
            raise Skip(f"is called with the number {_what(kwargs[CONSTANTS][0])} among its inputs, which Deepwire "
                       "does not carry")
        if handler is None and cls not in MODELS:
            raise Skip("has no Deepwire block")
        if handler is not None and not handler.many_inputs and len(ins) != 1:
            raise Skip(f"takes {len(ins)} inputs")
        graph = self.b.graph
        before = set(graph.node_ids()) if cfg.get("trainable") is False else None
        out = self.nested(cls, name, cfg, ins) if handler is None else handler.build(self, name, cfg, ins, kwargs)
        if before is not None:      # trainable=False in Keras: the blocks it became are frozen
            for node_id in graph.node_ids():
                if node_id not in before and "trainable" in graph.node(node_id).params:
                    graph.node(node_id).params["trainable"] = False
        return out

    # ---------------------------------------------------------------- nested models
    def nested(self, cls: str, name: str, cfg: dict, ins: list[T]) -> T:
        """A Sequential or functional model used as a layer becomes a module: its layers are built into a
        definition of their own (its inputs the definition's Inputs, its output the Output), which the graph
        uses through one Module instance named after the model. Two nested models that build the same blocks
        share one definition. Their weights are found where Keras files them, under the nested model's own
        `layers/`, and placed under the instance's attribute."""
        if self.depth >= 8:
            raise Skip("nests models more than 8 deep")
        outer_path = self.paths.get(name, name)
        layers = cfg.get("layers")
        if not isinstance(layers, list) or not layers:
            raise Skip("is a nested model without layers")
        sequential = cls == "Sequential"
        layers = self.entries(layers, sequential=sequential)
        first = layers[0]["name"] if layers[0]["class_name"] == "InputLayer" else "input"
        if sequential and layers[0]["class_name"] == "InputLayer":
            layers = layers[1:]
        if sequential:
            if len(ins) != 1:
                raise Skip(f"takes {len(ins)} inputs")
            inputs = [first]
        else:
            inputs = [r[0] for r in self.refs(cfg.get("input_layers"))]
            if len(inputs) != len(ins):
                raise Skip(f"takes {len(inputs)} inputs and is given {len(ins)}")
            outputs = self.refs(cfg.get("output_layers"))
            if len(outputs) != 1:
                raise Skip(f"has {len(outputs)} outputs; Deepwire imports nested models of one output")
        scope = Scope(paths={k: f"{outer_path}/layers/{v}" for k, v in keras_paths(layers).items()},
                      model=(cls, name))
        outer_scope, outer_builder = self.scope, self.b
        self.scope, self.b = scope, GraphBuilder(name)
        self.depth += 1
        try:
            ports = []
            for port, t in zip(inputs, ins):
                spec = outer_builder.specs[t.node]
                node = self.b.add("Input", port, {"shape": list(spec.shape), "dtype": spec.dtype})
                ports.append(T(node, t.perm, t.order))
            if sequential:
                out = ports[0]
                for layer in layers:
                    out = self.inner(name, layer, [out], {})
            else:
                tensors = self.walk(layers, given=dict(zip(inputs, ports)), outer=name)
                if tensors.get(outputs[0][0]) is None:
                    raise Skip(f"names '{_shown(outputs[0][0])}' as its output, which is not one of its layers")
                out = tensors[outputs[0][0]]
            self.b.add("Output", "output", {}, [out.node])
            definition, spec = self.b.graph, self.b.specs[out.node]
        finally:
            self.depth -= 1
            self.scope, self.b = outer_scope, outer_builder
        module = self.define(name, definition)
        node = _instance(self.b, name, module, [t.node for t in ins], spec)
        outer_scope.children[node] = scope
        return T(node, out.perm, out.order)

    def define(self, name: str, definition) -> str:
        """Add `definition` to the top graph's modules, pruned of what reaches no output and laid out; the name
        of the definition that already builds the same blocks when there is one."""
        graph = self.top.graph
        analysis = analyse(definition, graph.modules)
        for node_id in [n for n in definition.node_ids() if n not in analysis.live]:
            if definition.node(node_id).type != "Input":
                definition.remove_node(node_id)
        layout(definition)
        key = _structure(definition)
        for module, other in graph.modules.items():
            if _structure(other) == key:
                return module
        module = graph.module_name(to_class_name(name, "Module"))
        try:
            graph.add_module(module, definition)
        except GraphError as exc:
            raise Skip(str(exc)) from None
        return module

    def inner(self, outer: str, layer: dict, ins: list[T], kwargs: dict) -> T:
        """One layer of a nested model; what it cannot map names the layer and the model it is in."""
        cls, name = layer["class_name"], layer["name"]
        try:
            return self.layer(cls, name, layer["config"], ins, kwargs)
        except Skip as exc:
            raise ModelImportError(f"{cls} '{_shown(name)}' (in the nested model '{_shown(outer)}') {exc}") from None
        except CONFIG_ERRORS as exc:
            raise ModelImportError(f"{cls} '{_shown(name)}' (in the nested model '{_shown(outer)}') has a "
                                   f"configuration Deepwire cannot read ({_brief(exc)})") from None

    def simple(self, cls, name, type_name, params, t: T, keras_params=0) -> T:
        node = self.b.add(type_name, name, params, [t.node], where=f"{cls} '{name}'")
        self.count(cls, name, keras_params, [node])
        return T(node, t.perm, t.order)   # elementwise or per-feature: a flat order carries through

    def reordered(self, cls: str, name: str, ins: list[T]) -> None:
        """A layer that cannot follow a flat order other than Keras' (a Reshape after Flatten, ...)."""
        if any(t.order is not None for t in ins):
            self.scrambled.append(f"{cls} '{name}'")


    # ---------------------------------------------------------------- models
    def entries(self, layers: list, sequential: bool) -> list[dict]:
        """Each layer as {class_name, name, config, build_config, inbound_nodes}, with the types those need, or
        a ModelImportError naming the layer (by name, else by position)."""
        if len(layers) > MAX_LAYERS:
            raise ModelImportError(f"the model has {len(layers):,} layers; Deepwire imports at most {MAX_LAYERS:,}")
        out, seen = [], set()
        for i, layer in enumerate(layers, 1):
            if not isinstance(layer, dict):
                raise ModelImportError(f"layer {i} of the model is not a layer object (it is a {type(layer).__name__})")
            cls, config = layer.get("class_name"), layer.get("config")
            config = {} if config is None else config
            name = layer.get("name")
            if not isinstance(name, str) or not name.strip():
                name = config.get("name") if isinstance(config, dict) else None
            label = f"'{_shown(name)}'" if isinstance(name, str) and name.strip() else f"layer {i} of the model"
            if not isinstance(cls, str) or not cls.strip():
                raise ModelImportError(f"{'layer ' if label.startswith(chr(39)) else ''}{label} has no class name")
            cls = _shown(cls)
            if not isinstance(config, dict):
                raise ModelImportError(f"{cls} {label}: its configuration is not an object")
            if not isinstance(name, str) or not name.strip():
                if not sequential:
                    raise ModelImportError(f"{cls} layer {i} of the model has no name")
                name = _snake(cls) or "layer"
            elif name in seen and not sequential:
                raise ModelImportError(f"two layers are named '{_shown(name)}'")
            seen.add(name)
            build = layer.get("build_config")
            out.append({"class_name": cls, "name": name, "config": config,
                        "build_config": build if isinstance(build, dict) else {},
                        "inbound_nodes": layer.get("inbound_nodes")})
        return out

    def sequential(self, model: dict) -> None:
        cfg = model.get("config")
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        if not isinstance(layers, list) or not layers:
            raise ModelImportError("the Sequential model has no layers")
        layers = self.entries(layers, sequential=True)
        self.scope.paths = keras_paths(layers)
        problems = []
        first = layers[0]
        if first["class_name"] == "InputLayer":
            icfg = first["config"]
            shape = _shape(_first(icfg, "batch_shape", "batch_input_shape"))
            dtype, name, layers = icfg.get("dtype"), first["name"], layers[1:]
        else:
            fcfg, build = first["config"], model.get("build_config")
            shape = _shape(_first(fcfg, "batch_input_shape", "batch_shape")
                           or first["build_config"].get("input_shape") or cfg.get("build_input_shape")
                           or (build.get("input_shape") if isinstance(build, dict) else None))
            dtype, name = None, "input"
        where = None if first["class_name"] == "InputLayer" else f"the input of {first['class_name']} " \
                                                                   f"'{_shown(first['name'])}'"
        if layers and getattr(LAYERS.get(layers[0]["class_name"]), "takes_tokens", False):
            self.tokens.add(name)
        t = self.input_layer(name, shape, dtype, where)
        for layer in layers:
            cls, lcfg, lname = layer["class_name"], layer["config"], layer["name"]
            if problems:   # shapes after a failed layer are unknown: only name what else has no block
                self.unmapped(cls, lname, problems)
                continue
            try:
                t = self.layer(cls, lname, lcfg, [t], {})
            except Skip as exc:
                problems.append(f"{cls} '{lname}' {exc}")
            except ModelImportError as exc:
                problems.append(str(exc))
            except CONFIG_ERRORS as exc:
                problems.append(f"{cls} '{lname}' has a configuration Deepwire cannot read ({_brief(exc)})")
        self.fail(problems)
        self.b.add("Output", "output", {}, [t.node])

    def functional(self, model: dict) -> None:
        cfg = model.get("config")
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        if not isinstance(layers, list):
            raise ModelImportError("the functional model's configuration has no layers")
        layers = self.entries(layers, sequential=False)
        self.scope.paths = keras_paths(layers)
        tensors = self.walk(layers)
        outputs = self.refs(cfg.get("output_layers"))
        if not outputs:
            raise ModelImportError("the functional model names no outputs")
        for i, ref in enumerate(outputs):
            if tensors.get(ref[0]) is None:
                raise ModelImportError(f"the model's output '{_shown(ref[0])}' is not one of its layers' results")
            self.b.add("Output", "output" if i == 0 else f"output_{i}", {}, [tensors[ref[0]].node])

    def walk(self, layers: list[dict], given: dict | None = None, outer: str | None = None) -> dict:
        """Map a functional model's layers in an order where each one's inputs are there: every layer's result
        by its name (None where it failed). `given`: a nested model's inputs (its input layer names -> the
        tensors it is called with); `outer`: its name."""
        by_name = {layer["name"]: layer for layer in layers}
        calls = {layer["name"]: self.calls(layer) for layer in layers}
        for layer in layers if given is None else ():  # inputs that feed an Embedding hold token ids
            if getattr(LAYERS.get(layer["class_name"]), "takes_tokens", False):
                for args, _ in calls[layer["name"]]:
                    for ref in args:
                        if by_name.get(ref[0], {}).get("class_name") == "InputLayer":
                            self.tokens.add(ref[0])
        tensors: dict[str, T | None] = {}
        problems: list[str] = []
        pending = list(layers)
        while pending:
            progress = False
            for layer in list(pending):
                name, cls, lcfg = layer["name"], layer["class_name"], layer["config"]
                if cls == "InputLayer":
                    if given is not None:
                        if name not in given:
                            raise Skip(f"has an input '{_shown(name)}' it is not given")
                        tensors[name] = given[name]
                    else:
                        shape = _shape(_first(lcfg, "batch_shape", "batch_input_shape"))
                        tensors[name] = self.input_layer(name, shape, lcfg.get("dtype"))
                    pending.remove(layer)
                    progress = True
                    continue
                here = calls[name]
                if len(here) > 1:
                    problems.append(f"{cls} '{name}' is called {len(here)} times: shared layers have no Deepwire "
                                    "equivalent (make one layer per use)")
                    tensors[name] = None
                    pending.remove(layer)
                    progress = True
                    continue
                if not here:
                    pending.remove(layer)
                    progress = True
                    continue
                args, kwargs = here[0]
                refs = args + [r for r in kwargs.values() if isinstance(r, tuple)]
                if any(r[0] not in tensors for r in refs):
                    continue
                pending.remove(layer)
                progress = True
                if any(tensors[r[0]] is None for r in refs):   # after a failed layer: name only what has no block
                    self.unmapped(cls, name, problems)
                    tensors[name] = None
                    continue
                try:
                    if any(r[1] != 0 or r[2] != 0 for r in refs):
                        raise Skip("uses a second output of another layer, which Deepwire cannot express")
                    handler = LAYERS.get(cls)
                    ins = (handler.inputs if handler else tensor_inputs)(args, kwargs, tensors)
                    plain = {k: v for k, v in kwargs.items() if not isinstance(v, tuple)}
                    if outer:
                        tensors[name] = self.inner(outer, layer, ins, plain)
                    else:
                        tensors[name] = self.layer(cls, name, lcfg, ins, plain)
                except Skip as exc:
                    problems.append(f"{cls} '{name}' {exc}")
                    tensors[name] = None
                except ModelImportError as exc:
                    problems.append(str(exc))
                    tensors[name] = None
                except CONFIG_ERRORS as exc:
                    problems.append(f"{cls} '{name}' has a configuration Deepwire cannot read ({_brief(exc)})")
                    tensors[name] = None
            if not progress:
                for layer in pending:
                    for args, kwargs in calls[layer["name"]]:
                        for ref in args + [r for r in kwargs.values() if isinstance(r, tuple)]:
                            if ref[0] not in by_name:
                                raise ModelImportError(f"{layer['class_name']} '{_shown(layer['name'])}' takes its "
                                                       f"input from '{_shown(ref[0])}', which is not a layer of the "
                                                       "model")
                names = ", ".join(f"'{_shown(layer['name'])}'" for layer in pending)
                raise ModelImportError(f"the model's layers take their inputs from each other in a circle "
                                       f"({names[:200]})")
        if outer and problems:
            raise ModelImportError("; ".join(problems))
        self.fail(problems)
        return tensors

    def calls(self, layer: dict) -> list[tuple[list, dict]]:
        """Each call of a layer: (positional tensor refs, keyword args with tensors as refs); a ref is a tuple
        (layer name, node index, tensor index)."""
        where = f"{layer['class_name']} '{_shown(layer['name'])}'"
        nodes = layer["inbound_nodes"]
        if nodes is None:
            return []
        if not isinstance(nodes, list):
            raise ModelImportError(f"{where}: its inbound nodes are not a list")
        out = []
        try:
            for node in nodes:
                if isinstance(node, dict):   # Keras 3: {"args": [...], "kwargs": {...}}
                    args = [_ref(r) for r in _tensor_refs(node.get("args", []))]
                    kw = node.get("kwargs")
                    kw = {} if kw is None else kw
                    if not isinstance(kw, dict):
                        raise ValueError("its call's keyword arguments are not an object")
                    kwargs = {}
                    numbers = _numbers(node.get("args", []))
                    if numbers:   # Add()([x, 3.0]): what `x + 3.0` becomes in a functional model
                        kwargs[CONSTANTS] = numbers
                    for k, v in kw.items():
                        refs = _tensor_refs(v)
                        kwargs[k] = _ref(refs[0]) if refs else v
                elif isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
                    args, kwargs = [], {}
                    for item in node:
                        if not isinstance(item, list) or len(item) < 3:
                            raise ValueError(f"an inbound node holds {_what(item)}, not a tensor")
                        args.append(_ref(item[:3]))
                        if len(item) > 3 and isinstance(item[3], dict):
                            for k, v in item[3].items():
                                is_ref = isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)
                                kwargs[k] = _ref(v[:3]) if is_ref else v
                else:
                    raise ValueError(f"an inbound node is {_what(node)}, not a call")
                out.append((args, kwargs))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelImportError(f"{where}: {_brief(exc)}") from None
        return out

    @staticmethod
    def refs(value) -> list[tuple]:
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return [(value[0], value[1], value[2])]
        if isinstance(value, dict):
            return [r for v in value.values() for r in Importer.refs(v)]
        if isinstance(value, list):
            return [r for v in value for r in Importer.refs(v)]
        return []

    @staticmethod
    def unmapped(cls: str, name: str, problems: list[str]) -> None:
        """After a failed layer (shapes are unknown from there): name a layer only if it has no handler."""
        if cls not in LAYERS and cls not in MODELS:
            problems.append(f"{cls} '{name}' has no Deepwire block")

    def fail(self, problems: list[str]) -> None:
        if problems:
            n = len(problems)
            raise ModelImportError(f"cannot import the Keras model: {n} layer{'s' * (n != 1)} cannot be imported: "
                                   + "; ".join(problems))


def _instance(b: GraphBuilder, name: str, module: str, inputs: list[str], spec: TensorSpec) -> str:
    """A Module instance in `b`'s graph, whose result has `spec` (its definition's output). GraphBuilder.add
    infers a block's shape from the block alone, which a Module's cannot be: it is its definition's."""
    try:
        node = b.graph.add_node(MODULE, name, {"module": module, "repeat": 1})
        for port, src in enumerate(inputs):
            b.graph.connect(src, node, port)
    except GraphError as exc:   # e.g. more blocks than a graph may hold
        raise ModelImportError(f"the nested model '{_shown(name)}': {exc}") from None
    b.specs[node] = spec
    return node


def _structure(definition: Graph) -> str:
    """What a definition computes, without its blocks' names and places: equal for two nested models built alike."""
    data = definition.to_dict()
    return json.dumps([[(n["id"], n["type"], n["params"]) for n in data["nodes"]], data["edges"]], sort_keys=True)


def _scopes(scope: Scope, graph: Graph, analysis, what: str = "", modules: dict | None = None):
    """(scope, its graph, its analysis, " (in the nested model 'name')" or "") for the top model and each nested
    model, depth first; the analysis is None for a nested model left out (it reaches no output)."""
    yield scope, graph, analysis, what
    modules = graph.modules if modules is None else modules
    for node, child in scope.children.items():
        if analysis is None or node not in graph or not analysis.modules.get(node):
            yield child, graph, None, what
            continue
        definition = modules.get(graph.node(node).params["module"])
        yield from _scopes(child, definition, analysis.modules[node][0], child.within, modules)


def _keras_params(scope: Scope) -> int:
    return sum(c[2] for c in scope.counts) + sum(_keras_params(c) for c in scope.children.values())


def _drop_unused_modules(graph: Graph) -> None:
    """Remove the definitions no instance left in the graph uses (a nested model that reaches no output)."""
    used, stack = set(), [graph]
    while stack:
        for node in stack.pop().nodes():
            name = node.params.get("module") if node.type == MODULE else None
            if name in graph.modules and name not in used:
                used.add(name)
                stack.append(graph.modules[name])
    for name in [m for m in graph.modules if m not in used]:
        graph.remove_module(name)


def _numbers(args) -> list[float]:
    """The plain numbers among a call's positional arguments (a list of inputs included)."""
    out = []
    for item in args if isinstance(args, list) else []:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(float(item))
        elif isinstance(item, list):
            out.extend(_numbers(item))
    return out


def import_keras(source, weights=None, graph_only: bool = False) -> ImportResult:
    """`weights`: a Keras weights.h5 file (path, binary file object or bytes) to import, which needs h5py.
    Without it, a .keras file's own model.weights.h5 is imported. Weights that cannot all be placed raise
    WeightsImportError (nothing is imported); `graph_only=True` imports the graph alone and reads no weights."""
    model = _read(source)
    if "class_name" not in model and isinstance(model.get("config"), dict) and "class_name" in model["config"]:
        model = model["config"]   # some tools wrap the model config once more
    cls = model.get("class_name")
    cfg = model.get("config") if isinstance(model.get("config"), dict) else {}
    if cls not in MODELS and "layers" not in cfg:
        raise ModelImportError(f"not a Keras Sequential or functional model (class {_what(cls)}): "
                               "subclassed models keep no layer graph in their configuration")
    name = cfg.get("name")
    importer = Importer(_shown(name) if isinstance(name, str) and name.strip() else "keras_model")
    try:
        if cls == "Sequential":
            importer.sequential(model)
        else:
            importer.functional(model)
        graph, _, torch_model = importer.b.finish(with_weights=False)
    except RecursionError:
        raise ModelImportError("the Keras model configuration nests too deeply") from None
    _drop_unused_modules(graph)
    analysis = analyse(graph)
    notes = importer.notes
    keras_total = 0
    for scope, where, counted, what in _scopes(importer.top_scope, graph, analysis):
        if counted is None:   # a nested model that reaches no output
            keras_total += _keras_params(scope)
            notes.append(f"{scope.what} reaches no output of the model and is left out")
            continue
        for cls_name, name, keras_params, nodes in scope.counts:
            keras_total += keras_params
            if not any(n in where for n in nodes):
                notes.append(f"{cls_name} '{name}'{what} reaches no output of the model and is left out")
                continue
            ours = sum(counted.param_counts.get(n, 0) for n in nodes if n in where)
            if ours == keras_params:
                continue
            why = getattr(LAYERS.get(cls_name), "param_note", None) or "the layers are parameterised differently"
            notes.append(f"{cls_name} '{name}'{what} has {ours:,} parameters here and {keras_params:,} in Keras: "
                         f"{why}")
    state = None
    if graph_only:
        pass
    elif weights is not None:
        label = "the weights file"
        if isinstance(weights, (str, Path)):
            path = Path(weights)
            if not path.is_file():
                raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
            label = path.name
        state = _placed(lambda: _load_weights(importer, graph, torch_model, weights, label))
    elif isinstance(source, (str, Path)) and not str(source).lstrip().startswith("{"):
        state = _own_weights(importer, graph, torch_model, Path(source))
    if state is None:
        notes.extend(importer.without_weights)
    return ImportResult(graph, state, notes, keras_total)
