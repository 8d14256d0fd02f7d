"""The headless command line (`python main.py COMMAND ...`), as a user runs it.

A few real subprocesses (started together, since each one imports torch) check the
entry point end to end; the rest of the behaviour is checked in-process through
engine.cli.main with capsys, which runs exactly the same code.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import cli
from engine.templates import TEMPLATE_DIR

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
TEMPLATES = sorted(p.stem for p in TEMPLATE_DIR.glob("*.json"))
FASHION = TEMPLATE_DIR / "fashion_mnist_mlp.json"
FASHION_BLOCKS = ["input", "flatten", "dense", "dense_1", "output"]
QT_PREFIXES = ("PySide6", "shiboken6", "pyqtgraph", "designer.", "PyQt5", "PyQt6")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def broken_graph_dict() -> dict:
    """The Fashion-MNIST MLP with its hidden layer given an impossible width."""
    data = json.loads(FASHION.read_text(encoding="utf-8"))
    for node in data["nodes"]:
        if node["id"] == "n3":
            node["name"] = "hidden layer"
            node["params"]["units"] = -5
    return data


# A small driver that runs main.py in-process several times (as `python main.py ARGS`
# would) and reports each run's exit code and output, then which modules got imported.
NO_QT_DRIVER = textwrap.dedent("""
    import contextlib, io, json, runpy, sys
    runs = []
    for argv in json.loads(sys.argv[1]):
        sys.argv = ["main.py", *argv]
        out, err = io.StringIO(), io.StringIO()
        code = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path("main.py", run_name="__main__")
            except SystemExit as exc:
                code = exc.code
        runs.append({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    print(json.dumps({"runs": runs, "modules": sorted(sys.modules)}))
""")


@pytest.fixture(scope="module")
def procs(tmp_path_factory):
    """Real `python main.py ...` runs, started together to share the cost of importing torch."""
    tmp = tmp_path_factory.mktemp("cli")
    new_file = tmp / "new_model.json"
    broken = tmp / "broken.json"
    broken.write_text(json.dumps(broken_graph_dict()), encoding="utf-8")
    driver_argvs = [["check", str(FASHION)], ["summary", str(FASHION)], ["code", str(FASHION)],
                    ["templates"], ["check", str(broken)],
                    ["new", "digits_mlp", "-o", str(tmp / "d.json")], ["check", str(tmp / "d.json")]]

    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {
            "templates": pool.submit(_run, [str(MAIN), "templates"]),
            "new": pool.submit(_run, [str(MAIN), "new", "fashion_mnist_mlp", "-o", str(new_file)]),
            "code": pool.submit(_run, [str(MAIN), "code", str(FASHION)]),
            "driver": pool.submit(_run, ["-c", NO_QT_DRIVER, json.dumps(driver_argvs)]),
        }
        results = {name: job.result() for name, job in jobs.items()}
    results["new_file"] = new_file
    return results


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# ----------------------------------------------------------------------------- real subprocesses

@pytest.mark.slow
def test_templates_subprocess_lists_all_ten(procs):
    proc = procs["templates"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(TEMPLATES) == 10
    assert len(lines) == 10, proc.stdout
    assert [line.split()[0] for line in lines] == TEMPLATES
    assert all(len(line.split(None, 1)) == 2 for line in lines), "each template has a description"


@pytest.mark.slow
def test_new_subprocess_writes_a_file_that_check_passes(procs, capsys):
    new = procs["new"]
    assert new.returncode == 0, new.stderr
    assert "wrote" in new.stdout and "5 blocks" in new.stdout
    data = json.loads(procs["new_file"].read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and len(data["nodes"]) == 5
    assert cli.main(["check", str(procs["new_file"])]) == 0
    assert "ok (0 errors" in capsys.readouterr().out
    # and `new` then `check` through main.py in one fresh interpreter
    runs = json.loads(procs["driver"].stdout)["runs"]
    assert [r["code"] for r in runs[-2:]] == [0, 0], runs[-2:]
    assert "ok (0 errors" in runs[-1]["stdout"]


@pytest.mark.slow
def test_code_subprocess_prints_runnable_module(procs):
    proc = procs["code"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    namespace: dict = {}
    exec(compile(proc.stdout, "<deepwire code>", "exec"), namespace)
    model = namespace["FashionMnistMlp"]()
    assert isinstance(model, nn.Module)
    assert model(torch.zeros(3, 28, 28)).shape == (3, 10)


@pytest.mark.slow
def test_cli_never_imports_qt(procs):
    proc = procs["driver"]
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    codes = [run["code"] for run in report["runs"]]
    assert codes == [0, 0, 0, 0, 1, 0, 0], report["runs"]
    for run in report["runs"]:
        _no_traceback(run["stdout"], run["stderr"])
    qt = [m for m in report["modules"] if m.startswith(QT_PREFIXES)]
    assert qt == [], f"the headless CLI imported Qt modules: {qt[:10]}"
    assert "torch" in report["modules"], "the driver really ran the engine"


@pytest.mark.slow
def test_summary_via_main_py(procs):
    summary = json.loads(procs["driver"].stdout)["runs"][1]
    assert summary["code"] == 0
    assert "Total params: 101,770" in summary["stdout"]
    for name in FASHION_BLOCKS:
        assert name in summary["stdout"]


@pytest.mark.slow
def test_check_via_main_py_names_the_broken_node(procs):
    run = json.loads(procs["driver"].stdout)["runs"][4]
    assert run["code"] == 1
    assert "hidden layer" in run["stdout"] and "units" in run["stdout"]


# ----------------------------------------------------------------------------- in-process

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    return code, out, err


def test_templates_json(capsys):
    code, out, _ = run_cli(capsys, "templates", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == TEMPLATES
    assert all(r["description"] and r["title"] for r in rows)


@pytest.mark.parametrize("template", TEMPLATES)
def test_new_then_check_every_template(template, tmp_path, capsys):
    target = tmp_path / f"{template}.json"
    code, out, err = run_cli(capsys, "new", template, "-o", str(target))
    assert (code, err) == (0, ""), err
    assert target.is_file()
    code, out, err = run_cli(capsys, "check", str(target))
    assert code == 0, out
    assert "ok (0 errors" in out


def test_new_refuses_to_overwrite_without_force(tmp_path, capsys):
    target = tmp_path / "mine.json"
    target.write_text("my precious work", encoding="utf-8")
    code, out, err = run_cli(capsys, "new", "digits_mlp", "-o", str(target))
    assert code == 1
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert target.read_text(encoding="utf-8") == "my precious work"
    code, out, err = run_cli(capsys, "new", "digits_mlp", "-o", str(target), "--force")
    assert code == 0, err
    assert json.loads(target.read_text(encoding="utf-8"))["name"] == "Digits MLP"
    assert not [p.name for p in tmp_path.iterdir() if p.name != "mine.json"], "no temporary files left"


def test_new_unknown_template_is_one_clear_line(tmp_path, capsys):
    target = tmp_path / "x.json"
    code, out, err = run_cli(capsys, "new", "no_such_template", "-o", str(target))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no_such_template" in err and "digits_mlp" in err
    assert not target.exists()


def test_check_reports_errors_naming_the_node(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken_graph_dict()), encoding="utf-8")
    code, out, err = run_cli(capsys, "check", str(path))
    assert code == 1
    error_lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "hidden layer" in error_lines[0] and "units" in error_lines[0]
    assert "has errors (1 error" in out.splitlines()[-1]


def test_check_json_lists_diagnostics_with_ids_and_names(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken_graph_dict()), encoding="utf-8")
    code, out, _ = run_cli(capsys, "check", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    errors = [d for d in report["diagnostics"] if d["severity"] == "error"]
    assert len(errors) == 1
    assert errors[0]["node"] == "n3"
    assert errors[0]["name"] == "hidden layer"
    assert errors[0]["kind"] == "invalid-param"
    assert "units" in errors[0]["message"]


def test_check_json_on_graph_level_error_has_null_node(tmp_path, capsys):
    data = broken_graph_dict()
    data["nodes"] = [n for n in data["nodes"] if n["type"] != "Output"]
    data["edges"] = [e for e in data["edges"] if e["dst"] != "n5"]
    path = tmp_path / "no_output.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    code, out, _ = run_cli(capsys, "check", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    kinds = {d["kind"]: d for d in report["diagnostics"]}
    assert kinds["no-output"]["node"] is None and kinds["no-output"]["name"] is None
    assert kinds["invalid-param"]["name"] == "hidden layer"


def test_check_json_clean(capsys):
    code, out, _ = run_cli(capsys, "check", str(FASHION), "--json")
    assert code == 0
    assert json.loads(out) == {"ok": True, "diagnostics": []}


def test_summary_table(capsys):
    code, out, err = run_cli(capsys, "summary", str(FASHION))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    for name in FASHION_BLOCKS:
        assert any(line.split()[:1] == [name] for line in lines), name
    dense = next(line for line in lines if line.split()[:1] == ["dense"])
    assert "(128,)" in dense and "100,480" in dense
    assert "Total params: 101,770" in out


def test_summary_json(capsys):
    code, out, _ = run_cli(capsys, "summary", str(FASHION), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["total_params"] == 101_770
    assert report["ok"] is True
    assert [n["name"] for n in report["nodes"]] == FASHION_BLOCKS
    assert report["nodes"][-1]["output_shape"] == [10]
    assert sum(n["params"] for n in report["nodes"]) == 101_770


def test_summary_of_broken_graph_exits_1(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken_graph_dict()), encoding="utf-8")
    code, out, _ = run_cli(capsys, "summary", str(path))
    assert code == 1
    assert "hidden layer" in out


@pytest.mark.parametrize("template", TEMPLATES)
def test_code_compiles_and_matches_summary(template, capsys):
    path = TEMPLATE_DIR / f"{template}.json"
    code, source, err = run_cli(capsys, "code", str(path))
    assert (code, err) == (0, "")
    tree = ast.parse(source)
    class_defs = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert class_defs, "the source defines its model class"
    namespace: dict = {}
    exec(compile(source, f"<{template}>", "exec"), namespace)
    classes = [namespace[name] for name in class_defs]
    assert all(issubclass(c, nn.Module) for c in classes)
    model = classes[-1]()
    code, out, _ = run_cli(capsys, "summary", str(path), "--json")
    assert sum(p.numel() for p in model.parameters()) == json.loads(out)["total_params"]


def test_code_refuses_broken_graph(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken_graph_dict()), encoding="utf-8")
    code, out, err = run_cli(capsys, "code", str(path))
    assert code == 1
    assert out == "", "no half-written source on stdout"
    assert err.startswith("error:") and "hidden layer" in err
