"""Tensor plumbing: reductions, slices, selections and channel shuffles (issue #16)."""
from __future__ import annotations
