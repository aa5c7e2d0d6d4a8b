"""After evaluate: the baselines every LLM number stands beside, on the same split and
metrics. Popularity; SASRec-CE (full cross-entropy, the bar); content (item-text similarity to the
user's recent history, the bar for new items and text-rich catalogues)."""

from llmrec.baselines.content import ContentRecommender
from llmrec.baselines.popularity import Popularity
from llmrec.baselines.sasrec import SasrecRecommender

__all__ = ["ContentRecommender", "Popularity", "SasrecRecommender"]
