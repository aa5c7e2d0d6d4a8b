"""After baselines: the LLM with another model. The hybrid
(`generate.mix: hybrid`): SASRec-CE shortlists, the LLM scores every shortlisted item exactly,
the two scores mix. The content mix (`generate.mix: content`, atomic ids): the LLM's catalogue
log-probs plus the item text's similarity to the recent history, and SASRec-CE's log-prob where one
is available. Weights are chosen on validation and stored in the run; `train` keeps the best of LLM
alone / hybrid / content mix as the default."""

from llmrec.mix.content import ContentMixRecommender, fit_content_mix
from llmrec.mix.hybrid import (
    HybridRecommender,
    choose_mix,
    fit_hybrid,
    fitted_sasrec,
    load_recommender,
    mixed_scores,
    run_mix,
)

__all__ = [
    "ContentMixRecommender",
    "HybridRecommender",
    "choose_mix",
    "fit_content_mix",
    "fit_hybrid",
    "fitted_sasrec",
    "load_recommender",
    "mixed_scores",
    "run_mix",
]
