"""`llmrec items add|remove`: a trained run's catalogue changes without retraining."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from test_pipeline import runner, write_config

from llmrec.catalogue.change import fit_row_map, with_intercept
from llmrec.cli import app
from llmrec.generate import Recommender
from llmrec.ids import ItemIds
from llmrec.run_dir import RunDir


def copy_run(run, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_row_map_recovers_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=gen)
    a, b = torch.randn(8, 5, generator=gen), torch.randn(5, generator=gen)
    w = fit_row_map(x, x @ a + b)
    pred = with_intercept(x) @ w
    assert torch.corrcoef(torch.stack([pred.flatten(), (x @ a + b).double().flatten()]))[0, 1] > 0.99


def test_added_items_join_the_catalogue_and_can_be_recommended(atomic_run, tmp_path):
    run = RunDir(copy_run(atomic_run, tmp_path))
    before = ItemIds.load(run.path)
    new = tmp_path / "new.csv"
    new.write_text("iid,name,genre\nn1,Film 1 returns,comedy\nn2,,drama\n")
    result = runner.invoke(app, ["items", "add", str(run.path), str(new)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    ids = ItemIds.load(run.path)
    assert ids.items == [*before.items, "n1", "n2"] and len(set(ids.ids)) == len(ids.ids)  # a bijection
    assert ids.ids[-2:] == ["<item_30>", "<item_31>"]
    kept = run.path / "catalogue-versions" / "1"
    assert ItemIds.load(kept).items == before.items and len(pd.read_parquet(kept / "items.parquet")) == 30
    assert json.loads((kept / "change.json").read_text())["items"] == ["n1", "n2"]

    rec = Recommender.from_run(run.path)
    every = rec.recommend([["m1", "m2"]], k=40, exclude_history=False)[0]
    assert {"n1", "n2"} <= {r.item for r in every} and len(every) == 32  # the whole, grown catalogue
    assert abs(sum(torch.tensor([r.score for r in every]).exp()) - 1) < 1e-4
    assert next(r for r in every if r.item == "n1").title == "Film 1 returns"
    # the rows the model uses are the rows that were saved for the new tokens
    from safetensors.torch import load_file

    saved = load_file(run.added_rows)
    weight = rec.model.get_input_embeddings()(saved["token_ids"])
    torch.testing.assert_close(weight.float(), saved["rows"], atol=1e-5, rtol=1e-5)
    # a new item in a history is read like any other
    assert len(rec.recommend([["n1", "m3"]], k=5)[0]) == 5
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "valid"])
    assert result.exit_code == 0, result.output
    assert json.loads(run.metrics("valid").read_text())["valid_rate"] == 1.0


def test_new_item_slots_take_the_last_places():
    from llmrec.generate.new_items import top_with_new_items

    scores = torch.tensor([[0.0, -1, -2, -3, -4, -9, -8, float("-inf")], [0.0, -5, -6, -7, -8, -1, -2, -3]])
    new = torch.tensor([False] * 5 + [True] * 3)
    first, second = top_with_new_items(scores, new, top_k=4, slots=2)
    # the best added items (by score, excluded ones never) replace the last warm ones, order by score
    assert [s.item for s in first] == [0, 1, 6, 5]
    # added items already in the list on their own count towards the slots
    assert [s.item for s in second] == [0, 5, 6, 7]
    assert [s.item for s in top_with_new_items(scores, new, top_k=4, slots=0)[0]] == [0, 1, 2, 3]
    # a per-user mask limits each user's candidates
    mask = torch.tensor([[False] * 5 + [True, False, False]] * 2)
    assert [s.item for s in top_with_new_items(scores, mask, top_k=4, slots=2)[0]] == [0, 1, 2, 5]


def test_added_items_get_their_slots(atomic_run, tmp_path):
    run = RunDir(copy_run(atomic_run, tmp_path))
    new = tmp_path / "new.csv"
    # n1 has m3's text exactly (title and genre), n2 a text of its own
    new.write_text("iid,name,genre\nn1,Film 3,comedy\nn2,Something else anew,drama\n")
    assert runner.invoke(app, ["items", "add", str(run.path), str(new)]).exit_code == 0
    rec = Recommender.from_run(run.path)
    assert rec.new_items.sum() == 2 and rec.text_vectors.shape[0] == 32  # every item's text vector
    assert (rec.cfg.new_item_slots, rec.cfg.new_item_neighbours) == (2, 10)  # the defaults
    history = [["m1", "m2", "m3"]]
    rec.cfg.new_item_slots = 0
    plain = [r.item for r in rec.recommend(history, k=5)[0]]
    rec.cfg.new_item_slots, rec.cfg.new_item_neighbours = 2, None  # no neighbour floor
    slotted = rec.recommend(history, k=5)[0]
    assert {"n1", "n2"} <= {r.item for r in slotted}
    kept = [r.item for r in slotted if r.item not in ("n1", "n2")]
    assert kept == [i for i in plain if i not in ("n1", "n2")][: len(kept)]  # the best warm ones stay
    assert [r.score for r in slotted] == sorted((r.score for r in slotted), reverse=True)
    # a neighbour floor: only the added item whose text matches the latest history item's qualifies
    rec.cfg.new_item_neighbours = 1
    assert {r.item for r in rec.recommend(history, k=5)[0]} & {"n1", "n2"} == {"n1"}
    assert not {r.item for r in rec.recommend([["m1", "m2"]], k=5)[0]} & {"n2"}


def test_removed_items_are_never_recommended(atomic_run, tmp_path):
    run = RunDir(copy_run(atomic_run, tmp_path))
    gone = tmp_path / "gone.txt"
    gone.write_text("m4\nm5\n")
    result = runner.invoke(app, ["items", "remove", str(run.path), str(gone)])
    assert result.exit_code == 0, result.output
    every = Recommender.from_run(run.path).recommend([["m4", "m1"]], k=40, exclude_history=False)[0]
    assert len(every) == 28 and not {"m4", "m5"} & {r.item for r in every}
    assert (run.path / "catalogue-versions" / "1" / "change.json").exists()


@pytest.mark.parametrize(
    ("content", "message", "where"),
    [
        ("iid,name,genre\nn1,A,comedy\nn1,B,drama\n", "duplicate item id 'n1'", "line 3"),
        ("iid,name,genre\nn1,A,comedy\nm3,B,drama\n", "item 'm3' is already in the catalogue", "line 3"),
        ("iid,name,genre\nn1,,\n", "has no title or text", "line 2"),
        ("iid,name,genre\n", "table has a header but no rows", None),
        ("name,genre\nA,comedy\n", "iid", "header"),
    ],
)
def test_bad_items_files_are_refused_and_nothing_changes(atomic_run, tmp_path, content, message, where):
    run = RunDir(copy_run(atomic_run, tmp_path))
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = runner.invoke(app, ["items", "add", str(run.path), str(bad)])
    assert result.exit_code == 2 and message in result.output and str(bad) in result.output
    assert where is None or where in result.output
    assert len(ItemIds.load(run.path).items) == 30 and not (run.path / "catalogue-versions").exists()


def test_remove_refuses_unknown_items(atomic_run, tmp_path):
    run = RunDir(copy_run(atomic_run, tmp_path))
    bad = tmp_path / "gone.txt"
    bad.write_text("m1\nnope\n")
    result = runner.invoke(app, ["items", "remove", str(run.path), str(bad)])
    assert result.exit_code == 2 and "item 'nope' is not in the catalogue" in result.output
    assert "entry 2" in result.output and not run.unavailable.exists()


def test_add_needs_atomic_or_semantic_ids(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "title", max_steps=1, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    new = tmp_path / "new.csv"
    new.write_text("iid,name,genre\nn1,A,comedy\n")
    result = runner.invoke(app, ["items", "add", str(tmp_path / "run"), str(new)])
    assert result.exit_code == 2 and "title ids" in result.output and "semantic" in result.output


def test_semantic_ids_place_new_items_with_the_frozen_codebooks(tmp_path, tiny_backbone):
    from llmrec.ids.item_ids import code_tuple

    config = write_config(tmp_path, tiny_backbone, "semantic", max_steps=1, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    run = RunDir(tmp_path / "run")
    before = ItemIds.load(run.path)
    assert before.codebooks is not None and before.codebooks.kind == "both"
    assert len(before.codebooks.vectors) == len(before.items) and len(before.codebooks.centroids) == 2
    tokens_before = len(run.load_tokenizer())
    new = tmp_path / "new.csv"
    # n1 has m4's text exactly: the same text embedding and neighbours, so the same first code
    new.write_text("iid,name,genre\nn1,Film 4,comedy\nn2,Another film entirely,drama\n")
    result = runner.invoke(app, ["items", "add", str(run.path), str(new)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    ids = ItemIds.load(run.path)
    assert ids.items == [*before.items, "n1", "n2"] and ids.ids[: len(before.ids)] == before.ids
    assert len(set(ids.ids)) == len(ids.ids)  # still a bijection
    assert code_tuple(ids.id_of("n1"))[0] == code_tuple(before.id_of("m4"))[0]
    assert all(len(code_tuple(i)) == 2 and max(code_tuple(i)) < 8 for i in ids.ids[-2:])  # existing tokens
    assert len(run.load_tokenizer()) == tokens_before and len(ids.codebooks.vectors) == len(ids.items)
    assert ItemIds.load(run.path / "catalogue-versions" / "1").items == before.items
    rec = Recommender.from_run(run.path)
    assert len(rec.trie.leaf_of) == len(before.items) + 2  # the trie grew
    every = rec.recommend([["m1", "m2"]], k=32, exclude_history=False)[0]
    assert {"n1", "n2"} <= {r.item for r in every}  # a new item can be recommended
    # a second add places against the grown map: no code is handed out twice
    newer = tmp_path / "newer.csv"
    newer.write_text("iid,name,genre\nn3,Film 4,comedy\n")
    assert runner.invoke(app, ["items", "add", str(run.path), str(newer)]).exit_code == 0
    again = ItemIds.load(run.path)
    assert len(set(again.ids)) == len(again.ids) == len(before.ids) + 3
