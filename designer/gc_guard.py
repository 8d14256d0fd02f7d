"""Python's cycle collector runs on the GUI thread only.

The designer has Python threads beside the GUI thread (the training session's reader, the
autosave writer). A cyclic collection runs in whichever thread happens to allocate when a
threshold is crossed, and it finalises whatever garbage it finds, Qt wrappers included: a
QObject deleted from a thread that does not own it can crash Qt. (Found by the recovery tests:
an autosave written on a thread collected a dead session's objects, and the next modal dialog
crashed.) So automatic collection is off while the guard runs, and a GUI-thread timer collects
each generation when its threshold is passed, as the interpreter would
(pyqtgraph.util.GarbageCollector does the same).
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self._threshold = gc.get_threshold()
        self._was_enabled = gc.isenabled()

    def start(self, freeze: bool = False) -> GuiThreadCollector:
        """`freeze`: first collect, then leave every object alive now out of later collections
        (gc.freeze): the app's modules, torch's, the window. A full collection of the designer
        took ~160 ms (230,000 objects); after the freeze it takes ~0 ms, so a collection never
        stalls the window."""
        self._threshold = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        if freeze:
            gc.collect()
            gc.freeze()
        gc.disable()
        self.timer.start()
        return self

    def stop(self) -> None:
        """Back to automatic collection, after one full collection here: with a backlog, the
        first automatic one could start inside a Qt object's destructor, and finalising other
        Qt objects there deadlocked (seen in the tests)."""
        self.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def check(self) -> None:
        counts = gc.get_count()
        generation = -1
        for g in range(3):
            if counts[g] > self._threshold[g]:
                generation = g
            else:
                break
        if generation >= 0:
            gc.collect(generation)
