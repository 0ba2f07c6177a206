"""`zoo eval` and `zoo explain`: how good a weights file is, how sure, and where it looked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zoo.cli.app import ImageFiles, JsonFlag, JsonLines, RunsDir, WeightsFile, app, registry
from zoo.cli.output import out, print_confusion, print_table, warn
from zoo.errors import ZooError
from zoo.util.paths import expand


@app.command("eval")
def evaluate(
    weights: Annotated[
        Path, typer.Argument(help="A .safetensors file from zoo train.", callback=expand)
    ],
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Default: the one it was trained on, and its folder."),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Where datasets live.", callback=expand)
    ] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the data.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Where the figures go [default: RUNS_DIR/<weights name>]."
        ),
    ] = None,
    runs_dir: RunsDir = "runs",
    deletion: Annotated[
        bool, typer.Option("--deletion", help="Deletion-test the explanations (pass rate).")
    ] = False,
    method: Annotated[
        str | None, typer.Option(help="Explanation method for --deletion [the file's].")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Accuracy, calibration, per-class scores, confusions and the top losses of a weights
    file; writes a reliability diagram and a top-loss gallery."""
    from dataclasses import asdict

    from zoo.trust.report import evaluate_weights

    if method is not None and not deletion:
        raise ZooError("--method is for --deletion (zoo explain takes it too)")
    report = evaluate_weights(
        registry(),
        weights,
        dataset,
        data_dir,
        download,
        device,
        batch_size,
        figures_dir=figures or Path(runs_dir) / weights.stem,
        deletion=deletion,
        method=method,
    )
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    out.print(f"data: {escape(report.source)}")
    out.print(
        f"{escape(report.weights)} on {escape(report.dataset)} ({report.images} test images): "
        f"accuracy [bold]{report.accuracy:.2%}[/]"
    )
    c = report.calibration
    out.print(
        f"calibration: temperature {c['temperature']:.3f}, ECE {c['ece_before']:.4f} -> "
        f"{c['ece_after']:.4f}, NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}"
    )
    if report.explain:
        e = report.explain
        out.print(
            f"explanations ({e['method']}): {e['pass_rate']:.1%} of {e['images']} test images "
            "pass the deletion test"
        )
    rows = [
        {
            "class": row["class"],
            **{
                name: "-" if row[key] is None else f"{row[key]:.2%}"
                for name, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))
            },
            "images": str(row["support"]),
        }
        for row in report.per_class_scores
    ]
    print_table(rows, wrap="class")
    if report.confused_pairs:
        pairs = ", ".join(
            f"{escape(p['true'])} as {escape(p['predicted'])} ({p['count']})"
            for p in report.confused_pairs
        )
        out.print(f"most confused (true as predicted): {pairs}")
    for figure in report.figures:
        out.print(f"wrote {escape(figure)}")
    if len(report.classes) > 20:
        out.print("(confusion matrix of more than 20 classes: see --json)")
        return
    print_confusion(report.classes, report.confusion)


@app.command("explain")
def explain_images(
    weights: WeightsFile,
    images: ImageFiles,
    method: Annotated[
        str | None,
        typer.Option(help="saliency, input-x-gradient, integrated-gradients or gradcam."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="PNG folder [RUNS_DIR/<weights name>/explain].",
            callback=expand,
        ),
    ] = None,
    runs_dir: RunsDir = "runs",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes per image.")] = 3,
    as_json: JsonLines = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per pass.")] = 32,
) -> None:
    """Where the model looked: a heatmap of the evidence for each image's top class, checked by
    the deletion test; a PNG per image, or one JSON object per line."""
    from zoo.serving.explain_files import explain_files
    from zoo.serving.inference import Classifier
    from zoo.serving.predict import find_images

    classifier = Classifier.open(registry(), weights)
    files = find_images(images)
    folder = out_dir or Path(runs_dir) / weights.stem / "explain"
    table = Table("image", "top", "unknown", "deletion", "random", box=None)
    method_used = None
    for path, result in explain_files(classifier, files, folder, method, top_k, batch_size):
        if isinstance(result, ZooError):
            warn(f"skipped {result}")
            continue
        method_used = result.method
        label, probability = next(iter(result.top.items()))
        if as_json:
            record = {
                "path": str(path),
                "top": [{"label": k, "probability": p} for k, p in result.top.items()],
                "unknown": result.unknown,
                "method": result.method,
                "deletion": {
                    "score": result.score,
                    "random": result.random,
                    "passed": result.passed,
                },
                "png": str(result.png),
                "heatmap": [[round(v, 4) for v in row] for row in result.heatmap.tolist()],
            }
            print(json.dumps(record), flush=True)
        else:
            table.add_row(
                escape(str(path)),
                f"{escape(label)} {probability:.1%}",
                "yes" if result.unknown else "",
                f"{result.score:.3f}",
                f"{result.random:.3f}",
            )
    if method_used is None:
        raise ZooError(f"none of the {len(files)} images could be explained")
    if not as_json:
        out.print(table)
        out.print(
            f"method {method_used}; deletion: the top class's mean probability as the "
            "hottest pixels go first, lower than a random order is better; PNGs (one per image, "
            f"named after it) in {escape(str(folder))}"
        )
