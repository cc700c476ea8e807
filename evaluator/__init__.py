"""Streaming 10-fold face-verification evaluation on binconv pair shards.

Importing this package imports PyTorch. `binconv` commands that do not
evaluate never import it.
"""

from .coverage import check_exactly_once
from .dataset import PairBatch, PairDataset, PairLoader
from .embed import EmbeddedPairs, embed_pairs
from .evaluate import EvaluationResult, EvaluationTiming, compute_result, evaluate
from .models import load_model

__all__ = [
    "EmbeddedPairs",
    "EvaluationResult",
    "EvaluationTiming",
    "PairBatch",
    "PairDataset",
    "PairLoader",
    "check_exactly_once",
    "compute_result",
    "embed_pairs",
    "evaluate",
    "load_model",
]
