"""State dicts on disk: safetensors (never a pickle of code), or a .pt read weights-only."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file, or a .pt/.pth file read with weights_only=True."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def save_weights(model: nn.Module, path: Path) -> Path:
    """The state dict (weights and buffers) as safetensors, written whole or not at all; a .pt
    file (torch.save) when the safetensors package is missing. Returns the path written."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file, path = None, path.with_suffix(".pt")
    partial = path.with_name(path.name + ".part")
    if save_file is not None:
        save_file(state, str(partial))
    else:
        torch.save(state, partial)
    os.replace(partial, path)
    return path
