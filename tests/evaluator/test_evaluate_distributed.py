"""Tests of `evaluate_distributed` and `VerificationCallback` on real gloo groups of 2 and 3 ranks.

Each group runs its scenarios in order in one set of processes, because
starting a group costs seconds. A later scenario also shows that the group
still works after an earlier one failed on every rank.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from evaluator import VerificationCallback, evaluate, evaluate_distributed
from evaluator.dataset import PairDataset, PairLoader
from evaluator.errors import UndefinedMetricWarning

from ..servers import S3Server
from .ddp_support import (
    FailingModel,
    PerImageCNN,
    dataset_path,
    figures,
    record_evaluator_logs,
    write_datasets,
)
from .process_group import run_ranks

pytestmark = pytest.mark.filterwarnings("ignore::evaluator.errors.UndefinedMetricWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Datasets of ddp_support, plus "damaged": "even" with its last shard truncated."""
    folder = tmp_path_factory.mktemp("datasets")
    write_datasets(folder)
    shutil.copytree(folder / "even", folder / "damaged")
    os.rename(folder / "damaged" / "even.json", folder / "damaged" / "damaged.json")
    last_shard = folder / "damaged" / "even-000003.tar"
    last_shard.write_bytes(last_shard.read_bytes()[:5000])
    return folder


@pytest.fixture(scope="module")
def expected(root: Path) -> dict[str, dict[str, Any]]:
    """Figures of the single-process `evaluate` for each dataset."""
    folds = {"even": 10, "single": 10, "tiny": 2}
    return {
        name: figures(
            evaluate(PerImageCNN(), dataset_path(root, name), num_workers=0, n_folds=n_folds)
        )
        for name, n_folds in folds.items()
    }


def _attempt(action: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"value": action()}
    except Exception as exc:
        return {"error_type": type(exc).__name__, "message": str(exc)}


def _evaluate(root: str, name: str, num_workers: int, n_folds: int = 10) -> dict[str, Any]:
    result = evaluate_distributed(
        PerImageCNN(), dataset_path(root, name), num_workers=num_workers, n_folds=n_folds
    )
    return figures(result)


def _modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


def _ddp_backbone(model: nn.Module) -> nn.Module:
    model.train()
    model.features[2].eval()
    return nn.parallel.DistributedDataParallel(model)


# --- two ranks -----------------------------------------------------------------------------


def two_rank_scenarios(rank: int, world_size: int, root: str, workdir: str) -> dict[str, Any]:
    logs = record_evaluator_logs()
    writer = SummaryWriter(log_dir=os.path.join(workdir, "tensorboard")) if rank == 0 else None
    callback = VerificationCallback(["even", "single"], root, writer, batch_size=4, num_workers=1)
    backbone = _ddp_backbone(PerImageCNN())
    failing = _ddp_backbone(FailingModel(failing_rank=1))
    outcomes = {
        "even_without_workers": _attempt(lambda: _evaluate(root, "even", 0)),
        "even_with_three_workers": _attempt(lambda: _evaluate(root, "even", 3)),
        "single_shard": _attempt(lambda: _evaluate(root, "single", 0)),
        "truncated_shard_on_rank_1": _attempt(lambda: _evaluate(root, "damaged", 0)),
        "model_fails_on_rank_1": _attempt(lambda: callback(1000, failing)),
        "callback": _attempt(
            lambda: {name: figures(result) for name, result in callback(2000, backbone).items()}
        ),
    }
    if writer is not None:
        writer.close()
    outcomes["modes"] = {"backbone": _modes(backbone.module), "failing": _modes(failing.module)}
    outcomes["logs"] = logs.messages
    outcomes["highest_accuracy"] = callback.highest_accuracy
    return outcomes


@pytest.fixture(scope="module")
def two_ranks(root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("two_ranks")
    outcomes = run_ranks(two_rank_scenarios, 2, workdir, args=(str(root), str(workdir)))
    for rank, outcome in enumerate(outcomes):
        assert outcome.error_type is None, f"rank {rank}: {outcome.traceback}"
    return [outcome.value for outcome in outcomes]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("scenario", "dataset"),
    [
        ("even_without_workers", "even"),
        ("even_with_three_workers", "even"),
        ("single_shard", "single"),
    ],
)
def test_two_ranks_match_single_process(two_ranks, expected, scenario, dataset):
    for rank, outcomes in enumerate(two_ranks):
        assert outcomes[scenario].get("value") == expected[dataset], (
            f"rank {rank}: {outcomes[scenario]}"
        )


@pytest.mark.timeout(180)
def test_two_ranks_raise_for_truncated_shard(two_ranks):
    for outcomes in two_ranks:
        outcome = outcomes["truncated_shard_on_rank_1"]
        assert outcome["error_type"] == "DistributedEvaluationError"
        assert "failed on rank 1 of 2" in outcome["message"]
        assert "even-000003.tar" in outcome["message"]


@pytest.mark.timeout(180)
def test_two_ranks_raise_for_model_failure(two_ranks):
    for outcomes in two_ranks:
        outcome = outcomes["model_fails_on_rank_1"]
        assert outcome["error_type"] == "DistributedEvaluationError"
        assert "RuntimeError: injected model failure on rank 1" in outcome["message"]


@pytest.mark.timeout(180)
def test_two_ranks_callback_with_ddp_backbone(two_ranks, expected):
    for outcomes in two_ranks:
        assert outcomes["callback"].get("value") == {
            "even": expected["even"],
            "single": expected["single"],
        }
        accuracies = {name: expected[name]["accuracy"] for name in ("even", "single")}
        assert outcomes["highest_accuracy"] == accuracies


@pytest.mark.timeout(180)
def test_two_ranks_restore_backbone_modes(two_ranks):
    for outcomes in two_ranks:
        for model in ("backbone", "failing"):
            modes = outcomes["modes"][model]
            # PerImageCNN, features, pool, conv, frozen batch norm, relu, pool, flatten, linear
            assert modes == [True, True, True, True, False, True, True, True, True]


@pytest.mark.timeout(180)
def test_two_ranks_log_on_rank_zero_only(two_ranks, expected):
    even = expected["even"]
    assert two_ranks[0]["logs"] == [
        f"[even][2000]XNorm: {even['xnorm']:f}",
        f"[even][2000]Accuracy-Flip: {even['accuracy']:1.5f}+-{even['accuracy_std']:1.5f}",
        f"[even][2000]Accuracy-Highest: {even['accuracy']:1.5f}",
        f"[single][2000]XNorm: {expected['single']['xnorm']:f}",
        f"[single][2000]Accuracy-Flip: {expected['single']['accuracy']:1.5f}"
        f"+-{expected['single']['accuracy_std']:1.5f}",
        f"[single][2000]Accuracy-Highest: {expected['single']['accuracy']:1.5f}",
    ]
    assert two_ranks[1]["logs"] == []


@pytest.mark.timeout(180)
def test_two_ranks_write_tensorboard_on_rank_zero(two_ranks, expected, tmp_path_factory):
    events = EventAccumulator(str(tmp_path_factory.getbasetemp() / "two_ranks0" / "tensorboard"))
    events.Reload()
    for name in ("even", "single"):
        scalars = events.Scalars(name)
        assert [scalar.step for scalar in scalars] == [2000]
        assert scalars[0].value == pytest.approx(expected[name]["accuracy"], rel=1e-6)


# --- three ranks ---------------------------------------------------------------------------


def _pairs_read(root: str, name: str, rank: int, world_size: int, num_workers: int) -> list[int]:
    dataset = PairDataset(dataset_path(root, name), batch_size=4, rank=rank, world_size=world_size)
    loader = PairLoader(dataset, num_workers=num_workers)
    return sorted(index for batch in loader for index in batch.indices.tolist())


def three_rank_scenarios(rank: int, world_size: int, root: str) -> dict[str, Any]:
    warnings.simplefilter("ignore", UndefinedMetricWarning)
    logs = record_evaluator_logs()
    callback = VerificationCallback(["absent", "even"], root, batch_size=4, num_workers=2)
    # Not wrapped in DDP: the two-rank group tests that, and building the
    # wrapper costs seconds of imports per process.
    backbone = PerImageCNN()
    return {
        "even": _attempt(lambda: _evaluate(root, "even", 0)),
        "tiny_pairs_read": _attempt(lambda: _pairs_read(root, "tiny", rank, world_size, 0)),
        "tiny": _attempt(lambda: _evaluate(root, "tiny", 0, n_folds=2)),
        "single_pairs_read": _attempt(lambda: _pairs_read(root, "single", rank, world_size, 2)),
        "single_with_two_workers": _attempt(lambda: _evaluate(root, "single", 2)),
        "callback": _attempt(
            lambda: {name: figures(result) for name, result in callback(3000, backbone).items()}
        ),
        "targets_differ": _attempt(
            lambda: VerificationCallback(["even"] if rank else ["single"], root)
        ),
        "logs": logs.messages,
    }


@pytest.fixture(scope="module")
def three_ranks(root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("three_ranks")
    outcomes = run_ranks(three_rank_scenarios, 3, workdir, args=(str(root),))
    for rank, outcome in enumerate(outcomes):
        assert outcome.error_type is None, f"rank {rank}: {outcome.traceback}"
    return [outcome.value for outcome in outcomes]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("scenario", "dataset"),
    [("even", "even"), ("tiny", "tiny"), ("single_with_two_workers", "single")],
)
def test_three_ranks_match_single_process(three_ranks, expected, scenario, dataset):
    for rank, outcomes in enumerate(three_ranks):
        assert outcomes[scenario].get("value") == expected[dataset], (
            f"rank {rank}: {outcomes[scenario]}"
        )


@pytest.mark.timeout(180)
def test_three_ranks_split_tiny_set_leaving_one_empty(three_ranks):
    pairs_read = [outcomes["tiny_pairs_read"]["value"] for outcomes in three_ranks]
    assert pairs_read == [[0], [1], []]


@pytest.mark.timeout(180)
def test_three_ranks_with_workers_split_single_shard(three_ranks):
    pairs_read = [outcomes["single_pairs_read"]["value"] for outcomes in three_ranks]
    assert sorted(pairs_read[0] + pairs_read[1] + pairs_read[2]) == list(range(30))
    assert [len(pairs) for pairs in pairs_read] == [10, 10, 10]


@pytest.mark.timeout(180)
def test_three_ranks_callback_skips_missing_target(three_ranks, expected):
    for outcomes in three_ranks:
        assert outcomes["callback"].get("value") == {"even": expected["even"]}
    warnings_on_rank_0 = [line for line in three_ranks[0]["logs"] if "'absent' not found" in line]
    assert len(warnings_on_rank_0) == 1
    assert three_ranks[1]["logs"] == []
    assert three_ranks[2]["logs"] == []


@pytest.mark.timeout(180)
def test_three_ranks_reject_differing_targets(three_ranks):
    for outcomes in three_ranks:
        outcome = outcomes["targets_differ"]
        assert outcome["error_type"] == "ValueError"
        assert "ranks [1, 2] passed other names than rank 0" in outcome["message"]


# --- two ranks reading from S3 -------------------------------------------------------------


def read_from_s3(rank: int, world_size: int, root_url: str) -> dict[str, Any]:
    # The ranks inherit AWS_ENDPOINT_URL and the test credentials that the
    # s3_server fixture put in the environment, so they reach its server.
    callback = VerificationCallback(["even", "absent"], root_url, batch_size=4, num_workers=1)
    results = callback(4000, PerImageCNN())
    return {name: figures(result) for name, result in results.items()}


@pytest.mark.timeout(180)
def test_two_ranks_evaluate_from_s3(
    root: Path, expected, s3_server: S3Server, s3_bucket: str, tmp_path: Path
):
    s3 = fsspec.filesystem("s3")
    s3.put(str(root / "even"), f"{s3_bucket}/sets/", recursive=True)
    s3_server.plan.reset()
    outcomes = run_ranks(read_from_s3, 2, tmp_path, args=(f"{s3_bucket}/sets",))
    for rank, outcome in enumerate(outcomes):
        assert outcome.error_type is None, f"rank {rank}: {outcome.traceback}"
        assert outcome.value == {"even": expected["even"]}
    for shard in range(4):
        assert s3_server.plan.requests_for(f"/sets/even/even-{shard:06d}.tar"), shard
