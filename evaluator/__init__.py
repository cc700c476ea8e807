"""Streaming 10-fold face-verification evaluation on binconv pair shards.

Importing this package imports PyTorch. `binconv` commands that do not
evaluate never import it.
"""

from .callback import VerificationCallback
from .coverage import check_exactly_once
from .dataset import PairBatch, PairDataset, PairLoader
from .distributed import DistributedEvaluationError
from .embed import EmbeddedPairs, embed_pairs
from .evaluate import EvaluationResult, EvaluationTiming, compute_result, evaluate
from .evaluate_distributed import evaluate_distributed
from .models import load_model

__all__ = [
    "DistributedEvaluationError",
    "EmbeddedPairs",
    "EvaluationResult",
    "EvaluationTiming",
    "PairBatch",
    "PairDataset",
    "PairLoader",
    "VerificationCallback",
    "check_exactly_once",
    "compute_result",
    "embed_pairs",
    "evaluate",
    "evaluate_distributed",
    "load_model",
]
