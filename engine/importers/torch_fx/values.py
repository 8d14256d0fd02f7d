"""What an fx node stands for while the graph is translated, and the two signals a handler raises.

A node's value is the id of the graph node that holds its tensor (a str), or a `Pending`: something that is
not (yet) one tensor of the graph — a size, a recurrent layer's (output, state) pair, a pooling that becomes a
block only once it is known what its result is used as. A Pending decides how it is used: `as_tensor` when an
operation needs it as a tensor, `item` when it is indexed, `reshaped`/`squeezed` when it is reshaped.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .translate import Translator

BATCH = 3        # the example batch: odd, so a reshape that folds the batch away is noticed


class Unsupported(Exception):
    """This operation has no Deepwire block; the message completes '<the operation> ...'."""


class BadInput(Exception):
    """An input of this operation comes from an unsupported one (already reported)."""


class Pending:
    """A value that is not (yet) a single tensor of the graph."""

    what = "this value"
    counts_as_tensor = True   # an operand that makes arithmetic a tensor operation (not a size computation)

    def as_tensor(self, t: Translator) -> str:
        """The graph node of this value used as a tensor."""
        raise Unsupported(f"uses {self.what} as a tensor")

    def item(self, t: Translator, index) -> Any:
        """This value indexed with `index`; None when that has no meaning here."""
        return None

    def reshaped(self, t: Translator, shape: tuple[int, ...]) -> str | None:
        """This value reshaped to one sample's `shape`, when that is a block of its own; None otherwise."""
        return None

    def squeezed(self, t: Translator) -> str | None:
        """This value after .squeeze(), when that makes it a tensor of the graph; None otherwise."""
        return None

    def unused(self, t: Translator) -> str | None:
        """A problem to report when the translation ends and this value was never used as it must be."""
        return None


class Size(Pending):
    what = "a tensor's size"
    counts_as_tensor = False

    def item(self, t, index):
        return Size()


class Meta(Pending):
    what = "a tensor's device or dtype"
    counts_as_tensor = False

    def item(self, t, index):
        return Size()


class Bad(Pending):
    """The result of an unsupported operation (already reported)."""

    def as_tensor(self, t):
        raise BadInput()


class Param(Pending):
    """A parameter or buffer of the module read in forward (fx's get_attr): not a tensor of the graph, but the
    weights of the block that uses it (a class token, a position table, a layer scale). `tensor` is its value as
    forward sees it (after any view of it), `target` its name in the module."""

    counts_as_tensor = True

    def __init__(self, target: str, tensor, expanded: bool = False):
        self.target, self.tensor, self.expanded = target, tensor, expanded

    @property
    def what(self) -> str:
        return f"self.{self.target} directly (a parameter or buffer used directly in forward has no block)"

    def as_tensor(self, t):
        raise Unsupported(f"uses {self.what}")

    def take(self, t):
        """The tensor, for the one block whose weights it becomes; a second use is shared weights."""
        if self.target in t.taken_params:
            raise Unsupported(f"uses self.{self.target} a second time: shared weights have no Deepwire block")
        t.taken_params.add(self.target)
        return self.tensor.detach()

    def method(self, t, n):
        """`self.w.<method>(...)` in forward: a view of the parameter (reshape, expand to the batch) stays one;
        anything else uses it as a tensor."""
        meta = n.meta.get("tensor_meta")
        shape = tuple(getattr(meta, "shape", ()) or ())
        if n.target in ("reshape", "view") and shape and math.prod(shape) == self.tensor.numel():
            return Param(self.target, self.tensor.reshape(shape), self.expanded)
        if n.target == "expand" and len(shape) == self.tensor.dim() and self.tensor.shape[0] == 1 \
                and tuple(shape[1:]) == tuple(self.tensor.shape[1:]):
            return Param(self.target, self.tensor, expanded=True)
        if n.target in ("contiguous", "float", "clone"):
            return self
        raise Unsupported(f"uses {self.what}")
