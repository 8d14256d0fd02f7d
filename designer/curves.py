"""Live training curves: loss (per batch, smoothed, per epoch, validation) and a metric plot.

The batch losses live in preallocated numpy arrays that double when full, so feeding a batch
report costs an append, and the curves get views of those arrays (no list -> array copies).
Reports that arrive in a burst are coalesced: `add_batches` only marks the batch curves dirty
and a zero-delay timer hands the data to pyqtgraph once per pass of the event loop. The long
curves draw with pyqtgraph's automatic peak downsampling and clip to the visible x range.

x is in epochs: batch b of B in epoch e sits at e - 1 + b / B, the epoch's own points at e.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QGraphicsView, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from designer import theme

TRAIN_COLOUR = "#4c8bf5"
VAL_COLOUR = "#f08c3a"
BEST_COLOUR = "#f5c542"
# muted, distinct colours for the runs drawn for comparison
OVERLAY_COLOURS = ("#8fa3bf", "#b39ddb", "#7fbfb5", "#c9a97c", "#d99a9a", "#9cc79a", "#c7a2c4", "#a0b8c9")
HOVER_PIXELS = 14          # how close (in pixels) the cursor must be to an epoch point to name it
CLASSIFICATION = ("multiclass", "binary")


class Series:
    """x/y float64 arrays that grow by doubling; `x`/`y` are views of the filled part."""

    __slots__ = ("_x", "_y", "n")

    def __init__(self, capacity: int = 1024):
        self._x = np.empty(capacity)
        self._y = np.empty(capacity)
        self.n = 0

    def extend(self, xs, ys) -> None:
        k = len(xs)
        end = self.n + k
        if end > len(self._x):
            capacity = max(end, 2 * len(self._x))
            x, y = np.empty(capacity), np.empty(capacity)
            x[:self.n], y[:self.n] = self._x[:self.n], self._y[:self.n]
            self._x, self._y = x, y
        self._x[self.n:end] = xs
        self._y[self.n:end] = ys
        self.n = end

    def append(self, x: float, y: float) -> None:
        self.extend((x,), (y,))

    def clear(self) -> None:
        # fresh arrays: pyqtgraph may still hold views of the old ones until the next setData
        self._x, self._y, self.n = np.empty(1024), np.empty(1024), 0

    @property
    def x(self) -> np.ndarray:
        return self._x[:self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[:self.n]

    def __len__(self) -> int:
        return self.n


def smoothing_for(batches_per_epoch: int | None) -> float:
    """EMA factor: a span of about a tenth of an epoch, between 10 and 100 batches."""
    span = min(100.0, max(10.0, (batches_per_epoch or 100) / 10))
    return 1.0 - 1.0 / span


class Ema:
    """Exponential moving average with bias correction (TensorBoard's smoothing): every output is
    a weighted mean of the inputs so far, so it lies between their minimum and maximum."""

    def __init__(self, beta: float = 0.95):
        self.beta = beta
        self.value = 0.0
        self.weight = 0.0

    def reset(self, beta: float | None = None) -> None:
        if beta is not None:
            self.beta = beta
        self.value = self.weight = 0.0

    def feed(self, values) -> list[float]:
        b, v, w = self.beta, self.value, self.weight
        out = []
        for x in values:
            if not math.isfinite(x):
                out.append(v / w if w else float("nan"))
                continue
            v = b * v + (1 - b) * x
            w = b * w + (1 - b)
            out.append(v / w)
        self.value, self.weight = v, w
        return out


def _finite(value) -> float | None:
    """A number that can be drawn, else None (a saved run holds null where a value was not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _values(values) -> np.ndarray:
    """Losses as float64, with NaN where a saved value is null or not a number."""
    return np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values],
                    dtype=float)


def _pen(colour: str, width: float = 1.5, alpha: int = 255, style=Qt.SolidLine):
    c = QColor(colour)
    c.setAlpha(alpha)
    return pg.mkPen(c, width=width, style=style)


def _brush(colour: str, alpha: int = 255):
    c = QColor(colour)
    c.setAlpha(alpha)
    return pg.mkBrush(c)


def _blend(colour: str, background: str, amount: float) -> QColor:
    """`colour` laid over `background` at `amount` opacity, as an opaque colour (cheaper to draw than alpha)."""
    a, b = QColor(colour), QColor(background)
    mix = lambda u, v: round(u * amount + v * (1 - amount))
    return QColor(mix(a.red(), b.red()), mix(a.green(), b.green()), mix(a.blue(), b.blue()))


def _fmt(value) -> str:
    """A value as shown: inf / nan as such; None (saved as null because it was not finite) as "not finite"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not finite"
    if not math.isfinite(value):
        return str(float(value))
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.3e}"


# The live batch curves are redrawn at most this often. Every redraw runs pyqtgraph's Python
# paint code on the UI thread, which holds the GIL the training thread needs: redrawn at the
# report rate (20 Hz) the curves cost the digits MLP 70% of its training speed.
LIVE_REDRAW_MS = 250
MARKER_EPOCHS = 50      # beyond this many epochs the training curves are drawn without markers
# And while a run goes on the plots are painted only when this code asks, synchronously. A paint
# started by the event loop enters Python once per item (paint, boundingRect, ...), and each
# entry waits for the GIL the training thread holds: hundreds of hand-overs per frame, which
# cost the digits MLP 60% of its speed. Painted from Python, the UI thread keeps the GIL for the
# whole frame, except where PySide6 releases it around a drawing call.

class CurvesView(QWidget):
    """Loss and metric curves of the live run, a saved run's history, and other runs to compare."""

    epochClicked = Signal(str, int)   # (run id, epoch): the user clicked an epoch point

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id = ""
        self.task = "multiclass"
        self._batches = None
        self._ema = Ema(smoothing_for(None))
        self._dirty = False
        self._vertical = None
        self._overlay_items: list[tuple[pg.PlotItem, pg.PlotDataItem]] = []
        self._best_epoch: int | None = None
        self.hover_text = ""

        self.batch = Series()        # raw batch losses
        self.smooth = Series()       # their EMA, same x
        self.smooth_line = Series()  # the EMA as drawn: one point per report (it is smooth; ~50x fewer points)
        self.epoch_loss = Series()
        self.val_loss = Series()
        self.accuracy = Series()     # training accuracy (%), classification
        self.val_metric = Series()   # validation accuracy (%) or validation MAE

        self.log_check = QCheckBox("Log scale")
        self.log_check.setToolTip("Show the loss on a logarithmic axis")
        self.log_check.toggled.connect(self.set_log_scale)
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Show all the curves again after zooming or panning (or double-click a plot)")
        self.fit_button.clicked.connect(self.fit)
        self.status = QLabel("")
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 0)
        bar.addWidget(self.log_check)
        bar.addWidget(self.fit_button)
        bar.addStretch(1)
        bar.addWidget(self.status)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setMinimumSize(240, 160)
        self.loss_plot = pg.PlotItem()
        self.metric_plot = pg.PlotItem()
        # x follows the run in whole epochs (set here, not by autorange: a range that moved with every
        # report would make pyqtgraph downsample twice per update and redraw the axes each time);
        # y autoranges. Zooming or panning by hand stops the following until Fit or a double-click.
        self._follow = True
        self._x_extent = None
        for plot in (self.loss_plot, self.metric_plot):
            plot.setLabel("bottom", "epoch")
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.vb.setLimits(xMin=0)
            plot.vb.enableAutoRange(x=False, y=True)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            for side in ("left", "bottom"):
                # grid lines at the major ticks only, drawn opaque by the axes (see apply_theme)
                plot.getAxis(side).setStyle(maxTickLevel=0)
                plot.getAxis(side).setTickDensity(1.8)
                plot.getAxis(side).setGrid(255)
            plot.vb.sigRangeChangedManually.connect(self._manual_range)
        self.metric_plot.setXLink(self.loss_plot)
        self.plots.scene().sigMouseClicked.connect(self._scene_clicked)
        self.loss_legend = self.loss_plot.addLegend(offset=(-8, 8))
        self.metric_legend = self.metric_plot.addLegend(offset=(-8, -8))

        self.batch_item = self._curve(self.loss_plot, TRAIN_COLOUR, width=1, name=None)
        self.smooth_item = self._curve(self.loss_plot, TRAIN_COLOUR, width=1.6, name="train (smoothed)")
        self.epoch_loss_item = self._curve(self.loss_plot, TRAIN_COLOUR, width=1, style=Qt.DashLine,
                                           symbol="o", name="train (epoch)")
        self.val_loss_item = self._curve(self.loss_plot, VAL_COLOUR, width=2, symbol="o", name="validation")
        self.accuracy_item = self._curve(self.metric_plot, TRAIN_COLOUR, width=1.6, symbol="o", name="train")
        self.val_metric_item = self._curve(self.metric_plot, VAL_COLOUR, width=2, symbol="o", name="validation")
        self.best_item = pg.ScatterPlotItem(symbol="star", size=16, pen=pg.mkPen("#000000", width=0.5),
                                            brush=_brush(BEST_COLOUR))
        self.best_item.setZValue(10)
        self.loss_plot.addItem(self.best_item, ignoreBounds=True)
        for item in (self.batch_item, self.smooth_item):
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            item.setSkipFiniteCheck(True)
        for item in self._epoch_items():
            item.sigPointsClicked.connect(self._points_clicked)
        self._hover = {plot: pg.TextItem(anchor=(0, 1)) for plot in (self.loss_plot, self.metric_plot)}
        for plot, text in self._hover.items():
            text.setZValue(20)
            text.hide()
            plot.addItem(text, ignoreBounds=True)
        self._mouse_proxy = pg.SignalProxy(self.plots.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        self._sync_legends()

        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._last_flush = 0.0
        self._live = False
        self._second_half = None
        self._y_ranges: dict = {}
        self._second_timer = QTimer(self)
        self._second_timer.setSingleShot(True)
        self._second_timer.setInterval(0)
        self._second_timer.timeout.connect(self._paint_second_half)
        self._epochs_dirty = False
        self._planned_epochs: int | None = None
        self._flush_timer.timeout.connect(self._flush)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.plots, 1)
        self._arrange(vertical=False)
        self._set_titles()
        self.apply_theme()

    # ------------------------------------------------------------------ construction helpers

    def _curve(self, plot: pg.PlotItem, colour: str, width: float = 1.5, alpha: int = 255, style=Qt.SolidLine,
               symbol: str | None = None, name: str | None = None) -> pg.PlotDataItem:
        kwargs = {}
        if symbol:
            kwargs = {"symbol": symbol, "symbolSize": 7, "symbolBrush": _brush(colour), "symbolPen": None}
        item = pg.PlotDataItem(pen=_pen(colour, width, alpha, style), name=name, **kwargs)
        if symbol:
            item.setCurveClickable(False)
        plot.addItem(item)
        return item

    def _epoch_items(self):
        return (self.epoch_loss_item, self.val_loss_item, self.accuracy_item, self.val_metric_item)

    def _arrange(self, vertical: bool) -> None:
        if vertical == self._vertical:
            return
        layout = self.plots.ci
        for plot in (self.loss_plot, self.metric_plot):
            if plot in layout.items:
                layout.removeItem(plot)
        layout.addItem(self.loss_plot, row=0, col=0)
        layout.addItem(self.metric_plot, row=1 if vertical else 0, col=0 if vertical else 1)
        self._vertical = vertical

    def resizeEvent(self, event):
        super().resizeEvent(event)
        size = event.size()
        self._arrange(vertical=size.width() < 1.2 * size.height())

    def _set_titles(self) -> None:
        text = theme.colours()["text"]
        self.loss_plot.setTitle("Loss", color=text, size="10pt")
        metric = "Accuracy (%)" if self.task in CLASSIFICATION else "Validation MAE"
        self.metric_plot.setTitle(metric, color=text, size="10pt")

    def apply_theme(self) -> None:
        """Take the current designer.theme colours (call again after the theme changes)."""
        c = theme.colours()
        self.plots.setBackground(c["base"])
        for plot in (self.loss_plot, self.metric_plot):
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen(_blend(c["muted"], c["base"], 0.3)))   # the axis line and its grid
                axis.setTextPen(pg.mkPen(c["text"]))
        for legend in (self.loss_legend, self.metric_legend):
            legend.setLabelTextColor(c["text"])
            for _, label in legend.items:
                label.setText(label.text)   # LabelItem re-renders its HTML only on setText
            legend.updateSize()
            back = QColor(c["alt"])
            back.setAlpha(200)
            legend.setBrush(pg.mkBrush(back))
            legend.setPen(pg.mkPen(c["node_border"]))
        for text in self._hover.values():
            text.setColor(c["text"])
            back = QColor(c["alt"])
            back.setAlpha(230)
            text.fill = pg.mkBrush(back)
            text.border = pg.mkPen(c["node_border"])
        self.status.setStyleSheet(f"color: {c['muted']}")
        self.batch_item.setPen(pg.mkPen(_blend(TRAIN_COLOUR, c["base"], 0.3), width=1))
        self._set_titles()

    # ------------------------------------------------------------------ the live run

    def clear(self) -> None:
        """Empty: no live curves, no overlays."""
        self.clear_overlay()
        self._clear_live()
        self.run_id = ""

    def _clear_live(self) -> None:
        for series in (self.batch, self.smooth, self.smooth_line, self.epoch_loss, self.val_loss, self.accuracy,
                       self.val_metric):
            series.clear()
        self._batches = None
        self._best_epoch = None
        self._planned_epochs = None
        self._epochs_dirty = False
        self._ema.reset(smoothing_for(None))
        self._dirty = False
        self._flush_timer.stop()
        for item in (self.batch_item, self.smooth_item, *self._epoch_items()):
            item.setData([], [])
        self.best_item.setData([], [])
        self._sync_legends()
        for text in self._hover.values():
            text.hide()
        self.hover_text = ""
        self.status.setText("")
        self._follow = True
        self._update_x_range()
        self.loss_plot.vb.enableAutoRange(y=True)
        self.metric_plot.vb.enableAutoRange(y=True)

    def start_run(self, run_id: str, task: str, epochs: int | None = None) -> None:
        """A new live run: clear its traces (the overlays of other runs stay). With `epochs` (the
        planned count) the x axis shows the whole run from the start and never moves."""
        self._clear_live()
        self.run_id = run_id
        self.task = task
        self._planned_epochs = epochs
        self._x_extent = None
        self._update_x_range()
        self._set_titles()

    def add_batches(self, info: dict) -> None:
        """A batch_end report: its `losses` are the batches `batch - len(losses) + 1 .. batch`."""
        losses = info.get("losses") or []
        if not losses:
            return
        batches = int(info["batches"])
        if batches != self._batches:
            if self._batches is None and not len(self.batch):
                self._ema.reset(smoothing_for(batches))
            self._batches = batches
        epoch, last = int(info["epoch"]), int(info["batch"])
        first = last - len(losses) + 1
        xs = (epoch - 1) + np.arange(first, last + 1, dtype=float) / batches
        self.batch.extend(xs, losses)
        smoothed = self._ema.feed(losses)
        self.smooth.extend(xs, smoothed)
        self.smooth_line.append(xs[-1], smoothed[-1])
        self._schedule()

    def show_progress(self, info: dict) -> None:
        """The header line for a batch_end report already added: the panel calls this when it shows
        the same report, so the two never name different batches."""
        if not len(self.smooth):
            return
        self.status.setText(f"epoch {int(info['epoch'])} · batch {int(info['batch'])}/{int(info['batches'])} · "
                            f"loss {_fmt(self.smooth.y[-1])}")

    def _schedule(self) -> None:
        if not self._dirty:
            self._dirty = True
            since = (time.perf_counter() - self._last_flush) * 1000
            self._flush_timer.start(int(max(0.0, LIVE_REDRAW_MS - since)))

    def set_live(self, on: bool) -> None:
        """During a run (on): repaint only at the redraw rate, synchronously (see LIVE_REDRAW_MS)."""
        self._live = bool(on)
        self.plots.setViewportUpdateMode(QGraphicsView.NoViewportUpdate if on
                                         else QGraphicsView.MinimalViewportUpdate)
        self._y_ranges = {}
        for plot in (self.loss_plot, self.metric_plot):   # live: y moves in steps (see _live_y_ranges)
            plot.vb.enableAutoRange(y=not on and self._follow)
        if not on:
            self._flush()
            self.plots.viewport().update()

    def _live_y_ranges(self) -> None:
        """During a run the y ranges move in steps, not with every report: a new range makes
        pyqtgraph redo the axes and the curves' downsampling, the larger part of a redraw. A range
        changes when the data leaves it or fills less than 60% of it, and then leaves room below
        (losses fall) so the next few reports fit."""
        if not self._follow:
            return
        groups = ((self.loss_plot, (self.batch, self.epoch_loss, self.val_loss)),
                  (self.metric_plot, (self.accuracy, self.val_metric)))
        for plot, series in groups:
            arrays = [s.y for s in series if len(s)]
            arrays += [item.getOriginalDataset()[1] for p, item in self._overlay_items if p is plot
                       and item.getOriginalDataset()[1] is not None]
            values = np.concatenate(arrays) if arrays else np.empty(0)
            values = values[np.isfinite(values)]
            if plot is self.loss_plot and self.log_scale():
                values = np.log10(values[values > 0])
            if not len(values):
                continue
            lo, hi = float(values.min()), float(values.max())
            span = max(hi - lo, 1e-9 * max(1.0, abs(hi)))
            current = self._y_ranges.get(plot)
            if current is None or lo < current[0] or hi > current[1] or span < 0.6 * (current[1] - current[0]):
                below, above = (0.15, 0.04) if plot is self.loss_plot else (0.08, 0.12)   # accuracy rises
                current = (lo - below * span, hi + above * span)
                self._y_ranges[plot] = current
                plot.vb.setYRange(*current, padding=0)

    def _paint_now(self, metric: bool = True) -> None:
        """Paint the loss plot now and the metric plot (when it changed) on the next pass of the
        event loop: two short stalls of the UI thread instead of one twice as long."""
        if not (self._live and self.plots.isVisible()):
            return
        first, second = (self.plots.mapFromScene(plot.sceneBoundingRect()).boundingRect().adjusted(-2, -2, 2, 2)
                         for plot in (self.loss_plot, self.metric_plot))
        self.plots.viewport().repaint(first)
        if metric or self._second_half is not None:
            self._second_half = second
            self._second_timer.start()

    def _paint_second_half(self) -> None:
        if self._live and self.plots.isVisible() and self._second_half is not None:
            self.plots.viewport().repaint(self._second_half)
        self._second_half = None

    def _flush(self) -> None:
        """Hand the batch arrays to pyqtgraph: once per pass of the event loop however many reports came."""
        if not self._dirty:
            return
        self._dirty = False
        self._flush_timer.stop()
        self._last_flush = time.perf_counter()
        extent = self._x_extent
        epochs = self._epochs_dirty          # the metric plot changes only with epochs (or the shared x axis)
        if epochs:
            self._epochs_dirty = False
            self._draw_epochs()
        self.batch_item.setData(self.batch.x, self.batch.y)
        self.smooth_item.setData(self.smooth_line.x, self.smooth_line.y)
        self._sync_legends()
        self._update_x_range()
        if self._live:
            self._live_y_ranges()
        self._paint_now(metric=epochs or self._x_extent != extent)

    def add_epoch(self, record: dict) -> None:
        """An epoch_end record (or one entry of a run's history)."""
        self._add_epoch(record)
        if self._live:       # drawn with the next batch redraw (epochs can come 10 times a second)
            self._epochs_dirty = True
            self._schedule()
        else:
            self._draw_epochs()

    def _add_epoch(self, record: dict) -> None:
        epoch = int(record["epoch"])       # values that are not finite (or saved as null) are not drawn
        if (loss := _finite(record.get("loss"))) is not None:
            self.epoch_loss.append(epoch, loss)
        if (val_loss := _finite(record.get("val_loss"))) is not None:
            self.val_loss.append(epoch, val_loss)
        if (accuracy := _finite(record.get("accuracy"))) is not None:
            self.accuracy.append(epoch, 100.0 * accuracy)
        if self.task in CLASSIFICATION:
            if (val_accuracy := _finite(record.get("val_accuracy"))) is not None:
                self.val_metric.append(epoch, 100.0 * val_accuracy)
        elif (val_mae := _finite(record.get("val_mae"))) is not None:
            self.val_metric.append(epoch, val_mae)
        if record.get("best"):
            self._best_epoch = epoch

    def _draw_epochs(self) -> None:
        # long runs: the training curves' epoch markers go (each marker set costs ~0.5 ms a redraw);
        # the validation curves keep theirs, to click an epoch
        markers = "o" if len(self.epoch_loss) <= MARKER_EPOCHS else None
        for item in (self.epoch_loss_item, self.accuracy_item):
            if item.opts["symbol"] != markers:
                item.setSymbol(markers)
        for series, item in ((self.epoch_loss, self.epoch_loss_item), (self.val_loss, self.val_loss_item),
                             (self.accuracy, self.accuracy_item), (self.val_metric, self.val_metric_item)):
            item.setData(series.x, series.y)
        best = self._best_value()
        if best is None:
            self.best_item.setData([], [])
        else:
            y = math.log10(best[1]) if self.loss_plot.vb.state["logMode"][1] and best[1] > 0 else best[1]
            self.best_item.setData([best[0]], [y])
        self._sync_legends()
        self._update_x_range()

    def _best_value(self) -> tuple[int, float] | None:
        if self._best_epoch is None:
            return None
        series = self.val_loss if len(self.val_loss) else self.epoch_loss
        hits = np.nonzero(series.x == self._best_epoch)[0]
        return (self._best_epoch, float(series.y[hits[-1]])) if len(hits) else None

    def set_log_scale(self, on: bool) -> None:
        on = bool(on)
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)   # re-enters through toggled
            return
        self.loss_plot.setLogMode(x=False, y=on)
        self._draw_epochs()
        if self._live:
            self._y_ranges.pop(self.loss_plot, None)
            self._live_y_ranges()
        self._paint_now()

    def log_scale(self) -> bool:
        return bool(self.loss_plot.vb.state["logMode"][1])

    def show_history(self, run_id: str, history: list[dict], batch_losses: list[float] | None = None,
                     batches_per_epoch: int | None = None) -> None:
        """Redraw a finished or saved run from its history (and its batch losses, if kept)."""
        task = self.task
        keys = set().union(*(r.keys() for r in history)) if history else set()
        if {"accuracy", "val_accuracy"} & keys:
            task = "multiclass" if task not in CLASSIFICATION else task
        elif {"val_mae", "val_mse"} & keys:
            task = "regression"
        self.start_run(run_id, task)
        history = [r for r in history if isinstance(r, dict) and isinstance(r.get("epoch"), int)]
        if batch_losses:
            batch_losses = _values(batch_losses)
            n = len(batch_losses)
            per = batches_per_epoch or max(1, round(n / max(1, len(history))))
            self._batches = per
            self._ema.reset(smoothing_for(per))
            xs = np.arange(1, n + 1, dtype=float) / per
            self.batch.extend(xs, batch_losses)
            self.smooth.extend(xs, self._ema.feed(batch_losses))
            stride = max(1, n // 4000)
            keep = np.arange(n - 1, -1, -stride)[::-1]       # every stride-th point, ending with the last
            self.smooth_line.extend(self.smooth.x[keep], self.smooth.y[keep])
            self._dirty = True
            self._flush()
        for record in history:
            self._add_epoch(record)
        self._draw_epochs()
        if history:
            last = history[-1]
            text = f"{len(history)} epochs · loss {_fmt(last.get('loss'))}" if "loss" in last else ""
            if "val_loss" in last:
                text += f" · val loss {_fmt(last['val_loss'])}"
            self.status.setText(text)

    def point_counts(self) -> dict:
        """How many points each live curve holds (the data handed to pyqtgraph)."""
        self._flush()

        def count(item: pg.PlotDataItem) -> int:
            x, _ = item.getOriginalDataset()
            return 0 if x is None else len(x)

        return {"batch_loss": count(self.batch_item), "smoothed_loss": count(self.smooth_item),
                "epoch_loss": count(self.epoch_loss_item), "val_loss": count(self.val_loss_item),
                "accuracy": count(self.accuracy_item), "val_metric": count(self.val_metric_item)}

    def smoothed_losses(self) -> np.ndarray:
        """The EMA at every batch (the drawn line has a point per report)."""
        return self.smooth.y.copy()

    # ------------------------------------------------------------------ comparison with other runs

    def overlay(self, runs: list[tuple[str, list[dict]]]) -> None:
        """Draw other runs' validation loss and validation metric (training loss and accuracy where
        a run had no validation split), dashed, in muted colours, named in the legends."""
        self.clear_overlay()
        classification = self.task in CLASSIFICATION
        for i, (run_id, history) in enumerate(runs):
            colour = OVERLAY_COLOURS[i % len(OVERLAY_COLOURS)]
            history = [r for r in history if isinstance(r, dict) and isinstance(r.get("epoch"), int)]
            epochs = np.array([r["epoch"] for r in history], dtype=float)
            loss_key = "val_loss" if any("val_loss" in r for r in history) else "loss"
            if classification:
                metric_key = "val_accuracy" if any("val_accuracy" in r for r in history) else "accuracy"
                scale = 100.0
            else:
                metric_key, scale = "val_mae", 1.0
            for plot, key, factor in ((self.loss_plot, loss_key, 1.0), (self.metric_plot, metric_key, scale)):
                points = [(e, _finite(r.get(key)) * factor) for e, r in zip(epochs, history)
                          if _finite(r.get(key)) is not None]
                if not points:
                    continue
                xs, ys = zip(*points)
                item = pg.PlotDataItem(xs, ys, pen=_pen(colour, 1.4, 220, Qt.DashLine), symbol="t",
                                       symbolSize=6, symbolBrush=_brush(colour, 220), symbolPen=None,
                                       name=str(run_id))
                item.setZValue(-1)
                plot.addItem(item)
                self._overlay_items.append((plot, item))
        self._sync_legends()
        self._update_x_range()

    def clear_overlay(self) -> None:
        for plot, item in self._overlay_items:
            plot.removeItem(item)     # PlotItem.removeItem also takes it out of the legend
        self._overlay_items = []
        self._update_x_range()

    def _sync_legends(self) -> None:
        """Each legend names the curves its plot draws now, in a fixed order, then the overlays: a
        curve with no points yet (validation before the first epoch, training accuracy of a binary
        or regression run, which the engine does not measure) is not listed."""
        own = ((self.loss_legend, ((self.smooth_item, self.smooth_line), (self.epoch_loss_item, self.epoch_loss),
                                   (self.val_loss_item, self.val_loss))),
               (self.metric_legend, ((self.accuracy_item, self.accuracy), (self.val_metric_item, self.val_metric))))
        for legend, entries in own:
            plot = self.loss_plot if legend is self.loss_legend else self.metric_plot
            wanted = [(item, item.name()) for item, series in entries if len(series)]
            wanted += [(item, item.name()) for p, item in self._overlay_items if p is plot]
            current = [(sample.item, label.text) for sample, label in legend.items]
            if current == wanted:
                continue
            for item, _ in current:
                legend.removeItem(item)
            for item, name in wanted:
                legend.addItem(item, name)

    def legend_names(self, plot: str = "loss") -> list[str]:
        legend = self.loss_legend if plot == "loss" else self.metric_legend
        return [label.text for _, label in legend.items]

    # ------------------------------------------------------------------ the visible range

    def _update_x_range(self) -> None:
        """Show epochs 0..N, N the last epoch any curve reaches (rounded up): changes once per epoch."""
        last = 0.0
        if len(self.batch):
            last = self.batch.x[-1]
        for series in (self.epoch_loss, self.val_loss, self.accuracy, self.val_metric):
            if len(series):
                last = max(last, series.x[-1])
        for _, item in self._overlay_items:
            x, _ = item.getOriginalDataset()
            if x is not None and len(x):
                last = max(last, float(np.max(x)))
        extent = max(1, math.ceil(last - 1e-9), self._planned_epochs or 0)
        if self._follow and extent != self._x_extent:
            self._x_extent = extent
            self.loss_plot.vb.setXRange(0, extent, padding=0.02)

    def fit(self) -> None:
        """Show everything again and follow the run (after the user zoomed or panned)."""
        self._follow = True
        self._x_extent = None
        self._update_x_range()
        if self._live:
            self._y_ranges = {}
            self._live_y_ranges()
        else:
            for plot in (self.loss_plot, self.metric_plot):
                plot.vb.enableAutoRange(y=True)
        self._paint_now()

    def following(self) -> bool:
        return self._follow

    def _manual_range(self, *args) -> None:
        self._follow = False
        self._paint_now()

    def _scene_clicked(self, ev) -> None:
        if ev.double():
            self.fit()

    # ------------------------------------------------------------------ interaction

    def _points_clicked(self, item, points, ev) -> None:
        if len(points) and self.run_id:
            epoch = int(round(points[0].pos().x()))
            self.epochClicked.emit(self.run_id, epoch)

    def epoch_point_scene_pos(self, curve: str, epoch: int) -> QPointF:
        """Where an epoch point of `curve` ("val_loss", "epoch_loss", "accuracy", "val_metric") is drawn,
        in the plots' scene coordinates (for tests and tooltips)."""
        item = {"val_loss": self.val_loss_item, "epoch_loss": self.epoch_loss_item,
                "accuracy": self.accuracy_item, "val_metric": self.val_metric_item}[curve]
        x, y = item.getData()
        i = int(np.nonzero(x == epoch)[0][0])
        return item.getViewBox().mapViewToScene(QPointF(float(x[i]), float(y[i])))

    def _mouse_moved(self, args) -> None:
        pos = args[0]
        self.hover_text = ""
        for plot, text in self._hover.items():
            shown = self._hover_plot(plot, pos) if plot.sceneBoundingRect().contains(pos) else None
            if shown is None:
                text.hide()
                continue
            (x, y), label = shown
            text.setText(label)
            text.setPos(x, y)
            # keep the label inside the plot: anchor it to the left of the point in the right half
            (x0, x1), _ = plot.vb.viewRange()
            text.setAnchor((1, 1) if x > (x0 + x1) / 2 else (0, 1))
            text.show()
            self.hover_text = label
        self._paint_now()

    def leaveEvent(self, event):
        for text in self._hover.values():
            text.hide()
        self.hover_text = ""
        super().leaveEvent(event)

    def _hover_plot(self, plot: pg.PlotItem, pos) -> tuple[tuple[float, float], str] | None:
        vb = plot.vb
        if not vb.sceneBoundingRect().contains(pos):
            return None
        best, best_d = None, HOVER_PIXELS ** 2
        # view -> scene is a scale and an offset: measure it once, then find the nearest point with numpy
        origin, unit = vb.mapViewToScene(QPointF(0.0, 0.0)), vb.mapViewToScene(QPointF(1.0, 1.0))
        sx, sy = unit.x() - origin.x(), unit.y() - origin.y()
        items = [i for i in plot.listDataItems() if isinstance(i, pg.PlotDataItem) and i.opts.get("symbol")]
        for item in items:
            x, y = item.getData()
            if x is None or not len(x):
                continue
            d = (origin.x() + sx * x - pos.x()) ** 2 + (origin.y() + sy * y - pos.y()) ** 2
            k = int(np.nanargmin(d)) if np.isfinite(d).any() else -1
            if k >= 0 and d[k] < best_d:
                best, best_d = (item, float(x[k]), float(y[k])), float(d[k])
        log = plot is self.loss_plot and self.log_scale()
        if best is not None:
            item, x, y = best
            value = 10 ** y if log else y
            name = item.name() or ""
            if plot is self.metric_plot and self.task in CLASSIFICATION:
                shown = f"{value:.2f}%"
            else:
                shown = _fmt(value)
            label = f"epoch {int(round(x))}\n{name}: {shown}"
            if self._best_epoch == int(round(x)) and plot is self.loss_plot:
                label += "  (best)"
            return (x, y), label
        if plot is self.loss_plot and len(self.batch):
            self._flush()
            at = vb.mapSceneToView(pos).x()
            i = int(np.clip(np.searchsorted(self.batch.x, at), 0, len(self.batch) - 1))
            x = float(self.batch.x[i])
            raw, smooth = float(self.batch.y[i]), float(self.smooth.y[i])
            y = math.log10(smooth) if log and smooth > 0 else smooth
            return (x, y), f"epoch {x:.2f}\nbatch loss {_fmt(raw)}\nsmoothed {_fmt(smooth)}"
        return None
