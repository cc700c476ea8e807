"""Small models with seeded weights for the model loading tests and the CLI tests."""

from __future__ import annotations

import torch


class TinyCNN(torch.nn.Module):
    """Two strided convolutions, global average pooling and a linear layer to 16 dimensions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1)
        self.norm = torch.nn.BatchNorm2d(16)
        self.head = torch.nn.Linear(16, 16)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(images))
        features = torch.relu(self.norm(self.conv2(features)))
        return self.head(features.mean(dim=(2, 3)))


def build_tiny_cnn() -> TinyCNN:
    """Build a TinyCNN with weights fixed by seed 0."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TinyCNN()


def build_not_a_module() -> str:
    """A factory that returns something other than a module, for error tests."""
    return "not a model"
