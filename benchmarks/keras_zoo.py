"""Import coverage over Keras' own applications (issue #16, Keras part).

Keras is never a dependency of Deepwire: the models are built in a separate Keras 3 environment
(`--keras-python`, run with KERAS_BACKEND=torch), each with weights=None, 10 classes, logits out
(classifier_activation=None) and randomised batch-norm statistics, at a small input size. That
environment saves each as .keras with the outputs Keras computed on a fixed input, in a temporary
folder (the files are large; nothing is kept). Then, in Deepwire's own interpreter, each file is
imported with its weights and the imported graph, compiled, is run on the same input: it
reproduces Keras when the largest difference relative to the outputs' scale is at most 1e-5.

    python3 -m venv ~/kenv && ~/kenv/bin/pip install torch && ~/kenv/bin/pip install keras h5py
    .venv/bin/python benchmarks/keras_zoo.py --keras-python ~/kenv/bin/python [--only ResNet50,VGG16]
        [--json out.json] [--folder kept_models]

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOLERANCE = 1e-5
SIZE = 64
# name -> input size (those that need more than SIZE)
APPLICATIONS = {
    "MobileNet": SIZE, "MobileNetV2": SIZE, "MobileNetV3Small": SIZE, "MobileNetV3Large": SIZE,
    "ResNet50": SIZE, "ResNet50V2": SIZE, "DenseNet121": SIZE, "EfficientNetB0": SIZE, "EfficientNetV2B0": SIZE,
    "ConvNeXtTiny": SIZE, "VGG16": SIZE, "Xception": 75, "InceptionV3": 75, "InceptionResNetV2": 75,
    "NASNetMobile": SIZE, "RegNetX002": SIZE,
}


# ----------------------------------------------------------------------------- in the Keras environment

def make(folder: Path, only: list[str]) -> None:
    """Build, save and run each application (called in the Keras interpreter). Writes <name>.keras,
    <name>.npz (x, y) or <name>.error (why Keras could not build it)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np

    rng = np.random.default_rng(16)
    keras.utils.set_random_seed(16)
    for name in only:
        size = APPLICATIONS.get(name, SIZE)
        try:
            build = getattr(keras.applications, name, None)
            if build is None:
                raise AttributeError(f"keras {keras.__version__} has no keras.applications.{name}")
            model = build(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)
            for var in model.weights:   # batch-norm statistics away from 0 and 1, so misplaced ones show
                if "moving_mean" in var.path:
                    var.assign(rng.normal(scale=0.1, size=tuple(var.shape)).astype("float32"))
                elif "moving_variance" in var.path:
                    var.assign(rng.uniform(0.5, 1.5, size=tuple(var.shape)).astype("float32"))
            x = rng.uniform(0, 255, size=(2, size, size, 3)).astype("float32")
            y = keras.ops.convert_to_numpy(model(x, training=False)).astype("float32")
            model.save(folder / f"{name}.keras")
            np.savez(folder / f"{name}.npz", x=x, y=y)
            print(f"built {name}: {model.count_params():,} parameters", flush=True)
        except Exception as exc:   # a report: Keras' own refusal is a result too
            (folder / f"{name}.error").write_text(f"{type(exc).__name__}: {exc}"[:500])
            print(f"could not build {name}: {exc}", flush=True)


# ----------------------------------------------------------------------------- in Deepwire's interpreter

def check(folder: Path, name: str) -> dict:
    import numpy as np
    import torch

    from engine.compiler import compile_graph
    from engine.importers import import_keras

    error = folder / f"{name}.error"
    if error.exists():
        return {"model": name, "status": "not built", "error": "Keras: " + error.read_text()}
    data = np.load(folder / f"{name}.npz")
    start = time.perf_counter()
    try:
        result = import_keras(folder / f"{name}.keras")
    except Exception as exc:   # the importer's refusal, named: this is what the report is about
        return {"model": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    out = {"model": name, "import_s": round(seconds, 2), "weights": result.weights is not None,
           "modules": len(result.graph.modules)}   # nested models (ConvNeXt's stem, ...) become modules
    if result.weights is None:
        return dict(out, status="no weights", error="imported without weights")
    model = compile_graph(result.graph)
    model.load_state_dict(result.weights, strict=True)
    x = torch.from_numpy(np.ascontiguousarray(data["x"].transpose(0, 3, 1, 2)))
    with torch.no_grad():
        got = model.eval()(x).numpy()
    want = data["y"]
    if got.shape != want.shape:
        return dict(out, status="differs", error=f"output shape {got.shape}, Keras {want.shape}")
    rel = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
    out["relative_difference"] = rel
    out["status"] = "reproduced" if rel <= TOLERANCE else "differs"
    if rel > TOLERANCE:
        out["error"] = f"largest difference {rel:.2e} of the outputs' scale"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keras-python", help="the Python of a Keras 3 environment (run with KERAS_BACKEND=torch)")
    ap.add_argument("--only", help="comma-separated application names")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--folder", help="keep the saved models here (made once, reused) instead of a temporary folder")
    ap.add_argument("--make", help=argparse.SUPPRESS)   # internal: run in the Keras environment
    args = ap.parse_args(argv)
    only = args.only.split(",") if args.only else list(APPLICATIONS)
    if args.make:
        make(Path(args.make), only)
        return 0
    if not args.keras_python:
        ap.error("--keras-python is needed (the Python of an environment with Keras 3)")
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    with tempfile.TemporaryDirectory(prefix="keras_zoo_") as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        missing = [n for n in only if not (folder / f"{n}.npz").exists() and not (folder / f"{n}.error").exists()]
        if missing:
            env = dict(os.environ, KERAS_BACKEND="torch")
            subprocess.run([args.keras_python, str(Path(__file__).resolve()), "--make", str(folder),
                            "--only", ",".join(missing)], env=env, check=False)
        results = [check(folder, name) for name in only]
    width = max(len(r["model"]) for r in results)
    for r in results:
        detail = f"{r['relative_difference']:.1e}" if "relative_difference" in r else ""
        modules = f"{r['modules']} modules" if r.get("modules") else ""
        print(f"{r['model']:<{width}}  {r['status']:<10}  {detail:>8}  {modules:>10}  {r.get('error', '')[:300]}")
    built = [r for r in results if r["status"] != "not built"]
    imported = sum(1 for r in built if r.get("weights"))
    reproduced = sum(1 for r in built if r["status"] == "reproduced")
    print(f"\n{len(built)} Keras applications built; {imported} imported with weights; {reproduced} reproduce "
          f"Keras within {TOLERANCE:g}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
