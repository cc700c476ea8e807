"""Benchmark a whole evaluation: binconv's streaming evaluator against the classic approach.

The classic approach, written here for the benchmark, unpickles the whole
`.bin`, decodes every image with OpenCV (as MXNet's `imdecode` does) into a
float32 tensor plus a mirrored copy, then embeds both in batches. binconv
streams the converted shards through `evaluator.evaluate`. Both compute the
metrics with `evaluator.metrics`, so the comparison covers reading, decoding
and embedding, and the metrics cost the same on both sides.

Each run is a fresh Python process. Time to the first result is measured in
that process from the start of the evaluation (after `import torch` and
building the model, which both approaches share) to the finished metrics.
For the classic approach, "decoding s" is the part of it spent reading and
decoding before the first image is embedded.
Peak memory is sampled from /proc over the process and all its descendants
(DataLoader workers). The summed VmRSS, sampled every 50 ms, counts a page
shared between processes once per process. The summed Pss, sampled every
0.5 s, splits each shared page between the processes that map it (see
`MemorySampler` for one exception).

The data is a `.bin` of generated 112x112 JPEG faces (binconv.synthetic),
converted with the default 500 pairs per shard.

Usage:
    python benchmarks/bench_evaluate.py [--pairs 6000] [--workers 1,2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_CHILD = Path(__file__).with_name("_evaluate_child.py")


def prepare_data(work_dir: Path, num_pairs: int) -> tuple[Path, Path]:
    """Write the `.bin` file and convert it, unless an earlier run left both in `work_dir`."""
    from binconv.convert import convert_bins
    from binconv.demo import write_demo_bin

    bin_path = work_dir / f"faces{num_pairs}.bin"
    if not bin_path.exists():
        write_demo_bin(bin_path, num_pairs, seed=1)
    [result] = convert_bins([bin_path], str(work_dir / "shards"))
    return bin_path, Path(result.dataset_dir)


def process_tree(root: int) -> list[int]:
    """Return `root` and all its descendants, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(parents.get(pid, []))
    return tree


def read_kib(path: str, field: str) -> int:
    """Return a `field: N kB` value from a /proc file, or 0 if the process is gone."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Samples the summed RSS and PSS of a process tree until stopped; keeps the peaks in MiB.

    RSS comes from /proc/PID/status every `interval` seconds, which is cheap.
    The tree is rescanned and PSS read from /proc/PID/smaps_rollup only every
    `slow_interval` seconds, because the kernel walks all page tables of the
    process for it and holds its memory map lock meanwhile. For a process of
    more than `PSS_LIMIT_KIB` RSS, which only the classic approach's single
    process reaches, its RSS is used as its PSS. Reading smaps_rollup of a
    3 GiB process took 250 ms and slowed the process being measured.
    """

    PSS_LIMIT_KIB = 1 << 20

    def __init__(self, pid: int, interval: float = 0.05, slow_interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.slow_interval = slow_interval
        self.peak_rss_mib = 0.0
        self.peak_pss_mib = 0.0
        self.peak_processes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        pids: list[int] = []
        next_slow = 0.0
        while not self._stop_event.is_set():
            slow = time.monotonic() >= next_slow
            if slow:
                pids = process_tree(self.pid)
                next_slow = time.monotonic() + self.slow_interval
            rss = {pid: read_kib(f"/proc/{pid}/status", "VmRSS:") for pid in pids}
            self.peak_rss_mib = max(self.peak_rss_mib, sum(rss.values()) / 1024)
            if slow:
                pss = sum(
                    value
                    if value > self.PSS_LIMIT_KIB
                    else read_kib(f"/proc/{pid}/smaps_rollup", "Pss:")
                    for pid, value in rss.items()
                )
                self.peak_pss_mib = max(self.peak_pss_mib, pss / 1024)
                self.peak_processes = max(self.peak_processes, len(pids))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_child(args: list[str]) -> dict[str, float]:
    """Run one evaluation in a fresh process and return its timings and memory peaks."""
    process = subprocess.Popen(
        [sys.executable, str(_CHILD), *args], stdout=subprocess.PIPE, text=True
    )
    sampler = MemorySampler(process.pid)
    sampler.start()
    stdout, _ = process.communicate()
    sampler.stop()
    if process.returncode != 0:
        raise SystemExit(f"benchmark run {args} failed with exit status {process.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(
        peak_rss_mib=sampler.peak_rss_mib,
        peak_pss_mib=sampler.peak_pss_mib,
        processes=sampler.peak_processes,
    )
    return result


def measure_decoding(bin_path: Path, count: int = 3000) -> dict[str, float]:
    """Return images per second on one core for PIL, simplejpeg and OpenCV on the same JPEGs."""
    import pickle

    import cv2
    import numpy as np
    import simplejpeg
    from PIL import Image

    cv2.setNumThreads(1)
    with open(bin_path, "rb") as f:
        images = pickle.load(f)[0][:count]

    def pil(data: bytes) -> object:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def turbo(data: bytes) -> object:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")

    def opencv(data: bytes) -> object:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    rates = {}
    for name, decode in (("PIL", pil), ("simplejpeg", turbo), ("OpenCV", opencv)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for data in images:
                decode(data)
            best = min(best, time.perf_counter() - start)
        rates[name] = len(images) / best
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000, help="pairs in the generated set")
    parser.add_argument(
        "--workers", default="1,2", help="DataLoader workers to try, comma-separated"
    )
    parser.add_argument("--models", default="cnn,thumbnail", help="models: cnn, thumbnail")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per configuration; median shown"
    )
    parser.add_argument(
        "--work-dir", type=Path, help="folder for the data (default: a temp folder)"
    )
    args = parser.parse_args()

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    bin_path, dataset_dir = prepare_data(work_dir, args.pairs)
    print(f"{args.pairs} pairs: {bin_path} ({bin_path.stat().st_size / 1e6:.1f} MB), {dataset_dir}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start\n")

    print_header()
    for model in args.models.split(","):
        configurations = [("classic", 0)] + [
            ("binconv", int(workers)) for workers in args.workers.split(",")
        ]
        classic: dict[str, float] = {}
        for approach, workers in configurations:
            runs = [
                run_child([approach, model, str(bin_path), str(dataset_dir), str(workers)])
                for _ in range(args.repeat)
            ]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            classic = classic or median
            print_row(model, approach, workers, median, classic)
    print()
    print("decoding speed, one core, 112x112 JPEGs:")
    for name, rate in measure_decoding(bin_path).items():
        print(f"  {name:<11} {rate:8.0f} images/s")


def print_header() -> None:
    print(
        f"{'model':<10} {'approach':<8} {'workers':>7} {'result s':>9} {'vs classic':>10} "
        f"{'RSS MiB':>8} {'vs classic':>10} {'PSS MiB':>8} {'vs classic':>10} {'accuracy':>9} "
        f"{'decoding s':>10}",
        flush=True,
    )


def print_row(
    model: str, approach: str, workers: int, run: dict[str, float], classic: dict[str, float]
) -> None:
    print(
        f"{model:<10} {approach:<8} {workers:>7} {run['seconds']:9.2f} "
        f"{run['seconds'] / classic['seconds']:10.2f} {run['peak_rss_mib']:8.0f} "
        f"{run['peak_rss_mib'] / classic['peak_rss_mib']:10.3f} {run['peak_pss_mib']:8.0f} "
        f"{run['peak_pss_mib'] / classic['peak_pss_mib']:10.3f} {run['accuracy']:9.5f} "
        + (f"{run['decode_seconds']:10.2f}" if approach == "classic" else f"{'-':>10}"),
        flush=True,
    )


if __name__ == "__main__":
    main()
