"""Benchmark evaluation streamed from a loopback S3 server against local disk.

Builds a 6,000-pair dataset (500 pairs per shard, so 12 shards) from the
ten real face JPEGs of the shared test data. `copy_datasets` uploads it to
moto's S3 server, which runs in its own process on 127.0.0.1. The script
then times `evaluator.evaluate` with the built-in thumbnail model on both
copies. That model costs almost nothing, so the times are those of reading,
checking and decoding the shards. It also times reading every shard once
through `open_shard`, without decoding.

Each step runs once per source to warm up (page cache, S3 clients), then
`--repeats` times, alternating between the sources. The table gives the
median time and the median ratio of S3's time to local disk's.

Usage: python benchmarks/bench_storage.py [--repeats N] [--workers N ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

import fsspec

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from binconv.copy import copy_datasets  # noqa: E402
from binconv.dataset_reader import locate_dataset  # noqa: E402
from binconv.storage import open_shard  # noqa: E402
from binconv.storage_options import StorageOptions, configure_storage  # noqa: E402
from evaluator.demo_model import build_demo_model  # noqa: E402
from evaluator.evaluate import EvaluationResult, evaluate  # noqa: E402
from tests.face_datasets import write_face_dataset  # noqa: E402

NUM_PAIRS = 6000
PAIRS_PER_SHARD = 500
BUCKET = "binconv-bench"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """Start moto's S3 server on 127.0.0.1:`port` in a child process and wait until it responds."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"moto's server did not start on 127.0.0.1:{port} within 30 s")


def set_fake_aws_environment(endpoint: str, folder: Path) -> None:
    """Point botocore at the loopback server with fake credentials and no home-folder config."""
    empty = folder / "empty-aws-config"
    empty.write_text("")
    os.environ.update(
        AWS_ACCESS_KEY_ID="binconv-bench-key",
        AWS_SECRET_ACCESS_KEY="binconv-bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_ENDPOINT_URL=endpoint,
    )


def time_interleaved(
    runs: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], float, dict[str, object]]:
    """Time each run `repeats` times, alternating between them, after one warm-up each.

    Alternating keeps a change in machine load from landing on one source
    only. Returns the median seconds per run, the median over the repeats
    of the ratio of the second run's time to the first's, and each run's
    last output.
    """
    outputs = {name: run() for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
    first, second = list(runs)
    ratios = [b / a for a, b in zip(times[first], times[second], strict=True)]
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, statistics.median(ratios), outputs


def read_all_shards(dataset: str) -> int:
    """Stream every shard of `dataset` through `open_shard` and return the bytes read."""
    location = locate_dataset(dataset)
    total = 0
    for shard in location.manifest.shards:
        with open_shard(location.shard_url(shard), shard.size, shard.sha256) as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return total


def run_evaluation(dataset: str, workers: int) -> EvaluationResult:
    return evaluate(build_demo_model(), dataset, batch_size=64, num_workers=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per setting.")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2], help="DataLoader worker counts."
    )
    parser.add_argument(
        "--shared-data",
        type=Path,
        default=Path(os.environ.get("BINCONV_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")),
        help="Folder with small_dataset/images/*.jpg.",
    )
    args = parser.parse_args()

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_moto(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            set_fake_aws_environment(endpoint, Path(folder))
            configure_storage(StorageOptions(s3_endpoint_url=endpoint))
            run_benchmark(Path(folder), args.shared_data, args.repeats, args.workers)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_benchmark(folder: Path, shared_data: Path, repeats: int, workers: list[int]) -> None:
    local_root = folder / "sets"
    manifest = write_face_dataset(str(local_root), "faces", shared_data, NUM_PAIRS, PAIRS_PER_SHARD)
    megabytes = sum(shard.size for shard in manifest.shards) / 1e6
    fsspec.filesystem("s3").mkdir(BUCKET)
    copy_datasets(str(local_root), f"s3://{BUCKET}/sets")
    sources = {"local disk": str(local_root / "faces"), "S3 (moto)": f"s3://{BUCKET}/sets/faces"}
    print(
        f"{NUM_PAIRS} pairs in {len(manifest.shards)} shards, {megabytes:.1f} MB; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; "
        f"median of {repeats} alternating runs after one warm-up"
    )
    print(f"{'step':<24}{'source':<12}{'seconds':>9}{'pairs/s':>10}{'MB/s':>8}{'S3/local':>10}")
    steps: dict[str, Callable[[str], object]] = {"read shards": read_all_shards}
    for count in workers:
        steps[f"evaluate, {count} workers"] = partial(run_evaluation, workers=count)
    for step, function in steps.items():
        runs: dict[str, Callable[[], object]] = {
            name: partial(function, dataset) for name, dataset in sources.items()
        }
        medians, ratio, outputs = time_interleaved(runs, repeats)
        for name, seconds in medians.items():
            shown = f"{ratio:>10.2f}" if name == "S3 (moto)" else f"{'':>10}"
            print(
                f"{step:<24}{name:<12}{seconds:>9.2f}{NUM_PAIRS / seconds:>10.0f}"
                f"{megabytes / seconds:>8.1f}{shown}"
            )
        _check_same_results(outputs)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _check_same_results(outputs: dict[str, object]) -> None:
    accuracies = {
        name: output.fold_accuracies
        for name, output in outputs.items()
        if isinstance(output, EvaluationResult)
    }
    if len(set(accuracies.values())) > 1:
        raise RuntimeError(f"fold accuracies differ between sources: {accuracies}")


if __name__ == "__main__":
    main()
