"""Time gaps (`prompts.time: gaps`): bucketing, the same codes and model inputs from a training window
and from a request with the same times, timed histories through the CLI, the server and score, and
data without times."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pandas as pd
import pytest
import torch
import yaml
from helpers import Server
from test_pipeline import runner, write_config

from llmrec.cli import app
from llmrec.config import Config, DataConfig, PromptConfig
from llmrec.data import leave_one_out, load_catalog
from llmrec.errors import InputError
from llmrec.generate import Recommender
from llmrec.model.time_gaps import TimeGapEmbedding, attach, gap_context
from llmrec.prompts import PromptBuilder, window_examples
from llmrec.prompts.time import (
    BUCKETS,
    DAY,
    HOUR,
    MINUTE,
    bucket,
    check_times,
    default_now,
    gap_code,
    history_gaps,
    split_code,
    split_timed,
)
from llmrec.run_dir import RunDir

T0 = 1_600_000_000


def test_gaps_are_bucketed_on_a_log_scale():
    assert [bucket(g) for g in (0, 59, 60, 9 * MINUTE, 2 * HOUR, 12 * HOUR, 2 * DAY, 5 * DAY)] == [
        1, 1, 2, 2, 4, 5, 6, 7,
    ]  # fmt: skip
    assert bucket(20 * DAY) == 8 and bucket(400 * DAY) == BUCKETS - 1
    times = [T0, T0 + 30, T0 + 30 + 3 * DAY, T0 + 30 + 3 * DAY + 2 * HOUR]
    before, after = history_gaps(times, now=times[-1] + 40 * DAY)
    assert before == [0, 1, 7, 4]  # the first item has no gap before it
    assert after == [1, 7, 4, bucket(40 * DAY)]  # the last item's: until now
    # default now: the last time plus the median gap (here 2 hours)
    assert default_now(times) == times[-1] + 2 * HOUR
    assert history_gaps(times)[1][-1] == bucket(2 * HOUR)
    assert history_gaps(times[1:], before_first=times[0])[0][0] == 1  # a window cut from a sequence
    assert all(split_code(gap_code(b, a)) == (b, a) for b in range(BUCKETS) for a in range(BUCKETS))


@pytest.mark.parametrize(
    ("times", "now", "message"),
    [
        ([T0, "x"], None, "item 2: field 't': time 'x' is not a finite number"),
        ([T0, T0 - 1], None, "item 2: field 't': time"),
        ([T0], None, "field 't': 1 times for 2 items"),
        ([T0, T0 + 5], T0, "field 'now': now"),
        ([T0, float("nan")], None, "item 2: field 't'"),
    ],
)
def test_malformed_times_are_refused_naming_the_field(times, now, message):
    with pytest.raises(InputError, match=message):
        check_times(["a", "b"], times, now)


def test_cli_histories_take_times_for_every_item_or_none():
    assert split_timed(["a", "b"]) == (["a", "b"], None)
    assert split_timed(["a@1600000000", "b@2020-09-13T12:27:00Z"]) == (["a", "b"], [1.6e9, 1.6e9 + 20])
    with pytest.raises(InputError, match="item 2: field 't': give a time for every item"):
        split_timed(["a@1600000000", "b"])
    with pytest.raises(InputError, match="item 1: field 't': 'soon' is not a time"):
        split_timed(["a@soon"])


def timed_csv(folder, n_users: int = 30, n_items: int = 20, seed: int = 0):
    """Sessions of a few items a minute apart, sessions days apart (gaps of several buckets)."""
    rng = random.Random(seed)
    lines = ["uid,iid,ts"]
    for u in range(n_users):
        t, item = T0 + rng.randrange(10**6), rng.randrange(n_items)
        for n in range(rng.randrange(6, 12)):
            t += 60 if n % 3 else rng.choice([HOUR, DAY, 9 * DAY])
            item = (item + 1) % n_items
            lines.append(f"u{u},m{item},{int(t)}")
    path = folder / "interactions.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_training_window_and_a_request_give_the_same_codes_and_hidden_states(tmp_path):
    """Each target of a window is predicted from what a request of its prefix (with the target's
    time as `now`) would show: the same ids, the same gap codes, the same last hidden state."""
    from tiny import tiny_model, tiny_tokenizer

    path = timed_csv(tmp_path)
    split = leave_one_out(load_catalog(DataConfig(format="generic", interactions=str(path),
                                                  columns={"user": "uid", "item": "iid", "timestamp": "ts",
                                                           "title": None})))  # fmt: skip
    assert split.timed
    tokenizer = tiny_tokenizer()
    ids = {item: f"<item_{n}>" for n, item in enumerate(split.items["item"])}
    tokenizer.add_tokens(list(ids.values()))
    cfg = PromptConfig(objective="every_item", item_separator="none", time="gaps", max_prompt_tokens=16)
    builder = PromptBuilder(cfg, tokenizer, ids)
    windows = window_examples(split, builder, None)
    assert {"times", "before"} <= set(windows.columns)
    model = tiny_model(len(tokenizer), seed=1)
    gaps = TimeGapEmbedding(model.get_input_embeddings().weight.shape[1])
    torch.nn.init.normal_(gaps.before.weight, std=0.5)  # trained tables are not zero
    torch.nn.init.normal_(gaps.after.weight, std=0.5)
    attach(model, gaps)
    user_times = dict(zip(split.users["user"], split.users["train_t"], strict=True))
    user_items = dict(zip(split.users["user"], split.users["train"], strict=True))
    checked = 0
    for _, row in windows.iterrows():
        seq, times = user_items[row["user"]], user_times[row["user"]]
        start = next(s for s in range(len(seq)) if seq[s : s + len(row["items"])] == list(row["items"])
                     and times[s : s + len(row["items"])] == list(row["times"]))  # fmt: skip
        before = None if pd.isna(row["before"]) else row["before"]
        window_ids, labels, codes = builder.encode_window(list(row["items"]), list(row["times"]), before)
        with torch.no_grad(), gap_context(model, torch.tensor([codes])):
            window_states = model.model(input_ids=torch.tensor([window_ids])).last_hidden_state[0]
        head = len(builder.header_ids)
        for j in range(1, len(row["items"])):  # the target is the window's item j
            prefix, moment = seq[: start + j], times[start + j]
            prompt = builder.encode([prefix])[0]
            request_codes = builder.gap_codes([prefix], [times[: start + j]], [moment])[0]
            assert prompt[-j:] == window_ids[head : head + j]
            assert request_codes[-j:] == codes[head : head + j]
            with torch.no_grad(), gap_context(model, torch.tensor([request_codes])):
                state = model.model(input_ids=torch.tensor([prompt])).last_hidden_state[0, -1]
            if len(prompt) == head + j:  # the prompt shows exactly the window's prefix
                torch.testing.assert_close(state, window_states[head + j - 1], rtol=1e-4, atol=1e-5)
                checked += 1
    assert checked > 20
    # and the gaps matter: the same request with another `now` is another input
    prompt, times = user_items["u0"], user_times["u0"]
    soon = builder.gap_codes([prompt], [times], [times[-1] + 1])[0]
    later = builder.gap_codes([prompt], [times], [times[-1] + 200 * DAY])[0]
    assert soon[:-1] == later[:-1] and soon[-1] != later[-1]


def test_next_item_prompts_show_the_gaps_as_words(tmp_path):
    from tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    cfg = PromptConfig(objective="next_item", time="gaps", max_prompt_tokens=400)
    builder = PromptBuilder(cfg, tokenizer, {"a": "a", "b": "b", "c": "c"})
    text = builder.render(["a", "b", "c"], [T0, T0 + 30, T0 + 30 + 3 * DAY], now=T0 + 30 + 13 * DAY)
    assert "(moments later) b" in text and "(days later) c" in text and "Next item (weeks later):" in text
    assert builder.render(["a", "b"]) == PromptBuilder(PromptConfig(objective="next_item"), tokenizer,
                                                       {"a": "a", "b": "b"}).render(["a", "b"])  # fmt: skip


@pytest.fixture(scope="module")
def timed_run(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("timed-run")
    config = write_config(root, tiny_backbone, "atomic", {"prompts": {"objective": "every_item",
                          "template": "item_list.j2", "include_titles": False, "time": "gaps"}},
                          max_steps=4, eval_every=0)  # fmt: skip
    timed_csv(root)  # replaces the synthetic interactions with sessions days apart
    raw = yaml.safe_load(Path(config).read_text())
    raw["data"] = {"format": "generic", "interactions": "interactions.csv",
                   "columns": {"user": "uid", "item": "iid", "timestamp": "ts", "title": None}}  # fmt: skip
    Path(config).write_text(yaml.safe_dump(raw))
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return root / "run"


def test_a_timed_run_learns_gap_rows_and_ranks_by_the_time_of_the_request(timed_run):
    summary = json.loads((timed_run / "train_summary.json").read_text())
    assert summary["time"] == "gaps"
    assert (timed_run / "adapter" / "time_gaps.safetensors").exists()
    rec = Recommender.from_run(timed_run)
    assert rec.model.time_gaps.before.weight.abs().sum() > 0  # trained away from zero
    history, times = ["m1", "m2", "m3"], [T0, T0 + 60, T0 + 120]
    soon = rec.recommend([history], k=20, times=[times], now=[T0 + 180])[0]
    later = rec.recommend([history], k=20, times=[times], now=[T0 + 300 * DAY])[0]
    assert [r.score for r in soon] != [r.score for r in later]
    plain = rec.recommend([history], k=20)[0]  # no times: ranked without them, still valid
    assert len({r.item for r in plain}) == 20 - len(history)  # the catalogue less the history
    with pytest.raises(InputError, match="field 'now'"):
        rec.recommend([history], times=[times], now=[T0])


def test_the_cli_takes_timed_histories_and_refuses_malformed_ones(timed_run):
    args = ["recommend", str(timed_run), "-k", "3", "--json"]
    ok = runner.invoke(app, [*args, "--history", "m1@1600000000,m2@2020-09-14", "--now", "2020-10-01"])
    assert ok.exit_code == 0, ok.output
    rec = Recommender.from_run(timed_run)
    expected = rec.recommend([["m1", "m2"]], k=3, times=[[1.6e9, 1600041600.0]], now=[1601510400.0])[0]
    assert [json.loads(line)["item"] for line in ok.stdout.splitlines()] == [r.item for r in expected]
    bad = runner.invoke(app, [*args, "--history", "m1@1600000000,m2@1500000000"])
    assert bad.exit_code == 2 and "field 't'" in bad.output and "before the previous item" in bad.output
    bad = runner.invoke(app, [*args, "--history", "m1,m2", "--now", "1600000000"])
    assert bad.exit_code == 2 and "now needs the history's times" in bad.output
    bad = runner.invoke(app, [*args, "--history", "m1@1600000000", "--now", "tomorrow"])
    assert bad.exit_code == 2 and "field 'now'" in bad.output


def test_score_uses_each_users_times(timed_run, tmp_path):
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["score", str(timed_run), "--split", "test", "--out", str(out), "-k", "5"])
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(out)
    rec = Recommender.from_run(timed_run)
    split = RunDir(timed_run).load_split()
    users = split.eval_users("test").head(3)
    expected = rec.recommend(split.histories(users, "test"), k=5, times=split.times(users, "test"))
    for user, recs in zip(users["user"], expected, strict=True):
        assert scored[scored["user"] == user]["item"].tolist() == [r.item for r in recs]


@pytest.mark.process
def test_the_server_takes_timed_histories_and_refuses_malformed_ones(timed_run):
    server = Server(timed_run)
    try:
        history = [{"item": "m1", "t": T0}, {"item": "m2", "t": "2020-09-14T00:00:00"}]
        served = httpx.post(server.url + "/recommend", json={"history": history, "now": T0 + 9 * DAY, "k": 4})
        assert served.status_code == 200, served.text
        expected = Recommender.from_run(timed_run).recommend(
            [["m1", "m2"]], k=4, times=[[T0, 1600041600.0]], now=[T0 + 9 * DAY]
        )[0]
        assert [r["item"] for r in served.json()["items"]] == [r.item for r in expected]
        assert (
            httpx.post(server.url + "/recommend", json={"user": "u1", "now": T0 + 400 * DAY}).status_code
            == 200
        )
        for body, needle in [
            ({"history": [{"item": "m1", "t": T0}, "m2"]}, "give a time for every history entry"),
            ({"history": [{"item": "m1", "t": "yesterday"}]}, "history[0]: field 't'"),
            ({"history": [{"item": "m1", "t": T0}, {"item": "m2", "t": T0 - 9}]}, "before the previous item"),
            ({"history": ["m1"], "now": T0}, "field 'now': now needs the history's times"),
            ({"history": [{"item": "m1", "t": T0}], "now": T0 - 1}, "field 'now'"),
            ({"user": "u1", "now": 0}, "now"),
            ({"history": [{"item": "m1", "when": T0}]}, "when"),
        ]:
            response = httpx.post(server.url + "/recommend", json=body)
            assert response.status_code == 422 and needle in response.text, (body, response.text)
    finally:
        server.stop()


def test_the_vllm_backend_refuses_a_timed_run_with_a_clear_error(timed_run):
    with pytest.raises(InputError, match="time-gap embeddings.*--backend hf"):
        Recommender.from_run(timed_run, backend="vllm")


def test_data_without_times_keeps_working_and_says_time_is_unused(tmp_path, tiny_backbone):
    p5 = tmp_path / "seqs.txt"
    p5.write_text(
        "".join(f"u{u} " + " ".join(str((u + t) % 15 + 1) for t in range(6)) + "\n" for u in range(20))
    )
    split = leave_one_out(load_catalog(DataConfig(format="p5", path=str(p5))))
    assert not split.timed and split.times(split.users, "valid") is None
    config = write_config(tmp_path, tiny_backbone, "atomic", {"prompts": {"objective": "every_item",
                          "template": "item_list.j2", "include_titles": False, "time": "gaps"}},
                          max_steps=2, eval_every=0)  # fmt: skip
    raw = yaml.safe_load(Path(config).read_text())
    raw["data"] = {"format": "p5", "path": str(p5)}
    Path(config).write_text(yaml.safe_dump(raw))
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "no times" in result.output
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["time"] == "none"
    assert not (tmp_path / "run" / "adapter" / "time_gaps.safetensors").exists()
    Config.model_validate(yaml.safe_load(Path(config).read_text()))


def test_a_resumed_timed_run_continues_with_its_gap_rows(tmp_path, tiny_backbone):
    """The gap tables are in the resumable checkpoint: 3 steps, then resumed to 6, ends where 6
    steps straight through end."""
    from safetensors.torch import load_file

    config = write_config(tmp_path, tiny_backbone, "atomic", {"prompts": {"objective": "every_item",
                          "template": "item_list.j2", "include_titles": False, "time": "gaps"}},
                          max_steps=6, eval_every=0, save_every=1, warmup_steps=0)  # fmt: skip
    timed_csv(tmp_path)
    raw = yaml.safe_load(Path(config).read_text())
    raw["data"] = {"format": "generic", "interactions": "interactions.csv",
                   "columns": {"user": "uid", "item": "iid", "timestamp": "ts", "title": None}}  # fmt: skip
    Path(config).write_text(yaml.safe_dump(raw))
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    for run_dir, budgets in (("straight", [6]), ("resumed", [3, 6])):
        for steps in budgets:
            sets = ["--set", f"run_dir={run_dir}", "--set", f"train.max_steps={steps}"]
            result = runner.invoke(app, ["train", config, *sets])
            assert result.exit_code == 0, result.output
    straight, resumed = (
        load_file(tmp_path / r / "checkpoint" / "weights.safetensors") for r in ("straight", "resumed")
    )
    assert any(k.startswith("time_gaps.") for k in straight) and straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert straight["time_gaps.before.weight"].abs().sum() > 0


def test_time_gaps_train_beside_anchored_item_rows(tmp_path, tiny_backbone):
    """Both attached modules in one run: each in the checkpoint and beside the adapter, both loaded."""
    from safetensors.torch import load_file

    config = write_config(tmp_path, tiny_backbone, "atomic", {"prompts": {"objective": "every_item",
                          "template": "item_list.j2", "include_titles": False, "time": "gaps"},
                          "model": {"item_rows": "anchored"}}, max_steps=3, eval_every=0)  # fmt: skip
    assert runner.invoke(app, ["prepare", config]).exit_code == 0
    result = runner.invoke(app, ["train", config])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert {"time_gaps.safetensors", "item_anchor.safetensors"} <= {
        p.name for p in (run / "adapter").iterdir()
    }
    state = load_file(run / "checkpoint" / "weights.safetensors")
    assert any(k.startswith("time_gaps.") for k in state) and any(k.startswith("item_anchor.") for k in state)
    rec = Recommender.from_run(run)
    assert rec.model.time_gaps is not None
    assert len(rec.recommend([["m1", "m2"]], k=5, times=[[T0, T0 + 60]])[0]) == 5
