"""End-to-end tests of evaluate() against a plain reference of the classic pipeline."""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from binconv.convert import convert_bins
from binconv.errors import DatasetError
from binconv.manifest import manifest_from_json, manifest_to_json
from binconv.shardwriter import Pair
from evaluator.demo_model import ThumbnailEmbedding
from evaluator.embed import EmbeddedPairs
from evaluator.errors import UndefinedMetricWarning
from evaluator.evaluate import EvaluationResult, compute_result, evaluate

from .classic_oracle import (
    classic_pair_embeddings,
    classic_roc,
    classic_xnorm,
    loop_pair_distances,
)
from .shardbuilder import write_pairs

pytestmark = [
    pytest.mark.filterwarnings("ignore::evaluator.errors.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
]


@dataclass(frozen=True)
class ClassicResult:
    accuracy: float
    accuracy_std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    xnorm: float


def read_bin(path: Path) -> tuple[list[bytes], list[bool]]:
    with open(path, "rb") as f:
        images, issame = pickle.load(f, encoding="bytes")
    return [bytes(image) for image in images], [bool(flag) for flag in issame]


def classic_evaluation(
    model: torch.nn.Module, images: list[bytes], issame: list[bool]
) -> ClassicResult:
    """The classic approach written out: decode everything to float32, then embed in batches."""
    data = np.stack([np.asarray(Image.open(io.BytesIO(image)).convert("RGB")) for image in images])
    data = data.transpose(0, 3, 1, 2).astype(np.float32)  # values 0..255, like the classic loader
    flipped = np.ascontiguousarray(data[:, :, :, ::-1])
    embeddings = []
    for array in (data, flipped):
        outputs = []
        for start in range(0, len(array), 10):
            batch = torch.from_numpy(array[start : start + 10])
            outputs.append(model(((batch / 255) - 0.5) / 0.5).numpy())
        embeddings.append(np.concatenate(outputs))
    emb, emb_flip = embeddings
    distances = loop_pair_distances(classic_pair_embeddings(emb, emb_flip))
    roc = classic_roc(distances, np.array(issame))
    return ClassicResult(
        accuracy=float(np.mean(roc.fold_accuracies)),
        accuracy_std=float(np.std(roc.fold_accuracies)),
        fold_accuracies=tuple(float(value) for value in roc.fold_accuracies),
        fold_thresholds=tuple(float(value) for value in roc.fold_thresholds),
        xnorm=classic_xnorm(emb, emb_flip),
    )


@pytest.fixture(scope="module")
def small_lfw_dir(tmp_path_factory: pytest.TempPathFactory, small_lfw_bin: Path) -> Path:
    out = tmp_path_factory.mktemp("converted")
    [result] = convert_bins([small_lfw_bin], str(out), pairs_per_shard=3)
    return Path(result.dataset_dir)


@pytest.fixture(scope="module")
def mixed_pairs(small_lfw_bin: Path) -> list[Pair]:
    """41 pairs of the real faces: the 10 positives, then negatives across pairs."""
    images, _ = read_bin(small_lfw_bin)
    pairs = [Pair(i, images[2 * i], images[2 * i + 1], True) for i in range(10)]
    for offset in range(1, 4):
        for i in range(10 if offset < 3 else 11):
            first, second = images[(2 * i) % 20], images[(2 * i + 2 * offset + 1) % 20]
            pairs.append(Pair(len(pairs), first, second, False))
    return pairs


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory, mixed_pairs: list[Pair]) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    write_pairs(root, "mixed", mixed_pairs, pairs_per_shard=7)
    return root / "mixed"


def assert_matches_classic(result: EvaluationResult, classic: ClassicResult) -> None:
    assert result.fold_accuracies == classic.fold_accuracies
    assert result.fold_thresholds == classic.fold_thresholds
    assert result.accuracy == classic.accuracy
    assert result.accuracy_std == classic.accuracy_std
    assert result.xnorm == classic.xnorm


def test_small_lfw_matches_classic(small_lfw_dir: Path, small_lfw_bin: Path) -> None:
    images, issame = read_bin(small_lfw_bin)
    classic = classic_evaluation(ThumbnailEmbedding(), images, issame)
    result = evaluate(ThumbnailEmbedding(), str(small_lfw_dir), num_workers=0)
    assert result.dataset == "small_lfw"
    assert result.num_pairs == 10
    assert result.num_negative == 0
    assert_matches_classic(result, classic)
    assert np.isnan(result.val)
    assert np.isnan(result.auc)


def test_small_lfw_warns_about_undefined_metrics(small_lfw_dir: Path) -> None:
    with pytest.warns(UndefinedMetricWarning, match="no negative pair"):
        evaluate(ThumbnailEmbedding(), str(small_lfw_dir), num_workers=0)


@pytest.mark.parametrize(("batch_size", "num_workers"), [(64, 0), (3, 2), (5, 3)])
def test_mixed_set_matches_classic(
    mixed_dir: Path, mixed_pairs: list[Pair], batch_size: int, num_workers: int
) -> None:
    images = [image for pair in mixed_pairs for image in (pair.img1, pair.img2)]
    issame = [pair.issame for pair in mixed_pairs]
    classic = classic_evaluation(ThumbnailEmbedding(), images, issame)
    result = evaluate(
        ThumbnailEmbedding(), str(mixed_dir), batch_size=batch_size, num_workers=num_workers
    )
    assert result.num_pairs == 41
    assert result.num_positive == 10
    assert_matches_classic(result, classic)
    assert 0.0 <= result.auc <= 1.0


def test_result_to_dict_is_json(mixed_dir: Path, small_lfw_dir: Path) -> None:
    result = evaluate(ThumbnailEmbedding(), str(small_lfw_dir), num_workers=0)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["dataset"] == "small_lfw"
    assert data["val"] is None
    assert len(data["fold_accuracies"]) == 10
    assert set(data["tar_at_far"]) == {"0.0001", "0.001", "0.01", "0.1"}
    assert data["timing"]["total_seconds"] >= data["timing"]["embed_seconds"] > 0
    assert "roc_fpr" not in data
    assert len(result.to_dict(include_roc=True)["roc_fpr"]) == 400


def test_model_mode_restored(small_lfw_dir: Path) -> None:
    model = ThumbnailEmbedding().train()
    evaluate(model, str(small_lfw_dir), num_workers=0)
    assert model.training is True


def test_damaged_shard_fails_evaluation(tmp_path: Path, mixed_pairs: list[Pair]) -> None:
    write_pairs(tmp_path, "mixed", mixed_pairs, pairs_per_shard=7)
    (tmp_path / "mixed" / "mixed-000004.tar").unlink()
    with pytest.raises(DatasetError, match=r"mixed-000004\.tar not found"):
        evaluate(ThumbnailEmbedding(), str(tmp_path / "mixed"), num_workers=2)


def test_labels_checked_against_manifest(tmp_path: Path, mixed_pairs: list[Pair]) -> None:
    manifest = write_pairs(tmp_path, "mixed", mixed_pairs, pairs_per_shard=7)
    path = tmp_path / "mixed" / "mixed.json"
    swapped = replace(manifest, num_positive=manifest.num_negative, num_negative=10)
    path.write_text(manifest_to_json(swapped))
    with pytest.raises(DatasetError, match="10 pairs are labelled same-person, but the manifest"):
        evaluate(ThumbnailEmbedding(), str(tmp_path / "mixed"), num_workers=0)


def test_compute_result_rejects_repeated_pair(mixed_dir: Path) -> None:
    manifest = manifest_from_json((mixed_dir / "mixed.json").read_text(), "mixed.json")
    indices = torch.cat([torch.arange(41), torch.tensor([8])])
    emb = torch.randn(42, 2, 4)
    embedded = EmbeddedPairs(indices, emb, emb.clone(), torch.ones(42, dtype=torch.bool))
    with pytest.raises(DatasetError, match=r"pair 000008 2 times in mixed-000001\.tar"):
        compute_result(embedded, manifest)


def test_compute_result_order_independent(mixed_dir: Path) -> None:
    manifest = manifest_from_json((mixed_dir / "mixed.json").read_text(), "mixed.json")
    generator = torch.Generator().manual_seed(0)
    emb = torch.randn(41, 2, 8, generator=generator)
    emb_flip = torch.randn(41, 2, 8, generator=generator)
    issame = torch.arange(41) < 10
    in_order = compute_result(EmbeddedPairs(torch.arange(41), emb, emb_flip, issame), manifest)
    order = torch.randperm(41, generator=generator)
    shuffled = EmbeddedPairs(order, emb[order], emb_flip[order], issame[order])
    xnorm, metrics = compute_result(shuffled, manifest)
    assert xnorm == in_order[0]
    assert metrics.fold_accuracies == in_order[1].fold_accuracies
    assert metrics.fold_thresholds == in_order[1].fold_thresholds
    assert metrics.auc == in_order[1].auc
