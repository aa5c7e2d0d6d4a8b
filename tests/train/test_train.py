"""Training pieces: label masking, trainable id tokens, adapter reload, dtype choice, QLoRA guard."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import yaml
from conftest import ATOMIC_PROMPTS as ATOMIC
from safetensors.torch import load_file
from test_pipeline import runner, write_config
from tiny import tiny_model, tiny_tokenizer

from llmrec import backbone
from llmrec.backbone import load_model, resize_for_tokenizer, resolve_dtype
from llmrec.cli import app
from llmrec.config import Config
from llmrec.errors import InputError
from llmrec.generate import Recommender
from llmrec.ids import ItemIds
from llmrec.train.finetune import LoraTuning
from llmrec.train.loop import collate, encode_examples
from llmrec.train.objectives import CatalogueLoss, TokenLoss


def test_loss_only_on_target_and_eos():
    tok = tiny_tokenizer()
    ex = encode_examples(tok, ["Next item:\n"], [[5, 6, 7]])[0]
    n_prompt = len(tok("Next item:\n", add_special_tokens=False).input_ids)
    assert ex["labels"][:n_prompt] == [-100] * n_prompt
    assert ex["labels"][n_prompt:] == [5, 6, 7, tok.eos_token_id] == ex["input_ids"][n_prompt:]
    batch = collate([ex, encode_examples(tok, ["x"], [[5]])[0]], pad_id=tok.pad_token_id)
    assert batch["labels"][1, -1] == -100 and batch["attention_mask"][1, -1] == 0


def test_new_id_tokens_train_and_reload(tmp_path):
    tok = tiny_tokenizer()
    old = len(tok)
    tok.add_tokens(["<a_0>", "<a_1>"], special_tokens=True)
    model = tiny_model(old)
    resize_for_tokenizer(model, tok, seed=0)
    new_ids = tok.convert_tokens_to_ids(["<a_0>", "<a_1>"])
    peft_model = LoraTuning().prepare(model, Config(), new_ids)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("trainable_tokens" in n for n in trainable)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    batch = collate(encode_examples(tok, ["Next item:\n"] * 4, [[new_ids[0]]] * 4), tok.pad_token_id)
    for _ in range(3):
        peft_model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.eval()
    peft_model.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    # no full copy of the embedding matrix in the adapter
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 200_000

    from peft import PeftModel

    fresh = tiny_model(old)  # same seed: same base weights
    resize_for_tokenizer(fresh, tok, seed=123)  # different init of new rows: the adapter must override them
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        a = peft_model(input_ids=batch["input_ids"]).logits
        b = reloaded(input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(a, b)


def test_qlora_needs_cuda(tiny_backbone):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        load_model(str(tiny_backbone), "bf16", load_in_4bit=True)


def test_auto_dtype_is_bf16_only_where_the_hardware_computes_it(monkeypatch, tiny_backbone):
    assert Config().model.dtype == "auto"
    monkeypatch.setattr(backbone, "native_bf16", lambda: True)
    assert resolve_dtype("auto") == "bf16"
    assert load_model(str(tiny_backbone)).dtype == torch.bfloat16
    monkeypatch.setattr(backbone, "native_bf16", lambda: False)
    assert resolve_dtype("auto") == "fp32"
    assert load_model(str(tiny_backbone)).dtype == torch.float32


def test_forced_bf16_without_native_support_is_kept_and_warned(monkeypatch):
    monkeypatch.setattr(backbone, "native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bf16"):
        assert resolve_dtype("bf16") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_dtype("fp32") == "fp32"
    monkeypatch.setattr(backbone, "native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_dtype("bf16") == "bf16"


def with_new_tokens(tokens: list[str]):
    """A tiny tokenizer and model grown by `tokens`; returns (tokenizer, model, their token ids)."""
    tok = tiny_tokenizer()
    old = len(tok)
    tok.add_tokens(tokens, special_tokens=True)
    model = tiny_model(old)
    resize_for_tokenizer(model, tok, seed=0)
    return tok, model, tok.convert_tokens_to_ids(tokens)


def test_token_loss_is_the_models_loss_computed_on_labelled_positions_only():
    tok, model, new_ids = with_new_tokens(["<a_0>", "<a_1>"])
    batch = collate(encode_examples(tok, ["Next item:\n", "x y z"], [[new_ids[0]], [new_ids[1]]]), 0)
    for m in (model, LoraTuning().prepare(model, Config(), new_ids)):
        torch.testing.assert_close(TokenLoss()(m, batch), m(**batch).loss)


def test_catalogue_loss_is_a_softmax_over_the_item_tokens_only():
    tok, model, rows = with_new_tokens([f"<item_{n}>" for n in range(5)])
    batch = collate(encode_examples(tok, ["a b", "c"], [[rows[3]], [rows[1]]]), 0)
    loss = CatalogueLoss(rows, len(tok), tok.eos_token_id)(model, batch)
    with torch.no_grad():
        logits = model(**batch).logits  # full vocabulary, every position
    at = [(batch["labels"][r] == t).nonzero()[0, 0] - 1 for r, t in ((0, rows[3]), (1, rows[1]))]
    picked = torch.stack([logits[0, at[0], rows], logits[1, at[1], rows]])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(picked, torch.tensor([3, 1])))
    # the EOS label after each item carries no loss: a line break or end after an item is certain
    loss.backward()


def test_catalogue_loss_scores_text_answers_over_the_vocabulary():
    """An alignment batch: one row's answer is an item (catalogue softmax), the other's is text
    (vocabulary softmax, as an id -> text task needs); the loss is the mean over both kinds."""
    tok, model, rows = with_new_tokens([f"<item_{n}>" for n in range(5)])
    text = tok("red shoes", add_special_tokens=False).input_ids
    batch = collate(encode_examples(tok, ["a b", "c"], [[rows[2]], text]), 0)
    loss = CatalogueLoss(rows, len(tok), tok.eos_token_id)(model, batch)
    with torch.no_grad():
        logits = model(**batch).logits.float()
    first = (batch["labels"][0] == rows[2]).nonzero()[0, 0]
    terms = [
        torch.nn.functional.cross_entropy(
            logits[0, first - 1, rows][None], torch.tensor([2]), reduction="sum"
        )
    ]
    start = (batch["labels"][1] >= 0).nonzero()[0, 0]
    for n, t in enumerate(text):  # each title token over the whole vocabulary; EOS carries no loss
        terms.append(
            torch.nn.functional.cross_entropy(
                logits[1, start + n - 1][None], torch.tensor([t]), reduction="sum"
            )
        )
    torch.testing.assert_close(loss, torch.stack(terms).sum() / len(terms))
    loss.backward()
    assert model.get_input_embeddings().weight.grad is not None


def test_atomic_item_rows_start_from_their_titles():
    from llmrec.backbone import init_rows_from_text

    tok, model, rows = with_new_tokens(["<item_0>", "<item_1>"])
    assert init_rows_from_text(model, tok, rows, ["Toy Story (1995)", ""]) == 1
    weight = model.get_input_embeddings().weight
    title = tok("Toy Story (1995)", add_special_tokens=False).input_ids
    torch.testing.assert_close(weight[rows[0]], weight[title].mean(0))
    assert not torch.equal(weight[rows[1]], weight[title].mean(0))  # no text: initialisation kept


def test_patience_stops_training_and_a_resumed_run_stays_stopped(tmp_path):
    from llmrec.run_dir import RunDir
    from llmrec.train.loop import fit

    tok, _, new_ids = with_new_tokens(["<a_0>", "<a_1>"])
    settings = {"max_steps": 40, "batch_size": 2, "eval_every": 2, "patience": 2, "save_every": 1}
    cfg = Config.model_validate({"train": settings | {"min_steps": 0}})
    examples = encode_examples(tok, ["Next item:\n"] * 8, [[new_ids[0]]] * 8)
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    calls = []

    def validate(_model) -> dict[str, float]:  # never better than the first validation
        calls.append(1)
        return {"ndcg@10": 0.1}

    def train():
        fresh = with_new_tokens(["<a_0>", "<a_1>"])[1]
        return fit(cfg, LoraTuning().prepare(fresh, cfg, new_ids), tok, examples, run, validate,
                   tuning=LoraTuning(), objective=TokenLoss())  # fmt: skip

    summary = train()
    # validations at steps 2 (best), 4 and 6 (no better: patience 2 reached); step 6 is not redone
    assert summary["steps"] == 6 and summary["stopped_early"] and len(calls) == 3
    assert (run.path / "adapter" / "adapter_config.json").exists()
    assert train()["steps"] == 6  # resuming does not train on


@pytest.mark.parametrize("share_header", [False, True])
def test_packed_rows_give_the_loss_of_the_unpacked_examples(share_header):
    """Windows packed into shared rows see only themselves (and, sharing it, the row's one copy of
    the header): the same loss (TokenLoss and the catalogue softmax) as each window in a row of its
    own, on a tiny model, in float32; an example without the header (an alignment task) is packed
    apart and sees no header."""
    from llmrec.train.packing import pack_examples

    tok, model, rows = with_new_tokens([f"<item_{n}>" for n in range(6)])
    gen = torch.Generator().manual_seed(0)
    header = tok("Items:\n", add_special_tokens=False).input_ids
    examples = []
    for n in (5, 9, 3, 12, 7, 4, 6, 2):
        items = [rows[int(i)] for i in torch.randint(0, 6, (n,), generator=gen)]
        ids = header + items
        examples.append({"input_ids": ids, "labels": [-100] * (len(ids) - n + 1) + items[1:]})
    text = tok("Film 3 is", add_special_tokens=False).input_ids
    examples.append({"input_ids": [*text, rows[3]], "labels": [-100] * len(text) + [rows[3]]})
    packed = pack_examples(examples, width=24, header=header if share_header else ())
    assert len(packed) < len(examples) and all(len(r["input_ids"]) <= 24 for r in packed)
    assert sorted(t for r in packed for t in r["labels"] if t != -100) == sorted(
        t for x in examples for t in x["labels"] if t != -100
    )  # every target kept, once
    tokens = sum(len(r["input_ids"]) for r in packed)
    whole = sum(len(x["input_ids"]) for x in examples)
    assert tokens == (whole - (8 - len(packed) + 1) * len(header) if share_header else whole)
    for objective in (TokenLoss(), CatalogueLoss(rows, len(tok))):
        plain = objective(model, collate(examples, tok.pad_token_id))
        torch.testing.assert_close(objective(model, collate(packed, tok.pad_token_id)), plain)
    # the mask is what makes it so: the same rows with one causal mask across examples differ
    leaky = collate(packed, tok.pad_token_id)
    del leaky["segment_ids"]
    assert not torch.allclose(TokenLoss()(model, leaky), TokenLoss()(model, collate(examples, 0)))


def _fit(tmp_path, name: str, scores: list[float], kill_at: int | None = None, **train):
    """A tiny LoRA fit whose n-th validation returns scores[n], killed in step `kill_at`'s forward
    pass if given; returns (summary, model, run, log)."""
    from llmrec.run_dir import RunDir
    from llmrec.train.loop import fit

    tok, model, new_ids = with_new_tokens(["<a_0>", "<a_1>"])
    settings = {"batch_size": 2, "warmup_steps": 2, "save_every": 1, "min_steps": 0, "eval_min_gap": 1}
    cfg = Config.model_validate({"train": settings | train})
    examples = encode_examples(tok, ["Next item:\n", "a b\n"] * 4, [[new_ids[0]], [new_ids[1]]] * 4)
    (tmp_path / name).mkdir(exist_ok=True)
    run = RunDir(tmp_path / name)
    calls = []

    def validate(_model) -> dict[str, float]:
        calls.append(1)
        return {"ndcg@10": scores[min(len(calls), len(scores)) - 1]}

    steps = []

    def objective(m, batch):
        steps.append(1)
        if len(steps) == kill_at:
            raise KeyboardInterrupt  # a kill between two checkpoints
        return TokenLoss()(m, batch)

    peft_model = LoraTuning().prepare(model, cfg, new_ids)
    try:
        summary = fit(cfg, peft_model, tok, examples, run, validate, tuning=LoraTuning(), objective=objective)
    except KeyboardInterrupt:
        summary = None
    return summary, peft_model, run, [json.loads(line) for line in run.log.read_text().splitlines()]


def test_patience_waits_for_min_steps(tmp_path):
    # one validation an epoch (4 steps); the 1st is best, so patience 2 is reached at step 12, but
    # min_steps 14 keeps it training to the next validation (step 16), which stops it
    summary, _, _, log = _fit(tmp_path, "run", [0.3, 0.1], epochs=30, patience=2, min_steps=14)
    assert summary["stop_reason"] == "patience" and summary["steps"] == 16 and summary["best_step"] == 4
    assert [r["step"] for r in log if "valid_ndcg@10" in r] == [4, 8, 12, 16]


def test_epoch_validation_waits_for_whole_epochs_min_gap_steps_apart(tmp_path):
    # 4-step epochs and eval_min_gap 10: validation every 3 epochs (12 steps); patience 2 measured in
    # those validations, so the best (1st) is followed by two stale ones
    summary, _, _, log = _fit(tmp_path, "run", [0.3, 0.1], epochs=30, patience=2, eval_min_gap=10)
    assert [r["step"] for r in log if "valid_ndcg@10" in r] == [12, 24, 36]
    assert summary["stop_reason"] == "patience" and summary["steps"] == 36 and summary["best_step"] == 12


def test_early_stopping_keeps_and_restores_the_best_weights(tmp_path):
    from peft import get_peft_model_state_dict

    # one validation an epoch (4 steps); the 2nd is best, the 3rd and 4th are not: patience 2 stops
    summary, model, run, log = _fit(tmp_path, "run", [0.1, 0.3, 0.2, 0.25, 0.9], epochs=30, patience=2)
    assert summary["stop_reason"] == "patience" and summary["steps"] == 16 and summary["best_step"] == 8
    assert summary["epochs_run"] == 4 and summary["best_epoch"] == 2
    assert log[-1] == {"step": 16, "stop_reason": "patience", "best_step": 8}
    saved = load_file(run.path / "adapter" / "adapter_model.safetensors")
    state = get_peft_model_state_dict(model, save_embedding_layers=False)
    assert saved.keys() <= state.keys()
    for key, value in saved.items():  # the model left in memory holds the best weights, not the last
        torch.testing.assert_close(state[key], value)
    checkpoint = load_file(run.checkpoint / "weights.safetensors")
    assert any(not torch.equal(checkpoint[k], saved[k]) for k in saved)  # the last ones differed


def test_a_resumed_run_continues_the_same_schedule(tmp_path):
    """Killed after 5 of 12 steps and resumed from the safetensors checkpoint: bit for bit the same
    learning rates, losses and final weights as one run straight through (constant schedule after
    warmup; cosine with a fixed budget)."""
    for schedule in ("constant", "cosine"):
        settings = {"max_steps": 12, "patience": None, "eval_every": 4, "schedule": schedule, "lr": 1e-2}
        straight, model, _, log = _fit(tmp_path, f"straight-{schedule}", [0.1], **settings)
        assert _fit(tmp_path, f"resumed-{schedule}", [0.1], kill_at=6, **settings)[0] is None
        # the same run folder continues from its checkpoint of step 5 (one is saved every step)
        again, model2, _, log2 = _fit(tmp_path, f"resumed-{schedule}", [0.1], **settings)
        assert again["steps"] == straight["steps"] == 12 and again["stop_reason"] == "max_steps"
        lrs = [(r["step"], r["lr"]) for r in log if "lr" in r]
        assert lrs == [(r["step"], r["lr"]) for r in log2 if "lr" in r]
        assert [r["loss"] for r in log if "loss" in r] == [r["loss"] for r in log2 if "loss" in r]
        a = {k: v for k, v in model.named_parameters() if v.requires_grad}
        b = {k: v for k, v in model2.named_parameters() if v.requires_grad}
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert lrs[-1][1] < settings["lr"] / 10  # cosine decays over the budget


def test_the_wall_time_cap_stops_training_and_says_so(tmp_path):
    summary, *_ = _fit(tmp_path, "run", [0.1], epochs=30, max_minutes=1e-9)
    assert summary["stop_reason"] == "max_minutes" and summary["steps"] == 1


def test_a_pickled_checkpoint_is_refused_not_unpickled(tmp_path):
    """An older llmrec's checkpoint/state.pt is a pickle: loading it would run whatever code its
    writer put in. llmrec says so and stops (exit 2 from the CLI) without opening it."""
    import pickle

    from llmrec.errors import InputError

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "state.pt").write_bytes(pickle.dumps({"step": Payload()}))
    with pytest.raises(InputError, match="pickle") as err:
        _fit(tmp_path, "run", [0.1], max_steps=2)
    assert "state.pt" in str(err.value) and not marker.exists()


def test_tensorboard_logging_writes_the_training_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary, _, run, log = _fit(tmp_path, "run", [0.1, 0.2], max_steps=4, eval_every=2, log_every=1,
                                patience=None, log_with="tensorboard")  # fmt: skip
    events = list((run.path / "tracking").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under RUN_DIR/tracking"
    scalars = EventAccumulator(str(events[0].parent)).Reload()
    tags = set(scalars.Tags()["scalars"])
    assert {"loss", "lr", "tokens_per_s", "valid_ndcg@10"} <= tags
    assert [e.step for e in scalars.Scalars("loss")] == [1, 2, 3, 4]
    assert [round(e.value, 4) for e in scalars.Scalars("valid_ndcg@10")] == [0.1, 0.2]
    logged = [r["loss"] for r in log if "loss" in r]
    assert [round(e.value, 4) for e in scalars.Scalars("loss")] == logged


def test_a_tracker_whose_package_is_missing_fails_before_training(monkeypatch):
    import importlib.util

    from llmrec.errors import InputError
    from llmrec.train.loop import check_tracker

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(InputError, match="pip install mlflow") as err:
        check_tracker(Config.model_validate({"train": {"log_with": "mlflow"}}))
    assert err.value.field == "train.log_with"


def trained_with_model_settings(tmp_path, tiny_backbone, model: dict):
    """A tiny atomic run prepared and trained for 3 steps with these `model` settings, and its reload."""
    from llmrec.run_dir import RunDir

    overrides = ATOMIC | {"model": model, "train": {"eval_users": 16}}
    config = write_config(tmp_path, tiny_backbone, "atomic", overrides, max_steps=3, eval_every=1)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    return run, Recommender.from_run(run.path)


def assert_reload_ranks_as_at_best_valid(run, rec: Recommender) -> None:
    """The reloaded run ranks the validation users the training loop scored at its best step with
    the metrics it saved then (`best_valid`): the weights saved are the weights that were best."""
    from llmrec.data import SplitData
    from llmrec.evaluate import ranking_metrics

    cfg, split = run.load_config(), SplitData.load(run.path)
    sample = split.eval_sample("valid", cfg.train.eval_users, cfg.train.seed)
    lists = rec.recommend(split.histories(sample, "valid"), k=10)
    after = ranking_metrics(
        sample["valid"].tolist(), [[r.item for r in row] for row in lists], set(split.items["item"])
    )
    before = json.loads(run.summary.read_text())["best_valid"]
    assert before and {k: after[k] for k in before} == pytest.approx(before, abs=1e-6)


def test_a_backbone_cut_to_its_first_layers_trains_and_reloads_as_trained(tmp_path, tiny_backbone):
    """`model.layers: 1` keeps the first of the tiny backbone's 2 decoder layers, in training and in
    every reload of the run, with the scores it had before saving; only the adapter and the item rows
    train; a run reloaded with another layer count, or more layers than the model has, is a clear error."""
    run, rec = trained_with_model_settings(tmp_path, tiny_backbone, {"layers": 1})
    assert len(rec.model.get_decoder().layers) == 1 and rec.model.config.num_hidden_layers == 1

    assert_reload_ranks_as_at_best_valid(run, rec)

    # nothing of the cut body trains: the adapter holds LoRA and item rows of the one kept layer only
    saved = load_file(run.adapter / "adapter_model.safetensors")
    assert all("lora_" in k or "token" in k for k in saved), sorted(saved)
    assert not [k for k in saved if ".layers.1." in k]

    edited = yaml.safe_load(run.config.read_text())
    edited["model"]["layers"] = None  # the whole 2-layer body under a 1-layer adapter
    run.config.write_text(yaml.safe_dump(edited))
    with pytest.raises(InputError, match="trained on a body of 1 decoder layers, but .* gives 2") as err:
        Recommender.from_run(run.path)
    assert err.value.field == "model.layers"
    with pytest.raises(InputError, match="model.layers is 3, but the model has 2"):
        load_model(str(tiny_backbone), "fp32", layers=3)


def test_tuned_top_layers_train_alone_and_reload_as_trained(tmp_path, tiny_backbone):
    """`model.tuned_layers: 1` puts LoRA on the top one of the tiny backbone's 2 decoder layers; the
    layer below and the input's item rows get no gradient (autograd builds no graph there), the item
    rows still train through the output; the run reloads with the scores it had before saving."""
    run, rec = trained_with_model_settings(tmp_path, tiny_backbone, {"tuned_layers": 1})
    assert len(rec.model.get_decoder().layers) == 2  # the whole body ranks; only the top layer was tuned

    assert_reload_ranks_as_at_best_valid(run, rec)
    cfg = run.load_config()

    saved = load_file(run.adapter / "adapter_model.safetensors")
    assert [k for k in saved if ".layers.1." in k and "lora_" in k]
    assert not [k for k in saved if ".layers.0." in k], sorted(saved)

    # one step by hand: nothing below the tuned layer is in the graph; the item rows get a gradient
    tok = run.load_tokenizer()
    model = load_model(str(tiny_backbone), "fp32")
    resize_for_tokenizer(model, tok, seed=0)
    item_tokens = tok.convert_tokens_to_ids(ItemIds.load(run.path).ids)
    model = LoraTuning().prepare(model, cfg, item_tokens)
    grads = {}
    layers = model.get_base_model().get_decoder().layers
    for n, layer in enumerate(layers):
        layer.register_forward_hook(lambda m, a, out, n=n: grads.update({n: _first(out).requires_grad}))
    history = [item_tokens[0], item_tokens[1], item_tokens[2]]
    batch = collate([{"input_ids": history, "labels": [-100, *history[1:]]}], tok.pad_token_id)
    CatalogueLoss(item_tokens, len(tok))(model, batch).backward()
    assert grads == {0: False, 1: True}
    rows = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n]
    assert rows and all(p.grad is not None and p.grad.abs().sum() > 0 for p in rows)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def test_tuned_layers_refuse_what_they_cannot_train(tiny_backbone):
    with pytest.raises(ValueError, match="model.item_rows"):
        Config.model_validate({"model": {"tuned_layers": 2, "item_rows": "anchored"}})
    with pytest.raises(ValueError, match="model.finetune"):
        Config.model_validate({"model": {"tuned_layers": 2, "finetune": "full"}})
    with pytest.raises(InputError, match="tuned_layers is 3, but the body has 2") as err:
        LoraTuning().prepare(load_model(str(tiny_backbone), "fp32"), Config.model_validate(
            {"model": {"tuned_layers": 3}}), [])  # fmt: skip
    assert err.value.field == "model.tuned_layers"
