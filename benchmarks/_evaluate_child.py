"""One benchmark run of bench_evaluate.py, in its own process.

Usage: python _evaluate_child.py classic|binconv cnn|thumbnail BIN DATASET WORKERS

Prints one JSON line: seconds to the first result, the accuracy, and for the
classic approach the seconds spent decoding before the first embedding.
"""

from __future__ import annotations

import json
import pickle
import sys
import time

import cv2
import numpy as np
import torch

from evaluator.demo_model import ThumbnailEmbedding
from evaluator.evaluate import evaluate
from evaluator.metrics import compute_metrics, pair_distances, pair_embeddings, xnorm

# Images per forward pass in the classic approach: 128 originals, then 128
# mirrors, the same 256 images per step as binconv's 64 pairs per batch.
CLASSIC_BATCH_IMAGES = 128


def small_cnn() -> torch.nn.Module:
    """Four strided 3x3 convolutions (16 to 128 channels) with batch norm, pooling, a 128-d head."""

    def block(inputs: int, outputs: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Conv2d(inputs, outputs, 3, stride=2, padding=1, bias=False),
            torch.nn.BatchNorm2d(outputs),
            torch.nn.ReLU(inplace=True),
        )

    torch.manual_seed(0)
    return torch.nn.Sequential(
        block(3, 16),
        block(16, 32),
        block(32, 64),
        block(64, 128),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 128),
    ).eval()


def run_classic(model: torch.nn.Module, bin_path: str) -> tuple[float, float]:
    """Decode the whole .bin into float32 tensors and mirrors and embed them.

    Returns:
        The accuracy, and the seconds spent reading and decoding before the
        first image is embedded.
    """
    start = time.perf_counter()
    with open(bin_path, "rb") as f:
        images, issame = pickle.load(f, encoding="bytes")
    count = len(images)
    data = [torch.empty((count, 3, 112, 112)) for _ in range(2)]
    for index, encoded in enumerate(images):
        bgr = cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"image {index} of {bin_path} cannot be decoded")
        # A contiguous copy first, as MXNet's transpose makes one: copying a
        # strided view into the float tensor is about seven times slower.
        chw = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
        data[0][index] = torch.from_numpy(chw)
        data[1][index] = torch.from_numpy(np.ascontiguousarray(chw[:, :, ::-1]))

    decoded_at = time.perf_counter()
    embeddings = []
    with torch.inference_mode():
        for tensor in data:
            outputs = [
                model(((tensor[start : start + CLASSIC_BATCH_IMAGES] / 255) - 0.5) / 0.5)
                for start in range(0, count, CLASSIC_BATCH_IMAGES)
            ]
            embeddings.append(torch.cat(outputs).numpy())
    emb, emb_flip = embeddings
    xnorm(emb, emb_flip)
    distances = pair_distances(pair_embeddings(emb, emb_flip))
    return compute_metrics(distances, np.asarray(issame)).accuracy, decoded_at - start


def main() -> None:
    approach, model_name, bin_path, dataset_dir, workers = sys.argv[1:6]
    model = small_cnn() if model_name == "cnn" else ThumbnailEmbedding()
    start = time.perf_counter()
    decode_seconds = 0.0
    if approach == "classic":
        accuracy, decode_seconds = run_classic(model, bin_path)
    else:
        accuracy = evaluate(model, dataset_dir, num_workers=int(workers)).accuracy
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "accuracy": accuracy, "decode_seconds": decode_seconds}))


if __name__ == "__main__":
    main()
