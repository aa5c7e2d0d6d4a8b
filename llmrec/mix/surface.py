"""What a mix of the LLM with another model keeps of the LLM: the `Recommender` surface the verbs
use besides `recommend` (model, tokenizer, item_ids, titles, cfg, check_history) and a backend name
saying what was mixed in."""

from __future__ import annotations

from llmrec.generate import Recommender


class MixedRecommender:
    def __init__(self, llm: Recommender, mixed_in: str) -> None:
        self.llm = llm
        self.model, self.tokenizer, self.item_ids = llm.model, llm.tokenizer, llm.item_ids
        self.titles, self.cfg = llm.titles, llm.cfg
        self.backend = f"{llm.backend}+{mixed_in}"
        self.check_history = llm.check_history
