"""Tests of `VerificationCallback` in one process, without a process group."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from binconv.errors import ManifestError
from evaluator import VerificationCallback, evaluate
from evaluator.callback import unwrap_model
from evaluator.demo_model import ThumbnailEmbedding

from .ddp_support import PerImageCNN, dataset_path, figures, write_datasets

pytestmark = pytest.mark.filterwarnings("ignore::evaluator.errors.UndefinedMetricWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("datasets")
    write_datasets(folder)
    return folder


def callback_for(root: Path, targets: list[str], **options) -> VerificationCallback:
    return VerificationCallback(targets, str(root), batch_size=8, num_workers=0, **options)


def test_callback_matches_single_process_evaluate(root: Path):
    results = callback_for(root, ["even", "single"])(2000, PerImageCNN())
    assert list(results) == ["even", "single"]
    for name, result in results.items():
        expected = evaluate(PerImageCNN(), dataset_path(root, name), num_workers=0)
        assert figures(result) == figures(expected)


def test_callback_logs_classic_lines(root: Path, caplog: pytest.LogCaptureFixture):
    callback = callback_for(root, ["even"])
    with caplog.at_level(logging.INFO, logger="evaluator.callback"):
        first = callback(1000, ThumbnailEmbedding())["even"]
        second = callback(2000, PerImageCNN())["even"]
    assert first.accuracy != second.accuracy
    highest = max(first.accuracy, second.accuracy)
    assert caplog.messages == [
        f"[even][1000]XNorm: {first.xnorm:f}",
        f"[even][1000]Accuracy-Flip: {first.accuracy:1.5f}+-{first.accuracy_std:1.5f}",
        f"[even][1000]Accuracy-Highest: {first.accuracy:1.5f}",
        f"[even][2000]XNorm: {second.xnorm:f}",
        f"[even][2000]Accuracy-Flip: {second.accuracy:1.5f}+-{second.accuracy_std:1.5f}",
        f"[even][2000]Accuracy-Highest: {highest:1.5f}",
    ]
    assert callback.highest_accuracy == {"even": highest}


def test_callback_writes_tensorboard_scalars(root: Path, tmp_path: Path):
    writer = SummaryWriter(log_dir=str(tmp_path))
    callback = callback_for(root, ["even", "single"], summary_writer=writer)
    first = callback(1000, ThumbnailEmbedding())
    second = callback(2000, PerImageCNN())
    writer.close()

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["even", "single"]
    for name in ("even", "single"):
        scalars = events.Scalars(name)
        assert [scalar.step for scalar in scalars] == [1000, 2000]
        expected = [first[name].accuracy, second[name].accuracy]
        # TensorBoard stores scalars as float32.
        assert [scalar.value for scalar in scalars] == pytest.approx(expected, rel=1e-6)


def test_callback_warns_once_for_missing_target(root: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="evaluator.callback"):
        callback = callback_for(root, ["absent", "even"])
        callback(1000, PerImageCNN())
        callback(2000, PerImageCNN())
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "validation target 'absent' not found" in warnings[0].getMessage()
    assert str(root / "absent" / "absent.json") in warnings[0].getMessage()
    assert list(callback.datasets) == ["even"]


def test_callback_rejects_invalid_manifest(root: Path, tmp_path: Path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "broken.json").write_text("{not json")
    with pytest.raises(ManifestError, match=r"broken\.json"):
        callback_for(tmp_path, ["broken"])


def test_callback_restores_each_module_mode(root: Path):
    model = PerImageCNN()
    model.train()
    model.features[2].eval()
    results = callback_for(root, ["even"])(2000, model)

    expected = evaluate(PerImageCNN(), dataset_path(root, "even"), num_workers=0)
    assert figures(results["even"]) == figures(expected)
    assert model.training is True
    assert model.features[1].training is True
    assert model.features[2].training is False


class RaisingModel(PerImageCNN):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("model failed on purpose")


def test_callback_restores_mode_after_failure(root: Path):
    model = RaisingModel()
    model.train()
    with pytest.raises(RuntimeError, match="model failed on purpose"):
        callback_for(root, ["even"])(2000, model)
    assert all(module.training for module in model.modules())


def test_unwrap_model_removes_data_parallel():
    inner = PerImageCNN()
    assert unwrap_model(nn.DataParallel(inner)) is inner
    assert unwrap_model(inner) is inner
