"""Each training option is declared once, as a `TrainConfig` field; the CLI options, the TOML
keys, the resume check and the model card's rows come from it."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest
import typer

from zoo.cli import app
from zoo.errors import ZooError
from zoo.training.config import TrainConfig, card_rows
from zoo.training.settings import read_settings


def _train_command():
    return typer.main.get_command(app).commands["train"]


def test_every_field_is_a_train_option_with_its_help():
    params = {p.name: p for p in _train_command().params}
    for f in fields(TrainConfig):
        assert f.name in params, f"--{f.name} missing from zoo train"
        assert params[f.name].help == f.metadata["help"]
        assert params[f.name].default is None  # None: not given, the model's default applies


def test_every_field_is_a_config_file_key(tmp_path):
    config = TrainConfig()
    path = tmp_path / "all.toml"
    lines = [
        f"{f.name.replace('_', '-')} = {_toml(getattr(config, f.name))}"
        for f in fields(TrainConfig)
        if getattr(config, f.name) is not None
    ]
    path.write_text("\n".join(lines))
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    read = read_settings(path, types)
    assert read == {k: v for k, v in asdict(config).items() if v is not None}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_resume_takes_an_option_an_older_checkpoint_lacks_as_its_default():
    saved = asdict(TrainConfig(epochs=3))
    del saved["label_smoothing"]  # written before the option existed
    with pytest.raises(ZooError, match=r"--label-smoothing 0\.1 \(the run has 0\.0\)"):
        TrainConfig(epochs=3, label_smoothing=0.1).resumed(saved, given={"label_smoothing"})
    resumed = TrainConfig(epochs=3).resumed(saved, given={"label_smoothing"})
    assert resumed.label_smoothing == 0.0 and resumed.epochs == 3


def test_resume_may_change_only_the_runtime_options():
    saved = asdict(TrainConfig(epochs=3))
    runtime = {f.name for f in fields(TrainConfig) if f.metadata["runtime"]}
    assert runtime == {
        "device",
        "workers",
        "data_dir",
        "download",
        "compile",
        "threads",
        "channels_last",
    }
    assert TrainConfig(epochs=3, threads=1).resumed(saved, given={"threads"}).threads == 1
    with pytest.raises(ZooError, match="--epochs 4"):
        TrainConfig(epochs=4).resumed(saved, given={"epochs"})


def test_the_card_shows_the_declared_labels_in_declaration_order():
    rows = card_rows(asdict(TrainConfig(epochs=7, augment=False, limit=None)))
    labels = [label for label, _ in rows]
    assert labels[:2] == ["epochs", "batch size"]
    assert ("augmentation", False) in rows  # shown even when off
    assert "image limit" not in labels and "bf16 autocast" not in labels  # None and False
