"""The block catalogue: one declaration per block type (see base.Block)."""
from __future__ import annotations

from . import (  # noqa: F401  (each registers its blocks)
    attention,
    augmentation,
    conv,
    core,
    learned,
    merge,
    module,
    norm,
    preprocessing,
    recurrent,
    tensor_ops,
)
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


def takes(block: Block, spec: TensorSpec) -> bool:
    """Whether `block`, with its default parameters, accepts `spec` on every input port."""
    if spec.dtype == TOKENS and not block.accepts_tokens:
        return False
    params = block.validate_params({})  # validated: a size default 3 becomes (3, 3)
    ports = block.ports_for(params)
    count = max(ports.fixed, ports.min_count if ports.variadic else 1)
    try:
        block.infer(params, [spec] * count)
    except Exception:  # ShapeError, or a rule that cannot take this input at all
        return False
    return True


def blocks_taking(spec: TensorSpec | None) -> list[str]:
    """Block types that can be wired after a tensor `spec`, by trying their shape rules with default
    parameters; with `spec` unknown (None), every type that has an input."""
    return [t for t, b in REGISTRY.items() if t != "Input" and (spec is None or takes(b, spec))]


def fix_candidates(spec: TensorSpec, wanted: int | None = None) -> list[tuple[str, dict]]:
    """(block type, params) pairs that could sit on a wire carrying `spec`, as the blocks declare them."""
    return [(t, dict(params)) for t, b in REGISTRY.items() for params in b.fixes(spec, wanted)]


def blocks_feeding() -> list[str]:
    """Block types that can be wired into an input port: every type with an output."""
    return [t for t in REGISTRY if t != "Output"]


__all__ = ["CATEGORIES", "FLOAT", "REGISTRY", "TOKENS", "Block", "Emit", "Param", "ParamError", "Ports",
           "ShapeError", "TensorSpec", "blocks_by_category", "blocks_feeding", "blocks_taking", "fix_candidates",
           "format_shape", "get_block", "takes"]
