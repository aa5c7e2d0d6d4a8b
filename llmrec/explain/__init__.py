"""After generate: explanations. Facts first (the model's own leave-one-out attribution,
co-occurrence and item attributes), stated in fixed varied wordings; optionally (experimental) the
language model's words, every claim checked on both sides, the plain statement as fallback."""

from llmrec.explain.claims import ClaimCheck, Verdict
from llmrec.explain.evidence import CooccurrenceEvidence
from llmrec.explain.explainer import Explainer, Explanation
from llmrec.explain.facts import Attributes, Evidence, Facts, FactSelector
from llmrec.explain.guard import TitleGuard, display_title, normalise

__all__ = [
    "Attributes",
    "ClaimCheck",
    "CooccurrenceEvidence",
    "Evidence",
    "Explainer",
    "Explanation",
    "FactSelector",
    "Facts",
    "TitleGuard",
    "Verdict",
    "display_title",
    "normalise",
]
