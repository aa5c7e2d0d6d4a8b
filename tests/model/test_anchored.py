"""Text-anchored item rows (`model.item_rows: anchored`): rows = a trained map of the item's text
features + a bounded id delta; new items get the text path; catalogues without text train free rows."""

from __future__ import annotations

import torch
from conftest import ATOMIC_PROMPTS
from safetensors.torch import load_file
from test_pipeline import runner, write_config

from llmrec.backbone import load_model, resize_for_tokenizer
from llmrec.cli import app
from llmrec.data import newest_items
from llmrec.generate import Recommender
from llmrec.ids import ItemIds
from llmrec.model.anchored import ItemAnchor
from llmrec.run_dir import RunDir
from llmrec.train.assembly import item_anchor

BOUND = 0.05  # small, so that training pushes deltas against it


def _train(tmp_path, backbone, overrides: dict | None = None, verbs=("prepare", "train"), **train) -> RunDir:
    settings = {"model": {"item_rows": "anchored", "anchor": {"delta_bound": BOUND, "delta_dropout": 0.25}},
                **ATOMIC_PROMPTS, **(overrides or {})}  # fmt: skip
    config = write_config(
        tmp_path, backbone, "atomic", settings, **({"max_steps": 8, "eval_every": 4} | train)
    )
    for args in ([verb, config] for verb in verbs):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return RunDir(tmp_path / "run")


def _anchor_as_trained(run: RunDir) -> tuple[ItemAnchor, list[int]]:
    """The run's anchor rebuilt by the function `train` builds it with (base model, the run's texts),
    holding its saved state."""
    cfg = run.load_config()
    tokenizer = run.load_tokenizer()
    model = load_model(cfg.model.name, cfg.model.dtype)
    resize_for_tokenizer(model, tokenizer, seed=cfg.train.seed)
    ids = ItemIds.load(run.path)
    anchor = item_anchor(cfg, model, tokenizer, ids, run.load_split())
    anchor.load_state_dict(load_file(run.anchor))
    return anchor, tokenizer.convert_tokens_to_ids(ids.ids)


def test_anchored_rows_start_as_the_free_recipe_and_drop_deltas_by_seed():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(6, 8 + 4, generator=gen)
    has_text = torch.tensor([True, True, True, True, True, False])
    initial = torch.randn(6, 4, generator=gen)
    anchor = ItemAnchor(features, has_text, 4, bound=0.5, dropout=0.5, seed=3, initial_rows=initial)
    rows = anchor()
    # the map starts as [0, I]: an item with text starts at its mean token row (the last 4 features)
    torch.testing.assert_close(rows[:5], features[:5, 8:])
    torch.testing.assert_close(rows[5], initial[5])  # no text: a free row, where the free recipe starts
    with torch.no_grad():
        anchor.delta.add_(torch.randn(6, 4, generator=gen) * 10)
    assert (anchor.clipped_delta()[:5].norm(dim=1) <= 0.5 + 1e-6).all()
    torch.testing.assert_close(anchor.clipped_delta()[5], anchor.delta[5])  # unbounded without text
    first = anchor(drop=True)
    assert int(anchor.steps) == 1
    dropped = (first - anchor.text_rows(features)).norm(dim=1)[:5] < 1e-6
    assert dropped.any() and not dropped.all()  # a share of the deltas, not none or all
    anchor.steps.zero_()
    torch.testing.assert_close(anchor(drop=True), first)  # the same step draws the same items


def test_trained_deltas_stay_within_their_bound_and_serve_as_written(tmp_path, tiny_backbone):
    run = _train(tmp_path, tiny_backbone)
    anchor, token_ids = _anchor_as_trained(run)
    assert run.anchor == run.path / "adapter" / "item_anchor.safetensors"
    assert not run.path.joinpath("adapter", "adapter_model.safetensors").read_bytes().count(b"item_anchor")
    served = Recommender.from_run(run.path).model.get_input_embeddings()(torch.tensor(token_ids)).float()
    with torch.no_grad():
        text_path = anchor.text_rows(anchor.features)
        torch.testing.assert_close(served, anchor(), atol=1e-5, rtol=1e-5)  # what serves = the anchor's rows
    moved = (served - text_path).norm(dim=1)[anchor.has_text]
    scale = float(anchor.scale)
    assert moved.max() <= BOUND * scale * (1 + 1e-4)  # every delta inside its bound
    assert moved.max() >= 0.5 * BOUND * scale  # and training used the room
    assert not torch.equal(
        anchor.map.weight[:, -served.shape[1] :], torch.eye(served.shape[1])
    )  # the map trained


def test_withheld_items_keep_no_delta_and_train_the_text_path():
    gen = torch.Generator().manual_seed(1)
    features, initial = torch.randn(5, 8 + 4, generator=gen), torch.randn(5, 4, generator=gen)
    has_text = torch.tensor([True, True, True, True, False])
    withheld = torch.tensor([False, True, True, False, True])  # item 4 has no text: nothing to withhold
    anchor = ItemAnchor(features, has_text, 4, bound=0.5, dropout=0.0, seed=0, initial_rows=initial,
                        withheld=withheld)  # fmt: skip
    assert anchor.withheld.tolist() == [False, True, True, False, False]
    assert "withheld" not in anchor.state_dict()  # remade from the split when a run loads
    with torch.no_grad():
        anchor.delta.add_(torch.randn(5, 4, generator=gen))
    rows = anchor(drop=True)
    torch.testing.assert_close(rows[1:3], anchor.text_rows(features)[1:3])  # the text path, as an added item
    assert ((rows - anchor.text_rows(features))[[0, 3]].norm(dim=1) > 1e-3).all()
    rows[:3].sum().backward()
    assert anchor.delta.grad[1:3].abs().sum() == 0 and anchor.delta.grad[0].abs().sum() > 0
    assert anchor.map.weight.grad.abs().sum() > 0


def test_a_run_withholds_its_newest_items_deltas(tmp_path, tiny_backbone):
    settings = {"item_rows": "anchored", "anchor": {"delta_bound": BOUND, "delta_dropout": 0.25,
                                                    "withhold_newest": 0.5}}  # fmt: skip
    run = _train(tmp_path, tiny_backbone, {"model": settings}, eval_every=0)
    anchor, token_ids = _anchor_as_trained(run)
    newest = set(newest_items(run.load_split().training_interactions(), 0.5))
    expected = torch.tensor([item in newest for item in ItemIds.load(run.path).items]) & anchor.has_text
    assert torch.equal(anchor.withheld, expected) and 0 < int(expected.sum()) < int(anchor.has_text.sum())
    served = Recommender.from_run(run.path).model.get_input_embeddings()(torch.tensor(token_ids)).float()
    with torch.no_grad():
        moved = (served - anchor.text_rows(anchor.features)).norm(dim=1)
    assert (moved[anchor.withheld] < 1e-4).all()  # served by the trained text path alone
    assert (moved[anchor.has_text & ~anchor.withheld] > 1e-4).any()


def test_an_added_item_gets_the_training_time_text_path(tmp_path, tiny_backbone):
    run = _train(tmp_path, tiny_backbone, eval_every=0)
    anchor, token_ids = _anchor_as_trained(run)
    split = run.load_split()
    first = split.items.iloc[0]
    new = tmp_path / "new.csv"  # the first item's text under a new id
    new.write_text(f"iid,name,genre\nn1,{first['title']},{first['text']}\n")
    result = runner.invoke(app, ["items", "add", str(run.path), str(new)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    added = load_file(run.added_rows)["rows"][0]
    row = ItemIds.load(run.path).items.index(first["item"])
    with torch.no_grad():
        expected = anchor.text_rows(anchor.features)[row]
    torch.testing.assert_close(added, expected, atol=1e-4, rtol=1e-4)
    rec = Recommender.from_run(run.path)  # and serving reads it back as the new token's row
    new_token = rec.tokenizer.convert_tokens_to_ids(ItemIds.load(run.path).id_by_item["n1"])
    torch.testing.assert_close(rec.model.get_input_embeddings()(torch.tensor([new_token]))[0].float(), added,
                               atol=1e-5, rtol=1e-5)  # fmt: skip


def test_a_resumed_anchored_run_matches_the_straight_one(tmp_path, tiny_backbone):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    straight = _train(tmp_path / "a", tiny_backbone, patience=None, save_every=1)
    resumed_dir = tmp_path / "b"
    _train(resumed_dir, tiny_backbone, patience=None, save_every=1, max_steps=5)
    # the same run, asked for the straight run's 8 steps, continues from its step-5 checkpoint
    resumed = _train(resumed_dir, tiny_backbone, verbs=("train",), patience=None, save_every=1)
    a, b = (load_file(r.checkpoint / "weights.safetensors") for r in (straight, resumed))
    a = {k: v for k, v in a.items() if k.startswith("item_anchor.")}
    assert a and int(a["item_anchor.steps"]) == 8  # one dropout draw a step
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_catalogue_without_text_trains_free_rows(tmp_path, tiny_backbone):
    overrides = {"data": {"columns": {"user": "uid", "item": "iid", "timestamp": "ts"}}}
    run = _train(tmp_path, tiny_backbone, overrides, eval_every=0)
    assert run.anchor is None and (run.path / "adapter" / "adapter_model.safetensors").exists()
