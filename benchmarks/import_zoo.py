"""Import coverage over a zoo of real PyTorch classification models (issue #16).

Each model is built the way its library builds it (torchvision, timm, and hand-written ones in
the style people write), with random weights and randomised BatchNorm statistics, in evaluation
mode. For each:

1. `import_torch(model, input_shape=...)`: the graph and its weights (the importer itself refuses
   a graph whose outputs differ from the model's);
2. the imported graph, compiled with those weights, against the model on a fresh input: the
   largest difference relative to the outputs' scale must be at most 1e-5;
3. the python export of that project: its model.py + weights.safetensors, loaded as a user
   would, against the model on the same input.

Also the import time of ResNet-50 against the time torch.fx alone takes to trace it (goal: at
most 2x), measured in the same run. Each row says how the module hierarchy came through (issue
#17): the top-level blocks, the module definitions, and whether the weights' keys are the source
model's own (`keys`: its state_dict loads them). `--modules` reports ResNet-50 in full: its
top-level blocks imported flat and with modules, the lines of the exported model.py against
torchvision's resnet.py, and whether torchvision.models.resnet50().load_state_dict() takes the
exported weights.

torchvision and timm are test-time helpers, never dependencies of Deepwire: install them apart,

    .venv/bin/python -m pip install --target ~/zoo-libs --no-deps timm torchvision pyyaml
    .venv/bin/python benchmarks/import_zoo.py --libs ~/zoo-libs [--only resnet18,vit] [--json out.json]

The torchvision wheel may be linked to a CUDA build of torch; its meta registrations fail to load
on the CPU build, so this script (and only this script) skips them. A model whose library is
missing is reported as skipped. Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

TOLERANCE = 1e-5
IMAGE = (3, 64, 64)
VIT_IMAGE = (3, 224, 224)


# ----------------------------------------------------------------------------- hand-written models

class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class SEBlock(nn.Module):
    """Squeeze-and-excitation as people write it: a gate of shape (C, 1, 1) times the input."""

    def __init__(self, c: int, r: int = 4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class SENet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.se = SEBlock(16)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        x = self.se(self.stem(x))
        return self.head(x.mean((2, 3)))


class TinyViT(nn.Module):
    """A hand-written ViT: patch conv, class token, learned positions, encoder, the token's output."""

    def __init__(self, dim: int = 32, classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 65, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 4, 64, batch_first=True, norm_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.encoder(x))[:, 0])


class ShuffleUnit(nn.Module):
    def __init__(self, c: int = 16):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.ReLU())
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], dim=1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(x.mean((2, 3)))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 64), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


# ----------------------------------------------------------------------------- the zoo

def _tv(name: str, **kw):
    def make():
        import torchvision

        return getattr(torchvision.models, name)(num_classes=10, **kw)
    return make


def _timm(name: str, **kw):
    def make():
        import timm

        return timm.create_model(name, pretrained=False, num_classes=10, **kw)
    return make


# name: (library, builder, input shape)
ZOO: dict[str, tuple[str, object, tuple[int, ...]]] = {
    "tv_resnet18": ("torchvision", _tv("resnet18"), IMAGE),
    "tv_resnet50": ("torchvision", _tv("resnet50"), IMAGE),
    "tv_resnext50_32x4d": ("torchvision", _tv("resnext50_32x4d"), IMAGE),
    "tv_wide_resnet50_2": ("torchvision", _tv("wide_resnet50_2"), IMAGE),
    "tv_mobilenet_v2": ("torchvision", _tv("mobilenet_v2"), IMAGE),
    "tv_mobilenet_v3_small": ("torchvision", _tv("mobilenet_v3_small"), IMAGE),
    "tv_mobilenet_v3_large": ("torchvision", _tv("mobilenet_v3_large"), IMAGE),
    "tv_efficientnet_b0": ("torchvision", _tv("efficientnet_b0"), IMAGE),
    "tv_regnet_y_400mf": ("torchvision", _tv("regnet_y_400mf"), IMAGE),
    "tv_regnet_x_400mf": ("torchvision", _tv("regnet_x_400mf"), IMAGE),
    "tv_densenet121": ("torchvision", _tv("densenet121"), IMAGE),
    "tv_shufflenet_v2_x0_5": ("torchvision", _tv("shufflenet_v2_x0_5"), IMAGE),
    "tv_squeezenet1_0": ("torchvision", _tv("squeezenet1_0"), IMAGE),
    "tv_squeezenet1_1": ("torchvision", _tv("squeezenet1_1"), IMAGE),
    "tv_googlenet": ("torchvision", _tv("googlenet", aux_logits=False, init_weights=True), IMAGE),
    "tv_mnasnet0_5": ("torchvision", _tv("mnasnet0_5"), IMAGE),
    "tv_vgg11_bn": ("torchvision", _tv("vgg11_bn"), IMAGE),
    "tv_alexnet": ("torchvision", _tv("alexnet"), IMAGE),
    "tv_convnext_tiny": ("torchvision", _tv("convnext_tiny"), IMAGE),
    "tv_vit_b_16": ("torchvision", _tv("vit_b_16"), VIT_IMAGE),
    "timm_resnet18": ("timm", _timm("resnet18"), IMAGE),
    "timm_mobilenetv3_small_100": ("timm", _timm("mobilenetv3_small_100"), IMAGE),
    "timm_efficientnet_b0": ("timm", _timm("efficientnet_b0"), IMAGE),
    "timm_regnety_002": ("timm", _timm("regnety_002"), IMAGE),
    "timm_convnext_atto": ("timm", _timm("convnext_atto"), IMAGE),
    "timm_vit_tiny_patch16_224": ("timm", _timm("vit_tiny_patch16_224"), VIT_IMAGE),
    "timm_deit_tiny_patch16_224": ("timm", _timm("deit_tiny_patch16_224"), VIT_IMAGE),
    "timm_mixer_s16_224": ("timm", _timm("mixer_s16_224"), VIT_IMAGE),
    "timm_lcnet_050": ("timm", _timm("lcnet_050"), IMAGE),
    "timm_ghostnet_100": ("timm", _timm("ghostnet_100"), IMAGE),
    "hand_small_cnn": ("hand", SmallCNN, IMAGE),
    "hand_se_net": ("hand", SENet, IMAGE),
    "hand_tiny_vit": ("hand", TinyViT, IMAGE),
    "hand_shuffle_unit": ("hand", ShuffleUnit, IMAGE),
    "hand_mlp": ("hand", MLP, IMAGE),
}


def add_libraries(folder: str | None) -> None:
    """Put the test-time libraries on the path; skip torchvision's meta registrations (see above)."""
    if folder:
        sys.path.insert(0, str(Path(folder).expanduser()))
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights (the library's init) and BatchNorm statistics far from (0, 1), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
    return model.eval()


def relative_gap(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max().clamp(min=1e-12))


def first_line(text: str, limit: int = 300) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def check_export(project, x: torch.Tensor, want: torch.Tensor) -> float:
    """The python export loaded as a user would (its model.py and weights) against the model."""
    import importlib.util

    from engine.export.python_bundle import export_python

    with tempfile.TemporaryDirectory() as folder:
        export_python(project, Path(folder))
        spec = importlib.util.spec_from_file_location(f"zoo_export_{os.getpid()}", Path(folder) / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.load(Path(folder) / "weights.safetensors")
        with torch.no_grad():
            return relative_gap(net(x), want)


def run_one(name: str, library: str, make, shape: tuple[int, ...]) -> dict:
    from engine.compiler import compile_graph
    from engine.importers import ModelImportError, import_torch
    from engine.project import Project

    row: dict = {"model": name, "library": library}
    try:
        torch.manual_seed(0)
        model = randomise(make(), seed=1)
    except ImportError as exc:
        return dict(row, status="skipped", message=f"{library} is not installed ({first_line(exc, 120)})")
    row["parameters"] = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    try:
        result = import_torch(model, input_shape=list(shape))
    except ModelImportError as exc:
        return dict(row, status="refused", seconds=round(time.perf_counter() - started, 2),
                    message=first_line(exc, 2000), message_chars=len(str(exc)))
    except Exception as exc:  # a crash is a finding, not the end of the report
        return dict(row, status="crashed", message=f"{type(exc).__name__}: {first_line(exc)}")
    row["seconds"] = round(time.perf_counter() - started, 2)
    row["blocks"] = len(result.graph.node_ids())
    row["modules"] = len(result.graph.modules)
    source = model.state_dict()
    row["keys"] = set(result.weights) == set(source) and all(
        tuple(result.weights[k].shape) == tuple(v.shape) for k, v in source.items())
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = model(x)
        compiled = compile_graph(result.graph)
        compiled.load_state_dict(result.weights)
        row["gap"] = relative_gap(compiled.eval()(x), want)
    try:
        row["export_gap"] = check_export(Project(result.graph, weights=result.weights), x, want)
    except Exception as exc:
        row["export_error"] = f"{type(exc).__name__}: {first_line(exc)}"
    ok = row["gap"] <= TOLERANCE and row.get("export_gap", 1.0) <= TOLERANCE
    return dict(row, status="imported" if ok else "differs")


def trace_ratio() -> dict:
    """ResNet-50's import time against torch.fx's trace of it alone."""
    try:
        import torchvision
    except ImportError:
        return {}
    from engine.importers import ModelImportError, import_torch

    model = randomise(torchvision.models.resnet50(num_classes=10), 1)
    started = time.perf_counter()
    torch.fx.symbolic_trace(model)
    trace_s = time.perf_counter() - started
    started = time.perf_counter()
    try:
        import_torch(model, input_shape=list(IMAGE))
    except ModelImportError:
        return {"trace_s": round(trace_s, 2), "import": "refused"}
    import_s = time.perf_counter() - started
    return {"trace_s": round(trace_s, 2), "import_s": round(import_s, 2), "ratio": round(import_s / trace_s, 1)}


def modules_report() -> dict:
    """ResNet-50 with its module hierarchy kept (issue #17) against the flat import and torchvision's source."""
    try:
        import torchvision
        from torchvision.models import resnet
    except ImportError:
        return {}
    import inspect

    from engine.export.python_bundle import export_python
    from engine.importers.torch_fx import import_torch
    from engine.project import Project

    model = randomise(torchvision.models.resnet50(), 1)
    flat = import_torch(model, input_shape=list(IMAGE), keep_modules=False)
    kept = import_torch(model, input_shape=list(IMAGE))
    report = {"flat_top_blocks": len(flat.graph.node_ids()), "top_blocks": len(kept.graph.node_ids()),
              "modules": len(kept.graph.modules), "blocks_in_modules": sum(len(d) for d in kept.graph.modules.values()),
              "torchvision_resnet_py_lines": len(Path(inspect.getsourcefile(resnet)).read_text().splitlines())}
    with tempfile.TemporaryDirectory() as folder:
        export_python(Project(kept.graph, weights=kept.weights), Path(folder))
        report["model_py_lines"] = len((Path(folder) / "model.py").read_text().splitlines())
        from safetensors.torch import load_file

        exported = load_file(str(Path(folder) / "weights.safetensors"))
    target = torchvision.models.resnet50()
    try:
        target.load_state_dict(exported, strict=True)
        report["load_state_dict"] = "ok (strict, every key and shape)"
        x = torch.randn((2, *IMAGE), generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            report["gap_after_loading"] = relative_gap(target.eval()(x), model(x))
    except RuntimeError as exc:
        report["load_state_dict"] = f"refused: {first_line(exc, 200)}"
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libs", default=os.environ.get("DEEPWIRE_ZOO_LIBS"),
                        help="a folder holding timm and torchvision (pip install --target)")
    parser.add_argument("--only", help="comma-separated parts of model names")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--no-timing", action="store_true", help="skip the ResNet-50 trace timing")
    parser.add_argument("--modules", action="store_true", help="only the ResNet-50 module hierarchy report")
    args = parser.parse_args(argv)
    add_libraries(args.libs)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    if args.modules:
        report = modules_report()
        for key, value in report.items():
            print(f"ResNet-50 {key}: {value}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
        return
    rows = []
    for name, (library, make, shape) in ZOO.items():
        if wanted and not any(w in name for w in wanted):
            continue
        row = run_one(name, library, make, shape)
        rows.append(row)
        gap = f"{row['gap']:.1e}" if "gap" in row else ""
        shape = f"{row['blocks']:>4} top, {row['modules']:>3} modules, keys {'=' if row['keys'] else '≠'}" \
            if "blocks" in row else ""
        print(f"{name:30} {row['status']:9} {gap:8} {row.get('seconds', ''):>6} {shape:32} "
              f"{row.get('message', '')[:150]}", flush=True)
    tried = [r for r in rows if r["status"] != "skipped"]
    imported = [r for r in tried if r["status"] == "imported"]
    print(f"\nimported with weights and reproduced (relative gap <= {TOLERANCE:g}), export too: "
          f"{len(imported)} of {len(tried)}" + (f" ({100 * len(imported) / len(tried):.0f}%)" if tried else ""))
    same = [r for r in imported if r.get("keys")]
    print(f"module hierarchy kept, weights under the source's own state-dict keys: {len(same)} of {len(imported)}")
    timing = {} if args.no_timing or wanted else trace_ratio()
    if timing:
        print(f"ResNet-50: torch.fx trace {timing.get('trace_s')} s, import {timing.get('import_s', 'refused')} s"
              + (f": {timing['ratio']}x (goal: at most 2x)" if "ratio" in timing else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "timing": timing}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
