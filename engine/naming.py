"""Turning any user-typed name into a valid, unique, harmless Python identifier.

Like torch.fx's _Namespace: "Dense 1" -> "dense_1", "class" -> "class_", a repeated
name -> "dense_1_2". Leading underscores are dropped (no dunders), and names that nn.Module
or the generated module's own code already uses get a trailing underscore.
"""
from __future__ import annotations

import builtins
import keyword
import re
import unicodedata

from torch import nn

from .blocks.helpers import HELPERS

MAX_IDENT = 40
RESERVED = (
    set(keyword.kwlist) | set(getattr(keyword, "softkwlist", [])) | set(dir(builtins))
    | {"self", "torch", "nn", "F", "math", "x", "Tensor", "Module", "typing"}
    | set(HELPERS)
    | {name for name in dir(nn.Module) if not name.startswith("_")}
    | {"training", "deepwire_source"}
)


def to_identifier(name: str, fallback: str = "layer") -> str:
    """A lower_snake_case ASCII identifier for `name` (not yet made unique)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    text = text[:MAX_IDENT].rstrip("_")
    if not text:
        text = fallback
    if text[0].isdigit():
        text = f"{fallback}_{text}"
    if text in RESERVED or keyword.iskeyword(text):
        text += "_"
    return text


def to_class_name(name: str, fallback: str = "Model") -> str:
    words = to_identifier(name, fallback="model").rstrip("_").split("_")
    text = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not text or not text[0].isalpha() or text in RESERVED or text in {"Model_"}:
        return fallback
    return text


class Namespace:
    """Hands out unique identifiers: `base`, else the first free of base_2, base_3, ...

    Names are only ever added, so a counter per base (as torch.fx's _Namespace keeps) says
    where the search for the next free suffix starts: each name costs O(1)."""

    def __init__(self, taken: set[str] | None = None):
        self._taken = set(taken or ())
        self._tried: dict[str, int] = {}  # base -> the last suffix found taken or given

    def create(self, name: str, fallback: str = "layer") -> str:
        base = to_identifier(name, fallback)
        candidate, i = base, self._tried.get(base, 1)
        while candidate in self._taken:
            i += 1
            candidate = f"{base.rstrip('_')}_{i}"
            if candidate in RESERVED:
                candidate += "_"
        if candidate != base:
            self._tried[base] = i
        self._taken.add(candidate)
        return candidate
