"""After generate: full-ranking evaluation metrics (the baselines compared with: `llmrec.baselines`)."""

from llmrec.evaluate.metrics import ranking_metrics

__all__ = ["ranking_metrics"]
