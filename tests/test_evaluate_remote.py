"""Tests of evaluation from S3 and HTTP: results equal to local disk, and loud failures."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from binconv.errors import DatasetError, ShardChecksumError, ShardError
from binconv.storage_options import StorageOptions, configure_storage, get_storage_options
from evaluator.dataset import PairDataset, PairLoader
from evaluator.demo_model import build_demo_model
from evaluator.evaluate import EvaluationResult, evaluate
from tests.face_datasets import write_face_dataset
from tests.servers import HTTPFileServer, S3Server

NUM_PAIRS = 60
PAIRS_PER_SHARD = 7  # 9 shards, the last one with 4 pairs
BLOCK = 16 * 1024  # several requests per shard, so faults can land mid-shard


@pytest.fixture(scope="module")
def local_faces(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A 60-pair dataset of the real face JPEGs on local disk; returns its root."""
    root = tmp_path_factory.mktemp("local") / "sets"
    write_face_dataset(str(root), "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD)
    return root


@pytest.fixture(scope="module")
def expected(local_faces: Path) -> EvaluationResult:
    """The evaluation of the local copy, which every remote evaluation must reproduce."""
    return run_evaluation(str(local_faces / "faces"))


@pytest.fixture
def storage(s3_server: S3Server) -> Iterator[StorageOptions]:
    """Make the S3 server, small blocks and short retry waits the process default."""
    previous = get_storage_options()
    options = s3_server.options(block_size=BLOCK, max_retries=2)
    configure_storage(options)
    yield options
    configure_storage(previous)


@pytest.fixture
def s3_faces(storage: StorageOptions, s3_bucket: str, local_faces: Path) -> str:
    """The same dataset uploaded to a new bucket; returns its dataset URL."""
    fs = fsspec.filesystem("s3", endpoint_url=storage.s3_endpoint_url)
    fs.put(str(local_faces / "faces"), f"{s3_bucket}/sets/", recursive=True)
    return f"{s3_bucket}/sets/faces"


@pytest.fixture
def http_faces(storage: StorageOptions, http_server: HTTPFileServer, local_faces: Path) -> str:
    """The same dataset served over HTTP; returns its dataset URL."""
    shutil.copytree(local_faces, http_server.root / "sets")
    return f"{http_server.url}/sets/faces"


def run_evaluation(source: str, num_workers: int = 0) -> EvaluationResult:
    return evaluate(build_demo_model(), source, batch_size=8, num_workers=num_workers)


def assert_same_result(actual: EvaluationResult, expected: EvaluationResult) -> None:
    assert actual.num_pairs == expected.num_pairs == NUM_PAIRS
    assert actual.fold_accuracies == expected.fold_accuracies
    assert actual.fold_thresholds == expected.fold_thresholds
    assert actual.accuracy == expected.accuracy
    assert actual.xnorm == expected.xnorm
    assert actual.auc == expected.auc


def test_evaluate_from_s3_equals_local(s3_faces: str, expected: EvaluationResult) -> None:
    assert_same_result(run_evaluation(s3_faces), expected)
    assert_same_result(run_evaluation(f"{s3_faces}/faces.json", num_workers=2), expected)


def test_evaluate_from_http_equals_local(http_faces: str, expected: EvaluationResult) -> None:
    assert_same_result(run_evaluation(http_faces, num_workers=2), expected)


def test_two_ranks_read_each_s3_pair_once(s3_faces: str) -> None:
    indices: list[int] = []
    for rank in (0, 1):
        dataset = PairDataset(s3_faces, batch_size=8, rank=rank, world_size=2)
        for batch in PairLoader(dataset, num_workers=0):
            indices.extend(batch.indices.tolist())
    assert sorted(indices) == list(range(NUM_PAIRS))


def test_evaluate_from_s3_recovers_from_server_errors(
    s3_server: S3Server, s3_faces: str, expected: EvaluationResult, caplog: pytest.LogCaptureFixture
) -> None:
    s3_server.plan.fail("faces-000002.tar", status=500, times=2)
    s3_server.plan.fail("faces-000005.tar", status=503, times=1)
    s3_server.plan.cut("faces-000007.tar", after_bytes=2000, times=1)
    with caplog.at_level(logging.WARNING, logger="binconv.retry"):
        assert_same_result(run_evaluation(s3_faces), expected)
    retried = [record.getMessage() for record in caplog.records]
    assert len(retried) == 4
    assert sum("faces-000002.tar" in message for message in retried) == 2
    assert sum("faces-000005.tar" in message for message in retried) == 1
    assert sum("faces-000007.tar" in message for message in retried) == 1


def test_evaluate_from_http_recovers_from_faults(
    http_server: HTTPFileServer, http_faces: str, expected: EvaluationResult
) -> None:
    http_server.plan.fail("faces.json", status=502, times=1)
    http_server.plan.fail("faces-000000.tar", status=500, times=2)
    http_server.plan.cut("faces-000004.tar", after_bytes=5000, times=2)
    assert_same_result(run_evaluation(http_faces), expected)


def test_evaluate_s3_server_stopped_mid_shard(stoppable_s3_server: S3Server, s3_faces: str) -> None:
    configure_storage(stoppable_s3_server.options(block_size=BLOCK, max_retries=1))
    model = build_demo_model()
    batches = []

    def stop_after_first_batch(num_pairs: int) -> None:
        batches.append(num_pairs)
        if len(batches) == 1:
            stoppable_s3_server.stop()

    with pytest.raises(ShardError) as raised:
        evaluate(model, s3_faces, batch_size=4, num_workers=0, on_batch=stop_after_first_batch)
    message = str(raised.value)
    assert f"reading shard {s3_faces}/faces-00000" in message
    assert "failed after 2 attempts" in message
    assert "\n" not in message
    assert len(batches) < NUM_PAIRS // 4


def test_evaluate_deleted_s3_shard_names_shard(storage: StorageOptions, s3_faces: str) -> None:
    fs = fsspec.filesystem("s3", endpoint_url=storage.s3_endpoint_url)
    fs.rm(f"{s3_faces}/faces-000006.tar")
    with pytest.raises(ShardError) as raised:
        run_evaluation(s3_faces)
    assert str(raised.value) == (
        f"shard {s3_faces}/faces-000006.tar not found (the manifest lists it with pairs 42..48)"
    )


def test_evaluate_corrupt_http_shard_names_shard(
    http_server: HTTPFileServer, http_faces: str
) -> None:
    shard = http_server.root / "sets" / "faces" / "faces-000003.tar"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01  # in the tar padding: the images still decode
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardChecksumError) as raised:
        run_evaluation(http_faces)
    assert str(raised.value).startswith(f"shard {http_faces}/faces-000003.tar has sha256 ")


def test_evaluate_corrupt_image_bytes_names_shard(
    http_server: HTTPFileServer, http_faces: str
) -> None:
    shard = http_server.root / "sets" / "faces" / "faces-000001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF  # inside the first image's JPEG data
    shard.write_bytes(bytes(data))
    # The checksum or the image decoder may fail first; either names the shard.
    with pytest.raises(DatasetError, match=r"faces-000001\.tar"):
        run_evaluation(http_faces)
