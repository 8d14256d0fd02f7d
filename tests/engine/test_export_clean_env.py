"""The python bundle in a fresh virtual environment that holds exactly what its requirements.txt
lists (PyTorch at the version running these tests, so pip takes it from the local wheel).

First with PyTorch alone: model.py imports and runs, and load() says it needs safetensors. Then
with a tabular starter's requirements (torch, safetensors, numpy): its test passes and train.py
trains, with no scikit-learn installed. Then with a digits starter's (which add scikit-learn):
train.py trains on scikit-learn's digits. Needs pip to reach a package index; skipped, saying so,
when it cannot.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.export.python_bundle import export_python
from engine.project import Project
from engine.templates import load_template

pytestmark = pytest.mark.slow

NETWORK_TROUBLE = ("NewConnectionError", "Could not fetch URL", "Temporary failure in name resolution",
                   "Network is unreachable", "ConnectTimeout", "ReadTimeout", "No route to host",
                   "Connection refused", "ProxyError", "Max retries exceeded")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def pip_install(python: Path, args: list[str], cwd: Path) -> None:
    proc = run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args], cwd, timeout=1200)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if any(sign in output for sign in NETWORK_TROUBLE):
            pytest.skip("pip cannot reach a package index to install the bundle's requirements: "
                        + output.strip().splitlines()[-1][:200])
        raise AssertionError(f"pip install {' '.join(args)} failed:\n{output[-3000:]}")


def requirements(folder: Path) -> list[str]:
    text = (folder / "requirements.txt").read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    """(the new environment's python, a constraints file pinning torch to this one's version)."""
    base = tmp_path_factory.mktemp("clean_env")
    made = subprocess.run([sys.executable, "-m", "venv", str(base / "env")], env=clean_env(), capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    python = base / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    constraints = base / "constraints.txt"
    constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    return python, constraints


def export(template: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    export_python(Project(load_template(template)), folder)
    return folder


CHECK_TORCH_ONLY = """
import importlib.util
for name in ("numpy", "safetensors", "sklearn", "engine"):
    assert importlib.util.find_spec(name) is None, name + " is installed"
import torch
import model
net = model.TabularDnn()
print("outputs", tuple(net(torch.randn(3, 20)).shape))
try:
    model.load()
except ImportError as exc:
    print("load:", exc)
"""


def test_the_bundle_runs_with_exactly_its_requirements(venv, tmp_path):
    python, constraints = venv
    tabular = export("tabular_dnn", tmp_path / "tabular")
    digits = export("digits_mlp", tmp_path / "digits")
    torch_line = [r for r in requirements(tabular) if r.startswith("torch")]
    assert len(torch_line) == 1

    # PyTorch alone: the model imports and runs; load() names the package it needs
    pip_install(python, ["-c", str(constraints), *torch_line], tmp_path)
    check = run([str(python), "-c", CHECK_TORCH_ONLY], tabular)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "outputs (3, 1)" in check.stdout
    assert "load: loading weights needs the safetensors package: pip install safetensors" in check.stdout
    needs_numpy = run([str(python), "test_export.py"], tabular)
    assert needs_numpy.returncode != 0 and "No module named 'numpy'" in needs_numpy.stderr

    # the tabular starter's requirements: its test passes and train.py trains on its own data
    pip_install(python, ["-c", str(constraints), "-r", str(tabular / "requirements.txt")], tmp_path)
    test = run([str(python), "test_export.py"], tabular)
    assert test.returncode == 0 and "ok: the exported model reproduces" in test.stdout, test.stdout + test.stderr
    trained = run([str(python), "train.py", "--epochs", "1", "--device", "cpu"], tabular)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert "tabular_binary: 700 training" in trained.stdout and (tabular / "trained.safetensors").is_file()
    missing = run([str(python), "-c", "import importlib.util as u; print([u.find_spec(n) is None for n in "
                                     "('sklearn', 'PIL', 'engine')])"], tabular)
    assert missing.stdout.strip() == "[True, True, True]", "the requirements were more than the bundle needs"

    # the digits starter's requirements add scikit-learn, for its data
    assert set(requirements(digits)) - set(requirements(tabular)) == {"scikit-learn>=1.3"}
    pip_install(python, ["-c", str(constraints), "-r", str(digits / "requirements.txt")], tmp_path)
    trained = run([str(python), "train.py", "--epochs", "1", "--device", "cpu"], digits)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert "digits: 1258 training" in trained.stdout and "process 1/1 finished" in trained.stdout
