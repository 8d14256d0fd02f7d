"""Live training curves with a long run: does an update stay under 10 ms at 100,000 points?

Runs offscreen (QT_QPA_PLATFORM=offscreen unless set), dark theme, a shown `CurvesView` of
1000x360 (the loss and accuracy plots side by side). It fills the loss curve with 100,000 batch
points (`--points`) through `add_batches` (100 epochs of 1,000 batches, plus their epoch records),
then times updates as the training dock makes them: one `add_batches` report of 50 new losses
(1,000 batches/s reported at 20 Hz), handed to pyqtgraph and painted as a live run does (the widget
redraws at most 4 times a second; each timed update here is one such redraw), `processEvents()` (the
metric plot's half of the paint), and a synchronous full repaint of the plots' viewport. Median and
p99 per update.

Baselines, measured in the same run and interleaved in blocks with the widget's updates: a plain
`pg.PlotWidget` of the same size holding one `PlotDataItem` with the same data, updated with
`setData(x[:n], y[:n])` + processEvents + repaint,
  - "plain": pyqtgraph's defaults (no downsampling, no clipping);
  - "plain+ds": with `setDownsampling(auto=True, method="peak")` and `setClipToView(True)`.
The widget draws more (a raw and a smoothed 100k-point curve, epoch curves, two plots), so the
ratio against "plain+ds" says what that costs; against "plain", what the settings save.

    .venv/bin/python benchmarks/bench_curves.py            # ~30 s
    .venv/bin/python benchmarks/bench_curves.py --quick    # ~10 s
    .venv/bin/python benchmarks/bench_curves.py --points 1000000

Always exits 0: a report, not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from designer import theme  # noqa: E402
from designer.curves import CurvesView  # noqa: E402

TARGET_MS = 10.0
BATCHES = 1000          # batches per epoch
CHUNK = 50              # losses per report


def losses_for(step0: int, count: int, rng) -> np.ndarray:
    t = (step0 + np.arange(count)) / BATCHES
    return 2.3 * np.exp(-t / 20) + 0.05 + np.abs(rng.normal(0, 0.1, count))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Widget:
    name = "CurvesView"

    def __init__(self, app, points: int, rng):
        self.app, self.rng = app, rng
        self.view = CurvesView()
        self.view.resize(1000, 360)
        self.view.show()
        self.view.start_run("bench", "multiclass")
        step = 0
        while step < points:
            k = min(BATCHES, points - step)
            epoch, batch = step // BATCHES + 1, step % BATCHES + k
            self.view.add_batches({"losses": losses_for(step, k, rng).tolist(), "epoch": epoch,
                                   "batch": batch, "batches": BATCHES})
            step += k
            if batch == BATCHES:
                self.view.add_epoch({"epoch": epoch, "loss": 0.3 + 2 / epoch, "accuracy": 1 - 0.5 / epoch,
                                     "val_loss": 0.35 + 2 / epoch, "val_accuracy": 1 - 0.55 / epoch,
                                     "best": True})
        self.step = step
        app.processEvents()
        self.view.set_live(True)        # as during a run: synchronous paints, at most 4 a second
        self.view.plots.viewport().repaint()

    def points(self) -> int:
        return self.view.point_counts()["batch_loss"]

    def update(self) -> float:
        step = self.step
        values = losses_for(step, CHUNK, self.rng).tolist()
        epoch, batch = step // BATCHES + 1, step % BATCHES + CHUNK
        t0 = time.perf_counter()
        self.view.add_batches({"losses": values, "epoch": epoch, "batch": batch, "batches": BATCHES})
        self.view._flush()              # each timed update is a redraw (the app does at most 4 a second)
        self.app.processEvents()        # the metric plot's half of the paint
        t1 = time.perf_counter()
        self.view.plots.viewport().repaint()
        t2 = time.perf_counter()
        self.step += CHUNK
        return t1 - t0, t2 - t0

    def close(self):
        self.view.close()
        self.view.deleteLater()


class Plain:
    def __init__(self, app, points: int, rng, downsample: bool):
        self.app, self.rng = app, rng
        self.name = "plain+ds" if downsample else "plain"
        self.widget = pg.PlotWidget(background=theme.colours()["base"])
        self.widget.resize(1000, 330)
        self.item = pg.PlotDataItem(pen=pg.mkPen("#4c8bf5"))
        if downsample:
            self.item.setDownsampling(auto=True, method="peak")
            self.item.setClipToView(True)
        self.widget.addItem(self.item)
        self.widget.show()
        self.x = np.empty(2 * points + 100_000)
        self.y = np.empty_like(self.x)
        self.x[:points] = np.arange(1, points + 1) / BATCHES
        self.y[:points] = losses_for(0, points, rng)
        self.n = points
        self.item.setData(self.x[:self.n], self.y[:self.n])
        app.processEvents()
        self.widget.viewport().repaint()

    def points(self) -> int:
        return len(self.item.getOriginalDataset()[0])

    def update(self) -> float:
        end = self.n + CHUNK
        self.x[self.n:end] = np.arange(self.n + 1, end + 1) / BATCHES
        self.y[self.n:end] = losses_for(self.n, CHUNK, self.rng)
        t0 = time.perf_counter()
        self.item.setData(self.x[:end], self.y[:end])
        self.app.processEvents()
        t1 = time.perf_counter()
        self.widget.viewport().repaint()
        t2 = time.perf_counter()
        self.n = end
        return t1 - t0, t2 - t0

    def close(self):
        self.widget.close()
        self.widget.deleteLater()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 12, quick 4)")
    parser.add_argument("--block", type=int, default=20, help="updates per candidate per round")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 12)

    app = QApplication.instance() or QApplication([])
    theme.apply(app, dark=True)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    candidates = [Widget(app, args.points, rng)]
    fill_s = time.perf_counter() - t0
    candidates += [Plain(app, args.points, rng, downsample=False), Plain(app, args.points, rng, downsample=True)]
    for c in candidates:   # warm-up
        for _ in range(5):
            c.update()
    events: dict[str, list[float]] = {c.name: [] for c in candidates}
    full: dict[str, list[float]] = {c.name: [] for c in candidates}
    for r in range(rounds):
        order = candidates[r % 3:] + candidates[:r % 3]
        for c in order:
            for _ in range(args.block):
                a, b = c.update()
                events[c.name].append(a * 1e3)
                full[c.name].append(b * 1e3)

    print(f"bench_curves: {args.points:,} batch points to start, +{CHUNK} per update, {rounds} rounds x "
          f"{args.block} updates, interleaved; Qt platform {os.environ['QT_QPA_PLATFORM']}")
    print(f"filling the widget with {args.points:,} points through add_batches ({args.points // BATCHES} reports "
          f"of {BATCHES}): {fill_s:.2f} s")
    for title, times in (("update = add + one live redraw (plain: setData + processEvents)", events),
                         ("update + a forced full repaint of the viewport (a second paint)", full)):
        print()
        print(title)
        print(f"  {'candidate':<12} {'points at end':>13} {'median ms':>10} {'p99 ms':>8} {'IQR ms':>13}   "
              "ratio (median)")
        base = {name: statistics.median(v) for name, v in times.items()}
        for c in candidates:
            v = times[c.name]
            ratio = " / ".join(f"{base[c.name] / base[b]:.2f} vs {b}" for b in ("plain", "plain+ds") if b != c.name)
            print(f"  {c.name:<12} {c.points():>13,} {base[c.name]:>10.2f} {pct(v, 99):>8.2f} "
                  f"{pct(v, 25):>6.2f}-{pct(v, 75):<6.2f}   {ratio}")
    ours = events["CurvesView"]
    verdict = "ok" if statistics.median(ours) < TARGET_MS else "MISSED"
    print()
    print(f"check: CurvesView update at {args.points:,} points, median {statistics.median(ours):.2f} ms "
          f"(target < {TARGET_MS:.0f} ms), p99 {pct(ours, 99):.2f} ms   {verdict}")
    for c in candidates:
        c.close()
    app.processEvents()


if __name__ == "__main__":
    main()
