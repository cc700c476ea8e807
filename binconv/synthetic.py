"""Generated face-like images and verification pairs, for the demo, tests and benchmarks.

The images are cartoon faces, not photographs: an identity fixes the face
shape, skin tone, hair, eye spacing and mouth, and each view of it shifts,
scales and relights the drawing and adds sensor-like noise. They exercise
the file formats and the data path, not a face model.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance

__all__ = ["FaceIdentity", "encode_image", "generate_pairs", "render_face"]


@dataclass(frozen=True)
class FaceIdentity:
    """The drawing parameters that stay the same across views of one person."""

    seed: int
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: tuple[int, int, int]
    face_width: float
    face_height: float
    eye_spacing: float
    eye_height: float
    mouth_width: float

    @classmethod
    def from_seed(cls, seed: int) -> FaceIdentity:
        """Return the identity numbered `seed`. Equal seeds give equal identities."""
        rng = random.Random(seed)
        tone = rng.randint(90, 235)
        return cls(
            seed=seed,
            skin=(tone, int(tone * rng.uniform(0.7, 0.85)), int(tone * rng.uniform(0.55, 0.7))),
            hair=(rng.randint(10, 120), rng.randint(5, 80), rng.randint(0, 60)),
            background=(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)),
            face_width=rng.uniform(0.52, 0.66),
            face_height=rng.uniform(0.70, 0.82),
            eye_spacing=rng.uniform(0.15, 0.22),
            eye_height=rng.uniform(0.40, 0.47),
            mouth_width=rng.uniform(0.14, 0.26),
        )


def render_face(
    identity: FaceIdentity, view: int, size: tuple[int, int] = (112, 112)
) -> Image.Image:
    """Draw view number `view` of `identity` as an RGB image of `size` (width, height)."""
    rng = random.Random(identity.seed * 7919 + view)
    width, height = size
    scale = rng.uniform(0.92, 1.08)
    cx = width * (0.5 + rng.uniform(-0.04, 0.04))
    cy = height * (0.53 + rng.uniform(-0.04, 0.04))
    fw, fh = width * identity.face_width * scale, height * identity.face_height * scale

    image = Image.new("RGB", size, identity.background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((cx - fw / 2, cy - fh / 2 - 6, cx + fw / 2, cy), fill=identity.hair)
    draw.ellipse((cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2), fill=identity.skin)
    eye_y = cy - fh / 2 + fh * identity.eye_height
    for side in (-1, 1):
        ex = cx + side * width * identity.eye_spacing * scale
        draw.ellipse((ex - 5, eye_y - 3, ex + 5, eye_y + 3), fill=(250, 250, 250))
        draw.ellipse((ex - 2, eye_y - 2, ex + 2, eye_y + 2), fill=(30, 20, 10))
    draw.line((cx, eye_y + 4, cx - 2, eye_y + fh * 0.18), fill=(90, 60, 50), width=2)
    mouth_half = width * identity.mouth_width * scale / 2
    mouth_y = cy + fh * 0.25
    draw.arc(
        (cx - mouth_half, mouth_y - 6, cx + mouth_half, mouth_y + 6),
        10,
        170,
        fill=(150, 40, 40),
        width=2,
    )

    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
    # Seeded noise, because Image.effect_noise draws from an unseeded C generator.
    noise = Image.frombytes("L", size, rng.randbytes(width * height)).convert("RGB")
    return Image.blend(image, noise, alpha=rng.uniform(0.05, 0.12))


def encode_image(image: Image.Image, image_format: str = "JPEG", quality: int = 90) -> bytes:
    """Encode `image` in `image_format` (a Pillow format name) and return the bytes."""
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=image_format)
    return buffer.getvalue()


def generate_pairs(
    num_pairs: int, seed: int = 0, size: tuple[int, int] = (112, 112), quality: int = 90
) -> Iterator[tuple[bytes, bytes, bool]]:
    """Yield `num_pairs` pairs of JPEG faces and whether they show the same identity.

    Even pairs are two views of one identity and odd pairs show two different
    identities, so half of the pairs are positive.
    """
    for pair in range(num_pairs):
        first = FaceIdentity.from_seed(seed * 1_000_003 + 2 * pair)
        same = pair % 2 == 0
        second = first if same else FaceIdentity.from_seed(seed * 1_000_003 + 2 * pair + 1)
        yield (
            encode_image(render_face(first, 0, size), quality=quality),
            encode_image(render_face(second, 1, size), quality=quality),
            same,
        )
