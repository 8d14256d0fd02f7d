"""The generated source: readable, deterministic, lint-clean, standalone, and exactly what runs."""
import ast
import inspect
import subprocess
import sys

import pytest
import torch

from engine.codegen import CodegenError, generate
from engine.compiler import compile_graph
from engine.graph import Graph, build
from engine.templates import load_template, template_names


def test_source_is_deterministic_across_runs_and_round_trips():
    graph = load_template("residual_cnn")
    first, _ = generate(graph)
    assert generate(Graph.from_json(graph.to_json()))[0] == first
    assert generate(graph)[0] == first


def test_the_module_that_runs_is_built_from_exactly_that_source():
    graph = load_template("digits_cnn")
    source, info = generate(graph)
    model = compile_graph(graph)
    assert model.deepwire_source == source
    assert inspect.getsource(type(model)) in source
    assert type(model).__name__ == info.class_name == "DigitsCnn"


def test_chains_reuse_x_and_branches_get_named_variables():
    from engine.modules import ungroup

    graph = load_template("residual_cnn")          # its residual block inline, as it was drawn flat
    ungroup(graph, graph.find("residual_block").id)
    graph.remove_module("ResidualBlock")
    source, _ = generate(graph)
    forward = source[source.index("def forward"):]
    assert "def forward(self, x: torch.Tensor) -> torch.Tensor:" in forward
    assert "stem = F.relu(self.stem(x))  # (B, 32, 8, 8)" in forward
    assert "x = conv_b + stem" in forward
    assert "self.conv_a = nn.Conv2d(32, 32, 3, padding=\"same\")" in source


def test_several_inputs_and_outputs():
    graph = build("two heads", [
        ("image", "Input", {"shape": [1, 8, 8]}), ("meta", "Input", {"shape": [3]}),
        ("flat", "Flatten", {}), ("joined", "Concatenate", {}), ("digit", "Linear", {"units": 10}),
        ("score", "Linear", {"units": 1}), ("digit_out", "Output", {}), ("score_out", "Output", {}),
    ], [("image", "flat"), ("flat", "joined"), ("meta", "joined"), ("joined", "digit"), ("joined", "score"),
        ("digit", "digit_out"), ("score", "score_out")])
    source, info = generate(graph)
    assert "def forward(self, image: torch.Tensor, meta: torch.Tensor):" in source
    assert "return digit, score" in source
    model = compile_graph(graph)
    digit, score = model(torch.rand(4, 1, 8, 8), torch.rand(4, 3))
    assert digit.shape == (4, 10) and score.shape == (4, 1)


@pytest.mark.parametrize("name", template_names())
def test_generated_source_is_lint_clean_and_needs_only_torch(name, tmp_path):
    source, _ = generate(load_template(name))
    imports = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
               if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    imports |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module}
    assert imports <= {"torch", "math", "nn", "F"}
    path = tmp_path / "model.py"
    path.write_text(source)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "E,W,F",
                           "--line-length", "99", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_graph_with_errors_is_not_generated():
    graph = build("bad", [("input", "Input", {"shape": [784]}), ("conv", "Conv2d", {}), ("out", "Output", {})])
    with pytest.raises(CodegenError, match="Conv2d 'conv'"):
        generate(graph)
