"""After generate: explanations: evidence from co-occurrence, LLM-written reasons, the faithfulness guard."""

from llmrec.explain.evidence import CooccurrenceEvidence, Evidence
from llmrec.explain.explainer import Explainer, Explanation
from llmrec.explain.guard import TitleGuard, display_title, normalise

__all__ = [
    "CooccurrenceEvidence",
    "Evidence",
    "Explainer",
    "Explanation",
    "TitleGuard",
    "display_title",
    "normalise",
]
