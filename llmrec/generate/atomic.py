"""Top-K for atomic ids (one token per item): one forward pass per batch of prompts, a softmax over
the catalogue's tokens at the last position, excluded items masked, top-K taken. No search: every
item is one step away, so its score is exact and the K best are the K best."""

from __future__ import annotations

import torch

from llmrec.generate.beam import Scored, left_pad
from llmrec.model.time_gaps import gap_context
from llmrec.train.objectives import item_logits, model_parts


def catalogue_scores(
    model,
    prompts: list[list[int]],
    item_token_ids: list[int],
    *,
    pad_id: int,
    exclude: list[list[int]] | None = None,
    gaps: list[list[int]] | None = None,
) -> torch.Tensor:
    """(prompts, items) log-probabilities under the catalogue softmax (what training optimised) of
    every item as the next id; `exclude[r]`'s items (catalogue indices) are -inf in row r.
    `prompts` end where an item id would start; `gaps`: their time-gap codes, if any."""
    ids, mask = left_pad(prompts, pad_id)
    ids, mask = ids.to(model.device), mask.to(model.device)
    codes = left_pad(gaps, 0)[0].to(model.device) if gaps is not None else None
    decoder, head = model_parts(model)
    with gap_context(model, codes):
        hidden = decoder(
            input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)
        ).last_hidden_state[:, -1]
    rows = torch.tensor(item_token_ids, device=hidden.device)
    scores = torch.log_softmax(item_logits(head, hidden, rows).float(), dim=-1)
    for r, items in enumerate(exclude or []):
        if items:
            scores[r, torch.tensor(items, device=scores.device)] = float("-inf")
    return scores


def top_scored(scores: torch.Tensor, top_k: int) -> list[list[Scored]]:
    """Each row's `top_k` best columns as `Scored`, -inf (excluded) ones left out."""
    best = scores.topk(min(top_k, scores.shape[1]), dim=-1)
    return [
        [
            Scored(int(i), float(s))
            for i, s in zip(row_i.tolist(), row_s.tolist(), strict=True)
            if s > float("-inf")
        ]
        for row_i, row_s in zip(best.indices, best.values, strict=True)
    ]
