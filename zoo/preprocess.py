"""The one place where pixels become model input, shared by training, evaluation, prediction,
the demo and the export checks, so a model sees the same pixels everywhere.

Images travel as uint8 tensors (N, C, H, W); `prepare` turns a batch into the normalised float
input of an `InputSpec` on whatever device the batch is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError
from zoo.specs import InputSpec

# ITU-R 601-2 luma, as PIL's convert("L").
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def prepare(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> normalised float (N, spec.channels, size, size).

    Channels are matched (grey repeated to RGB, RGB to luma), the shorter side is resized to
    `spec.size` and the centre cropped square, then `spec.mean`/`spec.std` applied. The result
    is channels_last, which convnets run fastest in.
    """
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    if x.shape[1] != spec.channels:
        x = x.expand(-1, 3, -1, -1) if spec.channels == 3 else (x * _LUMA.to(x.device)).sum(1, True)
    x = _resize_center_crop(x, spec.size)
    mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), resized and cropped as `prepare` does;
    for storing images of varying sizes in one tensor."""
    x = _resize_center_crop(images.float(), size)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    if (height, width) == (size, size):
        return x
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[..., top : top + size, left : left + size]


def pil_to_uint8(image: Image.Image, channels: int, size: int | None = None) -> torch.Tensor:
    """A PIL image of any mode -> uint8 (C, H, W) with `channels` channels.

    Transparency is flattened onto white, 16-bit and CMYK images are converted, EXIF rotation
    applied. With `size`, a very large image is first box-reduced to a few times `size` (a
    cheap, exact-enough shortcut before the antialiased resize in `prepare`).
    """
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # modes that Image.reduce refuses
        image = image.convert("I")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if size and min(image.size) >= 4 * size:
        image = image.reduce(min(image.size) // (2 * size))
    if image.mode == "I":
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / top * 255).round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def open_image(
    path: str | Path | BinaryIO, max_pixels: int | None = None, name: str | None = None
) -> Image.Image:
    """Open and fully decode an image file (or file object, called `name` in errors), or raise
    a one-line ZooError naming it.

    With `max_pixels`, a larger image is refused from its header, before it is decoded.
    """
    source = Path(path) if isinstance(path, str) else path
    path = name or source
    try:
        image = Image.open(source)
        if max_pixels and image.width * image.height > max_pixels:
            raise ZooError(
                f"{path}: {image.width}x{image.height} is too large "
                f"(more than {max_pixels:,} pixels)"
            )
        image.load()
    except FileNotFoundError:
        raise ZooError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ZooError(f"{path}: not an image file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ZooError(f"{path}: cannot read image ({error})") from None
    return image
