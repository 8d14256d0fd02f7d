"""Deepwire's engine: graph, blocks, analysis, code generation, compiler. Never imports Qt."""
__version__ = "0.1.0"
