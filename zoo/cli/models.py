"""`zoo list`, `zoo info` and `zoo plugins`: the models and the plugins that provide them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from zoo.cli.app import JsonFlag, app, registry
from zoo.cli.output import out, print_table
from zoo.errors import ZooError


@app.command("list")
def list_models(
    pattern: Annotated[str | None, typer.Argument(help="A glob such as 'timm/*'.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the models (a curated set, or all that match PATTERN)."""
    reg = registry()
    specs = reg.find(pattern)
    weights = {spec.name: reg.pretrained(spec) for spec in specs}
    if as_json:
        rows = [
            {
                **spec.to_dict(),
                "pretrained_here": bool(weights[spec.name] and weights[spec.name].file),
            }
            for spec in specs
        ]
        print(json.dumps(rows, indent=2))
        return
    if not specs:
        raise ZooError(f"no model matches {pattern!r}{reg.did_you_mean(pattern)}")
    rows = [
        {
            "model": spec.name,
            "input": f"{spec.input.channels}x{spec.input.size}x{spec.input.size}",
            "pretrained": _availability(spec, weights[spec.name]),
            "plugin": spec.plugin,
            "summary": spec.summary,
        }
        for spec in specs
    ]
    print_table(rows, wrap="summary", drop=("plugin", "pretrained"))
    if any(weights[spec.name] and weights[spec.name].file for spec in specs):
        out.print("pretrained: here = the weights are on this machine; online = downloaded first")
    if pattern is None:
        hidden = len(registry().models) - len(specs)
        if hidden:
            out.print(f"and {hidden} more: zoo list 'timm/*' lists them all")


def _availability(spec, weights) -> str:
    """Whether `spec`'s pretrained weights are here, only online, or do not exist."""
    if weights is not None:
        return "here" if weights.file else "online" if weights.url else "no"
    return "online" if spec.pretrained else ""


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="The model's name.")],
    classes: Annotated[int, typer.Option(min=1, help="Size of the classifier head.")] = 10,
    graph: Annotated[bool, typer.Option(help="Print the autograd graph.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a model: module tree, parameter tensors, input spec, head, plugin."""
    reg = registry()
    spec = reg.model(name)  # before torch is imported: a wrong name fails at once
    from zoo.training.config import command_line
    from zoo.trust.introspect import autograd_graph, forward_loss, parameter_count, parameter_shapes

    model = reg.build(spec, num_classes=classes)
    shapes = parameter_shapes(model)
    weights = reg.pretrained(spec)
    facts = {
        **spec.to_dict(),
        "pretrained_weights": None
        if weights is None
        else {key: getattr(weights, key) for key in ("source", "file", "provider", "url")},
        "module_tree": str(model),
        "parameters": [{"name": n, "shape": list(s)} for n, s in shapes],
        "parameter_count": parameter_count(model),
    }
    if graph:
        facts["autograd_graph"] = autograd_graph(forward_loss(model, spec.input))
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    i = spec.input
    out.print(f"[bold]{spec.name}[/]: {spec.summary}")
    out.print(f"plugin {spec.plugin}; head {spec.head}; {_describe_weights(spec, weights)}")
    out.print(f"fine-tune strategies: {', '.join(spec.strategies)}")
    if spec.aliases:
        out.print(f"also loads weights files of: {', '.join(spec.aliases)}")
    framed = f" (the image {i.image_size}x{i.image_size} in a black border)" if i.border else ""
    out.print(f"input {i.channels}x{i.size}x{i.size}{framed}, mean {i.mean}, std {i.std}")
    for dataset, recipe in spec.recipes.items():
        out.print(f"its recipe on {dataset}, over the defaults:")
        out.print(f"  {command_line(dict(recipe))}")
    out.print("\nmodule tree:")
    print(model)
    out.print(f"\n{len(shapes)} parameter tensors:")
    for param, shape in shapes:
        print(f"  {param:<40} {list(shape)}")
    out.print(f"total parameters: {facts['parameter_count']:,}")
    if graph:
        out.print("\nautograd graph of MSELoss(model(randn), randn):")
        print("\n".join(facts["autograd_graph"]))


def _describe_weights(spec, weights) -> str:
    """A line on `spec`'s pretrained weights: where they come from, and whether they are here."""
    if weights is None:
        return f"pretrained weights: {'online' if spec.pretrained else 'none'}"
    if weights.file:
        return f"pretrained weights here: {weights.source} ({weights.file})"
    return f"pretrained weights not here: {weights.source}; from {weights.provider}"


@app.command()
def plugins(as_json: JsonFlag = False) -> None:
    """List the plugins: what each provides, its distribution, version and hooks, and the
    errors of those that failed."""
    infos = registry().plugins
    if as_json:
        print(json.dumps([vars(p) for p in infos], indent=2))
        return
    for p in infos:
        provides = [f"{len(p.models)} models" if len(p.models) > 3 else ", ".join(p.models)]
        provides += [f"datasets {', '.join(p.datasets)}"] if p.datasets else []
        out.print(
            f"[bold]{escape(p.name)}[/] ({p.source}) {escape('; '.join(filter(None, provides)))}"
        )
        origin = [f"{p.distribution} {p.version}"] if p.distribution else []
        details = "; ".join(origin + ([f"hooks {', '.join(p.hooks)}"] if p.hooks else []))
        if details:
            out.print(f"  {escape(details)}")
        if p.skipped:
            out.print(f"  skipped: {escape(p.skipped)}")
        if p.error:
            out.print(f"  [red]error:[/] {escape(p.error)}")
