"""Image folders at scale (issue #18): decoding once into the cache, streaming, memory.

Builds its own folder of small JPEGs (--count of --side x --side pixels, 10 classes) in a
temporary folder, then measures in the same run:

  reference   PIL decoding every file (open, convert to RGB, to an array) in as many processes
              as there are cores: the machine's parallel decode rate
  first epoch a training run in a fresh process with an empty cache: from the start of loading
              to the end of the first epoch (whose batches are read as their images are decoded
              into the cache, images.FillingImages), the images decoded and read by then (training
              and validation rows) per second; and when the cache file was whole
  later       the later epochs' rate (read from the cache), against the first epoch's
  memory      the training process's peak resident memory (and its workers'), at --count and at a
              fifth of it: the streamed path's memory does not grow with the data
  before      the same run with the folder decoded before the first epoch (no overlap)
  workers     later-epoch rates with 0, 1, 2 reading processes in a process that trains with one
              torch thread fewer than the cores, as the designer's training process does

The run streams (memory_budget is set below the data's size) with a tiny model (Flatten +
Linear), so the figures are the data path's. Ratios printed at the end:
  first-epoch rate / parallel decode rate         (target >= 0.8)
  later-epoch rate / first epoch's training rate  (target >= 5)
  peak RSS at --count / at count/5          (target ~1: no growth)

    python benchmarks/bench_data_scale.py                 # 20,000 images
    python benchmarks/bench_data_scale.py --count 100000  # checks the free disk first
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.runtime.data.images import decode_workers  # noqa: E402

CLASSES = 10


def make_folder(root: Path, count: int, side: int) -> None:
    """count JPEGs in CLASSES class folders, written by as many processes as there are cores."""
    per = [(root, k, count, side) for k in range(decode_workers())]
    with concurrent.futures.ProcessPoolExecutor(decode_workers()) as pool:
        list(pool.map(_write_part, per))


def _write_part(args) -> None:
    from PIL import Image

    root, part, count, side = args
    rng = np.random.default_rng(part)
    for i in range(part, count, decode_workers()):
        c = i % CLASSES
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 90, (side, side, 3), dtype=np.uint8)
        a[..., c % 3] += 120
        Image.fromarray(a).save(folder / f"{i:07d}.jpg", quality=90)


def _decode(paths: list[str]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    return len(paths)


def reference_rate(root: Path) -> float:
    """PIL decoding every file in decode_workers() processes: images per second."""
    files = sorted(str(p) for p in root.rglob("*.jpg"))
    workers = decode_workers()
    chunks = [files[i:i + 256] for i in range(0, len(files), 256)]
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_decode, chunks))
    return done / (time.perf_counter() - started)


RUN = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import torch
from engine.graph import build
from engine.runtime.data import load_dataset
from engine.runtime.data.images import FillingImages
from engine.train_process import _warm_up, training_threads
from engine.training import Callbacks, TrainConfig, train

folder, side, epochs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
workers, budget = int(sys.argv[5]), float(sys.argv[6])
if sys.argv[7] == "before":                      # decode the whole folder before the first epoch
    import engine.runtime.data.images as images
    images.OVERLAP_MIN = 2**62
torch.set_num_threads(training_threads())        # as the designer's training process,
_warm_up()                                       # which has imported and run once what every run needs
started = time.perf_counter()
ds = load_dataset(folder, image_size=(side, side))
load_s = time.perf_counter() - started
graph = build("bench", [("in", "Input", {"shape": [3, side, side]}), ("flat", "Flatten", {}),
                        ("fc", "Linear", {"units": 10}), ("out", "Output", {})])
config = TrainConfig(epochs=epochs, batch_size=256, device="cpu", memory_budget=budget, data_workers=workers,
                     val_split=0.1, test_split=0.1)
first_batch = []
result = train(graph, ds, config, Callbacks(batch_end=lambda info: first_batch or first_batch.append(
    time.perf_counter() - started)))
filling = isinstance(ds.x, FillingImages)
if filling:
    ds.x.wait()
kb = 1 if sys.platform == "darwin" else 1024
from engine.runtime.data import split_indices
parts = split_indices(ds, 0.1, 0.1, config.seed)
print(json.dumps({"load_s": load_s, "cache_hit": ds.images.cache_hit, "images": len(ds), "overlap": filling,
                  "fill_s": (ds.x.filler.committed_at - started) if filling else None,
                  "first_batch_s": first_batch[0] if first_batch else None,
                  "train": len(parts[0]), "val": len(parts[1]),
                  "epochs_s": [h["seconds"] for h in result.history],
                  "rates": [h["samples_per_s"] for h in result.history],
                  "threads": torch.get_num_threads(),
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb,
                  "children_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kb}))
"""


def run(folder: Path, cache: Path, side: int, epochs: int, workers: int, budget_gib: float,
        decode: str = "overlap") -> dict:
    env = dict(os.environ, DEEPWIRE_IMAGE_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", RUN, str(ROOT), str(folder), str(side), str(epochs), str(workers),
                          str(budget_gib), decode], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="images (default 20000)")
    parser.add_argument("--side", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2", help="reading processes to compare (default 0,1,2)")
    parser.add_argument("--no-scale", action="store_true", help="skip the run at a fifth of --count")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="deepwire-bench-data-"))
    need = args.count * (3 * args.side * args.side + 4096) * 1.3   # the JPEGs and the cache, with room
    free = shutil.disk_usage(base).free
    print(f"{args.count:,} JPEGs of {args.side}x{args.side} in {base}; needs ~{need / 2**30:.1f} GiB, "
          f"{free / 2**30:.1f} GiB free; {decode_workers()} cores")
    if need > free:
        raise SystemExit("not enough free disk")
    try:
        folders = {args.count: base / "big"}
        if not args.no_scale:
            folders[args.count // 5] = base / "small"
        for count, folder in folders.items():
            started = time.perf_counter()
            make_folder(folder, count, args.side)
            print(f"  wrote {count:,} images in {time.perf_counter() - started:.1f} s")

        ref = reference_rate(folders[args.count])
        print(f"reference: PIL decoding in {decode_workers()} processes: {ref:,.0f} images/s")
        budget = 1e-6     # GiB: stream whatever the size
        results = {}
        for count, folder in folders.items():
            r = run(folder, base / f"cache{count}", args.side, args.epochs, -1, budget)
            results[count] = r
            first = r["load_s"] + r["epochs_s"][0]           # from the start of loading to the end of epoch 1
            # epoch 1 reads the training rows and (its validation) the validation rows: all decoded by then
            first_rate = (r["train"] + r["val"]) / first
            first_data = r["train"] / first
            later = float(np.mean(r["rates"][1:])) if len(r["rates"]) > 1 else float("nan")
            fill = f", the cache file whole at {r['fill_s']:.2f} s" if r["fill_s"] else ""
            how = "decoding overlapped with the first epoch" if r["overlap"] else "decoded before the first epoch"
            print(f"{count:,} images, streamed, empty cache ({how}, {r['threads']} torch threads):")
            print(f"  load {r['load_s']:.2f} s, first batch trained at {r['first_batch_s']:.2f} s{fill}; "
                  f"epochs {', '.join(f'{s:.2f}' for s in r['epochs_s'])} s")
            print(f"  first epoch: {r['train'] + r['val']:,} images decoded and read in {first:.2f} s = "
                  f"{first_rate:,.0f} images/s; whole pass {r['images'] / (r['fill_s'] or first):,.0f} images/s; "
                  f"later epochs {later:,.0f} images/s")
            print(f"  peak RSS {r['peak_rss'] / 2**20:,.0f} MiB "
                  f"(workers and decoders {r['children_rss'] / 2**20:,.0f} MiB)")
            r.update(first_rate=first_rate, later=later, first_data=first_data)
        r = results[args.count]
        before = run(folders[args.count], base / "cache-before", args.side, args.epochs, -1, budget, "before")
        shutil.rmtree(base / "cache-before", ignore_errors=True)
        before_first = before["load_s"] + before["epochs_s"][0]
        print(f"the same, decoded before the first epoch (as before the overlap): load {before['load_s']:.2f} s, "
              f"epochs {', '.join(f'{s:.2f}' for s in before['epochs_s'])} s: first epoch "
              f"{(before['train'] + before['val']) / before_first:,.0f} images/s")
        print("workers (cache hit; later-epoch rate):")
        for w in [int(v) for v in args.workers.split(",") if v.strip()]:
            wr = run(folders[args.count], base / f"cache{args.count}", args.side, 3, w, budget)
            print(f"  {w} worker(s): {float(np.mean(wr['rates'][1:])):,.0f} images/s, first epoch "
                  f"{wr['rates'][0]:,.0f}; load {wr['load_s']:.2f} s (cache hit: {wr['cache_hit']})")
        whole = run(folders[args.count], base / f"cache{args.count}", args.side, 3, -1, 0.0)
        print(f"whole tensors (the memory path, cache hit): later epochs {float(np.mean(whole['rates'][1:])):,.0f} "
              f"images/s, peak RSS {whole['peak_rss'] / 2**20:,.0f} MiB")
        print("ratios:")
        print(f"  first-epoch rate (images decoded and read by its end, from the start of loading) / parallel "
              f"decode rate: {r['first_rate'] / ref:.2f}  (target >= 0.8)")
        print(f"  later-epoch rate / first-epoch data rate (training images / (load + epoch 1)): "
              f"{r['later'] / r['first_data']:.1f}  (target >= 5)")
        print(f"  first epoch overlapped / decoded before: {before_first / (r['load_s'] + r['epochs_s'][0]):.2f}x "
              "as fast")
        if len(results) > 1:
            small = results[args.count // 5]
            print(f"  peak RSS at {args.count:,} / at {args.count // 5:,}: "
                  f"{r['peak_rss'] / small['peak_rss']:.2f}  (target ~1)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
