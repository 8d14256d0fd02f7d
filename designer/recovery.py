"""Never lose work: unsaved changes are autosaved to a recovery file, offered back after a crash.

Every AUTOSAVE_MS (a minute; `DEEPWIRE_AUTOSAVE_MS` overrides it) a document with changes not
yet autosaved is written, whole (graph, training settings, weights, history), with
`engine.project.save_project` to `<data folder>/recovery/<session>.deepwire`, next to a small
`<session>.json` naming the file it belongs to. The data folder is the per-user
`QStandardPaths.AppDataLocation`, or `DEEPWIRE_STATE_DIR` when set.

Each running designer holds an OS lock on `<session>.lock` (released by the OS when the process
dies, however it dies). On start, a recovery file whose lock nobody holds was left by a designer
that crashed or was killed: `offer_restore` asks to restore it. The recovery files of a session
are removed when its document is saved (or undone back to its saved state), replaced by another
document (new / open, after the user saved or discarded), or when the app quits normally.
Autosave follows `Document.modified` (edits on the undo stack, and changes made outside it such
as training settings and weights) and writes only when something changed since the last one.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from engine.fileio import atomic_write_text
from engine.graph import FormatError
from engine.project import SUFFIX, Project, load_project, save_project

ENV_DIR = "DEEPWIRE_STATE_DIR"
ENV_INTERVAL = "DEEPWIRE_AUTOSAVE_MS"
AUTOSAVE_MS = 60_000

log = logging.getLogger("deepwire.recovery")


def data_dir() -> Path:
    """The per-user folder for recovery files and logs: $DEEPWIRE_STATE_DIR, else Qt's AppDataLocation."""
    env = os.environ.get(ENV_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    location = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)
    return Path(location) if location else Path.home() / ".deepwire"


def autosave_interval() -> int:
    """Milliseconds between autosaves: $DEEPWIRE_AUTOSAVE_MS (at least 50), else a minute."""
    try:
        return max(50, int(os.environ.get(ENV_INTERVAL, "")))
    except ValueError:
        return AUTOSAVE_MS


@dataclass
class Orphan:
    """The recovery file of a designer that did not end normally."""

    session: str
    file: Path
    original: Path | None   # the file the work belongs to; None for a document never saved
    title: str
    saved_at: str

    @property
    def name(self) -> str:
        return self.original.name if self.original else self.title


class Recovery(QObject):
    """Autosaves one Document and offers back what a crashed session left (see the module docstring)."""

    def __init__(self, document, folder: Path | None = None, interval_ms: int | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.folder = Path(folder if folder is not None else data_dir()) / "recovery"
        self.session = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.file = self.folder / f"{self.session}{SUFFIX}"
        self.meta = self.folder / f"{self.session}.json"
        self.autosaves = 0
        self.last_error: str | None = None
        self._dirty = bool(document.modified)   # changes made before autosave was attached count too
        self._lock = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = _Lock(self.folder / f"{self.session}.lock")
            if not self._lock.acquire():
                raise OSError("the session lock is taken")
        except OSError as exc:
            self.last_error = f"recovery folder {self.folder} is not usable: {exc}"
            log.warning("autosave is off: %s", self.last_error)
            self.enabled = False
        else:
            self.enabled = True
        self.timer = QTimer(self)
        self.timer.setInterval(autosave_interval() if interval_ms is None else interval_ms)
        self.timer.timeout.connect(self.autosave_in_background)
        self._saved_state: tuple | None = None
        self._writer: threading.Thread | None = None
        document.undo_stack.indexChanged.connect(self._changed)
        document.projectChanged.connect(self._changed)     # settings, dataset, weights, runs
        document.modifiedChanged.connect(self._modified_changed)
        document.graphReplaced.connect(self._replaced)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)
        if self.enabled:
            self.timer.start()

    # ------------------------------------------------------------------ autosave
    def _changed(self, _index: int = 0) -> None:
        self._dirty = True

    def _modified_changed(self, modified: bool) -> None:
        if not modified and not self.document.modified:   # saved, or undone back to what is on disk
            self.discard()
        else:
            self._dirty = True

    def _state(self) -> tuple:
        """What autosave compares with what it last wrote: edits, and the parts of the project
        that change without an undo step (training settings, weights, runs)."""
        project = self.document.project
        runs = project.runs
        return (id(project), self.document.undo_stack.index(), id(project.weights), len(runs),
                id(runs[-1]) if runs else None, repr(project.config))

    def _replaced(self) -> None:
        self.discard()        # new / open: the old document was saved or discarded first

    def autosave(self) -> bool:
        """Write the document to the recovery file now if it has changes not autosaved yet; True
        when it was written."""
        started = self.autosave_in_background()
        self.wait()
        return started and self.last_error is None

    def autosave_in_background(self) -> bool:
        """What the timer calls: the project is copied here (its parts, not its tensors) and
        written by a thread, so a project with large weights never stalls the window (a 64 MB
        project takes 0.2-0.5 s to write). True when a write was started."""
        if not self.enabled or not self.document.modified or self.writing:
            return False
        state = self._state()
        if not self._dirty and state == self._saved_state:
            return False
        path = self.document.path
        meta = {"format": "deepwire-recovery", "session": self.session, "pid": os.getpid(),
                "original": str(path) if path else None, "title": self.document.title,
                "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            snapshot = _snapshot(self.document.project)
        except (ValueError, TypeError, RuntimeError) as exc:
            self._failed(f"autosave of {self.document.title} failed: {exc}")
            return False
        self._dirty = False               # edits from now on count for the next autosave
        self._saved_state = state
        self._writer = threading.Thread(target=self._write, args=(snapshot, meta), name="deepwire-autosave",
                                        daemon=True)
        self._writer.start()
        return True

    @property
    def writing(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def wait(self) -> None:
        """Until the autosave being written (if any) is on disk."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def _write(self, project: Project, meta: dict) -> None:
        # The side file first: whenever a recovery file is on disk, the file naming what it belongs
        # to is too. (Written the other way round, a designer killed between the two writes left a
        # recovery file that orphans() never offered, and a reader saw the one without the other.)
        try:
            atomic_write_text(self.meta, json.dumps(meta, indent=2))
            save_project(self.file, project)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            self._failed(f"autosave to {self.file} failed: {exc}")
            return
        self.autosaves += 1
        self.last_error = None

    def _failed(self, message: str) -> None:
        self.last_error = message
        log.warning("%s", message)
        self._dirty = True                # try again at the next tick
        self._saved_state = None

    def discard(self) -> None:
        """Remove this session's recovery file (the work was saved or deliberately dropped)."""
        self.wait()                       # a write still going on would bring the file back
        self._dirty = False
        self._saved_state = None
        for p in (self.file, self.meta):
            _unlink(p)

    def close(self) -> None:
        """A normal end: stop, remove the recovery file and give the session lock back."""
        self.timer.stop()
        self.discard()
        if self._lock is not None:
            self._lock.release(remove=True)
            self._lock = None
        self.enabled = False

    # ------------------------------------------------------------------ after a crash
    def orphans(self) -> list[Orphan]:
        """Recovery files of sessions that ended without cleaning up (their lock is free), newest first."""
        found = []
        try:
            metas = list(self.folder.glob("*.json"))
            files = list(self.folder.glob(f"*{SUFFIX}"))
            locks = list(self.folder.glob("*.lock"))
        except OSError:
            return []
        for lock_path in locks:   # sessions that ended before their first autosave leave only a lock
            if (lock_path.stem != self.session and not lock_path.with_suffix(".json").exists()
                    and not lock_path.with_suffix(SUFFIX).exists()):
                lock = _Lock(lock_path)
                if lock.acquire():
                    lock.release(remove=True)
        sessions = {p.stem for p in metas} | {p.name[:-len(SUFFIX)] for p in files}
        for session in sorted(sessions):
            if session == self.session:
                continue
            lock = _Lock(self.folder / f"{session}.lock")
            if not lock.acquire():
                continue        # that designer is still running
            lock.release(remove=False)
            file = self.folder / f"{session}{SUFFIX}"
            meta_path = self.folder / f"{session}.json"
            if not file.is_file():         # killed before its first autosave was written: nothing to offer
                _remove_session(self.folder, session)
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError("not a mapping")
            except (OSError, ValueError):
                meta = {}                  # the work is still there: offer it, without a name
            original = meta.get("original")
            title = meta.get("title")
            found.append(Orphan(session, file, Path(original) if isinstance(original, str) and original else None,
                                title if isinstance(title, str) else "untitled",
                                str(meta.get("saved_at", ""))))
        found.sort(key=lambda o: _mtime(o.file), reverse=True)
        return found

    def offer_restore(self, parent: QWidget | None = None) -> bool:
        """If a crashed session left unsaved work, ask to restore it. True when restored.

        Restore: the document becomes that work, marked modified, belonging to its original
        file; it is autosaved at once under this session. Discard: the recovery file is deleted.
        Not Now: it is kept and offered again at the next start."""
        orphans = self.orphans()
        if not orphans:
            return False
        orphan = orphans[0]
        hold = _Lock(self.folder / f"{orphan.session}.lock")
        if not hold.acquire():   # another designer starting at the same moment took it
            return False
        try:
            return self._ask(orphan, parent)
        finally:
            hold.release(remove=False)

    def _ask(self, orphan: Orphan, parent: QWidget | None) -> bool:
        box = QMessageBox(parent)
        box.setObjectName("deepwire-restore")
        box.setIcon(QMessageBox.Question)
        box.setWindowTitle("Restore unsaved work?")
        box.setText(f"Deepwire did not close normally last time. Unsaved changes to {orphan.name} "
                    f"were autosaved{' at ' + orphan.saved_at if orphan.saved_at else ''}.")
        box.setInformativeText("Restore them? Discard deletes the autosaved copy; Not Now keeps it for the next start.")
        restore = box.addButton("Restore", QMessageBox.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.DestructiveRole)
        later = box.addButton("Not Now", QMessageBox.RejectRole)
        box.setDefaultButton(restore)
        box.setEscapeButton(later)
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        if clicked is discard:
            _remove_session(self.folder, orphan.session)
            return False
        if clicked is not restore:
            return False
        return self.restore(orphan, parent)

    def restore(self, orphan: Orphan, parent: QWidget | None = None) -> bool:
        try:
            project = load_project(orphan.file)
        except FormatError as exc:
            log.warning("recovery file %s cannot be read: %s", orphan.file, exc)
            QMessageBox.warning(parent, "Cannot restore", f"The autosaved copy of {orphan.name} cannot be read:"
                                f"\n\n{exc}\n\nIt has been removed.")
            _remove_session(self.folder, orphan.session)
            return False
        self.document.replace(project, orphan.original)
        self.document.undo_stack.resetClean()   # modified until saved, and undo cannot make it "clean"
        self._dirty = True
        self.autosave()
        _remove_session(self.folder, orphan.session)
        return True


class _GraphJSON:
    """A graph as it was when autosave copied it: save_project only asks for its JSON."""

    def __init__(self, graph):
        self.text = graph.to_json()

    def to_json(self) -> str:
        return self.text


def _snapshot(project: Project) -> Project:
    """A copy of what save_project reads, for a thread to write while the user goes on editing.
    Tensors are shared: the app replaces weights, it never changes them in place."""
    return Project(graph=_GraphJSON(project.graph), config=project.config,
                   weights=dict(project.weights) if project.weights else None,
                   runs=list(project.runs),     # run records are never changed once added
                   dataset=project.dataset, dataset_options=dict(project.dataset_options),
                   checkpoints={run: dict(epochs) for run, epochs in project.checkpoints.items()})


def _remove_session(folder: Path, session: str) -> None:
    for suffix in (SUFFIX, ".json", ".lock"):
        _unlink(folder / f"{session}{suffix}")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class _Lock:
    """An exclusive, non-blocking OS lock on a file; the OS releases it when the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self, remove: bool) -> None:
        if self.fd is None:
            return
        if remove:
            _unlink(self.path)
        try:
            if os.name == "nt":
                import msvcrt

                os.lseek(self.fd, 0, os.SEEK_SET)
                msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
