"""torch's intra-op thread count as the process started, and running work with it.

The designer keeps its UI thread to one torch thread (see designer/train_worker.py); work whose
numbers must match a fresh process bit for bit (the export's reference outputs, which the
exported test_export.py recomputes in a process of its own) runs with the process default, on a
short-lived thread, so the UI thread never owns an OpenMP team.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import torch

T = TypeVar("T")
_default: int | None = None


def default_threads() -> int:
    """The intra-op thread count before anyone changed it (remembered on the first call)."""
    global _default
    if _default is None:
        _default = max(1, torch.get_num_threads())
    return _default


def run_with_default_threads(fn: Callable[[], T]) -> T:
    """fn() with torch's default thread count, on a thread of its own (whose OpenMP team ends
    with it). Exceptions are raised here."""
    if torch.get_num_threads() == default_threads():
        return fn()
    box: dict = {}

    def work() -> None:
        try:
            torch.set_num_threads(default_threads())
            box["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="deepwire-default-threads")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
