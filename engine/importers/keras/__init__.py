"""Keras -> graph, without TensorFlow: read the model's JSON configuration and map each layer.

Reads Keras 3 (`.keras` zips, `model.to_json()`) and Keras 2 (tf.keras `to_json()`) configs of
Sequential and functional models. Keras is channels-last; Deepwire is channels-first. Each
tensor is tracked with the order its Deepwire dimensions have in Keras terms (`perm`), and a
Permute is inserted only where a layer needs another order (a Conv1D after a sequence input,
an LSTM after convolutions, a Reshape of an image). Weights (model.weights.h5) are read with h5py when
it is installed, and converted to PyTorch's layouts.

The package:
- `reading`: the configuration file, and the helpers that read and show its values;
- `registry`: `LAYERS`, one `LayerHandler` per Keras layer class, holding both how the layer becomes blocks
  and how its weights convert; `register` adds one (see its docstring for a three-line example);
- `layers/`: the handlers, one module a family (core, activations, conv, pooling, recurrent, attention,
  normalization, merge, preprocessing);
- `importer`: the walk over a Sequential or functional model, and `import_keras`;
- `weights`, `weights_file`: placing the weights, and the weights file read behind its audit against
  damaged or hostile files.
"""
from __future__ import annotations

from .importer import import_keras
from .reading import _shown, _snake
from .registry import LAYERS, LayerHandler, LayerWeights, Skip, T, register, unregister

__all__ = ["LAYERS", "LayerHandler", "LayerWeights", "Skip", "T", "_shown", "_snake", "import_keras", "register",
           "unregister"]
