"""`zoo predict`: batched classification of image files and folders.

Images decode on a small thread pool one batch ahead of the model, and are resized there to the
model's input size (uint8, by `Classifier.model_image`); the main thread stacks a
batch, normalises it in one go and runs the model on it (channels_last, under inference_mode,
bf16 autocast with `amp`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from zoo.data.preprocess import open_image
from zoo.errors import ZooError
from zoo.serving.inference import Answer, Classifier
from zoo.util.folders import walk

IMAGE_EXTENSIONS = frozenset(
    {".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
)
DECODE_THREADS = 4  # PIL releases the GIL while it decodes

Decoded = torch.Tensor | ZooError  # an image, or why it could not be read


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the image files in the folders named (recursively, sorted, as
    `zoo.util.folders.walk` finds them: no folder symlink followed, regular files only)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = walk(path, IMAGE_EXTENSIONS)
            if found.left_out():
                warnings.warn(f"{path}: left out {found.left_out()}", stacklevel=2)
            if not found.files:
                raise ZooError(f"{path}: no image files in this folder")
            files += found.files
        elif path.is_file():
            files.append(path)
        else:
            raise ZooError(f"{path}: no such file or folder")
    return files


def predict_files(
    classifier: Classifier,
    files: list[Path],
    k: int = 5,
    batch_size: int = 32,
    amp: bool = False,
) -> Iterator[tuple[Path, Answer | ZooError]]:
    """Each file with its `Answer`, or the error that made it unreadable (or its answer not
    finite: a model whose logits overflow)."""

    def decode(path: Path) -> Decoded:
        try:
            return classifier.model_image(open_image(path))
        except ZooError as error:
            return error

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        for batch in _decoded_batches(pool, decode, files, batch_size):
            images = [image for _, image in batch if isinstance(image, torch.Tensor)]
            answers = []
            if images:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    answers = classifier.answers(images, k)
            tops = iter(answers)
            for path, image in batch:
                if not isinstance(image, torch.Tensor):
                    yield path, image
                elif (answer := next(tops)) is None:  # overflowing logits: no JSON NaN
                    yield path, ZooError(f"{path}: the model's answer is not a finite number")
                else:
                    yield path, answer


def _decoded_batches(
    pool: ThreadPoolExecutor,
    decode: Callable[[Path], Decoded],
    files: list[Path],
    batch_size: int,
) -> Iterator[list[tuple[Path, Decoded]]]:
    """The files in batches, decoded; the next batch decodes while the caller uses this one."""
    batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]

    def submit(batch: list[Path]) -> list[Future[Decoded]]:
        return [pool.submit(decode, path) for path in batch]

    ahead = submit(batches[0]) if batches else []
    for i, batch in enumerate(batches):
        current, ahead = ahead, submit(batches[i + 1]) if i + 1 < len(batches) else []
        yield [(path, future.result()) for path, future in zip(batch, current, strict=True)]
