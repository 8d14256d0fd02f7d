"""Learned tensors used inside forward: class tokens, learned positions, layer scale, and
stochastic depth (issue #16)."""
from __future__ import annotations
