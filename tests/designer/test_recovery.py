"""Never lose work, never crash: autosave + restore after a kill, and the crash dialog and log."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from designer import crash
from designer.commands import AddNode, Rename, SetParams
from designer.document import Document
from designer.recovery import ENV_DIR, ENV_INTERVAL, Recovery
from engine.graph import Graph
from engine.project import Project, load_project, save_project
from engine.templates import load_template
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def _clean_qt():
    yield
    QApplication.clipboard().clear()  # offscreen Qt crashes at exit if the clipboard still holds our data
    for w in QApplication.topLevelWidgets():
        if isinstance(w, QMessageBox):
            w.close()


def click_when_shown(qtbot, object_name: str, button_text: str, seen: list) -> None:
    """Poll (from the event loop the modal box runs) for a message box and click one of its buttons."""
    def poll():
        for w in QApplication.topLevelWidgets():
            if isinstance(w, QMessageBox) and w.objectName() == object_name and w.isVisible():
                seen.append(w.text())
                for b in w.buttons():
                    if b.text() == button_text:
                        b.click()
                        return
        QTimer.singleShot(20, poll)
    QTimer.singleShot(0, poll)


def edited_document() -> Document:
    doc = Document()
    doc.replace(Project(load_template("digits_mlp")), None)
    doc.undo_stack.push(AddNode(doc.graph, "Dropout", (10.0, 20.0), {"p": 0.3}, "drop"))
    return doc


# ----------------------------------------------------------------------------- autosave life cycle

def test_autosave_writes_the_whole_project_only_when_there_is_something_new(tmp_path, qtbot):
    doc = Document()
    doc.replace(Project(load_template("digits_mlp")), None)
    rec = Recovery(doc, tmp_path, interval_ms=60_000)
    try:
        assert not rec.autosave() and not rec.file.exists()            # nothing changed
        doc.project.config = TrainConfig(epochs=3, lr=0.05)
        doc.project.weights = {"w": torch.arange(6.0).reshape(2, 3)}
        doc.undo_stack.push(AddNode(doc.graph, "Dropout", (1.0, 2.0), {"p": 0.3}, "drop"))
        assert rec.autosave() and rec.file.exists() and rec.meta.exists()
        saved = load_project(rec.file)
        assert saved.graph.to_dict() == doc.graph.to_dict()
        assert saved.config == doc.project.config and torch.equal(saved.weights["w"], doc.project.weights["w"])
        assert json.loads(rec.meta.read_text())["original"] is None
        assert not rec.autosave()                                         # no edit since: not written again
        doc.undo_stack.push(Rename(doc.graph, doc.graph.find("drop").id, "dropout layer"))
        assert rec.autosave() and load_project(rec.file).graph.find("dropout layer") is not None
        doc.undo_stack.undo()
        doc.undo_stack.undo()                                             # back to the saved state
        assert not rec.file.exists() and not rec.meta.exists()
    finally:
        rec.close()


def test_the_timer_autosaves_and_saving_or_replacing_removes_the_recovery_file(tmp_path, qtbot):
    doc = edited_document()
    rec = Recovery(doc, tmp_path, interval_ms=50)
    try:
        qtbot.waitUntil(lambda: rec.file.exists(), timeout=5000)
        target = doc.save(tmp_path / "work.deepwire")
        assert not rec.file.exists() and not rec.meta.exists()
        doc.undo_stack.push(AddNode(doc.graph, "Flatten", (0.0, 0.0), None, "flat"))
        qtbot.waitUntil(lambda: rec.file.exists(), timeout=5000)
        assert json.loads(rec.meta.read_text())["original"] == str(target)
        doc.new_empty()                                                   # the user discarded the changes
        assert not rec.file.exists()
    finally:
        rec.close()
    assert not list((tmp_path / "recovery").iterdir()), "a normal end leaves nothing behind"


def test_whenever_a_recovery_file_is_on_disk_so_is_the_file_naming_its_work(tmp_path, qtbot, monkeypatch):
    """The autosave writer used to write the recovery file first and its side file second: a
    designer killed between the two left work that was never offered back."""
    import designer.recovery as recovery_module

    seen = []
    real = recovery_module.save_project

    def save_and_look(path, project):
        seen.append(json.loads(Path(path).with_suffix(".json").read_text())["title"])
        real(path, project)

    monkeypatch.setattr(recovery_module, "save_project", save_and_look)
    doc = edited_document()
    rec = Recovery(doc, tmp_path, interval_ms=60_000)
    try:
        assert rec.autosave()
        assert seen == [doc.title]
    finally:
        rec.close()


def test_a_recovery_file_whose_side_file_is_missing_is_still_offered(tmp_path, qtbot):
    dead = Recovery(edited_document(), tmp_path)
    dead.autosave()
    dead._lock.release(remove=False)                  # the designer was killed...
    dead._lock = None
    dead.meta.unlink()                                # ...and its side file is gone
    rec = Recovery(Document(), tmp_path)
    try:
        orphans = rec.orphans()
        assert [o.session for o in orphans] == [dead.session]
        assert orphans[0].name == "untitled" and orphans[0].original is None
        assert rec.restore(orphans[0])
        assert rec.document.graph.find("drop") is not None          # the edit made before the kill
    finally:
        rec.close()


def test_a_dataset_chosen_after_other_edits_is_autosaved_too(tmp_path, qtbot):
    doc = edited_document()
    doc.set_training_config(TrainConfig(epochs=3))        # a change outside the undo stack: modified since
    rec = Recovery(doc, tmp_path, interval_ms=60_000)
    try:
        assert rec.autosave()
        doc.set_dataset("digits_images")                  # the document was already modified
        assert rec.autosave(), "the new dataset was not written"
        assert load_project(rec.file).dataset == "digits_images"
    finally:
        rec.close()


def test_a_running_designers_autosave_is_not_offered_to_another(tmp_path, qtbot):
    first = Recovery(edited_document(), tmp_path)
    second = Recovery(Document(), tmp_path)
    try:
        assert first.autosave()
        assert second.orphans() == []                     # its lock is held: that designer is alive
        first._lock.release(remove=False)                 # as the OS does when the process dies
        first._lock = None
        assert [o.session for o in second.orphans()] == [first.session]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("answer", ["Discard", "Not Now"])
def test_discard_deletes_the_autosave_and_not_now_keeps_it(answer, tmp_path, qtbot):
    dead = Recovery(edited_document(), tmp_path)
    dead.autosave()
    dead._lock.release(remove=False)
    dead._lock = None
    doc = Document()
    doc.new_empty()
    rec = Recovery(doc, tmp_path)
    seen: list = []
    try:
        click_when_shown(qtbot, "deepwire-restore", answer, seen)
        assert rec.offer_restore() is False
        assert seen and "did not close normally" in seen[0]
        assert len(doc.graph) == 0 and not doc.modified
        assert dead.file.exists() == (answer == "Not Now")
        assert len(rec.orphans()) == (answer == "Not Now")
    finally:
        rec.close()


def test_a_damaged_recovery_file_is_reported_and_removed(tmp_path, qtbot, monkeypatch):
    dead = Recovery(edited_document(), tmp_path)
    dead.autosave()
    dead._lock.release(remove=False)
    dead._lock = None
    dead.file.write_bytes(b"PK\x03\x04 not a zip any more")
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    rec = Recovery(Document(), tmp_path)
    try:
        click_when_shown(qtbot, "deepwire-restore", "Restore", [])
        assert rec.offer_restore() is False
        assert warnings and "cannot be read" in warnings[0]
        assert not dead.file.exists() and rec.orphans() == []
    finally:
        rec.close()


# ----------------------------------------------------------------------------- kill, start again, restore

FIRST_START = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    from PySide6.QtCore import QPointF, QTimer
    from PySide6.QtWidgets import QApplication
    from designer.app import start
    from designer.commands import Rename, SetParams
    from engine.training import TrainConfig

    project_file, expected_file = Path(sys.argv[1]), Path(sys.argv[2])
    window = start([str(project_file)])            # opens the saved project, as `python main.py FILE` does
    doc = window.document
    doc.project.config = TrainConfig(epochs=7, lr=0.02, optimizer="sgd")
    doc.project.weights = {"dense.weight": torch.linspace(-1, 1, 12).reshape(3, 4)}
    new_id = window.scene.add_block("Dropout", QPointF(400.0, 260.0))     # as the palette does
    doc.undo_stack.push(SetParams(doc.graph, new_id, {"p": 0.375}))
    dense = doc.graph.find("dense").id
    doc.undo_stack.push(SetParams(doc.graph, dense, {"units": 48}))
    doc.undo_stack.push(Rename(doc.graph, dense, "hidden layer"))

    def wait_for_autosave():
        if window.recovery.autosaves and not window.recovery._dirty:
            expected = {"graph": doc.graph.to_dict(), "config": doc.project.config.to_dict(),
                        "weights": {k: v.tolist() for k, v in doc.project.weights.items()},
                        "session": window.recovery.session}
            expected_file.write_text(json.dumps(expected))
            return                                     # then idle in the event loop until killed
        QTimer.singleShot(20, wait_for_autosave)

    wait_for_autosave()
    sys.exit(QApplication.instance().exec())
""")


@pytest.mark.slow
@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_work_survives_a_kill_and_is_restored_exactly_on_the_next_start(tmp_path, qtbot, monkeypatch):
    state = tmp_path / "state"
    project_file = tmp_path / "work.deepwire"
    save_project(project_file, Project(load_template("digits_mlp")))
    on_disk = project_file.read_bytes()
    expected_file = tmp_path / "expected.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               **{ENV_DIR: str(state), ENV_INTERVAL: "200"})
    proc = subprocess.Popen([sys.executable, "-c", FIRST_START, str(project_file), str(expected_file)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not expected_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the first start never autosaved"
            time.sleep(0.05)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    expected = json.loads(expected_file.read_text())
    assert project_file.read_bytes() == on_disk, "the autosave never touches the user's file"
    assert (state / "recovery" / f"{expected['session']}.deepwire").exists()

    # the second start, the same code path `python main.py` runs (designer.app.start), in this process
    monkeypatch.setenv(ENV_DIR, str(state))
    seen: list = []
    click_when_shown(qtbot, "deepwire-restore", "Restore", seen)
    from designer.app import start

    window = start([], settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(window)
    window.maybe_save = lambda: True
    try:
        assert seen and "work.deepwire" in seen[0]
        doc = window.document
        assert doc.graph.to_dict() == expected["graph"]
        assert doc.project.config.to_dict() == expected["config"]
        assert {k: v.tolist() for k, v in doc.project.weights.items()} == expected["weights"]
        assert doc.path == project_file and doc.modified and "•" in window.windowTitle()
        assert window.recovery.file.exists(), "the restored work is protected again at once"
        assert not (state / "recovery" / f"{expected['session']}.deepwire").exists()
        window.document.save()
        assert not window.recovery.file.exists()
        assert load_project(project_file).graph.to_dict() == expected["graph"]
    finally:
        window.recovery.close()
        crash.uninstall()
    assert sorted(p.name for p in (state / "recovery").iterdir()) == []


# ----------------------------------------------------------------------------- crash handler

@pytest.fixture
def handler(tmp_path):
    h = crash.CrashHandler(tmp_path, show_dialog=True).install()
    yield h
    h.uninstall()
    for handler_ in list(crash.log.handlers):
        if isinstance(handler_, logging.handlers.RotatingFileHandler):
            handler_.close()
            crash.log.removeHandler(handler_)


def boom():
    raise ZeroDivisionError("the slot divided by zero")


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_slot_is_logged_and_shown_and_the_app_goes_on(handler, qtbot, tmp_path):
    QTimer.singleShot(0, boom)
    qtbot.waitUntil(lambda: handler.dialog is not None and handler.dialog.isVisible(), timeout=5000)
    box = handler.dialog
    assert box.objectName() == "deepwire-crash"
    assert "ZeroDivisionError: the slot divided by zero" in box.text()
    assert "Traceback" in box.detailedText() and "def boom" not in box.detailedText()
    assert "in boom" in box.detailedText()
    log_text = (tmp_path / "logs" / "deepwire.log").read_text(encoding="utf-8")
    assert "ZeroDivisionError: the slot divided by zero" in log_text and "in boom" in log_text
    copy = next(b for b in box.buttons() if b.text() == "Copy Details")
    copy.click()
    assert "in boom" in QApplication.clipboard().text() and box.isVisible(), "copying keeps the box open"
    ticks = []
    QTimer.singleShot(0, lambda: ticks.append(1))                 # the event loop still runs
    qtbot.waitUntil(lambda: bool(ticks), timeout=2000)


@pytest.mark.qt_no_exception_capture
def test_repeated_errors_open_one_dialog_at_a_time_and_at_most_a_few(handler, qtbot):
    for _ in range(30):
        QTimer.singleShot(0, boom)
    qtbot.waitUntil(lambda: len(handler.reports) == 30, timeout=5000)
    qtbot.wait(50)
    boxes = [w for w in QApplication.topLevelWidgets() if w.objectName() == "deepwire-crash" and w.isVisible()]
    assert len(boxes) == 1 and handler.dialogs_shown == 1
    for _ in range(10):
        if handler.dialog is not None:
            handler.dialog.close()
        QTimer.singleShot(0, boom)
        qtbot.wait(30)
    assert handler.dialogs_shown == crash.MAX_DIALOGS


@pytest.mark.qt_no_exception_capture
def test_an_error_in_another_thread_is_shown_in_the_gui_thread(handler, qtbot):
    t = threading.Thread(target=boom, name="worker-7")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: handler.dialog is not None, timeout=5000)
    assert "thread worker-7" in handler.dialog.text()
    assert handler.reports[-1].where == "thread worker-7"


@pytest.mark.qt_no_exception_capture
def test_a_failing_dialog_does_not_recurse_or_raise(handler, qtbot, tmp_path, monkeypatch):
    calls = []

    def broken_dialog(report):
        calls.append(report)
        raise RuntimeError("the dialog cannot be built")

    monkeypatch.setattr(handler, "_make_dialog", broken_dialog)
    QTimer.singleShot(0, boom)
    qtbot.waitUntil(lambda: bool(calls), timeout=5000)
    qtbot.wait(50)
    assert len(calls) == 1 and handler.dialog is None
    log_text = (tmp_path / "logs" / "deepwire.log").read_text(encoding="utf-8")
    assert "the error dialog itself failed" in log_text and "the dialog cannot be built" in log_text


def test_an_error_while_reporting_is_swallowed_not_raised(tmp_path, capfd):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    h = crash.CrashHandler(None, show_dialog=False)
    report = h.handle(Unprintable, Unprintable(), None)
    assert report is not None and report.summary.startswith("Unprintable")
    h._busy.active = True                               # as if already handling an error on this thread
    assert h.handle(ValueError, ValueError("nested"), None) is None
    assert "another error while reporting" in capfd.readouterr().err


def test_the_log_rotates(tmp_path):
    h = crash.CrashHandler(tmp_path, show_dialog=False)
    try:
        for i in range(300):
            try:
                raise ValueError("x" * 20_000 + str(i))
            except ValueError as exc:
                h.handle(type(exc), exc, exc.__traceback__)
        logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
        assert logs == ["deepwire.log", "deepwire.log.1", "deepwire.log.2", "deepwire.log.3"]
        assert all(p.stat().st_size <= crash.LOG_BYTES + 50_000 for p in (tmp_path / "logs").iterdir())
    finally:
        for handler_ in list(crash.log.handlers):
            handler_.close()
            crash.log.removeHandler(handler_)


def test_graph_of_a_document_that_was_never_saved_is_restored_untitled(tmp_path, qtbot):
    doc = Document(Graph("draft"))
    dead = Recovery(doc, tmp_path)
    doc.undo_stack.push(AddNode(doc.graph, "Input", (0.0, 0.0), {"shape": [4]}, "x"))
    doc.undo_stack.push(SetParams(doc.graph, doc.graph.find("x").id, {"shape": [5]}))
    assert dead.autosave()
    dead._lock.release(remove=False)
    dead._lock = None
    fresh = Document()
    rec = Recovery(fresh, tmp_path)
    try:
        click_when_shown(qtbot, "deepwire-restore", "Restore", [])
        assert rec.offer_restore() is True
        assert fresh.graph.to_dict() == doc.graph.to_dict() and fresh.path is None and fresh.modified
        fresh.undo_stack.undo()                   # nothing to undo: still modified, still protected
        assert fresh.modified and rec.file.exists()
    finally:
        rec.close()
        dead.close()


def test_changes_outside_the_undo_stack_are_autosaved_too(tmp_path, qtbot):
    """Training settings and a new run's weights change the project without an undo step."""
    doc = Document()
    doc.replace(Project(load_template("digits_mlp")), None)
    rec = Recovery(doc, tmp_path)
    try:
        doc.project.config = TrainConfig(epochs=12)
        doc.mark_changed()
        assert rec.autosave() and load_project(rec.file).config.epochs == 12
        assert not rec.autosave()
        doc.project.weights = {"w": torch.ones(2)}          # a second run: no signal, but new weights
        assert rec.autosave() and torch.equal(load_project(rec.file).weights["w"], torch.ones(2))
        doc.save(tmp_path / "saved.deepwire")
        assert not rec.file.exists()
    finally:
        rec.close()


def test_a_background_autosave_writes_the_project_as_it_was_and_keeps_later_edits(tmp_path, qtbot):
    """The timer's autosave is written by a thread (large weights never stall the window)."""
    doc = Document()
    doc.replace(Project(load_template("digits_mlp")), None)
    rec = Recovery(doc, tmp_path)
    try:
        doc.project.weights = {"w": torch.zeros(4_000_000)}        # 16 MB to write
        doc.project.config = TrainConfig(epochs=20)
        doc.mark_changed()
        assert rec.autosave_in_background()
        doc.project.config = TrainConfig(epochs=21)                  # edited while it is written
        doc.mark_changed()
        rec.wait()
        assert load_project(rec.file).config.epochs == 20            # the copy taken when it started
        assert rec.autosave() and load_project(rec.file).config.epochs == 21   # the edit comes next
        doc.project.config = TrainConfig(epochs=22)
        doc.mark_changed()
        assert rec.autosave_in_background()
        rec.discard()                                                # saved meanwhile: waits, then removes
        assert not rec.file.exists() and not rec.meta.exists()
    finally:
        rec.close()
