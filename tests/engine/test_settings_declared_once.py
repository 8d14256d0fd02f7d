"""Training settings are declared once (engine.runtime.settings.SETTINGS): TrainConfig, validate, the CLI's
flags, the exported train.py's Config and the Training panel's form all come from that table."""
from __future__ import annotations

from dataclasses import fields, replace

import pytest

from engine.runtime import settings
from engine.runtime.settings import SETTINGS, ConfigError, Setting, TrainConfig


def test_trainconfig_fields_are_the_settings():
    assert [(f.name, f.type, f.default) for f in fields(TrainConfig)] == \
        [(s.name, s.python_type, s.default) for s in SETTINGS]
    TrainConfig().validate()


@pytest.mark.parametrize("s", [s for s in SETTINGS if s.kind in ("int", "float")], ids=lambda s: s.name)
def test_validate_enforces_each_declared_bound(s):
    step = 1 if s.kind == "int" else 1e-6
    config = TrainConfig(val_split=0.0, test_split=0.0)
    for bound, outside, is_open in ((s.low, -step, s.low_open), (s.high, step, s.high_open)):
        if bound is None:
            continue
        value = type(s.default)(bound)
        if is_open:
            with pytest.raises(ConfigError):
                replace(config, **{s.name: value}).validate()
        with pytest.raises(ConfigError):
            replace(config, **{s.name: type(s.default)(bound + outside)}).validate()


@pytest.mark.parametrize("s", [s for s in SETTINGS if s.kind == "choice"], ids=lambda s: s.name)
def test_validate_enforces_choices(s):
    for choice in s.choices:
        TrainConfig(**{s.name: choice}).validate()
    with pytest.raises(ConfigError):
        TrainConfig(**{s.name: "no-such-" + s.name}).validate()


def test_cli_has_a_flag_for_each_setting_with_one():
    from engine.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    for s in SETTINGS:
        if s.flag:
            assert s.flag in text
            args = parser.parse_args(["train", "x.json"])
            assert getattr(args, s.name) is None      # unset: the project's own


def test_exported_config_has_each_exported_setting():
    from engine.export.python_bundle import CONFIG_FIELDS, _config_lines

    assert [name for name, _, _ in CONFIG_FIELDS] == [s.name for s in SETTINGS if s.export]
    text = _config_lines(TrainConfig())
    for s in SETTINGS:
        assert (f"    {s.name}=" in text) == s.export


def test_a_setting_added_to_the_table_reaches_the_cli_and_the_export(monkeypatch):
    import engine.export.python_bundle as bundle
    from engine.cli import build_parser

    extra = Setting("warmup_epochs", "int", 0, 0, 1000, help="epochs of linear learning-rate warm-up",
                    flag="--warmup-epochs")
    monkeypatch.setattr(settings, "SETTINGS", SETTINGS + (extra,))
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert "--warmup-epochs" in train.format_help()
    assert "epochs of linear learning-rate warm-up" in train.format_help()
    assert train.parse_args(["x.json", "--warmup-epochs", "3"]).warmup_epochs == 3
    fields_ = tuple((s.name, s.python_type, s.described) for s in settings.SETTINGS if s.export)
    monkeypatch.setattr(bundle, "CONFIG_FIELDS", fields_)

    class WithExtra(TrainConfig):
        warmup_epochs = 2
    assert "    warmup_epochs=2," in bundle._config_lines(WithExtra())
