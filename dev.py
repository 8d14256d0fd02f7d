#!/usr/bin/env python3
"""Set up Deepwire in ./.venv and run it: `python3 dev.py start` or `python3 dev.py test`.

Needs only Python 3.11+ with pip. Creates the virtual environment on first use, installs
PyTorch (the CPU build pinned below, unless a torch is already there: install a CUDA
build into .venv first to train on a GPU), then Deepwire with its test and ONNX extras. Later runs
skip the install unless pyproject.toml changed.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_PIN = "torch==2.13.0"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str, **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def has_module(name: str) -> bool:
    return subprocess.run([str(PY), "-c", f"import {name}"], capture_output=True).returncode == 0


def setup() -> None:
    if not PY.exists():
        print(f"creating {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".deepwire-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and has_module("torch") and has_module("engine"):
        return
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if not has_module("torch"):
        run(*pip, TORCH_PIN)
    run(*pip, "-e", f"{ROOT}[test,onnx]")
    stamp.write_text(wanted)


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on any python3 to say so
        sys.exit(f"Deepwire needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    what = sys.argv[1] if len(sys.argv) > 1 else "start"
    rest = sys.argv[2:]
    if what not in ("start", "test", "setup"):
        sys.exit("usage: python3 dev.py start [FILE] | test [PYTEST ARGS] | setup")
    setup()
    env = dict(os.environ)
    if what == "test":
        if env.get("CI") or not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) or os.name == "nt":
            env.setdefault("QT_QPA_PLATFORM", "offscreen")
        return subprocess.call([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT, env=env)
    if what == "start":
        return subprocess.call([str(PY), str(ROOT / "main.py"), *rest], cwd=ROOT, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
