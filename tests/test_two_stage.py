"""Two-stage fine-tuning (`--strategy two-stage`): the head alone on cached features, then every
layer at rates that decay layer-wise towards the input (timm's layer decay); the default with
`--pretrained`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from tests.test_train import one_thread, same_tensors, start_and_stop_mid_way, where
from zoo.training.checkpoint import trained_state
from zoo.training.config import LAYER_DECAY, TWO_STAGE, TrainConfig
from zoo.training.distributed import setup
from zoo.training.layer_decay import layers
from zoo.training.loop import _Run, train
from zoo.weights import read_meta

TWO_STAGE_OPTIONS = {"strategy": TWO_STAGE, "head_epochs": 4, "epochs": 8, "limit": 100}
TWO_STAGE_OPTIONS |= {"batch_size": 10, "patience": 0, "ema": 0.9}  # an average each stage
TWO_STAGE_RUN = ["train", "lenet", "-q", "--channels-last"] + [
    f"--{key.replace('_', '-')}={value}" for key, value in TWO_STAGE_OPTIONS.items()
]
TWO_STAGE_OPTIONS["channels_last"] = True


def rows_of(tmp_path, run: str) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "runs" / run / "metrics.jsonl").open()]


def test_pretrained_models_default_to_two_stage_and_a_chosen_strategy_stays(registry):
    lite0 = registry.model("timm/tf_efficientnet_lite0")
    assert TrainConfig.for_model(lite0, pretrained=True).strategy == TWO_STAGE
    assert TrainConfig.for_model(lite0, pretrained=True, strategy="full").strategy == "full"
    assert TrainConfig.for_model(lite0).strategy == "full"
    vgg16 = registry.model("vgg16")  # its plugin's default, the head, is kept
    assert TrainConfig.for_model(vgg16, pretrained=True).strategy == "head"
    config = TrainConfig.for_model(lite0, pretrained=True)
    assert (config.head_stage, config.total_epochs, config.decay) == (3, 6, LAYER_DECAY)
    assert TrainConfig.for_model(lite0, pretrained=True, augment=True).head_stage == 1
    assert TrainConfig.for_model(lite0).decay == 1


@pytest.mark.parametrize(
    ("model", "count"),
    [("lenet", 5), ("resnet18", 11), ("vgg16", 14), ("timm/tf_efficientnet_lite0", 18)],
)
def test_layers_run_from_the_input_to_the_head(registry, model, count):
    spec = registry.model(model)
    built = registry.build(spec, num_classes=10, pretrained=False)
    layer_of = layers(built, spec)
    names = [name for name, _ in built.named_parameters()]
    assert layer_of.keys() == set(names) and max(layer_of.values()) + 1 == count
    assert layer_of[names[0]] == 0  # the first convolution
    head = [layer for name, layer in layer_of.items() if name.startswith(f"{spec.head}.")]
    assert set(head) == {count - 1}
    assert [layer_of[name] for name in names] == sorted(layer_of[name] for name in names)


def test_the_head_trains_alone_on_features_then_every_layer_at_decaying_rates(registry):
    spec = registry.model("lenet")
    config = TrainConfig.for_model(
        spec, strategy=TWO_STAGE, head_epochs=2, epochs=2, limit=200, batch_size=10, layer_decay=0.5
    )
    ctx = setup("cpu")
    with one_thread():
        run = _Run(registry, spec, config, ctx, None, False, frozenset())
        start = {k: v.clone() for k, v in run.model.state_dict().items()}
        assert run.on_features and run.stage == "head" and len(run.optimizer.param_groups) == 1
        run.train_epochs(False)
    assert [row["strategy"] for row in run.history] == ["head"] * 2 + [TWO_STAGE] * 2
    assert not run.on_features and run.module is run.model
    rates = sorted({group["initial_lr"] for group in run.optimizer.param_groups})
    top = max(rates)
    assert rates == pytest.approx([top * 0.5**k for k in (4, 3, 2, 1, 0)])
    trained = run.model.state_dict()
    assert all(not torch.equal(trained[k], start[k]) for k in trained)
    assert set(run.best["state"]) == set(trained)  # a whole model, whichever epoch is best


def test_the_second_stage_keeps_the_pretrained_batch_norm_statistics(registry):
    """Two-stage's head was fitted under the ImageNet statistics, which its second stage keeps
    while every scale and shift trains; one-stage full fine-tuning moves them. Either is
    `--norm-statistics`' other choice."""
    spec = registry.model("timm/tf_efficientnet_lite0")
    options = {"pretrained": True, "image_size": 32, "limit": 100, "batch_size": 10}
    moved = {}
    runs = {
        TWO_STAGE: {"strategy": TWO_STAGE, "head_epochs": 1},
        "full": {"strategy": "full"},
        "two-stage, batch": {"strategy": TWO_STAGE, "head_epochs": 1, "norm_statistics": "batch"},
        "full, kept": {"strategy": "full", "norm_statistics": "kept"},
    }
    for strategy, extra in runs.items():
        config = TrainConfig.for_model(spec, epochs=1, **options, **extra)
        with one_thread():
            run = _Run(registry, spec, config, setup("cpu"), None, False, frozenset())
            start = {k: v.clone() for k, v in run.model.state_dict().items()}
            run.train_epochs(False)
        after = run.model.state_dict()
        changed = {k for k in after if not torch.equal(after[k], start[k])}
        moved[strategy] = {k.rsplit(".", 1)[1] for k in changed if ".bn" in k or k.startswith("bn")}
    kept, batch = {"weight", "bias"}, {"running_mean", "running_var", "num_batches_tracked"}
    assert moved[TWO_STAGE] == moved["full, kept"] == kept
    assert moved["full"] == moved["two-stage, batch"] == kept | batch


def test_a_best_epoch_of_the_head_stage_keeps_the_backbone_it_was_trained_on(registry):
    spec = registry.model("lenet")
    options = {"head_epochs": 1, "epochs": 1, "limit": 200, "batch_size": 10}
    config = TrainConfig.for_model(spec, strategy=TWO_STAGE, **options)
    run = _Run(registry, spec, config, setup("cpu"), None, False, frozenset())
    backbone = run.model.conv1.weight.detach().clone()
    head = {k: v.clone() for k, v in trained_state(run.model).items()}
    assert set(head) == {"fc3.weight", "fc3.bias"}
    run.best = {"epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0, "state": head}
    run.epoch = 2
    run._next_stage()
    with torch.no_grad():
        run.model.conv1.weight.add_(1.0)  # as the second stage moves it
    assert set(run.best["state"]) == set(run.model.state_dict())
    assert torch.equal(run.best["state"]["conv1.weight"], backbone)


@pytest.fixture(scope="module")
def whole(registry, tmp_path_factory) -> Path:
    """TWO_STAGE_RUN's weights, trained in one go."""
    path = tmp_path_factory.mktemp("two-stage") / "whole.safetensors"
    spec = registry.model("lenet")
    config = TrainConfig.for_model(spec, **TWO_STAGE_OPTIONS)
    with one_thread():
        train(registry, spec, config, path, progress=False)
    return path


def test_resume_from_either_stage_gives_the_uninterrupted_weights(zoo_cli, tmp_path, whole):
    """Killed after the first checkpoint (in the head stage, 4 epochs of 12) and after the
    sixth epoch (in the second), the run resumed ends with the same weights."""
    for run, epoch in (("in-head", 1), ("in-all", 6)):
        child, saved = start_and_stop_mid_way(tmp_path, run, signal.SIGKILL, TWO_STAGE_RUN, epoch)
        assert child.returncode == -signal.SIGKILL and saved["epoch"] > epoch
        with one_thread():
            result = zoo_cli([*TWO_STAGE_RUN, *where(tmp_path, run), "--resume"])
        assert result.code == 0, result.err
        assert same_tensors(tmp_path / f"{run}.safetensors", whole)
        strategies = [row["strategy"] for row in rows_of(tmp_path, run)]
        assert strategies == ["head"] * 4 + [TWO_STAGE] * 8


def test_the_weights_file_records_the_stages(whole):
    settings = read_meta(whole)["settings"]
    assert (settings["strategy"], settings["head_epochs"], settings["epochs"]) == (TWO_STAGE, 4, 8)
    assert read_meta(whole)["metrics"]["epochs_trained"] == 12


def test_a_time_budget_plans_the_last_stage_when_it_begins(registry, tmp_path):
    spec = registry.model("lenet")
    options = {"head_epochs": 2, "epochs": 1000, "limit": 600, "patience": 0, "threads": 1}
    config = TrainConfig.for_model(spec, strategy=TWO_STAGE, time_budget="8s", **options)
    out = tmp_path / "budget.safetensors"
    result = train(registry, spec, config, out, run_dir=tmp_path / "runs" / "budget")
    plan, rows = result.budget, rows_of(tmp_path, "budget")
    assert plan["after_head_epochs"] == 2 and 1 <= plan["epochs"] < 1000
    assert [row["strategy"] for row in rows[:2]] == ["head", "head"]
    assert 3 <= result.epochs <= 2 + plan["epochs"] and len(rows) == result.epochs
    epoch = rows[-1]["seconds"] + rows[-1]["val_seconds"]
    assert result.timing["epochs_done"] <= 8 + 1.5 * epoch + 0.5
    assert read_meta(out)["metrics"]["time_budget"] == plan
