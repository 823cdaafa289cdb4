"""Robust image reading: every file becomes a ``uint8`` tensor (C, H, W), or a clear DataError.

Photos and scans come in many shapes; this module turns each into the one form the rest of
cvpipe expects, and says exactly which file failed and why:

- extensions are matched case-insensitively (``IMG_001.JPG`` is an image);
- the EXIF orientation tag is applied, so a phone photo is upright as a viewer shows it;
- grey, bilevel, palette, CMYK and YCbCr images are converted with Pillow's colour conversions;
- transparency (RGBA, LA, a palette or grey image with a transparent colour) is composited on
  a **white** background, as an image viewer shows it on a white page. Dropping the alpha
  channel instead would expose whatever colour happens to be stored under transparent pixels;
- 16-bit images are scaled to 8 bits (``round(v / 257)``), not clipped: Pillow's own
  ``convert("L")`` clips every value above 255 to white;
- images larger than ``PIL.Image.MAX_IMAGE_PIXELS`` are refused as decompression bombs (an
  error, where Pillow alone only warns below twice the limit);
- a truncated, empty or non-image file raises :class:`~cvpipe.errors.DataError` naming it.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cvpipe.errors import DataError

PathLike = Union[str, Path]

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
)

MODES = ("RGB", "L")

# Pillow reports an over-limit image through the global warnings machinery, and
# `warnings.catch_warnings` swaps global state: serialise the (cheap, header-only) open so
# that checking files from a thread pool cannot leave the filters changed.
_OPEN_LOCK = threading.Lock()


class ImageReadError(DataError):
    """An image that cannot be read; keeps the file and the short reason for reports."""

    def __init__(self, path: PathLike, reason: str):
        super().__init__(f"image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_file(path: PathLike) -> bool:
    """True when the file name ends with one of :data:`IMAGE_EXTENSIONS` (any letter case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: PathLike, mode: str = "RGB") -> torch.Tensor:
    """Decode an image file into a ``uint8`` tensor.

    Args:
        path: the image file.
        mode: ``"RGB"`` -> (3, H, W) or ``"L"`` (grey, ITU-R 601-2 luma) -> (1, H, W).

    Raises:
        DataError: naming the file, when it cannot be read (missing, empty, truncated, not an
            image, a decompression bomb, or a pixel format with no faithful 8-bit form).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    image = _decode(path, path, mode, draft=False)
    tensor = torch.from_numpy(np.array(image))  # (H, W) or (H, W, C), a writable copy
    if tensor.ndim == 2:
        return tensor.unsqueeze(0)
    return tensor.permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class ImageInfo:
    """What one pass over a file found: ``problem`` is None when it decodes fully."""

    problem: Optional[str]
    width: int = 0
    height: int = 0
    mode: str = ""


def check_image(path: PathLike) -> Optional[str]:
    """None when ``path`` decodes completely, else a short reason (``"truncated file"``, ...)."""
    return inspect_image(path).problem


def inspect_image(source: Union[PathLike, BinaryIO], name: Optional[PathLike] = None) -> ImageInfo:
    """Decode ``source`` once (a path or an open binary file) and report its size or problem.

    JPEGs are decoded at reduced scale (libjpeg's DCT scaling): every byte of the compressed
    stream is still read, so truncation is caught, at a fraction of the full decode's cost.
    """
    name = name if name is not None else (source if isinstance(source, (str, Path)) else "<stream>")
    try:
        with _open(source, name) as image:
            width, height, file_mode = image.width, image.height, image.mode
            if _orientation(image, name) in (5, 6, 7, 8):  # shown rotated by 90 degrees
                width, height = height, width
            _to_mode(_load(image, name, draft=True), name, "RGB")
    except ImageReadError as e:
        return ImageInfo(problem=e.reason)
    return ImageInfo(problem=None, width=width, height=height, mode=file_mode)


def truncated_images_allowed() -> bool:
    """True when someone set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``: Pillow would then pad
    truncated files with grey instead of failing, and cvpipe refuses to read anything."""
    return bool(ImageFile.LOAD_TRUNCATED_IMAGES)


TRUNCATED_ALLOWED_MESSAGE = (
    "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set to True (by your code or a library it imports), "
    "so truncated images would be padded silently; set it back to False"
)


# --------------------------------------------------------------------------- internals

_ORIENTATION = 0x0112  # EXIF tag


def _decode(source, name, mode: str, draft: bool) -> Image.Image:
    with _open(source, name) as image:
        return _to_mode(_load(image, name, draft), name, mode)


def _open(source, name) -> Image.Image:
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except FileNotFoundError:
        raise ImageReadError(name, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(name, "is a folder, not an image") from None
    except PermissionError:
        raise ImageReadError(name, "permission denied") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageReadError(name, _bomb_reason()) from None
    except UnidentifiedImageError:
        raise ImageReadError(name, _unidentified_reason(source)) from None
    except Exception as e:  # a malformed header can trip any parser error; none may escape
        if "truncated" in str(e).lower():  # the file ends inside its header
            raise ImageReadError(name, "truncated file") from None
        raise ImageReadError(name, f"cannot be opened ({type(e).__name__}: {e})") from None


def _load(image: Image.Image, name, draft: bool) -> Image.Image:
    """Decode the pixels (raising on a truncated stream) and apply the EXIF orientation."""
    if truncated_images_allowed():  # cvpipe never repairs silently
        raise ImageReadError(name, TRUNCATED_ALLOWED_MESSAGE)
    if draft and image.format == "JPEG":
        image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    try:
        image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageReadError(name, _bomb_reason()) from None
    except OSError as e:
        text = str(e)
        reason = "truncated file" if "truncated" in text else f"corrupt image data ({text})"
        raise ImageReadError(name, reason) from None
    except Exception as e:  # a malformed file can trip any decoder error; none may escape
        raise ImageReadError(name, f"corrupt image data ({type(e).__name__}: {e})") from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception as e:  # EXIF is untrusted metadata (in PNG it may follow the pixels)
        raise _exif_error(name, e) from None


def _orientation(image: Image.Image, name) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except Exception as e:
        raise _exif_error(name, e) from None


def _exif_error(name, error: Exception) -> ImageReadError:
    if "truncated" in str(error):
        return ImageReadError(name, "truncated file")
    return ImageReadError(name, f"unreadable EXIF data ({type(error).__name__}: {error})")


def _to_mode(image: Image.Image, name, mode: str) -> Image.Image:
    """Convert any Pillow mode to ``mode`` ("RGB" or "L") without clipping or dropping alpha."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = _sixteen_bit_to_grey(image, name)
    elif image.mode == "F":
        image = _float_to_grey(image, name)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode == mode:
        return image
    try:
        if mode == "L" and image.mode not in ("RGB", "RGBA", "1", "P"):
            image = image.convert("RGB")  # e.g. CMYK/YCbCr: via RGB so the luma weights apply
        return image.convert(mode)
    except (ValueError, OSError) as e:
        raise ImageReadError(name, f"pixel format {image.mode} cannot be converted to {mode} ({e})") from None


def _sixteen_bit_to_grey(image: Image.Image, name) -> Image.Image:
    values = np.asarray(image)
    if image.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        raise ImageReadError(name, "32-bit integer pixels outside 0..65535; save it as an 8- or 16-bit image")
    scaled = (values.astype(np.uint32) * 255 + 32767) // 65535  # round(v / 257)
    return Image.fromarray(scaled.astype(np.uint8))


def _float_to_grey(image: Image.Image, name) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    if values.size and (not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0):
        raise ImageReadError(name, "floating-point pixels outside [0, 1]; save it as an 8- or 16-bit image")
    return Image.fromarray(np.rint(values * 255.0).astype(np.uint8))


def _bomb_reason() -> str:
    return (
        f"larger than {Image.MAX_IMAGE_PIXELS} pixels, refused as a possible decompression bomb "
        "(raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)"
    )


def _unidentified_reason(source) -> str:
    if isinstance(source, (str, Path)):
        try:
            if Path(source).stat().st_size == 0:
                return "empty file"
        except OSError:
            pass
    return "not an image Pillow can identify"

