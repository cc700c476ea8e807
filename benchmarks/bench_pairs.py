"""Benchmark `binconv pairs` and `binconv export` on a generated LFW-style image folder.

For each size, the script writes an image folder in the LFW layout
(`NAME/NAME_0001.jpg`, 112x112 JPEGs) and a `pairs.txt` of 10 sets with as
many matched as mismatched pairs. It then times these steps, each in a
fresh Python process whose peak RSS it reports:

- copy: reading every image file of the folder and writing the bytes into
  one file, the I/O floor for any tool that reads the folder;
- pairs: `build_pairs_dataset` from scratch, split into its stages: read
  and hash each distinct image, decode each distinct image, write shards;
- pairs rerun: the same call on unchanged input, which reads and hashes
  the images, finds the dataset up to date and keeps it;
- export: `export_dataset` of the result to a legacy `.bin`;
- convert: `convert_bins` of that `.bin`, whose shards must equal those
  that `pairs` wrote.

Run from the repository root:

    python benchmarks/bench_pairs.py --pairs 6000 24000 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES_PER_PERSON = 4
NUM_SETS = 10

# Each step runs in its own process, so ru_maxrss is the step's own peak.
STEP_CODE = r"""
import json, resource, sys, time
from pathlib import Path

from binconv.convert import convert_bins
from binconv.export import export_dataset
from binconv.pairs_build import build_pairs_dataset

step, work = sys.argv[1], Path(sys.argv[2])
stages = {}


class StageTimes:
    def start(self, name, num_pairs):
        stages[name.split(": ", 1)[1]] = time.perf_counter()

    def advance(self):
        pass

    def finish(self):
        pass


progress = StageTimes()
start = time.perf_counter()


if step == "copy":
    with open(work / "copy.bin", "wb") as out:
        for path in sorted((work / "images").glob("*/*.jpg")):
            out.write(path.read_bytes())
elif step in ("pairs", "pairs rerun"):
    result = build_pairs_dataset(
        work / "pairs.txt", work / "images", str(work / "out"), "bench", progress=progress
    )
    assert result.written == (step == "pairs")
elif step == "export":
    export_dataset(str(work / "out" / "bench"), str(work / "bench.bin"), overwrite=True)
elif step == "convert":
    convert_bins([work / "bench.bin"], str(work / "converted"))
end = time.perf_counter()
stages = {name: moment - start for name, moment in stages.items()}
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": end - start, "stages": stages, "peak_mib": peak_kib / 1024}))
"""


def make_face_like_jpeg(rng: np.random.Generator) -> bytes:
    """Return a 112x112 JPEG with smooth shapes and sensor-like noise, 4.6 KB on average."""
    small = rng.integers(30, 226, size=(7, 7, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(small).resize((112, 112), Image.Resampling.BILINEAR))
    noisy = smooth.astype(np.int16) + rng.normal(0, 6, size=smooth.shape).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def write_lfw_folder(work: Path, num_pairs: int) -> None:
    """Write the images of `num_pairs // 2` people to `work/images/`, and `work/pairs.txt`."""
    rng = np.random.default_rng(num_pairs)
    per_set = num_pairs // (2 * NUM_SETS)
    num_people = max(2, num_pairs // 2)
    for person in range(num_people):
        folder = work / "images" / f"Person_{person:06d}"
        folder.mkdir(parents=True)
        for number in range(1, IMAGES_PER_PERSON + 1):
            data = make_face_like_jpeg(rng)
            (folder / f"Person_{person:06d}_{number:04d}.jpg").write_bytes(data)

    lines = [f"{NUM_SETS}\t{per_set}"]
    for _ in range(NUM_SETS):
        for _ in range(per_set):
            person = int(rng.integers(num_people))
            first, second = rng.choice(np.arange(1, IMAGES_PER_PERSON + 1), 2, replace=False)
            lines.append(f"Person_{person:06d}\t{first}\t{second}")
        for _ in range(per_set):
            one, other = rng.choice(num_people, 2, replace=False)
            first, second = rng.integers(1, IMAGES_PER_PERSON + 1, size=2)
            lines.append(f"Person_{one:06d}\t{first}\tPerson_{other:06d}\t{second}")
    (work / "pairs.txt").write_text("\n".join(lines) + "\n")


def run_step(step: str, work: Path) -> dict:
    """Run one step in a fresh interpreter and return its timings and peak RSS."""
    completed = subprocess.run(
        [sys.executable, "-c", STEP_CODE, step, str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout)


def bench_size(num_pairs: int, root: Path, repeat: int) -> list[tuple[str, ...]]:
    """Benchmark every step on a folder of `num_pairs` pairs; return the table rows.

    Each step runs `repeat` times and the fastest run is reported, because
    other load on the machine only ever slows a run down.
    """
    work = root / f"pairs-{num_pairs}"
    write_lfw_folder(work, num_pairs)
    rows = []
    for step in ("copy", "pairs", "pairs rerun", "export", "convert"):
        result = min((_run_fresh(step, work) for _ in range(repeat)), key=lambda run: run["wall"])
        written = _bytes_written(step, work)
        detail = ""
        if step == "pairs":
            detail = _stage_times(result["stages"], result["wall"])
        rows.append(
            (
                f"{num_pairs:,}",
                step,
                f"{result['wall']:.2f}",
                f"{written / 1e6:.1f}" if written else "0",
                f"{written / result['wall'] / 1e6:.0f}" if written else "-",
                f"{result['peak_mib']:.0f}",
                detail,
            )
        )
    return rows


def _stage_times(starts: dict[str, float], wall: float) -> str:
    """Return how long each stage of `build_pairs_dataset` took, from the stage start times."""
    ordered = sorted(starts.items(), key=lambda item: item[1])
    ends = [start for _, start in ordered[1:]] + [wall]
    return ", ".join(
        f"{stage.split()[0]} {end - start:.2f} s"
        for (stage, start), end in zip(ordered, ends, strict=True)
    )


def _run_fresh(step: str, work: Path) -> dict:
    # "pairs" and "convert" must build, not find an up-to-date dataset.
    outputs = {"pairs": work / "out", "convert": work / "converted"}
    if step in outputs:
        shutil.rmtree(outputs[step], ignore_errors=True)
    return run_step(step, work)


def _bytes_written(step: str, work: Path) -> int:
    if step == "copy":
        return (work / "copy.bin").stat().st_size
    if step == "pairs":
        manifest = json.loads((work / "out" / "bench" / "bench.json").read_text())
        return sum(shard["size"] for shard in manifest["shardlist"])
    if step == "export":
        return (work / "bench.bin").stat().st_size
    if step == "convert":
        converted = json.loads((work / "converted" / "bench" / "bench.json").read_text())
        original = json.loads((work / "out" / "bench" / "bench.json").read_text())
        # The benchmark doubles as a round-trip check at full size.
        assert converted["shardlist"] == original["shardlist"], "export + convert changed shards"
        return sum(shard["size"] for shard in converted["shardlist"])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[6000], help="pair counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the fastest counts")
    args = parser.parse_args()
    header = ("pairs", "step", "wall s", "MB written", "MB/s", "peak RSS MiB", "detail")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as root:
        for num_pairs in args.pairs:
            rows.extend(bench_size(num_pairs, Path(root), args.repeat))
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
