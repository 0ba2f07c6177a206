"""A Hub folder read back, trusting nothing in it: `zoo import` (the folder as a zoo weights file)
and `zoo export --format hub --check` (the folder against the weights file it came from).

A zoo Hub export brings its facts back from config.json's `zoo` key; a plain timm folder (timm's
`save_for_hf` or `push_to_hf_hub`) becomes `timm/<architecture>` with its `label_names` (else
`class0`, `class1`, ...) and the input of its `pretrained_cfg`. Before anything is built,
config.json must be strict JSON of at most `MAX_CONFIG_BYTES` whose every field zoo reads has its
type and range (`header.check`, the weights header's schema, for the facts), and the weights'
shapes must fit the architecture built on the meta device (`header.check_model`); the tensors
are read with safetensors, or `torch.load(weights_only=True)`. For a timm architecture, timm's
own `local-dir:` loading of the folder must then give the outputs zoo's build gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import header, weights
from zoo.errors import ZooError
from zoo.serving.export import example_input
from zoo.serving.hub import (
    CONFIG_FILE,
    MAX_CONFIG_BYTES,
    TIMM,
    TORCH_WEIGHTS,
    WEIGHTS_FILE,
    ZOO_KEY,
    timm_architecture,
)
from zoo.serving.parity import TOLERANCE
from zoo.specs import InputSpec
from zoo.trust import unknown
from zoo.util.files import read_json

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.registry import Registry

ARCHITECTURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# The timm constructor arguments a plain timm folder may carry, and what they must agree with.
MODEL_ARGS = ("in_chans", "num_classes", "global_pool")


@dataclass
class HubModel:
    """A Hub folder read back: zoo's header for it and zoo's model."""

    folder: Path
    meta: dict[str, Any]
    model: nn.Module


def read_folder(registry: Registry, source: Path) -> HubModel:
    """The Hub folder `source` (or a file in it) as zoo's model, its state loaded strictly; a
    one-line ZooError for anything that does not fit."""
    folder, file = _locate(source)
    config_path = folder / CONFIG_FILE
    try:
        config = read_json(config_path, MAX_CONFIG_BYTES)
    except OSError as error:
        raise ZooError(f"{config_path}: cannot read it ({error.strerror or error})") from None
    except (ValueError, RecursionError) as error:
        cause = "nested too deeply" if isinstance(error, RecursionError) else error
        raise ZooError(f"{config_path}: not a valid config ({cause})") from None
    if not isinstance(config, dict):
        raise ZooError(f"{config_path}: must be a JSON object")
    meta = _zoo_meta(config_path, config) if ZOO_KEY in config else _timm_meta(config_path, config)
    if not registry.provides(meta["model"]):
        raise ZooError(f"{config_path} names model {meta['model']!r}, which no plugin provides")
    spec = registry.model(meta["model"])
    state, shapes = _tensors(file)

    def build() -> nn.Module:
        return weights.build_for(registry, spec, meta)

    header.check_model(file, meta, build, shapes, spec.head, header.DEFAULT_MAX_PARAMETERS)
    state = state if state is not None else _safetensors(file)
    weights.check_finite(file, state)
    model = build()
    weights.load_state(model, state, file)
    return HubModel(folder, meta, model.eval())


def import_folder(registry: Registry, source: Path, out: Path) -> Path:
    """The Hub folder `source` written as the zoo weights file `out` (atomically); for a timm
    architecture, only once timm's own loading of the folder agrees with it."""
    if out.exists():
        raise ZooError(f"{out} exists; name another --out")
    loaded = read_folder(registry, source)
    if timm_architecture(loaded.meta["model"]):
        spec = weights.input_spec(loaded.meta)
        agree(loaded.folder, loaded.model, timm_model(loaded.folder), spec)
    meta = {**loaded.meta, "imported_from": str(loaded.folder.resolve())}
    try:
        return weights.save(out, loaded.model, meta)
    except OSError as error:
        raise ZooError(f"cannot write {out}: {error.strerror or error}") from None


def check_folder(registry: Registry, folder: Path, reference: nn.Module, spec: InputSpec) -> str:
    """The Hub export `folder` against `reference`, the model it came from, on one random
    batch: read back by zoo, and by timm's `local-dir:` for a timm architecture. The lines
    that say so; a ZooError if an output differs by more than `TOLERANCE`."""
    loaded = read_folder(registry, folder)
    readers = {"zoo": loaded.model}
    if timm_architecture(loaded.meta["model"]):
        readers["timm local-dir"] = timm_model(folder)
    lines = []
    for name, model in readers.items():
        diff = agree(folder, reference, model, spec, name)
        lines.append(
            f"{folder} read by {name} vs the weights file on a random batch: max |logit diff| "
            f"{diff:.1e} (limit {TOLERANCE:.0e}): ok"
        )
    return "\n".join(lines)


def timm_model(folder: Path) -> nn.Module:
    """timm's own loading of the folder: `create_model("local-dir:...", pretrained=True)`."""
    import timm

    try:
        return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    except Exception as error:  # timm's and torch's refusals alike
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"{folder}: timm cannot load it ({first[:200]})") from None


def agree(
    folder: Path, reference: nn.Module, model: nn.Module, spec: InputSpec, reader: str = "timm"
) -> float:
    """The largest absolute difference of the two models' logits on one random batch; a
    ZooError if it is above `TOLERANCE` or the outputs differ in shape."""
    import torch

    x = example_input(spec)
    with torch.inference_mode():
        want, got = reference.eval()(x), model.eval()(x)
    if want.shape != got.shape:
        raise ZooError(
            f"{folder} read by {reader} gives {tuple(got.shape)} outputs, not {tuple(want.shape)}"
        )
    diff = float((want.float() - got.float()).abs().max())
    if not diff <= TOLERANCE:
        raise ZooError(
            f"{folder} read by {reader} differs from the weights file: max |logit diff| "
            f"{diff:.1e}, above {TOLERANCE:.0e}"
        )
    return diff


def _locate(source: Path) -> tuple[Path, Path]:
    """The folder and its weights file: model.safetensors, else pytorch_model.bin; or the
    weights file named."""
    if source.is_file():
        folder = source.parent
        named = source.name in (WEIGHTS_FILE, TORCH_WEIGHTS)
        candidates = [source] if named else [folder / WEIGHTS_FILE, folder / TORCH_WEIGHTS]
    elif source.is_dir():
        folder, candidates = source, [source / WEIGHTS_FILE, source / TORCH_WEIGHTS]
    else:
        raise ZooError(f"{source}: no such folder or file")
    for file in candidates:
        if file.is_file():
            return folder, file
    raise ZooError(f"{folder} holds neither {WEIGHTS_FILE} nor {TORCH_WEIGHTS}")


def _zoo_meta(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The facts of a zoo Hub export, checked as a weights header is, and agreeing with the
    config's own fields."""
    facts = config[ZOO_KEY]
    if not isinstance(facts, dict):
        raise ZooError(f"{path}: {ZOO_KEY} must be an object")
    # The detector's tensors never travel in a Hub folder, so neither does its entry.
    meta = header.check(path, {k: v for k, v in facts.items() if k != unknown.KEY})
    classes = meta["classes"]
    arch = config.get("architecture")
    expected = timm_architecture(meta["model"]) or meta["model"]
    if arch != expected:
        raise ZooError(f"{path}: architecture is {_shown(arch)}, but zoo.model says {expected!r}")
    if config.get("num_classes", len(classes)) != len(classes):
        raise ZooError(f"{path}: num_classes disagrees with zoo.classes ({len(classes):,})")
    if config.get("label_names", classes) != classes:
        raise ZooError(f"{path}: label_names disagree with zoo.classes")
    return meta


def _timm_meta(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A zoo header for a plain timm folder: `timm/<architecture>`, its classes and input."""
    arch = config.get("architecture")
    if not isinstance(arch, str) or not ARCHITECTURE.fullmatch(arch):
        raise ZooError(f"{path}: architecture must be a timm model name, not {_shown(arch)}")
    count = config.get("num_classes")
    if not _whole(count) or not 1 <= count <= header.MAX_CLASSES:
        raise ZooError(
            f"{path}: num_classes must be a whole number from 1 to {header.MAX_CLASSES:,}, "
            f"not {_shown(count)}"
        )
    labels = config.get("label_names")
    if labels is None:
        labels = [f"class{i}" for i in range(count)]
    elif not isinstance(labels, list) or len(labels) != count:
        raise ZooError(f"{path}: label_names must be a list of {count:,} names")
    cfg = config.get("pretrained_cfg")
    if not isinstance(cfg, dict):
        raise ZooError(f"{path}: pretrained_cfg must be an object, not {_shown(cfg)}")
    size = cfg.get("input_size")
    if not (isinstance(size, list) and len(size) == 3 and all(_whole(v) for v in size)):
        raise ZooError(f"{path}: pretrained_cfg.input_size must be [channels, height, width]")
    if size[1] != size[2]:
        raise ZooError(f"{path}: pretrained_cfg.input_size is {size}; zoo takes square inputs")
    _check_model_args(path, config.get("model_args", {}), size[0], count)
    meta = {
        "model": f"{TIMM}{arch.lower()}",
        "classes": labels,
        "input": {
            "channels": size[0],
            "size": size[1],
            "mean": cfg.get("mean"),
            "std": cfg.get("std"),
        },
    }
    return header.check(path, meta)


def _check_model_args(path: Path, args: Any, channels: int, count: int) -> None:
    """timm's constructor arguments: only those zoo's build reproduces, agreeing with the
    input and the classes (a global pool other than the architecture's fails the comparison
    with timm's own loading)."""
    if not isinstance(args, dict):
        raise ZooError(f"{path}: model_args must be an object")
    other = sorted(set(args) - set(MODEL_ARGS))
    if other:
        raise ZooError(
            f"{path}: model_args.{other[0][:40]} is not one zoo builds timm models with "
            f"({', '.join(MODEL_ARGS)})"
        )
    if args.get("in_chans", channels) != channels:
        raise ZooError(f"{path}: model_args.in_chans disagrees with pretrained_cfg.input_size")
    if args.get("num_classes", count) != count:
        raise ZooError(f"{path}: model_args.num_classes disagrees with num_classes")
    pool = args.get("global_pool", "")
    if not isinstance(pool, str) or len(pool) > 40:
        raise ZooError(f"{path}: model_args.global_pool must be a pooling name")


def _tensors(file: Path) -> tuple[dict[str, torch.Tensor] | None, dict[str, tuple[int, ...]]]:
    """A safetensors file's tensor shapes from its header (its tensors read later), or a
    pickled state dict read with `weights_only=True` and its shapes."""
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        _header_length(file)
        try:
            with safe_open(str(file), framework="pt") as f:
                return None, {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as error:
            raise ZooError(f"{file}: not a valid safetensors file ({error})") from None
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only refusals alike
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ZooError(f"{file}: cannot load it safely (weights_only): {first}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ZooError(f"{file}: holds no state dict of tensors")
    return state, weights.shapes_of(state)


def _header_length(file: Path) -> None:
    """A ZooError if a safetensors header is longer than a weights file's may be."""
    with open(file, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
    if length > weights.MAX_HEADER_BYTES:
        raise ZooError(f"{file}: a safetensors header of {length:,} bytes is too long")


def _safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(file)
    except (SafetensorError, OSError) as error:
        raise ZooError(f"{file}: corrupt safetensors file ({error})") from None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return repr(value)[:40] if isinstance(value, str) else type(value).__name__
