"""Stage 8, on top of generate and baselines: the hybrid recommender (`generate.retriever: sasrec`).
SASRec-CE shortlists, the LLM scores every shortlisted item exactly, and the two scores mix with a
weight chosen on validation and stored in the run."""

from llmrec.hybrid.shortlist import (
    HybridRecommender,
    choose_retriever,
    fit_retriever,
    load_recommender,
    mix,
    run_retriever,
)

__all__ = [
    "HybridRecommender",
    "choose_retriever",
    "fit_retriever",
    "load_recommender",
    "mix",
    "run_retriever",
]
