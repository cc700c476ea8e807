"""`binconv demo`: build a sample `.bin` of generated faces, convert it, inspect and verify it."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

from .convert import ConversionResult, ConvertProgress, convert_bins
from .errors import BinconvError
from .inspection import InspectionReport, inspect_path
from .storage import open_atomic_write
from .synthetic import generate_pairs
from .verify import VerifyResult, verify_conversion

__all__ = ["DEFAULT_DEMO_DIR", "DEMO_NUM_PAIRS", "DemoResult", "run_demo", "write_demo_bin"]

DEFAULT_DEMO_DIR = Path("binconv-demo")
DEMO_NUM_PAIRS = 300
# Small shards, so that the 300 demo pairs span several of them.
DEMO_PAIRS_PER_SHARD = 100


@dataclass(frozen=True)
class DemoResult:
    """The files the demo wrote and what each step found.

    Attributes:
        bin_path: The generated `.bin` file.
        conversion: Result of converting it.
        report: Inspection of the converted dataset.
        verification: Comparison of the dataset with the `.bin` file.
    """

    bin_path: Path
    conversion: ConversionResult
    report: InspectionReport
    verification: VerifyResult


def write_demo_bin(path: Path, num_pairs: int = DEMO_NUM_PAIRS, seed: int = 0) -> Path:
    """Write a `.bin` file of `num_pairs` generated face pairs, half of them positive.

    The file has the layout that Python 3 producers write: a protocol-4
    pickle of `(images, issame)` with images as JPEG `bytes` and issame as
    bools. Equal arguments give byte-identical files.

    Raises:
        BinconvError: The folder of `path` cannot be created.
    """
    images: list[bytes] = []
    issame: list[bool] = []
    for img1, img2, same in generate_pairs(num_pairs, seed):
        images += [img1, img2]
        issame.append(same)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BinconvError(
            f"{path.parent}: cannot create the output folder ({exc.strerror}); pass another --out"
        ) from None
    with open_atomic_write(str(path)) as out:
        pickle.dump((images, issame), out, protocol=4)
    return path


def run_demo(
    out_dir: Path = DEFAULT_DEMO_DIR,
    num_pairs: int = DEMO_NUM_PAIRS,
    progress: ConvertProgress | None = None,
) -> DemoResult:
    """Write `out_dir/demo.bin`, convert it to `out_dir/shards/demo/`, inspect and verify it.

    Raises:
        BinconvError: A step failed, for example because `out_dir` cannot be written.
    """
    bin_path = write_demo_bin(out_dir / "demo.bin", num_pairs)
    [conversion] = convert_bins(
        [bin_path],
        str(out_dir / "shards"),
        pairs_per_shard=DEMO_PAIRS_PER_SHARD,
        overwrite=True,
        progress=progress,
    )
    report = inspect_path(conversion.dataset_dir)
    verification = verify_conversion(bin_path, conversion.dataset_dir)
    return DemoResult(bin_path, conversion, report, verification)
