"""PySide6 6.12.0 on Python 3.11 aborts the interpreter ("Fatal Python error: none_dealloc")
after a few thousand Qt calls that return None: the designer would die mid-drag. pyproject.toml
pins PySide6-Essentials below 6.12 on Python < 3.12; these tests keep that pin honest."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN_EXPLAINED = ("PySide6 6.12.0 aborts Python 3.11 with 'Fatal Python error: none_dealloc' after a few "
                 "thousand Qt calls returning None; pyproject.toml pins PySide6-Essentials<6.12 for "
                 "python_version < '3.12'. Reinstall with that pin (pip install 'PySide6-Essentials<6.12').")

MANY_NONE_RETURNS = textwrap.dedent("""
    from PySide6.QtGui import QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QGraphicsScene

    app = QApplication([])
    scene = QGraphicsScene()
    item = QGraphicsRectItem(0, 0, 10, 10)
    scene.addItem(item)
    for i in range(20_000):
        item.setPos(i, i)            # returns None
    model = QStandardItemModel()
    cell = QStandardItem("cell")
    model.appendRow(cell)
    for i in range(20_000):
        cell.setData(i)              # returns None
        cell.setText(str(i))         # returns None
    assert item.pos().x() == 19_999
    assert cell.data() == 19_999 and cell.text() == "19999"
    print("survived")
""")


def _pyside_version() -> Version:
    for dist in ("PySide6-Essentials", "PySide6"):
        try:
            return Version(importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            continue
    import PySide6
    return Version(PySide6.__version__)


def test_many_qt_calls_returning_none_do_not_abort_python():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", MANY_NONE_RETURNS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert "Fatal Python error" not in proc.stderr, PIN_EXPLAINED + "\n" + proc.stderr[-2000:]
    assert proc.returncode == 0, f"exit {proc.returncode}: {PIN_EXPLAINED}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "survived"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the none_dealloc abort affects Python < 3.12 only")
def test_installed_pyside6_respects_the_pin():
    version = _pyside_version()
    assert version < Version("6.12"), f"PySide6 {version} is installed on Python 3.11. {PIN_EXPLAINED}"


def test_pyproject_keeps_the_pin_for_python_311():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    env = {"python_version": "3.11", "python_full_version": "3.11.7"}
    pyside = [r for r in reqs if r.name.lower() in ("pyside6-essentials", "pyside6")
              and (r.marker is None or r.marker.evaluate(env))]
    assert pyside, "pyproject.toml must depend on PySide6 on Python 3.11"
    for req in pyside:
        assert not req.specifier.contains("6.12.0"), f"{req} allows 6.12.0. {PIN_EXPLAINED}"
        assert req.specifier.contains("6.11.3"), f"{req} excludes the known-good 6.11.x"
