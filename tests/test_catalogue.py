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
from llmrec.train.run_dir import RunDir


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


def test_add_needs_atomic_ids(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "title", max_steps=1, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        assert runner.invoke(app, args).exit_code == 0
    new = tmp_path / "new.csv"
    new.write_text("iid,name,genre\nn1,A,comedy\n")
    result = runner.invoke(app, ["items", "add", str(tmp_path / "run"), str(new)])
    assert result.exit_code == 2 and "title ids" in result.output and "atomic" in result.output
