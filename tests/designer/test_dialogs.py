"""The first hour (issue #14 items 5, 6, 10): the Export dialog, the dataset import's CSV columns and
one-hot note, and reopening the last file at start. Driven as a user would: menu actions, typing,
clicks on the real dialogs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QMessageBox, QPushButton

import designer.main_window as mw
from designer import crash
from designer.commands import AddNode
from designer.dataset_dialog import DatasetImportDialog
from designer.document import Document
from designer.main_window import ExportDialog
from designer.recovery import ENV_DIR, Recovery
from engine.project import Project, save_project
from engine.templates import load_template


@pytest.fixture(autouse=True)
def _no_real_file_dialogs(monkeypatch):
    """A native file dialog left open would block a test: these answer as a cancelled one."""
    monkeypatch.setattr(mw.QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    yield
    for w in QApplication.topLevelWidgets():
        if isinstance(w, (QMessageBox, QDialog)) and w.isVisible():
            w.close()


def when_shown(predicate, action, seconds: float = 8.0) -> None:
    """Once a visible top-level widget matches `predicate`, run `action(widget)` (from the event loop
    of the modal dialog that is showing it). Gives up after `seconds`, closing what is open."""
    deadline = time.monotonic() + seconds

    def poll():
        for w in QApplication.topLevelWidgets():
            if w.isVisible() and predicate(w):
                action(w)
                return
        if time.monotonic() > deadline:
            for w in QApplication.topLevelWidgets():
                if isinstance(w, QDialog) and w.isVisible():
                    w.reject()
            return
        QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def answer_box(name: str, button_text: str, seen: list) -> None:
    """Click `button_text` in the message box called `name` once it shows; its text goes to `seen`."""
    def click(box):
        seen.append(f"{box.text()}\n{box.informativeText()}")
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()
    when_shown(lambda w: isinstance(w, QMessageBox) and w.objectName() == name, click)


def in_export_dialog(action) -> None:
    when_shown(lambda w: isinstance(w, ExportDialog), action)


def type_folder(qtbot, dialog: ExportDialog, path) -> None:
    dialog.folder_edit.selectAll()
    qtbot.keyClicks(dialog.folder_edit, str(path))


def choose_format(qtbot, dialog: ExportDialog, fmt: str) -> None:
    button = dialog.format_buttons[fmt]
    qtbot.mouseClick(button, Qt.LeftButton, pos=QPoint(8, button.height() // 2))   # on its round indicator
    assert button.isChecked()


@pytest.fixture
def infos(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text, *a, **k: shown.append(text))
    return shown


# ----------------------------------------------------------------------------- 5. export


def test_export_asks_the_format_first_then_creates_the_new_folder_typed(qtbot, window, tmp_path, infos):
    target = tmp_path / "exports" / "digits weights"       # neither folder exists yet
    seen = {}

    def fill(dialog):
        radios = [b.text() for b in dialog.format_buttons.values()]
        lines = [w.text() for w in dialog.findChildren(QLabel) if w.wordWrap() and w is not dialog.folder_note]
        seen["formats"], seen["lines"] = radios, lines
        choose_format(qtbot, dialog, "weights")
        type_folder(qtbot, dialog, target)
        seen["note"] = dialog.folder_note.text()
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)

    in_export_dialog(fill)
    window.act_export.trigger()
    assert seen["formats"] == ["Python bundle", "ONNX", "TorchScript", "Weights only"]
    assert any("model.py" in line for line in seen["lines"]) and any("model.onnx" in ln for ln in seen["lines"])
    assert "new folder will be created" in seen["note"]
    assert sorted(p.name for p in target.iterdir()) == ["weights.safetensors"]
    assert infos and str(target) in infos[0] and "weights.safetensors" in infos[0]
    assert window.act_export.shortcut().toString() == "Ctrl+E"

    remembered = {}                                           # the next export starts from that format

    def look(dialog):
        remembered["format"] = dialog.format()
        dialog.reject()

    in_export_dialog(look)
    window.act_export.trigger()
    assert remembered == {"format": "weights"}


def test_export_into_a_folder_that_is_not_empty_asks_naming_it_and_writes_only_when_told(
        qtbot, window, tmp_path, infos):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (folder / "weights.safetensors").write_bytes(b"old")
    questions: list[str] = []
    state = {}

    def fill(dialog):
        choose_format(qtbot, dialog, "weights")
        type_folder(qtbot, dialog, folder)
        state["note"] = dialog.folder_note.text()
        answer_box("deepwire-export-replace", "Cancel", questions)
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)
        state["open after cancel"] = dialog.isVisible()
        state["untouched"] = (folder / "weights.safetensors").read_bytes() == b"old"
        answer_box("deepwire-export-replace", "Replace", questions)
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)

    in_export_dialog(fill)
    window.act_export.trigger()
    assert "not empty" in state["note"]
    assert len(questions) == 2 and str(folder) in questions[0] and "not empty" in questions[0]
    assert state["open after cancel"] and state["untouched"]
    assert (folder / "weights.safetensors").read_bytes() != b"old"
    assert (folder / "notes.txt").read_text() == "keep me"
    assert infos and str(folder) in infos[0]


def test_export_refuses_a_file_as_its_folder_and_browse_fills_the_destination(qtbot, tmp_path, monkeypatch):
    a_file = tmp_path / "model.txt"
    a_file.write_text("x")
    dialog = ExportDialog(None, "My net!", str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.folder() == tmp_path / "My_net_python"             # a new folder, named after the model
    choose_format(qtbot, dialog, "torchscript")
    assert dialog.folder() == tmp_path / "My_net_torchscript"        # follows the format until edited
    type_folder(qtbot, dialog, a_file)
    assert not dialog.export_button.isEnabled() and "is a file" in dialog.folder_note.text()
    dialog.folder_edit.clear()
    assert not dialog.export_button.isEnabled()
    picked = tmp_path / "picked"
    picked.mkdir()
    monkeypatch.setattr(mw.QFileDialog, "getExistingDirectory", lambda *a, **k: str(picked))
    qtbot.mouseClick(dialog.browse_button, Qt.LeftButton)
    assert dialog.folder() == picked and dialog.export_button.isEnabled()
    assert "empty folder" in dialog.folder_note.text()
    choose_format(qtbot, dialog, "onnx" if dialog.format_buttons["onnx"].isEnabled() else "python")
    assert dialog.folder() == picked                                   # chosen: a format change keeps it


def test_export_of_a_graph_with_errors_says_so_before_asking_anything(qtbot, window, monkeypatch):
    window.document.new_empty()                 # no Input, no Output
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: warnings.append(text))
    opened = []
    in_export_dialog(lambda d: (opened.append(d), d.reject()))
    window.act_export.trigger()
    QApplication.processEvents()
    assert warnings and "errors" in warnings[0]
    assert opened == []


def test_export_of_the_python_bundle_into_a_new_folder(qtbot, window, tmp_path, infos):
    target = tmp_path / "bundle"

    def fill(dialog):
        choose_format(qtbot, dialog, "python")
        type_folder(qtbot, dialog, target)
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)

    in_export_dialog(fill)
    window.act_export.trigger()
    names = {p.name for p in target.rglob("*")}
    assert {"model.py", "train.py"} <= names and any(n.endswith(".safetensors") for n in names)


# ----------------------------------------------------------------------------- 6. typed CSV paths


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.write_text("\n".join(delimiter.join(str(v) for v in row) for row in [header, *rows]) + "\n",
                    encoding="utf-8")
    return path


def table(n: int = 40) -> list[list]:
    """label (3 classes) first, then two numbers and a flag 0/1 last."""
    return [[f"k{i % 3}", i * 0.5, (i * 7) % 11, i % 2] for i in range(n)]


@pytest.fixture
def dataset_dialog(qtbot):
    dialog = DatasetImportDialog(None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def columns(dialog) -> list[str]:
    return [dialog.target_combo.itemText(i) for i in range(dialog.target_combo.count())]


def preview(qtbot, dialog) -> None:
    button = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Preview")
    qtbot.mouseClick(button, Qt.LeftButton)


def type_path(qtbot, dialog, path) -> None:
    dialog.path_edit.clear()
    qtbot.keyClicks(dialog.path_edit, str(path))


def test_a_typed_csv_path_lists_its_columns_as_a_picked_one_does(qtbot, dataset_dialog, tmp_path, monkeypatch):
    path = write_csv(tmp_path / "animals.csv", ["label", "weight", "legs", "flag"], table())
    type_path(qtbot, dataset_dialog, path)
    preview(qtbot, dataset_dialog)
    assert columns(dataset_dialog) == ["label", "weight", "legs", "flag"]
    assert dataset_dialog.target_combo.isEnabled() and dataset_dialog.target_combo.currentText() == "flag"
    assert dataset_dialog.options == {"target": "flag"} and "2 classes" in dataset_dialog.summary.text()

    dataset_dialog.target_combo.setCurrentIndex(0)           # predict the label instead
    preview(qtbot, dataset_dialog)
    assert dataset_dialog.options == {"target": "label"} and "3 classes" in dataset_dialog.summary.text()
    assert dataset_dialog.target_combo.currentText() == "label"   # a second preview keeps the choice

    picked = DatasetImportDialog(None)                       # the same file picked with File…
    qtbot.addWidget(picked)
    monkeypatch.setattr("designer.dataset_dialog.QFileDialog.getOpenFileName", lambda *a, **k: (str(path), ""))
    file_button = next(b for b in picked.findChildren(QPushButton) if b.text() == "File…")
    qtbot.mouseClick(file_button, Qt.LeftButton)
    assert columns(picked) == columns(dataset_dialog) and picked.target_combo.isEnabled()
    assert picked.options == {"target": "flag"}


def test_enter_in_the_path_field_previews_another_file_without_accepting(qtbot, dataset_dialog, tmp_path):
    first = write_csv(tmp_path / "a.csv", ["label", "weight", "legs", "flag"], table())
    second = write_csv(tmp_path / "b.csv", ["x1", "x2", "kind"], [[i, i * 2, f"c{i % 2}"] for i in range(20)])
    type_path(qtbot, dataset_dialog, first)
    qtbot.keyClick(dataset_dialog.path_edit, Qt.Key_Return)
    assert dataset_dialog.isVisible() and dataset_dialog.result() == 0   # previewed, not taken unseen
    dataset_dialog.target_combo.setCurrentIndex(0)
    type_path(qtbot, dataset_dialog, second)
    qtbot.keyClick(dataset_dialog.path_edit, Qt.Key_Return)
    assert columns(dataset_dialog) == ["x1", "x2", "kind"] and dataset_dialog.target_combo.currentText() == "kind"
    assert dataset_dialog.options == {"target": "kind"} and dataset_dialog.isVisible()
    type_path(qtbot, dataset_dialog, tmp_path)                # a folder: no columns to choose
    qtbot.keyClick(dataset_dialog.path_edit, Qt.Key_Return)
    assert columns(dataset_dialog) == [] and not dataset_dialog.target_combo.isEnabled()


def test_a_semicolon_csv_lists_its_columns_and_loads(qtbot, dataset_dialog, tmp_path):
    rows = [[f"{i},5", f"{i % 4}", "yes" if i % 2 else "no"] for i in range(30)]
    path = write_csv(tmp_path / "europe.csv", ["size", "rooms", "sold"], rows, delimiter=";")
    type_path(qtbot, dataset_dialog, path)
    preview(qtbot, dataset_dialog)
    assert columns(dataset_dialog) == ["size", "rooms", "sold"]
    assert dataset_dialog.dataset is not None and "binary" in dataset_dialog.summary.text()


# ----------------------------------------------------------------------------- 10. one-hot note


def test_the_preview_says_which_text_columns_were_one_hot_encoded_into_how_many(qtbot, dataset_dialog, tmp_path):
    colours, cities = ["red", "green", "blue"], ["Oslo", "Lima"]
    rows = [[i * 0.1, colours[i % 3], cities[i % 2], i % 2] for i in range(30)]
    path = write_csv(tmp_path / "mixed.csv", ["size", "colour", "city", "label"], rows)
    type_path(qtbot, dataset_dialog, path)
    preview(qtbot, dataset_dialog)
    note = dataset_dialog.encoding_note
    assert note.isVisible()
    assert "one-hot" in note.text()
    assert "‘colour’ into 3 columns" in note.text() and "‘city’ into 2 columns" in note.text()
    assert "size" not in note.text()

    dataset_dialog.target_combo.setCurrentIndex(columns(dataset_dialog).index("colour"))   # colour is the target now
    preview(qtbot, dataset_dialog)
    assert "colour" not in note.text() and "‘city’ into 2 columns" in note.text()

    numbers = write_csv(tmp_path / "numbers.csv", ["a", "b", "label"], [[i, i * 2, i % 2] for i in range(20)])
    type_path(qtbot, dataset_dialog, numbers)
    preview(qtbot, dataset_dialog)
    assert dataset_dialog.dataset is not None and not note.isVisible()


# ----------------------------------------------------------------------------- 10. reopen the last file


@pytest.fixture
def start_app(qtbot, tmp_path, monkeypatch):
    """designer.app.start as `python main.py [FILE]` runs it, with its own state folder."""
    from designer.app import start

    monkeypatch.setenv(ENV_DIR, str(tmp_path / "state"))
    windows = []

    def go(argv=(), settings=None):
        window = start(list(argv), show_dialogs=False, settings=settings)
        qtbot.addWidget(window)
        window.maybe_save = lambda: True
        windows.append(window)
        return window

    yield go
    for window in windows:
        window.recovery.close()
        window.training.session.shutdown()
    crash.uninstall()


def saved_project(tmp_path, name="last") -> Path:
    path = tmp_path / f"{name}.deepwire"
    save_project(path, Project(load_template("digits_cnn")))
    return path


def ini(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


def test_the_app_reopens_the_last_file_unless_a_file_is_given(qtbot, tmp_path, start_app, monkeypatch):
    last = saved_project(tmp_path)
    other = saved_project(tmp_path, "other")
    first = start_app([str(last)], ini(tmp_path))             # opened once: it is the last file now
    assert first.document.path == last
    first.close()
    again = start_app([], ini(tmp_path))
    assert again.document.path == last and not again.document.modified
    assert again.document.graph.to_dict() == load_template("digits_cnn").to_dict()
    given = start_app([str(other)], ini(tmp_path))
    assert given.document.path == other

    other.unlink()                                            # the last file is gone: the starter model, quietly
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a))
    window = start_app([], ini(tmp_path))
    assert window.document.path is None and len(window.document.graph) > 0 and warnings == []


def test_reopen_last_file_is_a_file_menu_setting_kept_between_starts(qtbot, tmp_path, start_app):
    last = saved_project(tmp_path)
    window = start_app([str(last)], ini(tmp_path))
    file_menu = window.menuBar().actions()[0].menu()
    toggle = next(a for a in file_menu.actions() if a.text().replace("&", "") == "Reopen Last File at Start")
    assert toggle.isCheckable() and toggle.isChecked()
    toggle.trigger()                                          # off
    window.close()
    fresh = start_app([], ini(tmp_path))
    assert fresh.document.path is None and len(fresh.document.graph) > 0   # the starter model
    fresh_toggle = next(a for a in fresh.menuBar().actions()[0].menu().actions() if a is fresh.act_reopen_last)
    assert not fresh_toggle.isChecked()
    fresh_toggle.trigger()                                    # on again
    assert start_app([], ini(tmp_path)).document.path == last


def crashed_session(folder: Path) -> Recovery:
    """Unsaved work autosaved by a designer that was killed: its lock is free, its file left."""
    doc = Document()
    doc.replace(Project(load_template("digits_mlp")), None)
    doc.undo_stack.push(AddNode(doc.graph, "Dropout", (10.0, 20.0), {"p": 0.3}, "restored drop"))
    dead = Recovery(doc, folder)
    assert dead.autosave()
    dead._lock.release(remove=False)
    dead._lock = None
    return dead


def test_a_declined_restore_reopens_the_last_file_and_restored_work_wins_over_it(qtbot, tmp_path, start_app):
    last = saved_project(tmp_path)
    start_app([str(last)], ini(tmp_path)).close()
    crashed_session(tmp_path / "state")
    for answer in ("Not Now", "Restore"):                     # Not Now keeps the work for the next start
        seen: list[str] = []
        answer_box("deepwire-restore", answer, seen)
        window = start_app([], ini(tmp_path))
        assert seen, "the restore was offered"
        restored = window.document.graph.find("restored drop") is not None
        if answer == "Restore":
            assert restored and window.document.modified
        else:
            assert not restored and window.document.path == last and not window.document.modified
        window.close()
