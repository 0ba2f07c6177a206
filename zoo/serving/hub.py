"""`zoo export --format hub`: a weights file as a folder ready for the Hugging Face Hub.

`model.safetensors` holds the model's state dict and nothing else, so `load_state_dict(strict=True)`
takes it; `config.json` is timm's format, written by timm's own `save_for_hf` for timm
architectures (so `timm.create_model("local-dir:DIR", pretrained=True)` loads the folder
offline) and with the same fields for the others, whose `architecture` is the zoo model; the
weights file's facts, less the unknown-input detector (whose tensors stay in zoo's file), go
under its `zoo` key, for `zoo import`. `README.md` is the model card (`card.py`), and the run
folder's figures go beside it. The folder is written into a temporary one beside the target and
renamed into place: a failed export leaves nothing behind, and an earlier one stays whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import weights
from zoo.errors import ZooError
from zoo.serving.card import model_card
from zoo.serving.facts import figures, run_epochs
from zoo.specs import InputSpec
from zoo.trust import unknown
from zoo.util.files import atomic_folder, read_json

if TYPE_CHECKING:
    from torch import nn

    from zoo.registry import Registry
    from zoo.serving.inference import Classifier

HUB = "hub"  # the --format
WEIGHTS_FILE = "model.safetensors"
TORCH_WEIGHTS = "pytorch_model.bin"  # what older timm and Hub folders hold instead
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
ZOO_KEY = "zoo"
TIMM = "timm/"
MAX_CONFIG_BYTES = weights.MAX_HEADER_BYTES  # a config holds what a weights header holds
# zoo's preprocessing (`preprocess.prepare`) in timm's words: the centre square, resized to the
# input size with an antialiased bilinear filter, is timm's centre crop at crop_pct 1.0.
DATA_CONFIG = {"interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # the Hub's license ids: apache-2.0, cc-by-4.0


def timm_architecture(model: str) -> str | None:
    """The timm architecture of zoo model `model` (`timm/<arch>`), or None."""
    return model.removeprefix(TIMM) if model.startswith(TIMM) else None


def default_folder(source: Path) -> Path:
    """The folder beside weights file `source`: `<stem>-hub`."""
    return source.parent / f"{source.stem}-hub"


def facts(meta: dict[str, Any]) -> dict[str, Any]:
    """The weights file's metadata as config.json's `zoo` key, fit to publish: all but the
    detector's entry and the local paths (where the data was read, `data`, goes; the path
    options and a `NAME:PATH` dataset keep only the last name of their path)."""
    from zoo.training.config import options

    paths = {f.name for f in options() if f.metadata["path"]}
    kept = {key: value for key, value in meta.items() if key not in (unknown.KEY, "data")}
    if isinstance(kept.get("dataset"), str):
        kept["dataset"] = _last_name(kept["dataset"])
    if isinstance(kept.get("settings"), dict):
        named = {*paths, "dataset"}
        kept["settings"] = {
            key: _last_name(value) if key in named and isinstance(value, str) else value
            for key, value in kept["settings"].items()
        }
    return kept


def _last_name(text: str) -> str:
    """`folder:/home/me/pets` as `folder:pets`, `/home/me/a.safetensors` or `~/a.safetensors`
    as `a.safetensors`; a name (`fashion-mnist`, `hf:user/set`) or relative path as it is."""
    name, colon, path = text.partition(":")
    if colon and _local(path):
        return f"{name}:{Path(path).name}"
    return Path(text).name if _local(text) else text


def _local(path: str) -> bool:
    return path.startswith(("/", "~"))


def data_config(spec: InputSpec) -> dict[str, Any]:
    """timm's data config for a model that takes `spec`."""
    size = (spec.channels, spec.size, spec.size)
    return {"input_size": size, "mean": spec.mean, "std": spec.std, **DATA_CONFIG}


def checked_license(text: str) -> str:
    """`text` if it has the form of a Hub license id; else a ZooError."""
    if not LICENSE.fullmatch(text):
        raise ZooError(
            f"--license {text!r} is not a Hub license id such as apache-2.0, mit, cc-by-4.0, other"
        )
    return text


def export_folder(
    registry: Registry, classifier: Classifier, folder: Path, license: str, run: Path
) -> Path:
    """Write `classifier`'s Hub folder to `folder` (replacing an earlier Hub export there), its
    card showing the figures of run folder `run`; return `folder`. A ZooError if `folder` is
    something else, or cannot be written."""
    replaceable(folder)
    epochs = run_epochs(run, classifier.meta)
    shown = figures(run) if epochs is not None else []
    if epochs is None and figures(run):
        warnings.warn(
            f"{run} is not the run that wrote {classifier.path}: its figures stay out",
            stacklevel=2,
        )

    def write(tmp: Path) -> None:
        config = write_model(classifier, tmp)
        for path, _ in shown:
            shutil.copyfile(path, tmp / path.name)
        names = [(path.name, caption) for path, caption in shown]
        card = model_card(registry, classifier, config, names, license, epochs)
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")

    try:
        return atomic_folder(folder, write)
    except OSError as error:
        raise ZooError(f"cannot write {folder}: {error.strerror or error}") from None


def replaceable(folder: Path) -> None:
    """Nothing, if `folder` may become a Hub export: it is missing, empty or an earlier one
    (a config.json with a `zoo` key, and only the files an export writes); else a ZooError."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ZooError(f"cannot write {folder}: it is not a folder")
    if not folder.exists() or not any(folder.iterdir()):
        parent = next(p for p in folder.absolute().parents if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ZooError(f"cannot write {folder}: {parent} is not writable")
        return
    if not is_export(folder):
        raise ZooError(
            f"{folder} is a folder with other files than a zoo Hub export's; name another --out"
        )


def is_export(folder: Path) -> bool:
    """Whether `folder` holds a zoo Hub export and nothing else."""
    ours = {WEIGHTS_FILE, CONFIG_FILE, CARD_FILE}
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_file():
            return False
        if entry.name not in ours and entry.suffix != ".png":
            return False
    try:
        config = read_json(folder / CONFIG_FILE, MAX_CONFIG_BYTES)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(config, dict) and isinstance(config.get(ZOO_KEY), dict)


def write_model(classifier: Classifier, folder: Path) -> dict[str, Any]:
    """Write model.safetensors and config.json into `folder`; return the config."""
    meta = classifier.meta
    arch = timm_architecture(meta["model"])
    try:
        if arch is not None:
            _timm_files(classifier, arch, folder)
        else:
            _zoo_files(classifier, folder)
    except (ValueError, RuntimeError) as error:  # timm's refusals of the model or its config
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"cannot export {meta['model']!r} for the Hub: {first}") from None
    return json.loads((folder / CONFIG_FILE).read_text())


def _timm_files(classifier: Classifier, arch: str, folder: Path) -> None:
    """timm's own `save_for_hf`, on the architecture timm builds for the file's input (a
    grey-trained model, its first convolution summed, as timm's `in_chans=1`)."""
    import timm
    from timm.models import save_for_hf

    meta, spec = classifier.meta, classifier.input
    classes = meta["classes"]
    model = timm.create_model(arch, num_classes=len(classes), in_chans=spec.channels)
    weights.load_state(model, classifier.model.state_dict(), classifier.path)
    config = {"label_names": classes, ZOO_KEY: facts(meta)}
    save_for_hf(model, folder, config, safe_serialization=True, data_config=data_config(spec))


def _zoo_files(classifier: Classifier, folder: Path) -> None:
    """The state dict and a config.json with the fields of timm's, for a zoo architecture."""
    from safetensors.torch import save_file

    meta, spec = classifier.meta, classifier.input
    model, classes = classifier.model, meta["classes"]
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    head = classifier.spec.head if classifier.spec else None
    config = {
        "architecture": meta["model"],
        "num_classes": len(classes),
        **_num_features(model, head),
        "label_names": classes,
        "pretrained_cfg": {
            **data_config(spec),
            "num_classes": len(classes),
            **({"classifier": head} if head else {}),
        },
        ZOO_KEY: facts(meta),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")


def _num_features(model: nn.Module, head: str | None) -> dict[str, int]:
    """`num_features`, the width of the features the head takes, where the head is linear."""
    from torch import nn

    module = model.get_submodule(head) if head else None
    return {"num_features": module.in_features} if isinstance(module, nn.Linear) else {}
