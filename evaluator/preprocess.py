"""Turning decoded images into model input: resizing, channel order, scaling and mirrors.

The work is split in two. DataLoader workers resize and transpose each image
and ship it as `uint8` (`prepare_image`), which is a quarter of the bytes of
`float32`. The embed step then scales a whole batch on the model's device and
adds the mirrors (`model_inputs`), so mirrors never cross a process boundary
or the host-to-device link.
"""

from __future__ import annotations

import logging
from functools import cache
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from binconv.errors import DatasetError

__all__ = [
    "SCALE_TABLE",
    "ModelInputs",
    "model_inputs",
    "prepare_image",
    "resize_short",
    "scale_images",
    "scale_with_table",
]

logger = logging.getLogger(__name__)

# The classic scaling `(x / 255 - 0.5) / 0.5` in float32 for every uint8 value,
# computed here with NumPy's IEEE division, which equals what PyTorch does on
# CPU tensors. Looking the values up on other devices keeps them bit-identical,
# because PyTorch's CUDA kernels divide by a Python scalar by multiplying with
# its reciprocal, which differs in the last bit for 111 of the 256 values.
_values = np.arange(256, dtype=np.float32)
SCALE_TABLE = torch.from_numpy(((_values / np.float32(255)) - np.float32(0.5)) / np.float32(0.5))
del _values


def resize_short(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HWC `uint8` image so that its shorter side is `size`, with bicubic interpolation.

    The output size follows MXNet's `mx.image.resize_short`, which the classic
    loader uses: the longer side becomes `size * long // short`, rounded
    down. MXNet passes its default `interp=2` straight to OpenCV's
    `cv::resize`, where 2 is `INTER_CUBIC`, so this function calls the same
    OpenCV function when `opencv-python-headless` is installed. Without it,
    PIL's bicubic filter is used, with a warning logged once. PIL's kernel has
    a = -0.5 where OpenCV's has a = -0.75, and PIL widens it when shrinking,
    so its pixels differ from the classic ones by a few levels.
    """
    height, width = image.shape[:2]
    if height > width:
        new_height, new_width = size * height // width, size
    else:
        new_height, new_width = size, size * width // height
    cv2 = _import_cv2()
    if cv2 is not None:
        return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(
        Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BICUBIC)
    )


@cache
def _import_cv2() -> ModuleType | None:
    try:
        import cv2
    except ImportError:
        logger.warning(
            "OpenCV is not installed, so images are resized with PIL's bicubic filter, whose "
            "pixels differ slightly from the classic (OpenCV) ones; install "
            "opencv-python-headless to match them"
        )
        return None
    return cv2


def prepare_image(image: np.ndarray, image_size: tuple[int, int], where: str) -> np.ndarray:
    """Resize a decoded HWC image to `image_size` if needed and return it as CHW `uint8`.

    An image of another size has its shorter side resized to the smaller of
    `image_size` (see `resize_short`). No crop follows, as in the classic
    loader, so the result must then match `image_size` exactly.

    Args:
        image: RGB `uint8` array of shape (height, width, 3).
        image_size: Model input size as (height, width).
        where: Shard, pair and slot of the image, used in error messages.

    Raises:
        DatasetError: The resized image does not have the model's input size.
    """
    if image.shape[:2] != image_size:
        original = image.shape[:2]
        image = resize_short(image, min(image_size))
        if image.shape[:2] != image_size:
            raise DatasetError(
                f"{where}: image of {original[1]}x{original[0]} pixels becomes "
                f"{image.shape[1]}x{image.shape[0]} after resizing its shorter side, but the "
                f"model input is {image_size[1]}x{image_size[0]} (width x height); pass the "
                "image size the dataset was made for"
            )
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def scale_images(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Map `uint8` pixels to `float32` `(x / 255 - 0.5) / 0.5`, on the images' device.

    On the CPU this is the classic arithmetic itself, done in place in `out`
    so that no temporary tensors are made. Elsewhere the values come from
    `SCALE_TABLE`.
    """
    if out is None:
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    if images.device.type == "cpu":
        out.copy_(images)
        return out.div_(255).sub_(0.5).div_(0.5)
    return scale_with_table(images, out)


def scale_with_table(images: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Write the `SCALE_TABLE` value of each `uint8` pixel of `images` into `out`, and return it."""
    table = SCALE_TABLE.to(images.device)
    torch.index_select(table, 0, images.reshape(-1).to(torch.int32), out=out.view(-1))
    return out


class ModelInputs:
    """Builds model input batches in one `float32` buffer that is reused from batch to batch.

    A fresh buffer per batch means allocating and freeing tens of megabytes at
    a time, and on the CPU glibc's allocator may keep such memory instead of
    returning it. With fresh buffers, a 6,000-pair evaluation with one
    DataLoader worker peaked at 1.2 GiB instead of 0.3 GiB in some runs. Each
    batch overwrites the previous one, so use a batch before building the next.
    """

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def build(self, images: torch.Tensor) -> torch.Tensor:
        """Scale N CHW `uint8` images and append their horizontal mirrors.

        Returns:
            A `float32` view of shape (2N, 3, H, W): the N scaled images in
            their order, then the N mirrors in the same order.
        """
        count = len(images)
        shape = (2 * count, *images.shape[1:])
        buffer = self._buffer
        if (
            buffer is None
            or buffer.device != images.device
            or buffer.shape[1:] != shape[1:]
            or len(buffer) < shape[0]
        ):
            buffer = torch.empty(shape, dtype=torch.float32, device=images.device)
            self._buffer = buffer
        out = buffer[: shape[0]]
        scale_images(images, out=out[:count])
        # Scaling acts on each pixel alone, so mirroring the uint8 images first
        # gives the same values and keeps the temporary four times smaller.
        scale_images(torch.flip(images, dims=(-1,)), out=out[count:])
        return out


def model_inputs(images: torch.Tensor) -> torch.Tensor:
    """Scale N CHW `uint8` images and append their mirrors, in a new (2N, 3, H, W) tensor."""
    return ModelInputs().build(images)
