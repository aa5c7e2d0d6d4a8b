"""Trie-constrained beam search that prefills each prompt once.

`model.generate(num_beams=W)` copies the prompt W times before the prefill, so it runs the long
prompt through the model W times. Here the prompt is run once per user and its KV cache is
copied to the W beams (`reorder_cache` with a repeated index), after which every step feeds one
token per beam. The selection rule follows transformers' beam search with `length_penalty=0`
(scores are sequence log-probabilities): the top 2W continuations are ranked, an end token (EOS
there) among the top W closes an item, the best W others keep running, and a user is done when
its W finished items all score above its best running beam.

Each step gathers, from every beam's next-token log-probs, only the tokens the trie allows there (a
few dozen for semantic ids) and ranks those: the vocabulary-wide mask and top-k it replaces, and the
copy of every row's whole vocabulary off the device, cost more than the model's step on a GPU
(benchmarks/results/gpu/suite.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from llmrec.generate.trie import ItemTrie
from llmrec.model.time_gaps import gap_context
from llmrec.prompts.time import split_code

NEG = float("-inf")


@dataclass
class Scored:
    item: int  # index into the catalogue
    score: float  # log-probability of the item's id tokens and the end token


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    return ids, mask


Advance = Callable[[list[int] | None, list[int] | None, list[int]], torch.Tensor]
"""`advance(parents, tokens, nodes)` -> next-token log-probs, one row per beam (rows x vocab), on
any device.

The first call has `parents = tokens = None` and one row per prompt (the prefill). Later calls
have batch x num_beams rows: beam r continues previous row `parents[r]` with `tokens[r]` and now
sits at trie node `nodes[r]` (-1: a dead beam, whose row is ignored). Rows need hold correct values
only for the tokens the trie allows at the node; the search reads no others.
"""


def allowed_logp(
    logp: torch.Tensor, trie: ItemTrie, nodes: list[int], blocked: list[dict[int, set[int]] | None]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, cols): each row's log-probs at the tokens the trie allows at its node (-inf in the
    fill), gathered where `logp` is and brought to the CPU, and those tokens."""
    cols, valid = trie.allowed_matrix(nodes, blocked)
    values = logp.gather(1, cols.to(logp.device)).float().cpu()
    return values.masked_fill(~valid, NEG), cols


def trie_beam_search(
    advance: Advance,
    batch: int,
    trie: ItemTrie,
    *,
    num_beams: int,
    top_k: int,
    exclude: list[list[int]] | None = None,
) -> list[list[Scored]]:
    """Top-`top_k` distinct items for each of `batch` prompts, best first, whatever computes the
    log-probs (`advance`). `exclude[b]` lists item indices that may not be returned for prompt b."""
    if top_k > num_beams:
        raise ValueError(f"top_k ({top_k}) cannot exceed num_beams ({num_beams})")
    width = num_beams
    blocked = [trie.blocked(ex) if ex else None for ex in (exclude or [None] * batch)]
    row_blocked = [blocked[r // width] for r in range(batch * width)]

    values, cols = allowed_logp(advance(None, None, [0] * batch), trie, [0] * batch, blocked)
    # Step 0 has one real beam per user; the other W-1 start at -inf so only beam 0 expands.
    scores = torch.full((batch, width), NEG)
    scores[:, 0] = 0.0
    nodes = [0] * (batch * width)
    values, cols = values.repeat_interleave(width, dim=0), cols.repeat_interleave(width, dim=0)

    pool: list[list[tuple[float, int]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for _ in range(trie.max_depth):
        allowed = values.shape[1]
        acc = (scores.view(batch, width, 1) + values.view(batch, width, allowed)).view(batch, -1)
        if acc.shape[1] < 2 * width:  # fewer (beam, token) pairs than candidates ranked: fill with -inf
            acc = torch.cat([acc, torch.full((batch, 2 * width - acc.shape[1]), NEG)], dim=1)
        top_scores, top_idx = torch.topk(acc, k=2 * width, dim=-1)
        top_idx = top_idx.clamp(max=width * allowed - 1)  # a fill column: its score is -inf anyway
        # Python lists: the per-candidate bookkeeping below is scalar work, slow on tensors.
        cand_scores = top_scores.tolist()
        cand_parent = (top_idx // allowed).tolist()
        cand_token = cols.view(batch, width * allowed).gather(1, top_idx).tolist()

        new_scores = torch.full((batch, width), NEG)
        new_nodes, new_parents, new_tokens = [], [], []
        for b in range(batch):
            finite = [s > NEG for s in cand_scores[b]]
            is_end = [f and t == trie.end for f, t in zip(finite, cand_token[b], strict=True)]
            if not done[b]:
                for rank in range(width):  # an end token closes an item only within the top W
                    if is_end[rank]:
                        leaf = trie.step(nodes[b * width + cand_parent[b][rank]], trie.end)
                        pool[b].append((cand_scores[b][rank], trie.item_at[leaf]))
                pool[b] = sorted(pool[b], key=lambda x: -x[0])[:width]
            # the best W candidates that did not just end (stable order: ties resolve as torch.topk)
            running = [c for c in range(2 * width) if not is_end[c]][:width]
            running += [c for c in range(2 * width) if is_end[c]][: width - len(running)]
            for j, c in enumerate(running):
                ok = finite[c] and not is_end[c] and not done[b]
                p = cand_parent[b][c]
                new_scores[b, j] = cand_scores[b][c] if ok else NEG
                new_nodes.append(trie.step(nodes[b * width + p], cand_token[b][c]) if ok else -1)
                new_parents.append(b * width + p)
                new_tokens.append(cand_token[b][c] if ok else trie.end)
            best_running = float(new_scores[b].max())
            if len(pool[b]) == width and best_running <= pool[b][-1][0]:
                done[b] = True
        if all(done) or not torch.isfinite(new_scores).any():
            break
        scores, nodes = new_scores, new_nodes
        values, cols = allowed_logp(advance(new_parents, new_tokens, nodes), trie, nodes, row_blocked)

    return [[Scored(item, s) for s, item in pool[b][:top_k] if s > NEG] for b in range(batch)]


@torch.no_grad()
def beam_search(
    model: PreTrainedModel,
    prompts: list[list[int]],
    trie: ItemTrie,
    *,
    num_beams: int,
    top_k: int,
    pad_id: int,
    exclude: list[list[int]] | None = None,
    gaps: list[list[int]] | None = None,
) -> list[list[Scored]]:
    """The transformers backend: prefill the batch of prompts once, then one token per beam and
    step on the copied KV cache. `exclude[b]` lists item indices not to return for prompt b;
    `gaps`: the prompts' time-gap codes, if any (the generated id tokens carry none)."""
    device = model.device
    width = num_beams
    ids, attn = left_pad(prompts, pad_id)
    ids, attn = ids.to(device), attn.to(device)
    codes = left_pad(gaps, 0)[0].to(device) if gaps is not None else None
    # the first id token of the answer carries the gap to the request as its `before` (as a target's
    # first token does in a training window): the `after` half of the prompt's last code
    first = torch.tensor([split_code(g[-1])[1] if g else 0 for g in gaps]) if gaps is not None else None
    state: dict = {"step": 0}

    def advance(parents: list[int] | None, tokens: list[int] | None, nodes: list[int]) -> torch.Tensor:
        if parents is None:
            with gap_context(model, codes):
                out = model(
                    input_ids=ids,
                    attention_mask=attn,
                    position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True,
                )
            state["cache"], state["attn"] = out.past_key_values, attn.repeat_interleave(width, dim=0)
            state["cache_rows"] = torch.arange(len(prompts)).repeat_interleave(width)  # prefill row per beam
            return torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        beam_rows = torch.tensor(parents)
        state["cache"].reorder_cache(state["cache_rows"][beam_rows].to(device))
        state["cache_rows"] = torch.arange(len(parents))
        step_attn = state["attn"][beam_rows.to(device)]
        step_attn = torch.cat([step_attn, torch.ones_like(step_attn[:, :1])], 1)
        step_codes = None
        if first is not None and state["step"] == 0:
            step_codes = first[beam_rows // width].unsqueeze(-1).to(device)
        state["step"] += 1
        with gap_context(model, step_codes):
            out = model(
                input_ids=torch.tensor(tokens, device=device).unsqueeze(-1),
                attention_mask=step_attn,
                position_ids=step_attn.sum(-1, keepdim=True) - 1,
                past_key_values=state["cache"],
                use_cache=True,
            )
        state["cache"], state["attn"] = out.past_key_values, step_attn
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    return trie_beam_search(advance, len(prompts), trie, num_beams=num_beams, top_k=top_k, exclude=exclude)
