"""The generation API: top-K catalogue items for user histories, from a trained run.

rec = Recommender.from_run("runs/ml100k")
rec.recommend([["50", "172", "133"]], k=10)   # -> [[Recommendation(item, title, score, rank), ...]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmrec.config import GenerateConfig, PromptConfig
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.generate.beam import Scored, beam_search
from llmrec.generate.reference import generate_reference
from llmrec.generate.trie import ItemTrie
from llmrec.ids import ItemIds, id_token_ids
from llmrec.prompts import PromptBuilder
from llmrec.train.run_dir import RunDir


@dataclass
class Recommendation:
    item: str
    title: str
    score: float
    rank: int


class Recommender:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        item_ids: ItemIds,
        titles: dict[str, str],
        prompt_cfg: PromptConfig,
        gen_cfg: GenerateConfig,
    ) -> None:
        self.model, self.tokenizer, self.item_ids, self.titles = model, tokenizer, item_ids, titles
        self.cfg = gen_cfg
        self.builder = PromptBuilder(
            prompt_cfg, tokenizer, dict(zip(item_ids.items, item_ids.ids, strict=True)), titles
        )
        self.trie = ItemTrie(id_token_ids(tokenizer, item_ids.ids), tokenizer.eos_token_id)

    @classmethod
    def from_run(cls, run_dir: str | Path, dtype: str | None = None) -> Recommender:
        run = RunDir(run_dir)
        cfg = run.load_config()
        tokenizer = run.load_tokenizer()
        model = run.load_model(tokenizer, dtype)
        split_items = SplitData.load(cfg.prepared_dir).items
        titles = dict(zip(split_items["item"], split_items["title"].fillna(""), strict=True))
        return cls(model, tokenizer, ItemIds.load(run.path), titles, cfg.prompts, cfg.generate)

    def check_history(self, history: list[str], where: str = "history") -> None:
        unknown = [i for i in history if i not in self.item_ids.index]
        if unknown:
            raise InputError(
                f"unknown item id(s) {unknown[:5]} (not in the catalogue)", where=where, field="item"
            )

    def recommend(
        self,
        histories: list[list[str]],
        k: int | None = None,
        exclude_history: bool | None = None,
        progress: bool = False,
        reference: bool = False,
    ) -> list[list[Recommendation]]:
        """Top-`k` distinct catalogue items per history (oldest item first), best first.
        `reference=True` decodes with `model.generate` instead of the prefill-once beam search."""
        k = k or self.cfg.top_k
        exclude_history = self.cfg.exclude_history if exclude_history is None else exclude_history
        for n, history in enumerate(histories):
            self.check_history(history, where=f"history {n + 1}")
        prompts = self.tokenizer(
            [self.builder.render(h) for h in histories], add_special_tokens=False
        ).input_ids
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding per batch
        decode = generate_reference if reference else beam_search
        results: list[list[Scored]] = [[] for _ in histories]
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(order), desc="recommending", unit="user", disable=not progress)
        for start in range(0, len(order), self.cfg.batch_size):
            idx = order[start : start + self.cfg.batch_size]
            exclude = (
                [[self.item_ids.index[i] for i in histories[j]] for j in idx] if exclude_history else None
            )
            with torch.inference_mode():
                out = decode(
                    self.model,
                    [prompts[j] for j in idx],
                    self.trie,
                    num_beams=max(self.cfg.num_beams, k),
                    top_k=k,
                    pad_id=self.tokenizer.pad_token_id,
                    exclude=exclude,
                )
            for j, scored in zip(idx, out, strict=True):
                results[j] = scored
            bar.update(len(idx))
        bar.close()
        self.model.train(was_training)
        return [
            [
                Recommendation(
                    self.item_ids.items[s.item],
                    self.titles.get(self.item_ids.items[s.item], ""),
                    s.score,
                    r + 1,
                )
                for r, s in enumerate(scored)
            ]
            for scored in results
        ]
