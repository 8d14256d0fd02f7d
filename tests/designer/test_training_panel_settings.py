"""The Training panel's settings form comes from engine.runtime.settings.SETTINGS, and every value its widgets
can hold, at their extremes, is one TrainConfig.validate accepts."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QCheckBox, QComboBox

from designer.training_panel import PANEL_LABELS
from engine.runtime.settings import SETTING, SETTINGS


def test_the_form_has_a_widget_per_labelled_setting(window):
    panel = window.training
    assert list(panel._setting_widgets) == [s.name for s in SETTINGS if s.label or s.name in PANEL_LABELS]
    for name, widget in panel._setting_widgets.items():
        assert widget.toolTip()
        s = SETTING[name]
        if s.kind == "choice":
            assert [widget.itemData(i) for i in range(widget.count())] == list(s.choices)


def _extremes(widget):
    if isinstance(widget, QComboBox):
        return [widget.itemData(i) for i in range(widget.count())]
    if isinstance(widget, QCheckBox):
        return [False, True]
    return [widget.minimum(), widget.maximum()]


def test_every_extreme_the_widgets_hold_passes_validate(window):
    panel = window.training
    for test_split in (0.0, 0.2, 0.5, 0.85):
        window.document.project.config = replace(window.document.project.config, test_split=test_split)
        panel.load_from_project()
        for name, widget in panel._setting_widgets.items():
            if name == "device":
                continue                     # the devices listed are the ones present
            for value in _extremes(widget):
                panel._loading = True
                try:
                    if isinstance(widget, QComboBox):
                        widget.setCurrentIndex(widget.findData(value))
                    elif isinstance(widget, QCheckBox):
                        widget.setChecked(value)
                    else:
                        widget.setValue(value)
                finally:
                    panel._loading = False
                config = panel.config_from_fields()      # raises ConfigError if validate refuses it
                assert getattr(config, name) == value
            panel.load_from_project()


def test_validation_split_leaves_room_for_the_test_split(window):
    panel = window.training
    panel.load_from_project()
    assert panel.val_split.maximum() + window.document.project.config.test_split < 0.9
