"""The python export: a bundle that runs without Deepwire.

Every template, a few hypothesis-drawn graphs and a graph full of hostile names are exported;
one fresh, isolated interpreter (site-packages only: `engine` cannot be imported there) imports
each model.py, loads its weights and must reproduce the app's outputs bit for bit. The bundle's
own test_export.py passes as a script and under pytest; train.py repeats the app's training to
within 1e-5, and runs unchanged under torchrun with two CPU processes.
"""
from __future__ import annotations

import ast
import gzip
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from test_random_graphs import random_graph

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.runtime.data import Splits, load_dataset, split_dataset
from engine.export.python_bundle import FILES, export_python
from engine.graph import Graph
from engine.project import Project
from engine.templates import load_template, template_names
from engine.threads import run_with_default_threads
from engine.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = "__import__('os').system('touch PWNED')"
HOSTILE_NAMES = [
    'say "hi"', "it's", "new\nline", '"""', "'''", 'x"""; import os; os.system("touch PWNED"); """',
    "# comment", "{self}", "class", "lambda", "None", "import", "forward", "state_dict", "self", "x",
    PAYLOAD, "层", "Ünïcödé layer", "🔥", "\u200b", "a" * 120, "1st", "load", "INPUT_SHAPES", "main",
]
HOSTILE_DATASET = 'data"""\n' + PAYLOAD + "\n#'''\\"
# Templates trained briefly on the data they are built for (others keep their initial weights).
TRAIN_ON = {"digits_mlp": "digits", "digits_cnn": "digits_images", "residual_cnn": "digits_images",
            "sequence_lstm": "sine_forecast", "transformer_classifier": "token_classification"}
# Exported with another dataset than their own (the others: the one the template names)
DATASET_OF = {"fashion_mnist_mlp": "fashion_mnist"}
RANDOM_GRAPHS = 5
# Every test here needs the bundles the module fixture exports and checks (~10 s): the slow tier.
pytestmark = [pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"), pytest.mark.slow]


# ----------------------------------------------------------------------------- isolated interpreters

def site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


# Runs a bundle script with -I -S: no PYTHONPATH, no current folder, no .pth files (the editable
# install of Deepwire is one), so only the installed packages (torch, numpy, ...) are importable.
RUN_SCRIPT = """
import importlib.util, runpy, sys
sys.path[:0] = SITES
assert importlib.util.find_spec("engine") is None, "engine is importable"
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    assert "engine" not in sys.modules, "the bundle imported engine"
"""

CHECKER = """
import importlib, importlib.util, json, os, runpy, sys, traceback
sys.path[:0] = SITES
import numpy as np
import torch

assert importlib.util.find_spec("engine") is None, "engine is importable"
results = {}
for job in json.loads(sys.argv[1]):
    folder, result = job["dir"], {}
    first = not results
    results[folder] = result
    sys.path.insert(0, folder)
    for name in ("model", "test_export"):
        sys.modules.pop(name, None)
    try:
        if job.get("tampered"):   # a weight was changed: the bundle's own test must notice
            try:
                runpy.run_path(os.path.join(folder, "test_export.py"), run_name="__main__")
                result["test_export"] = "passed"
            except AssertionError as exc:
                result["test_export"] = f"failed: {exc}"
            continue
        model = importlib.import_module("model")
        if first:   # safetensors is imported by load(), not by model.py
            results["safetensors_at_import"] = "safetensors" in sys.modules
        net = model.load(os.path.join(folder, "weights.safetensors"))
        result["class"] = type(net).__name__
        result["training"] = net.training
        with np.load(os.path.join(folder, "reference.npz")) as ref, np.load(job["expected"]) as exp:
            inputs = [torch.from_numpy(ref[f"input_{i}"]) for i in range(len(model.INPUT_SHAPES))]
            expected = [torch.from_numpy(exp[k]) for k in sorted(exp.files)]
        with torch.no_grad():
            outputs = net(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        result["equal"] = len(outputs) == len(expected) and all(
            o.dtype == e.dtype and o.shape == e.shape and (torch.equal(o, e) or bool(torch.isnan(e).any()
            and torch.allclose(o, e, rtol=0, atol=0, equal_nan=True))) for o, e in zip(outputs, expected))
        result["shapes"] = [list(model.INPUT_SHAPES), list(model.OUTPUT_SHAPES)]
        if job.get("run_test_export"):
            runpy.run_path(os.path.join(folder, "test_export.py"), run_name="__main__")
            result["test_export"] = "passed"
        if job.get("import_train"):
            train = runpy.run_path(os.path.join(folder, "train.py"), run_name="imported")
            result["dataset"] = train["DATASET"]
    except BaseException:
        result["error"] = traceback.format_exc()
    finally:
        sys.path.remove(folder)
results["engine_imported"] = "engine" in sys.modules
print("RESULTS " + json.dumps(results))
"""


def isolated(code: str, args: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    code = code.replace("SITES", repr(site_dirs()))
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- building bundles

def quick_weights(graph: Graph, dataset: str, n_train: int = 64) -> dict[str, torch.Tensor]:
    """Weights from a couple of steps on a slice of the dataset (normalisation fitted)."""
    ds = load_dataset(dataset)
    s = split_dataset(ds, 0.1, 0.2, 0)
    small = Splits(s.x_train[:n_train], s.y_train[:n_train], s.x_val[:16], s.y_val[:16], s.x_test[:0], s.y_test[:0])
    return train(graph, ds, TrainConfig(epochs=1, batch_size=32, device="cpu"), splits=small).state_dict


def app_model(project: Project) -> torch.nn.Module:
    """The model as the app holds it: trained weights, or the initial ones for the seed."""
    if project.weights is None:
        torch.manual_seed(project.config.seed)
        return compile_graph(project.graph).eval()
    model = compile_graph(project.graph)
    model.load_state_dict(project.weights)
    return model.eval()


def export_and_expect(project: Project, folder: Path, expected: Path, dataset: str | None = None) -> dict:
    """Export into `folder`; write the app's own outputs for the reference inputs to `expected`."""
    folder.mkdir(parents=True)
    files = export_python(project, folder, dataset)
    assert files == [folder / name for name in FILES]
    model = app_model(project)
    with np.load(folder / "reference.npz") as ref:
        inputs = [torch.from_numpy(ref[k]) for k in sorted(f for f in ref.files if f.startswith("input_"))]
        stored = [ref[k] for k in sorted(f for f in ref.files if f.startswith("output_"))]
    def forward():
        with torch.no_grad():
            return model(*inputs)

    outputs = run_with_default_threads(forward)   # as a fresh process computes them (the designer keeps 1)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    arrays = {f"output_{i}": o.numpy() for i, o in enumerate(outputs)}
    np.savez(expected, **arrays)
    # the reference the bundle carries is the app's output too
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(stored, arrays.values()))
    return {"dir": str(folder), "expected": str(expected), "project": project}


def random_graphs(count: int) -> list[Graph]:
    """The first `count` valid graphs hypothesis draws with at least two blocks and a mix of
    block types not seen before, one of them with two inputs (derandomized: the same graphs
    every run)."""
    found: list[Graph] = []
    seen: set[tuple[str, ...]] = set()

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(random_graph())
    def collect(graph):
        kinds = tuple(sorted(graph.node(n).type for n in graph.node_ids()))
        blocks = [k for k in kinds if k not in ("Input", "Output")]
        two_inputs = any(sum(g.node(n).type == "Input" for n in g.node_ids()) > 1 for g in found)
        if len(found) == count - 1 and not two_inputs and kinds.count("Input") < 2:
            return   # keep the last place for a graph with two inputs
        if len(found) < count and len(blocks) >= 2 and kinds not in seen and analyse(graph).ok:
            seen.add(kinds)
            found.append(graph)

    collect()
    return found


def hostile_graph() -> Graph:
    """Hostile names on every kind of node, a residual branch (named variables) and a hostile title."""
    graph = Graph(PAYLOAD + ' """ # \n')
    prev = graph.add_node("Input", HOSTILE_NAMES[0], {"shape": [6]})
    first = prev
    for name in HOSTILE_NAMES[1:]:
        node = graph.add_node("Linear", name, {"units": 6, "activation": "tanh"})
        graph.connect(prev, node)
        prev = node
    add = graph.add_node("Add", PAYLOAD)
    graph.connect(prev, add, 0)
    graph.connect(first, add, 1)
    norm = graph.add_node("Normalization", '"""' + PAYLOAD)
    graph.connect(add, norm)
    graph.connect(norm, graph.add_node("Output", "return"))
    return graph


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Every bundle, and what the isolated interpreter found in each."""
    base = tmp_path_factory.mktemp("bundles")
    jobs: dict[str, dict] = {}
    for name in template_names():
        graph = load_template(name)
        weights = quick_weights(graph, TRAIN_ON[name], 16 if name == "transformer_classifier" else 64) \
            if name in TRAIN_ON else None
        project = Project(graph, TrainConfig(seed=5), weights=weights, dataset=TRAIN_ON.get(name))
        dataset = None if name in TRAIN_ON else DATASET_OF.get(name)
        jobs[name] = export_and_expect(project, base / name, base / f"{name}.expected.npz", dataset)
    for i, graph in enumerate(random_graphs(RANDOM_GRAPHS)):
        project = Project(graph, TrainConfig(seed=i))
        model = app_model(project)
        project.weights = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()}   # weights unlike the initial ones
        jobs[f"random_{i}"] = export_and_expect(project, base / f"random_{i}", base / f"random_{i}.expected.npz")
    graph = hostile_graph()
    weights = hostile_weights(app_model(Project(graph)))
    project = Project(graph, TrainConfig(seed=1), weights=weights, dataset=HOSTILE_DATASET)
    jobs["hostile"] = export_and_expect(project, base / "hostile", base / "hostile.expected.npz")
    jobs["hostile"]["import_train"] = True
    jobs["residual_cnn"]["run_test_export"] = True
    jobs["tampered"] = tampered_copy(jobs["digits_mlp"], base / "tampered")

    spec = [{k: v for k, v in job.items() if k != "project"} for job in jobs.values()]
    proc = isolated(CHECKER, [json.dumps(spec)], cwd=base)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, f"the checker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    found = json.loads(line[len("RESULTS "):])
    assert found.pop("engine_imported") is False
    assert found.pop("safetensors_at_import") is False, "model.py must import with torch alone"
    assert not any((d / "PWNED").exists() for d in (base, ROOT, Path.cwd())), "a name was executed"
    return {name: dict(job, result=found[job["dir"]]) for name, job in jobs.items()}


def tampered_copy(job: dict, folder: Path) -> dict:
    """A copy of a bundle with one weight changed by 1e-3."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(job["dir"], folder)
    state = load_file(folder / "weights.safetensors")
    state["dense.bias"][0] += 1e-3
    save_file(state, folder / "weights.safetensors")
    return {"dir": str(folder), "tampered": True}


def hostile_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return {k: torch.randn(v.shape, generator=generator).abs() + 0.5 if k.endswith(".std")
            else torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return names


def check_bundle(job: dict) -> None:
    result = job["result"]
    assert "error" not in result, result["error"]
    assert result["equal"] is True, "the exported model's outputs differ from the app's"
    assert result["training"] is False, "load() returns the model in evaluation mode"
    folder, project = Path(job["dir"]), job["project"]
    source, info = generate(project.graph)
    text = (folder / "model.py").read_text(encoding="utf-8")
    assert text.startswith(source), "model.py begins with exactly the source the app trains"
    assert result["class"] == info.class_name
    runtime = [p.relative_to(folder).as_posix() for p in (folder / "deepwire_runtime").rglob("*.py")]
    assert runtime and "deepwire_runtime/loop.py" in runtime
    for name in ("model.py", "train.py", "test_export.py", *runtime):
        assert "engine" not in imported_modules((folder / name).read_text(encoding="utf-8")), name
    for name in runtime:    # the very code the app trains with
        assert (folder / name).read_bytes() == (ROOT / "engine" / "runtime" / name.split("/", 1)[1]).read_bytes()
    from safetensors.torch import load_file

    saved = load_file(folder / "weights.safetensors")
    state = app_model(project).state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in state), "weights.safetensors holds the app's weights"


# ----------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("name", template_names())
def test_every_template_exports_a_bundle_that_reproduces_the_app(bundles, name):
    check_bundle(bundles[name])


def test_untrained_templates_export_their_initial_weights(bundles):
    untrained = [name for name in template_names() if name not in TRAIN_ON]
    assert untrained and all(bundles[name]["project"].weights is None for name in untrained)
    readme = (Path(bundles[untrained[0]]["dir"]) / "README.md").read_text(encoding="utf-8")
    assert "not trained" in readme


def test_random_graphs_export_bundles_that_reproduce_the_app(bundles):
    randoms = [job for name, job in bundles.items() if name.startswith("random_")]
    assert len(randoms) == RANDOM_GRAPHS
    for job in randoms:
        try:
            check_bundle(job)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ngraph: {job['project'].graph.to_json()}") from None


def test_hostile_names_give_a_bundle_that_parses_imports_inertly_and_behaves_the_same(bundles):
    job = bundles["hostile"]
    check_bundle(job)
    folder = Path(job["dir"])
    assert job["result"]["dataset"] == HOSTILE_DATASET, "the dataset path survives as data, not code"
    for name in ("model.py", "train.py", "test_export.py"):
        text = (folder / name).read_text(encoding="utf-8")
        for token in tokenize.generate_tokens(io.StringIO(text).readline):   # only inside strings
            assert "PWNED" not in token.string or token.type == tokenize.STRING, (name, token)
    assert not list(folder.parent.rglob("PWNED")), "a name was executed"


def test_the_bundles_own_test_passes_as_a_script_and_under_pytest(bundles):
    assert bundles["residual_cnn"]["result"]["test_export"] == "passed"   # in the isolated interpreter
    folder = Path(bundles["digits_mlp"]["dir"])
    script = subprocess.run([sys.executable, "test_export.py"], cwd=folder, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stdout + script.stderr
    assert "ok: the exported model reproduces" in script.stdout
    folder = Path(bundles["hostile"]["dir"])
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_export.py"],
                         cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr


def test_the_bundles_test_catches_a_changed_weight(bundles):
    assert bundles["tampered"]["result"]["test_export"].startswith("failed: output 0 differs from the reference")


# ----------------------------------------------------------------------------- train.py

MATCH_CONFIG = TrainConfig(epochs=2, batch_size=64, optimizer="adamw", lr=2e-3, weight_decay=0.01,
                           schedule="cosine", grad_clip=1.0, seed=3, device="cpu")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """digits_mlp trained in the app (2 epochs) and exported with its settings."""
    graph = load_template("digits_mlp")
    # with the thread count a fresh process has, as train.py will (the designer's tests set one thread)
    result = run_with_default_threads(lambda: train(graph, load_dataset("digits"), MATCH_CONFIG))
    project = Project(graph, MATCH_CONFIG, weights=result.state_dict, dataset="digits")
    folder = tmp_path_factory.mktemp("digits_run") / "bundle"
    folder.mkdir()
    export_python(project, folder)
    return folder, result


def test_train_py_alone_gives_the_apps_weights(digits_run, tmp_path):
    from safetensors.torch import load_file

    folder, result = digits_run
    out = tmp_path / "trained.safetensors"
    proc = isolated(RUN_SCRIPT, ["train.py", "--epochs", "2", "--device", "cpu", "--out", str(out)], cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = load_file(out)
    assert trained.keys() == result.state_dict.keys()
    for key, value in result.state_dict.items():   # the same code on the same data: bit for bit
        assert torch.equal(trained[key], value), key
    assert result.state_dict["normalization.std"].abs().max() > 1, "the normalisation statistics were fitted"
    losses = epoch_losses(proc.stdout)
    assert losses == pytest.approx([r["loss"] for r in result.history], abs=1e-4)
    assert not (folder / "trained.safetensors").exists()


def test_the_digits_train_py_is_short_and_imports_its_training_from_the_runtime(digits_run):
    """train.py holds the settings, the data check and the loop; the pieces are deepwire_runtime's."""
    text = (digits_run[0] / "train.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    assert "    optimizer=\"adamw\"," in text and "    lr=0.002," in text
    for name in ("def make_optimizer", "def make_loss", "def fit_normalizers", "def load_csv", "def evaluate"):
        assert name not in text, name
    assert {"deepwire_runtime", "model"} <= imported_modules(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch_losses(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"^epoch \d+/\d+  loss ([0-9.]+)", text, flags=re.M)]


def test_torchrun_with_two_cpu_processes(digits_run, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(digits_run[0], folder)
    before = {p.name for p in folder.iterdir()}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master-addr=127.0.0.1", f"--master-port={free_port()}", "train.py", "--epochs", "2",
               "--device", "cpu"]
    proc = subprocess.run(command, cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "process 1/2 finished" in output and "process 2/2 finished" in output
    assert "2 processes on cpu" in output
    losses = epoch_losses(proc.stdout)
    assert len(losses) == 2 and losses[1] < losses[0], output[-2000:]
    written = {p.name for p in folder.iterdir()} - before - {"__pycache__"}
    assert written == {"trained.safetensors"}, written

    from safetensors.torch import load_file

    trained = load_file(folder / "trained.safetensors")
    assert trained.keys() == digits_run[1].state_dict.keys()


# ----------------------------------------------------------------------------- train.py's data and split

def bundle_module(folder: Path, name: str):
    """Import a bundle's script in this process (its `model` import restored afterwards)."""
    saved_path, saved_model = list(sys.path), sys.modules.pop("model", None)
    runtime = [m for m in sys.modules if m.split(".")[0] == "deepwire_runtime"]
    spec = importlib.util.spec_from_file_location(f"bundle_{name}_{abs(hash(str(folder)))}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("model", None)
        for name in [m for m in sys.modules if m.split(".")[0] == "deepwire_runtime" and m not in runtime]:
            del sys.modules[name]
        if saved_model is not None:
            sys.modules["model"] = saved_model
    return module


def test_numpy_split_is_scikit_learns_split():
    """train.py splits with scikit-learn when it is installed, else with this numpy copy."""
    from sklearn.model_selection import train_test_split

    from engine.runtime.data.core import numpy_train_test_split
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), count, seed) for k, n, count, seed in
             [(2, 50, 10, 0), (3, 97, 20, 4), (10, 400, 37, 1), (5, 31, 7, 123), (4, 12, 3, 9), (3, 9, 2, 2)]]
    cases.append((np.array([0, 0, 0, 1, 1, 1, 2]), 3, 0))   # a class of one: stratifying fails
    for y, count, seed in cases:
        idx = np.arange(len(y)) * 3 + 1
        for stratify in (None, y):
            try:
                want = train_test_split(idx, test_size=count, random_state=seed, stratify=stratify)
            except ValueError:
                with pytest.raises(ValueError):
                    numpy_train_test_split(idx, count, seed, stratify)
                continue
            got = numpy_train_test_split(idx, count, seed, stratify)
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (len(y), count, seed)


def png(path: Path, color, size=(5, 4)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def idx_file(path: Path, array: np.ndarray) -> None:
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data))


def data_files(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(1)
    rows = ["size,colour,weight,kind"] + [f"{rng.random():.3f},{rng.choice(['red', 'blue', 'green'])},"
                                          f"{rng.integers(1, 9)},{rng.choice(['cat', 'dog'])}" for _ in range(40)]
    (tmp_path / "text_target.csv").write_text("\n".join(rows) + "\n")
    rows = ["a;b;c"] + [f"{rng.random():.4f};{rng.random():.4f};{rng.integers(2, 6)}" for _ in range(30)]
    (tmp_path / "int_target.csv").write_text("\n".join(rows) + "\n")
    rows = ["a,b,y"] + [f"{rng.random():.4f},{rng.random():.4f},{rng.random() * 50:.3f}" for _ in range(30)]
    (tmp_path / "regression.csv").write_text("\n".join(rows) + "\n")
    np.savez(tmp_path / "images.npz", x_train=rng.integers(0, 255, (30, 6, 6, 3), dtype=np.uint8),
             y_train=np.eye(3)[rng.integers(0, 3, 30)], x_test=rng.integers(0, 255, (8, 6, 6, 3), dtype=np.uint8),
             y_test=np.eye(3)[rng.integers(0, 3, 8)])
    np.savez(tmp_path / "tokens.npz", x=rng.integers(0, 50, (30, 7)), y=rng.integers(3, 6, 30))
    np.savez(tmp_path / "values.npz", x_train=rng.random((30, 4)), y_train=rng.random((30, 2)))
    folder = tmp_path / "idx"
    folder.mkdir()
    idx_file(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 5, 5)))
    idx_file(folder / "train-labels-idx1-ubyte.gz", np.arange(20) % 3)
    idx_file(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (6, 5, 5)))
    idx_file(folder / "t10k-labels-idx1-ubyte.gz", np.arange(6) % 3)
    for k, colour in enumerate(["red", "blue"]):
        for i in range(6):
            png(tmp_path / "pictures" / colour / f"{i}.png", (40 * i, 100 * k, 7), size=(5, 4) if i else (6, 3))
    return ["text_target.csv", "int_target.csv", "regression.csv", "images.npz", "tokens.npz", "values.npz",
            "idx", "pictures"]


@pytest.mark.parametrize("bundle, builtin", [("digits_mlp", "iris"), ("digits_cnn", "digits_images"),
                                              ("sequence_lstm", "sine_forecast"),
                                              ("transformer_classifier", "token_classification"),
                                              ("tabular_dnn", "tabular_binary"), ("image_cnn", "shapes")])
def test_train_py_loads_and_splits_built_ins_like_the_app(bundles, bundle, builtin):
    script = bundle_module(Path(bundles[bundle]["dir"]), "train")
    assert_same_data(script, builtin, builtin)


def test_train_py_loads_and_splits_files_like_the_app(bundles, tmp_path):
    script = bundle_module(Path(bundles["digits_mlp"]["dir"]), "train")
    for name in data_files(tmp_path):
        assert_same_data(script, str(tmp_path / name), name)


def assert_same_data(script, spec: str, label: str) -> None:
    ds = load_dataset(spec)
    data = script.load_data(spec)
    assert data.task == ds.task, label
    for ours, theirs in ((data.x, ds.x), (data.y, ds.y), (data.x_test, ds.x_test), (data.y_test, ds.y_test)):
        assert (ours is None) == (theirs is None), label
        if ours is not None:
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), label
    ours = script.split_dataset(data, 0.15, 0.2, 7)
    theirs = split_dataset(ds, 0.15, 0.2, 7)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(ours, field), getattr(theirs, field)), (label, field)


# ----------------------------------------------------------------------------- what the bundle needs

def requirement_lines(folder: Path) -> list[str]:
    text = (folder / "requirements.txt").read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_an_untrained_template_exports_with_the_data_it_names(bundles):
    folder = Path(bundles["tabular_dnn"]["dir"])
    assert bundles["tabular_dnn"]["project"].dataset is None          # the graph names it
    script = bundle_module(folder, "train")
    assert script.DATASET == "tabular_binary"
    with np.load(folder / "reference.npz") as ref:                    # samples of that data, not noise
        np.testing.assert_array_equal(ref["input_0"], load_dataset("tabular_binary").x[:8])
    assert "`tabular_binary`" in (folder / "README.md").read_text(encoding="utf-8")


def test_requirements_list_exactly_what_the_files_need(bundles):
    base = ["torch>=2.2", "safetensors>=0.4", "numpy>=1.24"]
    assert requirement_lines(Path(bundles["digits_mlp"]["dir"])) == base + ["scikit-learn>=1.3"]   # digits
    for name in ("tabular_dnn", "sequence_lstm", "transformer_classifier", "hostile", "random_0"):
        assert requirement_lines(Path(bundles[name]["dir"])) == base, name
    readme = (Path(bundles["digits_mlp"]["dir"]) / "README.md").read_text(encoding="utf-8")
    assert "pip install -r requirements.txt" in readme
    assert "`model.py`: PyTorch alone, to import it and run the model; `load()` also needs safetensors" in readme
    assert "Needs only PyTorch" not in readme
    model = (Path(bundles["digits_mlp"]["dir"]) / "model.py").read_text(encoding="utf-8")
    assert "Runs with nothing but PyTorch installed" not in model and "Needs the\n    safetensors package" in model


def test_an_image_folder_bundle_lists_pillow(tmp_path):
    from PIL import Image

    for k, colour in enumerate(["red", "blue"]):
        (tmp_path / "pictures" / colour).mkdir(parents=True)
        Image.new("RGB", (4, 4), (200 * k, 10, 10)).save(tmp_path / "pictures" / colour / "a.png")
    project = Project(load_template("image_cnn"), dataset=str(tmp_path / "pictures"))
    (tmp_path / "out").mkdir()
    export_python(project, tmp_path / "out")
    assert requirement_lines(tmp_path / "out") == ["torch>=2.2", "safetensors>=0.4", "numpy>=1.24", "pillow>=9.1"]


def test_train_py_refuses_bad_settings_in_one_line(digits_run, capsys):
    """Checked by the same TrainConfig.validate as the app: a usage message, no traceback."""
    script = bundle_module(digits_run[0], "train")
    for argv, message in ((["--epochs", "0"], "epochs must be between 1 and 100000"),
                          (["--device", "tpu"], "unknown device 'tpu'")):
        with pytest.raises(SystemExit) as stop:
            script.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


@pytest.mark.slow
def test_train_py_fine_tunes_like_the_app_from_the_same_weights_with_the_same_blocks_frozen(tmp_path):
    """Issue #19: a project set to start from loaded weights, with its first layer frozen: train.py
    starts from start.safetensors and freezes the same block, so its weights are the app's, bit for bit."""
    from safetensors.torch import load_file

    graph = load_template("digits_mlp")
    pretrained = run_with_default_threads(lambda: train(graph, load_dataset("digits"), MATCH_CONFIG)).state_dict
    first = next(n for n in graph.nodes() if n.type == "Linear")
    first.params["trainable"] = False
    config = TrainConfig(**{**MATCH_CONFIG.to_dict(), "start_from": "weights", "seed": 5})
    result = run_with_default_threads(lambda: train(graph, load_dataset("digits"), config, initial=pretrained))
    assert result.start == {"from": "weights", "fresh": []} and result.frozen == [first.name]
    project = Project(graph, config, weights=result.state_dict, dataset="digits", start_weights=pretrained)
    folder = tmp_path / "bundle"
    folder.mkdir()
    export_python(project, folder)
    assert (folder / "start.safetensors").exists()
    out = tmp_path / "trained.safetensors"
    proc = isolated(RUN_SCRIPT, ["train.py", "--epochs", "2", "--device", "cpu", "--out", str(out)], cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = load_file(out)
    for key, value in result.state_dict.items():
        assert torch.equal(trained[key], value), key
    for key in (f"{first.name}.weight", f"{first.name}.bias"):     # frozen: as loaded
        assert torch.equal(trained[key], pretrained[key]), key
