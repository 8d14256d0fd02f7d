"""Endurance: many train / stop cycles in one app session leak neither threads, processes nor memory.

Offscreen, a real MainWindow with the digits MLP. Each cycle clicks Train (500 epochs, so the
run is always stopped), waits for the first batch report, clicks Stop and waits for the run to
end. After a warm-up cycle it records the process's OS thread count (/proc/self/task) and its
resident memory (RSS) after every cycle, and the same for its training process (there must be
one at most, and none once the window is closed).

Targets (issue #7): no leaked threads (the count after the last cycle equals the count after
the warm-up), memory growth under 100 MB over the cycles.

    .venv/bin/python benchmarks/bench_endurance.py              # 30 cycles, ~1 min
    .venv/bin/python benchmarks/bench_endurance.py --cycles 10
    .venv/bin/python benchmarks/bench_endurance.py --json docs/reliability/endurance.json
        # also write the figures where benchmarks/reliability_report.py puts them into docs/RELIABILITY.md

Always exits 0: it is a report, not a test.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from designer import theme  # noqa: E402
from designer.document import Document  # noqa: E402
from designer.gc_guard import GuiThreadCollector  # noqa: E402
from designer.main_window import MainWindow  # noqa: E402


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading
        return threading.active_count()


def children() -> list[int]:
    """This process's child processes (the training process), through /proc; [] elsewhere."""
    pids = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def children_rss_mb() -> float:
    return sum(rss_mb(str(pid)) for pid in children())


def rss_mb(pid: str = "self") -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_for(signal, timeout_ms: int = 60_000) -> tuple:
    loop = QEventLoop()
    got: list = []

    def on(*args):
        got.append(args)
        loop.quit()

    signal.connect(on)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(on)
    if not got:
        raise SystemExit(f"timed out after {timeout_ms} ms")
    return got[0]


def cycle(window: MainWindow) -> float:
    panel = window.training
    started = time.perf_counter()
    loop_batch = panel.session.batch
    panel.train_button.click()
    wait_for(loop_batch)
    panel.stop_button.click()
    wait_for(panel.session.finished)
    QApplication.processEvents()
    return time.perf_counter() - started


def run(cycles: int) -> dict:
    app = QApplication.instance() or QApplication([])
    theme.apply(app, dark=True)
    window = MainWindow(Document(), QSettings(os.devnull, QSettings.IniFormat))
    window.maybe_save = lambda: True
    guard = GuiThreadCollector(parent=window).start(freeze=True)     # as designer.app.start does
    window.document.new_from_template("digits_mlp")
    window.resize(1400, 900)
    window.show()
    panel = window.training
    panel.set_dataset("digits")
    panel.epochs.setValue(500)
    panel.batch_size.setValue(8)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    cycle(window)            # warm-up: torch's thread pool, pyqtgraph's caches
    gc.collect()
    threads0, rss0, child0 = os_threads(), rss_mb(), children_rss_mb()
    threads, rss, seconds, processes = [], [], [], []
    for _ in range(cycles):
        seconds.append(cycle(window))
        gc.collect()
        threads.append(os_threads())
        rss.append(rss_mb())
        processes.append(len(children()))
    child_end = children_rss_mb()
    runs = len(window.document.project.runs)
    guard.stop()
    window.close()
    QApplication.processEvents()
    return {"processes_max": max(processes), "processes_after_close": len(children()),
            "child_rss_start_mb": round(child0, 1), "child_rss_end_mb": round(child_end, 1),
            "child_rss_growth_mb": round(child_end - child0, 1),
            "cycles": cycles, "threads_start": threads0, "threads_end": threads[-1], "threads_max": max(threads),
            "rss_start_mb": round(rss0, 1), "rss_end_mb": round(rss[-1], 1), "rss_max_mb": round(max(rss), 1),
            "rss_growth_mb": round(rss[-1] - rss0, 1), "seconds_per_cycle": round(sum(seconds) / len(seconds), 3),
            "runs_recorded": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(args.cycles)
    leak_ok = (figures["threads_end"] <= figures["threads_start"] and figures["processes_max"] <= 1
               and figures["processes_after_close"] == 0)
    mem_ok = figures["rss_growth_mb"] < 100 and figures["child_rss_growth_mb"] < 100
    print(f"{figures['cycles']} train/stop cycles, {figures['seconds_per_cycle']:.2f} s each; "
          f"{figures['runs_recorded']} runs recorded")
    print(f"OS threads: {figures['threads_start']} after warm-up, {figures['threads_end']} at the end "
          f"(max {figures['threads_max']})  {'ok' if leak_ok else 'MISSED'}")
    print(f"memory (RSS): {figures['rss_start_mb']} MB after warm-up, {figures['rss_end_mb']} MB at the end, "
          f"growth {figures['rss_growth_mb']} MB (target < 100)  {'ok' if mem_ok else 'MISSED'}")
    print(f"training processes: at most {figures['processes_max']} during the cycles, "
          f"{figures['processes_after_close']} after closing the window; its memory (RSS) "
          f"{figures['child_rss_start_mb']} MB after warm-up, {figures['child_rss_end_mb']} MB at the end, "
          f"growth {figures['child_rss_growth_mb']} MB")
    if args.json:
        report = {
            "title": "Train / stop endurance",
            "order": 50,
            "summary": (f"One app session (offscreen, the digits MLP): {figures['cycles']} times, click Train, wait "
                        "for the first batch report, click Stop, wait for the run to end. Threads are the "
                        "process's OS threads; memory is its resident set size, both after a warm-up cycle "
                        "and after every cycle; the same for the training process the runs go to."),
            "rows": [["train / stop cycles", f"{figures['cycles']} ({figures['seconds_per_cycle']:.2f} s each)"],
                     ["runs recorded in the project", str(figures["runs_recorded"])],
                     ["OS threads after the warm-up / at the end / most seen",
                      f"{figures['threads_start']} / {figures['threads_end']} / {figures['threads_max']}"],
                     ["memory (RSS) after the warm-up / at the end",
                      f"{figures['rss_start_mb']} MB / {figures['rss_end_mb']} MB"],
                     ["memory growth over the cycles (target < 100 MB)", f"{figures['rss_growth_mb']} MB"],
                     ["training processes: most at once / after closing the window",
                      f"{figures['processes_max']} / {figures['processes_after_close']}"],
                     ["training process memory (RSS) after the warm-up / at the end (growth)",
                      f"{figures['child_rss_start_mb']} MB / {figures['child_rss_end_mb']} MB "
                      f"({figures['child_rss_growth_mb']} MB)"]],
            "command": f".venv/bin/python benchmarks/bench_endurance.py --cycles {figures['cycles']} --json FILE",
            "ok": bool(leak_ok and mem_ok),
            "measured_at": time.strftime("%Y-%m-%d"),
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
