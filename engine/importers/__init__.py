"""Import existing models as editable Deepwire graphs.

`import_torch` runs a PyTorch module's code, traces it with `torch.fx` and maps what it finds
to blocks, with the module's weights; `import_keras` reads a Keras model's JSON configuration
(`model.to_json()`, or the config.json inside a `.keras` file) without TensorFlow, and its weights
(model.weights.h5) with h5py. Both return
an `ImportResult`, or raise `ModelImportError` with one line that names everything that could
not be mapped: never a partial graph that silently differs from the model. `WeightsImportError`
(a subclass) means the graph would import but the weights it comes with cannot all be placed;
`graph_only=True` imports the graph alone.
"""
from __future__ import annotations

from .common import ImportResult, ModelImportError, WeightsImportError


def import_torch(source, class_name: str | None = None, input_shape=None, weights=None,
                 graph_only: bool = False, flat: bool = False) -> ImportResult:
    """A PyTorch module as a graph: `source` is a .py file (its code runs!), an nn.Module class or
    an instance. `input_shape` is one sample's shape without the batch (a list of shapes for
    several inputs); `weights` an optional state dict (or .safetensors / .pt file) to load first.
    `graph_only`: leave the module's weights out of the result. Its submodules become module
    definitions (a ResNet's Bottleneck, its stages) unless `flat` asks for every block loose."""
    from .torch_fx import import_torch as run

    return run(source, class_name, input_shape, weights, graph_only=graph_only, keep_modules=not flat)


def import_keras(source, weights=None, graph_only: bool = False) -> ImportResult:
    """A Keras model as a graph: `source` is a .keras file, a .json file, the JSON text of
    `model.to_json()` or that JSON already parsed into a dict. `weights`: a Keras `.weights.h5` file to
    import (needs h5py); without it a .keras file's own model.weights.h5 is imported. Weights that
    cannot all be placed raise `WeightsImportError` (a `ModelImportError`): nothing is imported unless
    `graph_only=True` asks for the graph alone (no weights are read then)."""
    from .keras import import_keras as run

    return run(source, weights, graph_only=graph_only)


__all__ = ["ImportResult", "ModelImportError", "WeightsImportError", "import_keras", "import_torch"]
