"""zoo.testing: check a plugin as the core uses it, from its own pytest suite.

    import pytest
    from zoo.testing import Harness

    @pytest.fixture(scope="module")
    def harness():
        return Harness("acme")  # an entry point's or distribution's name, or a plugin file

    def test_acme(harness, tmp_path):
        harness.check_declarations()
        harness.check_model("acme")
        weights = harness.train("acme", tmp_path)  # one epoch on a tiny generated dataset
        harness.check_export(weights, "onnx")
        harness.check_explain(weights)

A `Harness` loads the core, the built-ins and that one plugin (an allow-list of one) through
the same discovery and registry as every `zoo` command, plus `zoo-testing`, a tiny generated
dataset (`zoo.testing.shapes`) at the model's input size. Each check raises an AssertionError
saying what is wrong; a user's error that the core would print as `error: ...` is raised as
that ZooError.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo import weights
from zoo.data.contract import ARGUMENTS, accepted
from zoo.data.sources import load_dataset
from zoo.discovery import PluginInfo, PluginWarning, load_plugins, normalise, selectors
from zoo.registry import Registry
from zoo.specs import ModelSpec
from zoo.testing import shapes
from zoo.training.config import TrainConfig, default_run_name

DATASET = shapes.NAME
__all__ = ["DATASET", "Harness"]


class Harness:
    """The registry as `zoo` builds it with the one plugin `name` (and `dirs`, folders of
    plugin files), and checks of that plugin's declarations, models, training, export and
    explanations."""

    def __init__(self, name: str, dirs: tuple[Path, ...] = ()) -> None:
        with _recorded() as caught:
            pm, infos = load_plugins(dirs, frozenset({normalise(name)}))
            pm.register(shapes, name="zoo.testing")
            infos.append(PluginInfo("zoo.testing", "core", hooks=["zoo_datasets"]))
            self.registry = Registry(pm, infos)
        found = [i for i in infos if normalise(name) in selectors(i) and not i.skipped]
        assert len(found) == 1, (
            f"no plugin called {name!r} is installed (pip install -e . in its folder?)"
            if not found
            else f"{name!r} names {len(found)} plugins: {', '.join(i.name for i in found)}"
        )
        self.plugin: PluginInfo = found[0]
        self.warnings = [m for m in caught if self.plugin.name in m]
        assert self.plugin.error is None, f"plugin {self.plugin.name}: {self.plugin.error}"

    def check_declarations(self, overrides: bool = False) -> None:
        """The plugin implements hooks; no warning names it (an override only if `overrides`);
        each model's defaults are valid options for `zoo train` (dataset, strategy); each
        dataset's loader takes the arguments zoo passes."""
        assert self.plugin.hooks, f"plugin {self.plugin.name} implements no zoo hook"
        unexpected = [m for m in self.warnings if not (overrides and " overrides " in m)]
        assert not unexpected, f"plugin {self.plugin.name} was warned about: {unexpected}"
        for name in self.plugin.models:
            spec = self.registry.models[name]
            if not overrides:
                assert spec.plugin == self.plugin.name, f"{name!r} is overridden by {spec.plugin}"
            config = TrainConfig.for_model(spec)  # a ZooError for an invalid default
            dataset = config.dataset.partition(":")[0]
            assert dataset in self.registry.datasets, f"{name!r}: no dataset {dataset!r}"
            assert config.strategy in spec.strategies, (
                f"{name!r}: default strategy {config.strategy!r} is not in its ModelSpec "
                f"strategies {spec.strategies}"
            )
        for name in self.plugin.datasets:
            accepted(self.registry.datasets[name], dict.fromkeys(ARGUMENTS))

    def model(self, name: str, num_classes: int = 3) -> nn.Module:
        """`name`'s model built as the core builds it (its `head` and `cam_layer` checked)."""
        spec = self.registry.model(name)
        return self.registry.build(spec, num_classes=num_classes)

    def check_model(self, name: str, num_classes: int = 3) -> nn.Module:
        """Build `name`: its output has `num_classes` per image at its input size, its
        `cam_layer` (if named) gives a spatial map, and every strategy it declares prepares
        parameter groups of its own; the model, in eval mode."""
        spec = self.registry.model(name)
        model = self.model(name, num_classes)
        x = _example(spec)
        maps: list[torch.Tensor] = []
        hook = None
        if spec.cam_layer:
            layer = model.get_submodule(spec.cam_layer)
            hook = layer.register_forward_hook(lambda m, args, out: maps.append(out))
        with torch.no_grad():
            logits = model.eval()(x)
        if hook:
            hook.remove()
            assert isinstance(maps[0], torch.Tensor) and maps[0].dim() == 4, (
                f"{name!r}: cam_layer {spec.cam_layer!r} gives no (N, C, h, w) map for Grad-CAM"
            )
        assert tuple(logits.shape) == (len(x), num_classes), (
            f"{name!r} gives {tuple(logits.shape)} for {len(x)} images at "
            f"{spec.input.channels}x{spec.input.size}x{spec.input.size}, not "
            f"{(len(x), num_classes)}: zoo_build must use num_classes for the head"
        )
        for strategy in spec.strategies:
            groups = self.registry.finetune(spec, model, strategy)
            trained = sum(p.numel() for group in groups for p in group["params"])
            assert trained, f"{name!r}: strategy {strategy!r} trains no parameter"
        return model.eval()

    def train(self, name: str, folder: Path, epochs: int = 1, **options: Any) -> Path:
        """`zoo train name` for `epochs` on the harness's generated dataset (batch 16, one
        thread, no run folder) into `folder` (`options` as `TrainConfig` fields: image_size,
        strategy, dataset, ...); the weights file."""
        from zoo.training.loop import train

        spec = self.registry.model(name)
        defaults = {"dataset": DATASET, "epochs": epochs, "batch_size": 16, "threads": 1}
        config = TrainConfig.for_model(spec, **{**defaults, **options})
        run = default_run_name(spec.name, config.dataset)
        out = Path(folder) / f"{run}.safetensors"
        train(self.registry, spec, config, out, progress=False)  # no run folder, no figures
        meta = weights.read_meta(out)
        assert meta["model"] == spec.name and meta["dataset"] == config.dataset, meta
        assert math.isfinite(meta["metrics"]["test_accuracy"]), meta["metrics"]
        return out

    def check_export(
        self,
        weights: Path,
        fmt: str = "safetensors",
        read: Callable[[Path], Mapping[str, Any]] | None = None,
    ) -> Path:
        """Export `weights` as `fmt` into `export/` beside it, as `zoo export` does; the path it
        returned must
        be the file written. The core's formats are run against PyTorch (`zoo export --check`);
        another format is read back with `read` (path -> state dict) if given and compared
        with the model's tensors. The exported file."""
        from zoo.serving.export import default_path, export
        from zoo.serving.inference import Classifier
        from zoo.serving.parity import RUNNERS, check

        classifier = Classifier.load(self.registry, weights)
        with _recorded() as caught:
            out = default_path(Path(weights).parent / "export" / Path(weights).name, fmt)
            path = export(self.registry, classifier, fmt, out)
        assert not caught, f"export to {fmt}: {caught}"
        assert path.is_file(), f"export to {fmt} returned {path}, which is not a file"
        if fmt in RUNNERS:
            result = check(self.registry, classifier, fmt, path)
            assert result.ok, result.summary()
        elif read is not None:
            state = classifier.model.state_dict()
            back = {k: torch.as_tensor(v) for k, v in read(path).items() if k in state}
            missing = sorted(set(state) - set(back))
            assert not missing, f"{fmt} export lacks {missing[:5]}"
            for key, tensor in state.items():
                assert torch.equal(back[key].to(tensor.dtype), tensor.cpu()), f"{fmt}: {key}"
        return path

    def check_explain(self, weights: Path, methods: tuple[str, ...] | None = None) -> None:
        """The weights file carries a checked explanation method (from `zoo train`), Grad-CAM
        among those checked when the model names a `cam_layer`, and each of `methods` (default:
        every method the file's check could run) gives maps in [0, 1] at the input size."""
        from zoo.serving.inference import Classifier
        from zoo.trust.explain import explain
        from zoo.trust.metrics import image_batches

        classifier = Classifier.load(self.registry, weights)
        checked = classifier.meta.get("explain", {}).get("deletion_pass_rate", {})
        assert checked, f"{weights} has no checked explanation method (not from zoo train?)"
        if classifier.spec.cam_layer:
            assert "gradcam" in checked, f"Grad-CAM at {classifier.spec.cam_layer!r} did not run"
        images = load_dataset(self.registry, DATASET, classifier.input.size)[1].test_images
        batch = next(image_batches(images[:4], classifier.input, torch.device("cpu")))
        for method in methods or tuple(checked):
            maps = explain(classifier, batch, method).heatmaps
            size = classifier.input.size
            assert tuple(maps.shape) == (len(batch), size, size), f"{method}: {maps.shape}"
            assert torch.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1, method

    def check_dataset(self, name: str, size: int = 32, root: Path | None = None):
        """Load dataset `name` for a model of input `size` as `zoo train` does (its loader's
        result checked): the `ImageSplits`."""
        return load_dataset(self.registry, name, size, root)[1]


def _example(spec: ModelSpec) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (2, spec.input.channels, spec.input.size, spec.input.size)
    return torch.randn(shape, generator=generator)


@contextmanager
def _recorded() -> Iterator[list[str]]:
    """The PluginWarnings raised inside, as messages (not shown)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        yield messages
    messages += [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
