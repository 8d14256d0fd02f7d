"""The block catalogue: one declaration per block type (see base.Block)."""
from __future__ import annotations

from . import attention, augmentation, conv, core, merge, preprocessing, recurrent  # noqa: F401 (registers)
from .base import (
    CATEGORIES,
    FLOAT,
    REGISTRY,
    TOKENS,
    Block,
    Emit,
    Param,
    ParamError,
    Ports,
    ShapeError,
    TensorSpec,
    format_shape,
)


def get_block(type_name: str) -> Block | None:
    return REGISTRY.get(type_name) if isinstance(type_name, str) else None


def blocks_by_category() -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = {c: [] for c in CATEGORIES}
    for block in REGISTRY.values():
        out[block.category].append(block)
    return out


__all__ = ["CATEGORIES", "FLOAT", "REGISTRY", "TOKENS", "Block", "Emit", "Param", "ParamError", "Ports",
           "ShapeError", "TensorSpec", "blocks_by_category", "format_shape", "get_block"]
