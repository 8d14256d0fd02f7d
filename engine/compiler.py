"""Graph -> live `nn.Module`, by executing exactly the source `codegen` wrote.

The source is registered with `linecache` under a module of its own, so tracebacks show
the generated lines and `inspect.getsource` (hence TorchScript) can read them.
"""
from __future__ import annotations

import hashlib
import linecache
import sys
import types

from torch import nn

from .analysis import Analysis, analyse
from .codegen import CodegenError, generate
from .graph import Graph

__all__ = ["CodegenError", "compile_graph", "load_source"]


def load_source(source: str, class_name: str) -> type[nn.Module]:
    """Execute generated source as a module of its own and return its model class."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    module_name = f"deepwire_generated_{digest}"
    filename = f"<deepwire:{module_name}>"
    module = sys.modules.get(module_name)
    if module is None:
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(module_name)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own generated source
        sys.modules[module_name] = module
    return getattr(module, class_name)


def compile_graph(graph: Graph, analysis: Analysis | None = None, with_info: bool = False):
    """Build the model a graph describes. Raises CodegenError listing the graph's errors.

    With `with_info`, returns (model, CodeInfo)."""
    analysis = analysis or analyse(graph)
    source, info = generate(graph, analysis)
    model = load_source(source, info.class_name)()
    model.deepwire_source = source
    return (model, info) if with_info else model



