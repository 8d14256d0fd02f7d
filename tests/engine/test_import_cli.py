"""`deepwire import` on the command line: a .py file is announced as run before its code runs; --no-weights
imports the graph alone (and cannot be combined with --weights)."""
from __future__ import annotations

import pytest

from engine import cli
from engine.project import load_project

MODEL = '''
import sys

import torch
from torch import nn

print("MODEL CODE RAN", file=sys.stderr)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
'''


def test_running_a_py_file_is_said_on_stderr_before_its_code_runs(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    out = tmp_path / "net.deepwire"
    assert cli.main(["import", str(path), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    warning = err.index("runs the Python code in it")
    assert warning < err.index("MODEL CODE RAN")
    assert "import only files you trust" in err[:err.index("MODEL CODE RAN")]
    assert load_project(out).weights is not None


def test_no_weights_imports_the_graph_alone(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    out = tmp_path / "net.deepwire"
    assert cli.main(["import", str(path), "--no-weights", "-o", str(out)]) == 0
    assert "without weights (--no-weights)" in capsys.readouterr().out
    project = load_project(out)
    assert project.weights is None and [n.type for n in project.graph.nodes()] == ["Input", "Linear", "Output"]
    with pytest.raises(SystemExit):
        cli.main(["import", str(path), "--no-weights", "--weights", "w.safetensors", "-o", str(out)])
    assert "not allowed with argument" in capsys.readouterr().err


def test_nan_weights_in_a_pytorch_module_are_noted(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL + "\n\nclass Broken(Net):\n    def __init__(self):\n        super().__init__()\n"
                            "        with torch.no_grad():\n            self.fc.weight[0, 0] = float('nan')\n")
    assert cli.main(["import", str(path), "--class", "Broken", "-o", str(tmp_path / "b.deepwire")]) == 0
    assert "note: Broken's 'fc' holds NaN or infinite weights (fc.weight)" in capsys.readouterr().err
    assert cli.main(["import", str(path), "--class", "Net", "-o", str(tmp_path / "n.deepwire")]) == 0
    assert "NaN" not in capsys.readouterr().err


BLOCKS = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.relu(self.fc(x)) + x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block(), Block())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.blocks(x))
'''


def test_submodules_become_modules_unless_flat_is_asked(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(BLOCKS)
    grouped, flat = tmp_path / "grouped.deepwire", tmp_path / "flat.deepwire"
    assert cli.main(["import", str(path), "--input-shape", "8", "-o", str(grouped)]) == 0
    assert cli.main(["import", str(path), "--input-shape", "8", "--flat", "-o", str(flat)]) == 0
    grouped_graph, flat_graph = load_project(grouped).graph, load_project(flat).graph
    assert grouped_graph.modules and any(n.type == "Module" for n in grouped_graph.nodes())
    assert not flat_graph.modules and sum(n.type == "Linear" for n in flat_graph.nodes()) == 4
    keras = tmp_path / "model.json"
    keras.write_text("{}")
    assert cli.main(["import", str(keras), "--flat", "-o", str(tmp_path / "k.json")]) == 2
    assert "--flat are for PyTorch .py files" in capsys.readouterr().err
