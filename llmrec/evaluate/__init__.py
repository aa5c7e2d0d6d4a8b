"""Stage 6: full-ranking evaluation and the popularity baseline."""

from llmrec.evaluate.metrics import ranking_metrics
from llmrec.evaluate.popularity import Popularity

__all__ = ["Popularity", "ranking_metrics"]
