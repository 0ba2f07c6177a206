"""Training state on disk: runs/<run>/last.ckpt, and the state dicts `--init-from` reads.

Both are read with `torch.load(weights_only=True)` (tensors and plain values only) or
safetensors: loading never runs code from a file. Checkpoints are written atomically.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open

from zoo import weights
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.registry import Registry
from zoo.util.files import atomic_write

FORMAT = "zoo.training.checkpoint/1"
FILENAME = "last.ckpt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` (tensors and plain values) to `path` atomically, streamed to the file (a
    copy in memory would cost the model's and the optimizer's size again)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a Python file, whose full disk is an OSError
            try:
                torch.save({"format": FORMAT, **state}, file)
            except RuntimeError as error:  # torch's zip writer raises its own on closing
                if isinstance(error.__context__, OSError):
                    raise error.__context__ from None
                raise

    return atomic_write(path, write)


def load_checkpoint(path: Path, model: str) -> dict[str, Any]:
    """The checkpoint at `path`, which must be one of `model`; a ZooError otherwise."""
    if not path.is_file():
        raise ZooError(f"nothing to resume: {path} does not exist")
    state = _torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ZooError(f"{path}: not a zoo checkpoint")
    if state["model"] != model:
        raise ZooError(f"{path} is a checkpoint of {state['model']!r}, not of {model!r}")
    return state


def rng_state() -> dict[str, Any]:
    """The global random number generators' states (CPU, and CUDA where present)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_state_dict(
    path: str | Path,
    model: torch.nn.Module | None = None,
    head: str = "",
    registry: Registry | None = None,
) -> dict[str, torch.Tensor]:
    """A state dict from any .safetensors file, or from a .pth/.pt/.ckpt file holding one
    (plain, or under a "state_dict" or "model" key, as training scripts save them).

    A zoo weights file is checked as every command checks it (`weights.check_file`, with
    `registry`; else its header alone); with `model`, a safetensors file's tensors are
    checked against the model's from the header alone (only those inside `head` may
    differ), and only the fitting ones are read."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                zoo_file = (f.metadata() or {}).get("format") == json.dumps(weights.FORMAT)
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise ZooError(f"{path}: not a valid safetensors file ({error})") from None
        if zoo_file:  # checked as every command checks it, though only the model's tensors are read
            weights.check_file(registry, path) if registry else weights.read_meta(path)
            weights.read_finite_extra(path)
        misfits = weights.check_fitting(model, shapes, head, path) if model else set()
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in shapes if k not in misfits}
        weights.check_finite(path, state)
        return state
    state = _torch_load(path)
    if isinstance(state, dict):
        wrapped = [state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)]
        state = wrapped[0] if wrapped else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ZooError(f"{path}: holds no state dict (a mapping of names to tensors)")
    weights.check_finite(path, state)
    return state


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only refusals alike
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"{path}: cannot load it safely (weights_only): {cause}") from None


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of `model`: the state-dict entries training changes (trainable
    parameters, and the buffers of the modules that hold one). The frozen rest is rebuilt by a
    resumed run as the run first built it (same seed, pretrained weights or --init-from file)
    and checked against `frozen_checksum`. For VGG16 `head`: its 9.4 MB head, not 58 MB."""
    trained = _trained_keys(model)
    return {key: value for key, value in model.state_dict().items() if key in trained}


def frozen_checksum(model: torch.nn.Module) -> int:
    """A CRC-32 of the state-dict entries `trained_state` leaves out (names and exact bytes):
    it tells a changed backbone from the same one, fast (VGG16's 58 MB in about 0.1 s)."""
    trained = _trained_keys(model)
    crc = 0
    for key, value in model.state_dict().items():
        if key not in trained:
            crc = zlib.crc32(key.encode(), crc)
            data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            crc = zlib.crc32(data, crc)
    return crc


def load_trained(model: torch.nn.Module, saved: dict[str, Any], path: Path) -> None:
    """Load what `trained_state` kept into `model`, rebuilt as before; a ZooError if its
    frozen part differs from the one the checkpoint was trained with."""
    kept = saved["state_dict"]
    if frozen_checksum(model) != saved["frozen"] or kept.keys() != _trained_keys(model):
        raise ZooError(
            f"{path}: the model rebuilt for resuming differs from the one it was trained from "
            "(other pretrained weights or --init-from file?)"
        )
    model.load_state_dict(kept, strict=False)


def _trained_keys(model: torch.nn.Module) -> set[str]:
    keys = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own:
            keys |= {prefix + n for n, _ in own}
            keys |= {prefix + n for n, _ in module.named_buffers(recurse=False)}
    return keys
