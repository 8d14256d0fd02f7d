"""Where the translation finds how each PyTorch operation becomes Deepwire blocks.

A handler receives the `Translator` `t` and the fx node `n` (and, for a module, the module `m`), and returns the
node's value: the id of the block it added (usually through `t.layer`, which names the block after the module
and takes its input), an existing block's id, or a `Pending`. It raises `Unsupported("with ... has no Deepwire
block")` for what it cannot express; the message is reported after the operation's name and source line.

A module handler builds the block(s) AND carries the weights over: it passes the tensors to `t.add`/`t.layer`
named as the Deepwire block's module names them (often `m.state_dict()` unchanged).

    @module(MyDense)              # a user's layer computing x @ self.w.t() + self.b
    def my_dense(t, n, m):
        return t.layer(n, "Linear", {"units": m.w.shape[0], "bias": True}, {"weight": m.w, "bias": m.b})

Module handlers are found by the module's exact type, or along its MRO when the handler was registered with
`subclasses=True` (only where every subclass is the same layer); the first registered class on the MRO decides.
A module type registered here is a leaf of the trace (fx does not look inside it).

A library's own layer (timm's LayerNorm2d, BatchNormAct2d...) is registered by its qualified class name with
`@library_module("timm.layers.norm.LayerNorm2d")`, so Deepwire never imports the library: the class is
recognised by name, its handler maps what it computes to blocks, and the import's output check proves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

Handler = Callable[..., Any]


@dataclass(frozen=True)
class ModuleHandler:
    fn: Handler                 # fn(t, n, m) -> value
    subclasses: bool = False    # also handles subclasses of the registered type
    extra_args: bool = False    # may be called with more than one argument or with keywords


MODULES: dict[type, ModuleHandler] = {}
LIBRARY: dict[str, ModuleHandler] = {}      # "package.module.Class" -> handler (that exact class)
FUNCTIONS: dict[Any, Handler] = {}          # torch / operator function -> fn(t, n)
METHODS: dict[str, Handler] = {}            # tensor method name -> fn(t, n)
HELPER_MODULES: dict[str, Handler] = {}     # Deepwire helper class name (engine.blocks.helpers) -> fn(t, n, m)
HELPER_FUNCTIONS: dict[str, Handler] = {}   # Deepwire helper function name -> fn(t, n)


def _register(table: dict, keys, value, what: str) -> None:
    for key in keys:
        if key in table:
            raise ValueError(f"{what} {getattr(key, '__name__', key)!r} already has a handler")
    for key in keys:
        table[key] = value


def module(*types: type, subclasses: bool = False, extra_args: bool = False):
    """Decorator: `fn(t, n, m)` translates calls of modules of these types."""
    def register(fn: Handler) -> Handler:
        _register(MODULES, types, ModuleHandler(fn, subclasses, extra_args), "module")
        return fn
    return register


def library_module(*qualnames: str, extra_args: bool = False):
    """Decorator: `fn(t, n, m)` translates calls of modules of these classes, named "package.module.Class"."""
    def register(fn: Handler) -> Handler:
        _register(LIBRARY, qualnames, ModuleHandler(fn, False, extra_args), "library module")
        return fn
    return register


def qualified_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _decorator(table: dict, what: str):
    def decorator(*keys):
        def register(fn: Handler) -> Handler:
            _register(table, keys, fn, what)
            return fn
        return register
    return decorator


def _unregister(table: dict):
    def unregister(*keys) -> None:
        for key in keys:
            table.pop(key, None)
    return unregister


# Decorators: @function(torch.cat, ...) and @method("view", ...) register fn(t, n) (for a method, n.args[0] is
# the tensor); @helper_module("Normalization") registers fn(t, n, m), @helper_function("causal_mask") fn(t, n),
# for Deepwire's own helper of that name (engine.blocks.helpers), as an exported model.py holds it.
function = _decorator(FUNCTIONS, "function")
method = _decorator(METHODS, "method")
helper_module = _decorator(HELPER_MODULES, "helper module")
helper_function = _decorator(HELPER_FUNCTIONS, "helper function")
unregister_module = _unregister(MODULES)
unregister_function = _unregister(FUNCTIONS)
unregister_method = _unregister(METHODS)
unregister_library_module = _unregister(LIBRARY)


def module_handler(kind: type) -> ModuleHandler | None:
    """The handler for modules of type `kind`: its own, its library class's, or a base class's registered with
    subclasses=True."""
    found = LIBRARY.get(qualified_name(kind))
    if found is not None:
        return found
    for base in kind.__mro__:
        found = MODULES.get(base)
        if found is not None:
            return found if base is kind or found.subclasses else None
    return None


def takes_extra_args(m: nn.Module) -> bool:
    """True for a module of a family whose calls may carry more than one argument (a recurrent layer's state,
    an attention layer's key and value); any other module called so has no block."""
    if isinstance(m, tuple(kind for kind, found in MODULES.items() if found.extra_args)):
        return True
    found = LIBRARY.get(qualified_name(type(m)))
    return found is not None and found.extra_args
