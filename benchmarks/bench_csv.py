"""CSV loading: Deepwire's load_csv against pyarrow's bare read of the same file, in one run.

Writes a CSV (default ~1 GB; --mb to choose) of 12 float columns and a text target into a
temporary folder (after checking the disk has room), times

  - pyarrow.csv.read_csv(file): the library's bare read (types inferred, nothing checked)
  - engine.runtime.data.load_csv(file): the dataset Deepwire trains on (float32 features,
    class ids), with its checks (header, missing values, categories, finite values)

best of --repeat runs each, prints the ratio (goal <= 1.2x), then the same on a smaller file
(--small-mb) for the Python csv-module reader Deepwire used before (and pandas' C reader, for
comparison), and deletes the files.

    python benchmarks/bench_csv.py [--mb 1024] [--small-mb 32] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runtime.data import tables  # noqa: E402

FEATURES = 12


def write_csv(path: Path, mb: float, seed: int = 0) -> int:
    """~mb MiB of "f0..f11,label" rows (floats to 6 significant digits, label cat/dog/bird); rows written."""
    rng = np.random.default_rng(seed)
    labels = np.array(["cat", "dog", "bird"])
    rows = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join([f"f{i}" for i in range(FEATURES)] + ["label"]) + "\n")
        while f.tell() < mb * 2**20:
            block = rng.normal(size=(50_000, FEATURES)).astype(np.float32)
            names = labels[rng.integers(0, 3, len(block))]
            f.write("".join(",".join(f"{v:.6g}" for v in row) + f",{name}\n"
                            for row, name in zip(block.tolist(), names)))
            rows += len(block)
    return rows


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1024, help="size of the large file in MiB (default 1024)")
    ap.add_argument("--small-mb", type=float, default=32,
                    help="size of the file the old reader reads (default 32, at most 60)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the files (default: the system's temporary folder)")
    args = ap.parse_args(argv)
    args.small_mb = min(args.small_mb, 60)     # the old reader is kept for files up to 64 MiB
    import pyarrow
    import pyarrow.csv as pa_csv

    folder = Path(tempfile.mkdtemp(prefix="bench-csv-", dir=args.dir))
    try:
        free = shutil.disk_usage(folder).free
        if free < (args.mb + args.small_mb) * 2**20 * 1.5:
            print(f"not enough disk: {free / 2**30:.1f} GiB free, {(args.mb + args.small_mb) / 1024:.1f} GiB needed")
            return 1
        big = folder / "big.csv"
        rows = write_csv(big, args.mb)
        size = big.stat().st_size
        print(f"pyarrow {pyarrow.__version__}, numpy {np.__version__}; {size / 2**20:,.0f} MiB, {rows:,} rows "
              f"x {FEATURES + 1} columns (text target)")
        bare = best(lambda: pa_csv.read_csv(big), args.repeat)
        ours = best(lambda: tables.load_csv(big), args.repeat)
        ds = tables.load_csv(big)
        assert ds.x.shape == (rows, FEATURES) and ds.class_names == ["bird", "cat", "dog"]
        print(f"  pyarrow.csv.read_csv (bare)   {bare:7.2f} s  {size / 2**20 / bare:6.0f} MiB/s")
        print(f"  Deepwire load_csv             {ours:7.2f} s  {size / 2**20 / ours:6.0f} MiB/s")
        print(f"  ratio load_csv / bare read    {ours / bare:7.2f}x  (goal <= 1.2x)")
        big.unlink()

        small = folder / "small.csv"
        rows = write_csv(small, args.small_mb, seed=1)
        size = small.stat().st_size
        print(f"smaller file: {size / 2**20:,.0f} MiB, {rows:,} rows")
        bare = best(lambda: pa_csv.read_csv(small), args.repeat)
        ours = best(lambda: tables.load_csv(small), args.repeat)
        old = best(lambda: tables._load_csv_python(small), 1)
        print(f"  pyarrow.csv.read_csv (bare)   {bare:7.2f} s")
        print(f"  Deepwire load_csv             {ours:7.2f} s  ({ours / bare:.2f}x the bare read)")
        print(f"  old Python csv reader         {old:7.2f} s  ({old / ours:.0f}x slower than load_csv)")
        try:
            import pandas
        except ImportError:
            print("  pandas: not installed")
        else:
            pd = best(lambda: pandas.read_csv(small), args.repeat)
            print(f"  pandas.read_csv (C, bare)     {pd:7.2f} s  (pandas {pandas.__version__})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
