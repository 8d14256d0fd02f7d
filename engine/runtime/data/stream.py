"""Data too large to keep as whole tensors on the device, read batch by batch.

Data that fits the memory budget (`memory_budget`: the setting, else a quarter of the machine's
memory, and of the GPU's) trains as whole tensors on the device (runtime/loop.py's
`to_tensors`): the fastest path. Larger data stays where it is, in host memory, in an image
cache file (read with pread, so its pages never count as the process's memory) or in its image
files (decoded as read), and `StreamedInputs` reads it for each batch through a torch
DataLoader: worker processes (`workers`), pinned memory and non-blocking copies on a GPU, and
the conversion to float (uint8 pixels stay bytes until then) on the device.

The order of an epoch is the caller's (the same seeded permutation as the whole-tensor path, and
under torchrun each process's share of it, as DistributedSampler makes it), so a streamed run
trains on the same batches as one with whole tensors.
"""
from __future__ import annotations

import os
import sys
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..settings import TrainingError
from .core import DataError
from .images import CachedImages, FillingImages, LazyImages, machine_memory

NORMALIZER_BYTES = 256 * 2**20   # streamed data: the first samples up to this size fit the Normalization blocks


def default_memory_budget(device: torch.device | None = None) -> int:
    """Bytes data may take as whole tensors: a quarter of the machine's memory, and on a GPU also
    at most a quarter of the GPU's."""
    budget = machine_memory() // 4
    if device is not None and device.type == "cuda":
        try:
            budget = min(budget, torch.cuda.get_device_properties(device).total_memory // 4)
        except (RuntimeError, AssertionError):
            pass
    return int(budget)


def memory_budget(config, device: torch.device | None = None) -> int:
    gib = float(getattr(config, "memory_budget", 0.0) or 0.0)
    return int(gib * 2**30) if gib > 0 else default_memory_budget(device)


def tensor_bytes(dataset) -> int:
    """Bytes the dataset's inputs take as whole tensors (float32, token ids int64)."""
    x = dataset.x
    per = 8 if dataset.dtype == "int64" else 4
    total = int(np.prod(x.shape)) * per
    if dataset.x_test is not None:
        total += int(np.prod(dataset.x_test.shape)) * per
    return total


def streams(dataset, config, device: torch.device | None = None) -> bool:
    """Whether the dataset is read batch by batch (larger than the memory budget) or kept whole."""
    return tensor_bytes(dataset) > memory_budget(config, device)


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def workers(x, setting: int = -1) -> int:
    """Processes that read the batches: the setting when >= 0; else all cores but the one training
    for images decoded from their files, and none for a cache file or an array in memory: a batch
    of 256 64x64 images is read from the cache in about a millisecond, less than a worker's hand-over
    costs (benchmarks/bench_data_scale.py, 2 cores, 20,000 images: 0 workers 21,800 images/s,
    1 worker 15,200, 2 workers 22,000)."""
    if setting is not None and setting >= 0:
        return int(setting)
    if isinstance(x, LazyImages):
        return max(1, cpu_count() - 1)
    return 0


def _cache_file(x) -> tuple[str, int] | None:
    path = getattr(x, "cache_path", "")
    if path and isinstance(x, CachedImages) and hasattr(os, "preadv") and x.offset == x.cache_offset:
        return path, int(x.cache_offset)
    return None


class _Rows(TorchDataset):
    """One item = one batch: rows (an array of ints) -> the inputs as a CPU tensor of their own dtype."""

    def __init__(self, x):
        self.x = x
        self.file = _cache_file(x)
        self.sample = int(np.prod(x.shape[1:]))
        self._fd: tuple[int, int] | None = None     # (pid, fd): a forked worker opens its own

    def __len__(self) -> int:
        return len(self.x)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = None
        return state

    def __getitem__(self, rows) -> torch.Tensor:
        rows = np.asarray(rows, dtype=np.int64)
        if self.file is None:
            return torch.from_numpy(np.ascontiguousarray(self.x[rows]))
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.file[0], os.O_RDONLY | getattr(os, "O_BINARY", 0)))
        fd, offset, size = self._fd[1], self.file[1], self.sample
        out = np.empty((len(rows), size), dtype=np.uint8)
        for j, r in enumerate(rows.tolist()):      # a pread per sample: file pages stay the system's cache
            got = os.preadv(fd, [out[j]], offset + r * size)
            if got != size:
                raise OSError(f"the image cache file {self.file[0]} is shorter than it was (removed or cut?)")
        return torch.from_numpy(out.reshape(len(rows), *self.x.shape[1:]))


class ImagesFailed(DataError, TrainingError):
    """An image turned up unreadable (or the cache file could not be written) while a run read a
    folder that was still being decoded (images.FillingImages): the run stops naming it."""


class _Order(torch.utils.data.Sampler):
    """The batches (arrays of rows) of the pass the loader makes next; with a filling cache file,
    each is handed to a reading process once its rows are decoded."""

    def __init__(self, ready=None):
        self.batches: list[np.ndarray] = []
        self.ready = ready

    def __iter__(self):
        if self.ready is None:
            return iter(self.batches)
        return self._when_ready()

    def _when_ready(self):
        for b in self.batches:
            self.ready(b)
            yield b

    def __len__(self) -> int:
        return len(self.batches)


class Stream:
    """One dataset's inputs read through one DataLoader (its workers kept from pass to pass)."""

    def __init__(self, x, device: torch.device, num_workers: int = 0):
        self.x, self.device = x, device
        self.rows = _Rows(x)
        self.filling = isinstance(x, FillingImages)
        self.order = _Order(x.ready if self.filling else None)
        self.num_workers = num_workers
        self.pin = device.type == "cuda"
        self.token_ids = np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8
        self._loader: DataLoader | None = None

    def loader(self) -> DataLoader:
        if self._loader is None:
            extra = {}
            if self.num_workers:
                ctx = "fork" if sys.platform.startswith("linux") else None
                extra = {"persistent_workers": True, "prefetch_factor": 4, "multiprocessing_context": ctx}
            # its own generator: the loader draws its workers' seeds from it, not from torch's global
            # one, which the model's dropout and augmentation use as the whole-tensor path does
            self._loader = DataLoader(self.rows, batch_size=None, sampler=self.order, num_workers=self.num_workers,
                                      pin_memory=self.pin, generator=torch.Generator().manual_seed(0), **extra)
        return self._loader

    def read(self, batches: list[np.ndarray]) -> Iterator[torch.Tensor]:
        """Each batch of rows as a tensor on the device: float32 (token ids: int64)."""
        if not batches:
            return
        self.order.batches = batches
        if self.filling:
            if self.x.complete:          # the cache file is whole: no more waiting
                self.filling, self.order.ready = False, None
            else:
                self.x.want(np.concatenate(batches))   # decoded in the order they are read
        if self.num_workers == 0 and not self.pin:
            source = (self.rows[b] for b in batches)
        else:
            source = iter(self.loader())
        try:
            for xb in source:
                xb = xb.to(self.device, non_blocking=True)
                yield xb.long() if self.token_ids else xb.float()
        except DataError as e:
            if isinstance(e, TrainingError):
                raise
            raise ImagesFailed(str(e)) from None

    def close(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None and getattr(loader, "_iterator", None) is not None:
            loader._iterator._shutdown_workers()
            loader._iterator = None


class StreamedInputs:
    """A split's inputs (rows of a Stream), standing in for a whole tensor: len(), slices (a
    sub-split), `epoch(order, batch_size)` and `in_order(batch_size)` read batches, `read(k)` the
    first k samples as one tensor."""

    def __init__(self, stream: Stream, rows: np.ndarray):
        self.stream, self.rows = stream, np.asarray(rows, dtype=np.int64)

    @property
    def device(self) -> torch.device:
        return self.stream.device

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.stream.x.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> StreamedInputs:
        if not isinstance(index, slice):
            raise TypeError("streamed inputs are read by slices or through epoch() / in_order()")
        return StreamedInputs(self.stream, self.rows[index])

    def epoch(self, order, batch_size: int) -> Iterator[torch.Tensor]:
        """The batches of positions `order` (a tensor or array of positions in this split)."""
        order = order.cpu().numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
        rows = self.rows[order]
        return self.stream.read([rows[s:s + batch_size] for s in range(0, len(rows), batch_size)])

    def in_order(self, batch_size: int) -> Iterator[torch.Tensor]:
        return self.epoch(np.arange(len(self.rows)), batch_size)

    def read(self, count: int | None = None) -> torch.Tensor:
        """The first `count` samples (all by default) as one tensor on the device."""
        rows = self.rows[:count]
        parts = list(self.stream.read([rows[s:s + 1024] for s in range(0, len(rows), 1024)]))
        if not parts:
            return torch.zeros((0, *self.stream.x.shape[1:]), device=self.device)
        return torch.cat(parts)

    def normalizer_sample(self, limit: int) -> torch.Tensor:
        """The first samples for fitting Normalization blocks: at most `limit`, and NORMALIZER_BYTES."""
        per = max(1, int(np.prod(self.stream.x.shape[1:])) * 4)
        return self.read(max(1, min(limit, NORMALIZER_BYTES // per)))


def streamed_splits(x, splits: tuple[np.ndarray, ...], device: torch.device,
                    num_workers: int = -1) -> tuple[list[StreamedInputs], Stream]:
    """StreamedInputs for each array of rows in `splits` (train, validation, test), sharing one
    Stream (and its worker processes) over `x`."""
    stream = Stream(x, device, workers(x, num_workers))
    return [StreamedInputs(stream, rows) for rows in splits], stream


def peak_rss() -> int | None:
    """The most memory this process has held (resident set, bytes), None where unknown; with
    `children=True`-style figures left to the caller (resource.RUSAGE_CHILDREN)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


__all__ = ["ImagesFailed", "Stream", "StreamedInputs", "default_memory_budget", "memory_budget", "peak_rss",
           "streamed_splits", "streams", "tensor_bytes", "workers"]
