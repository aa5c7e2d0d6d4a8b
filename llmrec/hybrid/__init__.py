"""Stage 8, on top of generate and baselines: the LLM with another model. The hybrid
(`generate.retriever: sasrec`): SASRec-CE shortlists, the LLM scores every shortlisted item exactly,
the two scores mix. The content mix (`generate.retriever: content`, atomic ids): the LLM's catalogue
log-probs plus the item text's similarity to the recent history, and SASRec-CE's log-prob where one
is available. Weights are chosen on validation and stored in the run; `train` keeps the best of LLM
alone / hybrid / content mix as the default."""

from llmrec.hybrid.content_mix import ContentMixRecommender, fit_content_mix
from llmrec.hybrid.shortlist import (
    HybridRecommender,
    choose_retriever,
    fit_retriever,
    fitted_sasrec,
    load_recommender,
    mix,
    run_retriever,
)

__all__ = [
    "ContentMixRecommender",
    "HybridRecommender",
    "choose_retriever",
    "fit_content_mix",
    "fit_retriever",
    "fitted_sasrec",
    "load_recommender",
    "mix",
    "run_retriever",
]
