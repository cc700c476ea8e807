"""`evaluate_distributed`: one dataset evaluated by all ranks of a process group together."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from binconv.dataset_reader import DatasetLocation, locate_dataset
from binconv.manifest import Manifest

from .dataset import DEFAULT_BATCH_SIZE, PairDataset, PairLoader
from .distributed import WorldInfo, agree_on_failure, current_world
from .embed import EmbeddedPairs, Model, embed_pairs, model_device
from .evaluate import EvaluationResult, EvaluationTiming, compute_result
from .gather import gather_pairs

__all__ = ["evaluate_distributed"]


def evaluate_distributed(
    model: Model,
    source: str | DatasetLocation,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 2,
    device: torch.device | str | None = None,
    image_size: Sequence[int] = (112, 112),
    autocast: bool = False,
    n_folds: int = 10,
    world: WorldInfo | None = None,
) -> EvaluationResult:
    """Evaluate `model` on a converted dataset, each rank embedding its own part of the pairs.

    Call it on every rank with the same arguments. Each rank reads about
    1/W of the pairs (its DataLoader workers split them again), embeds them,
    and the embeddings are gathered, so every rank returns the same result.
    That result equals `evaluator.evaluate` in one process for a model whose
    output for an image does not depend on the rest of its batch. Without
    `torch.distributed` initialised this evaluates the whole dataset here.

    Args:
        model: A `torch.nn.Module` (not its DDP wrapper) or callable from
            `float32` images (N, 3, H, W) to embeddings (N, d).
        source: A manifest or dataset folder, as a local path or fsspec URL,
            or a dataset located with `locate_dataset`.
        batch_size: Pairs per batch on each rank.
        num_workers: DataLoader workers per rank; it must be the same on
            every rank, because it decides which pairs each worker reads.
        device: Device to run the model on; default the model's device.
        image_size: Model input size as (height, width).
        autocast: Whether to run the model under `torch.autocast`.
        n_folds: Number of folds.
        world: The process group, by default `current_world()`.

    Raises:
        DistributedEvaluationError: With a process group, on every rank,
            when any rank failed to read, decode or embed its part, or the
            gathered pairs failed the exactly-once check or the metrics.
            The message is that of the lowest failing rank.
        BinconvError: Without a process group, the error that `evaluate`
            raises in the same case.
    """
    world = world or current_world()
    start = time.perf_counter()
    try:
        manifest, local = _embed_local_part(
            model, source, batch_size, num_workers, device, image_size, autocast, world
        )
    except Exception as exc:
        # The other ranks go on to this agreement step, so this rank joins
        # them there instead of raising at once, and raises from it.
        agree_on_failure(exc, world)
        raise
    agree_on_failure(None, world)

    gathered = gather_pairs(local, world)
    del local
    embedded_at = time.perf_counter()
    # compute_result is deterministic, so the ranks normally all return or
    # all raise. Agreeing anyway keeps them in step if their manifests differ
    # (a dataset converted again during training, say).
    try:
        embedding_norm, metrics = compute_result(gathered.embedded, manifest, n_folds)
    except Exception as exc:
        agree_on_failure(exc, world)
        raise
    agree_on_failure(None, world)

    end = time.perf_counter()
    timing = EvaluationTiming(embedded_at - start, end - embedded_at, end - start)
    return EvaluationResult.from_metrics(manifest.name, embedding_norm, metrics, timing)


def _embed_local_part(
    model: Model,
    source: str | DatasetLocation,
    batch_size: int,
    num_workers: int,
    device: torch.device | str | None,
    image_size: Sequence[int],
    autocast: bool,
    world: WorldInfo,
) -> tuple[Manifest, EmbeddedPairs]:
    location = locate_dataset(source) if isinstance(source, str) else source
    dataset = PairDataset(
        location,
        batch_size=batch_size,
        image_size=image_size,
        rank=world.rank,
        world_size=world.world_size,
    )
    run_device = torch.device(device) if device is not None else model_device(model)
    loader = PairLoader(dataset, num_workers=num_workers, pin_memory=run_device.type == "cuda")
    embedded = embed_pairs(
        model,
        loader,
        device=run_device,
        autocast=autocast,
        expected_pairs=-(-location.manifest.num_pairs // world.world_size),
    )
    return location.manifest, embedded
