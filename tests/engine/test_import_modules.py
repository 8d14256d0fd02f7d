"""The PyTorch importer keeps the source's module hierarchy (issue #17): look-alikes of torchvision's and timm's
classes (a ResNet of BasicBlocks with an optional downsample, a Sequential of one block, a transformer of N
identical blocks in a ModuleList) come back as module definitions with instances, and the exported weights load
into the source class under its own state-dict keys."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from engine.analysis import analyse
from engine.codegen import generate
from engine.compiler import compile_graph
from engine.export.python_bundle import export_python
from engine.importers import import_torch
from engine.importers.torch_fx import import_torch as import_torch_fx
from engine.project import Project


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet-18 in miniature: 8 BasicBlocks in four stages."""

    def __init__(self, widths=(8, 16, 16, 32), classes: int = 10):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(widths[0], 2)
        self.layer2 = self._make_layer(widths[1], 2, stride=2)
        self.layer3 = self._make_layer(widths[2], 2, stride=1)
        self.layer4 = self._make_layer(widths[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def instances(graph) -> list:
    return [n for g in (graph, *graph.modules.values()) for n in g.nodes() if n.type == "Module"]


@pytest.mark.slow
def test_a_resnet_of_basic_blocks_keeps_its_stages_blocks_and_state_dict_keys(tmp_path):
    torch.manual_seed(0)
    source = randomised(ResNet())
    result = import_torch(source, input_shape=[3, 32, 32])
    graph = result.graph
    names = [n.name for n in graph.nodes() if n.type not in ("Input", "Output")]
    assert {"conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"} <= set(names)
    assert len(names) <= 12, names                                  # not the flat import's 60 blocks
    flat = import_torch_fx(source, input_shape=[3, 32, 32], keep_modules=False)
    assert len(flat.graph.node_ids()) > 50 and not flat.graph.modules

    # eight BasicBlocks, one definition per distinct structure (layer1's two blocks are one)
    blocks = [n for n in instances(graph) if n.params["module"].startswith("BasicBlock")]
    assert sum(n.params["repeat"] for n in blocks) == 8
    assert len({n.params["module"] for n in blocks}) < 8
    assert graph.find("layer1").params["repeat"] == 2                # two identical blocks: one, repeated
    layer2 = graph.modules[graph.find("layer2").params["module"]]    # a downsampling block, then another
    assert [n.name for n in layer2.nodes() if n.type == "Module"] == ["0", "1"]
    definition = graph.modules[blocks[0].params["module"]]
    assert {"conv1", "bn1", "conv2", "bn2"} <= {n.name for n in definition.nodes()}

    # the weights carry the source's keys: its own class loads them, and computes the same
    assert set(result.weights) == set(source.state_dict())
    again = ResNet().eval()
    again.load_state_dict(result.weights, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(again(x), source(x), atol=1e-5)

    # so does the python export: model.py's weights file loads into the user's class
    export_python(Project(graph, weights=result.weights), tmp_path)
    exported = load_file(str(tmp_path / "weights.safetensors"))
    ResNet().load_state_dict(exported, strict=True)
    code = (tmp_path / "model.py").read_text()
    assert "class BasicBlock(nn.Module):" in code and "self.layer1 = nn.Sequential(" in code
    assert "self.downsample = nn.Sequential(" in code
    # blocks alike but for their width are one definition whose width is a module parameter, as the source's
    # BasicBlock(inplanes, planes) takes it: one class for every block without a downsample
    plain = graph.modules["BasicBlock"]
    assert list(plain.arguments) == ["filters"] and len(plain.arguments["filters"]) == 2     # conv1 and conv2
    assert "def __init__(self, filters: int = 8):" in code and "BasicBlock(filters=32)" in code
    assert sum(n.params["repeat"] for n in blocks if n.params["module"] == "BasicBlock") == 6   # all but two
    # the two downsampling blocks (of other widths, their Downsample too) are one definition: its parameter
    # also sets the width its inner Downsample instance takes
    assert {n.params["module"] for n in blocks} == {"BasicBlock", "BasicBlock_2"}
    lifted = graph.modules["BasicBlock_2"].arguments["filters"]
    assert len(lifted) == 3 and sum(1 for _, p in lifted if p == "args.filters") == 1
    assert "def __init__(self, in_channels: int, filters: int):" in code and "class BasicBlock_3" not in code
    spec = importlib.util.spec_from_file_location("exported_resnet", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        assert torch.allclose(module.load(tmp_path / "weights.safetensors")(x), source(x), atol=1e-5)


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x + self.fc2(self.act(self.fc1(x))))


class Stack(nn.Module):
    """A Sequential of one block three times, between a stem and a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(12, 16)
        self.blocks = nn.Sequential(*[Block(16) for _ in range(3)])
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def test_a_sequential_of_one_block_is_that_module_repeated():
    torch.manual_seed(1)
    source = Stack().eval()
    result = import_torch(source, input_shape=[12])
    graph = result.graph
    assert [n.type for n in graph.nodes() if n.type not in ("Input", "Output")] == ["Linear", "Module", "Module"]
    blocks = graph.find("blocks")
    assert blocks.params == {"module": "Block", "repeat": 3, "args": {}, "trainable": True}
    assert set(result.weights) == set(source.state_dict())
    source_code, _ = generate(graph)
    assert "self.blocks = nn.Sequential(*[Block() for _ in range(3)])" in source_code
    assert "nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))" in source_code
    again = Stack().eval()
    again.load_state_dict(result.weights)
    x = torch.randn(5, 12)
    with torch.no_grad():
        assert torch.equal(again(x), source(x))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """N identical encoder blocks in a ModuleList that forward iterates (never called itself)."""

    def __init__(self, depth: int = 4, dim: int = 16):
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.blocks = nn.ModuleList([EncoderBlock(dim, 2) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


def test_a_transformer_of_identical_blocks_is_one_definition_repeated():
    torch.manual_seed(2)
    source = Transformer().eval()
    result = import_torch(source, input_shape=[6, 8])
    graph = result.graph
    blocks = graph.find("blocks")
    assert blocks is not None
    assert blocks.params == {"module": "EncoderBlock", "repeat": 4, "args": {}, "trainable": True}
    assert len([n for n in graph.nodes() if n.type not in ("Input", "Output")]) <= 6
    assert set(result.weights) == set(source.state_dict())
    again = Transformer().eval()
    again.load_state_dict(result.weights)
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        assert torch.allclose(again(x), source(x), atol=1e-6)
    assert analyse(graph).total_params == sum(p.numel() for p in source.parameters())


class Split(nn.Module):
    """Returns two tensors: no module (one Output) can hold it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.a(x), self.b(x)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.split = Split()
        self.block = Block(8)

    def forward(self, x):
        a, b = self.split(x)
        return self.block(a) + b


def test_a_submodule_that_cannot_be_a_module_stays_open_and_the_rest_is_kept():
    torch.manual_seed(3)
    source = TwoHeads().eval()
    result = import_torch(source, input_shape=[8])
    graph = result.graph
    assert {"split_a", "split_b"} <= {n.name for n in graph.nodes()}      # left open, in the top level
    assert graph.find("block").params["module"] == "Block"
    model = compile_graph(graph)
    model.load_state_dict(result.weights)
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), source(x), atol=1e-6)
    assert "block.fc1.weight" in result.weights


def test_a_model_without_submodules_imports_flat_as_before():
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    result = import_torch(source, input_shape=[4])
    assert not result.graph.modules
    assert [n.type for n in result.graph.nodes()] == ["Input", "Linear", "Linear", "Output"]


def test_exported_model_py_of_a_project_with_modules_imports_its_model_class(tmp_path):
    torch.manual_seed(4)
    result = import_torch(Stack().eval(), input_shape=[12])
    export_python(Project(result.graph, weights=result.weights), tmp_path)
    again = import_torch(Path(tmp_path) / "model.py", weights=tmp_path / "weights.safetensors")
    assert again.graph.find("blocks").params == {"module": "Block", "repeat": 3, "args": {}, "trainable": True}
    assert set(again.weights) == set(result.weights)
