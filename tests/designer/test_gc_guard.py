"""Cyclic garbage is finalised on the GUI thread, however busy other threads are allocating."""
import gc
import threading

from designer.gc_guard import GuiThreadCollector


class Cycle:
    finalised_on: list = []

    def __init__(self):
        self.me = self

    def __del__(self):
        Cycle.finalised_on.append(threading.current_thread().name)


def test_garbage_made_while_another_thread_allocates_is_collected_on_the_gui_thread(qtbot):
    enabled_before = gc.isenabled()                       # (False: the designer conftest runs a guard too)
    guard = GuiThreadCollector(interval_ms=20).start()
    try:
        Cycle.finalised_on.clear()
        gc.collect()
        for _ in range(50):
            Cycle()                                  # unreachable cycles: only the collector frees them

        kept = []

        def allocate():                              # a reader thread unpickling reports, say
            for i in range(20_000):
                kept.append([i])

        worker = threading.Thread(target=allocate, name="busy-worker")
        worker.start()
        worker.join()
        assert Cycle.finalised_on == []              # the worker crossed every threshold, collected nothing
        qtbot.waitUntil(lambda: len(Cycle.finalised_on) == 50, timeout=3000)
        assert set(Cycle.finalised_on) == {threading.main_thread().name}
    finally:
        guard.stop()
    assert gc.isenabled() == enabled_before
