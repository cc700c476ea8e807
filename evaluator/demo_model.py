"""A built-in embedding without learned weights, for demos and tests.

`ThumbnailEmbedding` shrinks each face to an 8x8 grayscale thumbnail and
removes its mean brightness, giving a 64-dimensional embedding. It compares
pixels, not identities, so its results show that the pipeline runs, not how
well a face model would do. Every output row depends on its own image only,
never on the rest of the batch, so results do not depend on the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["THUMBNAIL_SIZE", "ThumbnailEmbedding", "build_demo_model"]

THUMBNAIL_SIZE = 8


class ThumbnailEmbedding(torch.nn.Module):
    """An embedding of 8x8 grayscale thumbnails with their mean brightness removed."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed `float32` images (N, 3, H, W) as (N, 64)."""
        gray = images.mean(dim=1, keepdim=True)
        thumbnail = F.adaptive_avg_pool2d(gray, THUMBNAIL_SIZE).flatten(1)
        return thumbnail - thumbnail.mean(dim=1, keepdim=True)


def build_demo_model() -> ThumbnailEmbedding:
    """Build the demo model; `binconv evaluate evaluator.demo_model:build_demo_model` loads it."""
    return ThumbnailEmbedding()
