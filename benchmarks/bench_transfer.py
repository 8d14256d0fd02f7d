"""Fine-tuning (issue #19): does starting from trained weights help, and what does freezing save?

1. Transfer: a small CNN is trained on the built-in 8x8 digits 0-4 (all of them). Its backbone then
   starts a 5-class model for digits 5-9 that sees only 10 images per class (50 in all), tested on
   every other 5-9 image. Three ways, the same epochs and settings, over several seeds:
   from scratch, fine-tuned (all blocks train), and fine-tuned with the convolutions frozen.
2. Speed: one epoch of a conv model with its backbone frozen against the same epoch with every
   block training (no backward pass through frozen blocks), as a ratio measured in the same run.

    .venv/bin/python benchmarks/bench_transfer.py [--seeds 5] [--epochs 5,10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.graph import build  # noqa: E402
from engine.runtime.data import load_dataset  # noqa: E402
from engine.runtime.data.core import Dataset  # noqa: E402
from engine.runtime.settings import TrainConfig  # noqa: E402
from engine.training import train  # noqa: E402

BACKBONE = ("conv1", "conv2")


def cnn(frozen: tuple[str, ...] = (), width: int = 32):
    graph = build("cnn", [
        ("image", "Input", {"shape": [1, 8, 8]}), ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("conv1", "Conv2d", {"filters": width, "padding": "same", "activation": "relu"}),
        ("pool1", "MaxPool2d", {"kernel_size": 2}),
        ("conv2", "Conv2d", {"filters": 2 * width, "padding": "same", "activation": "relu"}),
        ("pool2", "MaxPool2d", {"kernel_size": 2}),
        ("flatten", "Flatten", {}), ("features", "Linear", {"units": 64, "activation": "relu"}),
        ("head", "Linear", {"units": 5}), ("output", "Output", {})])
    for name in frozen:
        graph.find(name).params["trainable"] = False
    return graph


def transfer(seeds: int, epoch_counts: list[int]) -> None:
    digits = load_dataset("digits_images")
    x, y = digits.x, digits.y
    first = Dataset(name="digits 0-4", x=x[y < 5], y=y[y < 5], task="multiclass", class_names=list("01234"))
    started = time.perf_counter()
    pre = train(cnn(), first, TrainConfig(epochs=30, seed=0))
    print(f"pretrained on digits 0-4: test accuracy {pre.test_metrics['accuracy']:.3f} "
          f"({time.perf_counter() - started:.1f} s)")
    start = {k: v for k, v in pre.state_dict.items() if not k.startswith("head.")}   # a new head
    xb, yb = x[y >= 5], y[y >= 5] - 5
    for epochs in epoch_counts:
        rows = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(yb == c), 10, replace=False) for c in range(5)])
            rest = np.setdiff1d(np.arange(len(yb)), pick)
            few = Dataset(name="digits 5-9, 10 each", x=xb[pick], y=yb[pick], task="multiclass",
                          class_names=list("56789"), x_test=xb[rest], y_test=yb[rest])
            settings = dict(epochs=epochs, seed=seed, val_split=0.0, test_split=0.0, batch_size=10, lr=3e-3)
            scratch = train(cnn(), few, TrainConfig(**settings))
            tuned = train(cnn(), few, TrainConfig(start_from="weights", **settings), initial=start)
            frozen = train(cnn(BACKBONE), few, TrainConfig(start_from="weights", **settings), initial=start)
            rows.append([r.test_metrics["accuracy"] for r in (scratch, tuned, frozen)])
        a = np.array(rows)
        print(f"\n{epochs} epochs, {seeds} seeds, 50 training images, {len(yb) - 50} test images")
        print(f"{'':>22}{'mean':>8}{'min':>8}{'max':>8}")
        for k, label in enumerate(("from scratch", "fine-tuned", "fine-tuned, convs frozen")):
            print(f"{label:>22}{a[:, k].mean():8.3f}{a[:, k].min():8.3f}{a[:, k].max():8.3f}")
        wins = int((a[:, 1] > a[:, 0]).sum())
        print(f"fine-tuned beats scratch in {wins} of {seeds} seeds (mean gain {a[:, 1].mean() - a[:, 0].mean():+.3f})")


def speed(repeats: int) -> None:
    digits = load_dataset("digits_images")
    x = np.concatenate([digits.x] * 8)
    y = np.concatenate([digits.y % 5] * 8)
    data = Dataset(name="digits x8", x=x, y=y, task="multiclass", class_names=list("01234"))
    settings = dict(epochs=2, seed=0, val_split=0.0, test_split=0.0, batch_size=64, device="cpu")
    ratios = []
    for _ in range(repeats):
        seconds = {}
        for label, frozen in (("full", ()), ("frozen", BACKBONE)):
            result = train(cnn(frozen, width=64), data, TrainConfig(**settings))
            seconds[label] = result.history[-1]["seconds"]        # the second epoch: warmed up
        ratios.append(seconds["full"] / seconds["frozen"])
    print(f"\nepoch time, every block training / backbone frozen (conv model, {len(x)} samples): "
          f"median {statistics.median(ratios):.2f}x over {repeats} pairs ({', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", default="5,10", help="epoch counts to compare, e.g. 5,10")
    parser.add_argument("--repeats", type=int, default=3, help="paired speed measurements")
    args = parser.parse_args()
    transfer(args.seeds, [int(e) for e in args.epochs.split(",")])
    speed(args.repeats)


if __name__ == "__main__":
    main()
