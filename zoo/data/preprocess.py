"""The one place where pixels become model input, shared by training, evaluation, prediction,
the demo and the export checks, so a model sees the same pixels everywhere.

Images travel as uint8 tensors (N, C, H, W); `prepare` turns a batch into the normalised float
input of an `InputSpec` on whatever device the batch is on.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError
from zoo.specs import InputSpec
from zoo.util.files import open_regular

# ITU-R 601-2 luma, as PIL's convert("L").
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
MAX_PIXELS = 50_000_000  # images are refused above this from their header (10000x10000 is 100M)
MAX_SIDE = 65_535  # the largest side read (JPEG's own limit)
REDUCE_ROWS = 256  # rows of an image reduced at a time
INK_MARGIN = 0.05  # space kept around ink on paper, a fraction of its side on each side
INK_SIDE = 448  # ink on paper is scaled down to fit this square
INK_LEVEL = 32  # of 255: darker than the paper by more than this is ink
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def prepare(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> normalised float (N, spec.channels, size, size).

    The centre square is cropped, channels are matched (grey repeated to RGB, RGB to luma) and
    the square resized to `spec.size` (to `spec.image_size`, framed by `spec.border` black
    pixels), then `spec.mean`/`spec.std` applied. Cropping first
    bounds the work by the square, whatever the aspect ratio (a 1x5000 strip costs a 1x1
    crop, never a 32x160000 upscale). The result is channels_last, which convnets run fastest in.
    """
    images = center_square(images)
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    if x.shape[1] != spec.channels:
        x = x.expand(-1, 3, -1, -1) if spec.channels == 3 else (x * _LUMA.to(x.device)).sum(1, True)
    x = _resize_square(x, spec.image_size)
    x = F.pad(x, (spec.border,) * 4) if spec.border else x  # black, before normalisation
    mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def view(x: torch.Tensor, spec: InputSpec) -> Image.Image:
    """One model input (C, size, size), as `prepare` made it, back as the image the model saw."""
    mean = torch.tensor(spec.mean, device=x.device).view(-1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(-1, 1, 1)
    pixels = (x.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return Image.fromarray(
        pixels[0].numpy() if spec.channels == 1 else pixels.permute(1, 2, 0).numpy()
    )


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), cropped and resized as `prepare` does;
    for storing images of varying sizes in one tensor."""
    x = _resize_square(center_square(images).float(), size)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def reduce_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): the centre square, each output pixel the
    mean of the pixels it covers (as the digits' 8x8 pixels count their 4x4 blocks); for
    bringing a large image down to the resolution a model's training images were stored at."""
    x = F.adaptive_avg_pool2d(center_square(images).float(), size)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def center_square(x: torch.Tensor) -> torch.Tensor:
    """The centre square of (..., H, W) images, as a view (side min(H, W))."""
    height, width = x.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return x[..., top : top + side, left : left + side]


def _resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def pil_to_uint8(
    image: Image.Image, channels: int, size: int | None = None, fit: int | None = None
) -> torch.Tensor:
    """A PIL image of any mode -> uint8 (C, H, W) with `channels` channels.

    Transparency is flattened onto white, 16-bit and CMYK images are converted, EXIF rotation
    applied. With `size`, the centre square that `prepare` keeps is cropped first, and a large
    one box-reduced to a few times `size` (a cheap, exact-enough shortcut before the
    antialiased resize in `prepare`); with `fit`, the whole image is box-reduced until its
    longer side is under four times `fit`. Either way the reduction comes before any conversion to
    a wider mode, so no step costs much more than the decoded image, whatever its bit depth.
    """
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # else no copy is made
        image = ImageOps.exif_transpose(image)
    if size and image.width != image.height:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "LAB":  # CIELAB (TIFF): PIL converts it only through littleCMS
        image = ImageCms.applyTransform(image, _lab_to_srgb())
    deep = image.mode.startswith("I") or image.mode == "F"  # 16- and 32-bit grey
    top = 65535.0 if image.mode != "F" and deep and image.getextrema()[1] > 255 else 255.0
    factor = 1
    if size and min(image.size) >= 4 * size:
        factor = min(image.size) // (2 * size)
    elif fit and max(image.size) >= 4 * fit:
        factor = max(image.size) // (2 * fit)
    if factor > 1:
        image = _box_reduce(image, factor)
    if deep:
        array = np.asarray(image, dtype=np.float64)
        scaled = array / top * 255 if image.mode != "F" else array
        image = Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def _box_reduce(image: Image.Image, factor: int) -> Image.Image:
    """`image` with each `factor` x `factor` block averaged, in its own mode, a strip of rows
    at a time: PIL reduces an RGBA image through a premultiplied copy of the whole of it, and
    16-bit modes only through a box resize."""
    width, height = -(-image.width // factor), -(-image.height // factor)
    out = Image.new(image.mode, (width, height))
    rows = factor * max(1, REDUCE_ROWS // factor)  # whole blocks of rows
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height)))
        if image.mode.startswith("I;16"):
            size = (width, -(-strip.height // factor))
            reduced = strip.resize(size, Image.Resampling.BOX)
        else:
            reduced = strip.reduce(factor)
        out.paste(reduced, (0, top // factor))
    return out


def ink_square(
    paper: np.ndarray, margin: float = INK_MARGIN, side: int = INK_SIDE
) -> Image.Image | None:
    """Dark ink on light paper (uint8 H x W grey: a drawing, a scan) as the datasets' digits
    are: light ink on black, the paper's own brightness (its border's median) made black, the
    square around the ink with `margin` on each side, at most `side` square; None if there is
    no ink."""
    edge = np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])
    level = max(int(np.median(edge)), 1)
    ink = np.clip(level - paper.astype(np.int32), 0, None) * 255 // level
    drawn = Image.fromarray(ink.astype(np.uint8))
    box = Image.fromarray(((ink > INK_LEVEL) * 255).astype(np.uint8)).getbbox()
    if box is None:
        return None
    drawn = drawn.crop(box)
    full = max(drawn.size) * (1 + 2 * margin)
    scale = min(1.0, side / full)
    if scale < 1:  # a long thin stroke is not padded to a huge square
        size = (max(1, round(drawn.width * scale)), max(1, round(drawn.height * scale)))
        drawn = drawn.resize(size, Image.Resampling.BOX)
    full = round(full * scale)
    square = Image.new("L", (full, full), 0)
    square.paste(drawn, ((full - drawn.width) // 2, (full - drawn.height) // 2))
    return square


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(lab, srgb, "LAB", "RGB")


def open_image(
    source: str | Path | BinaryIO, max_pixels: int | None = MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Open and fully decode an image file (a path, which must be a regular file, opened
    without blocking; or an open binary file), or raise a one-line ZooError naming it
    (`name`, default the path).

    Only the common raster formats are read (`FORMATS`: no PostScript, no plugins that run
    tools), and only the first frame of an animation. An image of more than `max_pixels`
    pixels, or with a side over `MAX_SIDE`, is refused from its header, before it is decoded.
    """
    if isinstance(source, str | Path):  # a regular file only: a FIFO would hang the read
        try:
            file = open_regular(source)
        except FileNotFoundError:
            raise ZooError(f"{name or source}: no such file") from None
        except (OSError, ValueError):
            raise ZooError(f"{name or source}: not a regular file") from None
        with file:
            return open_image(file, max_pixels, name or str(source))
    name = name or str(source)
    try:
        with warnings.catch_warnings():  # our own cap, below, refuses such an image in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=FORMATS)
        if max_pixels and image.width * image.height > max_pixels:
            raise ZooError(
                f"{name}: {image.width}x{image.height} is too large "
                f"(more than {max_pixels:,} pixels)"
            )
        if max(image.size) > MAX_SIDE:  # PIL keeps a pointer per row: 50M rows cost 400 MB
            raise ZooError(
                f"{name}: {image.width}x{image.height} is too large (a side over {MAX_SIDE:,})"
            )
        image.load()
    except ZooError:
        raise
    except FileNotFoundError:
        raise ZooError(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise ZooError(f"{name}: not an image file (or not one of {', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:  # PIL's own cap: twice Image.MAX_IMAGE_PIXELS
        limit = max_pixels or 2 * Image.MAX_IMAGE_PIXELS
        raise ZooError(f"{name}: too large (more than {limit:,} pixels)") from None
    except Exception as error:  # PIL raises many types on damaged data; none is the user's to read
        cause = "truncated" if "truncated" in str(error) else "damaged or unsupported"
        raise ZooError(f"{name}: cannot read image ({cause} data)") from None
    return image


def as_image(item: Image.Image | np.ndarray | str | Path) -> Image.Image:
    """A PIL image from what a Python caller holds: a PIL image; an image file's path
    (`open_image`, bounded); or an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of uint8,
    or of floats in [0, 1]. Anything else is a one-line ZooError."""
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, str | Path):
        return open_image(item)
    if not isinstance(item, np.ndarray):
        raise ZooError(
            f"cannot classify a {type(item).__name__}: give a PIL image, an array or a path"
        )
    if item.ndim == 3 and item.shape[2] == 1:
        item = item[..., 0]
    if not (item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (3, 4))) or 0 in item.shape:
        raise ZooError(f"an image array is (H, W) or (H, W, 1, 3 or 4), not {item.shape}")
    if item.shape[0] * item.shape[1] > MAX_PIXELS:
        raise ZooError(
            f"an image array of {item.shape[0]}x{item.shape[1]} is over {MAX_PIXELS:,} pixels"
        )
    if item.dtype.kind == "f":
        if not (np.isfinite(item).all() and item.min() >= 0 and item.max() <= 1):
            raise ZooError("a float image array needs values in [0, 1]")
        item = (item * 255).round()
    elif item.dtype != np.uint8:
        raise ZooError(f"an image array is uint8, or floats in [0, 1], not {item.dtype}")
    return Image.fromarray(np.ascontiguousarray(item, dtype=np.uint8))
