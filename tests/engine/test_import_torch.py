"""Importing PyTorch modules: templates round-trip through the python export, hand-written modules
reproduce their outputs with their weights, and what cannot be mapped is named with its line."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from engine import cli
from engine.analysis import analyse
from engine.compiler import compile_graph
from engine.export import export
from engine.importers import ModelImportError, import_torch
from engine.project import Project, load_project
from engine.templates import load_template, template_names

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, source: str, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _canon(graph):
    """Types, validated parameters and wiring, in analysis order: what must survive a round trip."""
    analysis = analyse(graph)
    index = {node_id: i for i, node_id in enumerate(analysis.order)}
    return [(graph.node(n).type, analysis.params[n], [index[s] for s in analysis.inputs_of(graph, n)])
            for n in analysis.order]


def _outputs(graph, weights, inputs):
    model = compile_graph(graph)
    model.load_state_dict(weights, strict=True)
    with torch.no_grad():
        return model.eval()(*inputs)


def _random_input(graph, batch=4):
    analysis = analyse(graph)
    spec = analysis.specs[analysis.inputs[0]]
    generator = torch.Generator().manual_seed(1)
    if spec.dtype == "int64":
        return torch.randint(0, 50, (batch, *spec.shape), generator=generator)
    return torch.randn((batch, *spec.shape), generator=generator)


def _module_output(module, x):
    with torch.no_grad():
        return module.eval()(x)


def _laid_out_left_to_right(graph) -> bool:
    """Placed by the one layout: left to right by layer, a long graph wrapped into rows (reading
    order: every wire goes right in its row, or on to a later row)."""
    from engine.graph import layered_layout

    pos = {n.id: n.pos for n in graph.nodes()}
    expected = layered_layout(graph)
    reading = all(pos[e.src][0] < pos[e.dst][0] or pos[e.src][1] < pos[e.dst][1] for e in graph.edges())
    return pos == expected and reading and all(x % 280 == 0 for x, _ in pos.values()) and min(
        x for x, _ in pos.values()) == 0


# ----------------------------------------------------------------------------- templates round trip

@pytest.mark.parametrize("name", template_names())
def test_template_round_trips_through_the_python_export(name, tmp_path):
    original = load_template(name)
    torch.manual_seed(0)
    export(Project(graph=original), "python", tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    result = import_torch(bundle / "model.py", weights=bundle / "weights.safetensors")

    assert _canon(result.graph) == _canon(original)
    analysis = analyse(result.graph)
    assert analysis.diagnostics == []
    assert _laid_out_left_to_right(result.graph)
    # every block with a submodule keeps its name (forward's variables and Input names are not in the code)
    from safetensors.torch import load_file

    exported = load_file(str(bundle / "weights.safetensors"))
    assert set(result.weights) == set(exported)
    for key, value in exported.items():
        assert torch.equal(result.weights[key], value), key
    x = _random_input(original)
    assert torch.allclose(_outputs(result.graph, result.weights, [x]), _outputs(original, exported, [x]), atol=1e-6)
    assert result.source_params == analysis.total_params == analyse(original).total_params


def test_round_trip_keeps_module_names(tmp_path):
    original = load_template("residual_cnn")
    export(Project(graph=original), "python", tmp_path / "b")
    result = import_torch(tmp_path / "b" / "model.py")
    nodes = [n for g in (result.graph, *result.graph.modules.values()) for n in g.nodes()]   # modules kept
    assert {"stem", "conv_a", "conv_b", "pool", "dense", "relu"} <= {n.name for n in nodes}
    assert [n.type for n in nodes].count("Add") == 1


# ----------------------------------------------------------------------------- modules as people write them

SEQUENTIAL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.net(x)
'''


def test_sequential_mlp(tmp_path):
    path = _write(tmp_path, SEQUENTIAL)
    result = import_torch(path, "Net", input_shape=(1, 28, 28))
    graph = result.graph
    assert [n.type for n in graph.nodes()] == ["Input", "Output", "Module"]     # self.net: a module (issue #17)
    net = graph.modules[graph.find("net").params["module"]]
    assert [n.type for n in net.nodes()] == ["Input", "Flatten", "Linear", "Dropout", "Linear", "Output"]
    linear = net.find("1")
    assert linear.params["units"] == 128 and linear.params["activation"] == "relu"
    assert net.find("3").params["p"] == 0.2
    assert analyse(graph).total_params == 784 * 128 + 128 + 128 * 10 + 10 == 101_770
    assert set(result.weights) == {"net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias"}   # the source's keys
    torch.manual_seed(3)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    reference.load_state_dict({k.removeprefix("net."): v for k, v in result.weights.items()})
    from engine.importers.torch_fx import import_torch as import_torch_fx

    flat = import_torch_fx(path, "Net", input_shape=(1, 28, 28), keep_modules=False)
    assert [n.type for n in flat.graph.nodes()] == ["Input", "Flatten", "Linear", "Dropout", "Linear", "Output"]
    assert set(flat.weights) == {"net_1.weight", "net_1.bias", "net_4.weight", "net_4.bias"}
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(_outputs(graph, result.weights, [x]), _module_output(reference, x), atol=1e-6)


class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.conv(x)
        x = self.bn(x)
        x = nn.functional.relu(x)
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return self.head(x)


def test_residual_block_with_batchnorm(tmp_path):
    torch.manual_seed(0)
    module = ResidualNet()
    with torch.no_grad():  # running statistics that are not the defaults, so they must travel
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    result = import_torch(module, input_shape=[1, 8, 8])
    graph = result.graph
    types = [n.type for n in graph.nodes()]
    assert types == ["Input", "Conv2d", "Conv2d", "Add", "BatchNorm", "Activation", "GlobalAvgPool", "Linear",
                     "Output"]
    add = next(n for n in graph.nodes() if n.type == "Add")
    assert sorted(graph.node(s).name for s in graph.inputs_of(add.id).values()) == ["conv", "stem"]
    assert graph.find("stem").params["padding"] == 1 and graph.find("stem").params["activation"] == "relu"
    assert torch.equal(result.weights["bn.running_mean"], module.bn.running_mean)
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(_outputs(graph, result.weights, [x]), _module_output(module, x), atol=1e-5)
    assert analyse(graph).diagnostics == [] and _laid_out_left_to_right(graph)


class LstmClassifier(nn.Module):
    def __init__(self, vocab: int = 50):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True, dropout=0.1)
        self.fc = nn.Linear(32, 3)

    def forward(self, tokens):
        x = self.embedding(tokens)
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class GruRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 24, batch_first=True)
        self.out = nn.Linear(24, 1)

    def forward(self, x):
        _, h = self.gru(x)
        return self.out(h[-1])


def test_lstm_classifier_takes_the_last_step():
    torch.manual_seed(0)
    module = LstmClassifier()
    result = import_torch(module, input_shape=(12,))
    graph = result.graph
    assert [n.type for n in graph.nodes()] == ["Input", "Embedding", "LSTM", "Linear", "Output"]
    assert graph.find("tokens").params == {"shape": [12], "dtype": "int64"}
    lstm = graph.find("lstm").params
    assert lstm["hidden_size"] == 32 and lstm["num_layers"] == 2 and lstm["return_sequences"] is False
    assert lstm["dropout"] == pytest.approx(0.1)
    x = torch.randint(0, 50, (4, 12))
    assert torch.allclose(_outputs(graph, result.weights, [x]), _module_output(module, x), atol=1e-5)


def test_gru_final_hidden_state_is_the_last_step():
    torch.manual_seed(0)
    module = GruRegressor()
    result = import_torch(module, input_shape="20,8")
    assert result.graph.find("gru").params["return_sequences"] is False
    x = torch.randn(3, 20, 8)
    assert torch.allclose(_outputs(result.graph, result.weights, [x]), _module_output(module, x), atol=1e-5)


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        x = self.encoder(self.embed(x))
        a, _ = self.attn(x, x, x)
        x = self.norm(x + a)
        return torch.softmax(self.head(x.mean(dim=1)), dim=-1)


def test_small_transformer():
    torch.manual_seed(0)
    module = TinyTransformer()
    result = import_torch(module, input_shape=(10,))
    graph = result.graph
    types = [n.type for n in graph.nodes()]
    assert types == ["Input", "Embedding", "TransformerEncoderLayer", "TransformerEncoderLayer", "MultiheadAttention",
                     "Add", "LayerNorm", "GlobalAvgPool", "Linear", "Output"]
    enc = graph.find("encoder_0").params
    assert (enc["nhead"], enc["dim_feedforward"], enc["activation"]) == (4, 64, "gelu")
    assert graph.find("attn").params["mode"] == "self"
    assert graph.find("head").params["activation"] == "softmax"
    assert analyse(graph).total_params == sum(p.numel() for p in module.parameters())
    x = torch.randint(0, 100, (4, 10))
    assert torch.allclose(_outputs(graph, result.weights, [x]), _module_output(module, x), atol=1e-5)


def test_weights_from_a_state_dict_file(tmp_path):
    path = _write(tmp_path, SEQUENTIAL)
    torch.manual_seed(7)
    trained = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    state = {f"net.{k}": v for k, v in trained.state_dict().items()}
    torch.save(state, tmp_path / "trained.pt")
    result = import_torch(path, "Net", input_shape=(1, 28, 28), weights=tmp_path / "trained.pt")
    assert torch.equal(result.weights["net.4.weight"], trained[4].weight)
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(_outputs(result.graph, result.weights, [x]), _module_output(trained, x), atol=1e-6)
    with pytest.raises(ModelImportError, match="do not fit Net"):
        import_torch(path, "Net", input_shape=(1, 28, 28), weights={"net.1.weight": torch.zeros(3, 3)})


# ----------------------------------------------------------------------------- what cannot be imported

UNSUPPORTED = '''
import torch
from torch import nn


def odd_activation(x):
    return x * torch.sin(x)


class Spectral(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        x = self.fc(x)
        x = torch.fft.fft(x).real
        return odd_activation(x)
'''


def test_unsupported_ops_are_named_with_their_lines(tmp_path):
    path = _write(tmp_path, UNSUPPORTED)
    with pytest.raises(ModelImportError) as info:
        import_torch(path)   # one module in the file: no --class needed; Linear first: shape (16,)
    message = str(info.value)
    assert "\n" not in message
    assert f"model.py line {_line_of(path, 'torch.fft.fft')}" in message and "fft" in message
    assert "cannot import Spectral" in message


def test_custom_function_is_named_with_its_line(tmp_path):
    source = UNSUPPORTED.replace("x = torch.fft.fft(x).real", "x = x * 2.0")
    path = _write(tmp_path, source)
    with pytest.raises(ModelImportError) as info:
        import_torch(path, "Spectral")
    message = str(info.value)
    assert f"model.py line {_line_of(path, 'torch.sin')}" in message and "sin" in message
    assert "1 operation has no Deepwire block" in message


def test_data_dependent_control_flow_is_reported_with_its_line(tmp_path):
    path = _write(tmp_path, '''
        import torch
        from torch import nn


        class Branchy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                if x.sum() > 0:
                    return self.fc(x)
                return x
    ''')
    with pytest.raises(ModelImportError) as info:
        import_torch(path)
    message = str(info.value)
    assert "torch.fx cannot trace Branchy" in message
    assert f"model.py line {_line_of(path, 'x.sum()')}" in message


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_shared_weights_and_missing_shapes_are_refused(tmp_path):
    with pytest.raises(ModelImportError, match="called more than once"):
        import_torch(Shared())
    with pytest.raises(ModelImportError, match="--input-shape"):
        import_torch(ResidualNet())
    path = _write(tmp_path, SEQUENTIAL + "\n\nclass Other(Net):\n    pass\n")
    with pytest.raises(ModelImportError, match=r"several modules \(Net, Other\).*--class"):
        import_torch(path, input_shape=(1, 28, 28))
    with pytest.raises(ModelImportError, match="running broken.py failed at broken.py line 2"):
        import_torch(_write(tmp_path, "import torch\nraise RuntimeError('boom')\n", "broken.py"))


def test_batch_first_false_is_explained():
    class Old(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    with pytest.raises(ModelImportError, match="batch_first=True"):
        import_torch(Old(), input_shape=(5, 4))


# ----------------------------------------------------------------------------- command line

def test_cli_import_writes_a_project_that_check_accepts(tmp_path, capsys):
    path = _write(tmp_path, SEQUENTIAL)
    out = tmp_path / "net.deepwire"
    assert cli.main(["import", str(path), "--class", "Net", "--input-shape", "1,28,28", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    project = load_project(out)
    assert project.trained and set(project.weights) == {"net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias"}
    assert cli.main(["check", str(out)]) == 0
    assert cli.main(["import", str(path), "--input-shape", "1,28,28", "-o", str(out)]) == 1   # exists
    assert "--force" in capsys.readouterr().err


def test_cli_import_failure_is_one_line_and_exit_2(tmp_path, capsys):
    path = _write(tmp_path, UNSUPPORTED)
    assert cli.main(["import", str(path), "-o", str(tmp_path / "g.json")]) == 2
    warning, err = capsys.readouterr().err.split("\n", 1)   # first: the file's code is being run (issue #13)
    assert "runs the Python code" in warning
    assert err.count("\n") == 1 and err.startswith("deepwire: cannot import") and "fft" in err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.slow
def test_main_py_import_then_check(tmp_path, capsys):
    path = _write(tmp_path, SEQUENTIAL)
    out = tmp_path / "net.json"
    proc = subprocess.run([sys.executable, "main.py", "import", str(path), "--input-shape", "1,28,28", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["format"] == "deepwire-graph"
    assert "weights are not saved" in proc.stderr   # a .json graph cannot hold them: the CLI says so
    assert cli.main(["check", str(out)]) == 0
    with pytest.raises(SystemExit):
        cli.main(["import", "--help"])
    assert "runs its code" in " ".join(capsys.readouterr().out.split())


def test_every_unsupported_operation_is_named_once_with_its_count():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.Hardshrink(), Odd()) for _ in range(40)])

        def forward(self, x):
            return torch.cos(self.blocks(x))

    with pytest.raises(ModelImportError) as info:
        import_torch(Net(), input_shape=(8,))
    message = str(info.value)
    # the rest is still translated after the first problem: all three kinds, each once, with its count
    assert "81 operations have no Deepwire block (3 different)" in message
    assert "Hardshrink (self.blocks.0.1, self.blocks.1.1, self.blocks.2.1 and 37 more) has no Deepwire block" in message
    assert "torch.sin has no Deepwire block (40 times)" in message and "torch.cos has no Deepwire block" in message
    # the line inside the layer that does it, and the model's line that leads there
    assert f"test_import_torch.py line {_line_of(Path(__file__), 'return torch.sin(x)')}" in message
    assert len(message) < 1000 and "\n" not in message
