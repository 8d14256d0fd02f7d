"""The handlers, by family. Importing this package registers them all (registry.py says how to add one)."""
from . import activations, attention, deepwire_helpers, layers, library, pooling, recurrent, tensors

__all__ = ["activations", "attention", "deepwire_helpers", "layers", "library", "pooling", "recurrent", "tensors"]
