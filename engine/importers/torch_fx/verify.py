"""The import's proof: the imported graph, compiled with the module's weights, is run next to the module on the
same example; a different output shape or value refuses the import (a silently different graph never comes
back)."""
from __future__ import annotations

import torch
from torch import nn

from ..common import ModelImportError


def verify(model: nn.Module, compiled: nn.Module, example: list[torch.Tensor], title: str) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = model(*example)
            got = compiled(*example)
    finally:
        model.train(was_training)
    want = want if isinstance(want, (tuple, list)) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for a, b in zip(want, got):
        if tuple(a.shape) != tuple(b.shape):
            raise ModelImportError(f"the imported graph of {title} returns shape {tuple(b.shape)} instead of "
                                   f"{tuple(a.shape)}; this is an importer bug")
        scale = max(1.0, float(a.abs().max()))
        diff = float((a.float() - b.float()).abs().max())
        if diff > 1e-4 * scale:
            raise ModelImportError(f"the imported graph of {title} does not reproduce its outputs (largest "
                                   f"difference {diff:.3g}); this is an importer bug")
