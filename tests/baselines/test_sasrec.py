"""SASRec-CE baseline: learns a deterministic next item; `llmrec baseline` writes the LLM's metrics."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from test_pipeline import runner, write_config

from llmrec.baselines.sasrec import SasrecRecommender
from llmrec.cli import app
from llmrec.config import SasrecSettings, load_config
from llmrec.data import SplitData
from llmrec.errors import InputError
from llmrec.evaluate.metrics import ranking_metrics
from llmrec.ids.embeddings import file_embeddings


def walking_users(n_users: int = 120, n_items: int = 40, seed: int = 0) -> SplitData:
    """Every user walks the catalogue in steps of 1 from a random start: the next item is certain."""
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        start, length = rng.randrange(n_items), rng.randrange(5, 12)
        seq = [f"i{(start + t) % n_items}" for t in range(length)]
        rows.append({"user": f"u{u}", "train": seq[:-2], "valid": seq[-2], "test": seq[-1]})
    items = pd.DataFrame({"item": [f"i{i}" for i in range(n_items)], "title": "", "text": ""})
    return SplitData(items=items, users=pd.DataFrame(rows))


@pytest.mark.parametrize(
    "variant", [{}, {"layout": "recbole", "heads": 2, "valid_metric": "mrr@10"}], ids=["pre-ln", "recbole"]
)
def test_sasrec_learns_a_deterministic_next_item(variant):
    split = walking_users()
    cfg = SasrecSettings(hidden=32, layers=1, heads=1, dropout=0.1, max_len=12, lr=5e-3).model_copy(
        update=variant
    )
    cfg.max_epochs = cfg.patience = 60
    sasrec = SasrecRecommender(split, cfg)
    summary = sasrec.fit(split, exclude_history=False, log=lambda _: None)
    users = split.eval_users("test")
    histories = split.histories(users, "test")
    lists = sasrec.recommend(histories, k=10, exclude_history=False)
    metrics = ranking_metrics(users["test"].tolist(), lists, set(split.items["item"]))
    assert metrics["hr@1"] >= 0.95, (metrics, summary["log"][-3:])
    assert f"best_valid_{cfg.valid_metric}" in summary  # early stopping used the configured metric
    assert metrics["valid_rate"] == metrics["distinct_rate"] == 1.0


def test_baseline_cli_writes_the_same_metrics_as_evaluate(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone)
    small = [f"baselines.sasrec.{key}" for key in ("max_epochs=3", "hidden=16", "heads=1")]
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    for model in ("popularity", "sasrec"):
        result = runner.invoke(app, ["baseline", config, "--model", model, *(f"--set={s}" for s in small)])
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / "baselines" / model / "metrics-test.json").read_text())
        keys = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "valid_rate", "distinct_rate", "users")
        assert all(key in metrics for key in keys)
        assert metrics["users"] == 40 and metrics["valid_rate"] == metrics["distinct_rate"] == 1.0
    saved = load_config(tmp_path / "baselines" / "sasrec" / "config.yaml")
    assert saved.baselines.sasrec.hidden == 16  # the overrides the baseline ran with are on record
    # SASRec's item embeddings, saved beside its weights, are a table semantic ids can be built from
    items = SplitData.load(tmp_path / "prepared").items["item"].tolist()
    vectors = file_embeddings(tmp_path / "baselines" / "sasrec" / "item-embeddings.parquet", items)
    assert vectors.shape == (len(items), 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    result = runner.invoke(app, ["baseline", config, "--model", "bert4rec"])
    assert result.exit_code == 2 and "bert4rec" in result.output


def test_sasrec_is_reproducible_from_its_seed():
    split = walking_users(n_users=30)
    cfg = SasrecSettings(hidden=16, layers=1, heads=1, max_len=12, max_epochs=2, patience=2)
    logs = [SasrecRecommender(split, cfg).fit(split, log=lambda _: None)["log"] for _ in range(2)]
    assert logs[0] == logs[1]


def test_a_history_scores_the_same_in_any_batch():
    split = walking_users(n_users=30)
    cfg = SasrecSettings(hidden=16, layers=1, heads=1, max_len=12)
    sasrec = SasrecRecommender(split, cfg)
    short, long = ["i3", "i4"], [f"i{i}" for i in range(10)]
    alone = sasrec.logits([short], exclude_history=False)
    batched = sasrec.logits([short, long], exclude_history=False)
    assert not torch.equal(batched[0], batched[1])  # the two histories are scored differently
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def walking_vectors(n_items: int = 40, width: int = 24, seed: int = 0) -> np.ndarray:
    """One random text vector per item of `walking_users` (as if each title were distinct)."""
    return np.random.default_rng(seed).normal(size=(n_items, width)).astype(np.float32)


def with_titles(split: SplitData) -> SplitData:
    return SplitData(items=split.items.assign(title=[f"title {i}" for i in range(len(split.items))]),
                     users=split.users)  # fmt: skip


def test_anchored_sasrec_learns_and_keeps_its_deltas_within_their_bound():
    split = with_titles(walking_users())
    cfg = SasrecSettings(hidden=32, layers=1, heads=1, dropout=0.1, max_len=12, lr=5e-3, item_rows="anchored")
    cfg.max_epochs = cfg.patience = 60
    sasrec = SasrecRecommender(split, cfg, walking_vectors())
    assert sasrec.anchored
    sasrec.fit(split, exclude_history=False, log=lambda _: None)
    users = split.eval_users("test")
    lists = sasrec.recommend(split.histories(users, "test"), k=10, exclude_history=False)
    assert ranking_metrics(users["test"].tolist(), lists, set(split.items["item"]))["hr@1"] >= 0.9
    anchor = sasrec.model.anchor
    assert float(anchor.delta.detach()[anchor.has_text].norm(dim=1).max()) > 0  # deltas trained ...
    rows = anchor().detach()
    text_rows = anchor.map(anchor.text).detach()
    bound = cfg.anchor.delta_bound * text_rows.norm(dim=1).mean()
    assert float((rows - text_rows).norm(dim=1).max()) <= float(bound) * (1 + 1e-5)  # ... within the bound


def test_an_item_added_to_anchored_sasrec_gets_its_text_path_and_survives_a_reload(tmp_path):
    split = with_titles(walking_users(n_users=40))
    cfg = SasrecSettings(hidden=16, layers=1, heads=1, max_len=12, max_epochs=2, item_rows="anchored")
    vectors = walking_vectors()
    sasrec = SasrecRecommender(split, cfg, vectors)
    sasrec.fit(split, log=lambda _: None)
    sasrec.save(tmp_path / "model.pt")
    # weights alone rebuild the anchor (text vectors included), as the mix and the hybrid load them
    again = SasrecRecommender(split, cfg)
    again.load(tmp_path / "model.pt")
    history = [["i3", "i4"]]
    assert torch.allclose(again.logits(history), sasrec.logits(history))
    new = np.random.default_rng(1).normal(size=(1, vectors.shape[1])).astype(np.float32)
    again.add_items(["new"], new)
    anchor = again.model.anchor
    centred = torch.nn.functional.normalize(torch.from_numpy(new) - anchor.centre, dim=-1)
    table = again.model.item_table()
    assert torch.allclose(table[-1], anchor.map(centred)[0], atol=1e-6)  # the training-time text path
    scores = again.logits(history)
    assert scores.shape == (1, len(split.items) + 1) and torch.isfinite(scores[0, -1])
    assert "new" in again.recommend(history, k=len(split.items) + 1)[0]
    with pytest.raises(InputError, match="anchored"):
        SasrecRecommender(split, SasrecSettings(hidden=16, heads=1)).add_items(["new"], new)
    with pytest.raises(InputError, match="text vectors"):
        SasrecRecommender(split, cfg).fit(split, log=lambda _: None)


def test_anchored_sasrec_without_item_text_trains_free_rows(tmp_path, tiny_backbone):
    split = walking_users(n_users=30)  # no titles, no text
    cfg = SasrecSettings(hidden=16, layers=1, heads=1, max_len=12, max_epochs=1, item_rows="anchored")
    assert not SasrecRecommender(split, cfg, walking_vectors()).anchored
    columns = {"user": "uid", "item": "iid", "timestamp": "ts", "title": None}
    config = write_config(tmp_path, tiny_backbone, overrides={"data": {"columns": columns}})
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    result = runner.invoke(app, ["baseline", config, "--model", "sasrec", *ANCHORED_SMALL])
    assert result.exit_code == 0, result.output
    assert "no item has text" in result.output
    folder = tmp_path / "baselines" / "sasrec"
    assert load_config(folder / "config.yaml").baselines.sasrec.item_rows == "free"  # what it trained
    assert "anchor.text" not in torch.load(folder / "model.pt", weights_only=True)


ANCHORED_SMALL = [
    f"--set=baselines.sasrec.{s}" for s in ("max_epochs=2", "hidden=16", "heads=1", "item_rows=anchored")
]


def test_llmrec_baseline_trains_anchored_sasrec_from_the_base_models_text_vectors(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone)
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    result = runner.invoke(app, ["baseline", config, "--model", "sasrec", *ANCHORED_SMALL])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "baselines" / "sasrec"
    metrics = json.loads((folder / "metrics-test.json").read_text())
    assert metrics["users"] == 40 and metrics["valid_rate"] == metrics["distinct_rate"] == 1.0
    split = SplitData.load(tmp_path / "prepared")
    sasrec = SasrecRecommender(split, load_config(folder / "config.yaml").baselines.sasrec)
    sasrec.load_checked(folder / "model.pt")  # the weights carry the anchor and its text vectors
    assert sasrec.anchored and sasrec.model.anchor.text.shape[0] == len(split.items)
