"""Image I/O: anything image-like in, float32 [H, W, 3] RGB in [0, 1] out; atomic saving.

No TensorFlow here (the CLI checks inputs before TensorFlow loads); resizing is
`tfnst.resize`."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tfnst.atomic import atomic_write
from tfnst.errors import TfnstError

log = logging.getLogger(__name__)

# Refuse images above this many pixels before decoding them (decompression bombs);
# callers that really mean it raise it with `max_pixels=`.
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit
SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode to float RGB in [0, 1]: high-bit-depth and float modes keep their range."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(img, dtype=np.float32) / 65535.0
    elif img.mode == "I":
        a = np.asarray(img, dtype=np.float32)
        gray = a / (65535.0 if a.max() > 255 else 255.0)
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float32)
        gray = a if np.nanmax(a) <= 1.0 else a / 255.0
    else:
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            # Composite transparency on white rather than on whatever the hidden colour is.
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    gray = np.nan_to_num(np.clip(gray, 0.0, 1.0))
    return np.repeat(gray[..., None], 3, axis=-1)


def read_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to float32 [H, W, 3] RGB in [0, 1].

    EXIF orientation is applied; grayscale, palette, RGBA, CMYK and 16-bit images are
    converted; the first frame of an animation is used. Anything unreadable raises
    `TfnstError` with a one-line reason.
    """
    path = Path(path)
    if path.is_dir():
        raise TfnstError(f"{path} is a directory, not an image")
    if not path.exists():
        raise TfnstError(f"{path}: no such file")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise Image.DecompressionBombError("too many pixels")
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    log.warning("tfnst: %s has %d frames; using the first", path, frames)
                img.seek(0)
                img = ImageOps.exif_transpose(img)
                array = _pil_to_array(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TfnstError(
            f"{path} is over the limit of {max_pixels} pixels (a decompression "
            "bomb?); raise it with max_pixels / --max-pixels"
        ) from None
    except UnidentifiedImageError as e:
        raise TfnstError(f"{path} is not a readable image ({_first_line(e)})") from None
    except PermissionError:
        raise TfnstError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        if isinstance(e, TfnstError):
            raise
        raise TfnstError(f"{path} is damaged or truncated ({_first_line(e)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if min(array.shape[:2]) < 1:
        raise TfnstError(f"{path} is empty")
    return array


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def to_array(image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A path, PIL image, numpy array or tensor to float32 [H, W, 3] RGB in [0, 1].

    Integer arrays are taken as 0-255 (uint16 as 0-65535); float arrays as [0, 1].
    A leading batch dimension of 1 is dropped.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        return _pil_to_array(ImageOps.exif_transpose(image))
    if hasattr(image, "numpy"):  # tf.Tensor, keras tensors
        image = image.numpy()
    a = np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise TfnstError(f"expected an image of shape [H, W, 1|3|4], got {tuple(np.shape(image))}")
    if a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == bool:
        a = a.astype(np.float32)
    else:
        raise TfnstError(f"unsupported image dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise TfnstError("image contains NaN or infinite values")
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:  # composite on white, as for files
        a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
    return np.clip(a, 0.0, 1.0)


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before minutes of optimization) if ``path`` cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise TfnstError(f"{path}: unsupported output format; use one of {', '.join(sorted(SAVE_FORMATS))}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TfnstError(f"{path}: directory {parent} does not exist")
    if path.is_dir():
        raise TfnstError(f"{path} is a directory")
    if not os.access(parent, os.W_OK):
        raise TfnstError(f"{path}: directory {parent} is not writable")
    return path


def save_image(image, path: str | os.PathLike) -> Path:
    """Write an image atomically: a temporary file in the same directory, then a rename.

    A reader never sees a half-written file, and an existing file is replaced only
    by a complete one.
    """
    path = check_output_path(path)
    array = to_array(image)
    pil = Image.fromarray(np.round(array * 255.0).astype(np.uint8), mode="RGB")
    return atomic_write(path, lambda f: pil.save(f, format=SAVE_FORMATS[path.suffix.lower()]))
