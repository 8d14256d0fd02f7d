"""Hostile node and graph names never reach the generated source as code.

Whatever a user types as a name (or a file supplies), the generated module compiles,
names its submodules with safe, unique identifiers that do not shadow nn.Module's own
attributes, runs, and never executes anything hidden in a name.
"""
from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize
from pathlib import Path

import pytest
import torch
from torch import nn

import engine
from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.graph import MAX_NAME, Graph, GraphError, build

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = "__import__('os').system('touch PWNED')"

HOSTILE = [
    'say "hi"', "it's", "back\\slash", "trailing\\", "new\nline", "tab\there", '"""', "'''",
    'x"""; import os; os.system("touch PWNED"); """', "\\N{BULLET}", "{self}", "{0}", "%s",
    "class", "def", "lambda", "None", "True", "return", "import", "match", "_",
    "print", "eval", "exec", "open", "input", "super", "type", "list",
    "__init__", "__class__", "__dict__", "__import__", "_modules", "_parameters",
    "forward", "training", "train", "eval", "to", "parameters", "state_dict", "cuda", "modules",
    "named_modules", "zero_grad", "half", "apply", "register_buffer", "T_destination", "call_super_init",
    PAYLOAD, "x", "self", "torch", "F", "nn", "math", "Tensor", "Module",
    "层", "é", "Ünïcödé layer", "🔥", "🔥🔥 fire", "Ⅻ", "ﬁ",
    "!!!", "...", "-", "  spaces  ", "\u200b",
    "a" * 300, "1st", "2", "007 bond",
    "Dense 1", "dense_1", "Dense-1", "DENSE_1", "dense__1",
]
# Real nn.Module attributes a submodule must not shadow (instance attributes included).
MODULE_ATTRS = set(dir(nn.Module)) | set(vars(nn.Module()))
SHAPE_COMMENT = re.compile(r"# \(B(, \d+)*\)( int64)?")


@pytest.fixture(autouse=True)
def _in_tmp_cwd(tmp_path, monkeypatch):
    """Run each test in an empty folder, and check that nothing in a name ever ran."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "PWNED").exists(), "a name was executed"
    assert not (ROOT / "PWNED").exists(), "a name was executed"


def chain(names: list[str], graph_name: str = "hostile") -> Graph:
    """Input (6,) -> one Linear(6) per name -> Output, built the way the designer builds graphs."""
    graph = Graph(graph_name)
    prev = graph.add_node("Input", "input", {"shape": [6]})
    for name in names:
        nid = graph.add_node("Linear", name, {"units": 6})
        graph.connect(prev, nid)
        prev = nid
    graph.connect(prev, graph.add_node("Output", "output"))
    return graph


def diamond(name: str) -> Graph:
    """Every node named `name`: Input -> two Linears -> Add -> Output, so that forward keeps named
    variables (the input is used twice) as well as submodules."""
    graph = Graph("diamond")
    inp = graph.add_node("Input", name, {"shape": [6]})
    a = graph.add_node("Linear", name, {"units": 6})
    b = graph.add_node("Linear", name, {"units": 6, "activation": "relu"})
    add = graph.add_node("Add", name)
    out = graph.add_node("Output", name)
    graph.connect(inp, a)
    graph.connect(inp, b)
    graph.connect(a, add, 0)
    graph.connect(b, add, 1)
    graph.connect(add, out)
    return graph


def check_identifier(name: str) -> None:
    assert name.isidentifier() and name.isascii(), name
    assert not keyword.iskeyword(name) and not keyword.issoftkeyword(name), name
    assert not name.startswith("_"), name
    assert name not in MODULE_ATTRS, f"{name} shadows an nn.Module attribute"
    assert name not in {"self", "torch", "nn", "F", "math", "x"}, name
    assert not hasattr(builtins, name), f"{name} shadows a builtin"


def check_source(source: str, info) -> ast.Module:
    """The source compiles, holds no user text outside its docstrings and shape comments, and
    its names are safe and unique."""
    code = compile(source, "<generated>", "exec")
    assert code is not None
    tree = ast.parse(source)
    module_doc = ast.get_docstring(tree, clean=False)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    docstrings = {module_doc} | {ast.get_docstring(c, clean=False) for c in classes}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert strings <= docstrings, f"string literals from names: {strings - docstrings}"
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            assert SHAPE_COMMENT.fullmatch(tok.string), tok.string
    assert "__import__" not in source and "PWNED" not in source
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for alias in n.names}
    assert imported <= {"math", "torch", "torch.nn.functional", "nn"}, imported
    attrs = list(info.attrs.values())
    assert len(attrs) == len(set(attrs)), "submodule names are unique"
    for attr in attrs:
        check_identifier(attr)
    variables = [v for v in info.variables.values() if v != "x"]
    for var in variables:
        check_identifier(var)
    assert info.class_name.isidentifier() and info.class_name.isascii()
    assert not keyword.iskeyword(info.class_name)
    return tree


def check_model(graph: Graph, batch_shape: tuple[int, ...] = (3, 6), out_shape=(3, 6)) -> nn.Module:
    analysis = analyse(graph)
    assert analysis.ok, [d.message for d in analysis.errors]
    source, info = generate(graph, analysis)
    check_source(source, info)
    model, info = compile_graph(graph, analysis, with_info=True)
    for attr in info.attrs.values():
        assert isinstance(getattr(model, attr), nn.Module)
    model.train()
    assert model.training is True
    model.eval()
    assert model.training is False
    inputs = [torch.randn(*batch_shape) for _ in info.input_ids]
    assert model(*inputs).shape == out_shape
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == analysis.total_params
    assert {key.split(".")[0] for key in model.state_dict()} == set(info.attrs.values())
    return model


@pytest.mark.parametrize("name", HOSTILE, ids=[ascii(n)[:30] for n in HOSTILE])
def test_each_hostile_name_in_a_diamond(name):
    graph = diamond(name)
    assert len(graph.names()) == 5, "the graph keeps names unique"
    check_model(graph)


def test_all_hostile_names_in_one_chain():
    graph = chain(HOSTILE)
    model = check_model(graph)
    assert len(list(model.children())) == len(HOSTILE)


def test_names_that_collide_after_sanitising_get_distinct_attributes():
    names = ["Dense 1", "dense_1", "Dense-1", "DENSE 1", "dense 1_2", "dense_1_2"]
    graph = build("collisions", [("input", "Input", {"shape": [6]})]
                  + [(name, "Linear", {"units": 6}) for name in names] + [("output", "Output", {})])
    assert [n.name for n in graph.nodes()][1:-1] == names, "distinct as typed, so kept as typed"
    source, info = generate(graph)
    attrs = [info.attrs[n.id] for n in graph.nodes() if n.type == "Linear"]
    assert len(set(attrs)) == 6
    assert attrs[0] == "dense_1"
    check_model(graph)


def test_long_names_that_differ_late_stay_distinct():
    names = ["a" * 60 + "1", "a" * 60 + "2", "a" * 200 + "3"]
    graph = chain(names)
    assert len(graph.names()) == len(names) + 2
    assert all(len(n) <= MAX_NAME for n in graph.names())
    check_model(graph)


def test_names_with_nothing_usable_get_a_fallback():
    graph = chain(["!!!", "层", "🔥", "...", "-"])
    source, info = generate(graph)
    attrs = [info.attrs[n.id] for n in graph.nodes() if n.type == "Linear"]
    assert all(attr.startswith("layer") for attr in attrs), attrs
    check_model(graph)


def test_digit_first_names_become_identifiers():
    graph = chain(["1st", "2", "007 bond"])
    _, info = generate(graph)
    attrs = [info.attrs[n.id] for n in graph.nodes() if n.type == "Linear"]
    assert all(not a[0].isdigit() for a in attrs)
    assert any("1st" in a for a in attrs) and any("007_bond" in a for a in attrs)


def test_module_attribute_names_do_not_break_the_model():
    names = ["forward", "training", "train", "eval", "to", "parameters", "state_dict", "cuda"]
    model = check_model(chain(names))
    assert callable(model.forward) and isinstance(model.training, bool)
    assert model.to(torch.float64) is model
    assert len(list(model.parameters())) == 2 * len(names)


def test_rename_refuses_blank_names_and_cleans_others():
    graph = chain(["dense"])
    nid = graph.find("dense").id
    for blank in ["", "   ", "\n\t", "\x00\x1b"]:
        with pytest.raises(GraphError):
            graph.rename(nid, blank)
        assert graph.node(nid).name == "dense"
    assert graph.rename(nid, "two\nlines\r\nhere\x1b[2J") == "two lines here[2J"
    graph.rename(nid, PAYLOAD)
    check_model(graph)


def test_raw_hostile_names_from_a_file():
    """A file bypasses rename(): its names go through loading only."""
    raw = HOSTILE + ["new\nline", "\x1b[31mred", "\x00nul", "", " ", 42, None, ["list"], {"a": 1}, "z" * 500]
    nodes = [{"id": "n1", "name": "input", "type": "Input", "params": {"shape": [6]}}]
    edges = []
    for i, name in enumerate(raw):
        nodes.append({"id": f"h{i}", "name": name, "type": "Linear", "params": {"units": 6}})
        edges.append({"src": nodes[-2]["id"], "dst": f"h{i}", "port": 0})
    nodes.append({"id": "out", "name": PAYLOAD, "type": "Output"})
    edges.append({"src": nodes[-2]["id"], "dst": "out", "port": 0})
    graph = Graph.from_dict({"format_version": 1, "name": "from a file", "nodes": nodes, "edges": edges})
    names = [n.name for n in graph.nodes()]
    assert len(set(names)) == len(names), "names are unique after loading"
    for name in names:
        assert name and name.isprintable() and len(name) <= MAX_NAME, repr(name)
    check_model(graph)


GRAPH_NAMES = ['"""', "'''", 'a"""b', "new\nline", "back\\slash", "\\", PAYLOAD,
               'x"""\nimport os\nos.system("touch PWNED")\n"""', "class", "", "   ", "层", "🔥",
               "\x1b[2J", "Model", "nn", "x" * 500]


@pytest.mark.parametrize("graph_name", GRAPH_NAMES, ids=[ascii(n)[:30] for n in GRAPH_NAMES])
@pytest.mark.parametrize("via", ["constructor", "file"])
def test_hostile_graph_name(graph_name, via):
    graph = chain(["dense"], graph_name=graph_name)
    if via == "file":
        graph = Graph.from_dict(graph.to_dict())
    analysis = analyse(graph)
    source, info = generate(graph, analysis)
    code = compile(source, "<generated>", "exec")
    assert code is not None
    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=False)
    first = doc.splitlines()[0]
    assert first.endswith(f": a PyTorch module generated by Deepwire {engine.__version__}."), first
    title = first.split(": a PyTorch module")[0]
    assert not set(title) & set("\"'\\\n\r\x1b{}"), repr(title)
    assert len(title) <= 80
    assert info.class_name.isidentifier() and info.class_name.isascii()
    assert not keyword.iskeyword(info.class_name) and info.class_name not in {"nn", "torch", "F"}
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes[-1] == info.class_name
    # the name may survive only inside the docstring, where it is inert
    after_doc = source.split('"""', 2)[2]
    assert "import__" not in after_doc and "PWNED" not in after_doc
    model = compile_graph(graph, analysis)
    assert model(torch.randn(2, 6)).shape == (2, 6)


def test_node_named_like_the_compilers_own_attribute():
    graph = chain(["deepwire_source", "deepwire source"])
    model = check_model(graph)
    assert isinstance(model.deepwire_source, str)
