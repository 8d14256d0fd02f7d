"""Image folders in the designer (#18): the preview decodes a few images, "Use this dataset" decodes the
folder off the window's thread with its progress and a Cancel, the training process's reading shows as
progress and Stop cancels it, skipped images are said, memory in use and the image cache are visible."""
import re
import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialogButtonBox

from designer.dataset_dialog import (
    PREVIEW_SAMPLES,
    DatasetImportDialog,
    clear_image_cache_asked,
    image_pixmap,
    loading_text,
)
from designer.results import thumbnail
from engine.graph import build
from engine.project import Project

RUN_TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def image_cache(tmp_path, monkeypatch):
    """The image cache in a folder of the test's own (the training process inherits the variable)."""
    folder = tmp_path / "image-cache"
    monkeypatch.setenv("DEEPWIRE_IMAGE_CACHE_DIR", str(folder))
    return folder


def image_folder(root, classes=3, per_class=20, size=8, bad=0, fmt="png"):
    """classes x per_class small images, each class its own grey level plus noise; `bad` broken files."""
    rng = np.random.default_rng(0)
    for k in range(classes):
        sub = root / f"class_{k}"
        sub.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(40 + 80 * k + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(sub / f"{i:05d}.{fmt}")
    for i in range(bad):
        (root / "class_0" / f"broken_{i}.png").write_bytes(b"not an image at all")
    return root


def ok_button(dialog):
    return dialog.buttons.button(QDialogButtonBox.Ok)


def preview(qtbot, dialog, folder):
    dialog.set_path(str(folder))
    qtbot.waitUntil(lambda: not dialog.loading, timeout=10_000)


def count_decodes(monkeypatch, delay=0.0):
    """Every image decoded in this process (the preview's, the in-process loads') counted."""
    from engine.runtime.data import images

    real, calls = images.decode_image, []

    def counting(*args, **kwargs):
        calls.append(args[0])
        if delay:
            time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "decode_image", counting)
    return calls


def test_the_preview_of_an_image_folder_decodes_only_the_images_it_shows(qtbot, tmp_path, monkeypatch):
    folder = image_folder(tmp_path / "shapes", classes=3, per_class=40)
    calls = count_decodes(monkeypatch)
    dialog = DatasetImportDialog(None)
    qtbot.addWidget(dialog)
    preview(qtbot, dialog, folder)
    assert len(calls) == PREVIEW_SAMPLES           # 8 of the 120 images opened
    assert dialog.image_preview is not None and dialog.dataset is None
    text = dialog.summary.text()
    assert "120 images" in text and "3 classes" in text and "(3, 8, 8)" in text
    assert [dialog.classes.item(r, 1).text() for r in range(3)] == ["40", "40", "40"]
    thumbs = [dialog.samples_layout.itemAtPosition(0, i) for i in range(PREVIEW_SAMPLES)]
    assert all(t is not None and t.widget().pixmap() is not None for t in thumbs)
    captions = {dialog.samples_layout.itemAtPosition(1, i).widget().text() for i in range(PREVIEW_SAMPLES)}
    assert captions == {"class_0", "class_1", "class_2"}     # spread over the classes
    assert ok_button(dialog).isEnabled()


def test_use_this_dataset_decodes_with_progress_then_a_second_import_reads_the_cache(qtbot, tmp_path):
    folder = image_folder(tmp_path / "grey", classes=3, per_class=100)
    shown = []

    def importing():
        dialog = DatasetImportDialog(None)
        qtbot.addWidget(dialog)
        dialog._job.progress.connect(lambda *_: shown.append(dialog.load_bar.format()))
        preview(qtbot, dialog, folder)
        with qtbot.waitSignal(dialog.accepted, timeout=30_000):
            qtbot.mouseClick(ok_button(dialog), Qt.LeftButton)
        return dialog

    dialog = importing()
    assert dialog.dataset is not None and len(dialog.dataset) == 300
    assert dialog.dataset.x.dtype == np.uint8 and dialog.dataset.images.cache_hit is False
    assert any(re.fullmatch(r"Decoding [\d,]+ of 300 images", text) for text in shown), shown
    assert shown[-1] == "Decoded 300 images"
    shown.clear()
    again = importing()
    assert again.dataset.images.cache_hit and shown[-1] == "Read from cache: 300 images"
    assert not any(text.startswith("Decoding") for text in shown)


def test_loading_text_names_every_phase():
    assert loading_text({"phase": "decode", "done": 1234, "total": 20000}) == "Decoding 1,234 of 20,000 images"
    assert loading_text({"phase": "ready", "done": 20000, "total": 20000, "cache_hit": True}) == \
        "Read from cache: 20,000 images"
    assert loading_text({"phase": "decode", "done": 5, "total": 9, "skipped": 2}) == \
        "Decoding 5 of 9 images · 2 unreadable skipped"
    assert loading_text({"phase": "scan", "done": 0, "total": 7}) == "Found 7 images; reading…"


def test_cancel_while_decoding_keeps_the_data_in_use_and_the_window_responsive(qtbot, window, tmp_path,
                                                                                monkeypatch):
    folder = image_folder(tmp_path / "slow", classes=3, per_class=40)
    count_decodes(monkeypatch, delay=0.02)      # ~1.2 s for the folder (the decoding processes are forks)
    panel = window.training
    before = panel.dataset_spec()
    dialog = DatasetImportDialog(window)
    qtbot.addWidget(dialog)
    seen: dict = {}
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def drive():        # inside the dialog's own event loop, as a user would click
        preview(qtbot, dialog, folder)
        timer.start(10)
        qtbot.mouseClick(ok_button(dialog), Qt.LeftButton)
        qtbot.waitUntil(lambda: dialog.load_bar.format().startswith("Decoding"), timeout=10_000)
        seen["locked"] = not dialog.path_edit.isEnabled() and not ok_button(dialog).isEnabled()
        seen["bar"] = dialog.load_bar.isVisible() and dialog.cancel_load_button.isVisible()
        qtbot.mouseClick(dialog.cancel_load_button, Qt.LeftButton)
        qtbot.waitUntil(lambda: not dialog.loading, timeout=10_000)
        timer.stop()
        seen["note"] = dialog.load_note.text()
        seen["open"] = dialog.isVisible() and dialog.dataset is None and ok_button(dialog).isEnabled()
        dialog.reject()

    QTimer.singleShot(0, drive)
    assert panel.import_dataset(dialog) is False
    assert seen["locked"] and seen["bar"] and seen["open"], seen
    assert "cancelled" in seen["note"].lower()
    assert panel.dataset_spec() == before == window.document.project.dataset
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 0.5, gaps.max()     # the window went on painting


def test_closing_the_dialog_while_decoding_cancels_and_closes(qtbot, tmp_path, monkeypatch):
    folder = image_folder(tmp_path / "slow", classes=3, per_class=40)
    count_decodes(monkeypatch, delay=0.02)
    dialog = DatasetImportDialog(None)
    qtbot.addWidget(dialog)
    dialog.show()
    preview(qtbot, dialog, folder)
    dialog.accept()
    qtbot.waitUntil(lambda: dialog.load_bar.format().startswith("Decoding"), timeout=10_000)
    with qtbot.waitSignal(dialog.rejected, timeout=5_000):
        dialog.reject()
        assert dialog.isVisible()          # until the decoding has stopped
    assert dialog.dataset is None and not dialog.loading


def test_unreadable_images_stop_with_a_hint_or_are_skipped_and_counted(qtbot, window, tmp_path):
    folder = image_folder(tmp_path / "damaged", classes=2, per_class=10, bad=3)
    dialog = DatasetImportDialog(window)
    qtbot.addWidget(dialog)
    preview(qtbot, dialog, folder)
    dialog.accept()
    qtbot.waitUntil(lambda: not dialog.loading, timeout=10_000)
    assert "broken_" in dialog.load_note.text() and "Skip unreadable images" in dialog.load_note.text()
    assert dialog.dataset is None and dialog.result() == 0

    dialog.skip_check.setChecked(True)
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        dialog.accept()
    assert len(dialog.dataset) == 20 and len(dialog.dataset.images.skipped) == 3
    panel = window.training
    panel.accept_import(dialog.spec, dialog.dataset, dialog.options)
    assert "3 unreadable images skipped" in panel.dataset_info.text()


def test_the_settings_for_data_at_scale_are_in_the_panel(window):
    panel = window.training
    assert panel.memory_budget.text() == "Auto" and panel.data_workers.text() == "Auto"
    panel.bad_images.setCurrentIndex(panel.bad_images.findData("skip"))
    panel.memory_budget.setValue(2.5)
    config = window.document.project.config
    assert config.bad_images == "skip" and config.memory_budget == 2.5


def test_uint8_pixels_are_shown_as_they_are():
    grey = np.full((1, 6, 6), 100, dtype=np.uint8)     # one level: stretched it would be black
    for pixmap in (image_pixmap(grey), thumbnail(grey)):
        assert pixmap.toImage().pixelColor(2, 2).red() == 100


def test_the_image_cache_can_be_seen_and_cleared(qtbot, window, tmp_path):
    from engine.runtime.data import cache_info, load_dataset

    load_dataset(str(image_folder(tmp_path / "cached", classes=2, per_class=64, size=32)))
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Train")
    menu.aboutToShow.emit()
    action = window.act_clear_image_cache
    assert re.fullmatch(r"Clear Image Cache \(\d+ KB\)…", action.text()) and action.isEnabled()
    files, freed = clear_image_cache_asked(window, ask=False)
    assert files == 1 and freed > 2 * 64 * 3 * 32 * 32
    assert cache_info()["files"] == 0
    assert "Image cache cleared" in window.statusBar().currentMessage()
    menu.aboutToShow.emit()
    assert action.text() == "Clear Image Cache (empty)…" and not action.isEnabled()


# ----------------------------------------------------------------------------- training from a folder

def classifier(shape=(3, 8, 8), classes=3):
    return build("grey", [("x", "Input", {"shape": list(shape)}), ("flat", "Flatten", {}),
                          ("fc", "Linear", {"units": classes}), ("y", "Output", {})])


def use_folder(window, folder, graph=None, options=None, epochs=1):
    panel = window.training
    window.document.replace(Project(graph or classifier()), None)
    panel.accept_import(str(folder), None, options or {})   # as a project reopened with it: not read yet
    panel.epochs.setValue(epochs)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    return panel


@pytest.mark.slow
def test_a_run_shows_the_folder_being_read_then_the_memory_it_used(qtbot, window, tmp_path):
    # at most 64 images: the training process decodes them itself (see the stop test below)
    folder = image_folder(tmp_path / "run", classes=3, per_class=20)
    panel = use_folder(window, folder)
    shown = []
    panel.session.loading.connect(lambda info: shown.append(panel.progress.format()))
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert any(re.fullmatch(r"Decoding [\d,]+ of 60 images", text) for text in shown), shown
    assert panel.data_label.text() == "Images decoded into the image cache (60)"
    assert re.search(r"memory \d+ MB", panel.stats.text()) and panel.stats.isVisible()
    assert panel.runs_list.count() == 1

    shown.clear()                      # the second run reads the cache the first one filled
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert "Read from cache: 60 images" in shown and not any(t.startswith("Decoding") for t in shown)
    assert panel.data_label.text() == "Images read from the image cache (60)"


@pytest.mark.slow
def test_skipped_images_are_said_when_the_run_ends(qtbot, window, tmp_path):
    folder = image_folder(tmp_path / "run", classes=3, per_class=20, bad=2)
    panel = use_folder(window, folder)
    panel.bad_images.setCurrentIndex(panel.bad_images.findData("skip"))
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert "2 unreadable images skipped" in panel.data_label.text()
    assert "2 unreadable images were skipped" in panel.status_label.text()


@pytest.mark.slow
def test_stop_while_the_training_process_reads_the_folder_ends_the_run_cleanly(qtbot, window, tmp_path):
    # 64 large PNGs (links to one file): ~12 ms each to decode. At most 64, decoded in the training
    # process itself: more are decoded by processes it forks, which hang there (reported to the engine)
    a = np.add.outer(np.arange(1024), np.arange(1024)) % 256
    source = tmp_path / "big.png"
    Image.fromarray(np.stack([a, a.T, (3 * a) % 256], -1).astype(np.uint8)).save(source)
    for k in range(2):
        (tmp_path / "big" / f"c{k}").mkdir(parents=True)
        for i in range(32):
            (tmp_path / "big" / f"c{k}" / f"{i}.png").hardlink_to(source)
    panel = use_folder(window, tmp_path / "big", classifier((3, 16, 16), 2), {"image_size": (16, 16)})
    with qtbot.waitSignal(panel.session.loading, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda info: info.get("phase") == "decode"):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert panel.progress.format().startswith("Decoding ")
    with qtbot.waitSignal(panel.session.failed, timeout=10_000) as blocker:
        started = time.perf_counter()
        qtbot.mouseClick(panel.stop_button, Qt.LeftButton)
        assert panel.progress.format() == "Cancelling…"
    assert time.perf_counter() - started < 3.0
    assert blocker.args[0].startswith("stopped before")
    assert "stopped before its first batch" in panel.status_label.text()
    assert panel.runs_list.count() == 0 and window.document.project.weights is None
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()


@pytest.mark.slow
def test_a_folder_imported_in_the_dialog_trains_from_its_cache_and_again_after_the_cache_is_cleared(
        qtbot, window, tmp_path):
    folder = image_folder(tmp_path / "imported", classes=3, per_class=20)
    dialog = DatasetImportDialog(window)
    qtbot.addWidget(dialog)
    preview(qtbot, dialog, folder)
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.accept()
    panel = use_folder(window, folder)
    panel.accept_import(dialog.spec, dialog.dataset, dialog.options)
    assert panel.fit_problems() == []
    shown = []
    panel.session.loading.connect(lambda info: shown.append(panel.progress.format()))
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert blocker.args[0].result.stopped == "completed"
    assert shown == []                   # nothing decoded again: the process mapped the cache file
    assert panel.data_label.text() == "Images read from the image cache (60)"

    clear_image_cache_asked(window, ask=False)       # its file gone: the folder is read again, shown
    with qtbot.waitSignal(panel.session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert any(re.fullmatch(r"Decoding [\d,]+ of 60 images", text) for text in shown), shown
    assert panel.data_label.text() == "Images decoded into the image cache (60)"
    assert panel.runs_list.count() == 2


@pytest.mark.slow
def test_a_large_folder_is_decoded_whole_before_the_dialog_closes(qtbot, tmp_path):
    from engine.runtime.data.images import OVERLAP_MIN, CachedImages

    n = OVERLAP_MIN + 16        # loading returns once listed; the dialog waits for the whole folder
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    for k in range(2):
        (tmp_path / "large" / f"c{k}").mkdir(parents=True)
        Image.fromarray(a + 100 * k).save(tmp_path / "large" / f"c{k}" / "0.png")
        for i in range(1, n // 2):
            (tmp_path / "large" / f"c{k}" / f"{i}.png").hardlink_to(tmp_path / "large" / f"c{k}" / "0.png")
    dialog = DatasetImportDialog(None)
    qtbot.addWidget(dialog)
    shown = []
    dialog._job.progress.connect(lambda *_: shown.append(dialog.load_bar.format()))
    preview(qtbot, dialog, tmp_path / "large")
    with qtbot.waitSignal(dialog.accepted, timeout=60_000):
        dialog.accept()
    assert isinstance(dialog.dataset.x, CachedImages) and len(dialog.dataset) == n
    assert shown[-1] == f"Decoded {n:,} images", shown
    assert np.asarray(dialog.dataset.x[-1]).max() == 100
