"""Malformed zoo weights files: a real LeNet file with one header field or tensor changed,
each the hostile or damaged case of a test, with the pattern of the one-line error it gets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

from zoo import weights


class Raw(str):
    """A header value written as it is, not JSON-encoded (invalid or non-standard JSON)."""


LENET_INPUT = {"channels": 1, "size": 32, "mean": [0.5], "std": [0.5]}

# name: (header fields replaced, each a value JSON-encoded or Raw text; the message's pattern)
HEADERS: dict[str, tuple[dict, str]] = {
    "size-100000": (
        {"input": {**LENET_INPUT, "size": 100_000}},
        "input.size is 100000; it must be from 1 to 1024",
    ),
    "size-12000": ({"input": {**LENET_INPUT, "size": 12_000}}, "input.size is 12000"),
    "size-64": ({"input": {**LENET_INPUT, "size": 64}}, "input.size 64 does not fit lenet"),
    "no-size": (
        {"input": {k: v for k, v in LENET_INPUT.items() if k != "size"}},
        "input.size must be a whole number, not missing",
    ),
    "input-list": ({"input": [1, 32]}, "input must be an object"),
    "channels-2": (
        {"input": {**LENET_INPUT, "channels": 2, "mean": [0.5] * 2, "std": [0.5] * 2}},
        "input.channels is 2",
    ),
    "std-0": ({"input": {**LENET_INPUT, "std": [0]}}, r"input.std\[0\] is 0; it must be above 0"),
    "mean-3": ({"input": {**LENET_INPUT, "mean": [0.5] * 3}}, "input.mean has 3 values"),
    "border-16": (
        {"input": {**LENET_INPUT, "border": 16}},
        "input.border is 16: it leaves no image in size 32",
    ),
    "border-negative": ({"input": {**LENET_INPUT, "border": -1}}, "input.border is -1"),
    "border-half": ({"input": {**LENET_INPUT, "border": 1.5}}, "input.border must be a whole"),
    "million-classes": (
        {"classes": [f"c{i}" for i in range(10**6)]},
        "classes has 1,000,000 names; it needs 1 to 100,000",
    ),
    "eleven-classes": (
        {"classes": [str(i) for i in range(11)]},
        r"classes has 11 names but the head \(fc3\) has 10 outputs",
    ),
    "classes-text": ({"classes": "0123456789"}, "classes must be a list of class names"),
    "classes-twice": ({"classes": ["0"] * 10}, "classes names a class twice"),
    "vit-over-lenet": ({"model": "timm/vit_large_patch16_224"}, "does not fit the model"),
    "temperature-0": ({"calibration": {"temperature": 0}}, "calibration.temperature is 0"),
    "temperature-negative": (
        {"calibration": {"temperature": -1}},
        r"calibration.temperature is -1; it must be from 1e-06 to 1e\+06",
    ),
    "temperature-text": (
        {"calibration": {"temperature": "1.5"}},
        "calibration.temperature must be a number, not text",
    ),
    "temperature-nan": (
        {"calibration": Raw('{"temperature": NaN}')},
        "calibration is not valid JSON: NaN is not a number JSON allows",
    ),
    "threshold-infinity": (
        {"unknown": Raw('{"layer": "fc1", "threshold": Infinity}')},
        "unknown is not valid JSON: Infinity",
    ),
    "threshold-negative": (
        {"unknown": {"layer": "fc1", "threshold": -5}},
        "unknown.threshold is -5",
    ),
    "detector-layer": ({"unknown": {"layer": "fc9", "threshold": 5}}, "unknown.layer 'fc9'"),
    "detector-view": (
        {"unknown": {"layer": "fc1", "threshold": 5, "views": {"colour": {"threshold": 1}}}},
        "unknown.views names 'colour'; it may name",
    ),
    "view-threshold": (
        {"unknown": {"layer": "fc1", "threshold": 5, "views": {"pixels": {"threshold": -1}}}},
        "unknown.views.pixels.threshold is -1",
    ),
    "background-blue": (
        {"unknown": {"layer": "fc1", "threshold": 5, "background": "blue"}},
        r"unknown.background must be one of \('dark', 'light'\)",
    ),
    "accuracy-1e308": ({"metrics": {"test_accuracy": 1e308}}, "metrics.test_accuracy is 1e"),
    "accuracy-overflow": (
        {"metrics": Raw('{"test_accuracy": 1e400}')},
        "metrics is not valid JSON",
    ),
    "metrics-list": ({"metrics": [0.9]}, "metrics must be an object, not a list"),
    "deep-settings": ({"settings": Raw("[" * 100_000 + "]" * 100_000)}, "nested too deeply"),
}
# name: (tensors changed, the message's pattern)
TENSORS = {
    "nan-detector": (
        lambda t: {**t, "zoo.unknown.means": t["zoo.unknown.means"] * float("nan")},
        "tensor zoo.unknown.means holds NaN or infinite values",
    ),
    "short-detector": (
        lambda t: {**t, "zoo.unknown.means": t["zoo.unknown.means"][:5]},
        r"tensor zoo.unknown.means is \(5, 400\); the detector needs \(10, 400\)",
    ),
    "short-pixels-view": (
        lambda t: {**t, "zoo.unknown.pixels.means": t["zoo.unknown.pixels.means"][:, :5].clone()},
        r"tensor zoo.unknown.pixels.means is \(10, 5\); the detector needs \(10, 256\)",
    ),
    "nan-weight": (
        lambda t: {**t, "fc1.weight": t["fc1.weight"] / 0},
        "tensor fc1.weight holds NaN or infinite values",
    ),
}
CASES = {**HEADERS, **TENSORS}


def write_malformed(folder: Path, source: Path, names: list[str] | None = None) -> dict[str, Path]:
    """The files of `CASES` (or of `names`) made from the weights file `source`, in `folder`."""
    tensors = load_file(source)
    with safe_open(str(source), framework="pt") as f:
        header = dict(f.metadata())
    files = {}
    for name in names or CASES:
        files[name] = folder / f"{name}.safetensors"
        if name in HEADERS:
            change = HEADERS[name][0]
            encoded = {k: v if isinstance(v, Raw) else json.dumps(v) for k, v in change.items()}
            save_file(tensors, files[name], metadata={**header, **encoded})
        else:
            extra = {weights.EXTRA + k: v for k, v in weights.read_extra(source).items()}
            write_split(files[name], TENSORS[name][0](tensors | extra), header)
    return files


def write_split(path: Path, tensors: dict, header: dict[str, str]) -> None:
    """A weights file as `weights.save` writes it, from `tensors` that include zoo's own under
    `EXTRA`: those in the header, the model's in the file."""
    extra = {k.removeprefix(weights.EXTRA): v for k, v in tensors.items() if k[:4] == "zoo."}
    inline = base64.b64encode(save(extra)).decode()
    model = {k: v for k, v in tensors.items() if k[:4] != "zoo."}
    save_file(model, path, metadata={**header, weights.EXTRA_KEY: json.dumps({"inline": inline})})


def overflowing(source: Path, target: Path) -> None:
    """A LeNet file of finite weights whose logits overflow float32 on any input."""
    tensors = load_file(source)
    tensors["fc3.weight"] = tensors["fc3.weight"].sign() * 3e38
    with safe_open(str(source), framework="pt") as f:
        save_file(tensors, target, metadata=f.metadata())
