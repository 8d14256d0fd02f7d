"""Image folders decoded once into a cache file, and data larger than the memory budget streamed
batch by batch (issue #18): the cache is reused, rebuilt when the folder changes or the file is
damaged, skipped on a full disk; bad images stop or are skipped; loading reports progress and can
be cancelled; a streamed run trains exactly as a whole-tensor run."""
from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from engine.graph import build  # noqa: E402
from engine.runtime.data import DataError, LoadCancelled, load_dataset, sample_images  # noqa: E402
from engine.runtime.data import images  # noqa: E402
from engine.training import TrainConfig, TrainControl, train  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(images.ENV_CACHE_DIR, str(folder))
    monkeypatch.delenv(images.ENV_CACHE_LIMIT, raising=False)
    return folder


def make_folder(root: Path, per_class: int = 6, classes=("cat", "dog"), side: int = 12, fmt: str = "png") -> Path:
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (side + i % 3, side), (40 * k + i, 100, 200 - 10 * i)).save(root / name / f"{i:03d}.{fmt}")
    return root


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*" + images.CACHE_SUFFIX)) if folder.is_dir() else []


def test_a_folder_is_decoded_once_and_read_back_from_its_cache_file(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    seen: list[dict] = []
    first = load_dataset(str(root), image_size=(8, 10), progress=seen.append)
    assert first.x.dtype == np.uint8 and first.x.shape == (12, 3, 8, 10) and first.dtype == "float32"
    assert not first.images.cache_hit and len(cache_files(cache)) == 1
    assert seen[0]["phase"] == "scan" and seen[-1] == {"phase": "ready", "done": 12, "total": 12,
                                                       "cache_hit": False, "skipped": 0}
    assert any(s["phase"] == "decode" for s in seen)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    again: list[dict] = []
    original = images.decode_image
    images.decode_image = no_decoding
    try:
        second = load_dataset(str(root), image_size=(8, 10), progress=again.append)
    finally:
        images.decode_image = original
    assert second.images.cache_hit and again[-1]["cache_hit"] and not any(s["phase"] == "decode" for s in again)
    np.testing.assert_array_equal(np.asarray(second.x), np.asarray(first.x))
    assert second.y.tolist() == [0] * 6 + [1] * 6
    # the pixels are the images, resized: the first cat is (0, 100, 200)
    assert second.x[0, :, 0, 0].tolist() == [0, 100, 200]
    # another size or mode is another cache file
    gray = load_dataset(str(root), image_size=(8, 10), grayscale=True)
    assert gray.x.shape == (12, 1, 8, 10) and len(cache_files(cache)) == 2
    # a dataset pickles as the cache file's name, not its pixels (the training process maps the file)
    assert len(pickle.dumps(second.x)) < 1000
    np.testing.assert_array_equal(np.asarray(pickle.loads(pickle.dumps(second.x))), np.asarray(second.x))


def test_a_changed_folder_is_noticed_and_decoded_again(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    assert len(load_dataset(str(root))) == 12
    Image.new("RGB", (12, 12), (1, 2, 3)).save(root / "dog" / "new.png")
    grown = load_dataset(str(root))
    assert len(grown) == 13 and not grown.images.cache_hit
    target = root / "cat" / "000.png"
    Image.new("RGB", (12, 12), (9, 9, 9)).save(target)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    changed = load_dataset(str(root))
    assert not changed.images.cache_hit and changed.x[0, :, 0, 0].tolist() == [9, 9, 9]


@pytest.mark.parametrize("damage", ["magic", "version", "cut", "no_end", "key"])
def test_a_damaged_or_foreign_cache_file_is_rebuilt_never_trusted(tmp_path, cache, damage):
    root = make_folder(tmp_path / "pets")
    good = np.asarray(load_dataset(str(root)).x).copy()
    (path,) = cache_files(cache)
    data = bytearray(path.read_bytes())
    if damage == "magic":
        data[:8] = b"NOTMAGIC"
    elif damage == "version":
        data[8:12] = (images.FORMAT + 1).to_bytes(4, "little")
    elif damage == "cut":
        data = data[: images.HEADER_BYTES + 100]
    elif damage == "no_end":                  # a killed writer: everything but the end marker
        data = data[:-8]
    else:                                      # another folder's file under this name
        data[16:200] = data[16:200].replace(b'"key": "', b'"key": "0')
    data[images.HEADER_BYTES: images.HEADER_BYTES + 50] = b"\xff" * 50   # and pixels that are not the images
    path.write_bytes(bytes(data))
    again = load_dataset(str(root))
    assert not again.images.cache_hit
    np.testing.assert_array_equal(np.asarray(again.x), good)
    assert load_dataset(str(root)).images.cache_hit       # the rebuilt file is whole


def test_a_killed_run_leaves_no_file_that_is_read(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 1                 # cancelled after the first chunk: as good as killed

    with pytest.raises(LoadCancelled):
        load_dataset(str(make_folder(tmp_path / "many", per_class=40)), cancel=cancel)
    assert cache_files(cache) == [] and not list(cache.glob("*.tmp"))
    # a temporary file of a killed writer is never taken for the cache, and old ones are cleared
    cache.mkdir(exist_ok=True)
    stale = cache / "abc.123.0000.tmp"
    stale.write_bytes(b"half a cache")
    os.utime(stale, (1, 1))
    ds = load_dataset(str(root))
    assert not ds.images.cache_hit and len(ds) == 12 and not stale.exists()


def test_a_full_disk_costs_the_cache_never_the_data(tmp_path, cache, monkeypatch):
    root = make_folder(tmp_path / "pets")
    expected = np.asarray(load_dataset(str(root), image_size=(9, 9)).x).copy()
    for p in cache_files(cache):
        p.unlink()

    def full(fd, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(images, "_preallocate", full)
    notices: list[dict] = []
    ds = load_dataset(str(root), image_size=(9, 9), progress=notices.append)
    assert ds.images.cache is None and cache_files(cache) == [] and not list(cache.glob("*.tmp"))
    assert any("No space left" in n for n in ds.images.notes)
    assert any(n["phase"] == "notice" and "No space left" in n["message"] for n in notices)
    np.testing.assert_array_equal(np.asarray(ds.x), expected)
    # beyond the memory budget the images are decoded batch by batch as they are read
    lazy = load_dataset(str(root), image_size=(9, 9), memory_budget=100)
    assert isinstance(lazy.x, images.LazyImages) and lazy.x.shape == (12, 3, 9, 9)
    np.testing.assert_array_equal(lazy.x[np.array([3, 0])], expected[[3, 0]])


def test_the_cache_keeps_to_its_size_limit(tmp_path, cache, monkeypatch):
    a = make_folder(tmp_path / "a")
    b = make_folder(tmp_path / "b", classes=("x", "y"))
    one = images.HEADER_BYTES + 12 * 3 * 12 * 12 + 500
    monkeypatch.setenv(images.ENV_CACHE_LIMIT, str(1.5 * one / 2**30))
    load_dataset(str(a), image_size=(12, 12))
    load_dataset(str(b), image_size=(12, 12))
    assert len(cache_files(cache)) == 1                   # a's file made room for b's
    assert load_dataset(str(b), image_size=(12, 12)).images.cache_hit
    big = load_dataset(str(a), image_size=(40, 40))       # over the limit alone: not cached, said so
    assert big.images.cache is None and any("limit" in n for n in big.images.notes)
    assert images.cache_info()["files"] == 1
    assert images.clear_image_cache()[0] == 1 and images.cache_info()["files"] == 0


def test_bad_images_stop_naming_the_file_or_are_skipped_and_counted(tmp_path, cache):
    root = make_folder(tmp_path / "pets")
    noise = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "dog" / "004.png")
    (root / "dog" / "004.png").write_bytes((root / "dog" / "004.png").read_bytes()[:200])   # truncated
    (root / "cat" / "zz.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"cannot read image cat/zz\.jpg"):
        load_dataset(str(root))
    assert cache_files(cache) == []
    ds = load_dataset(str(root), bad_images="skip")
    assert len(ds) == 11 and ds.y.tolist() == [0] * 6 + [1] * 5
    assert sorted(f for f, _ in ds.images.skipped) == ["cat/zz.jpg", "dog/004.png"]
    assert "2 unreadable image(s) skipped" in ds.description
    assert ds.x[6:, 0, 0, 0].tolist() == [40, 41, 42, 43, 45]   # the dogs after the gap, in order
    again = load_dataset(str(root), bad_images="skip")
    assert again.images.cache_hit and len(again) == 11
    with pytest.raises(DataError, match=r"cannot read image (cat/zz\.jpg|dog/004\.png)"):
        load_dataset(str(root))          # the cache remembers them: "stop" still stops


def test_many_images_are_decoded_in_parallel_processes(tmp_path, cache):
    root = make_folder(tmp_path / "many", per_class=50, classes=("a", "b"), fmt="jpg")
    ds = load_dataset(str(root), image_size=(10, 10))
    assert ds.x.shape == (100, 3, 10, 10)
    one = images.decode_image(root / "b" / "017.jpg", 10, 10, "RGB", "b/017.jpg")
    np.testing.assert_array_equal(ds.x[67], one)


def test_a_preview_decodes_only_the_samples_it_shows(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", per_class=30, classes=("a", "b", "c"))
    decoded = []
    original = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda *a: decoded.append(a[-1]) or original(*a))
    x, labels, names, count = sample_images(root, k=5, image_size=(6, 6), seed=1)
    assert x.shape == (5, 3, 6, 6) and x.dtype == np.uint8 and names == ["a", "b", "c"] and count == 90
    assert len(decoded) == 5 and sorted(set(labels.tolist())) == [0, 1, 2]


def conv_graph(side: int):
    return build("m", [("in", "Input", {"shape": [3, side, side]}), ("flip", "RandomFlip", {}),
                       ("noise", "GaussianNoise", {"stddev": 5.0}), ("flat", "Flatten", {}),
                       ("fc", "Linear", {"units": 2}), ("out", "Output", {})])


@pytest.mark.parametrize("workers", [0, 1])
def test_a_streamed_run_trains_exactly_as_one_with_whole_tensors(tmp_path, workers):
    """Same seeded split, batch order, augmentation (train-only, per batch) and results; the
    streamed run reads its batches from the cache file (through a worker process)."""
    ds = load_dataset(str(make_folder(tmp_path / "pets", per_class=20)), image_size=(8, 8))
    config = dict(epochs=3, batch_size=8, device="cpu", lr=0.01, seed=3)
    whole = train(conv_graph(8), ds, TrainConfig(**config))
    reports: list[dict] = []
    from engine.training import Callbacks
    streamed = train(conv_graph(8), ds, TrainConfig(**config, memory_budget=1e-9, data_workers=workers),
                     Callbacks(batch_end=reports.append))
    assert [h["loss"] for h in streamed.history] == pytest.approx([h["loss"] for h in whole.history], rel=1e-6)
    assert [h["val_loss"] for h in streamed.history] == pytest.approx([h["val_loss"] for h in whole.history],
                                                                      rel=1e-6)
    assert streamed.test_metrics["accuracy"] == whole.test_metrics["accuracy"]
    assert streamed.test_metrics["confusion_matrix"] == whole.test_metrics["confusion_matrix"]
    assert reports and all(r["peak_rss"] is None or r["peak_rss"] > 2**20 for r in reports)


def test_a_streamed_run_can_decode_from_the_files_and_be_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_preallocate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    ds = load_dataset(str(make_folder(tmp_path / "pets", per_class=16)), image_size=(8, 8), memory_budget=10)
    assert isinstance(ds.x, images.LazyImages)
    result = train(conv_graph(8), ds, TrainConfig(epochs=2, batch_size=4, device="cpu", memory_budget=1e-9,
                                                   data_workers=1))
    assert len(result.history) == 2 and "accuracy" in result.test_metrics
    control = TrainControl()
    from engine.training import Callbacks
    stopped = train(conv_graph(8), ds, TrainConfig(epochs=50, batch_size=4, device="cpu", memory_budget=1e-9),
                    Callbacks(batch_end=lambda info: control.stop()), control)
    assert stopped.stopped == "user" and len(stopped.history) == 1


def test_the_training_process_reports_loading_and_streams(tmp_path):
    from engine.train_process import run_request

    root = make_folder(tmp_path / "pets", per_class=10)
    graph = conv_graph(8)
    said: list[tuple] = []
    config = TrainConfig(epochs=1, batch_size=4, device="cpu", memory_budget=1e-9, data_workers=0)
    request = {"graph": graph.to_dict(), "dataset": str(root), "config": config.to_dict(),
               "load_options": {"image_size": (8, 8)}}
    run_request(request, lambda *m: said.append(m), TrainControl())
    kinds = [m[0] for m in said]
    assert kinds[-1] == "finished", said[-1]
    loading = [m[1] for m in said if m[0] == "loading"]
    assert loading[-1]["phase"] == "ready" and loading[-1]["total"] == 20
    samples = said[-1][1]["samples"]
    assert samples["x"].dtype == np.float32 and samples["x"].shape[1:] == (3, 8, 8)
    # a stop while loading cancels it: nothing trained, nothing half-written kept
    control = TrainControl()
    control.stop()
    said.clear()
    request["dataset"] = str(make_folder(tmp_path / "more", per_class=40))
    run_request(request, lambda *m: said.append(m), control)
    assert said[-1] == ("failed", "stopped before the first batch: nothing was trained")


def test_the_cache_command_tells_its_size_and_clears_it(tmp_path, cache, capsys):
    from engine.cli import main

    load_dataset(str(make_folder(tmp_path / "pets")))
    assert main(["cache"]) == 0
    assert f"{cache}: 1 image cache file, 0.0 MiB of 20.0 GiB" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 image cache file" in capsys.readouterr().out
    assert main(["cache", "info", "--json"]) == 0
    assert '"files": 0' in capsys.readouterr().out and cache_files(cache) == []
