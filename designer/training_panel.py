"""The training panel: dataset, settings, device, Train / Pause / Stop, progress, run history.

Train snapshots the graph and the settings and hands them to a worker in a QThread
(designer.train_worker); the curves and results views live in the bottom tabs. Every run is
kept in the project with its settings, curves and metrics; the weights of the epochs still in
memory can be restored by clicking the epoch on the curve.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.blocks import format_shape
from engine.graph import Graph
from engine.project import CHECKPOINT_BUDGET
from engine.runtime.data import Dataset, describe_builtins
from engine.runtime.data.catalog import builtin_for_shape
from engine.runtime.settings import SETTING, SETTINGS, Setting, setting_bounds
from engine.training import ConfigError, TrainConfig, available_devices, check_data

from . import theme
from .commands import SetParams
from .dataset_dialog import DatasetImportDialog, describe_dataset, is_image_data, loading_text
from .train_worker import RunRequest, TrainingSession

IMPORT = "\x00import"
PROGRESS_INTERVAL_MS = 200       # progress bar and figures: QProgressBar.setValue repaints at once
SCHEDULE_NAMES = {"none": "Constant", "step": "Step decay", "cosine": "Cosine", "one_cycle": "One cycle",
                  "plateau": "Reduce on plateau"}
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
BAD_IMAGES_NAMES = {"stop": "Stop", "skip": "Skip"}
START_NAMES = {"fresh": "Fresh weights", "weights": "Loaded weights"}
CHOICE_NAMES = {"optimizer": OPTIMIZER_NAMES, "schedule": SCHEDULE_NAMES,
                "bad_images": BAD_IMAGES_NAMES, "start_from": START_NAMES}    # how a choice is shown
# rows for settings the engine declares without a panel label (its own label, once it has one, wins)
PANEL_LABELS = {"memory_budget": "Memory (GiB)", "data_workers": "Reading processes",
                "bad_images": "Bad images"}
AUTO_AT_MINIMUM = {"memory_budget": "Auto", "data_workers": "Auto"}    # the spin box's lowest value means auto


def format_seconds(s: float) -> str:
    if not math.isfinite(s) or s < 0:
        return "–"
    if s < 9.95:
        return f"{s:.1f} s"      # a short run reads "0.4 s", not "0 s"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_bytes(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def format_metric(value, spec: str = ".4g") -> str:
    """A metric as shown: a number, "inf" / "nan" for a live value that is not finite, "not finite"
    for one saved that way (a project stores it as null) or missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not finite"
    if not math.isfinite(value):
        return str(float(value))
    return format(value, spec)


def graph_signature(graph: Graph) -> str:
    """What a run's weights depend on: the blocks (ids, names, types, parameters) and the wires, not
    where the blocks sit on the canvas; the modules' definitions too."""
    nodes = sorted((n.id, n.name, n.type, json.dumps(n.params, sort_keys=True, default=str)) for n in graph.nodes())
    edges = sorted((e.src, e.dst, e.port) for e in graph.edges())
    modules = {name: graph_signature(definition) for name, definition in sorted(graph.modules.items())}
    return json.dumps([nodes, edges, modules] if modules else [nodes, edges])


def describe_input(shape, dtype: str) -> str:
    return format_shape(shape) + (" token ids" if dtype == "int64" else "")


def run_title(run: dict) -> str:
    test = run.get("test") or {}
    if "accuracy" in test:
        metric = f"test accuracy {format_metric(test['accuracy'], '.2%')}"
    elif "mae" in test:
        metric = f"test MAE {format_metric(test['mae'])}"
    elif run.get("history") and isinstance(run["history"][-1], dict):
        metric = f"loss {format_metric(run['history'][-1].get('loss'))}"
    else:
        metric = "no epochs"
    stopped = {"user": " · stopped", "early_stopping": " · early stop",
               "diverged": " · loss not finite"}.get(run.get("stopped", ""), "")
    return (f"Run {run.get('id')} · {run.get('dataset', '?')} · {metric} · "
            f"{run.get('epochs_run', len(run.get('history', [])))} epochs{stopped}")


class TrainingPanel(QWidget):
    message = Signal(str)          # a line for the status bar
    deviceText = Signal(str)       # what the status bar shows as the device
    runStarted = Signal()

    def __init__(self, document, curves, results, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.curves = curves
        self.results = results
        self.session = TrainingSession(self)
        self._loading = False
        self._imported: dict[str, tuple[Dataset | None, dict]] = {}
        self._run_project = None
        self._run_config: TrainConfig | None = None      # what the run was started with: its record's
        self._run_spec = ""
        self._run_options: dict = {}
        self._run_graph_changed = False
        self._run_signature = ""
        self._blocked = False          # the status line says why Train refused: kept true of the moment
        self._input_fix: tuple[str, dict] | None = None     # (Input node id, parameters) the button sets
        self._dataset_fix: str | None = None                # the built-in the other button picks
        self._last_spec = ""           # the data the list showed before Import… was picked
        self._batch_losses: list[float] = []
        self._batches_per_epoch = 0
        self._run_id = ""
        self._task = "multiclass"
        self._missing_dataset: str | None = None
        self._stop_clicked = False
        self._latest: dict | None = None
        self._shown: dict | None = None     # the report the progress figures show
        self._data_loading = False          # the run's process is reading an image folder (no batch yet)
        self._data_report: dict | None = None   # how the run's image folder was read (its last loading report)
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_INTERVAL_MS)
        self._progress_timer.timeout.connect(self._show_progress)
        self._builtins = {b["name"]: b for b in describe_builtins()}
        self._devices = available_devices()
        self._build()
        self.session.status.connect(self._on_status)
        self.session.loading.connect(self._on_loading)
        self.session.batch.connect(self._on_batch)
        self.session.epoch.connect(self._on_epoch)
        self.session.finished.connect(self._on_finished)
        self.session.failed.connect(self._on_failed)
        self.session.runningChanged.connect(self._update_buttons)
        self.curves.epochClicked.connect(self.restore_epoch)
        document.graphReplaced.connect(self.load_from_project)
        document.projectChanged.connect(self._settings_from_project)
        document.analysed.connect(lambda _: self._update_fit())
        # an edit inside a module changes the model but sends no event of the model's own graph
        document.analysed.connect(lambda _: self.session.running and self._graph_event("analysed", {}))
        self.load_from_project()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        body = QWidget(scroll)
        scroll.setWidget(body)
        outer.addWidget(scroll)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 8, 8, 8)

        layout.addWidget(_heading("Data"))
        self.dataset_combo = QComboBox(body)
        self.dataset_combo.setToolTip("The data to train on: a built-in dataset, or Import… your own")
        # Its longest entry must not widen the panel past its dock (the list shows entries whole).
        self.dataset_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.dataset_combo.setMinimumContentsLength(14)
        self.dataset_combo.activated.connect(self._dataset_activated)
        layout.addWidget(self.dataset_combo)
        self.dataset_info = _wrapping_label(body, muted=True)
        layout.addWidget(self.dataset_info)
        self.fit_label = _wrapping_label(body)
        layout.addWidget(self.fit_label)
        # one-click fixes when the data and the Input disagree ("Set Input to (30,)", "Use digits_images, ...")
        self.fix_input_button = QPushButton(body)
        self.fix_input_button.clicked.connect(self.apply_input_fix)
        self.fix_dataset_button = QPushButton(body)
        self.fix_dataset_button.clicked.connect(self.apply_dataset_fix)
        for button in (self.fix_input_button, self.fix_dataset_button):
            button.hide()
            layout.addWidget(button)

        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train", body)
        self.train_button.setToolTip("Train the model on the chosen data (F5)")
        self.train_button.setDefault(True)
        self.train_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause", body)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop", body)
        self.stop_button.setToolTip("End the run after the current batch, keeping the best weights so far")
        self.stop_button.clicked.connect(self.stop)
        for b in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar(body)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.stats = _wrapping_label(body, muted=True)
        self.stats.setToolTip("Memory: the most the training process has held (its peak resident memory)")
        self.stats.hide()
        layout.addWidget(self.stats)
        self.data_label = _wrapping_label(body)    # how the run's image folder was read, skipped images
        layout.addWidget(self.data_label)
        self.status_label = _wrapping_label(body)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        self.changed_label = _wrapping_label(body)
        layout.addWidget(self.changed_label)

        layout.addWidget(_heading("Settings"))
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        # one widget per setting with a label, from its declaration (engine.runtime.settings.SETTINGS)
        self._setting_widgets: dict[str, QWidget] = {}
        for setting in SETTINGS:
            label = setting.label or PANEL_LABELS.get(setting.name, "")
            if not label:
                continue
            widget = self._setting_widget(body, setting)
            setattr(self, setting.name, widget)
            self._setting_widgets[setting.name] = widget
            if setting.name in AUTO_AT_MINIMUM and isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                widget.setSpecialValueText(AUTO_AT_MINIMUM[setting.name])
            if isinstance(widget, QCheckBox):
                form.addRow(widget)
                widget.toggled.connect(self._settings_changed)
            else:
                form.addRow(label, widget)
                if isinstance(widget, QComboBox):
                    widget.currentIndexChanged.connect(self._settings_changed)
                else:
                    widget.valueChanged.connect(self._settings_changed)
        self._fit_ranges(self.document.project.config)
        layout.addLayout(form)
        self.settings_error = _wrapping_label(body)
        layout.addWidget(self.settings_error)

        layout.addWidget(_heading("Runs"))
        hint = _wrapping_label(body, muted=True)
        hint.setText("Click a run to see its curves; tick runs to compare them. Click an epoch on the "
                     "validation curve to restore its weights.")
        layout.addWidget(hint)
        self.runs_list = QListWidget(body)
        self.runs_list.setMinimumHeight(110)
        self.runs_list.itemClicked.connect(self._run_clicked)
        self.runs_list.itemChanged.connect(lambda _: self._update_overlay())
        layout.addWidget(self.runs_list)
        layout.addStretch(1)
        self._update_buttons(False)

    def _setting_widget(self, body: QWidget, setting: Setting) -> QWidget:
        tip = setting.described[:1].upper() + setting.described[1:]
        if setting.name == "device":     # the devices present on this machine
            combo = QComboBox(body)
            combo.setToolTip(f"{tip}; only devices present on this machine are listed")
            for d in self._devices:
                memory = f" ({format_bytes(d['memory'])})" if d.get("memory") else ""
                label = "CPU" if d["id"] == "cpu" else f"{d['name']}{memory} — {d['id']}"
                combo.addItem(label, d["id"])
            combo.insertItem(0, f"Auto — {self._auto_device_name()}", "auto")
            return combo
        if setting.kind == "bool":
            box = QCheckBox(setting.label or PANEL_LABELS.get(setting.name, setting.name), body)
            box.setToolTip(tip)
            return box
        if setting.kind == "choice":
            combo = QComboBox(body)
            names = CHOICE_NAMES.get(setting.name, {})
            for key in setting.choices:
                combo.addItem(names.get(key, key), key)
            combo.setToolTip(tip)
            return combo
        if setting.kind == "int":
            return _spin(body, 0, 1, tip)          # ranges: _fit_ranges
        if setting.kind == "float":
            return _double(body, 0.0, 1.0, setting.decimals, setting.step, tip)
        raise ValueError(f"the Training panel has no widget for the {setting.kind} setting {setting.name}")

    def _fit_ranges(self, config: TrainConfig) -> None:
        """Each spin box holds only values `validate` accepts, given the other settings in `config` (the
        validation split leaves room for the project's test split)."""
        for name, widget in self._setting_widgets.items():
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                low, high = widget_range(SETTING[name], config)
                blocked = widget.blockSignals(True)
                try:
                    widget.setRange(low, high)
                finally:
                    widget.blockSignals(blocked)

    def _auto_device_name(self) -> str:
        from engine.training import resolve_device

        device = resolve_device("auto")
        for d in self._devices:
            if d["id"] == str(device) or (device.type == "cuda" and d["id"] == f"cuda:{device.index or 0}"):
                return d["name"]
        return str(device)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.session.prepare()     # a training process warms up while the user picks data and settings

    # ------------------------------------------------------------------ project <-> fields
    def load_from_project(self) -> None:
        """Show the document's settings, dataset and runs (after New / Open)."""
        if self.session.running:
            self.session.wait()
        project = self.document.project
        self._loading = True
        try:
            c = project.config
            self._fit_ranges(c)
            for name, widget in self._setting_widgets.items():
                _show_value(widget, getattr(c, name))
            if not _select(self.device, c.device):
                _select(self.device, "auto")
            if not project.dataset:
                # the dataset the graph names (a template's), else a built-in whose samples fit its Input
                # (an imported model): chosen as if picked, without making the project unsaved
                self.document.set_dataset(self._dataset_for_graph(), project.dataset_options, unsaved=False)
            self._fill_datasets(project.dataset)
        finally:
            self._loading = False
        self.runs_list.clear()
        for run in project.runs:
            if isinstance(run, dict):
                self._add_run_item(run)
        self.curves.clear()
        self.results.clear()
        self._set_status("")
        self._set_label(self.changed_label, "")
        self._set_label(self.settings_error, "")
        self.stats.hide()
        self.progress.setValue(0)
        self.progress.setFormat("Ready")
        if self.runs_list.count():
            last = self.runs_list.item(self.runs_list.count() - 1)
            self.runs_list.setCurrentItem(last)
            self._run_clicked(last)
        self._update_dataset_info()
        self.deviceText.emit(f"Device: {self.device.currentText()}")

    def _dataset_for_graph(self) -> str | None:
        """The dataset the graph names, else the built-in whose samples fit its one Input (and
        preferably its Output), else None."""
        graph, analysis = self.document.graph, self.document.analysis
        if graph.dataset:
            return graph.dataset
        inputs = [i for i in analysis.inputs if i in analysis.live and i in analysis.specs]
        if len(inputs) != 1:
            return None
        spec = analysis.specs[inputs[0]]
        out = analysis.specs.get(analysis.outputs[0]) if len(analysis.outputs) == 1 else None
        return builtin_for_shape(spec.shape, spec.dtype, out.shape if out is not None else None)

    def _fill_datasets(self, current: str | None) -> None:
        combo = self.dataset_combo
        combo.clear()
        for name, info in self._builtins.items():
            suffix = "" if info["offline"] else " (downloads once)"
            combo.addItem(f"{name} — {format_shape(info['input_shape'])}{suffix}", name)
            combo.setItemData(combo.count() - 1, info["description"], Qt.ToolTipRole)
        self._missing_dataset = None
        if current and current not in self._builtins and current not in self._imported:
            from pathlib import Path

            if Path(current).exists():
                self._imported[current] = (None, dict(self.document.project.dataset_options))
            else:
                self._missing_dataset = current
        for spec in self._imported:
            combo.addItem(_short_path(spec), spec)
            combo.setItemData(combo.count() - 1, spec, Qt.ToolTipRole)
        if self._missing_dataset:     # listed, and selected: it is the data this project uses
            combo.addItem(f"{_short_path(self._missing_dataset)} (not found)", self._missing_dataset)
            combo.setItemData(combo.count() - 1, self._missing_dataset, Qt.ToolTipRole)
        combo.addItem("Import…", IMPORT)
        if not current or not _select(combo, current):
            _select(combo, "digits")
        self._last_spec = self.dataset_spec()

    def dataset_spec(self) -> str:
        return self.dataset_combo.currentData() or ""

    def set_dataset(self, spec: str) -> None:
        """Choose a built-in (or already imported) dataset by name, as picking it in the list does."""
        if not _select(self.dataset_combo, spec):
            raise KeyError(spec)
        self._dataset_activated(self.dataset_combo.currentIndex())

    def _dataset_activated(self, index: int) -> None:
        spec = self.dataset_combo.itemData(index)
        if spec == IMPORT:
            self.import_dataset()
            return
        self._last_spec = spec
        if spec != self.document.project.dataset:
            self.document.set_dataset(spec, self._imported.get(spec, (None, {}))[1], unsaved=not self._loading)
        self._update_dataset_info()

    def import_dataset(self, dialog: DatasetImportDialog | None = None) -> bool:
        dialog = dialog or DatasetImportDialog(self, str(self.document.path.parent) if self.document.path else "",
                                               bad_images=_read_value(self.bad_images))
        accepted = dialog.exec() == DatasetImportDialog.Accepted and dialog.dataset is not None
        if accepted:
            if getattr(dialog.dataset, "images", None) is not None:     # the dialog's Skip box is this setting
                _select(self.bad_images, dialog.bad_images)
            self.accept_import(dialog.spec, dialog.dataset, dialog.options)
        else:   # the list shows again the data in use, not "Import…" nor a default
            _select(self.dataset_combo, self.document.project.dataset or self._last_spec or "digits")
        return accepted

    def accept_import(self, spec: str, dataset: Dataset, options: dict) -> None:
        self._imported[spec] = (dataset, dict(options))
        self._loading = True
        try:
            self._fill_datasets(spec)
        finally:
            self._loading = False
        self.document.set_dataset(spec, options)
        self._update_dataset_info()

    def _update_dataset_info(self) -> None:
        spec = self.dataset_spec()
        info = self._builtins.get(spec)
        if info is not None:
            classes = f"{info['num_classes']} classes" if info["num_classes"] else "regression"
            text = f"{info['samples']:,} samples · inputs {format_shape(info['input_shape'])} · {classes}"
            if not info["offline"]:
                text += " · downloaded on first use"
            self.dataset_info.setText(text)
            self.dataset_info.setToolTip(info["description"])
        else:
            dataset = self._imported.get(spec, (None, {}))[0]
            self.dataset_info.setText(describe_dataset(dataset) if dataset is not None else spec)
            self.dataset_info.setToolTip(spec)
        if self._missing_dataset and spec == self._missing_dataset:
            self.dataset_info.setText(f"This project is meant for '{self._missing_dataset}', which is not on this "
                                      "machine: choose Import… to pick your data, or another dataset.")
        self._update_fit()

    def fit_problems(self) -> list[str]:
        """How the chosen data does not fit the model, as far as is known without loading it."""
        analysis = self.document.analysis
        graph = self.document.graph
        if not analysis.ok:
            return []
        spec = self.dataset_spec()
        if spec and spec == self._missing_dataset and not _exists(spec):
            return [f"'{spec}' is not on this machine: choose Import… to pick your data"]
        dataset = self._imported.get(spec, (None, {}))[0]
        if dataset is not None:
            return check_data(graph, analysis, dataset)
        info = self._builtins.get(spec)
        if info is None:
            return []
        inputs = [i for i in analysis.inputs if i in analysis.live]
        if len(inputs) != 1 or len(analysis.outputs) != 1:
            return [f"training needs a model with one Input and one Output; this one has {len(inputs)} "
                    f"input(s) and {len(analysis.outputs)} output(s)"]
        problems = []
        in_spec, out_spec = analysis.specs[inputs[0]], analysis.specs[analysis.outputs[0]]
        if tuple(info["input_shape"]) != in_spec.shape:
            problems.append(f"{spec} gives inputs of shape {format_shape(info['input_shape'])}; input "
                            f"'{graph.node(inputs[0]).name}' expects {format_shape(in_spec.shape)}")
        if (info["dtype"] == "int64") != (in_spec.dtype == "int64"):
            what = "token ids (int64)" if info["dtype"] == "int64" else "numbers (float32)"
            problems.append(f"{spec} gives {what}; input '{graph.node(inputs[0]).name}' is set to {in_spec.dtype}")
        k = info["num_classes"]
        out_name = graph.node(analysis.outputs[0]).name
        if info["task"] == "multiclass" and out_spec.shape != (k,):
            problems.append(f"{spec} has {k} classes; the model outputs {format_shape(out_spec.shape)} "
                            f"(Output '{out_name}'): end with a Linear of {k} units")
        elif info["task"] == "binary" and out_spec.shape not in ((1,), (2,)):
            problems.append(f"{spec} has 2 classes; the model outputs {format_shape(out_spec.shape)} "
                            f"(Output '{out_name}'): end with a Linear of 1 unit (sigmoid) or 2 units")
        elif info["task"] == "regression" and out_spec.shape != (1,):
            problems.append(f"{spec} has one target value; the model outputs {format_shape(out_spec.shape)} "
                            f"(Output '{out_name}'): end with a Linear of 1 unit")
        return problems

    def _update_fit(self) -> None:
        self._input_fix, self._dataset_fix = None, None
        if not self.document.analysis.ok:
            self._set_label(self.fit_label, "The graph has errors (see Problems): fix them to train.", "warning")
        else:
            problems = self.fit_problems()
            if problems:
                self._set_label(self.fit_label, "The data does not fit the model: " + "; ".join(problems), "error")
                self._find_fixes()
            else:
                self._set_label(self.fit_label, "")
        self._show_fixes()
        self._refresh_blocked()

    def _data_input(self) -> tuple[tuple[int, ...], str] | None:
        """The chosen data's sample shape and dtype, as far as is known without loading it."""
        spec = self.dataset_spec()
        dataset = self._imported.get(spec, (None, {}))[0]
        if dataset is not None:
            return tuple(dataset.input_shape), dataset.dtype
        info = self._builtins.get(spec)
        return (tuple(info["input_shape"]), info["dtype"]) if info is not None else None

    def _find_fixes(self) -> None:
        """When the data's samples and the model's one Input disagree: set the Input to the data's
        shape, or use the built-in dataset whose samples fit the Input."""
        analysis, graph = self.document.analysis, self.document.graph
        inputs = [i for i in analysis.inputs if i in analysis.live and i in analysis.specs]
        data = self._data_input()
        if len(inputs) != 1 or len(analysis.outputs) != 1 or data is None:
            return
        spec, out = analysis.specs[inputs[0]], analysis.specs.get(analysis.outputs[0])
        shape, dtype = data
        if (shape, dtype) == (spec.shape, spec.dtype):
            return
        node = graph.node(inputs[0])
        changes = {}
        if list(node.params.get("shape") or []) != list(shape):
            changes["shape"] = list(shape)
        if node.params.get("dtype", "float32") != dtype:
            changes["dtype"] = dtype
        if changes:
            self._input_fix = (inputs[0], changes)
        fits = builtin_for_shape(spec.shape, spec.dtype, out.shape if out is not None else None)
        if fits and fits != self.dataset_spec():
            self._dataset_fix = fits

    def _show_fixes(self) -> None:
        running = self.session.running
        if self._input_fix is not None and not running:
            node_id, changes = self._input_fix
            data = self._data_input()
            self.fix_input_button.setText(f"Set Input to {describe_input(*data)}")
            self.fix_input_button.setToolTip(f"Set the shape of input '{self.document.graph.node(node_id).name}' to "
                                             f"that of the data's samples (Undo puts it back)")
        self.fix_input_button.setVisible(self._input_fix is not None and not running)
        if self._dataset_fix is not None and not running:
            info = self._builtins[self._dataset_fix]
            self.fix_dataset_button.setText(f"Use {self._dataset_fix}, which gives "
                                            f"{describe_input(info['input_shape'], info['dtype'])}")
            self.fix_dataset_button.setToolTip(info["description"])
        self.fix_dataset_button.setVisible(self._dataset_fix is not None and not running)

    def apply_input_fix(self) -> None:
        """Set the Input to the data's sample shape: one step on the undo stack, like every edit."""
        if self._input_fix is None or self.session.running:
            return
        node_id, changes = self._input_fix
        if node_id not in self.document.graph:
            return
        self.document.undo_stack.push(SetParams(self.document.graph, node_id, changes, merge=False))
        self.document.refresh()       # the fit and the buttons follow at once, not 40 ms later

    def apply_dataset_fix(self) -> None:
        if self._dataset_fix is not None and not self.session.running:
            self.set_dataset(self._dataset_fix)

    def _start_blocker(self) -> str | None:
        """Why Train would refuse now (a line for the status label), or None."""
        if not self.document.analysis.ok:
            return "The graph has errors: fix them (see Problems) before training."
        try:
            self.config_from_fields()
        except ConfigError as exc:
            return f"Cannot train: {exc}"
        problems = self.fit_problems()
        return "Cannot train: " + "; ".join(problems) if problems else None

    def _refresh_blocked(self) -> None:
        """A "Cannot train" line stays only while it is true: updated when the reason changes,
        gone when it no longer holds."""
        if not self._blocked or self.session.running:
            return
        reason = self._start_blocker()
        if reason is None:
            self._set_status("")
        elif reason != self.status_label.text():
            self._set_status(reason, "error", blocked=True)

    def _settings_from_project(self) -> None:
        """Settings changed elsewhere (Load Weights… sets Start from; its undo sets it back): shown here."""
        if self._loading or self.session.running:
            return
        config = self.document.project.config
        self._loading = True
        try:
            for name, widget in self._setting_widgets.items():
                if _read_value(widget) != getattr(config, name):
                    _show_value(widget, getattr(config, name))
        finally:
            self._loading = False

    def config_from_fields(self) -> TrainConfig:
        """The settings as shown. Raises ConfigError for a combination the engine refuses. A project
        file never chooses where files are written: its checkpoint folder is not used."""
        shown = {name: _read_value(widget) for name, widget in self._setting_widgets.items()}
        return replace(self.document.project.config, checkpoint_dir=None, **shown).validate()

    def _settings_changed(self) -> None:
        self.patience.setEnabled(self.early_stopping.isChecked())
        if self._loading:
            return
        try:
            config = self.config_from_fields()
        except ConfigError as exc:
            self._set_label(self.settings_error, str(exc), "error")
            self._refresh_blocked()
            return
        self._set_label(self.settings_error, "")
        self._refresh_blocked()
        self.document.set_training_config(config)
        self.deviceText.emit(f"Device: {self.device.currentText()}")

    # ------------------------------------------------------------------ running
    def start(self) -> bool:
        """Train: snapshot the graph and the settings, and run them in the background."""
        if self.session.running:
            return False
        if not self.document.analysis.ok:
            self.document.refresh()
        reason = self._start_blocker()
        if reason is not None:
            self._set_status(reason, "error", blocked=True)
            return False
        config = self.config_from_fields()
        spec = self.dataset_spec()
        dataset, options = self._imported.get(spec, (None, {}))
        graph = Graph.from_dict(self.document.graph.to_dict())
        self.document.set_training_config(config)
        if spec != self.document.project.dataset:
            self.document.set_dataset(spec, options)
        self._run_config, self._run_spec, self._run_options = config, spec, dict(options)
        self._run_id = str(self.document.project.next_run_id())     # the id Project.record_run will give it
        info = self._builtins.get(spec)
        self._task = (info["task"] if info else dataset.task if dataset is not None else "multiclass")
        self._batch_losses, self._batches_per_epoch = [], 0
        self._latest = self._shown = None
        self._run_project, self._run_graph_changed = self.document.project, False
        self._run_signature = graph_signature(graph)
        self._stop_clicked = False
        self.document.graph.subscribe(self._graph_event)
        self.curves.clear_overlay()
        self.curves.start_run(self._run_id, self._task, config.epochs)
        self.curves.set_live(True)
        self.results.clear()
        self._set_label(self.changed_label, "")
        self.stats.hide()
        self._set_label(self.data_label, "")
        self._data_loading, self._data_report = False, None
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        self._set_status(f"Run {self._run_id}: starting…")
        # Data imported and read already goes as it is (an image folder's pixels as its cache file, which
        # the training process maps). An image folder whose cache file is gone (the cache was cleared)
        # goes as its path: the training process reads it again, its progress shown (_on_loading).
        images = getattr(dataset, "images", None)
        if images is not None and not (images.cache and _exists(images.cache)):
            dataset = None
        elif images is not None:
            self._set_label(self.data_label, self._data_text(
                {"cache_hit": True, "total": len(images.files), "skipped": len(images.skipped)}),
                "warning" if images.skipped else "")
            self._data_report = {"skipped": len(images.skipped)}
        project = self.document.project
        start = (project.start_weights or project.weights) if config.start_from == "weights" else None
        self.session.start(RunRequest(graph, dataset if dataset is not None else spec, config, options, initial=start))
        self.runStarted.emit()
        return True

    def stop(self) -> None:
        if self.session.running:
            self._stop_clicked = True
            self.session.stop()
            if self._data_loading:
                self.progress.setFormat("Cancelling…")
                self._set_status("Stopping: the images are no longer read…")
            else:
                self._set_status("Stopping after this batch…")

    def toggle_pause(self) -> None:
        if not self.session.running:
            return
        if self.session.paused:
            self.session.resume()
            self.pause_button.setText("Pause")
            self._set_status("Training…")
            self._show_progress(again=True)      # the ETA again
        else:
            self.session.pause()
            self.pause_button.setText("Resume")
            self._show_progress(again=True)      # no ETA while nothing moves
            self._set_status("Paused: Resume to go on, Stop to end the run keeping the best "
                                               "weights so far.")

    def confirm_stop(self) -> bool:
        """Before closing or replacing the project: True when no run is going or the user agreed to stop it."""
        if not self.session.running:
            return True
        answer = QMessageBox.question(self, "Training in progress", "A training run is in progress. Stop it?",
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return False
        self.session.wait()
        return True

    def _graph_event(self, event: str, payload: dict) -> None:
        """During a run: say so while the graph differs from the run's (an undo back to it clears it)."""
        if event == "node_moved" or self._run_project is None:
            return
        changed = graph_signature(self._run_project.graph) != self._run_signature
        if changed != self._run_graph_changed:
            self._run_graph_changed = changed
            self._set_label(self.changed_label, "The graph has changed since this run started; the run goes on "
                                                "with the graph as it was." if changed else "", "warning")

    def _on_status(self, text: str) -> None:
        self._set_status(text)

    def _on_loading(self, info: dict) -> None:
        """The training process reads an image folder: its progress in the bar ("Decoding 1,234 of
        20,000 images", "Read from cache: …"), until the first batch."""
        if not self.session.running:
            return
        phase = info.get("phase")
        if phase == "notice":
            self._set_label(self.data_label, str(info.get("message") or ""), "warning")
            return
        if phase == "ready":
            self._data_report = dict(info)
            self._set_label(self.data_label, self._data_text(info), "warning" if info.get("skipped") else "")
        if self._shown is not None or self._latest is not None:
            return    # training has begun (a large folder goes on decoding in the first epoch): the bar is its
        self._data_loading = phase != "ready"
        if self._stop_clicked:
            return                      # "Cancelling…" stays until the run ends
        total, done = int(info.get("total") or 0), int(info.get("done") or 0)
        if phase == "decode" and total:
            self._set_progress(done, maximum=total, text=loading_text(info))
        else:                           # listing the files; or ready, the model being compiled next
            self._set_progress(0, maximum=0, text=loading_text(info))

    @staticmethod
    def _data_text(info: dict) -> str:
        total, skipped = int(info.get("total") or 0), int(info.get("skipped") or 0)
        text = (f"Images read from the image cache ({total:,})" if info.get("cache_hit") else
                f"Images decoded into the image cache ({total:,})")
        if skipped:
            text += f" · {skipped:,} unreadable image{'s' * (skipped != 1)} skipped"
        return text

    def _on_batch(self, info: dict) -> None:
        self._data_loading = False
        self._batch_losses.extend(info["losses"])
        self._batches_per_epoch = info["batches"]
        self.curves.add_batches(info)
        self._latest = info
        if not self._progress_timer.isActive():   # the figures change faster than anyone reads them
            self._progress_timer.start()

    def _set_status(self, text: str, kind: str = "", blocked: bool = False) -> None:
        """The status line; `blocked`: it says why Train refused, and is kept true (_refresh_blocked)."""
        self._blocked = blocked
        self._set_label(self.status_label, text, kind)

    def _show_progress(self, final: bool = False, again: bool = False) -> None:
        """The latest report, in the bar, the figures below it and the curves' header at once (so
        they never name different batches). Once the run is over (`final`) or while it is paused
        there is no time left to estimate: no ETA."""
        info, self._latest = self._latest, None
        if info is None:
            info = self._shown if final or again else None
            if info is None:
                return
        self._shown = info
        total = max(int(info["total_steps"]), 1)
        if self.progress.maximum() != total and not final:
            self._set_progress(maximum=total)
            self._set_status("Training…")
        self._set_progress(int(info["step"]),
                           text=f"Epoch {info['epoch']}/{info['epochs']} · batch {info['batch']}/{info['batches']}")
        self.curves.show_progress(info)
        parts = [f"{info['samples_per_s']:,.0f} samples/s"]
        if not final and not self.session.paused:
            parts.append(f"ETA {format_seconds(info['eta_s'])}")
        if info.get("peak_rss"):
            parts.append(f"memory {format_bytes(info['peak_rss'])}")
        if info.get("gpu_memory"):
            parts.append(f"GPU memory {format_bytes(info['gpu_memory'])}")
        if info["losses"]:
            parts.append(f"loss {info['losses'][-1]:.4g}")
        self.stats.setText(" · ".join(parts))
        self.stats.show()

    def _set_progress(self, value: int | None = None, maximum: int | None = None, text: str | None = None) -> None:
        """Change the progress bar without QProgressBar's immediate repaint (which also painted
        whatever else was due, the curves included: ~20 ms at once); it repaints with the rest."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        try:
            if maximum is not None:
                bar.setRange(0, maximum)
            if value is not None:
                bar.setValue(value)
            if text is not None:
                bar.setFormat(text)
        finally:
            bar.setUpdatesEnabled(True)

    def _on_epoch(self, record: dict) -> None:
        self.curves.add_epoch(record)

    def _finish_common(self) -> None:
        self._progress_timer.stop()
        self._show_progress(final=True)
        try:
            self._run_project.graph.unsubscribe(self._graph_event)
        except AttributeError:
            pass
        # whether the graph now differs from the run's (an edit undone is no change)
        self._run_graph_changed = (self._run_project is not None
                                   and graph_signature(self._run_project.graph) != self._run_signature)
        self._set_label(self.changed_label, "")     # the run is over; the finishing line says what happened
        self._set_progress(maximum=1)
        self.pause_button.setText("Pause")
        self.curves.set_live(False)

    def _on_finished(self, outcome) -> None:
        self._finish_common()
        result = outcome.result
        if self._run_project is not self.document.project:
            self._set_status("The run finished, but its project was closed meanwhile.", "warning")
            return
        applied = not self._run_graph_changed
        # the one way a run is recorded (the CLI's too); its epochs' weights are saved with the project
        run = self.document.record_run(result, config=self._run_config, dataset=self._run_spec,
                                       options=self._run_options, started_at=outcome.started_at,
                                       dataset_name=outcome.dataset_name, batch_losses=self._batch_losses,
                                       batches_per_epoch=self._batches_per_epoch, apply_weights=applied)
        self._run_id = str(run["id"])
        self._settings_changed()     # settings edited during the run stay the project's
        self._set_progress(1, text="Done" if result.stopped != "user" else "Stopped")
        self._add_run_item(run, select=True)
        samples = outcome.samples
        if samples is not None and result.task != "regression" and not is_image_data(samples["x"]):
            samples = None
        # the results view fills in two more turns of the event loop (the confusion matrix, then
        # the sample images: tens of ms each), so the window never stalls for all of it at once
        run_id = self._run_id
        images = samples if result.task != "regression" else None

        def fill(step: int) -> None:
            if run_id != self._run_id or self.session.running:
                return                 # another run began meanwhile
            if step == 0:
                self.results.show_results(result.task, result.test_metrics, result.class_names,
                                          None if images is not None else samples)
                QTimer.singleShot(0, lambda: fill(1))
            elif images is not None:
                self.results.show_samples(images)

        QTimer.singleShot(0, lambda: fill(0))
        how = {"user": "stopped by you (best weights kept)", "early_stopping": "ended by early stopping",
               "diverged": f"ended at epoch {len(result.history) + 1}, where the loss stopped being a number "
                           f"(the weights of its best epoch, {result.best_epoch}, were kept)"}.get(
            result.stopped, "finished")
        test = result.test_metrics
        metric = (f"test accuracy {format_metric(test['accuracy'], '.2%')}" if "accuracy" in test else
                  f"test MAE {format_metric(test['mae'])}" if "mae" in test else "no test split")
        text = (f"Run {self._run_id} {how}: {len(result.history)} epoch(s) in {format_seconds(result.seconds)} on "
                f"{result.device}; best epoch {result.best_epoch}; {metric}. See the Results tab.")
        if result.note:
            text += f" {result.note[0].upper()}{result.note[1:]}."
        skipped = int((self._data_report or {}).get("skipped") or 0)
        if skipped:
            text += f" {skipped:,} unreadable image{'s were' if skipped != 1 else ' was'} skipped."
        if not applied:
            text += (" The graph changed during the run, so its weights were kept with the run but not "
                     "applied to the edited graph.")
        self._set_status(text, "" if applied and result.stopped != "diverged" else "warning")
        self.message.emit(f"Run {self._run_id} {how}: {metric}")

    def _on_failed(self, message: str) -> None:
        self._finish_common()
        if self._stop_clicked and message.startswith("stopped before"):
            # not a trained model: nothing recorded, the document's weights untouched
            self._set_progress(0, text="Stopped")
            self._set_status(f"Run {self._run_id} was stopped before its first batch: nothing "
                                               "was trained, and the model's weights are unchanged.", "warning")
            self.message.emit(f"Run {self._run_id} stopped before its first batch: nothing trained")
            return
        self._set_progress(0, text="Failed")
        if self._data_loading and "image" in message and _read_value(self.bad_images) == "stop":
            message += (f". To leave such files out, set Bad images to ‘{BAD_IMAGES_NAMES['skip']}’ "
                        "and train again")
        self._set_status(f"Run {self._run_id} failed: {message}", "error")
        self.message.emit(f"Training failed: {message}")

    def _update_buttons(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        for w in (self.dataset_combo, self.device):
            w.setEnabled(not running)
        self._show_fixes()
        if running:
            self.deviceText.emit(f"Training on: {self.device.currentText()}")
        else:
            self.deviceText.emit(f"Device: {self.device.currentText()}")

    # ------------------------------------------------------------------ history
    def _add_run_item(self, run: dict, select: bool = False) -> None:
        item = QListWidgetItem(run_title(run))
        item.setData(Qt.UserRole, run)
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Unchecked)
        test = run.get("test") or {}
        item.setToolTip("\n".join([f"started {run.get('started_at', '?')} on {run.get('device', '?')}",
                                   *(f"{k}: {format_metric(v)}" for k, v in test.items()
                                     if v is None or isinstance(v, float)),
                                   *([run["note"]] if isinstance(run.get("note"), str) else [])]))
        self.runs_list.blockSignals(True)
        self.runs_list.addItem(item)
        self.runs_list.blockSignals(False)
        if select:
            self.runs_list.setCurrentItem(item)

    def _run_clicked(self, item: QListWidgetItem) -> None:
        if self.session.running:
            return
        run = item.data(Qt.UserRole)
        self.curves.show_history(str(run.get("id")), run.get("history") or [], run.get("batch_losses"),
                                 run.get("batches_per_epoch"))
        self._update_overlay()
        test = run.get("test") or {}
        if test:
            self.results.show_results(run.get("task") or ("multiclass" if "accuracy" in test else "regression"),
                                      test, run.get("class_names"), None)

    def _update_overlay(self) -> None:
        if self.session.running:
            return
        chosen = [self.runs_list.item(i).data(Qt.UserRole) for i in range(self.runs_list.count())
                  if self.runs_list.item(i).checkState() == Qt.Checked]
        self.curves.clear_overlay()
        if chosen:
            self.curves.overlay([(f"Run {r.get('id')}", r.get("history") or []) for r in chosen])

    def restore_epoch(self, run_id: str, epoch: int, ask: bool = True) -> bool:
        """Put the weights of `epoch` of run `run_id` into the project (when they were kept: see
        Project.keep_checkpoints; they are saved with the project)."""
        states = self.document.project.checkpoints.get(int(run_id), {})
        state = states.get(int(epoch))
        if state is None:
            kept = sorted(states)
            where = (f"only epochs {', '.join(map(str, kept))} of run {run_id} are kept" if kept else
                     f"the epochs' weights of run {run_id} were not kept (a project keeps "
                     f"{CHECKPOINT_BUDGET // 2**20} MB of them, the newest runs first)")
            self._set_status(f"Cannot restore epoch {epoch}: {where}.", "warning")
            return False
        if ask and QMessageBox.question(
                self, "Restore weights", f"Replace the model's weights with those of run {run_id}, epoch {epoch}?",
                QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes) != QMessageBox.Yes:
            return False
        from engine.compiler import compile_graph

        try:
            compile_graph(self.document.graph).load_state_dict(state, strict=True)
        except Exception as exc:  # the graph was edited since: the weights no longer fit
            self._set_status(f"Cannot restore epoch {epoch}: the weights do not fit the graph "
                                               f"as it is now ({str(exc).splitlines()[0][:160]}).", "error")
            return False
        self.document.set_weights(dict(state))
        self._set_status(f"Restored the weights of run {run_id}, epoch {epoch}.")
        self.message.emit(f"Restored run {run_id}, epoch {epoch}")
        return True

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _set_label(label: QLabel, text: str, kind: str = "") -> None:
        label.setText(text)
        label.setStyleSheet(f"color: {theme.colours()[kind]}" if kind else "")
        label.setVisible(bool(text))


def _heading(text: str) -> QLabel:
    label = QLabel(f"<b>{text}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    return label


def _wrapping_label(parent: QWidget, muted: bool = False) -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setVisible(muted)     # message labels show only with a message (see _set_label)
    if muted:
        label.setStyleSheet(f"color: {theme.colours()['muted']}")
    return label


def widget_range(setting: Setting, config: TrainConfig) -> tuple[float, float]:
    """The (low, high) of a setting's spin box: its bounds (narrowed by the other settings in `config`),
    an open bound moved in by one step of the shown precision, no bound: what the box can hold."""
    low, high = setting_bounds(setting.name, config)
    if setting.kind == "int":
        unit, floor, ceiling = 1, -(2**31), 2**31 - 1
    else:
        unit, floor, ceiling = 10.0 ** -setting.decimals, -1e12, 1e12
    low = floor if low is None else low + unit if setting.low_open else low
    if high is None:
        high = ceiling
    else:    # below an open bound (or a narrowed one, which is open) by a step of the shown precision
        open_high = setting.high_open or high != setting.high
        high = high - unit if open_high else high
    if setting.kind == "float":
        low, high = math.ceil(round(low / unit, 6)) * unit, math.floor(round(high / unit, 6)) * unit
        low, high = round(low, setting.decimals), round(high, setting.decimals)
        return low, max(low, high)
    return int(low), max(int(low), int(high))


def _spin(parent: QWidget, lo: int, hi: int, tip: str) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setRange(lo, hi)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)
    return spin


def _double(parent: QWidget, lo: float, hi: float, decimals: int, step: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox(parent)
    spin.setDecimals(decimals)
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)
    return spin


def _show_value(widget: QWidget, value) -> None:
    if isinstance(widget, QComboBox):
        _select(widget, value)
    elif isinstance(widget, QCheckBox):
        widget.setChecked(value)
    else:
        widget.setValue(value)


def _read_value(widget: QWidget):
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    return widget.value()


def _select(combo: QComboBox, data) -> bool:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0


def _exists(spec: str) -> bool:
    from pathlib import Path

    try:
        return Path(spec).exists()
    except (OSError, ValueError):
        return False


def _short_path(spec: str) -> str:
    from pathlib import Path

    p = Path(spec)
    return f"{p.name} — {p.parent.name or p.anchor}" if p.name else spec
