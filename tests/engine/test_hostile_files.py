"""Malformed and hostile graph files: `deepwire check FILE` must never crash.

A file that cannot be read as a graph exits 2 with exactly one line on stderr; a file
that loads but describes a wrong model exits 1 with messages that name the node. No
input ever produces a traceback.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import cli
from engine.analysis import analyse
from engine.blocks import REGISTRY
from engine.codegen import generate
from engine.graph import FormatError, Graph
from engine.templates import TEMPLATE_DIR

ROOT = Path(__file__).resolve().parents[2]
FASHION = json.loads((TEMPLATE_DIR / "fashion_mnist_mlp.json").read_text(encoding="utf-8"))
TEMPLATE_DICTS = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(TEMPLATE_DIR.glob("*.json"))]
HUGE_INT = "1" + "0" * 400      # fits JSON's integer parser, overflows a float
HUGER_INT = "1" + "0" * 5000    # beyond Python's int-from-string digit limit (4300)


def fashion(**changes) -> dict:
    """The Fashion-MNIST MLP as a dict (n1 input, n2 flatten, n3 dense, n4 dense_1, n5 output)."""
    data = copy.deepcopy(FASHION)
    for key, value in changes.items():
        data[key] = value
    return data


def node(data: dict, node_id: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == node_id)


def with_node(node_id: str, **fields) -> dict:
    data = fashion()
    node(data, node_id).update(fields)
    return data


def with_params(node_id: str, name: str | None = None, **params) -> dict:
    data = fashion()
    item = node(data, node_id)
    item["params"].update(params)
    if name is not None:
        item["name"] = name
    return data


def with_edges(*extra: dict, drop: tuple[str, str] | None = None) -> dict:
    data = fashion()
    if drop:
        data["edges"] = [e for e in data["edges"] if (e["src"], e["dst"]) != drop]
    data["edges"] += list(extra)
    return data


def fashion_text(old: str, new: str) -> str:
    text = json.dumps(FASHION)
    assert old in text
    return text.replace(old, new, 1)


# ----------------------------------------------------------------------------- unreadable: exit 2
# Each case: (id, writer(tmp_path) -> path, a phrase the one-line message must contain).

def _write(content: str | bytes | dict | list, name: str = "graph.json"):
    def writer(tmp: Path) -> Path:
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        return path
    return writer


def _directory(tmp: Path) -> Path:
    (tmp / "folder.json").mkdir()
    return tmp / "folder.json"


def _missing(tmp: Path) -> Path:
    return tmp / "nowhere" / "graph.json"


def _zip(tmp: Path) -> Path:
    """A zip archive that is not a Deepwire project."""
    import zipfile
    path = tmp / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "holiday photos")
    return path


def _sparse_huge(tmp: Path) -> Path:
    path = tmp / "huge.json"
    with open(path, "wb") as f:
        f.truncate(65 * 2**20)  # sparse: costs no disk, and must not be read
    return path


def _symlink_loop(tmp: Path) -> Path:
    path = tmp / "loop.json"
    os.symlink(path, path)
    return path


def _utf16(tmp: Path) -> Path:
    path = tmp / "utf16.json"
    path.write_bytes(json.dumps(FASHION).encode("utf-16"))
    return path


def _too_many_nodes(tmp: Path) -> Path:
    nodes = [{"id": f"n{i}", "type": "Linear"} for i in range(20_001)]
    return _write({"format_version": 1, "nodes": nodes, "edges": []})(tmp)


GARBAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8

UNREADABLE = [
    ("binary-garbage", _write(GARBAGE), "not UTF-8"),
    ("empty-file", _write(b""), "not valid JSON"),
    ("whitespace-only", _write(" \n\t\n"), "not valid JSON"),
    ("invalid-json", _write('{"format_version": 1, "nodes": ['), "not valid JSON"),
    ("trailing-garbage", _write(json.dumps(FASHION) + " }"), "not valid JSON"),
    ("json-list-at-top", _write([FASHION]), "not an object"),
    ("json-string-at-top", _write('"deepwire-graph"'), "not an object"),
    ("json-null-at-top", _write("null"), "not an object"),
    ("deep-nesting-lists", _write("[" * 100_000), "not valid JSON"),
    ("deep-nesting-objects", _write('{"a":' * 100_000), "not valid JSON"),
    ("deep-nesting-in-params", _write(fashion_text('"units": 128', '"units": ' + "[" * 100_000)),
     "not valid JSON"),
    ("missing-format-version", _write({"name": "m", "nodes": [], "edges": []}), "format_version"),
    ("other-format", _write(fashion(format="keras-model")), "not a Deepwire graph"),
    ("newer-format-version", _write(fashion(format_version=3)), "update Deepwire"),
    ("format-version-string", _write(fashion(format_version="1")), "whole number"),
    ("format-version-bool", _write(fashion(format_version=True)), "whole number"),
    ("format-version-float", _write(fashion(format_version=1.5)), "whole number"),
    ("format-version-zero", _write(fashion(format_version=0)), "older"),
    ("format-version-infinite", _write(fashion_text('"format_version": 1', '"format_version": 1e999')),
     "whole number"),
    ("format-version-nan", _write(fashion_text('"format_version": 1', '"format_version": NaN')), "nan"),
    ("nan-pos", _write(fashion_text('"pos": [0.0, 0.0]', '"pos": [NaN, 0]')), ("nan", "pos")),
    ("infinity-pos", _write(fashion_text('"pos": [0.0, 0.0]', '"pos": [0, -Infinity]')), ("infinity", "pos")),
    ("nodes-not-a-list", _write(fashion(nodes={"n1": {}})), "must be lists"),
    ("edges-not-a-list", _write(fashion(edges="n1 -> n2")), "must be lists"),
    ("node-not-an-object", _write(fashion(nodes=[1, 2, 3])), "not an object"),
    ("node-params-a-list", _write(with_node("n3", params=[128, "relu"])), "'params' must be an object"),
    ("node-params-a-string", _write(with_node("n3", params="units=128")), "'params' must be an object"),
    ("node-id-missing", _write(fashion(nodes=[{"name": "a", "type": "Linear"}])), "invalid id"),
    ("node-id-path", _write(with_node("n3", id="../../etc/passwd")), "invalid id"),
    ("node-id-number", _write(with_node("n3", id=3)), "invalid id"),
    ("node-type-missing", _write(with_node("n3", type=None)), "no block type"),
    ("node-pos-string", _write(with_node("n3", pos="here")), "'pos' must be two numbers"),
    ("node-pos-bools", _write(with_node("n3", pos=[True, False])), "'pos' must be two numbers"),
    ("duplicate-node-ids", _write(with_node("n4", id="n3")), "appears twice"),
    ("edge-to-missing-node", _write(with_edges({"src": "n4", "dst": "n99", "port": 0})), "does not exist"),
    ("edge-from-missing-node", _write(with_edges({"src": None, "dst": "n3", "port": 1})), "does not exist"),
    ("edge-not-an-object", _write(fashion(edges=[["n1", "n2"]])), "not an object"),
    ("port-negative", _write(with_edges({"src": "n1", "dst": "n3", "port": -1})), "invalid port"),
    ("port-string", _write(with_edges({"src": "n1", "dst": "n3", "port": "0"})), "invalid port"),
    ("port-true", _write(with_edges({"src": "n1", "dst": "n3", "port": True})), "invalid port"),
    ("port-float", _write(with_edges({"src": "n1", "dst": "n3", "port": 1.5})), "invalid port"),
    ("port-huge", _write(with_edges({"src": "n1", "dst": "n3", "port": 10**12})), "invalid port"),
    ("port-wired-twice", _write(with_edges({"src": "n1", "dst": "n3", "port": 0})), "wired twice"),
    ("too-many-nodes", _too_many_nodes, "too many nodes"),
    ("zip-not-a-project", _zip, "zip"),
    ("zip-truncated", _write(b"PK\x03\x04" + bytes(60)), "zip"),
    ("directory", _directory, "folder"),
    ("missing-path", _missing, "does not exist"),
    ("over-64-MiB", _sparse_huge, "at most 64 MiB"),
    ("symlink-loop", _symlink_loop, "cannot read"),
    ("utf-16", _utf16, "not UTF-8"),
]

BUGS = {
    "huge-int-literal": "engine/graph.py Graph.from_json catches only JSONDecodeError/RecursionError: an "
                        "integer literal over 4300 digits makes json.loads raise ValueError, a traceback",
    "huge-int-pos": "engine/graph.py Graph._load_node: float(pos[0]) raises OverflowError for an integer "
                    "over ~1e308 in 'pos', a traceback",
    "newline-in-filename": "engine/cli.py main / engine/fileio.py read_graph echo the file name raw into "
                           "the error, so a file name with a newline prints a two-line error",
}


def _bug(case: str, writer, phrase: str, bug: str, raises: type[BaseException]):
    """A case that once crashed (see BUGS); kept as a regression test."""
    return pytest.param(case, writer, phrase)


UNREADABLE_BUGS = [
    _bug("huge-int-literal", _write(fashion_text('"format_version": 1', '"format_version": ' + HUGER_INT)),
         "too long", "huge-int-literal", ValueError),
    _bug("huge-int-literal-in-params", _write(fashion_text('"units": 128', '"units": ' + HUGER_INT)),
         "", "huge-int-literal", ValueError),
    _bug("huge-int-pos", _write(fashion_text('"pos": [0.0, 0.0]', f'"pos": [{HUGE_INT}, 0]')),
         "pos", "huge-int-pos", OverflowError),
    _bug("newline-in-filename", _write(GARBAGE, name="evil\nname.json"), "not UTF-8",
         "newline-in-filename", AssertionError),
]


def run_check(capsys, path: Path, *extra: str) -> tuple[int, str, str]:
    code = cli.main(["check", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_unreadable(code: int, out: str, err: str, phrase: str | tuple[str, ...]) -> None:
    """Exit 2, nothing on stdout, one short line on stderr containing `phrase` (or one of them,
    case-insensitively)."""
    assert "Traceback" not in out + err, err
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    assert err.startswith("deepwire: cannot read ")
    assert len(err) < 400, "one short, clear line"
    phrases = (phrase,) if isinstance(phrase, str) else phrase
    assert any(p.lower() in err.lower() for p in phrases), err


@pytest.mark.parametrize("case, writer, phrase", [*UNREADABLE, *UNREADABLE_BUGS],
                         ids=[c[0] for c in UNREADABLE] + [p.values[0] for p in UNREADABLE_BUGS])
def test_unreadable_file_exits_2_with_one_line(case, writer, phrase, tmp_path, capsys):
    path = writer(tmp_path)
    code, out, err = run_check(capsys, path)
    assert_unreadable(code, out, err, phrase)
    if case == "newer-format-version":
        assert "newer Deepwire" in err


@pytest.mark.parametrize("command", ["summary", "code"])
def test_other_commands_also_refuse_unreadable_files(command, tmp_path, capsys):
    path = _write(GARBAGE)(tmp_path)
    code = cli.main([command, str(path)])
    out, err = capsys.readouterr()
    assert_unreadable(code, out, err, "not UTF-8")


def test_check_json_on_unreadable_file_still_one_line(tmp_path, capsys):
    code, out, err = run_check(capsys, _write("[" * 100_000)(tmp_path), "--json")
    assert_unreadable(code, out, err, "not valid JSON")


# ----------------------------------------------------------------------------- real subprocesses

SUBPROCESS_CASES = {
    "binary-garbage": (_write(GARBAGE), "not UTF-8"),
    "deep-nesting-lists": (_write("[" * 100_000), "not valid JSON"),
    "newer-format-version": (_write(fashion(format_version=7)), "update Deepwire"),
}


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")

    def run(case):
        folder = tmp / case
        folder.mkdir()
        path = SUBPROCESS_CASES[case][0](folder)
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "check", str(path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=len(SUBPROCESS_CASES)) as pool:
        return dict(zip(SUBPROCESS_CASES, pool.map(run, SUBPROCESS_CASES)))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_unreadable_file_via_main_py(case, subprocess_results):
    proc = subprocess_results[case]
    assert_unreadable(proc.returncode, proc.stdout, proc.stderr, SUBPROCESS_CASES[case][1])


# ----------------------------------------------------------------------------- loads but wrong: exit 1
# Each case: (id, graph dict or JSON text, the node name the errors must name, a phrase in that error).

LOADS_BUT_WRONG = [
    ("unknown-block-type", with_node("n3", type="Dense"), "dense", "unknown block type"),
    ("unknown-block-type-hostile", with_node("n3", type="__import__('os').system('x')\n"), "dense",
     "unknown block type"),
    ("cycle", with_edges({"src": "n4", "dst": "n3", "port": 0}, drop=("n2", "n3")), "dense", "cycle"),
    ("self-loop", with_edges({"src": "n3", "dst": "n3", "port": 1}), "dense", "cycle"),
    ("extra-wire", with_edges({"src": "n1", "dst": "n3", "port": 3}), "dense", "input 4"),
    ("units-negative", with_params("n3", "hidden", units=-5), "hidden", "units"),
    ("units-zero", with_params("n3", "hidden", units=0), "hidden", "units"),
    ("units-string", with_params("n3", "hidden", units="abc"), "hidden", "units"),
    ("units-infinite", fashion_text('"units": 128', '"units": 1e309'), "dense", "units"),
    ("units-fraction", with_params("n3", "hidden", units=12.5), "hidden", "units"),
    ("units-nested-lists", with_params("n3", "hidden", units=[[1, 2], [3]]), "hidden", "units"),
    ("units-object", with_params("n3", "hidden", units={"value": 5}), "hidden", "units"),
    ("units-null", with_params("n3", "hidden", units=None), "hidden", "units"),
    ("units-bool", with_params("n3", "hidden", units=True), "hidden", "units"),
    ("units-too-big", with_params("n3", "hidden", units=10**30), "hidden", "units"),
    ("units-deep-nesting", fashion_text('"units": 128', '"units": ' + "[" * 500 + "]" * 500),
     "dense", "units"),
    ("activation-unknown", with_params("n3", "hidden", activation="rm -rf /"), "hidden", "activation"),
    ("unknown-param", with_params("n3", "hidden", colour="red"), "hidden", "colour"),
    ("input-shape-empty", with_params("n1", "pixels", shape=[]), "pixels", "shape"),
    ("input-shape-negative", with_params("n1", "pixels", shape=[28, -28]), "pixels", "shape"),
    ("input-dtype-bad", with_params("n1", "pixels", dtype="float16"), "pixels", "dtype"),
    ("newline-in-node-name", with_params("n3", "hidden\nlayer", units=-5), "hidden layer", "units"),
    ("escape-codes-in-node-name", with_params("n3", "\x1b[2J\x1b[31mhidden", units=-5), "[2J[31mhidden",
     "units"),
    ("output-missing-input", with_edges(drop=("n4", "n5")), "output", "no input"),
]

LOADS_BUT_WRONG_BUGS = [
    pytest.param("units-huge-int", with_params("n3", "hidden", units=int(HUGE_INT)), "hidden", "units"),
    pytest.param("float-param-huge-int",
                 json.loads(fashion_text('"nodes": [', '"nodes": [{"id": "n9", "name": "drop", '
                                         f'"type": "Dropout", "params": {{"p": {HUGE_INT}}}}}, ')),
                 "drop", "p must"),
]


@pytest.mark.parametrize("case, data, name, phrase", [*LOADS_BUT_WRONG, *LOADS_BUT_WRONG_BUGS],
                         ids=[c[0] for c in LOADS_BUT_WRONG] + [p.values[0] for p in LOADS_BUT_WRONG_BUGS])
def test_loads_but_wrong_exits_1_naming_the_node(case, data, name, phrase, tmp_path, capsys):
    path = tmp_path / "graph.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    code, out, err = run_check(capsys, path)
    assert "Traceback" not in out + err
    assert (code, err) == (1, ""), (code, out, err)
    lines = out.splitlines()
    assert lines[-1].endswith(")") and "has errors" in lines[-1]
    assert all(line.startswith(("error: ", "warning: ")) for line in lines[:-1]), \
        f"every diagnostic is one line: {out!r}"
    assert "\x1b" not in out, "no terminal escape codes from the file reach the terminal"
    errors = [line for line in lines if line.startswith("error: ")]
    assert any(f"'{name}'" in line and phrase in line for line in errors), out
    code, out, _ = run_check(capsys, path, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert any(d["name"] == name for d in report["diagnostics"] if d["severity"] == "error")


def test_hostile_graph_name_in_check_output(tmp_path, capsys):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(fashion(name="evil\n\x1b[2Jname")), encoding="utf-8")
    code, out, err = run_check(capsys, path)
    assert code == 0
    assert out.count("\n") == 1 and "\x1b" not in out, repr(out)


# ----------------------------------------------------------------------------- property tests

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-10**300, max_value=10**300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
INTERESTING = st.sampled_from([None, True, False, 0, -1, 1, 2, 3, 1023, 1024, 10**12, -0.5, 0.5, 1e309,
                               float("nan"), "", "n1", "n3", "n5", "Linear", "Input", "Output", "relu",
                               "int64", "same", [], {}, [1], [2, 2], [[1]], {"units": 3}]).map(copy.deepcopy)
VALUES = INTERESTING | JSON
TYPES = sorted(REGISTRY)
COMMON_TYPES = ["Input", "Output", "Linear", "Flatten", "Add", "Activation", "Conv2d", "Reshape", "LSTM"]


def plausible_value(param):
    """A value of the right kind for `param`, often (not always) in range."""
    if param.kind == "int":
        return st.integers(-2, 70)
    if param.kind == "float":
        return st.floats(-1, 2, allow_nan=False)
    if param.kind == "bool":
        return st.booleans()
    if param.kind == "choice":
        return st.sampled_from(param.choices)
    return (st.integers(0, 6) | st.lists(st.integers(0, 12), min_size=1, max_size=4)
            | st.sampled_from(param.choices or ("same",)))


@st.composite
def graph_shaped(draw):
    """A graph dict of plausible blocks, parameters and wires (a DAG, plus sometimes a stray wire),
    with now and then one field anywhere replaced by an arbitrary value."""
    count = draw(st.integers(0, 7))
    ids = [f"n{i}" for i in range(1, count + 1)]
    nodes = []
    for i, node_id in enumerate(ids):
        if i == 0 and draw(st.integers(0, 3)):
            type_name = "Input"
        elif i == count - 1 and draw(st.booleans()):
            type_name = "Output"
        else:
            type_name = draw(st.sampled_from(COMMON_TYPES) | st.sampled_from(TYPES))
        block = REGISTRY[type_name]
        params = {p.name: draw(plausible_value(p)) for p in block.params if draw(st.integers(0, 3)) == 0}
        if type_name == "Input" and draw(st.booleans()):
            params["shape"] = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
        nodes.append({"id": node_id, "name": draw(st.text(max_size=12)), "type": type_name, "params": params,
                      "pos": [draw(st.floats(-1e6, 1e6)), 0.0]})
    taken, edges = set(), []
    for i in range(1, count):
        for port in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
            src = ids[i - 1] if draw(st.integers(0, 3)) else ids[draw(st.integers(0, i - 1))]
            edges.append({"src": src, "dst": ids[i], "port": port})
            taken.add((ids[i], port))
    if ids and draw(st.integers(0, 4)) == 0:  # a stray wire: maybe backwards (a cycle), maybe a self-loop
        dst, port = draw(st.sampled_from(ids)), draw(st.integers(0, 3))
        if (dst, port) not in taken:
            edges.append({"src": draw(st.sampled_from(ids)), "dst": dst, "port": port})
    doc = {"format_version": 1, "name": draw(st.text(max_size=12)), "nodes": nodes, "edges": edges}
    if draw(st.integers(0, 3)) == 0:
        target = draw(st.sampled_from([doc] + nodes + edges + [n["params"] for n in nodes]))
        key = draw(st.sampled_from(sorted(target) + ["extra"]))
        target[key] = draw(VALUES)
    return doc


@st.composite
def mutated_templates(draw):
    """A template dict with a few randomly chosen values replaced or deleted."""
    doc = copy.deepcopy(draw(st.sampled_from(TEMPLATE_DICTS)))
    for _ in range(draw(st.integers(1, 4))):
        container = doc
        while True:
            keys = list(container) if isinstance(container, dict) else list(range(len(container)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = container[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                container = child
                continue
            if draw(st.integers(0, 3)) == 0:
                del container[key]
            else:
                container[key] = draw(VALUES)
            break
    return doc


def load_and_analyse(data) -> None:
    """The property: only FormatError (one line) on load; analyse never raises and explains at
    existing nodes; a graph without errors generates source that compiles."""
    try:
        graph = Graph.from_dict(data)
    except FormatError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    analysis = analyse(graph)
    ids = set(graph.node_ids())
    for d in analysis.diagnostics:
        assert d.node_id is None or d.node_id in ids
        assert d.message and "\n" not in d.message
    if analysis.ok:
        source, _ = generate(graph, analysis)
        compile(source, "<generated>", "exec")


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(JSON)
def test_arbitrary_json_never_crashes_loading(data):
    load_and_analyse(data)


@PROPERTY
@given(graph_shaped())
def test_graph_shaped_data_never_crashes_loading(data):
    load_and_analyse(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_templates())
def test_mutated_templates_never_crash_loading(data):
    load_and_analyse(data)
