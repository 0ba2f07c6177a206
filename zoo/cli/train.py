"""`zoo train`: its options are `TrainConfig`'s fields (`zoo.training.config`), derived here."""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from zoo.cli.app import JsonFlag, app, registry, started
from zoo.cli.output import err, out, print_table
from zoo.errors import ZooError
from zoo.training.config import TrainConfig, default_run_name, flags, options
from zoo.util.paths import expand

# The options of the run itself (where its files go, how it reports), not of what it computes.
RUN_OPTIONS = ("out", "run_name", "runs_dir")


def train_model(
    name: Annotated[str, typer.Argument(help="The model's name (zoo list).")],
    out_dir: Annotated[str | None, typer.Option("--out", help="Weights folder [weights].")] = None,
    run_name: Annotated[str | None, typer.Option("--run-name")] = None,
    runs_dir: Annotated[
        str | None, typer.Option(envvar="ZOO_RUNS_DIR", help="Run folders' parent [runs].")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from last.ckpt.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", metavar="FILE.toml", help="Settings from a file.", callback=expand
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    **given: Any,
) -> None:
    """Fine-tune a model; write weights/<model>-<dataset>.safetensors and runs/<run>/."""
    reg = registry()
    spec = reg.model(name)  # before torch is imported: a wrong name fails at once
    from zoo.training.loop import train as run_training
    from zoo.training.settings import read_settings

    types = {f.name: str(f.type) for f in options()} | {key: "str" for key in RUN_OPTIONS}
    settings = read_settings(config_file, types) if config_file else {}
    run_options = {"out": out_dir, "run_name": run_name, "runs_dir": runs_dir}
    settings.update(
        {key: value for key, value in {**given, **run_options}.items() if value is not None}
    )
    paths = {f.name for f in options() if f.metadata["path"]} | {"out", "runs_dir"}
    for key in paths.intersection(settings):
        settings[key] = expand(settings[key])
    out_folder = Path(settings.pop("out", "weights"))
    if out_folder.suffix == ".safetensors":
        raise ZooError(
            f"--out is the weights folder, not a file: the file is named after the run "
            f"(--out {out_folder.parent} --run-name {out_folder.stem})"
        )
    runs = Path(settings.pop("runs_dir", "runs"))
    config = TrainConfig.for_model(spec, **settings)
    run = settings.get("run_name") or default_run_name(spec.name, config.dataset)
    try:
        result = run_training(
            reg,
            spec,
            config,
            out_folder / f"{run}.safetensors",
            run_dir=runs / run,
            resume=resume,
            progress=not quiet,
            given=settings,
            started=started(),
        )
    except KeyboardInterrupt as interrupt:  # typer would swallow it silently
        err.print(f"interrupted: {escape(str(interrupt))}" if str(interrupt) else "interrupted")
        raise typer.Exit(130) from None
    if result.path is not None:
        t = result.timing
        out.print(
            f"{spec.name} on {config.dataset}: test accuracy {result.accuracy:.2%} (the weights "
            f"kept: epoch {result.best_epoch}) in {result.seconds:.1f}s -> "
            f"{result.path} (run folder {result.run_dir})"
        )
        if result.lr_found is not None:
            out.print(f"--lr auto: {result.lr_found:.3g}, the range test's suggestion")
        if result.stopped_early:
            since, best = result.progress_epoch, result.best_epoch
            which = ", the weights kept" if since == best else f" (the weights kept: epoch {best})"
            out.print(
                f"stopped after epoch {result.epochs}: neither the validation accuracy nor its "
                f"loss has improved since epoch {since}{which} (--patience sets how long to wait)"
            )
        if result.budget is not None:
            plan = result.budget
            stop = ", the next would not have fit" if plan["stopped_at_budget"] else ""
            head = plan.get("after_head_epochs")
            after = f" after {head} of the head alone" if head else ""
            out.print(
                f"--time-budget {plan['budget']:g}s: {plan['epochs']} epochs planned at about "
                f"{plan['epoch_seconds']:.1f}s each{after}, {result.epochs} trained in the first "
                f"{plan['epochs_done_at']:.1f}s{stop}"
            )
        out.print(
            f"seconds: {_features(t)}training {t['training']:.1f}, validation each epoch "
            f"{t['validation']:.1f}, test {t['test']:.1f}, post-hoc fit {t['posthoc']:.1f}; "
            f"the whole run {result.seconds:.1f}"
        )
        if not resume:  # a resumed run's seconds include its earlier processes'
            out.print(_fixed_costs(t, result.seconds))


def _features(timing: dict[str, float]) -> str:
    seconds = timing.get("features")
    return f"the frozen backbone's features {seconds:.1f}, " if seconds else ""


def _fixed_costs(timing: dict[str, float], total: float) -> str:
    """The run's seconds other than its training steps and features, by where they went."""
    parts = {
        "start-up and data": timing["start"],
        "evaluation": timing["validation"] + timing["test"],
        "post-hoc fit": timing["posthoc"],
    }
    parts["checkpoints, figures and files"] = (
        total - timing["training"] - timing["features"] - sum(parts.values())
    )
    fixed = sum(parts.values())
    shown = ", ".join(f"{name} {seconds:.1f}" for name, seconds in parts.items())
    return f"fixed costs {fixed:.1f}s ({shown})"


def _option_parameters(left_out: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """A keyword parameter per `TrainConfig` field (but those `left_out`), typed and helped as
    the field declares; None (its default) means "not given"."""
    hints = typing.get_type_hints(TrainConfig)
    parameters = []
    for f in [f for f in options() if f.name not in left_out]:
        kind = hints[f.name]
        parser = f.metadata["parser"] and _bad_parameter(f.metadata["parser"])
        declared = typer.Option(
            *flags(f), help=f.metadata["help"], metavar=f.metadata["metavar"], parser=parser
        )
        kind = Any if parser else kind
        parameters.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind | None, declared],
            )
        )
    return parameters


def _bad_parameter(parse):
    """`parse`, its ValueError typer's own refusal of the value (no "Value error" prefix)."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return parsed


def _with_options(command, left_out: tuple[str, ...] = ()):
    """`command` with its `**given` replaced by the options `_option_parameters` derives."""
    signature = inspect.signature(command, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    fixed = [p.replace(kind=p.KEYWORD_ONLY) if p.default is not p.empty else p for p in fixed]
    command.__signature__ = signature.replace(parameters=[*fixed, *_option_parameters(left_out)])
    command.__annotations__ = {
        p.name: p.annotation for p in command.__signature__.parameters.values()
    }
    return command


def lr_find_model(
    name: Annotated[str, typer.Argument(help="The model's name (zoo list).")],
    plot: Annotated[
        str | None,
        typer.Option("--plot", metavar="FILE.png", help="[runs/<run>-lr-find.png]"),
    ] = None,
    runs_dir: Annotated[
        str | None, typer.Option(envvar="ZOO_RUNS_DIR", help="Where the plot goes [runs].")
    ] = None,
    **given: Any,
) -> None:
    """Suggest a --lr: the range test, a short run at rising rates (nothing written but its
    plot of the loss against the rate); zoo train --lr auto uses it."""
    reg = registry()
    spec = reg.model(name)
    settings = {key: value for key, value in given.items() if value is not None}
    for key in ({f.name for f in options() if f.metadata["path"]}).intersection(settings):
        settings[key] = expand(settings[key])
    config = TrainConfig.for_model(spec, **settings)
    target = Path(expand(plot)) if plot else None
    if target is None:
        run = default_run_name(spec.name, config.dataset)
        target = Path(expand(runs_dir) if runs_dir else "runs") / f"{run}-lr-find.png"
    if target.suffix.lower() != ".png":
        raise ZooError(f"--plot {target} must name a .png file")
    from zoo.training.loop import lr_range_test

    test = lr_range_test(reg, spec, config, settings)
    path = test.plot(target, f"{spec.name} on {config.dataset}: learning-rate range test")
    out.print(
        f"suggested --lr {test.suggestion:.3g} (fastai's valley: halfway along the longest "
        f"fall of the loss), from {len(test.rates)} steps at {test.rates[0]:.0e} to "
        f"{test.rates[-1]:.2g}; plot {path}"
    )


app.command("train")(_with_options(train_model))
# The range test chooses its own rates and runs a fixed number of steps on shuffled batches,
# its model's own weights: these do not apply.
NOT_FOR_LR_FIND = (
    "epochs",
    "lr",
    "schedule",
    "patience",
    "warmup",
    "time_budget",
    "ema",
    "balance",
)
app.command("lr-find")(_with_options(lr_find_model, NOT_FOR_LR_FIND))


def tournament(
    dataset: Annotated[str, typer.Argument(help="A name from zoo datasets.")],
    models: Annotated[
        list[str], typer.Option("--models", "-m", help="A model name or glob (repeatable).")
    ],
    limit: Annotated[int | None, typer.Option(help="Training images (stratified).")] = 10_000,
    image_size: Annotated[int | None, typer.Option(help="Input size, not each model's.")] = None,
    scratch: Annotated[
        bool, typer.Option("--scratch", help="Also probe each backbone as initialised.")
    ] = False,
    data_dir: Annotated[str | None, typer.Option(help="Where datasets live.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rank pretrained backbones for DATASET: each one's frozen features, computed once, and a
    linear probe on them, scored on the held-out images; then the zoo train command for the
    winner."""
    for name, value in (("--limit", limit), ("--image-size", image_size), ("--threads", threads)):
        if value is not None and value < 1:
            raise ZooError(f"{name} must be at least 1")
    reg = registry()
    reg.dataset(dataset)  # a bad name fails before any model is built
    from zoo.training import tournament as contest

    specs = contest.candidates(reg, models)
    if threads:
        import torch

        torch.set_num_threads(threads)
    size = image_size or max(spec.input.size for spec in specs)
    data = contest.load(reg, dataset, size, limit, expand(data_dir) if data_dir else None)
    entries = [
        contest.probe(reg, spec, data, image_size, pretrained)
        for spec in specs
        for pretrained in ((True, False) if scratch else (True,))
    ]
    entries = contest.ranked(entries)
    if as_json:
        found = [asdict(e) | {"standard_error": e.standard_error} for e in entries]
        print(json.dumps(found, indent=2))
        return
    rows = [
        {
            "rank": str(rank) if entry.accuracy is not None else "-",
            "model": entry.model + ("" if entry.pretrained else " (scratch)"),
            "probe": f"{entry.accuracy:.2%}" if entry.accuracy is not None else "",
            "±": f"{entry.standard_error:.1%}" if entry.standard_error is not None else "",
            "seconds": f"{entry.seconds:.0f}",
            "params": f"{entry.parameters / 1e6:.1f}M" if entry.parameters else "",
            "size": str(entry.image_size),
            "note": entry.error or "",
        }
        for rank, entry in enumerate(entries, 1)
    ]
    print_table(rows, wrap="note")
    winner = next((e for e in entries if e.accuracy is not None and e.pretrained), None)
    if winner is None:
        raise ZooError("no candidate could be probed (see the notes)")
    tied = contest.close_calls(entries)
    if tied:
        names = [entry.model for entry in tied]
        order = "the other way; try both" if len(names) == 2 else "in any order; try them"
        out.print(
            f"{', '.join(names[:-1])} and {names[-1]} are within the probe's noise "
            f"({contest.NOISE:g} standard errors on {tied[0].held_out:,} held-out images): "
            f"fine-tuned, they may rank {order}"
        )
    size_option = f" --image-size {image_size}" if image_size else ""
    out.print(f"next: zoo train {winner.model} -d {dataset} --pretrained{size_option}")


app.command("tournament")(tournament)
