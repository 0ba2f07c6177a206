"""Self-describing weights files: a state dict in safetensors with everything needed to use it
in the header metadata. Writes are atomic; loading never unpickles untrusted data.

The file's tensors are exactly the model's state dict, so `model.load_state_dict(
load_file(path))` works strictly in plain PyTorch and timm. What zoo adds (the unknown-input
detector's tensors) lives where a strict loader never looks: inside the header as one
base64-encoded safetensors blob when it is small (`INLINE_BYTES`), else in a companion file
beside it, `<file>.extra`, whose size and SHA-256 the header records. Without its companion a
file still loads; only the detector is off, with a notice. Files written before this (the
extra tensors among the model's, under `EXTRA`) still load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from zoo import __version__
from zoo import header as header_schema
from zoo.channels import sum_first_conv
from zoo.errors import ZooError
from zoo.specs import InputSpec, ModelSpec
from zoo.util.files import atomic_write

if TYPE_CHECKING:
    from zoo.registry import Registry

FORMAT = "zoo.weights/1"
REQUIRED = ("model", "classes", "input")
EXTRA = header_schema.EXTRA  # the names of zoo's own tensors start so (the detector's)
MAX_HEADER_BYTES = 16_000_000  # safetensors' own limit is 100 MB, all parsed before a check
EXTRA_KEY = "zoo_tensors"  # the header entry that says where zoo's own tensors are
INLINE_BYTES = 1_000_000  # zoo's tensors up to this size ride in the header, larger in a companion
COMPANION = ".extra"  # the companion of weights/a.safetensors is weights/a.safetensors.extra
MAX_COMPANION_BYTES = 1 << 30


class ExtraMissing(UserWarning):
    """A weights file's companion is missing or is not the one written with it: zoo's extra
    tensors (the unknown-input detector) are off for it."""


def companion(path: str | Path) -> Path:
    """Where the weights file `path` keeps zoo's extra tensors when they are too large for its
    header."""
    return Path(f"{path}{COMPANION}")


def save(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `model`'s state dict and `meta` (model, classes, input, ...) to `path` atomically.
    The `extra` tensors (named without `EXTRA`) go in the header or, if too large for it, in
    the companion file, which is renamed into place only once the weights file is."""
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"weights metadata lacks {missing}")
    meta = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "zoo_version": __version__,
        **meta,
    }
    header = {key: json.dumps(value) for key, value in meta.items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = (
        save_bytes({k: v.detach().cpu().contiguous() for k, v in extra.items()}) if extra else b""
    )
    path = Path(path)
    if len(blob) <= INLINE_BYTES:
        if blob:
            header[EXTRA_KEY] = json.dumps({"inline": base64.b64encode(blob).decode()})
        atomic_write(path, lambda tmp: _save_file(tensors, tmp, header))
        companion(path).unlink(missing_ok=True)  # an earlier file's, of this name
        return path
    header[EXTRA_KEY] = json.dumps(
        {"companion": {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}}
    )

    def write_both(tmp: Path) -> None:
        tmp.write_bytes(blob)
        atomic_write(path, lambda weights_tmp: _save_file(tensors, weights_tmp, header))

    atomic_write(companion(path), write_both)
    return path


def _save_file(tensors: dict[str, torch.Tensor], path: Path, header: dict[str, str]) -> None:
    """safetensors' `save_file`, its write errors (a full disk) raised as the OSError they are."""
    try:
        save_file(tensors, path, metadata=header)
    except SafetensorError as error:
        code = re.search(r"os error (\d+)", str(error))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number), str(path)) from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a zoo weights file, checked against `zoo.header`'s schema, without
    reading its tensors."""
    with _open(path) as f:
        return _decode(path, f.metadata())


def read_header(path: str | Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The checked metadata of a zoo weights file and the shape of each of its tensors, zoo's
    extra ones included under `EXTRA` (from the header, or the companion's header: none of its
    tensors is read)."""
    with _open(path) as f:
        header = f.metadata()
        meta = _decode(path, header)
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    where = _extra_location(path, header)
    if "inline" in where:
        shapes |= {EXTRA + k: tuple(v.shape) for k, v in _inline(path, where).items()}
    elif "companion" in where and _companion_problem(path, where) is None:
        with _open(companion(path), what="companion") as f:
            shapes |= {EXTRA + k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    return meta, shapes


class Checked(NamedTuple):
    """A weights file that passed `check_file`: its header, its model's spec and size."""

    meta: dict[str, Any]
    spec: ModelSpec
    parameters: int


def check_file(registry: Registry, path: str | Path, max_parameters: int | None = None) -> Checked:
    """A weights file checked before its model is built or a tensor read, or a ZooError: its
    header against `zoo.header`'s schema, then its tensors against its architecture built on
    the meta device (within `max_parameters` if given)."""
    meta, shapes = read_header(path)
    if not registry.provides(meta["model"]):
        skipped = [p.name for p in registry.plugins if p.skipped]
        which = "no installed plugin provides"
        if skipped:
            which = f"no loaded plugin provides (the allow-list left out {', '.join(skipped)})"
        raise ZooError(
            f"{path} needs model {meta['model']!r} (plugin {meta.get('plugin', '?')}), "
            f"which {which}"
        )
    spec = registry.model(meta["model"])
    parameters = header_schema.check_model(
        path,
        meta,
        lambda: build_for(registry, spec, meta),
        shapes,
        spec.head,
        max_parameters,
    )
    return Checked(meta, spec, parameters)


def build_for(registry: Registry, spec: ModelSpec, meta: dict[str, Any]) -> torch.nn.Module:
    """`spec`'s model for a file's header: its classes, and a grey-trained RGB model's first
    convolution summed to take one channel, as it was trained."""
    model = registry.build(spec, num_classes=len(meta["classes"]))
    if input_spec(meta).channels == 1 and spec.input.channels == 3:
        sum_first_conv(model)
    return model


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model's state dict and the metadata of a zoo weights file (no `EXTRA` tensors)."""
    with _open(path) as f:
        meta = _decode(path, f.metadata())
        state = _tensors(path, f, [k for k in f.keys() if not k.startswith(EXTRA)])  # noqa: SIM118
    return state, meta


def read_extra(path: str | Path) -> dict[str, torch.Tensor]:
    """zoo's extra tensors of a weights file, named without `EXTRA`: from its header, its
    companion, or (files written before there were either) among the model's tensors. None,
    with an `ExtraMissing` warning, when the companion is missing or not this file's."""
    with _open(path) as f:
        header = f.metadata()
        _decode(path, header)
        names = [k for k in f.keys() if k.startswith(EXTRA)]  # noqa: SIM118
        old = {k.removeprefix(EXTRA): v for k, v in _tensors(path, f, names).items()}
    where = _extra_location(path, header)
    if "inline" in where:
        return _inline(path, where)
    if "companion" not in where:
        return old
    problem = _companion_problem(path, where)
    if problem is None:
        with open(companion(path), "rb") as file:
            blob = file.read(MAX_COMPANION_BYTES + 1)
        if hashlib.sha256(blob).hexdigest() == where["companion"]["sha256"]:
            return _blob_tensors(companion(path), blob)
        problem = "is not the one written with it (its SHA-256 differs)"
    warnings.warn(
        f"{path}: its companion {companion(path).name} {problem}; the unknown-input detector "
        "is off",
        ExtraMissing,
        stacklevel=2,
    )
    return {}


def read_finite_extra(path: str | Path) -> dict[str, torch.Tensor]:
    """`read_extra`, or a ZooError naming (in full, with `EXTRA`) the first tensor that holds
    NaN or infinity."""
    extra = read_extra(path)
    check_finite(path, {EXTRA + k: v for k, v in extra.items()})
    return extra


def _extra_location(path: str | Path, header: dict[str, str] | None) -> dict[str, Any]:
    """The header's `EXTRA_KEY` entry, checked: {"inline": base64} or {"companion": {"bytes":
    n, "sha256": hex}}, or {} when there is none."""
    text = (header or {}).get(EXTRA_KEY)
    if text is None:
        return {}
    try:
        where = json.loads(text)
    except ValueError:
        where = None
    if isinstance(where, dict) and isinstance(where.get("inline"), str):
        return where
    stored = where.get("companion") if isinstance(where, dict) else None
    if (
        isinstance(stored, dict)
        and isinstance(stored.get("bytes"), int)
        and 0 < stored["bytes"] <= MAX_COMPANION_BYTES
        and re.fullmatch(r"[0-9a-f]{64}", str(stored.get("sha256")))
    ):
        return where
    raise ZooError(
        f"{path}: {EXTRA_KEY} must be {{'inline': base64}} or {{'companion': {{'bytes': 1 to "
        f"{MAX_COMPANION_BYTES:,}, 'sha256': 64 hex digits}}}}"
    )


def _inline(path: str | Path, where: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of the header's inline blob (bounded, as the header is)."""
    try:
        blob = base64.b64decode(where["inline"], validate=True)
    except ValueError:
        raise ZooError(f"{path}: {EXTRA_KEY}.inline is not base64") from None
    return _blob_tensors(path, blob)


def _blob_tensors(path: str | Path, blob: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_bytes(blob)
    except (SafetensorError, ValueError) as error:
        raise ZooError(f"{path}: corrupt extra tensors ({error})") from None


def _companion_problem(path: str | Path, where: dict[str, Any]) -> str | None:
    """Why the companion cannot be this file's (missing, another size), or None."""
    other = companion(path)
    if not other.is_file():
        return "is missing"
    if other.stat().st_size != where["companion"]["bytes"]:
        return "is not the one written with it (its size differs)"
    return None


def _tensors(path: str | Path, f, names: list[str]) -> dict[str, torch.Tensor]:
    try:
        return {key: f.get_tensor(key) for key in names}
    except SafetensorError as error:
        raise ZooError(f"{path}: corrupt weights file ({error})") from None


def input_spec(meta: dict[str, Any]) -> InputSpec:
    """The input spec a weights file was trained with."""
    return InputSpec.from_dict(meta["input"])


def check_finite(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """A ZooError naming the first floating-point tensor that holds NaN or infinity."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ZooError(f"{path}: tensor {name} holds NaN or infinite values")


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load `state` (less zoo's `EXTRA` tensors, as a plain safetensors reader sees them) into
    `model` strictly, or raise a ZooError naming the first mismatches."""
    state = _model_tensors(state)
    problems = header_schema.mismatches(shapes_of(model.state_dict()), shapes_of(state))
    if problems:
        raise header_schema.misfit(path, list(problems.values()))
    model.load_state_dict(state)


def check_fitting(
    model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], head: str, path: str | Path
) -> set[str]:
    """The names of `model`'s tensors that the file's tensors (by `shapes`, less `EXTRA`
    ones) do not fit; a ZooError if any of them lies outside the `head` module (an ImageNet
    classifier, another class count): what `load_fitting` loads, known before any is read."""
    shapes = {k: v for k, v in shapes.items() if not k.startswith(EXTRA)}
    problems = header_schema.mismatches(shapes_of(model.state_dict()), shapes)
    outside = header_schema.outside(problems, head)
    if outside:
        raise header_schema.misfit(path, outside)
    return set(problems)


def load_fitting(
    model: torch.nn.Module, state: dict[str, torch.Tensor], head: str, path: str | Path
) -> list[str]:
    """Load every tensor of `state` (less `EXTRA` ones) that fits `model`; return the names of
    the model's tensors that keep their fresh initialisation because the file's do not fit (or
    are missing). Only tensors inside the `head` module may differ (`check_fitting`)."""
    state = _model_tensors(state)
    problems = check_fitting(model, shapes_of(state), head, path)
    model.load_state_dict({k: v for k, v in state.items() if k not in problems}, strict=False)
    return [key for key in model.state_dict() if key in problems]


def shapes_of(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape, by name."""
    return {k: tuple(v.shape) for k, v in tensors.items()}


def _model_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(EXTRA)}


def _open(path: str | Path, what: str = "weights file"):
    """safe_open, with the errors of a user's file turned into one-line ZooErrors; a header
    over `MAX_HEADER_BYTES` is refused from its length before it is read."""
    if not Path(path).is_file():  # a FIFO or a device is never opened
        raise ZooError(f"{path}: no such {what}")
    try:
        with open(path, "rb") as file:
            length = int.from_bytes(file.read(8), "little")
        if length > MAX_HEADER_BYTES:
            raise ZooError(
                f"{path}: not a valid safetensors file (a header of {length:,} bytes, "
                f"more than {MAX_HEADER_BYTES:,})"
            )
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ZooError(f"{path}: not a valid safetensors file ({cause})") from None


def _decode(path: str | Path, header: dict[str, str] | None) -> dict[str, Any]:
    """The header's values, JSON-decoded (no NaN or Infinity) and checked."""
    header = header or {}
    if header.get("format") != json.dumps(FORMAT):
        raise ZooError(f"{path}: a safetensors file, but not a zoo weights file (no zoo metadata)")
    meta = {}
    for key, value in header.items():
        if key == EXTRA_KEY:  # where zoo's tensors are (`_extra_location`): no metadata
            continue
        try:
            meta[key] = json.loads(value, parse_constant=_not_a_number, parse_float=_finite)
        except (ValueError, RecursionError) as error:
            cause = "nested too deeply" if isinstance(error, RecursionError) else error
            raise ZooError(f"{path}: {key} is not valid JSON: {cause}") from None
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ZooError(f"{path}: zoo metadata lacks {', '.join(missing)}")
    return header_schema.check(path, meta)


def _not_a_number(word: str) -> float:
    raise ValueError(f"{word} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows")
    return value
