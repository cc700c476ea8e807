"""Benchmark `binconv convert` against a plain file copy of the same bytes.

Builds `.bin` files of generated 112x112 JPEG face pairs, about 4 KB per
image at JPEG quality 85, so 6,000 pairs make a file of about 50 MB. Two
layouts are measured: images as `bytes` (protocol 4), and images as NumPy
uint8 arrays of shape (n, 1) (protocol 3), the usual way `cv2.imencode`
output is saved. Each measurement runs in a fresh Python process, so its
peak RSS is its own. The source file is in the page cache for both
conversion and copy, and both fsync their output.

Usage:
    python benchmarks/bench_convert.py [--pairs 6000] [--scales 1,2,4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from binconv.synthetic import generate_pairs

# Runs in a child process: converts or copies, then prints wall time and peak RSS.
_CHILD = """
import json, os, shutil, sys, time
from pathlib import Path
mode, source, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
if mode == "convert":
    from binconv.convert import convert_bins
start = time.perf_counter()
if mode == "convert":
    convert_bins([source], str(out))
elif mode == "copy":
    out.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, (out / source.name).open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would
# report the larger parent's peak.
status = Path("/proc/self/status").read_text()
peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kib / 1024}))
"""


def build_images(num_pairs: int, quality: int) -> tuple[list[bytes], list[bool]]:
    """Generate `num_pairs` pairs of JPEG faces, flattened as a .bin stores them."""
    images: list[bytes] = []
    labels: list[bool] = []
    for img1, img2, same in generate_pairs(num_pairs, seed=1, quality=quality):
        images += [img1, img2]
        labels.append(same)
    return images, labels


def write_source(
    path: Path, images: list[bytes], labels: list[bool], form: str, scale: int
) -> None:
    """Write a .bin of the images repeated `scale` times, as distinct objects."""
    repeated = [bytes(bytearray(image)) for _ in range(scale) for image in images]
    all_labels = labels * scale
    if form == "numpy":
        arrays = [np.frombuffer(image, dtype=np.uint8).reshape(-1, 1) for image in repeated]
        value: object = (arrays, np.array(all_labels))
        protocol = 3
    else:
        value = (repeated, all_labels)
        protocol = 4
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=protocol)


def measure(mode: str, source: Path, work: Path, repeat: int) -> dict[str, float]:
    """Run `mode` on `source` `repeat` times in fresh processes; return the fastest run."""
    runs = []
    for attempt in range(repeat):
        out = work / f"{mode}-{attempt}"
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, str(source), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(result.stdout))
        subprocess.run(["rm", "-rf", str(out)], check=True)
    return min(runs, key=lambda run: run["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000, help="pairs in the base file")
    parser.add_argument("--scales", default="1,2,4", help="file sizes as multiples of the base")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best kept")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the faces")
    args = parser.parse_args()

    images, labels = build_images(args.pairs, args.quality)
    mean_kb = sum(len(image) for image in images) / len(images) / 1000
    print(f"{args.pairs} pairs of 112x112 JPEG faces, {mean_kb:.1f} KB per image on average")
    header = ("layout", "pairs", "file MB", "job", "wall s", "MB/s", "peak RSS MB")
    print("{:8} {:>7} {:>8} {:8} {:>7} {:>7} {:>12}".format(*header))
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as folder:
        work = Path(folder)
        for form in ("bytes", "numpy"):
            for scale in (int(s) for s in args.scales.split(",")):
                source = work / f"{form}_{scale}.bin"
                write_source(source, images, labels, form, scale)
                megabytes = os.path.getsize(source) / 1e6
                for mode in ("copy", "convert"):
                    run = measure(mode, source, work, args.repeat)
                    print(
                        f"{form:8} {args.pairs * scale:>7} {megabytes:>8.1f} {mode:8} "
                        f"{run['seconds']:>7.2f} {megabytes / run['seconds']:>7.0f} "
                        f"{run['peak_rss_mb']:>12.0f}"
                    )
                source.unlink()


if __name__ == "__main__":
    main()
