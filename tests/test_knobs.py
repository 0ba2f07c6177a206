"""The recipe knobs, on real LeNet runs: `--ema`, `--warmup`, `--random-erasing`, `--mixup` and
`--cutmix`, `--balance` and `--time-budget`; each recorded, refused when changed on `--resume`,
and resumed to the same weights."""

from __future__ import annotations

import itertools
import signal
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.test_recipe import rows_of
from tests.test_train import (
    LONG,
    LONG_RUN,
    one_thread,
    same_tensors,
    start_and_stop_mid_way,
    where,
)
from zoo.data.augment import erase
from zoo.data.preprocess import prepare
from zoo.serving.inference import Classifier
from zoo.training.budget import Plan
from zoo.training.checkpoint import FILENAME
from zoo.training.config import TrainConfig, card_rows, duration
from zoo.training.distributed import setup
from zoo.training.loop import MIXING, _generator, _Run, scaled_defaults, train
from zoo.training.optim import WARMUP_FROM, make_schedule
from zoo.training.sampling import epoch_order
from zoo.weights import read_meta

KNOBS = ["--ema", "0.9", "--mixup", "0.2", "--random-erasing", "0.3", "--balance"]


@pytest.fixture
def lenet_run(registry):
    """A LeNet run on 300 digits, built as `zoo train` builds it, with the options given."""
    ctx = setup("cpu")
    spec = registry.model("lenet")

    def build(**options) -> _Run:
        config = TrainConfig.for_model(spec, **{"limit": 300, "threads": 1, **options})
        return _Run(registry, spec, config, ctx, None, False, frozenset(options))

    yield build
    ctx.close()


def test_time_budget_ends_within_it_plus_one_epoch_and_writes_a_usable_file(
    registry, zoo_cli, tmp_path
):
    spec = registry.model("lenet")
    config = TrainConfig.for_model(
        spec, limit=600, epochs=1000, patience=0, time_budget="6s", threads=1
    )
    out = tmp_path / "budget.safetensors"
    result = train(registry, spec, config, out, run_dir=tmp_path / "runs" / "budget")
    plan, timing = result.budget, result.timing
    assert timing["posthoc"] < timing["total"] - timing["epochs_done"]  # the rest follows
    assert plan is not None and 1 <= result.epochs <= plan["epochs"] < 1000
    assert plan["epochs_done_at"] == timing["epochs_done"] <= timing["total"]
    last = rows_of(tmp_path, "budget")[-1]
    epoch = last["seconds"] + last["val_seconds"]  # and its checkpoint's write, below
    assert timing["epochs_done"] <= 6 + 1.5 * epoch + 0.5, (timing, plan, last)
    meta = read_meta(out)
    assert meta["metrics"]["time_budget"] == plan and meta["settings"]["time_budget"] == 6.0
    assert meta["metrics"]["epochs_trained"] == result.epochs
    assert ("time budget, seconds", 6.0) in card_rows(meta["settings"])
    image = tmp_path / "seven.png"
    Image.fromarray(np.tile(np.uint8([0, 255]), (8, 4))).save(image)
    predicted = zoo_cli(["predict", str(out), str(image), "--json"])
    assert predicted.code == 0 and '"label"' in predicted.out, predicted.err
    assert Classifier.load(registry, out).classes == [str(i) for i in range(10)]


def test_the_budget_stops_before_an_epoch_as_long_as_the_last_would_not_fit():
    plan = Plan(budget=10.0, epochs=5, epoch_seconds=1.0)
    row = [{"seconds": 3.0, "val_seconds": 0.5}]
    assert plan.another_fits([], 2.0)  # the first epoch always starts
    assert plan.another_fits(row, 6.0)  # the last took 4s (its wall time): 10s fits
    assert not plan.another_fits(row, 9.0)  # it took 3s: 12s does not
    resumed = Plan(**plan.to_dict())  # after --resume: the recorded seconds of the last
    assert not resumed.another_fits(row, 7.0) and Plan(**plan.to_dict()).another_fits(row, 6.5)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1.5h", 5400), ("45", 45), (".5m", 30)]
)
def test_durations_take_a_unit_or_are_seconds(text, seconds):
    assert duration(text) == seconds
    assert TrainConfig(time_budget=text).time_budget == seconds  # a --config file's text


def test_a_knob_left_off_is_not_on_the_card():
    labels = {label for label, _ in card_rows(asdict(TrainConfig()))}
    knobs = {"EMA of weights, decay", "warmup epochs", "random erasing", "mixup alpha"}
    assert labels.isdisjoint({*knobs, "cutmix alpha", "time budget, seconds"})
    assert ("mixup alpha", 0.2) in card_rows(asdict(TrainConfig(mixup=0.2)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--ema 2", "--ema must be a decay in (0, 1), such as 0.999; not 2.0"),
        ("--ema 0", "--ema must be a decay in (0, 1)"),
        ("--warmup 3 --epochs 3", "--warmup must be from 0 to --epochs - 1 (2)"),
        ("--warmup -1", "--warmup must be from 0"),
        ("--random-erasing 1.5", "--random-erasing must be a probability in [0, 1]"),
        ("--mixup -0.2", "--mixup must not be negative (0: off)"),
        ("--cutmix -1", "--cutmix must not be negative (0: off)"),
        ("--time-budget 10x", "'10x' is not a duration such as 90s, 10m or 1.5h"),
        ("--time-budget 0", "--time-budget must be positive, not 0s"),
        ("--head-epochs 2", "--head-epochs is for --strategy two-stage, not full"),
        ("--strategy two-stage --layer-decay 0", "--layer-decay must be in (0, 1]"),
        ("--strategy head --layer-decay 0.5", "--layer-decay has no effect with --strategy head"),
        ("--norm-statistics frozen", "unknown --norm-statistics 'frozen'; choose from kept, batch"),
        ("--strategy head --norm-statistics kept", "--norm-statistics has no effect with --strat"),
        ("--strategy two-stage --lr auto", "--lr auto is not for --strategy two-stage"),
        ("--flip", "--flip: a mirrored image of digits changes its label"),
        ("--image-size 4", "--image-size must be over 4: lenet's input has a border of 2"),
    ],
)
def test_a_bad_knob_is_one_line_and_writes_nothing(zoo_cli, tmp_path, args, message):
    result = zoo_cli(f"train lenet {args} {' '.join(where(tmp_path, 'bad'))}")
    assert result.code != 0 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_resume_refuses_a_changed_knob_in_one_line(zoo_cli, tmp_path):
    base = ["train", "lenet", "--epochs", "2", "--limit", "200", "-q", *where(tmp_path, "k")]
    knobs = [*KNOBS, "--warmup", "1", "--cutmix", "1", "--time-budget", "2m"]
    first = zoo_cli([*base, *knobs])
    assert first.code == 0, first.err
    assert "--time-budget 120s: 2 epochs planned at about " in first.out
    assert read_meta(tmp_path / "k.safetensors")["settings"]["ema"] == 0.9
    for changed, says in [
        (["--ema", "0.99"], "--ema 0.99 (the run has 0.9)"),
        (["--mixup", "0.4"], "--mixup 0.4 (the run has 0.2)"),
        (["--cutmix", "0.5"], "--cutmix 0.5 (the run has 1.0)"),
        (["--random-erasing", "0.5"], "--random-erasing 0.5 (the run has 0.3)"),
        (["--warmup", "0"], "--warmup 0 (the run has 1)"),
        (["--no-balance"], "--balance False (the run has True)"),
        (["--time-budget", "10m"], "--time-budget 600.0 (the run has 120.0)"),
    ]:
        result = zoo_cli([*base, *changed, "--resume"])
        assert result.code == 1 and says in result.err, (changed, result.err)
        assert len(result.err.strip().splitlines()) == 1
    same = zoo_cli([*base, "--time-budget", "120s", "--ema", "0.9", "--resume"])
    assert same.code == 0, same.err  # the same values, spelt otherwise, are no change


def test_ema_weights_are_validated_and_saved_not_the_raw_ones(zoo_cli, tmp_path):
    args = ["train", "lenet", "--epochs", "1", "--limit", "300", "--ema", "0.9", "-q"]
    assert zoo_cli([*args, *where(tmp_path, "e")]).code == 0
    saved = torch.load(tmp_path / "runs" / "e" / FILENAME, weights_only=True)
    written = load_file(tmp_path / "e.safetensors")
    raw, average = saved["state_dict"], saved["ema"]
    assert raw.keys() == average.keys() and saved["best"]["state"] is not None
    assert any(not torch.equal(raw[k], average[k]) for k in raw)
    assert all(torch.equal(written[k], average[k]) for k in average)


def test_ema_of_the_head_alone_when_it_trains_on_cached_features(lenet_run):
    run = lenet_run(ema=0.9, strategy="head", epochs=1)
    assert run.on_features  # nothing random: the head trains on the backbone's features
    run.train_epochs(progress=False)
    average = run.ema.state_dict()
    assert set(run.best["state"]) == {f"fc3.{k}" for k in average}
    assert all(torch.equal(run.best["state"][f"fc3.{k}"], v) for k, v in average.items())
    assert not torch.equal(run.module.weight, average["weight"])  # the raw head goes on


@pytest.fixture(scope="module")
def uninterrupted_knobs(registry, tmp_path_factory):
    """LONG_RUN with every reproducible knob, trained in one go."""
    path = tmp_path_factory.mktemp("knobs") / "whole.safetensors"
    spec = registry.model("lenet")
    knobs = {"ema": 0.9, "mixup": 0.2, "random_erasing": 0.3, "balance": True}
    with one_thread():
        train(registry, spec, TrainConfig.for_model(spec, **LONG, **knobs), path, progress=False)
    return path


def test_resume_with_the_knobs_gives_the_uninterrupted_weights(
    zoo_cli, tmp_path, uninterrupted_knobs
):
    args = [*LONG_RUN, *KNOBS]
    child, saved = start_and_stop_mid_way(tmp_path, "knobs", signal.SIGKILL, args)
    assert child.returncode == -signal.SIGKILL and saved["ema"] is not None
    with one_thread():
        result = zoo_cli([*args, *where(tmp_path, "knobs"), "--resume"])
    assert result.code == 0, result.err
    assert same_tensors(tmp_path / "knobs.safetensors", uninterrupted_knobs)


def test_mixup_mixes_the_batch_reproducibly_and_tallies_the_dominant_label(lenet_run):
    run = lenet_run(mixup=0.4, cutmix=1.0, label_smoothing=0.1)
    x = run._model_input(run.train_x[:9].to(run.ctx.device), 0)
    y = run.train_y[:9]
    state = np.random.get_state()[1].copy()
    mixed, targets = run.mixing(x, y, torch.Generator().manual_seed(3))
    again, same_targets = run.mixing(x, y, torch.Generator().manual_seed(3))
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's own draws untouched
    assert torch.equal(mixed, again) and torch.equal(targets, same_targets)
    assert not torch.equal(mixed[:8], x[:8]) and torch.equal(mixed[8], x[8])  # odd one as is
    assert torch.allclose(targets.sum(1), torch.ones(9)) and targets.max() < 1  # smoothed
    logits, loss, labels = run.step_loss(run.train_x[:9], y, 0)
    generator = _generator(run.config.seed, run.epoch, 0, 0, MIXING)  # the step's own
    assert torch.equal(labels, run.mixing(x, y, generator)[1].argmax(1))
    assert loss > 0 and logits.shape == (9, 10)


def test_random_erasing_changes_the_batch_reproducibly_and_leaves_the_rng(lenet_run):
    run = lenet_run(random_erasing=1.0, strategy="head")
    assert not run.on_features  # a random input: no cached features
    x = run._model_input(run.train_x[:8].to(run.ctx.device), 0)
    plain = lenet_run()._model_input(run.train_x[:8].to(run.ctx.device), 0)
    assert not torch.equal(x, plain)
    changed = (x != plain).flatten(1).any(1)
    assert changed.all()  # probability 1: every image has its rectangle
    state = torch.get_rng_state()
    first = erase(plain.clone(), 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(first, erase(plain.clone(), 0.5, torch.Generator().manual_seed(1)))
    assert torch.equal(torch.get_rng_state(), state)


def test_flip_mirrors_half_of_the_batch_reproducibly_and_crops_nothing(
    lenet_run, fashion_mnist_copy
):
    run = lenet_run(flip=True, dataset="fashion-mnist", data_dir=str(fashion_mnist_copy))
    images = run.train_x[:64].to(run.ctx.device)
    x, plain = run._model_input(images, 0), prepare(images, run.input)
    mirrored = (x != plain).flatten(1).any(1)
    assert torch.equal(x[mirrored], plain[mirrored].flip(3))
    assert 16 < mirrored.sum() < 48 and torch.equal(x, run._model_input(images, 0))
    assert not run._model_input(images, 1).equal(x)  # each step draws anew
    off = lenet_run(augment=True, flip=False, dataset="fashion-mnist", data_dir=run.config.data_dir)
    assert not off.config.flips and TrainConfig(augment=True).flips


def test_a_recipe_replaces_the_defaults_on_its_dataset_and_is_not_scaled(registry):
    spec = registry.model("lenet")
    config = TrainConfig.for_model(spec, dataset="fashion-mnist")
    assert (config.epochs, config.weight_decay, config.flips) == (30, 0.15, True)
    assert scaled_defaults(config, spec, 54_000, frozenset()) == config
    given = TrainConfig.for_model(spec, dataset="fashion-mnist", weight_decay=0.01, flip=False)
    assert (given.weight_decay, given.flips, given.epochs) == (0.01, False, 30)
    digits = TrainConfig.for_model(spec)
    assert (digits.epochs, digits.weight_decay, digits.flips) == (30, 1e-4, False)
    assert scaled_defaults(digits, spec, 54_000, frozenset()).epochs == 11  # none for it here
    limited = TrainConfig.for_model(spec, dataset="fashion-mnist", limit=2000)
    assert (limited.epochs, limited.batch_size, limited.weight_decay) == (30, 32, 0.15)
    assert scaled_defaults(limited, spec, 1_800, frozenset()) == limited  # as the defaults
    assert scaled_defaults(limited, spec, 20_000, frozenset()).batch_size == 128


def _imbalanced_folder(root, counts: dict[str, int]):
    """Real PNG files, PATH/<class>/: a bright bar whose row tells the class."""
    rng = np.random.default_rng(0)
    for row, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 60, (28, 28), dtype=np.uint8)
            pixels[4 + 8 * row : 8 + 8 * row] = 255
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_balance_draws_the_classes_equally_and_trains(lenet_run, zoo_cli, tmp_path):
    folder = _imbalanced_folder(tmp_path / "pics", {"common": 80, "rare": 10, "scarce": 10})
    dataset = f"folder:{folder}"
    run = lenet_run(dataset=dataset, balance=True, limit=None)
    labels = run.train_y
    share = labels.bincount().min().item() / len(labels)
    drawn = labels[epoch_order(labels, torch.Generator().manual_seed(0), True)]
    assert share < 0.15 and drawn.bincount().min().item() / len(drawn) > 0.2
    plain = labels[epoch_order(labels, torch.Generator().manual_seed(0), False)]
    assert torch.equal(plain.sort().values, labels.sort().values)  # a permutation
    args = ["train", "lenet", "-d", dataset, "--epochs", "2", "--balance", "-q"]
    result = zoo_cli([*args, *where(tmp_path, "b")])
    assert result.code == 0, result.err
    assert read_meta(tmp_path / "b.safetensors")["settings"]["balance"] is True


@pytest.mark.parametrize("schedule", ["cosine", "none", "onecycle"])
def test_warmup_rises_to_the_peak_over_its_steps(schedule):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    config = TrainConfig(schedule=schedule, lr=0.1, epochs=5, warmup=2)
    schedule_ = make_schedule(config, optimizer, total_steps=50, warmup_steps=20)
    rates = []
    for _ in range(50):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule_.step()
    assert all(b > a for a, b in itertools.pairwise(rates[:20]))  # rising
    assert max(rates) == pytest.approx(0.1) and rates.index(max(rates)) in (19, 20)
    if schedule != "onecycle":
        assert rates[0] == pytest.approx(0.1 * WARMUP_FROM)
