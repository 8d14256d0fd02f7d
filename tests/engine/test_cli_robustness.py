"""The command line never hangs and never shows a traceback for what the system refuses: pipes
and devices given as files, names longer than the system allows, seeds out of range, models too
big for this machine. Each is one line on stderr and exit 1 or 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine import cli
from engine.cli import main
from engine.graph import build

ROOT = Path(__file__).resolve().parents[2]
LONG = "n" * 300          # a file name over the 255 bytes most file systems allow


def write_graph(path: Path, nodes) -> Path:
    path.write_text(build(path.stem, nodes).to_json())
    return path


def iris_graph(tmp_path: Path) -> Path:
    return write_graph(tmp_path / "iris.json", [("x", "Input", {"shape": [4]}), ("fc", "Linear", {"units": 3}),
                                                ("y", "Output", {})])


@pytest.fixture
def trained(tmp_path):
    out = tmp_path / "iris.deepwire"
    assert main(["train", str(iris_graph(tmp_path)), "--dataset", "iris", "--epochs", "1", "-o", str(out)]) == 0
    return out


def one_line_failure(capsys, code: int, allowed=(1, 2)) -> str:
    err = capsys.readouterr().err
    assert code in allowed, err
    assert err.count("\n") == 1 and err.startswith("deepwire: ") and "Traceback" not in err, err
    return err


# Runs several commands in one interpreter (one torch import), each through engine.cli.main as
# `python main.py ARGS` would; a command that blocks makes the whole run time out.
DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys
    from engine.cli import main
    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        results.append({"argv": argv, "code": code, "stderr": err.getvalue()})
    print(json.dumps(results))
""")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_given_as_any_file_is_refused_at_once(tmp_path, trained):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), dtype=np.float32))
    graph = iris_graph(tmp_path)
    commands = [
        ["train", str(fifo), "--dataset", "iris"],
        ["export", str(fifo), "-o", str(tmp_path / "e")],
        ["predict", str(fifo), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")],
        ["evaluate", str(fifo), "--dataset", "iris"],
        ["summary", str(fifo)],
        ["code", str(fifo)],
        ["check", str(fifo)],
        ["train", str(graph), "--dataset", str(fifo)],                     # the data
        ["train", str(graph), "--dataset", "iris", "-o", str(fifo)],       # the output
        ["evaluate", str(trained), "--dataset", str(fifo)],
        ["predict", str(trained), "--input", str(fifo), "-o", str(tmp_path / "y.npy")],
        ["train", str(trained), "--dataset", "iris", "--epochs", "1", "-o", str(fifo)],
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a command given a pipe waited for it instead of refusing it")
    results = json.loads(done.stdout)
    for r in results:
        assert r["code"] in (1, 2), r
        assert r["stderr"].count("\n") == 1 and "Traceback" not in r["stderr"], r
        assert "regular file" in r["stderr"], r
    assert not (tmp_path / "e").exists() and not (tmp_path / "y.npy").exists()


def test_names_longer_than_the_system_allows_are_one_line(tmp_path, trained, capsys):
    graph = iris_graph(tmp_path)
    capsys.readouterr()
    err = one_line_failure(capsys, main(["train", str(graph), "--dataset", LONG + ".csv"]), (1,))
    assert "File name too long" in err and len(err) < 300
    one_line_failure(capsys, main(["evaluate", str(trained), "--dataset", LONG + ".csv"]), (1,))
    err = one_line_failure(capsys, main(["train", str(graph), "--dataset", "iris", "-o", str(tmp_path / LONG)]), (1,))
    assert "cannot write" in err and "File name too long" in err
    one_line_failure(capsys, main(["train", str(tmp_path / (LONG + ".json")), "--dataset", "iris"]), (2,))
    one_line_failure(capsys, main(["check", str(tmp_path / (LONG + ".json"))]), (2,))
    one_line_failure(capsys, main(["predict", str(trained), "--input", str(tmp_path / (LONG + ".npy")),
                                   "-o", str(tmp_path / "y.npy")]), (1,))
    one_line_failure(capsys, main(["export", str(trained), "-o", str(tmp_path / LONG)]), (1,))
    assert not list(tmp_path.glob("n*"))


@pytest.mark.parametrize("seed", ["-1", str(2**31), str(2**63), "99999999999999999999"])
def test_a_seed_out_of_range_is_one_line(tmp_path, capsys, seed):
    graph = iris_graph(tmp_path)
    capsys.readouterr()
    err = one_line_failure(capsys, main(["train", str(graph), "--dataset", "iris", "--seed", seed]), (1,))
    assert "seed must be a whole number from 0 to 2147483647" in err
    assert not graph.with_suffix(".deepwire").exists()


@pytest.mark.parametrize("option,value,name", [("--lr", "inf", "lr"), ("--weight-decay", "nan", "weight_decay"),
                                               ("--val-split", "nan", "val_split")])
def test_non_finite_settings_on_the_command_line_are_refused(tmp_path, capsys, option, value, name):
    capsys.readouterr()
    err = one_line_failure(capsys, main(["train", str(iris_graph(tmp_path)), "--dataset", "iris", option, value]),
                           (1,))
    assert f"{name} must be a finite number, not {value}" in err


def enormous(tmp_path: Path) -> Path:
    """A valid model of 10**12 parameters: 3.6 TiB of float32, more than any machine these tests run on."""
    return write_graph(tmp_path / "enormous.json", [("x", "Input", {"shape": [1_000_000]}),
                                                    ("fc", "Linear", {"units": 1_000_000}), ("y", "Output", {})])


def test_this_machines_memory_is_known_where_the_system_says():
    memory = cli._machine_memory()
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        assert 2**28 < memory < 2**50
    else:
        assert memory is None


def test_a_model_too_big_for_this_machine_is_refused_before_anything_is_allocated(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_machine_memory", lambda: 16 * 2**30)   # the same figures on any machine
    graph = enormous(tmp_path)
    capsys.readouterr()
    for argv in (["export", str(graph), "-o", str(tmp_path / "out")],
                 ["train", str(graph), "--dataset", "iris"]):
        err = one_line_failure(capsys, main(argv), (1,))
        assert "the model needs 3,725.3 GiB for its 1,000,001,000,000 parameters alone" in err
        assert "make the model smaller" in err
    assert not (tmp_path / "out").exists() and not graph.with_suffix(".deepwire").exists()
    assert main(["check", str(graph)]) == 0          # a warning, not an error: the graph itself is valid
    out = capsys.readouterr().out
    assert "warning: the model needs 3,725.3 GiB" in out and "this machine has 16.0 GiB of memory" in out
    assert main(["check", str(graph), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in report["diagnostics"]] == ["memory"] and report["ok"]
    assert main(["summary", str(graph)]) == 0        # the table, without a FLOP count that would build it
    out = capsys.readouterr().out
    assert "1,000,001,000,000" in out and "FLOPs not counted" in out


def test_a_model_that_fits_gets_no_memory_warning(tmp_path, capsys):
    assert main(["check", str(iris_graph(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "warning:" not in out and "memory" not in out


def test_an_allocation_that_fails_anyway_is_one_line(tmp_path, monkeypatch, capsys):
    """Where the machine's memory is unknown the model is built, and the allocator's refusal is
    reported as torch words it, in one line (simulated: a real 4 TB allocation is not tried)."""
    import engine.export as export_module

    def refuse(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 4000000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(cli, "_machine_memory", lambda: None)
    monkeypatch.setattr(export_module, "export", refuse)
    capsys.readouterr()
    err = one_line_failure(capsys, main(["export", str(iris_graph(tmp_path)), "-o", str(tmp_path / "out")]), (1,))
    assert err.startswith("deepwire: out of memory:") and "4000000000000 bytes" in err
