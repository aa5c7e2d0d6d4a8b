"""Item ids: bijective, collision-free, and built without looking at held-out items."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import catalog

from llmrec.config import IdsConfig
from llmrec.data import leave_one_out
from llmrec.errors import InputError
from llmrec.ids import ItemIds, build_item_ids, id_token_ids
from llmrec.ids.item_ids import numeric_ids, semantic_ids, title_ids
from llmrec.ids.rqkmeans import residual_kmeans, resolve_collisions


def random_split(n_users=30, n_items=50, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{rng.integers(n_items)}", t) for u in range(n_users) for t in range(8)]
    split = leave_one_out(catalog(rows))
    split.items["title"] = [f"Item {i}" for i in range(len(split.items))]
    return split


def test_semantic_ids_are_a_bijection_even_with_identical_embeddings():
    emb = np.zeros((40, 4), dtype=np.float32)  # every item collides at every level
    emb[:10] = np.eye(4)[np.arange(10) % 4]
    ids, _ = semantic_ids(emb, IdsConfig(scheme="semantic", levels=2, codebook_size=8))
    assert len(set(ids)) == 40
    assert all(i.startswith("<a_") and "<b_" in i for i in ids)


def test_collisions_move_to_nearest_free_code():
    emb = np.array([[0.0, 0.0], [0.0, 0.01], [10.0, 10.0]])
    codes, stages = residual_kmeans(emb, levels=2, codebook_size=2, seed=0)
    fixed = resolve_collisions(codes, stages, codebook_size=2)
    assert len({tuple(r) for r in fixed}) == 3
    assert fixed[0][0] == fixed[1][0]  # near-identical items keep their shared prefix


def test_semantic_ids_ignore_held_out_items():
    """Collaborative ids depend on training sequences only: changing valid/test targets changes nothing."""
    split = random_split()
    cfg = IdsConfig(scheme="semantic", levels=2, codebook_size=8, embeddings="collaborative")
    before = build_item_ids(cfg, split).ids
    split.users["test"] = split.users["test"].map(lambda _: "i0")
    split.users["valid"] = split.users["valid"].map(lambda _: "i1")
    assert build_item_ids(cfg, split).ids == before


def test_title_and_numeric_ids_unique():
    split = random_split()
    split.items.loc[:3, "title"] = ["Same", "Same", "", "Same (2)"]
    ids = title_ids(split)
    assert len(set(ids)) == len(ids) and ids[0] == "Same" and ids[1].startswith("Same (2)")
    assert ids[2] == f"item {split.items['item'][2]}"
    nums = numeric_ids(1000, seed=3)
    assert len(set(nums)) == 1000 and len({len(n) for n in nums}) == 1
    assert nums != sorted(nums, key=int)  # random, not sequential: no order leaks


def test_save_load_and_tokens(tmp_path):
    split = random_split()
    ids = build_item_ids(
        IdsConfig(scheme="semantic", levels=2, codebook_size=8, embeddings="collaborative"), split
    )
    assert len(ids.new_tokens) == 16
    ids.save(tmp_path)
    again = ItemIds.load(tmp_path)
    assert again.ids == ids.ids and again.id_of(ids.items[3]) == ids.ids[3]


def test_semantic_ids_tokenize_to_one_token_per_level():
    from tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    split = random_split()
    ids = build_item_ids(
        IdsConfig(scheme="semantic", levels=3, codebook_size=4, embeddings="collaborative"), split
    )
    tok.add_tokens(ids.new_tokens, special_tokens=True)
    seqs = id_token_ids(tok, ids.ids)
    assert all(len(s) == 3 for s in seqs) and len({tuple(s) for s in seqs}) == len(seqs)


def test_too_many_items_for_codebook():
    split = random_split(n_items=50)
    with pytest.raises(Exception, match="codebook_size"):
        build_item_ids(
            IdsConfig(scheme="semantic", levels=1, codebook_size=4, embeddings="collaborative"), split
        )


def test_text_embeddings_used_when_asked():
    split = random_split()
    calls = []

    def embed(texts):
        calls.append(texts)
        return np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)

    build_item_ids(IdsConfig(scheme="semantic", levels=2, codebook_size=8, embeddings="text"), split, embed)
    assert calls and calls[0][0].startswith("Item 0")
    assert isinstance(split.items, pd.DataFrame)


def test_ids_from_an_embeddings_file(tmp_path):
    """Items with equal vectors share their code prefix; the table's row order does not matter."""
    split = random_split()
    items = split.items["item"].tolist()
    groups = np.eye(4, dtype=np.float32)
    vectors = [groups[n % 4] + 0.001 * n for n in range(len(items))]
    table = pd.DataFrame({"item": items, "embedding": [v.tolist() for v in vectors]})
    path = tmp_path / "emb.parquet"
    table.iloc[::-1].to_parquet(path)
    cfg = IdsConfig(
        scheme="semantic", levels=3, codebook_size=4, embeddings="file", embeddings_file=str(path)
    )
    ids = build_item_ids(cfg, split).ids
    assert len(set(ids)) == len(items)
    first_code = [i.split("><")[0] for i in ids]
    assert all(len({first_code[n] for n in range(g, len(items), 4)}) == 1 for g in range(4))  # group = prefix

    table.to_json(tmp_path / "emb.jsonl", orient="records", lines=True)
    jsonl = cfg.model_copy(update={"embeddings_file": str(tmp_path / "emb.jsonl")})
    assert build_item_ids(jsonl, split).ids == ids


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t.iloc[1:], r"1 catalogue items have no embedding"),
        (
            lambda t: t.assign(embedding=[[1.0, 2.0]] + t["embedding"].tolist()[1:]),
            r"row 1: field 'embedding'",
        ),
        (lambda t: pd.concat([t, t.iloc[:1]]), r"row \d+: field 'item': item appears twice"),
        (
            lambda t: t.rename(columns={"embedding": "vector"}),
            r"header: field 'embedding': missing embedding column",
        ),
    ],
    ids=["missing-item", "wrong-width", "duplicate", "no-column"],
)
def test_bad_embeddings_file_names_file_row_and_field(tmp_path, damage, message):
    split = random_split()
    items = split.items["item"].tolist()
    table = pd.DataFrame({"item": items, "embedding": [[float(n), 1.0, 0.0] for n in range(len(items))]})
    path = tmp_path / "emb.parquet"
    damage(table).to_parquet(path, index=False)
    cfg = IdsConfig(
        scheme="semantic", levels=2, codebook_size=8, embeddings="file", embeddings_file=str(path)
    )
    with pytest.raises(InputError, match=message) as error:
        build_item_ids(cfg, split)
    assert str(path) in str(error.value)


def test_embeddings_file_setting_needs_its_path():
    with pytest.raises(ValueError, match="embeddings_file"):
        IdsConfig(embeddings="file")


def test_embeddings_jsonl_errors_name_the_file_line(tmp_path):
    split = random_split()
    lines = [
        json.dumps({"item": item, "embedding": [1.0, float(n)]}) for n, item in enumerate(split.items["item"])
    ]
    lines[1] = json.dumps({"item": split.items["item"][1], "embedding": [1.0]})
    path = tmp_path / "emb.jsonl"
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")  # a blank line 2: the bad row is line 3
    cfg = IdsConfig(
        scheme="semantic", levels=2, codebook_size=8, embeddings="file", embeddings_file=str(path)
    )
    with pytest.raises(InputError, match="line 3: field 'embedding'"):
        build_item_ids(cfg, split)


def test_text_embeddings_skip_the_head_and_are_cached(tiny_backbone, tmp_path, monkeypatch):
    """The decoder's mean-pooled last hidden state, as the whole model's; a second pass over the same
    texts reads the cache (the model never runs), a new text is the only one computed, another model
    gets its own cache."""
    import torch

    from llmrec.backbone import load_model, load_tokenizer
    from llmrec.ids.embeddings import text_embeddings

    model, tok = load_model(str(tiny_backbone), "fp32"), load_tokenizer(str(tiny_backbone))
    texts = ["Film one (1995)", "A longer film title, with words", ""]
    fresh = text_embeddings(texts, model, tok, batch_size=2)
    with torch.no_grad():
        batch = tok(texts[:1], return_tensors="pt")
        whole = model(**batch, output_hidden_states=True).hidden_states[-1].mean(1).numpy()
    np.testing.assert_allclose(fresh[:1], whole, atol=1e-5)

    cached = text_embeddings(texts, model, tok, batch_size=2, cache_folder=tmp_path)
    np.testing.assert_allclose(cached, fresh, atol=1e-6)
    runs = []
    monkeypatch.setattr(model.get_decoder(), "forward", lambda **kw: runs.append(kw) or None)
    again = text_embeddings(list(reversed(texts)), model, tok, cache_folder=tmp_path)
    np.testing.assert_allclose(again, fresh[::-1], atol=1e-6)
    assert runs == []  # nothing recomputed
    monkeypatch.undo()
    more = text_embeddings([*texts, "A new film"], model, tok, cache_folder=tmp_path)
    np.testing.assert_allclose(more[:3], fresh, atol=1e-6)
    with torch.no_grad():
        model.get_input_embeddings().weight[:8] += 1.0  # other weights: another fingerprint, another file
    text_embeddings(texts[:1], model, tok, cache_folder=tmp_path)
    assert len(list((tmp_path / "text-embeddings").glob("*.parquet"))) == 2
