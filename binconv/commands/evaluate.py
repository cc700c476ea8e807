"""`binconv evaluate`: evaluate a face-embedding model on converted datasets.

PyTorch and the evaluator are imported inside the command, so that the
other commands start without them.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from ..errors import BinconvError
from . import configure_logging, exits_on_error
from ._progress import progress_enabled

if TYPE_CHECKING:
    import torch

    from evaluator.embed import Model
    from evaluator.evaluate import EvaluationResult

__all__ = [
    "EVALUATION_FOLDS",
    "evaluate_command",
    "evaluate_demo",
    "format_results",
    "parse_image_size",
]

# Folds of the classic protocol; a dataset needs at least one pair per fold.
EVALUATION_FOLDS = 10


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse `112` or `112x96` (height x width) into (height, width).

    Raises:
        typer.BadParameter: The text is not one or two positive integers.
    """
    parts = text.lower().split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise typer.BadParameter(f"expected SIZE or HEIGHTxWIDTH in pixels, got {text!r}")
    return (sizes[0], sizes[-1])


@exits_on_error
def evaluate_command(
    model: Annotated[
        str,
        typer.Argument(
            help="TorchScript file, ONNX file (.onnx), or package.module:factory "
            "(a function that returns a torch.nn.Module; see --weights)."
        ),
    ],
    datasets: Annotated[
        list[str],
        typer.Argument(
            help="Converted datasets: manifests (ROOT/lfw/lfw.json), dataset folders "
            "(ROOT/lfw), or roots that contain dataset folders (ROOT). Local paths or "
            "fsspec URLs.",
            show_default=False,
        ),
    ],
    weights: Annotated[
        str | None,
        typer.Option(help="State dict file (torch.save) to load into a factory's model."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Pairs per batch; the model gets 4 images per pair.")
    ] = 64,
    workers: Annotated[
        int, typer.Option(min=0, help="DataLoader workers that read and decode; 0 for none.")
    ] = 2,
    device: Annotated[
        str, typer.Option(help="Device for the model: auto (CUDA if available), cpu, cuda:N.")
    ] = "auto",
    image_size: Annotated[
        str,
        typer.Option(help="Model input size in pixels: SIZE, or HEIGHTxWIDTH such as 112x96."),
    ] = "112",
    amp: Annotated[
        bool, typer.Option("--amp", help="Run the model under torch.autocast (float16 on CUDA).")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results as a JSON list instead of a table.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write the ROC curves of all datasets to this PNG file (needs matplotlib)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Draw no progress bar.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
) -> None:
    """Evaluate a face-embedding model on converted datasets with the 10-fold protocol.

    Prints one row per dataset with the classic XNorm and Accuracy-Flip
    (mean+-std over 10 folds), VAL and FAR at FAR=1e-3, TAR at FAR=1e-3,
    ROC AUC, EER and the time taken.
    """
    configure_logging(verbose)
    size = parse_image_size(image_size)
    if plot is not None:
        _check_matplotlib()

    from evaluator.models import load_model
    from evaluator.report import plot_roc
    from evaluator.sources import find_datasets

    sources = [manifest for path in datasets for manifest in find_datasets(path)]
    torch_device = _pick_device(device)
    loaded = load_model(model, weights=weights, device=torch_device)
    results = [
        _evaluate_one(loaded, source, batch_size, workers, torch_device, size, amp, quiet)
        for source in sources
    ]
    if plot is not None:
        plot_roc(results, plot)
    if json_output:
        typer.echo(json.dumps([result.to_dict() for result in results], indent=2))
    else:
        typer.echo(format_results(results))
    if plot is not None and not json_output:
        typer.echo(f"wrote ROC curves to {plot}")


def _evaluate_one(
    model: Model,
    source: str,
    batch_size: int,
    workers: int,
    device: torch.device,
    image_size: tuple[int, int],
    amp: bool,
    quiet: bool,
) -> EvaluationResult:
    from binconv.dataset_reader import locate_dataset
    from evaluator.evaluate import evaluate

    location = locate_dataset(source)
    bar = tqdm(
        total=location.manifest.num_pairs,
        desc=location.manifest.name,
        unit="pair",
        file=sys.stderr,
        leave=False,
        disable=not progress_enabled(quiet),
    )
    with bar, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(
            model,
            location,
            batch_size=batch_size,
            num_workers=workers,
            device=device,
            image_size=image_size,
            autocast=amp,
            n_folds=EVALUATION_FOLDS,
            on_batch=bar.update,
        )
    # One plain line per warning, such as metrics left undefined by a set without negatives.
    for warning in caught:
        typer.echo(f"binconv: warning: {result.dataset}: {warning.message}", err=True)
    return result


def evaluate_demo(dataset: str, quiet: bool) -> EvaluationResult:
    """Evaluate the built-in demo model on the CPU on `dataset`, a dataset folder or manifest."""
    import torch

    from evaluator.demo_model import build_demo_model

    cpu = torch.device("cpu")
    return _evaluate_one(build_demo_model(), dataset, 64, 2, cpu, (112, 112), False, quiet)


def format_results(results: list[EvaluationResult]) -> str:
    """Format results as the table that `binconv evaluate` prints."""
    from evaluator.report import format_table

    return format_table(results)


def _pick_device(name: str) -> torch.device:
    import torch

    from evaluator.models import resolve_device

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BinconvError(
            "--plot needs matplotlib; install it with pip install 'binconv[plot]'"
        ) from None
