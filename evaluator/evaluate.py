"""`evaluate`: the whole evaluation of one model on one converted dataset, in one process."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from binconv.dataset_reader import DatasetLocation
from binconv.errors import DatasetError
from binconv.manifest import Manifest

from .coverage import check_exactly_once
from .dataset import DEFAULT_BATCH_SIZE, PairBatch, PairDataset, PairLoader
from .embed import EmbeddedPairs, Model, embed_pairs, model_device
from .metrics import VerificationMetrics, compute_metrics, pair_distances, pair_embeddings, xnorm

__all__ = ["EvaluationResult", "EvaluationTiming", "compute_result", "evaluate"]


@dataclass(frozen=True)
class EvaluationTiming:
    """Wall time of the steps of one evaluation, in seconds.

    Attributes:
        embed_seconds: Reading, decoding and embedding all pairs.
        metrics_seconds: The exactly-once check, XNorm and the metrics.
        total_seconds: The whole call, from opening the dataset to the result.
    """

    embed_seconds: float
    metrics_seconds: float
    total_seconds: float


@dataclass(frozen=True)
class EvaluationResult:
    """The verification result of one model on one dataset.

    The metric fields are those of `evaluator.metrics.VerificationMetrics`;
    docs/evaluation.md defines each. NaN marks a metric the dataset leaves
    undefined, such as VAL on a set without negative pairs.

    Attributes:
        dataset: Dataset name from the manifest (`lfw`, `cfp_fp`, ...).
        num_pairs: Number of pairs evaluated.
        num_positive: Pairs of the same person.
        num_negative: Pairs of different people.
        accuracy: Mean of the fold accuracies, the classic "Accuracy-Flip".
        accuracy_std: Population standard deviation of the fold accuracies.
        fold_accuracies: Accuracy on each held-out fold.
        fold_thresholds: Distance threshold chosen on the other folds, per fold.
        xnorm: Mean L2 norm of all raw embeddings, mirrors included.
        val: Mean VAL at FAR=1e-3 over the folds.
        val_std: Population standard deviation of the fold VALs.
        far: Mean FAR at the VAL thresholds.
        tar_at_far: TAR over all pairs at FAR 1e-4, 1e-3, 1e-2 and 1e-1.
        auc: Area under the ROC curve.
        eer: Equal error rate.
        timing: Wall time of the steps.
        roc_fpr: Mean FPR over the folds at each accuracy threshold, for plots.
        roc_tpr: Mean TPR over the folds at each accuracy threshold, for plots.
    """

    dataset: str
    num_pairs: int
    num_positive: int
    num_negative: int
    accuracy: float
    accuracy_std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    xnorm: float
    val: float
    val_std: float
    far: float
    tar_at_far: dict[float, float]
    auc: float
    eer: float
    timing: EvaluationTiming
    roc_fpr: np.ndarray = field(repr=False, compare=False)
    roc_tpr: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def from_metrics(
        cls, dataset: str, xnorm: float, metrics: VerificationMetrics, timing: EvaluationTiming
    ) -> EvaluationResult:
        """Combine the metrics of a dataset with its XNorm and timing."""
        names = {item.name for item in dataclasses.fields(cls)}
        shared = {
            item.name: getattr(metrics, item.name)
            for item in dataclasses.fields(metrics)
            if item.name in names
        }
        return cls(dataset=dataset, xnorm=xnorm, timing=timing, **shared)

    def to_dict(self, include_roc: bool = False) -> dict[str, Any]:
        """Convert to JSON-ready values: NaN becomes None and FAR keys become strings like "0.001".

        Args:
            include_roc: Whether to include the ROC curve arrays.
        """
        result: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name in ("roc_fpr", "roc_tpr") and not include_roc:
                continue
            result[item.name] = _to_json_value(getattr(self, item.name))
        return result


def _to_json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _to_json_value(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {f"{key:g}": _to_json_value(item) for key, item in value.items()}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_to_json_value(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def evaluate(
    model: Model,
    source: str | DatasetLocation,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 2,
    device: torch.device | str | None = None,
    image_size: Sequence[int] = (112, 112),
    autocast: bool = False,
    n_folds: int = 10,
    check_sha256: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Evaluate `model` on every pair of a converted dataset with the classic 10-fold protocol.

    This process reads the whole dataset, also when `torch.distributed` is
    initialised. The model runs in eval mode under `torch.inference_mode` and
    gets its previous mode back afterwards.

    Args:
        model: A `torch.nn.Module` or callable from `float32` images (N, 3, H, W)
            to embeddings (N, d).
        source: A manifest or dataset folder, as a local path or fsspec URL.
        batch_size: Pairs per batch; the model gets four images per pair.
        num_workers: DataLoader workers that read and decode; 0 does it in this process.
        device: Device to run the model on; default the model's device.
        image_size: Model input size as (height, width).
        autocast: Whether to run the model under `torch.autocast`.
        n_folds: Number of folds.
        check_sha256: Whether to compare each shard's SHA-256 with the manifest.
        on_batch: Called with the number of pairs of each embedded batch, for progress bars.

    Raises:
        ManifestError: No valid manifest was found at `source`.
        DatasetError: A shard is missing or damaged, an image cannot be
            decoded, or a pair was not read exactly once.
        EvaluationError: The model output is unusable, or the dataset has
            fewer pairs than folds.
    """
    start = time.perf_counter()
    dataset = PairDataset(
        source,
        batch_size=batch_size,
        image_size=image_size,
        rank=0,
        world_size=1,
        check_sha256=check_sha256,
    )
    device = torch.device(device) if device is not None else model_device(model)
    loader = PairLoader(dataset, num_workers=num_workers, pin_memory=device.type == "cuda")
    # NOTE: the CUDA path (pinned memory, non-blocking copies, float16 autocast)
    # has not been run by the tests, which have only a CPU.
    embedded = embed_pairs(
        model,
        _report_batches(loader, on_batch),
        device=device,
        autocast=autocast,
        expected_pairs=dataset.manifest.num_pairs,
    )
    embedded_at = time.perf_counter()
    embedding_norm, metrics = compute_result(embedded, dataset.manifest, n_folds)
    end = time.perf_counter()
    timing = EvaluationTiming(embedded_at - start, end - embedded_at, end - start)
    return EvaluationResult.from_metrics(dataset.manifest.name, embedding_norm, metrics, timing)


def _report_batches(
    batches: Iterable[PairBatch], on_batch: Callable[[int], None] | None
) -> Iterator[PairBatch]:
    for batch in batches:
        yield batch
        if on_batch is not None:
            on_batch(len(batch.indices))


def compute_result(
    embedded: EmbeddedPairs, manifest: Manifest, n_folds: int = 10
) -> tuple[float, VerificationMetrics]:
    """Check that every pair of `manifest` was embedded once, then compute XNorm and the metrics.

    Rows of `embedded` may come in any order, such as gathered from several
    ranks; they are put in pair order first.

    Raises:
        DatasetError: A pair is missing or repeated, or the labels disagree
            with the manifest's counts.
        EvaluationError: The embeddings are not finite or there are fewer pairs than folds.
    """
    indices = embedded.indices.numpy()
    check_exactly_once(indices, manifest)
    num_pairs = manifest.num_pairs
    embedding_size = embedded.emb.shape[-1]
    emb = np.empty((num_pairs, 2, embedding_size), dtype=np.float32)
    emb_flip = np.empty_like(emb)
    issame = np.empty(num_pairs, dtype=bool)
    emb[indices] = embedded.emb.numpy()
    emb_flip[indices] = embedded.emb_flip.numpy()
    issame[indices] = embedded.issame.numpy()
    if int(issame.sum()) != manifest.num_positive:
        raise DatasetError(
            f"dataset {manifest.name}: {int(issame.sum())} pairs are labelled same-person, but "
            f"the manifest lists {manifest.num_positive}; convert the dataset again"
        )

    # Images 2i and 2i+1 of the classic file order are img1 and img2 of pair i.
    emb_rows = emb.reshape(2 * num_pairs, embedding_size)
    emb_flip_rows = emb_flip.reshape(2 * num_pairs, embedding_size)
    distances = pair_distances(pair_embeddings(emb_rows, emb_flip_rows))
    return xnorm(emb_rows, emb_flip_rows), compute_metrics(distances, issame, n_folds)
