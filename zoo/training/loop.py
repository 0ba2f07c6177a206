"""`zoo train`: fine-tune a model on a dataset and write its self-describing weights file.

One loop, read top to bottom: the data decoded once into uint8 tensors on the device, or read
from the on-disk cache a batch ahead; each batch prepared (and augmented) there; or, for a
frozen backbone without augmentation, the head trained on features computed once. A model's
default epochs, batch size and learning rate scale with the training split (`scaled_defaults`).
Every epoch ends with the accuracy on a validation subset of the held-out training images, a
line in metrics.jsonl and an atomic checkpoint, from which `--resume` continues to the same
final weights; the final weights are those of the epoch that `selection` picks on that subset,
and the full test split is evaluated once, at the end. Under torchrun each process
trains on its shard and rank 0 evaluates and writes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from zoo.channels import grey_into
from zoo.data.augment import augment, erase, mirror, photo_augment
from zoo.data.preprocess import prepare
from zoo.data.sources import load_dataset
from zoo.data.splits import ImageSplits, hold_out
from zoo.data.stream import batches, resident
from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.specs import DatasetSpec, InputSpec, ModelSpec
from zoo.training import budget, distributed, lr_find, runlog, selection
from zoo.training.checkpoint import (
    FILENAME,
    frozen_checksum,
    load_checkpoint,
    load_trained,
    read_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trained_state,
)
from zoo.training.config import AUTO, SCALED, TrainConfig, recipe_in_effect
from zoo.training.ema import WeightAverage
from zoo.training.features import backbone_features, trains_only
from zoo.training.finetune import head_module
from zoo.training.layer_decay import layer_decayed
from zoo.training.mixing import BatchMixing
from zoo.training.optim import make_optimizer, make_schedule
from zoo.training.sampling import epoch_order
from zoo.trust import analysis, posthoc
from zoo.trust.metrics import (
    confusion_matrix,
    image_batches,
    logits_of,
    per_class_accuracy,
)
from zoo.util import layout, threads
from zoo.util.locks import exclusive
from zoo.weights import load_fitting, save

ONE_WRITER = "wait for it to finish, or choose another --run-name"
MIN_STEPS = 20  # a default batch size leaves at least this many steps an epoch
FEW_STEPS = 4  # a chosen one that leaves fewer gets a warning
VALIDATION_IMAGES = 2_000  # held-out images evaluated each epoch (evenly spaced)
# The training split the built-in models' defaults were tuned on: digits' 1,294 images.
REFERENCE_IMAGES = 1_300
MAX_SCALED_BATCH = 512
MIXING = 1  # a key of the generator of a step's mixup/cutmix, apart from its augmentation's


@dataclass
class TrainResult:
    """What a run produced: the weights file (None in processes other than rank 0)."""

    path: Path | None
    accuracy: float
    seconds: float
    run_dir: Path | None = None
    timing: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs: int = 0  # trained
    stopped_early: bool = False
    lr_found: float | None = None  # --lr auto's
    budget: dict[str, Any] | None = None  # --time-budget's plan
    progress_epoch: int | None = None  # the last that made progress on validation


def train(
    registry: Registry,
    spec: ModelSpec,
    config: TrainConfig,
    out: Path,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    given: Iterable[str] = (),
    started: float | None = None,
) -> TrainResult:
    """Fine-tune `spec`'s model as `config` says; write the weights to `out`.

    With `run_dir`, write metrics, plots and a checkpoint there every epoch; `resume` continues
    from that checkpoint (with its settings, which the options named in `given` must not
    change). A new run touches `run_dir` only when it writes its first checkpoint, so a run
    that fails before leaves an earlier one as it was. Ctrl-C saves the checkpoint, then
    raises KeyboardInterrupt. A batch size that is the model's default, and not in `given`,
    is capped for small datasets (`fit_batch_size`). The run's seconds count from `started`
    (a `time.perf_counter()`: the command's start), else from this call.
    """
    started = time.perf_counter() if started is None else started
    ctx = distributed.setup(config.device)
    try:
        with contextlib.ExitStack() as writing:
            if ctx.is_main:
                _check_writable(out.parent)
                if run_dir is not None:
                    _check_writable(run_dir)
                for target in (out, run_dir) if run_dir is not None else (out,):
                    writing.enter_context(exclusive(target, "zoo train", ONE_WRITER))
            run = _Run(
                registry, spec, config, ctx, run_dir, resume, frozenset(given), progress, started
            )
            try:
                run.train_epochs(progress and ctx.is_main)
                path = run.finish(out) if ctx.is_main else None
            except OSError as error:  # a full disk, a folder gone: the checkpoint stays
                raise ZooError(_write_failure(error, run_dir)) from None
        ctx.barrier()  # the processes leave together, so gloo's connections close cleanly
    finally:
        ctx.close()
    return TrainResult(
        path,
        run.accuracy,
        run.elapsed(),
        run_dir,
        run.timing,
        run.best.get("epoch"),
        len(run.history),
        run.stopped_early,
        run.config.lr if run.lr_test else None,
        run.budget_metrics(),
        progress_epoch=run.progress_epoch,
    )


def lr_range_test(
    registry: Registry, spec: ModelSpec, config: TrainConfig, given: Iterable[str] = ()
) -> lr_find.RangeTest:
    """`zoo lr-find`: the range test on the run `zoo train` would start with `config` (its
    data, model, strategy and batch), which it then leaves untrained."""
    ctx = distributed.setup(config.device)
    try:
        start = replace(config, lr=lr_find.START)
        run = _Run(registry, spec, start, ctx, None, False, frozenset(given))
        return lr_find.range_test(run)
    finally:
        ctx.close()


def _write_failure(error: OSError, run_dir: Path | None) -> str:
    """One line on a failed write, and how `--resume` finishes the job from the checkpoint."""
    where = f" {error.filename}" if error.filename else ""
    message = f"cannot write{where}: {error.strerror or error}"
    checkpoint = run_dir / FILENAME if run_dir is not None else None
    if checkpoint is not None and checkpoint.is_file():
        message += (
            f"; {checkpoint} keeps the last finished epoch: free some space and run the same "
            "zoo train with --resume to finish the job"
        )
    return message


def freeze_norm_statistics(model: nn.Module, every: bool = False) -> None:
    """Keep the running statistics of frozen batch-norm layers fixed (eval mode); with `every`,
    of all of them, their scales and shifts still trained."""
    for module in model.modules():
        if not isinstance(module, _BatchNorm):
            continue
        if every or not any(p.requires_grad for p in module.parameters()):
            module.eval()


class _Run:
    """One training run: its data, model, optimizer and schedule, and where it stands."""

    def __init__(
        self,
        registry: Registry,
        spec: ModelSpec,
        config: TrainConfig,
        ctx: distributed.Context,
        run_dir: Path | None,
        resume: bool,
        given: frozenset[str],
        progress: bool = False,
        started: float | None = None,
    ) -> None:
        self.started = time.perf_counter() if started is None else started
        if resume and run_dir is None:
            raise ZooError("--resume needs a run folder")
        saved = load_checkpoint(run_dir / FILENAME, spec.name) if resume else None
        config = config.resumed(saved["config"], given) if saved else config
        self.spec, self.ctx, self.run_dir = spec, ctx, run_dir
        self.fresh = run_dir is not None and not resume  # an earlier run's files stay till then
        self.input = config.input_spec(spec)
        self.dataset, data = _load_data(registry, config, self.input.image_size, ctx, progress)
        if config.trivial_augment and not data.photos:
            raise ZooError(f"--trivial-augment is for photo datasets, not {config.dataset}")
        if config.flip and not self.dataset.flip:
            raise ZooError(f"--flip: a mirrored image of {config.dataset} changes its label")
        # Held out: the best epoch's choice, the temperature and the unknown detector.
        self.data, *self.held_out = hold_out(data)
        if not saved:
            config = scaled_defaults(config, spec, len(self.data.train_labels), given)
        self.config = config

        self.config, self.registry = config, registry

        torch.manual_seed(config.seed)
        self.model = _build(registry, spec, config, len(self.data.classes))
        if config.grey == "sum":  # before the optimizer's groups are made
            self.input = grey_into(self.model, self.input, data.train_images.shape[1])
        self.model.to(ctx.device, memory_format=torch.channels_last)
        if config.image_size:
            _check_input(self.model, spec.name, self.input, ctx.device)
        self.train_y = self.data.train_labels.to(ctx.device)
        self.epoch, self.step, self.seconds = saved["epoch"] if saved else 1, 0, 0.0
        self.before = 0.0  # seconds the run took in earlier processes (before --resume)
        self.features_seconds = 0.0
        self.layout = torch.channels_last  # the images' memory format, timed for each stage
        self.thread_limit = torch.get_num_threads()  # the most threads a stage may use
        self.mixing = None
        if config.mixup or config.cutmix:
            classes = len(self.data.classes)
            mixup, cutmix = config.mixup or 0.0, config.cutmix or 0.0
            self.mixing = BatchMixing(mixup, cutmix, config.label_smoothing, classes)
        self.plan: budget.Plan | None = None
        self.last_epoch = config.total_epochs  # until --time-budget plans the last stage
        groups = self._enter_stage(saved)
        shard = len(ctx.shard(self.train_y))
        if not saved:  # after the checks, so that a failing run gives its error alone
            chosen = "batch_size" in given or config.batch_size != spec.defaults.batch_size
            self.config = config = fit_batch_size(config, shard, chosen)
        self.steps = math.ceil(shard / config.batch_size)
        self.lr_test: lr_find.RangeTest | None = None
        if config.lr == AUTO:  # a fresh run only: a checkpoint keeps the rate it found
            self.optimizer = make_optimizer(replace(config, lr=lr_find.START), groups)
            self.lr_test = lr_find.range_test(self)
            self.config = config = replace(config, lr=self._agreed(self.lr_test.suggestion))
        self._make_optimizer(groups, saved)
        self.tally = torch.zeros(3, device=ctx.device)  # loss sum, correct, images
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}  # the epoch kept (`selection`), its weights
        self.record: dict[str, Any] = {}  # the highest on validation, its answers per image
        # seconds to the first step: start-up, data, model (a frozen backbone's features apart)
        start = time.perf_counter() - self.started - self.features_seconds
        self.timing: dict[str, float] = {"start": start}
        self.accuracy = 0.0
        if saved:
            self._restore(saved)

    @property
    def stage(self) -> str:
        """The strategy this epoch trains with: two-stage's first epochs train the head."""
        return "head" if self.epoch <= self.config.head_stage else self.config.strategy

    def _enter_stage(self, saved: dict[str, Any] | None = None) -> list[dict]:
        """Make the current stage's parameters trainable (the checkpoint's weights loaded into
        them), its module and inputs (cached features for a frozen backbone), the memory format
        and the threads it trains fastest with; return its parameter groups, layer-decayed
        where asked."""
        config, spec, device = self.config, self.spec, self.ctx.device
        groups = self.registry.finetune(spec, self.model, self.stage)
        if config.decay != 1:
            groups = layer_decayed(self.model, spec, groups, config.decay)
        self.model.to(device, memory_format=torch.channels_last)  # any module it added
        if saved:  # before any features are computed from it
            load_trained(self.model, saved, self.run_dir / FILENAME)
        self.frozen = frozen_checksum(self.model)
        began = time.perf_counter()
        self.module, self.train_x, self.val_x, self.test_x = self._inputs(
            head_module(self.model, spec)
        )
        self.features_seconds += time.perf_counter() - began if self.on_features else 0.0
        example = self._example()
        if not self.on_features:
            self.layout = self._layout(example, saved)
            self.module.to(memory_format=self.layout)
            example = example.contiguous(memory_format=self.layout)
        limit = self.thread_limit
        count = threads.use(config.threads, self.module, example, train=True, limit=limit)
        self.threads = threads.watch(config.threads, count, limit, device)
        self.step_module = self.ctx.wrap(self.module)
        if config.compile:
            self.step_module = torch.compile(self.step_module)
        self.ema = WeightAverage(self.module, config.ema) if config.ema else None
        return groups

    def _layout(self, example: torch.Tensor, saved: dict[str, Any] | None) -> torch.memory_format:
        """The memory format the images train in: --channels-last's; the checkpoint's, so that
        a resumed run computes as the uninterrupted one; channels_last under torchrun, whose
        processes must agree; else the faster for this model, timed."""
        chosen = self.config.channels_last
        if chosen is None and saved is not None:
            chosen = saved.get("channels_last")
        if chosen is None and self.ctx.world > 1:
            chosen = True
        if chosen is None:
            return layout.fastest(self.module, example)
        return torch.channels_last if chosen else torch.contiguous_format

    @property
    def stage_start(self) -> int:
        """The epochs before the current stage."""
        return 0 if self.epoch <= self.config.head_stage else self.config.head_stage

    def _make_optimizer(self, groups: list[dict], saved: dict[str, Any] | None = None) -> None:
        """The optimizer over `groups`, and its schedule over the current stage's steps: the
        head stage's epochs, or the last stage's, planned to fit `--time-budget` if given (after
        a warmup)."""
        config = self.config
        self.optimizer = make_optimizer(config, groups)
        epochs, warmup = config.head_stage, 0
        if self.stage_start == config.head_stage:
            self.plan = self._plan(saved)
            epochs = self.plan.epochs if self.plan else config.epochs
            self.last_epoch, warmup = config.head_stage + epochs, config.warmup or 0
        total, rising = self.steps * epochs, self.steps * warmup
        self.schedule = make_schedule(config, self.optimizer, total, rising)

    def _next_stage(self) -> None:
        """Two-stage's second stage: every layer, on the images. The best weights so far (the
        head's) get the frozen rest beside them, as it is about to change."""
        if self.best:
            whole = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best["state"] = {**whole, **self.best["state"]}
        self._make_optimizer(self._enter_stage())

    def _plan(self, saved: dict[str, Any] | None) -> budget.Plan | None:
        """`--time-budget`'s plan: the checkpoint's, or made now by timing a few steps."""
        config = self.config
        if config.time_budget is None:
            return None
        if saved and saved.get("plan"):
            return budget.Plan(**saved["plan"])
        validate = self.validation_logits
        found = budget.plan(
            self, config.time_budget, config.epochs, self.steps, validate, self.elapsed
        )
        if config.warmup and found.epochs <= config.warmup:
            raise ZooError(
                f"--time-budget {config.time_budget:g}s fits {found.epochs} epoch(s), not more "
                f"than --warmup {config.warmup}: a longer budget, or a shorter warmup"
            )
        return found

    def budget_metrics(self) -> dict[str, Any] | None:
        """The plan, whether the run stopped at its budget and the run's seconds when its
        epochs ended (the budget's part; the test, the post-hoc fit and the files follow), as
        the weights file says."""
        if self.plan is None:
            return None
        return {
            **self.plan.to_dict(),
            "after_head_epochs": self.config.head_stage,  # two-stage's, which the plan follows
            "stopped_at_budget": len(self.history) < self.last_epoch and not self.stopped_early,
            "epochs_done_at": self.timing.get("epochs_done"),
        }

    def _agreed(self, rate: float) -> float:
        """The processes' suggested rates (each tested on its own shard) as one: their
        geometric mean."""
        if self.ctx.world == 1:
            return rate
        logs = self.ctx.sum(torch.tensor([math.log(rate)], device=self.ctx.device))
        return math.exp(logs.item() / self.ctx.world)

    def _inputs(self, head: nn.Module) -> tuple[nn.Module, Any, Any, Any]:
        """The module to train and its train, validation and test inputs: the model on uint8
        images, or its head on cached features when only the head trains and nothing is
        random. The validation subset is up to `VALIDATION_IMAGES` held-out images."""
        device, amp = self.ctx.device, self.config.amp
        splits = (self.data.train_images, self.validation[0], self.data.test_images)
        if not self.config.random_input and trains_only(self.model, head):
            batches = image_batches(splits[0], self.input, device)
            train = backbone_features(self.model, head, batches, amp)
            if train is not None:
                rest = [
                    backbone_features(self.model, head, image_batches(x, self.input, device), amp)
                    for x in splits[1:]
                ]
                return head, train, *rest
        return self.model, *(resident(x, device) for x in splits)

    @property
    def validation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out images and labels evaluated each epoch: up to `VALIDATION_IMAGES` of
        them, evenly spaced (the held-out set is class-stratified, in dataset order)."""
        images, labels = self.held_out
        step = max(1, math.ceil(len(labels) / VALIDATION_IMAGES))
        return images[::step], labels[::step]

    def _example(self) -> torch.Tensor:
        """A batch as the module trains on it, to time the thread counts on."""
        x = self.train_x[: self.config.batch_size]
        x = x if isinstance(x, torch.Tensor) else x.read()  # mapped images
        return x if self.on_features else prepare(x.to(self.ctx.device), self.input)

    @property
    def on_features(self) -> bool:
        """Whether the head trains on the frozen backbone's cached features."""
        return self.module is not self.model

    def _restore(self, saved: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        self.epoch, self.step, self.seconds = saved["epoch"], saved["step"], saved["seconds"]
        self.history, self.best = saved["history"], saved["best"]
        # A checkpoint from before records were kept: the best was the record, its answers unknown.
        self.record = saved.get("record") or {k: v for k, v in self.best.items() if k != "state"}
        if self.best and self.best["state"] is None:  # the checkpoint's own weights
            self.best["state"] = {k: v.clone() for k, v in saved["state_dict"].items()}
        self.before = saved["elapsed"]
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        if self.ctx.is_main:  # the saved tally is already the sum over all processes
            self.tally = saved["tally"].to(self.ctx.device)
        set_rng_state(saved["rng"])

    def elapsed(self) -> float:
        """The run's wall-clock seconds so far, those before a `--resume` included."""
        return self.before + time.perf_counter() - self.started

    def train_epochs(self, progress: bool) -> None:
        """Train to the last epoch."""
        config = self.config
        done = (self.epoch - 1) * self.steps + self.step
        bar = _Progress(self.last_epoch * self.steps, done, enabled=progress)
        with bar, _StopOnInterrupt() as stop:
            while self.epoch <= self.last_epoch and not self.ctx.any(self._ends_now()):
                generator = _generator(config.seed, self.epoch)
                order = self.ctx.shard(epoch_order(self.train_y, generator, config.balance))
                self.begin_epoch()
                began = time.perf_counter()
                steps = batches(self.train_x, order, config.batch_size, self.ctx.device, self.step)
                for step, (index, x) in enumerate(steps, self.step):
                    y = self.train_y[index]
                    self.threads.run(functools.partial(self._train_step, x, y, step), len(y))
                    bar.advance(f"epoch {self.epoch}/{self.last_epoch}")
                    if self.ctx.any(stop.requested):
                        self.seconds += time.perf_counter() - began
                        self._interrupted(step + 1)
                self.seconds += time.perf_counter() - began
                self._end_epoch(bar)
                if config.head_stage and self.epoch == config.head_stage + 1:
                    self._next_stage()  # before the checkpoint, which then resumes there
                if self.ctx.is_main and self.run_dir is not None:
                    self._save_checkpoint(torch.zeros(3))
                    runlog.write_metrics(self.run_dir, self.history)

    def _ends_now(self) -> bool:
        """Whether the run stops before its next epoch: early, or at its time budget (asked
        once before each epoch)."""
        return self.stopped_early or (
            self.plan is not None and not self.plan.another_fits(self.history, self.elapsed())
        )

    @property
    def stopped_early(self) -> bool:
        """Whether `config.stop_after` epochs of every layer have passed in which neither the
        validation accuracy nor its loss beat its record (known to rank 0, which evaluates):
        while the loss still falls, the model is still learning (LeNet on Fashion-MNIST, 30
        epochs: the accuracy stalled from epoch 12 to 22 while the loss fell, then rose a point
        as the rate fell; counted on the accuracy alone, the run stopped at 22 with 90.77%).
        The default patience counts from the middle of a decaying schedule (cosine, onecycle)
        at the earliest: the validation score stalls while the rate is high and improves as it
        falls (the same run stopped at epoch 12 with 88.4% when counted from the start)."""
        config = self.config
        patience = config.stop_after
        if patience is None or not self.history or self.record.get("val_accuracy") is None:
            return False
        since = max(self.progress_epoch, config.head_stage)
        if config.patience is None and config.schedule != "constant":
            since = max(since, (config.head_stage + self.last_epoch) // 2)
        return self.history[-1]["epoch"] - since >= patience

    @property
    def progress_epoch(self) -> int | None:
        """The last epoch that made progress on the validation subset: the record (the highest
        accuracy), or a later one whose loss fell below every earlier one's (None before the
        first validated epoch)."""
        if self.record.get("val_accuracy") is None:
            return None
        last, low = self.record["epoch"], math.inf
        for row in self.history:
            loss = row.get("val_loss")  # None in a checkpoint from before losses were kept
            if loss is not None and loss < low:
                last, low = max(last, row["epoch"]), loss
        return last

    def begin_epoch(self) -> None:
        """Put the trained module in training mode. Frozen batch norms stay in eval mode, and
        every one does with `--norm-statistics kept` (two-stage's default: its head was fitted
        to the backbone's features under the pretrained statistics, which batch statistics
        would change at once; Keras's fine-tuning guide keeps them so too)."""
        self.module.train()
        if not self.on_features:
            freeze_norm_statistics(self.model, every=self.config.keeps_norm_statistics)

    def step_loss(
        self, x: torch.Tensor, y: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch (uint8 images, or cached features) at the optimizer's
        rates; returns the logits and the loss, detached, and the labels the accuracy counts
        against (with mixup or cutmix, each mixed image's dominant one)."""
        config = self.config
        if not self.on_features:
            x = self._model_input(x, step).contiguous(memory_format=self.layout)
        target = y
        if self.mixing is not None:
            mixing = _generator(config.seed, self.epoch, step, self.ctx.rank, MIXING)
            x, target = self.mixing(x, y, mixing)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=config.amp):
            logits = self.step_module(x)
            if self.mixing is not None:
                loss = self.mixing.loss(logits, target)
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        labels = target.argmax(1) if self.mixing is not None else y
        return logits.detach(), loss.detach().float(), labels

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
        logits, loss, labels = self.step_loss(x, y, step)
        self.schedule.step()
        if self.ema is not None:
            done = (self.epoch - 1 - self.stage_start) * self.steps + step + 1  # this stage's
            self.ema.update(self.module, done)
        self.tally[0] += loss * len(y)
        self.tally[1] += (logits.argmax(1) == labels).sum()
        self.tally[2] += len(y)

    def _model_input(self, images: torch.Tensor, step: int) -> torch.Tensor:
        """A batch of uint8 images as the model's input, augmented where asked: photos by
        random-resized crops, other images by padded crops, either mirrored or not; then random
        erasing."""
        config = self.config
        flip = config.flips and self.dataset.flip
        if not config.random_input:
            return prepare(images, self.input)
        generator = _generator(config.seed, self.epoch, step, self.ctx.rank)
        if not config.augment:
            x = prepare(images, self.input)
            x = mirror(x, generator) if flip else x
        elif self.data.photos:
            crops = photo_augment(
                images, self.input.image_size, generator, flip, config.trivial_augment
            )
            x = prepare(crops, self.input)
        else:
            x = augment(prepare(images, self.input), generator, flip=flip)
        return erase(x, config.random_erasing, generator) if config.random_erasing else x

    def _end_epoch(self, bar: _Progress) -> None:
        loss_sum, correct, seen = self.ctx.sum(self.tally).tolist()
        epoch, self.epoch, self.step = self.epoch, self.epoch + 1, 0
        self.tally.zero_()
        if not self.ctx.is_main:
            self.seconds = 0.0
            return
        began = time.perf_counter()
        labels = self.validation[1]
        accuracy = loss = answers = None
        with self.ema.applied(self.module) if self.ema else contextlib.nullcontext():
            if len(labels):
                logits = self.validation_logits()
                answers = logits.argmax(1) == labels  # right or wrong, per image
                accuracy = answers.float().mean().item()
                loss = F.cross_entropy(logits, labels).item()
            # Nothing held out (no accuracy): the last epoch's weights.
            record = self.record
            new = not record or accuracy is None or selection.is_record(accuracy, loss, record)
            if new:
                self.record = {
                    "epoch": epoch,
                    "val_accuracy": accuracy,
                    "val_loss": loss,
                    "answers": answers,  # for the paired test
                }
            if new or selection.within_noise(record.get("answers"), answers):
                state = {k: v.detach().clone() for k, v in trained_state(self.model).items()}
                self.best = {
                    "epoch": epoch,
                    "val_accuracy": accuracy,
                    "val_loss": loss,
                    "state": state,
                }
        self.history.append(
            {
                "epoch": epoch,
                "loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "val_accuracy": accuracy,
                "val_loss": loss,
                "lr": max(self.schedule.get_last_lr()),  # the head's, where rates decay
                "images_per_s": seen / self.seconds if self.seconds else None,
                "seconds": self.seconds,
                "val_seconds": time.perf_counter() - began,
                "threads": self.threads.current,  # at the epoch's end
                "thread_checks": self.threads.checks,  # re-checks during the epoch
                "channels_last": self.layout == torch.channels_last and not self.on_features,
                "strategy": "head" if epoch <= self.config.head_stage else self.config.strategy,
            }
        )
        self.seconds, self.threads.checks = 0.0, []
        shown = f" validation accuracy {accuracy:.2%}" if accuracy is not None else ""
        bar.advance(f"epoch {epoch}/{self.last_epoch} loss {loss_sum / seen:.3f}{shown}", 0)

    def validation_logits(self) -> torch.Tensor:
        """The trained module's logits of the validation subset (bf16 autocast with --amp)."""
        with torch.autocast(self.ctx.device.type, torch.bfloat16, enabled=self.config.amp):
            return logits_of(self.module, self._batches(self.val_x))

    def _batches(self, inputs):
        """Evaluation batches of `inputs`: cached features, or images prepared on the device."""
        if self.on_features:
            return inputs.split(1024)
        return image_batches(inputs, self.input, self.ctx.device)

    def _test_logits(self) -> torch.Tensor:
        return logits_of(self.module, self._batches(self.test_x))

    def _interrupted(self, step: int) -> None:
        """Save where the run stands (mid-epoch) and stop."""
        tally = self.ctx.sum(self.tally)
        if self.run_dir is None:
            raise KeyboardInterrupt("nothing saved (no run folder)")
        if self.ctx.is_main:
            self.step = step
            path = self._save_checkpoint(tally.cpu())
            raise KeyboardInterrupt(f"saved {path}; add --resume to continue")
        raise KeyboardInterrupt

    def _best_to_save(self) -> dict[str, Any]:
        """`best` for the checkpoint: without its weights where they are the checkpoint's own
        (saved at the end of the best epoch, and not an average's), so they are not stored
        twice."""
        if (
            self.best
            and self.ema is None
            and self.step == 0
            and self.best["epoch"] == self.epoch - 1
        ):
            return {**self.best, "state": None}
        return self.best

    def _save_checkpoint(self, tally: torch.Tensor) -> Path:
        assert self.run_dir is not None
        state = {
            "model": self.spec.name,
            "config": asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.seconds,
            "tally": tally,
            "history": self.history,
            "best": self._best_to_save(),
            "record": self.record,
            "elapsed": self.elapsed(),
            "state_dict": trained_state(self.model),  # the frozen rest is rebuilt on resume
            "frozen": self.frozen,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": rng_state(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "channels_last": None if self.on_features else self.layout == torch.channels_last,
        }
        if not self.fresh:
            return save_checkpoint(self.run_dir / FILENAME, state)
        missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        try:
            path = save_checkpoint(self.run_dir / FILENAME, state)
        except BaseException:
            for folder in missing:  # no empty run folder left behind
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise
        for name in (
            runlog.METRICS,
            runlog.CURVES,
            runlog.CONFUSION,
            lr_find.FIGURE,
            *analysis.FIGURES,
        ):
            (self.run_dir / name).unlink(missing_ok=True)
        self.fresh = False
        return path

    def finish(self, out: Path) -> Path:
        """Take the kept epoch's weights, evaluate the test split once, fit the post-hoc
        parts, write the plots and the weights file; return its path."""
        data, config = self.data, self.config
        timing = self.timing
        timing["epochs_done"] = self.elapsed()  # the run's seconds when its epochs ended
        timing["training"] = sum(row["seconds"] for row in self.history)
        timing["features"] = self.features_seconds  # a frozen backbone's one pass, if cached
        timing["validation"] = sum(row.get("val_seconds", 0.0) for row in self.history)
        began = time.perf_counter()
        labels = data.test_labels
        last = None  # the last epoch's test accuracy, beside the best's: for comparison only
        if self.best and self.best["epoch"] != self.history[-1]["epoch"]:
            with self.ema.applied(self.module) if self.ema else contextlib.nullcontext():
                last = self._test_logits().argmax(1).eq(labels).float().mean().item()
        if self.best:
            self.model.load_state_dict(self.best["state"], strict=False)
        test_logits = self._test_logits()
        predictions = test_logits.argmax(1)
        self.accuracy = accuracy = (predictions == labels).float().mean().item()
        timing["test"] = time.perf_counter() - began
        confusion = confusion_matrix(labels, predictions, len(data.classes))
        title = f"{self.spec.name} on {config.dataset}"
        if self.run_dir is not None and self.history:
            runlog.plot_curves(self.run_dir, self.history, title, self.best.get("epoch"))
            runlog.plot_confusion(
                self.run_dir, confusion, data.classes, f"{title}: test accuracy {accuracy:.2%}"
            )
        per_class = dict(zip(data.classes, per_class_accuracy(confusion), strict=True))
        began = time.perf_counter()
        fitted = posthoc.fit_posthoc(
            self.model,
            self.spec,
            self.input,
            data,
            self.validation,
            self.ctx.device,
            self.run_dir if self.history else None,
            title,
            (self.train_x, self.val_x, self.test_x) if self.on_features else None,
            test_logits,
        )
        timing["posthoc"] = time.perf_counter() - began
        meta = {
            "model": self.spec.name,
            "plugin": self.spec.plugin,
            "classes": data.classes,
            "input": self.input.to_dict(),
            "source_size": min(data.train_images.shape[-2:]),  # the stored images' resolution
            "dataset": config.dataset,
            "metrics": {
                "test_accuracy": accuracy,
                "test_images": len(labels),
                "train_images": len(data.train_labels),
                "held_out_images": len(self.held_out[1]),
                "validation_images": len(self.validation[1]),
                "best_epoch": self.best.get("epoch"),
                "best_val_accuracy": self.best.get("val_accuracy"),
                "best_val_loss": self.best.get("val_loss"),
                "best_is": selection.KEPT_IS,
                "record_epoch": self.record.get("epoch"),
                "record_val_accuracy": self.record.get("val_accuracy"),
                "last_epoch_test_accuracy": accuracy if last is None else last,
                "epochs_trained": len(self.history),
                "stopped_early": self.stopped_early,
                "patience": config.stop_after,
                **({"time_budget": self.budget_metrics()} if self.plan else {}),
                "per_class_accuracy": per_class,
                "per_class": analysis.scores_by_class(confusion, data.classes),
            },
            "data": recorded_data(config, data.source),
            "settings": asdict(config),
            "timing": dict(timing),  # seconds: to the last epoch's end, training, test, ...
            **fitted.meta,
        }
        if self.lr_test is not None:
            meta["lr_find"] = {
                "suggestion": config.lr,  # under torchrun, the processes' geometric mean
                "processes": self.ctx.world,
                "rule": "fastai's valley",
                "rates": [self.lr_test.rates[0], self.lr_test.rates[-1]],
                "steps": len(self.lr_test.rates),
            }
            if self.run_dir is not None:
                self.lr_test.plot(self.run_dir / lr_find.FIGURE, f"{title}: --lr auto")
        path = save(out, self.model, meta, fitted.tensors)
        timing["total"] = self.elapsed()
        return path


def _check_writable(folder: Path) -> None:
    """A one-line error now, rather than after training, if `folder` could not be made or
    take files. Creates nothing: a failed command leaves no empty folder behind."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ZooError(f"cannot write to {folder} ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ZooError(f"cannot write to {folder} ({existing}: permission denied)")


def recorded_data(config: TrainConfig, source: str) -> dict[str, str | None]:
    """Where a run's data came from, as the weights file records it for `zoo eval`: the
    dataset (a `NAME:PATH` with a path that exists made absolute), the data folder given
    (absolute, or None), and the folder it was read from."""
    name, _, path = config.dataset.partition(":")
    dataset = f"{name}:{Path(path).resolve()}" if path and Path(path).exists() else config.dataset
    folder = str(Path(config.data_dir).resolve()) if config.data_dir else None
    return {"dataset": dataset, "data_dir": folder, "found": source}


def scaled_defaults(
    config: TrainConfig, spec: ModelSpec, images: int, given: Iterable[str]
) -> TrainConfig:
    """`config` with the model's default epochs, batch size and learning rate (those not in
    `given` and still the model's) scaled to a training split of `images`: its defaults suit
    `REFERENCE_IMAGES` (digits); with k, the square root of how many times more there are, as
    a power of two, the batch grows k times (to at most `MAX_SCALED_BATCH`), the learning rate
    with the square root of the batch's growth, and the epochs shrink by the square root of k.
    The CIFAR CNN on Fashion-MNIST's 54,000: 11 epochs at batch 256 and 8.5e-3, not 30 at 32
    and 3e-3. What the model's recipe for the dataset sets stays as measured."""
    k = 2 ** round(math.log(images / REFERENCE_IMAGES, 4)) if images > REFERENCE_IMAGES else 1
    defaults, measured = spec.defaults, recipe_in_effect(spec, config.dataset, config.limit)
    free = {
        name
        for name in SCALED
        if name not in {*given, *measured} and getattr(config, name) == getattr(defaults, name)
    }
    if k == 1 or not free:
        return config
    changes: dict[str, Any] = {}
    batch = config.batch_size
    if "batch_size" in free and batch < MAX_SCALED_BATCH:
        batch = changes["batch_size"] = min(batch * k, MAX_SCALED_BATCH)
        if "lr" in free:
            changes["lr"] = config.lr * math.sqrt(batch / config.batch_size)
    if "epochs" in free:
        changes["epochs"] = max(1, math.ceil(config.epochs / math.sqrt(k)))
    return replace(config, **changes)


def fit_batch_size(config: TrainConfig, images: int, chosen: bool) -> TrainConfig:
    """`config` with a default batch size capped at 1/`MIN_STEPS` of the `images` one process
    trains on, so that small sets still take `MIN_STEPS` steps an epoch (with a warning); a
    chosen one is kept, with a warning if it leaves fewer than `FEW_STEPS`."""
    steps = math.ceil(images / config.batch_size)
    if steps >= MIN_STEPS or (chosen and steps >= FEW_STEPS):
        return config
    if chosen:
        warnings.warn(
            f"--batch-size {config.batch_size} leaves {steps} step{'s' * (steps > 1)} an epoch "
            f"over {images} training images",
            stacklevel=3,
        )
        return config
    size = max(1, images // MIN_STEPS)
    warnings.warn(
        f"batch size {size}, not the model's {config.batch_size}: {images} training images "
        f"would make {steps} step{'s' * (steps > 1)} an epoch (--batch-size sets it)",
        stacklevel=3,
    )
    return replace(config, batch_size=size)


def _load_data(
    registry: Registry, config: TrainConfig, size: int, ctx: distributed.Context, progress: bool
) -> tuple[DatasetSpec, ImageSplits]:
    """The dataset, decoded (rank 0 first, so that only it downloads and fills the cache, which
    the others then map) and limited."""
    if not ctx.is_main:
        ctx.barrier()
    dataset, data = load_dataset(
        registry,
        config.dataset,
        size,
        config.data_dir,
        config.download,
        config.workers,
        augment=config.augment,
        progress=progress and ctx.is_main,
    )
    if ctx.is_main:
        ctx.barrier()
    return dataset, data.limit(config.limit) if config.limit else data


def _build(registry: Registry, spec: ModelSpec, config: TrainConfig, classes: int) -> nn.Module:
    """The model, from pretrained weights or `init_from` where asked (all of its tensors that
    fit: a head for other classes starts anew)."""
    model = registry.build(spec, num_classes=classes, pretrained=config.pretrained)
    if config.init_from:
        state = _foreign_keys_converted(
            registry, spec, model, read_state_dict(config.init_from, model, spec.head, registry)
        )
        fresh = load_fitting(model, state, spec.head, config.init_from)
        if fresh:
            warnings.warn(
                f"--init-from {config.init_from}: skipped {', '.join(fresh)} (the head for "
                f"{classes} classes starts anew)",
                stacklevel=3,
            )
    elif config.strategy == "head" and not config.pretrained and spec.pretrained:
        warnings.warn(
            f"training only the head of {spec.name} on a random backbone; add --pretrained",
            stacklevel=3,
        )
    return model


def _foreign_keys_converted(
    registry: Registry, spec: ModelSpec, model: nn.Module, state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`state` as it is where any of its keys are the model's; else, where the plugin declares
    how its pretrained weights' format maps (`PretrainedWeights.convert`, checked), mapped onto
    the model as those weights build it (with an ImageNet head, which a new one replaces)."""
    weights = registry.pretrained(spec)
    if weights is None or weights.convert is None or state.keys() & model.state_dict().keys():
        return state
    reference = registry.build(spec, num_classes=1000) if weights.classes == "imagenet" else model
    return weights.convert(state, reference)


def _check_input(model: nn.Module, name: str, spec: InputSpec, device: torch.device) -> None:
    """A one-line error if `model` cannot take `spec`'s input size (as --image-size asks)."""
    x = torch.zeros(2, spec.channels, spec.size, spec.size, device=device)
    try:
        with torch.no_grad():
            model.eval()(x.contiguous(memory_format=torch.channels_last))
    except RuntimeError as error:
        cause = str(error).splitlines()[0]
        raise ZooError(f"{name} cannot take {spec.size}x{spec.size} input ({cause})") from None


def _generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from `keys` (seed, epoch, ...): the same in every process."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


class _StopOnInterrupt:
    """Turns the first Ctrl-C into a request to stop at the next step; a second one stops at
    once. Only in the main thread, where Python delivers signals."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class _Progress:
    """A rich progress bar over all steps of a run (a no-op when disabled)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("training", total=total, completed=completed)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self, description: str, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=steps, description=description)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
