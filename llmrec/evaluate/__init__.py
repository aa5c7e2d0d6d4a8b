"""Stage 6: full-ranking evaluation metrics (the baselines they compare with are `llmrec.baselines`)."""

from llmrec.evaluate.metrics import ranking_metrics

__all__ = ["ranking_metrics"]
