"""`zoo export`: the dispatch through the `zoo_export` hook, and the core's own formats
(safetensors, ONNX, TorchScript, torch.export) as a last-resort hook implementation that any
plugin can override or add to.

Every format carries the weights file's metadata (model, classes, input spec, ...): ONNX in its
`metadata_props`, TorchScript and torch.export archives as the extra file `zoo.json`. The core
registers this module at every start, so torch is imported only by the functions that use it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from zoo.discovery import PluginWarning
from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.specs import InputSpec, ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.registry import Registry
    from zoo.serving.inference import Classifier

# The core's formats and their file extensions.
FORMATS = {
    "safetensors": ".safetensors",
    "onnx": ".onnx",
    "torchscript": ".torchscript.pt",
    "pt2": ".pt2",
}
META_FILE = "zoo.json"  # the extra file that holds the metadata in TorchScript and pt2 archives
EXAMPLE_BATCH = 2  # the batch traced; the batch axis stays dynamic where the format allows


def export(registry: Registry, classifier: Classifier, fmt: str, path: Path) -> Path:
    """Write `classifier`'s model as `fmt` to `path` through `zoo_export`; return the path.

    A ZooError if `path` cannot be written, no plugin knows `fmt`, or the exporter fails.
    """
    import torch

    from zoo.trust import unknown

    writable(path)
    if path.resolve() == classifier.path.resolve():
        raise ZooError(f"{path} is the weights file itself; name another --out")
    spec = registry.model(classifier.meta["model"])
    model = classifier.model.eval().to("cpu", memory_format=torch.contiguous_format)
    # The unknown-input detector's tensors stay in zoo's weights file; exports carry the rest.
    meta = {k: v for k, v in classifier.meta.items() if k != unknown.KEY}
    started = time.time()
    written, plugin = registry.first_answer(
        "zoo_export", spec, model=model, fmt=fmt, path=path, meta=meta
    )
    if written is None:
        known = ", ".join(FORMATS)
        raise ZooError(f"unknown export format {fmt!r}; the core writes {known} (plugins add more)")
    return _written(Path(written), f"plugin {plugin}'s zoo_export for {fmt!r}", started)


def _written(path: Path, exporter: str, started: float) -> Path:
    """The file an exporter wrote: `path`, the one it returned; or, with a warning, the only
    file beside it whose name extends it, written since `started` (`np.savez`, for one, adds
    `.npz`); else a ZooError."""
    if path.is_file():
        return path
    near = [
        p
        for p in path.parent.glob(f"{glob.escape(path.name)}?*")
        if p.is_file() and p.stat().st_mtime >= started - 1
    ]
    if len(near) == 1:
        warnings.warn(
            f"{exporter} returned {path}, but wrote {near[0]}; return the path the library "
            "writes (np.savez, for one, adds .npz)",
            PluginWarning,
            stacklevel=3,
        )
        return near[0]
    raise ZooError(f"{exporter} returned {path}, which it did not write; return the path written")


def default_path(source: Path, fmt: str) -> Path:
    """`source` with the extension of `fmt` (`.<fmt>` for a plugin's format)."""
    return source.with_suffix(FORMATS.get(fmt, f".{fmt}"))


def writable(path: Path) -> Path:
    """`path`, after making its folder; a ZooError if no file can be written there."""
    if path.is_dir():
        raise ZooError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZooError(f"cannot write {path}: {error.strerror or error}") from None
    if not os.access(path.parent, os.W_OK):
        raise ZooError(f"cannot write {path}: {path.parent} is not writable")
    return path


def optional(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise a ZooError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZooError(
            f"{purpose} needs the {module} package: pip install 'zoo-models[onnx]'"
        ) from None


def example_input(spec: InputSpec) -> torch.Tensor:
    """A fixed random batch shaped as the model's input, for tracing."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.rand(EXAMPLE_BATCH, spec.channels, spec.size, spec.size, generator=generator)


def _batch_dim() -> tuple[dict[int, Any]]:
    import torch

    return ({0: torch.export.Dim("batch")},)


def _safetensors(model: nn.Module, example: torch.Tensor, meta: dict, tmp: str) -> None:
    from zoo import weights

    weights.save(tmp, model, meta)


def _onnx(model: nn.Module, example: torch.Tensor, meta: dict, tmp: str) -> None:
    import torch

    onnx = optional("onnx", "ONNX export")
    optional("onnxscript", "ONNX export")
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        verbose=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=_batch_dim(),
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {key: json.dumps(value) for key, value in meta.items()})
    onnx.save_model(proto, tmp)


def _torchscript(model: nn.Module, example: torch.Tensor, meta: dict, tmp: str) -> None:
    import torch

    with warnings.catch_warnings():  # deprecated in favour of torch.export, still supported
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, tmp, _extra_files={META_FILE: json.dumps(meta)})


def _pt2(model: nn.Module, example: torch.Tensor, meta: dict, tmp: str) -> None:
    import torch

    program = torch.export.export(model, (example,), dynamic_shapes=_batch_dim())
    with open(tmp, "wb") as file:  # a file object: torch.export.save wants a .pt2 name otherwise
        torch.export.save(program, file, extra_files={META_FILE: json.dumps(meta)})


WRITERS: dict[str, Callable[[nn.Module, torch.Tensor, dict, str], None]] = {
    "safetensors": _safetensors,
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' logs and prints (partial graphs on failure): errors say enough."""
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


@hookimpl(trylast=True)
def zoo_export(
    spec: ModelSpec, model: nn.Module, fmt: str, path: Path, meta: dict[str, Any]
) -> Path | None:
    writer = WRITERS.get(fmt)
    if writer is None:
        return None
    from zoo import weights

    example = example_input(weights.input_spec(meta))
    try:
        with _quiet():
            return weights.atomic_write(Path(path), lambda tmp: writer(model, example, meta, tmp))
    except ZooError:
        raise
    except OSError as error:
        raise ZooError(f"cannot write {path}: {error.strerror or error}") from error
    except Exception as error:  # the exporters' own errors: the model cannot take this format
        raise ZooError(f"cannot export {spec.name!r} to {fmt}: {_root_cause(error)}") from error
