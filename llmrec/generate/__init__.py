"""After train: trie-constrained top-K generation (prefill-once beam search; `generate()` reference)."""

from llmrec.generate.beam import Scored, beam_search
from llmrec.generate.recommender import Recommendation, Recommender
from llmrec.generate.reference import generate_reference
from llmrec.generate.trie import ItemTrie

__all__ = ["ItemTrie", "Recommendation", "Recommender", "Scored", "beam_search", "generate_reference"]
