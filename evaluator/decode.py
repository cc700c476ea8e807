"""Decoding encoded images to RGB pixel arrays, with libjpeg-turbo called directly for JPEG."""

from __future__ import annotations

import io

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from binconv.errors import DatasetError
from binconv.format import detect_image_type

__all__ = ["decode_image", "decode_with_pil"]

# JPEG kinds that simplejpeg decodes to the same pixels as PIL, both on top of
# libjpeg-turbo with its default (accurate integer) DCT and fancy upsampling.
# tests/evaluator/test_decode.py checks every kind listed here. CMYK and YCCK
# JPEGs are not listed because PIL inverts Adobe CMYK and then converts to RGB
# by a formula of its own, which gives other pixels than libjpeg-turbo's.
_SIMPLEJPEG_KINDS = {
    ("YCbCr", "444"),
    ("YCbCr", "422"),
    ("YCbCr", "420"),
    ("Gray", "Gray"),
}


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode an encoded image to an RGB `uint8` array of shape (height, width, 3).

    Baseline and progressive JPEGs of the kinds in `_SIMPLEJPEG_KINDS` go to
    simplejpeg, which is about twice as fast as PIL and gives the same pixels.
    Every other JPEG, every other format, and any JPEG that simplejpeg
    rejects (it also rejects recoverable damage that PIL tolerates) go to PIL.
    Grayscale becomes three equal channels.

    Args:
        data: The encoded image.
        where: Shard, pair and slot of the image, used in error messages.

    Raises:
        DatasetError: Neither decoder can read the image.
    """
    if detect_image_type(data) == "jpg":
        try:
            _, _, colorspace, subsampling = simplejpeg.decode_jpeg_header(data)
            if (colorspace, subsampling) in _SIMPLEJPEG_KINDS:
                return simplejpeg.decode_jpeg(data, colorspace="RGB")
        except ValueError:
            pass  # PIL decides: it either decodes the image or raises a clear error
    return decode_with_pil(data, where)


def decode_with_pil(data: bytes, where: str) -> np.ndarray:
    """Decode any image format that PIL reads to an RGB `uint8` array (height, width, 3).

    Raises:
        DatasetError: PIL cannot read the image.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        # Pillow's message for unknown data names the BytesIO object's address,
        # which is of no use to the user.
        reason = "not a known image format" if isinstance(exc, UnidentifiedImageError) else exc
        raise DatasetError(
            f"{where}: cannot decode the image ({reason}); reconvert the dataset from its "
            "source, or check the source image"
        ) from None
