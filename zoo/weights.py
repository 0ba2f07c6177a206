"""Self-describing weights files: a state dict in safetensors with everything needed to use it
in the header metadata. Writes are atomic; loading never unpickles untrusted data.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from zoo import __version__
from zoo.errors import ZooError
from zoo.specs import InputSpec
from zoo.util.files import atomic_write

FORMAT = "zoo.weights/1"
REQUIRED = ("model", "classes", "input")
EXTRA = "zoo."  # tensors under this prefix are zoo's (the unknown-input detector), not the model's


def save(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `model`'s state dict and `meta` (model, classes, input, ...) to `path` atomically;
    `extra` tensors are stored beside the state dict under the `EXTRA` prefix."""
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
    tensors |= {EXTRA + k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()}
    return atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=header))


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a zoo weights file, without reading its tensors."""
    with _open(path) as f:
        return _decode(path, f.metadata())


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model's state dict and the metadata of a zoo weights file (no `EXTRA` tensors)."""
    with _open(path) as f:
        meta = _decode(path, f.metadata())
        state = _tensors(path, f, [k for k in f.keys() if not k.startswith(EXTRA)])  # noqa: SIM118
    return state, meta


def read_extra(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors `save` stored under the `EXTRA` prefix, without it."""
    with _open(path) as f:
        names = [k for k in f.keys() if k.startswith(EXTRA)]  # noqa: SIM118
        return {k.removeprefix(EXTRA): v for k, v in _tensors(path, f, names).items()}


def _tensors(path: str | Path, f, names: list[str]) -> dict[str, torch.Tensor]:
    try:
        return {key: f.get_tensor(key) for key in names}
    except SafetensorError as error:
        raise ZooError(f"{path}: corrupt weights file ({error})") from None


def input_spec(meta: dict[str, Any]) -> InputSpec:
    """The input spec a weights file was trained with."""
    return InputSpec.from_dict(meta["input"])


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load `state` (less zoo's `EXTRA` tensors, as a plain safetensors reader sees them) into
    `model` strictly, or raise a ZooError naming the first mismatches."""
    state = _model_tensors(state)
    problems = _mismatches(model.state_dict(), state)
    if problems:
        raise _misfit(path, list(problems.values()))
    model.load_state_dict(state)


def load_fitting(
    model: torch.nn.Module, state: dict[str, torch.Tensor], head: str, path: str | Path
) -> list[str]:
    """Load every tensor of `state` (less `EXTRA` ones) that fits `model`; return the names of
    the model's tensors that keep their fresh initialisation because the file's do not fit (or
    are missing).

    Only tensors inside the `head` module (an ImageNet classifier, another class count) may
    differ: a mismatch anywhere else is a ZooError.
    """
    state = _model_tensors(state)
    problems = _mismatches(model.state_dict(), state)
    outside = [text for key, text in problems.items() if not _inside(key, head)]
    if outside:
        raise _misfit(path, outside)
    model.load_state_dict({k: v for k, v in state.items() if k not in problems}, strict=False)
    return [key for key in model.state_dict() if key in problems]


def _model_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(EXTRA)}


def _mismatches(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict:
    """What does not fit, by tensor name: missing, unexpected or of another shape."""
    problems = {k: f"missing {k}" for k in expected if k not in state}
    problems |= {k: f"unexpected {k}" for k in state if k not in expected}
    problems |= {
        k: f"{k} is {tuple(v.shape)} in the file but {tuple(expected[k].shape)} in the model"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    }
    return problems


def _inside(key: str, module: str) -> bool:
    return key == module or key.startswith(f"{module}.")


def _misfit(path: str | Path, problems: list[str]) -> ZooError:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return ZooError(f"{path} does not fit the model: {'; '.join(problems[:3])}{more}")


def _open(path: str | Path):
    """safe_open, with the errors of a user's file turned into one-line ZooErrors."""
    if not Path(path).is_file():
        raise ZooError(f"{path}: no such weights file")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ZooError(f"{path}: not a valid safetensors file ({cause})") from None


def _decode(path: str | Path, header: dict[str, str] | None) -> dict[str, Any]:
    header = header or {}
    if header.get("format") != json.dumps(FORMAT):
        raise ZooError(f"{path}: a safetensors file, but not a zoo weights file (no zoo metadata)")
    try:
        meta = {key: json.loads(value) for key, value in header.items()}
    except json.JSONDecodeError as error:
        raise ZooError(f"{path}: corrupt zoo metadata ({error})") from None
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ZooError(f"{path}: zoo metadata lacks {', '.join(missing)}")
    return meta
