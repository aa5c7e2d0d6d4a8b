"""Trie-constrained generation: valid, distinct, exclusion, and parity with `model.generate`."""

from __future__ import annotations

import random

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from llmrec.generate import ItemTrie, beam_search, generate_reference


def test_trie_structure_and_exclusion():
    trie = ItemTrie([[5, 6], [5, 7], [8]], end_token_id=0)
    assert trie.allowed(0).tolist() == [5, 8]
    assert trie.allowed(trie.walk([5])).tolist() == [6, 7]
    assert trie.item_at[trie.walk([5, 7, 0])] == 1
    assert trie.walk([9]) == -1 and trie.allowed(-1).numel() == 0
    blocked = trie.blocked([0])  # only the <5,6> branch closes; 5 stays open for item 1
    assert trie.allowed(0, blocked).tolist() == [5, 8]
    assert trie.allowed(trie.walk([5]), blocked).tolist() == [7]
    blocked = trie.blocked([0, 1])
    assert trie.allowed(0, blocked).tolist() == [8]
    with pytest.raises(ValueError):
        ItemTrie([[1, 2], [1, 2]], end_token_id=0)


def catalogue(tok, n_items=150, variable_length=False, seed=0):
    rng = random.Random(seed)
    tokens = [f"<{lv}_{c}>" for lv in "abc" for c in range(8)]
    tok.add_tokens(tokens, special_tokens=True)
    codes = set()
    while len(codes) < n_items:
        depth = rng.choice([2, 3]) if variable_length else 3
        codes.add(tuple(rng.randrange(8) for _ in range(depth)))
    # variable-length ids: a 2-token id may be a prefix of a 3-token id; EOS keeps them apart
    return [
        tok.convert_tokens_to_ids([f"<{'abc'[lv]}_{c}>" for lv, c in enumerate(code)])
        for code in sorted(codes)
    ]


@pytest.mark.parametrize("variable_length", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prefill_once_matches_generate(variable_length, dtype):
    tok = tiny_tokenizer()
    seqs = catalogue(tok, variable_length=variable_length)
    model = tiny_model(len(tok), seed=3).to(dtype)
    trie = ItemTrie(seqs, tok.eos_token_id)
    prompts = [
        tok(f"A user interacted with these items {'Film ' * n}\nNext item:\n").input_ids for n in range(6)
    ]
    exclude = [[1, 2, 3], [], list(range(40)), [7], [], [0]]
    kw = dict(num_beams=12, top_k=10, pad_id=tok.pad_token_id, exclude=exclude)
    fast = beam_search(model, prompts, trie, **kw)
    ref = generate_reference(model, prompts, trie, **kw)
    for a, b, ex in zip(fast, ref, exclude, strict=True):
        assert [s.item for s in a] == [s.item for s in b]
        tolerance = 1e-4 if dtype == torch.float32 else 5e-2
        assert all(abs(x.score - y.score) < tolerance for x, y in zip(a, b, strict=True))
        assert len(a) == 10 and len({s.item for s in a}) == 10  # distinct
        assert not set(ex) & {s.item for s in a}  # history excluded
        assert [s.score for s in a] == sorted((s.score for s in a), reverse=True)


def test_batching_does_not_change_results():
    tok = tiny_tokenizer()
    seqs = catalogue(tok)
    model = tiny_model(len(tok), seed=5)
    trie = ItemTrie(seqs, tok.eos_token_id)
    prompts = [tok("Film " * n + "Next item:\n").input_ids for n in range(1, 5)]
    together = beam_search(model, prompts, trie, num_beams=10, top_k=5, pad_id=tok.pad_token_id)
    alone = [
        beam_search(model, [p], trie, num_beams=10, top_k=5, pad_id=tok.pad_token_id)[0] for p in prompts
    ]
    for a, b in zip(together, alone, strict=True):
        assert [s.item for s in a] == [s.item for s in b]


def test_small_catalogue_returns_what_exists():
    tok = tiny_tokenizer()
    tok.add_tokens(["<a_0>", "<a_1>", "<a_2>"], special_tokens=True)
    seqs = [tok.convert_tokens_to_ids([t]) for t in ["<a_0>", "<a_1>", "<a_2>"]]
    model = tiny_model(len(tok))
    out = beam_search(
        model,
        [tok("Next item:\n").input_ids],
        ItemTrie(seqs, tok.eos_token_id),
        num_beams=10,
        top_k=10,
        pad_id=tok.pad_token_id,
        exclude=[[1]],
    )[0]
    assert sorted(s.item for s in out) == [0, 2]
