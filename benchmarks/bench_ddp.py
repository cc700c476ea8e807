"""Benchmark evaluation during DDP training: binconv's callback against the classic rank-0 one.

Three synthetic verification sets (6,000 pairs of 112x112 JPEGs each by
default) are written both as legacy `.bin` pickles and as binconv shards.
Each approach runs in a real gloo process group of 1 or 2 ranks on this
machine and evaluates a small CNN as a training script would, by calling
its callback on every rank:

- classic: rank 0 decodes every `.bin` into float32 tensors plus mirrored
  copies when the callback is built, as the classic `CallBackVerification`
  does, and embeds everything alone while the other ranks wait in a barrier.
- binconv: `evaluator.VerificationCallback` on every rank; each rank streams
  and embeds its part of each set, then the embeddings are gathered.

Every rank runs one intra-op thread, as under torchrun. For each approach
and world size the script prints the time to build the callback and the
mean wall time of an evaluation call (the slowest rank's). It also prints,
per rank, the CPU time per call with its DataLoader workers, the peak RSS
of the rank's process (`ru_maxrss`), and the peak PSS of the rank together
with its workers (sampled from /proc every 20 ms).

Run from the repository root:

    python benchmarks/bench_ddp.py
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import multiprocessing
import os
import pickle
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn

from binconv.dataset_writer import write_dataset
from binconv.manifest import SourceInfo
from binconv.shardwriter import Pair
from evaluator import VerificationCallback
from evaluator.callback import unwrap_model
from evaluator.metrics import compute_metrics, pair_distances, pair_embeddings, xnorm

DATASETS = ("lfw", "cfp_fp", "agedb_30")
# glibc allocator settings that change the memory figures. The spawned ranks
# inherit them from the environment of this script.
MALLOC_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_")
IMAGE_SIZE = 112


# --- data ----------------------------------------------------------------------------------


def make_jpeg(rng: np.random.Generator) -> bytes:
    """Return a 112x112 JPEG of smooth random colour blobs with fine noise on top."""
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(112, 112, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def write_datasets(root: Path, num_pairs: int) -> None:
    """Write each benchmark set as `root/NAME.bin` and as shards under `root/shards/NAME/`."""
    for seed, name in enumerate(DATASETS):
        bin_path = root / f"{name}.bin"
        if bin_path.exists() and (root / "shards" / name / f"{name}.json").exists():
            continue
        rng = np.random.default_rng(seed)
        images = [make_jpeg(rng) for _ in range(2 * num_pairs)]
        issame = [bool(index % 2) for index in range(num_pairs)]
        bin_path.write_bytes(pickle.dumps((images, issame), protocol=4))
        pairs = (
            Pair(index, images[2 * index], images[2 * index + 1], issame[index])
            for index in range(num_pairs)
        )
        source = SourceInfo(name=bin_path.name, size=bin_path.stat().st_size, sha256="0" * 64)
        write_dataset(str(root / "shards"), name, pairs, source, pairs_per_shard=500)


# --- model ---------------------------------------------------------------------------------


def small_cnn() -> nn.Module:
    """Return a seeded 3-layer CNN with 128-d output, small enough for two CPU cores."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 128),
    )


# --- the classic approach ------------------------------------------------------------------


class ClassicCallback:
    """The rank-0-only approach: every set decoded into memory, embedded by rank 0 alone.

    The metrics are computed with binconv's vectorised code, as in the
    binconv runs, so the comparison isolates reading and embedding.
    """

    def __init__(self, root: Path, batch_size: int) -> None:
        self.rank = dist.get_rank()
        self.batch_size = batch_size
        self.sets: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        if self.rank == 0:
            self.sets = [self._load(root / f"{name}.bin") for name in DATASETS]

    @staticmethod
    def _load(path: Path) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        images, issame = pickle.loads(path.read_bytes())
        data = torch.empty((len(images), 3, IMAGE_SIZE, IMAGE_SIZE))
        for row, encoded in enumerate(images):
            pixels = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
            data[row] = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
        return data, torch.flip(data, dims=[3]), np.array(issame)

    def __call__(self, global_step: int, backbone: nn.Module) -> None:
        if self.rank == 0:
            model = unwrap_model(backbone)
            model.eval()
            with torch.inference_mode():
                for data, flipped, issame in self.sets:
                    emb, emb_flip = (self._embed(model, source) for source in (data, flipped))
                    distances = pair_distances(pair_embeddings(emb, emb_flip))
                    xnorm(emb, emb_flip)
                    compute_metrics(distances, issame)
            model.train()
        dist.barrier()

    def _embed(self, model: nn.Module, source: torch.Tensor) -> np.ndarray:
        batches = [
            model((source[start : start + self.batch_size] / 255 - 0.5) / 0.5)
            for start in range(0, len(source), self.batch_size)
        ]
        return torch.cat(batches).numpy()


# --- measurement ---------------------------------------------------------------------------


class TreePssSampler:
    """Samples the summed PSS of this process and all its descendants in a thread.

    PSS (proportional set size) counts a page shared by n processes as 1/n
    in each, so forked DataLoader workers do not count the pages they share
    with their rank twice, as a sum of RSS would.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, _tree_pss(os.getpid()))
            self._stop.wait(self.interval_s)


def _tree_pss(pid: int) -> int:
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# --- one rank ------------------------------------------------------------------------------


def run_rank(rank: int, world_size: int, workdir: str, config: dict) -> None:
    """Build the callback, call it `calls` times and write this rank's figures as JSON."""
    _join_process_group(rank, world_size, workdir)
    root = Path(config["root"])
    backbone = nn.parallel.DistributedDataParallel(small_cnn())
    with TreePssSampler() as sampler:
        started = time.perf_counter()
        callback = _build_callback(config["approach"], root, config)
        dist.barrier()
        build_s = time.perf_counter() - started
        call_s, cpu_s = _time_calls(callback, backbone, config["calls"])

    figures = {
        "build_s": build_s,
        "call_s": call_s,
        "cpu_s": cpu_s,
        "peak_pss": sampler.peak_bytes,
        # ru_maxrss is in KiB on Linux.
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    Path(workdir, f"rank{rank}.json").write_text(json.dumps(figures))
    dist.destroy_process_group()


def _join_process_group(rank: int, world_size: int, workdir: str) -> None:
    # Like a rank that torchrun starts, use the platform's default start
    # method for DataLoader workers, not the "spawn" this child inherited.
    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    # One intra-op thread per rank, as torchrun sets OMP_NUM_THREADS=1. On a
    # shared, loaded machine more threads than free cores slow every run down.
    torch.set_num_threads(1)
    store = dist.FileStore(os.path.join(workdir, "store"), world_size)
    dist.init_process_group(
        "gloo",
        store=store,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(minutes=30),
    )


def _time_calls(
    callback: Callable[[int, nn.Module], object], backbone: nn.Module, calls: int
) -> tuple[list[float], list[float]]:
    """Call `callback` `calls` times; return the wall and CPU seconds of each call."""
    call_s = []
    cpu_s = []
    for step in range(calls):
        dist.barrier()
        started = time.perf_counter()
        cpu_started = _cpu_seconds()
        callback(1000 * (step + 1), backbone)
        call_s.append(time.perf_counter() - started)
        cpu_s.append(_cpu_seconds() - cpu_started)
    return call_s, cpu_s


def _cpu_seconds() -> float:
    """Return the CPU time of this process and its reaped children, such as finished workers."""
    total = 0.0
    for target in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(target)
        total += usage.ru_utime + usage.ru_stime
    return total


def _build_callback(approach: str, root: Path, config: dict) -> Callable[[int, nn.Module], object]:
    if approach == "classic":
        return ClassicCallback(root, config["batch_size"])
    return VerificationCallback(
        list(DATASETS),
        str(root / "shards"),
        batch_size=config["batch_size"],
        num_workers=config["workers"],
    )


def run_world(approach: str, world_size: int, workdir: Path, config: dict) -> list[dict]:
    """Run one approach on `world_size` spawned ranks and return each rank's figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.iterdir():
        stale.unlink()
    context = multiprocessing.get_context("spawn")
    settings = dict(config, approach=approach)
    processes = [
        context.Process(target=run_rank, args=(rank, world_size, str(workdir), settings))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    if any(process.exitcode != 0 for process in processes):
        raise RuntimeError(f"{approach} with {world_size} ranks failed; see the output above")
    return [json.loads((workdir / f"rank{rank}.json").read_text()) for rank in range(world_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000, help="pairs per dataset")
    parser.add_argument("--calls", type=int, default=2, help="evaluation calls per run")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch per rank")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per rank")
    parser.add_argument("--workdir", default="out/bench_ddp", help="folder for data and results")
    parser.add_argument("--approaches", default="classic,binconv", help="comma-separated")
    parser.add_argument("--world-sizes", default="1,2", help="comma-separated")
    args = parser.parse_args()

    root = Path(args.workdir) / f"data-{args.pairs}"
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_datasets(root, args.pairs)
    print(f"data ready in {root} ({time.perf_counter() - started:.0f} s)")
    config = {
        "root": str(root),
        "calls": args.calls,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "cores": os.cpu_count() or 1,
    }
    print(
        f"{len(DATASETS)} sets of {args.pairs} pairs, {config['cores']} cores, "
        f"batch {args.batch_size}, {args.workers} workers per rank, "
        + ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in MALLOC_SETTINGS)
    )
    print(f"load average before: {_load_average()}")
    header = f"{'approach':<9} {'ranks':>5} {'build s':>8} {'call s':>7}"
    print(
        f"{header} {'CPU s per call per rank':>24} {'peak RSS per rank, MiB':>24} "
        f"{'peak PSS with workers, MiB':>28}"
    )
    for approach in args.approaches.split(","):
        for world_size in (int(size) for size in args.world_sizes.split(",")):
            ranks = run_world(approach, world_size, Path(args.workdir) / "run", config)
            build_s = max(rank["build_s"] for rank in ranks)
            calls = [max(rank["call_s"][call] for rank in ranks) for call in range(args.calls)]
            rss = ", ".join(f"{rank['peak_rss'] / 2**20:.0f}" for rank in ranks)
            pss = ", ".join(f"{rank['peak_pss'] / 2**20:.0f}" for rank in ranks)
            cpu = ", ".join(f"{statistics.mean(rank['cpu_s']):.1f}" for rank in ranks)
            print(
                f"{approach:<9} {world_size:>5} {build_s:>8.1f} "
                f"{statistics.mean(calls):>7.1f} {cpu:>24} {rss:>24} {pss:>28}",
                flush=True,
            )
    print(f"load average after: {_load_average()}")


def _load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


if __name__ == "__main__":
    main()
