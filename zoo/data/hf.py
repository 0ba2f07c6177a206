"""`hf:NAME` and `hf:PATH`: a Hugging Face dataset with an image column and a label column.

NAME is a dataset on the Hub (read from Hugging Face's own cache offline, downloaded when
online) or a local folder of data files; PATH a folder written by `save_to_disk`. Its "train"
split trains and its "test" (or "validation") split tests; a dataset with neither is split
80/20 as folders are. The images are decoded once into zoo's cache (`zoo.data.cache`),
keyed by the dataset's fingerprints.
"""

from __future__ import annotations

from pathlib import Path

from zoo.data import cache
from zoo.data.stream import cached_loader
from zoo.errors import ZooError

TEST_SPLITS = ("test", "validation", "valid", "val")
LABEL_NAMES = ("label", "labels", "fine_label", "class", "target")


def prepare_hf(
    name: str | Path,
    size: int,
    workers: int,
    cache_root: Path,
    augment: bool = False,
    progress: bool = False,
) -> Path:
    """The cache folder (under `cache_root`) of Hugging Face dataset `name` at `size` (or
    larger for `augment`), decoded first if need be."""
    import datasets

    name = str(name)
    with cache.progress_bars(progress):  # a download shows its own
        splits = _open(name)
    train = splits["train"] if "train" in splits else splits[next(iter(splits))]
    test = next((splits[s] for s in TEST_SPLITS if s in splits), None)
    image, label = _columns(train, name)
    parts = [train] if test is None else [train, test]
    parts = [part.select_columns([image, label]) for part in parts]
    if not isinstance(parts[0].features[label], datasets.ClassLabel):
        with cache.progress_bars(False):
            parts = _encode_labels(parts, label)
    classes = [str(c) for c in parts[0].features[label].names]
    stored = cache.stored_size(size, augment)
    key = cache.cache_key("hf", stored, [p._fingerprint for p in parts], image, label)

    def source():
        tables = [
            part.cast_column(image, datasets.Image(decode=False))
            .rename_columns({image: "source", label: "label"})
            .add_column("held_out", [i == 1] * len(part))
            for i, part in enumerate(parts)
        ]
        return datasets.concatenate_datasets(tables)

    describe = {"dataset": f"hf:{name}", "classes": classes}
    return cache.build_cache(
        cache_root, f"hf-{name}", key, source, stored, workers, progress, describe
    )


def _open(name: str):
    """The dataset's splits, from a `save_to_disk` folder, the Hub or a folder of data files."""
    import datasets

    path = Path(name).expanduser()
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            data = datasets.load_from_disk(str(path))
        else:
            data = datasets.load_dataset(name)
    except Exception as error:  # network, missing cache, bad files: the library's own words
        cause = " ".join(str(error).split())[:300]
        raise ZooError(f"cannot load Hugging Face dataset {name!r} ({cause})") from None
    if isinstance(data, datasets.Dataset):
        return {"train": data}
    if not isinstance(data, datasets.DatasetDict) or not data:
        raise ZooError(f"hf:{name} is not a dataset of images (a {type(data).__name__})")
    return dict(data)


def _columns(split, name: str) -> tuple[str, str]:
    """The image column (the first of type Image) and the label column of a split: the first
    ClassLabel, else one with a usual name, else the only other column."""
    import datasets

    features = split.features
    images = [c for c, kind in features.items() if isinstance(kind, datasets.Image)]
    if not images:
        raise ZooError(f"hf:{name} has no image column; its columns: {', '.join(features)}")
    others = [c for c in features if c != images[0]]
    labels = [c for c in others if isinstance(features[c], datasets.ClassLabel)]
    labels = labels or [c for c in LABEL_NAMES if c in features] or others[:1] * (len(others) == 1)
    if not labels:
        raise ZooError(
            f"hf:{name} has no label column (a ClassLabel, or one named label); its columns: "
            f"{', '.join(features)}"
        )
    return images[0], labels[0]


def _encode_labels(parts: list, label: str) -> list:
    """Plain label values (strings or numbers) as one ClassLabel, sorted, shared by splits."""
    import datasets

    values = sorted({v for part in parts for v in part.unique(label)})
    kind = datasets.ClassLabel(names=[str(v) for v in values])
    index = {v: i for i, v in enumerate(values)}
    return [
        part.map(
            lambda column: {label: [index[v] for v in column]},
            input_columns=label,
            batched=True,
            features=datasets.Features({**part.features, label: kind}),
            keep_in_memory=True,  # nothing written beside the user's files
        )
        for part in parts
    ]


load_hf = cached_loader(prepare_hf)
