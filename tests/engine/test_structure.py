"""The engine's import structure: every module imports alone, and the cheap parts never load the
heavy ones (issue #15: no import circles; the project file does not load the training loop).

Each check runs in a fresh interpreter, so what one test imported cannot hide another's import."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parents[2]


def engine_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")
                  if not m.name.startswith("engine.__"))


def loaded_by(module: str) -> set[str]:
    """The engine modules that importing `module` alone, in a fresh interpreter, loads."""
    code = (f"import json, sys; import {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('engine'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"import {module} alone failed:\n{out.stderr[-2000:]}"
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_every_engine_module_imports_alone():
    """One interpreter per module would take minutes; one per module, importing it first, is the
    check that matters for a circle (the module that starts the circle sees a half-made partner)."""
    modules = engine_modules()
    assert "engine.runtime.settings" in modules
    code = ("import importlib, sys\n"
            "failed = []\n"
            f"for name in {modules!r}:\n"
            "    for m in [m for m in sys.modules if m == 'engine' or m.startswith('engine.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as exc:\n"
            "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(failed))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


@pytest.mark.slow
@pytest.mark.parametrize("module, never", [
    ("engine.project", "engine.training"),      # the file format stores settings, not the loop
    ("engine.project", "engine.compiler"),
    ("engine.runtime.settings", "engine.training"),
    ("engine.fileio", "engine.project"),         # atomic writes only: reading files is the project's
    ("engine.fileio", "engine.graph"),
    ("engine.analysis", "engine.compiler"),      # the cheap pass on every edit builds no model
    ("engine.analysis", "engine.flops"),
])
def test_cheap_modules_do_not_load_heavy_ones(module, never):
    assert never not in loaded_by(module)


def test_moved_names_live_in_one_place():
    """count_flops compiles a model and read_graph reads a project zip: answering for them from
    engine.analysis or engine.fileio is what closed the two import circles."""
    from engine import analysis, fileio, flops, project, training
    from engine.runtime.settings import ConfigError, TrainConfig

    assert callable(project.read_graph) and callable(flops.count_flops)
    assert not hasattr(fileio, "read_graph") and not hasattr(analysis, "count_flops")
    assert training.TrainConfig is TrainConfig and training.ConfigError is ConfigError   # re-exported, no circle


def test_one_probe_serves_the_flop_count():
    """A block alone in its probe graph counts as it does in its model (engine.flops)."""
    from engine.analysis import analyse
    from engine.flops import count_flops, probe_graph, probe_of
    from engine.graph import Graph

    graph = Graph("two")
    x = graph.add_node("Input", "x", {"shape": [8]})
    dense = graph.add_node("Linear", "dense", {"units": 4})
    graph.connect(x, dense, 0)
    graph.connect(dense, graph.add_node("Output", "out"), 0)
    probe = probe_of(graph, analyse(graph), dense)
    assert probe.type == "Linear" and [(port, spec.shape) for port, spec in probe.inputs] == [(0, (8,))]
    single, block = probe_graph(probe)
    assert len(single) == 3 and probe_of(single, analyse(single), block).key() == probe.key()
    assert count_flops(single)[block] == count_flops(graph)[dense] == 2 * 8 * 4


def test_the_runtime_needs_only_torch_and_numpy():
    """engine/runtime is copied into every exported bundle as deepwire_runtime/: it may import the
    standard library, numpy and torch (scikit-learn, Pillow, safetensors, pyarrow inside the functions that
    need them) and itself, relatively, never the rest of the engine."""
    import ast

    runtime = ROOT / "engine" / "runtime"
    allowed = set(sys.stdlib_module_names) | {"numpy", "torch", "__future__"}
    lazily = {"sklearn", "PIL", "safetensors", "pyarrow"}
    for path in runtime.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        depth = len(path.relative_to(runtime).parts) - 1      # packages between the file and runtime/
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level <= depth + 1, f"{path.name} imports above the runtime package"
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or (top in lazily and id(node) not in top_level), (path.name, name)
