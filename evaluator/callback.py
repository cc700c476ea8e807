"""A drop-in replacement for the classic `CallBackVerification` of DDP face-recognition training.

The classic callback decodes every validation set into memory on rank 0 and
embeds it there while the other ranks wait. `VerificationCallback` is called
on every rank instead: each rank streams and embeds its own part of each
dataset, the embeddings are gathered, and every rank computes the same
figures. Rank 0 logs them in the classic format and writes them to
TensorBoard.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from binconv.dataset_reader import DatasetLocation
from binconv.dataset_writer import read_manifest_if_any
from binconv.format import manifest_name
from binconv.storage import join_url

from .distributed import WorldInfo, agree_on_failure, all_gather_tensor, current_world
from .embed import eval_mode, model_device
from .evaluate import EvaluationResult
from .evaluate_distributed import evaluate_distributed

__all__ = ["VerificationCallback", "unwrap_model"]

logger = logging.getLogger(__name__)


class ScalarWriter(Protocol):
    """The method of a TensorBoard `SummaryWriter` that the callback calls."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        """Record `scalar_value` under `tag` at `global_step`."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside `DistributedDataParallel` or `DataParallel` wrappers.

    The DDP wrapper's forward takes part in collectives (buffer broadcast, and
    gradient-sync bookkeeping), so calling it on some ranks only, or a
    different number of times per rank, can hang training.
    """
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class VerificationCallback:
    """Evaluate a backbone on converted verification sets, on every rank of a DDP job.

    Call it as `callback(global_step, backbone)` on every rank, the same
    number of times and with the same targets, as the classic callback is
    called. Without `torch.distributed` initialised it evaluates in this
    process alone.

    Args:
        val_targets: Dataset names, such as `["lfw", "cfp_fp", "agedb_30"]`.
            Dataset `NAME` is read from `rec_prefix/NAME/NAME.json`. A name
            that is not found on every rank is logged once as a warning and
            skipped.
        rec_prefix: Folder or URL (`s3://bucket/val`, ...) that contains one
            folder per converted dataset.
        summary_writer: A TensorBoard `SummaryWriter`, or None. Rank 0 adds the
            mean fold accuracy as a scalar tagged with the dataset name.
        image_size: Model input size `(height, width)`.
        batch_size: Pairs per batch on each rank.
        num_workers: DataLoader workers per rank; the same on every rank.
        device: Device of the model's inputs; by default the device of the
            backbone's first parameter, else the CPU.
        autocast: Run the model under `torch.autocast` on its device.

    Raises:
        DistributedEvaluationError: A dataset manifest is invalid on some
            rank.
        ManifestError: Without a process group, a dataset manifest is invalid.
        ValueError: The ranks passed different `val_targets` (raised on
            every rank).
    """

    def __init__(
        self,
        val_targets: Sequence[str],
        rec_prefix: str,
        summary_writer: ScalarWriter | None = None,
        image_size: tuple[int, int] = (112, 112),
        *,
        batch_size: int = 64,
        num_workers: int = 2,
        device: torch.device | str | None = None,
        autocast: bool = False,
    ) -> None:
        self.rec_prefix = rec_prefix
        self.summary_writer = summary_writer
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.autocast = autocast
        self.world = current_world()
        self.datasets = _find_datasets(list(val_targets), rec_prefix, self.world)
        self.highest_accuracy = {name: 0.0 for name in self.datasets}

    def __call__(self, global_step: int, backbone: nn.Module) -> dict[str, EvaluationResult]:
        """Evaluate `backbone` on every dataset found; return the results by dataset name.

        Every rank returns the same results. Rank 0 logs the classic lines
        and writes TensorBoard scalars.

        Raises:
            DistributedEvaluationError: Evaluation raised on some rank, such
                as for a bad shard or an exception in the model; every rank
                raises it.
        """
        model = unwrap_model(backbone)
        device = self.device if self.device is not None else model_device(model)
        results = {}
        with eval_mode(model), torch.inference_mode():
            for name, location in self.datasets.items():
                results[name] = evaluate_distributed(
                    model,
                    location,
                    batch_size=self.batch_size,
                    num_workers=self.num_workers,
                    device=device,
                    image_size=self.image_size,
                    autocast=self.autocast,
                    world=self.world,
                )
                self._report(name, global_step, results[name])
        return results

    def _report(self, name: str, global_step: int, result: EvaluationResult) -> None:
        self.highest_accuracy[name] = max(self.highest_accuracy[name], result.accuracy)
        if self.world.rank != 0:
            return
        logger.info("[%s][%d]XNorm: %f", name, global_step, result.xnorm)
        logger.info(
            "[%s][%d]Accuracy-Flip: %1.5f+-%1.5f",
            name,
            global_step,
            result.accuracy,
            result.accuracy_std,
        )
        logger.info(
            "[%s][%d]Accuracy-Highest: %1.5f", name, global_step, self.highest_accuracy[name]
        )
        if self.summary_writer is not None:
            self.summary_writer.add_scalar(name, result.accuracy, global_step)


def _find_datasets(names: list[str], root: str, world: WorldInfo) -> dict[str, DatasetLocation]:
    """Locate each named dataset under `root`; keep those that every rank finds.

    Raises:
        DistributedEvaluationError: A manifest is invalid or cannot be read
            on some rank.
        ManifestError: Without a process group, a manifest is invalid.
        ValueError: The ranks passed different names.
    """
    try:
        locations = {name: _locate(root, name) for name in names}
    except Exception as exc:
        # Such as an invalid manifest, or storage that rejects the
        # credentials. The other ranks go on to the agreement step, so this
        # rank joins them there and raises from it.
        agree_on_failure(exc, world)
        raise
    agree_on_failure(None, world)

    # Ranks that passed different names would evaluate different datasets
    # and wait for each other in mismatched collectives, so they raise here.
    fingerprint = torch.tensor([len(names), zlib.crc32("\0".join(names).encode())])
    fingerprints = [row.cpu() for row in all_gather_tensor(fingerprint, world)]
    differing = [
        rank for rank, row in enumerate(fingerprints) if not torch.equal(row, fingerprints[0])
    ]
    if differing:
        raise ValueError(
            f"val_targets differ between ranks: ranks {differing} passed other names than "
            f"rank 0; pass the same list on every rank (rank {world.rank} has {names})"
        )

    found = torch.tensor([locations[name] is not None for name in names], dtype=torch.int64)
    found_per_rank = [row.cpu() for row in all_gather_tensor(found, world)] if names else []
    datasets = {}
    for position, name in enumerate(names):
        missing_on = [rank for rank, row in enumerate(found_per_rank) if not row[position]]
        location = locations[name]
        if not missing_on and location is not None:
            datasets[name] = location
        elif world.rank == 0:
            logger.warning("%s", _missing_message(root, name, missing_on, world.world_size))
    return datasets


def _locate(root: str, name: str) -> DatasetLocation | None:
    dataset_dir = join_url(root, name)
    manifest = read_manifest_if_any(dataset_dir, name)
    if manifest is None:
        return None
    return DatasetLocation(dataset_dir, join_url(dataset_dir, manifest_name(name)), manifest)


def _missing_message(root: str, name: str, missing_on: list[int], world_size: int) -> str:
    expected = join_url(join_url(root, name), manifest_name(name))
    where = "" if len(missing_on) == world_size else f" on ranks {missing_on}"
    return (
        f"validation target {name!r} not found{where} (expected {expected}); "
        f"it is skipped in every evaluation. Convert it with 'binconv convert' "
        f"into {root}, or remove it from val_targets"
    )
