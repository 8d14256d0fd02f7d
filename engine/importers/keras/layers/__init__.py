"""The Keras layer handlers, one module a family; importing this package registers them all in
`registry.LAYERS`. A new family is a new module here, listed below."""
from . import activations, attention, conv, core, merge, normalization, pooling, preprocessing, recurrent

__all__ = ["activations", "attention", "conv", "core", "merge", "normalization", "pooling", "preprocessing",
           "recurrent"]
