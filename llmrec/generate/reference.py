"""The reference decoder: `model.generate` beam search with a trie logits processor.

Slow (it prefills the prompt once per beam) but built only from transformers' own beam search, so
it checks the fast path in `beam.py`: on the same model and prompts both return the same items.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel

from llmrec.generate.beam import Scored, left_pad
from llmrec.generate.trie import ItemTrie


class TrieLogitsProcessor(LogitsProcessor):
    """Sets every token the trie does not allow after a beam's generated prefix to -inf."""

    def __init__(self, trie: ItemTrie, prompt_len: int, num_beams: int, blocked: list) -> None:
        self.trie, self.prompt_len, self.num_beams, self.blocked = trie, prompt_len, num_beams, blocked

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_len :].tolist()
        nodes = [self.trie.walk(g) for g in generated]
        rows_blocked = [self.blocked[r // self.num_beams] for r in range(len(nodes))]
        return scores + self.trie.mask(nodes, scores.shape[-1], rows_blocked).to(scores.device)


@torch.no_grad()
def generate_reference(
    model: PreTrainedModel,
    prompts: list[list[int]],
    trie: ItemTrie,
    *,
    num_beams: int,
    top_k: int,
    pad_id: int,
    exclude: list[list[int]] | None = None,
) -> list[list[Scored]]:
    ids, attn = left_pad(prompts, pad_id)
    blocked = [trie.blocked(ex) if ex else None for ex in (exclude or [None] * len(prompts))]
    processor = TrieLogitsProcessor(trie, ids.shape[1], num_beams, blocked)
    out = model.generate(
        input_ids=ids.to(model.device),
        attention_mask=attn.to(model.device),
        num_beams=num_beams,
        num_return_sequences=top_k,
        max_new_tokens=trie.max_depth,
        length_penalty=0.0,  # rank by sequence log-probability, as the fast path does
        do_sample=False,
        logits_processor=LogitsProcessorList([processor]),
        eos_token_id=trie.end,  # the token that closes an item
        pad_token_id=pad_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    results: list[list[Scored]] = []
    for b in range(len(prompts)):
        row = []
        for r in range(b * top_k, (b + 1) * top_k):
            score = float(out.sequences_scores[r])
            leaf = 0
            for tok in out.sequences[r, ids.shape[1] :].tolist():
                leaf = trie.step(leaf, tok)
                if leaf < 0 or leaf in trie.item_at:
                    break
            if leaf in trie.item_at and score > -1e8:
                row.append(Scored(trie.item_at[leaf], score))
        results.append(row)
    return results
