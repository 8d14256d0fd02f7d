"""A folder's first streamed epoch overlaps its decoding (issue #18): loading returns once the
folder is listed, the decoding processes fill the cache file in the order the run reads its rows,
and each batch is read as soon as its images are decoded, with the same results as whole tensors;
a bad image stops the run naming it, a cancelled or dropped fill leaves no file that is read."""
from __future__ import annotations

import errno
import gc
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

Image = pytest.importorskip("PIL.Image")

from engine.graph import build  # noqa: E402
from engine.runtime.data import DataError, LoadCancelled, images, load_dataset, split_indices  # noqa: E402
from engine.training import Callbacks, TrainConfig, TrainControl, TrainingError, train  # noqa: E402

pytestmark = pytest.mark.skipif(not images._overlaps(10**6, "stop", 2), reason="overlap needs Linux")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(images.ENV_CACHE_DIR, str(folder))
    monkeypatch.delenv(images.ENV_CACHE_LIMIT, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(images, "OVERLAP_MIN", 100)
    monkeypatch.setattr(images, "FILL_CHUNK", 8)
    return folder


def folder_of(root: Path, per_class: int = 80) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
            a[:, slice(0, 4) if k == 0 else slice(4, 8)] += 150
            Image.fromarray(a).save(root / name / f"{i:03d}.jpg", quality=95)
    return root


def graph():
    return build("m", [("in", "Input", {"shape": [3, 8, 8]}), ("flip", "RandomFlip", {}), ("flat", "Flatten", {}),
                       ("fc", "Linear", {"units": 2}), ("out", "Output", {})])


def gate(tmp_path, monkeypatch, delay: float = 0.0) -> list[int]:
    """Decoding (in the forked decoding processes) waits until the run first says which rows it
    reads (and then takes `delay` seconds an image): returns the rows submitted, in order, with
    the count submitted before that moment appended to `submitted.marks`."""
    opened = tmp_path / "gate"
    decode = images.decode_image

    def gated(*args):
        while not opened.exists():
            time.sleep(0.005)
        time.sleep(delay)
        return decode(*args)

    monkeypatch.setattr(images, "decode_image", gated)
    submitted = Submitted()
    submit, want = images._Filler._submit, images._Filler.want
    monkeypatch.setattr(images._Filler, "_submit", lambda self, rows: submitted.extend(rows) or submit(self, rows))

    def wanted(self, rows):
        submitted.marks.append(len(submitted))
        opened.touch()
        return want(self, rows)

    monkeypatch.setattr(images._Filler, "want", wanted)
    return submitted


class Submitted(list):
    marks: list[int]

    def __init__(self):
        super().__init__()
        self.marks = []


def settled(cache: Path, timeout: float = 10.0) -> tuple[list[str], list[str]]:
    """(cache files, temporary files) once no filler is at work."""
    end = time.time() + timeout
    while time.time() < end and any(f.thread.is_alive() and not f.error for f in list(images._FILLERS or ())):
        time.sleep(0.05)
    time.sleep(0.1)
    files = sorted(p.name for p in cache.glob("*")) if cache.is_dir() else []
    return [f for f in files if f.endswith(images.CACHE_SUFFIX)], [f for f in files if f.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_the_first_epoch_reads_while_the_folder_is_decoded_in_its_order(tmp_path, cache, monkeypatch, workers):
    root = folder_of(tmp_path / "sides")
    submitted = gate(tmp_path, monkeypatch)
    said: list[dict] = []
    ds = load_dataset(str(root), progress=said.append)
    assert isinstance(ds.x, images.FillingImages) and ds.x.shape == (160, 3, 8, 8) and len(ds) == 160
    assert said[-1]["phase"] == "scan"                    # loading returned before the decoding ended
    config = dict(epochs=2, batch_size=8, device="cpu", lr=0.01, seed=3, val_split=0.1, test_split=0.1)
    streamed = train(graph(), ds, TrainConfig(**config, memory_budget=1e-9, data_workers=workers))
    ds.x.wait()              # "ready" is told at the first read (or wait) after the file is whole
    assert said[-1] == {"phase": "ready", "done": 160, "total": 160, "cache_hit": False, "skipped": 0}
    assert any(s["phase"] == "decode" for s in said)
    files, leftovers = settled(cache)
    assert ds.x.complete and len(files) == 1 and leftovers == [] and Path(ds.images.cache).name == files[0]
    # the rows asked for (the first epoch's order) were decoded in that order, after what was
    # already under way when the run began
    train_rows = split_indices(ds, 0.1, 0.1, 3)[0]
    order = train_rows[torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(3)).numpy()]
    before = set(submitted[:submitted.marks[0]])
    expected = [r for r in order.tolist() if r not in before]
    after = [r for r in submitted[submitted.marks[0]:] if r in set(order.tolist())]
    assert after[:len(expected)] == expected
    # the same results as whole tensors, from the cache file now whole
    again = load_dataset(str(root))
    assert again.images.cache_hit
    np.testing.assert_array_equal(np.asarray(again.x), np.asarray(ds.x))
    whole = train(graph(), again, TrainConfig(**config))
    assert [h["loss"] for h in streamed.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-6)
    assert [h["val_loss"] for h in streamed.history] == pytest.approx([h["val_loss"] for h in whole.history],
                                                                      rel=1e-6)
    assert streamed.test_metrics["confusion_matrix"] == whole.test_metrics["confusion_matrix"]


def test_a_filling_folder_reads_as_an_array_and_pickles_as_its_cache_file(tmp_path, cache):
    root = folder_of(tmp_path / "sides", per_class=60)
    ds = load_dataset(str(root), image_size=(6, 6))
    assert isinstance(ds.x, images.FillingImages)
    one = images.decode_image(root / "right" / "007.jpg", 6, 6, "RGB", "right/007.jpg")
    np.testing.assert_array_equal(ds.x[67], one)                       # waits for that row alone
    np.testing.assert_array_equal(ds.x[np.array([67, 3])][0], one)
    restored = pickle.loads(pickle.dumps(ds.x))                       # waits for the whole file
    assert isinstance(restored, images.CachedImages) and len(pickle.dumps(ds.x)) < 1000
    np.testing.assert_array_equal(np.asarray(restored), np.asarray(ds.x))
    assert settled(cache)[1] == [] and len(settled(cache)[0]) == 1


@pytest.mark.slow
def test_a_bad_image_found_while_training_stops_the_run_naming_it(tmp_path, cache):
    root = folder_of(tmp_path / "sides")
    target = root / "right" / "050.jpg"
    target.write_bytes(target.read_bytes()[:120])          # truncated: its header still reads
    ds = load_dataset(str(root))
    assert isinstance(ds.x, images.FillingImages)
    failed: list[dict] = []
    with pytest.raises(TrainingError, match=r"cannot read image right/050\.jpg"):
        train(graph(), ds, TrainConfig(epochs=2, batch_size=8, device="cpu", memory_budget=1e-9),
              Callbacks(failed=failed.append))
    assert failed and "right/050.jpg" in failed[0]["message"] and "training failed" not in failed[0]["message"]
    with pytest.raises(DataError, match=r"right/050\.jpg"):
        np.asarray(ds.x)
    assert settled(cache) == ([], [])                      # no cache file, no temporary file left
    # "skip" decodes the folder before it returns (the split must know which images are kept)
    skipped = load_dataset(str(root), bad_images="skip")
    assert not isinstance(skipped.x, images.FillingImages) and len(skipped) == 159


@pytest.mark.slow
def test_a_stop_while_filling_keeps_the_batches_trained_and_leaves_no_cache(tmp_path, cache, monkeypatch):
    root = folder_of(tmp_path / "sides", per_class=200)
    gate(tmp_path, monkeypatch, delay=0.01)
    control = TrainControl()
    ds = load_dataset(str(root), cancel=lambda: control.stopped)
    assert isinstance(ds.x, images.FillingImages)
    result = train(graph(), ds, TrainConfig(epochs=3, batch_size=8, device="cpu", memory_budget=1e-9),
                   Callbacks(batch_end=lambda info: control.stop() if info["batch"] >= 4 else None), control)
    assert result.stopped == "user" and len(result.history) == 1 and "accuracy" in result.test_metrics
    assert not ds.x.complete                               # only what the run read was decoded after the stop
    del ds, result
    gc.collect()
    assert settled(cache) == ([], [])                      # dropped unfinished: removed, never read


def test_no_overlap_under_torchrun_or_without_room_for_the_file(tmp_path, cache, monkeypatch):
    root = folder_of(tmp_path / "sides", per_class=60)
    monkeypatch.setenv("WORLD_SIZE", "2")                 # process 0 fills the cache before a barrier
    ds = load_dataset(str(root))
    assert isinstance(ds.x, images.CachedImages) and len(settled(cache)[0]) == 1
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(images, "_preallocate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    notices: list[dict] = []
    full = load_dataset(str(root), image_size=(5, 5), progress=notices.append)
    assert full.images.cache is None and isinstance(full.x, np.ndarray) and full.x.shape == (120, 3, 5, 5)
    assert any(n["phase"] == "notice" and "full" in n["message"] for n in notices)
    assert len(settled(cache)[0]) == 1 and settled(cache)[1] == []


def test_waiting_for_the_whole_file_tells_progress_and_can_be_cancelled(tmp_path, cache, monkeypatch):
    """A caller that wants the folder decoded before it goes on (a dialog) waits with x.wait()."""
    root = folder_of(tmp_path / "sides", per_class=60)
    said: list[dict] = []
    ds = load_dataset(str(root), progress=said.append)
    whole = ds.x.wait()
    assert isinstance(whole, images.CachedImages) and whole.shape == (120, 3, 8, 8)
    assert said[-1] == {"phase": "ready", "done": 120, "total": 120, "cache_hit": False, "skipped": 0}
    gate(tmp_path, monkeypatch)                           # the decoding now waits: the fill is under way
    stop = []
    filling = load_dataset(str(root), image_size=(7, 7), cancel=lambda: bool(stop))
    stop.append(1)
    with pytest.raises(LoadCancelled):
        filling.x.wait()
    (tmp_path / "gate").touch()                           # the decoding processes' tasks end
    assert len(settled(cache)[0]) == 1 and settled(cache)[1] == []    # only the first folder's file
