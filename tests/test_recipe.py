"""The recipe's choosing parts, on real LeNet runs: the best epoch by validation accuracy (ties
by loss), early stopping (`--patience`), and the learning-rate range test (`zoo lr-find`,
`zoo train --lr auto`)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.test_train import where
from zoo.errors import ZooError
from zoo.training import lr_find
from zoo.training.config import TrainConfig
from zoo.training.distributed import setup
from zoo.training.loop import _Run
from zoo.training.selection import is_record, within_noise
from zoo.weights import read_meta


def rows_of(tmp_path, run: str) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "runs" / run / "metrics.jsonl").open()]


@pytest.mark.parametrize(
    ("epochs", "patience", "stop_after"),
    [(11, None, None), (12, None, 3), (30, None, 7), (30, 0, None), (5, 2, 2)],
)
def test_patience_is_on_by_default_for_long_runs_only(registry, epochs, patience, stop_after):
    config = TrainConfig.for_model(registry.model("lenet"), epochs=epochs, patience=patience)
    assert config.stop_after == stop_after


def test_the_record_is_the_most_accurate_epoch_and_of_equals_the_lowest_loss():
    record = {"val_accuracy": 0.9, "val_loss": 0.3}
    assert is_record(0.91, 0.5, record) and not is_record(0.89, 0.1, record)
    assert is_record(0.9, 0.2, record) and not is_record(0.9, 0.4, record)
    assert is_record(0.9, 0.4, {"val_accuracy": 0.9})  # a checkpoint from before losses


def answers(lost: int, gained: int, agreed: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """A record's and a later epoch's answers (right or wrong per image) that differ on
    `lost` images the record got right and `gained` it got wrong."""
    record = torch.tensor([True] * lost + [False] * gained + [True] * agreed)
    return record, torch.tensor([False] * lost + [True] * gained + [True] * agreed)


def test_a_later_epoch_is_kept_unless_a_paired_test_puts_it_below_the_record():
    assert within_noise(*answers(0, 0))  # the same answers
    assert within_noise(*answers(3, 9))  # better, though not a record on its loss
    assert within_noise(*answers(12, 5))  # 7 images behind: 1.96 x sqrt(17) = 8.1 allowed
    assert not within_noise(*answers(14, 4))  # 10 behind: 8.3 allowed
    assert not within_noise(*answers(30, 0))
    assert not within_noise(None, answers(0, 0)[1])  # a checkpoint without the record's answers
    assert not within_noise(torch.ones(5, dtype=torch.bool), torch.ones(6, dtype=torch.bool))


def test_a_run_stops_when_the_validation_score_no_longer_improves(zoo_cli, tmp_path):
    args = ["train", "lenet", "--epochs", "20", "--patience", "2", "--limit", "300", "-q"]
    result = zoo_cli([*args, *where(tmp_path, "p")])
    assert result.code == 0, result.err
    rows = rows_of(tmp_path, "p")
    meta = read_meta(tmp_path / "p.safetensors")["metrics"]
    best, record = meta["best_epoch"], meta["record_epoch"]
    assert len(rows) < 20 and meta["stopped_early"] and meta["epochs_trained"] == len(rows)
    scores = [(r["val_accuracy"], -r["val_loss"]) for r in rows]
    assert scores[record - 1] == max(scores)  # the record: by accuracy, then loss
    assert all(scores[i] < scores[record - 1] for i in range(record, len(rows)))
    assert record <= best and meta["best_val_accuracy"] == rows[best - 1]["val_accuracy"]
    losses = [r["val_loss"] for r in rows]
    records = [i + 1 for i, loss in enumerate(losses) if loss < min(losses[:i], default=9.9)]
    progress = max(record, records[-1])  # the last epoch of a better accuracy or a lower loss
    assert rows[-1]["epoch"] - progress == 2 and meta["patience"] == 2
    which = ", the weights kept" if progress == best else f" (the weights kept: epoch {best})"
    assert (
        f"stopped after epoch {len(rows)}: neither the validation accuracy nor its loss has "
        f"improved since epoch {progress}{which} (--patience"
    ) in " ".join(result.out.split())
    assert 0 < meta["last_epoch_test_accuracy"] <= 1  # the last epoch's, tested beside
    answers = torch.load(tmp_path / "runs/p/last.ckpt", weights_only=True)["record"]["answers"]
    assert answers.dtype == torch.bool and answers.float().mean().item() == pytest.approx(
        rows[record - 1]["val_accuracy"]
    )


def test_a_run_that_falls_apart_keeps_an_epoch_from_before(zoo_cli, tmp_path):
    # A rate that warms up far too high: the first epochs learn, then the model collapses.
    args = ["train", "lenet", "--epochs", "20", "--lr", "0.3", "--warmup", "10", "--patience"]
    result = zoo_cli([*args, "2", "-q", *where(tmp_path, "o")])
    assert result.code == 0, result.err
    rows = rows_of(tmp_path, "o")
    meta = read_meta(tmp_path / "o.safetensors")["metrics"]
    assert meta["stopped_early"] and meta["best_epoch"] < len(rows) < 20
    assert rows[-1]["val_accuracy"] < meta["record_val_accuracy"] - 0.15  # far below: the test
    assert meta["record_epoch"] <= meta["best_epoch"]
    assert meta["test_accuracy"] > meta["last_epoch_test_accuracy"] + 0.1
    last = torch.load(tmp_path / "runs/o/last.ckpt", weights_only=True)["state_dict"]
    kept = load_file(tmp_path / "o.safetensors")
    assert not all(torch.equal(last[k], kept[k]) for k in last)


def test_the_default_patience_waits_for_the_rate_to_fall(registry):
    spec = registry.model("lenet")
    for patience, first_stop in ((None, 9), (3, 4)):  # the default: 3, from epoch 6 of 12
        config = TrainConfig.for_model(spec, epochs=12, limit=200, patience=patience)
        run = _Run(registry, spec, config, setup("cpu"), None, False, frozenset())
        run.record = {"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.3}
        stops = []
        for epoch in range(1, 13):
            run.history.append({"epoch": epoch})
            stops.append(run.stopped_early)
        assert stops.index(True) + 1 == first_stop and config.schedule == "cosine"


def test_a_falling_validation_loss_is_progress_that_patience_waits_for(registry):
    spec = registry.model("lenet")
    config = TrainConfig.for_model(spec, epochs=12, limit=200, patience=3)
    run = _Run(registry, spec, config, setup("cpu"), None, False, frozenset())
    run.record = {"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.5}
    stops = []  # the accuracy stalls after epoch 1; the loss falls till epoch 6
    for epoch, loss in enumerate([0.5, 0.45, 0.4, 0.38, 0.36, 0.35, 0.36, 0.35, 0.4, 0.3], 1):
        accuracy = 0.9 if epoch == 1 else 0.89
        run.history.append({"epoch": epoch, "val_accuracy": accuracy, "val_loss": loss})
        stops.append(run.stopped_early)
    assert stops.index(True) + 1 == 9 and run.progress_epoch == 10  # 6 + 3; a record at 10


def test_patience_0_trains_every_epoch_and_resume_keeps_the_patience(zoo_cli, tmp_path):
    args = ["train", "lenet", "--epochs", "3", "--patience", "0", "--limit", "200", "-q"]
    assert zoo_cli([*args, *where(tmp_path, "z")]).code == 0
    assert len(rows_of(tmp_path, "z")) == 3
    assert not read_meta(tmp_path / "z.safetensors")["metrics"]["stopped_early"]
    result = zoo_cli([*args[:-3], "--patience", "1", "-q", "--resume", *where(tmp_path, "z")])
    assert result.code == 1
    assert "--patience 1 (the run has 0) asks for others" in result.err


@pytest.fixture
def run(registry):
    spec = registry.model("lenet")
    ctx = setup("cpu")
    config = TrainConfig.for_model(spec, limit=300, lr=lr_find.START)
    yield _Run(registry, spec, config, ctx, None, False, frozenset())
    ctx.close()


def test_the_range_test_leaves_the_model_and_optimizer_as_they_were(run):
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    optimizer = json.dumps(run.optimizer.state_dict()["param_groups"], default=str)
    test = lr_find.range_test(run, steps=40)
    after = run.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.dumps(run.optimizer.state_dict()["param_groups"], default=str) == optimizer
    assert not run.optimizer.state  # no moments left from the test
    assert test.rates[0] == pytest.approx(lr_find.START) and len(test.rates) <= 40
    assert all(b > a for a, b in zip(test.rates, test.rates[1:], strict=False))
    assert test.suggestion in test.rates and min(test.losses) < test.losses[0]


def test_the_valley_is_halfway_along_the_longest_fall():
    rates = [10 ** (i / 10 - 7) for i in range(80)]
    losses = [2.3] * 30 + [2.3 - 0.05 * i for i in range(30)] + [0.8 + 0.3 * i for i in range(20)]
    suggestion = lr_find.valley(rates, losses)
    assert rates[40] <= suggestion <= rates[50]  # within the fall (steps 30-59), near its middle
    assert lr_find.valley([], []) == lr_find.START


def test_zoo_lr_find_prints_a_suggestion_and_draws_the_curve(zoo_cli, tmp_path):
    plot = tmp_path / "curve.png"
    result = zoo_cli(["lr-find", "lenet", "--limit", "300", "--plot", str(plot)])
    assert result.code == 0, result.err
    suggested = float(result.out.split("suggested --lr ")[1].split()[0])
    assert lr_find.START <= suggested <= lr_find.END and str(plot) in result.out
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width >= 500
    for refused in (["--epochs", "3"], ["--lr", "0.1"], ["--plot", str(tmp_path / "c.txt")]):
        found = zoo_cli(["lr-find", "lenet", *refused])
        assert found.code != 0 and found.err.startswith("error:"), refused
        assert len(found.err.strip().splitlines()) == 1


@pytest.mark.parametrize("from_file", [False, True])
def test_train_lr_auto_trains_at_the_suggestion_and_records_it(zoo_cli, tmp_path, from_file):
    args = ["train", "lenet", "--epochs", "3", "--limit", "600", "-q"]
    (tmp_path / "auto.toml").write_text('lr = "auto"\n')
    given = ["--config", str(tmp_path / "auto.toml")] if from_file else ["--lr", "auto"]
    result = zoo_cli([*args, *given, *where(tmp_path, "a")])
    assert result.code == 0, result.err
    meta = read_meta(tmp_path / "a.safetensors")
    found = meta["lr_find"]["suggestion"]
    assert meta["settings"]["lr"] == found and f"--lr auto: {found:.3g}" in result.out
    assert meta["lr_find"]["rule"] == "fastai's valley" and meta["lr_find"]["steps"] > 20
    assert meta["metrics"]["test_accuracy"] > 0.5  # it trains (10 classes: chance is 0.1)
    assert (tmp_path / "runs" / "a" / lr_find.FIGURE).is_file()
    assert max(row["lr"] for row in rows_of(tmp_path, "a")) <= found * (1 + 1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "'abc' is neither a number nor auto"),
        ("-1", "--lr must be a positive number, or auto; not -1.0"),
    ],
)
def test_a_bad_lr_is_refused_in_one_line(zoo_cli, value, message):
    result = zoo_cli(["train", "lenet", "--lr", value])
    assert result.code != 0 and message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_config_refuses_a_negative_patience(registry):
    with pytest.raises(ZooError, match="--patience must not be negative"):
        TrainConfig.for_model(registry.model("lenet"), patience=-1)
