"""The weights header's schema: what the metadata of a weights file may say.

Nothing a file says is believed before it is checked. `check` takes the decoded header and
checks every field zoo reads for its type and range (input channels 1 or 3, a size within
`MAX_INPUT_SIZE`, a mean and a positive std per channel, a finite positive temperature, an
accuracy in [0, 1], ...). `check_model` then builds the architecture on the meta device (no
memory, no initialisation), counts its parameters against a budget, and checks the file's
tensors and the detector's against the shapes that architecture and input imply, before
anything is allocated. Every failure is one ZooError naming the file and the field.

`weights.read_meta` runs `check` on every header it reads, so the demo, `zoo predict`,
`explain`, `eval`, `export` and `--init-from` all see the same checked metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import nn

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841
MAX_CLASS_NAME = 1_000  # characters
MAX_INPUT_SIZE = 1024  # pixels a side: a 3 x 1024 x 1024 input is 12 MB before the first layer
MAX_SOURCE_SIZE = 65_535  # the largest image side zoo reads (preprocess.MAX_SIDE)
TEMPERATURE = (1e-6, 1e6)  # a temperature is positive, and no smaller than logits can take
DEFAULT_MAX_PARAMETERS = 200_000_000  # the largest model `zoo demo` builds (--max-params)
EXTRA = "zoo."  # tensors under this prefix are zoo's (the unknown-input detector)
DETECTOR = ("zoo.unknown.means", "zoo.unknown.precision")
DETECTOR_VIEWS = ("pixels", "statistics")  # the detector's views besides the layer's features
DETECTOR_PIXELS = 16  # the pixels view's side (at most the input's)
BACKGROUNDS = ("dark", "light")


def check(path: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """`meta`, if every field zoo reads has the type and range it must; else a ZooError naming
    `path` and the field."""
    field = _Fields(path, meta)
    field.text("model", required=True)
    for name in ("plugin", "dataset", "created", "zoo_version"):
        field.text(name)
    classes = field.kind("classes", list, "a list of class names", required=True)
    if not 1 <= len(classes) <= MAX_CLASSES:
        field.fail("classes", f"has {len(classes):,} names; it needs 1 to {MAX_CLASSES:,}")
    for i, name in enumerate(classes):
        if not isinstance(name, str) or not 0 < len(name) <= MAX_CLASS_NAME:
            field.fail(f"classes[{i}]", f"must be a name of 1 to {MAX_CLASS_NAME} characters")
    if len(set(classes)) != len(classes):
        field.fail("classes", "names a class twice")
    _check_input(field)
    field.number("source_size", 1, MAX_SOURCE_SIZE, whole=True)
    _check_metrics(field)
    for name in field.kind("timing", dict, "an object") or {}:
        field.number(("timing", name), 0, math.inf)
    field.kind("settings", dict, "an object")
    if field.kind("calibration", dict, "an object"):
        field.number("calibration.temperature", *TEMPERATURE)
        for name in ("ece_before", "ece_after"):
            field.number(f"calibration.{name}", 0, 1)
        for name in ("nll_before", "nll_after"):
            field.number(f"calibration.{name}", 0, math.inf)
    if field.kind("unknown", dict, "an object") is not None:
        field.text("unknown.layer", required=True)
        field.number("unknown.threshold", 0, math.inf, required=True)
        field.text("unknown.method")
        field.number("unknown.quantile", 0, 1)
        for view in field.kind("unknown.views", dict, "an object") or {}:
            if view not in DETECTOR_VIEWS:
                field.fail("unknown.views", f"names {view[:20]!r}; it may name {DETECTOR_VIEWS}")
            field.number(("unknown", "views", view, "threshold"), 0, math.inf, required=True)
        if field.text("unknown.background") not in (None, *BACKGROUNDS):
            field.fail("unknown.background", f"must be one of {BACKGROUNDS}")
    if field.kind("explain", dict, "an object") is not None:
        field.text("explain.method", required=True)
        for method in field.kind("explain.deletion_pass_rate", dict, "an object") or {}:
            field.number(("explain", "deletion_pass_rate", method), 0, 1)
    return meta


def _check_input(field: _Fields) -> None:
    field.kind("input", dict, "an object {channels, size, mean, std[, border]}", required=True)
    channels = field.number("input.channels", 1, 3, whole=True, required=True)
    if channels == 2:
        field.fail("input.channels", "is 2; it must be 1 (grey) or 3 (colour)")
    size = field.number("input.size", 1, MAX_INPUT_SIZE, whole=True, required=True)
    border = field.number("input.border", 0, MAX_INPUT_SIZE, whole=True)
    if border is not None and 2 * border >= size:
        field.fail("input.border", f"is {border}: it leaves no image in size {size}")
    for name, low in (("mean", -math.inf), ("std", 0.0)):
        values = field.kind(f"input.{name}", list, "a list of numbers", required=True)
        if len(values) != channels:
            field.fail(f"input.{name}", f"has {len(values)} values for {channels} channel(s)")
        for i in range(len(values)):
            field.number(("input", name, i), low, math.inf, required=True, above=low == 0)


def _check_metrics(field: _Fields) -> None:
    if field.kind("metrics", dict, "an object") is None:
        return
    for name in ("test_accuracy", "imagenet_top1"):
        field.number(f"metrics.{name}", 0, 1)
    for name in ("train_images", "test_images", "held_out_images"):
        field.number(f"metrics.{name}", 0, math.inf, whole=True)
    for name in field.kind("metrics.per_class_accuracy", dict, "an object") or {}:
        field.number(("metrics", "per_class_accuracy", name), 0, 1)
    for name in field.kind("metrics.per_class", dict, "an object") or {}:
        if field.kind(("metrics", "per_class", name), dict, "an object") is not None:
            for score in ("precision", "recall", "f1"):
                field.number(("metrics", "per_class", name, score), 0, 1)
            field.number(("metrics", "per_class", name, "images"), 0, math.inf, whole=True)


Where = str | tuple  # a field: "input.size", or its parts ("metrics", "per_class_accuracy", "7")


class _Fields:
    """Reads a header's fields, failing in one line that names the field."""

    def __init__(self, path: Any, meta: dict[str, Any]) -> None:
        self.path, self.meta = path, meta

    def fail(self, where: Where, problem: str) -> None:
        raise ZooError(f"{self.path}: {_name(where)} {problem}")

    def get(self, where: Where) -> Any:
        value: Any = self.meta
        for part in where.split(".") if isinstance(where, str) else where:
            if isinstance(value, dict) and isinstance(part, str):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return None
        return value

    def kind(self, where: Where, expected: type, words: str, required: bool = False) -> Any:
        """The field's value if it is an `expected`; None if it is missing and not `required`."""
        value = self.get(where)
        if value is None and not required:
            return None
        if not isinstance(value, expected):
            self.fail(where, f"must be {words}, not {_shown(value)}")
        return value

    def text(self, where: Where, required: bool = False) -> str | None:
        value = self.kind(where, str, "text", required)
        if required and not value:
            self.fail(where, "must not be empty")
        return value

    def number(
        self,
        where: Where,
        low: float,
        high: float,
        whole: bool = False,
        required: bool = False,
        above: bool = False,
    ) -> Any:
        """A finite number in [low, high] (above `low` with `above`), whole with `whole`."""
        value = self.get(where)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            words = "a whole number" if whole else "a number"
            self.fail(where, f"must be {words}, not {_shown(value)}")
        if not (math.isfinite(value) and low <= value <= high) or (above and value == low):
            if high == math.inf:
                bounds = f"above {low:g}" if above else f"at least {low:g}"
            else:
                bounds = f"from {low:g} to {high:g}"
            self.fail(where, f"is {value:g}; it must be {bounds}")
        return value


def _name(where: Where) -> str:
    if isinstance(where, str):
        return where
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _shown(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"text {value[:20]!r}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def check_model(
    path: Any,
    meta: dict[str, Any],
    build: Callable[[], nn.Module],
    shapes: dict[str, tuple[int, ...]],
    head: str,
    max_parameters: int | None = None,
) -> int:
    """Check a file's tensors against its architecture before anything large is built:
    `build()` runs on the meta device; its parameter count must be within `max_parameters`,
    its state dict must have exactly the `shapes` of the file's tensors (the detector's,
    under `EXTRA`, those its layer's input implies), and it must take `meta`'s input size.
    Returns the parameter count."""
    import torch

    with torch.device("meta"):
        model = build()
    parameters = sum(p.numel() for p in model.parameters())
    if max_parameters is not None and parameters > max_parameters:
        raise ZooError(
            f"{path}: {meta['model']} has {_millions(parameters)} parameters, above this "
            f"demo's budget of {_millions(max_parameters)}: zoo demo --max-params sets it"
        )
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_shapes(path, meta, expected, {k: v for k, v in shapes.items() if k[:4] != EXTRA}, head)
    features = _check_forward(path, meta, model)
    if meta.get("unknown") and any(k.startswith(EXTRA) for k in shapes):  # not: companion lost
        layer = meta["unknown"]["layer"]
        if layer not in features:
            raise ZooError(f"{path}: unknown.layer {layer!r} is no layer of {meta['model']}")
        _check_gaussians(path, shapes, DETECTOR, meta, features[layer], f"features at {layer}")
        spec = meta["input"]
        for view in meta["unknown"].get("views", {}):
            width = _view_width(view, spec["channels"], spec["size"])
            names = (f"zoo.unknown.{view}.means", f"zoo.unknown.{view}.precision")
            _check_gaussians(path, shapes, names, meta, width, f"values in its {view} view")
    return parameters


def _view_width(view: str, channels: int, size: int) -> int:
    """The length of a detector view's vector (`zoo.trust.unknown`) for a `channels` x `size`
    x `size` input: the pooled pixels, or five statistics a channel."""
    return channels * min(DETECTOR_PIXELS, size) ** 2 if view == "pixels" else 5 * channels


def _check_gaussians(
    path: Any,
    shapes: dict[str, tuple[int, ...]],
    names: tuple[str, str],
    meta: dict[str, Any],
    width: int,
    what: str,
) -> None:
    """The detector's means (K, D) and precision (D, D) tensors `names` for `width` = D."""
    size = (len(meta["classes"]), width)
    for name, want in zip(names, (size, (width, width)), strict=True):
        if tuple(shapes.get(name, ())) != want:
            got = shapes.get(name)
            found = f"is {tuple(got)}" if got is not None else "is missing"
            raise ZooError(
                f"{path}: tensor {name} {found}; the detector needs {want} "
                f"({size[0]} classes, {width} {what})"
            )


def _check_shapes(
    path: Any,
    meta: dict[str, Any],
    expected: dict[str, tuple[int, ...]],
    shapes: dict[str, tuple[int, ...]],
    head: str,
) -> None:
    problems = mismatches(expected, shapes)
    if not problems:
        return
    inside = all(_inside(k, head) and k in shapes and k in expected for k in problems)
    if inside:
        found = min(shapes[k][0] for k in problems if shapes[k])
        raise ZooError(
            f"{path}: classes has {len(meta['classes'])} names but the head ({head}) "
            f"has {found} outputs"
        )
    raise misfit(path, list(problems.values()))


def mismatches(
    expected: dict[str, tuple[int, ...]], shapes: dict[str, tuple[int, ...]]
) -> dict[str, str]:
    """What does not fit, by tensor name: missing, unexpected or of another shape."""
    problems = {k: f"missing {k}" for k in expected if k not in shapes}
    problems |= {k: f"unexpected {k}" for k in shapes if k not in expected}
    problems |= {
        k: f"{k} is {tuple(v)} in the file but {tuple(expected[k])} in the model"
        for k, v in shapes.items()
        if k in expected and tuple(v) != tuple(expected[k])
    }
    return problems


def outside(problems: dict[str, str], head: str) -> list[str]:
    """The `problems` of tensors outside the `head` module."""
    return [text for key, text in problems.items() if not _inside(key, head)]


def _inside(key: str, module: str) -> bool:
    return key == module or key.startswith(f"{module}.")


def misfit(path: Any, problems: list[str]) -> ZooError:
    """The error of a file whose tensors do not fit the model: the first problems."""
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return ZooError(f"{path} does not fit the model: {'; '.join(problems[:3])}{more}")


def _check_forward(path: Any, meta: dict[str, Any], model: nn.Module) -> dict[str, int]:
    """A forward pass on the meta device at the header's input: the number of input features
    each linear layer (and the detector's layer) receives. Operations without a meta kernel,
    or that need real values, leave only the linear layers' declared sizes."""
    import torch

    spec = meta["input"]
    layer = (meta.get("unknown") or {}).get("layer")
    features = {
        name: module.in_features
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    seen: dict[str, int] = {}
    hook = None
    if layer and layer in dict(model.named_modules()):
        module = model.get_submodule(layer)
        hook = module.register_forward_hook(
            lambda _m, args, _out: seen.__setitem__(layer, args[0].flatten(1).shape[1])
        )
    x = torch.empty(1, spec["channels"], spec["size"], spec["size"], device="meta")
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as error:
        if isinstance(error, NotImplementedError) or "meta tensor" in str(error):
            return features  # no meta kernel, or code that reads values: shapes unchecked
        if "meta" in str(error):  # a data-dependent step (.item()) needs real values
            return features
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(
            f"{path}: input.size {spec['size']} does not fit {meta['model']}: {cause[:120]}"
        ) from None
    finally:
        if hook is not None:
            hook.remove()
    if tuple(out.shape) != (1, len(meta["classes"])):
        raise ZooError(
            f"{path}: {meta['model']} gives {tuple(out.shape)} outputs, not one per class"
        )
    return features | seen


def _millions(count: int) -> str:
    return f"{count / 1e6:,.0f}M" if count >= 1e6 else f"{count:,}"
