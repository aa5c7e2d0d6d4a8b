"""`model.start_from`: a run starts from another run's body (and text -> row map) on a new domain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_domains import ATOMIC
from test_pipeline import runner, write_config

from llmrec.backbone import load_model, mean_token_rows, resize_for_tokenizer
from llmrec.cli import app
from llmrec.generate import Recommender
from llmrec.ids import ItemIds
from llmrec.ids.embeddings import item_text_vectors
from llmrec.model.anchored import ANCHOR_FILE, new_item_rows
from llmrec.run_dir import RunDir

ANCHORED = {"model": {"item_rows": "anchored"}}
WORDS = ["alpha", "beta", "gamma", "delta", "omega"]


def write_twins(folder: Path, noun: str, n_users: int = 40, pairs: int = 10) -> dict:
    """A source whose items come in twins with one title ('<noun> k' for m2k and m2k+1), and whose
    users take each item's twin right after it: what follows an item is the item with its text."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["uid,iid,ts"]
    for u in range(n_users):
        walk = [(u * 3 + step) % pairs for step in range(3)]
        items = [f"m{2 * k + (u % 2)}" for k in walk for _ in (0,)]
        twins = [f"m{2 * k + 1 - (u % 2)}" for k in walk]
        sequence = [x for pair in zip(items, twins, strict=True) for x in pair]
        rows += [f"u{u},{item},{1_600_000_000 + 60 * t}" for t, item in enumerate(sequence)]
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    (folder / "items.csv").write_text(
        "iid,name,genre\n" + "".join(f"m{i},{noun} {WORDS[i // 2 % 5]} {i // 2},kind{i // 2}\n"
                                     for i in range(2 * pairs))
    )  # fmt: skip
    columns = {"user": "uid", "item": "iid", "timestamp": "ts", "title": "name", "text": ["genre"]}
    return {"format": "generic", "interactions": str(folder / "interactions.csv"),
            "items": str(folder / "items.csv"), "columns": columns}  # fmt: skip


def run_on(root: Path, backbone: Path, data: dict, overrides: dict | None = None, **train) -> Path:
    """prepare + train a tiny anchored atomic run on `data` in `root`; returns the run folder."""
    path = Path(write_config(root, backbone, "atomic", ATOMIC | ANCHORED, **train))
    cfg = yaml.safe_load(path.read_text())
    cfg["data"] = data
    for section, values in (overrides or {}).items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    for args in (["prepare", str(path)], ["train", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return root / "run"


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, tiny_backbone) -> Path:
    root = tmp_path_factory.mktemp("source")
    return run_on(root, tiny_backbone, write_twins(root / "films", "Film"), max_steps=80, eval_every=0,
                  lr=1e-2)  # fmt: skip


def test_a_started_run_carries_the_body_and_maps_its_own_text_to_rows(source_run, tmp_path, tiny_backbone):
    zero = run_on(tmp_path, tiny_backbone, write_twins(tmp_path / "books", "Book"),
                  {"model": {"start_from": str(source_run)}}, max_steps=0)  # fmt: skip
    source, started = RunDir(source_run), RunDir(zero)
    theirs = load_file(str(source.adapter / "adapter_model.safetensors"))
    mine = load_file(str(started.adapter / "adapter_model.safetensors"))
    body = [k for k in theirs if "lora_" in k]
    assert body and all(torch.equal(theirs[k], mine[k]) for k in body)
    their_map, my_map = (
        load_file(str(source.adapter / ANCHOR_FILE)),
        load_file(str(started.adapter / ANCHOR_FILE)),
    )
    assert torch.equal(their_map["map.weight"], my_map["map.weight"])
    assert not torch.equal(
        my_map["map.weight"][:, -my_map["map.weight"].shape[0] :], torch.eye(my_map["map.weight"].shape[0])
    )
    assert json.loads(started.summary.read_text())["start_from"]["text_map"] is True

    # the started run's item rows are its own items' text through the carried map, as training makes
    # them (what `llmrec items add` would make for them from the source run's map)
    tokenizer, ids = started.load_tokenizer(), ItemIds.load(started.path)
    split = started.load_split()
    base = load_model(str(tiny_backbone), "fp32")
    resize_for_tokenizer(base, tokenizer)
    order = {item: n for n, item in enumerate(split.items["item"])}
    pooled = item_text_vectors(split.items, base, tokenizer)[[order[i] for i in ids.items]]
    text = split.title_or_text()
    token_ids = tokenizer.convert_tokens_to_ids(ids.ids)
    texts = [text[i] for i in ids.items]
    token_rows, _ = mean_token_rows(base.get_input_embeddings().weight, tokenizer, texts, min(token_ids))
    expected = new_item_rows(my_map, pooled, token_rows)
    model = Recommender.from_run(started.path).model
    rows = model.get_input_embeddings()(torch.tensor(token_ids)).float()
    assert torch.allclose(rows, expected, atol=1e-4)


def test_zero_shot_ranks_the_item_with_the_historys_text_first(source_run, tmp_path, tiny_backbone):
    """The source run learned that an item's twin (same title, another id) comes next; a run started
    from it on a new catalogue, with no training, ranks each item's twin first, where the base model
    with the same text-made rows does so only by chance."""
    histories = [[f"m{2 * k + side}"] for side in (0, 1) for k in range(10)]
    twins = [f"m{2 * k + 1 - side}" for side in (0, 1) for k in range(10)]
    hits = {}
    for name, start in (("started", {"model": {"start_from": str(source_run)}}), ("base", None)):
        run = run_on(tmp_path / name, tiny_backbone, write_twins(tmp_path / name / "books", "Book"), start,
                     max_steps=0)  # fmt: skip
        top = [row[0].item for row in Recommender.from_run(run).recommend(histories, k=3)]
        hits[name] = sum(t == twin for t, twin in zip(top, twins, strict=True))
    assert hits["started"] >= 16 and hits["started"] >= hits["base"] + 5, hits


def test_start_from_must_be_a_run_of_the_same_body(source_run, tmp_path, tiny_backbone):
    data = write_twins(tmp_path / "books", "Book")
    for start, extra, message in (
        (str(tmp_path / "books"), {}, "not a run directory"),
        (str(source_run), {"lora": {"r": 8, "alpha": 16}}, "model.lora differs"),
    ):
        path = Path(write_config(tmp_path, tiny_backbone, "atomic", ATOMIC))
        cfg = yaml.safe_load(path.read_text())
        cfg["data"], cfg["model"]["start_from"] = data, start
        cfg["model"].update(extra)
        path.write_text(yaml.safe_dump(cfg))
        assert runner.invoke(app, ["prepare", str(path)]).exit_code == 0
        result = runner.invoke(app, ["train", str(path)])
        assert result.exit_code == 2 and "model.start_from" in result.output and message in result.output
        assert not (tmp_path / "run").exists()
        shutil.rmtree(tmp_path / "prepared")


def test_a_started_run_is_validated_before_it_trains(source_run, tmp_path, tiny_backbone):
    """Where tuning on the new domain only loses, the weights it started from stay the best."""
    run = run_on(tmp_path, tiny_backbone, write_twins(tmp_path / "books", "Book"),
                 {"model": {"start_from": str(source_run)}}, max_steps=2, eval_every=0)  # fmt: skip
    log = [json.loads(line) for line in RunDir(run).log.read_text().splitlines()]
    validated = [r["step"] for r in log if "valid_ndcg@10" in r]
    assert validated == [0, 2]
    summary = json.loads(RunDir(run).summary.read_text())
    best = max((r for r in log if "valid_ndcg@10" in r), key=lambda r: (r["valid_ndcg@10"], -r["step"]))
    assert summary["best_step"] == best["step"]
