"""The content mix (`generate.mix: content`): the LLM's catalogue log-probs plus a weight times
the item text's cosine with the recent history, profile and weight chosen on validation; a score
bonus on `Recommender.recommend`; honoured by train's choice, evaluate, recommend and serve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ATOMIC_PROMPTS as ATOMIC
from test_pipeline import runner, write_config

from llmrec.cli import app
from llmrec.errors import InputError
from llmrec.generate import Recommender
from llmrec.mix import ContentMixRecommender, choose_mix, fit_content_mix
from llmrec.mix.content import WEIGHTS
from llmrec.run_dir import RunDir

HISTORIES = [["m1", "m2", "m3"], ["m7", "m8"], ["m20"]]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_backbone):
    """A tiny atomic run on the synthetic catalogue (titles "Film i", genres as text), mix none
    so training fits nothing; the tests fit what they need."""
    root = tmp_path_factory.mktemp("content-mix")
    config = write_config(root, tiny_backbone, "atomic", ATOMIC | {"generate": {"mix": "none"}},
                          max_steps=2, eval_every=0)  # fmt: skip
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return RunDir(root / "run")


def test_bonus_is_added_to_the_catalogue_log_probs(text_run):
    rec = Recommender.from_run(text_run.path)
    scores = rec.score_catalogue(HISTORIES)
    assert scores.shape == (3, len(rec.item_ids.items))
    history_cols = [rec.item_ids.index[i] for i in HISTORIES[0]]
    assert torch.isinf(scores[0, history_cols]).all()  # the history is excluded
    plain = rec.recommend(HISTORIES, k=5)
    top = scores.topk(5, dim=-1)
    for row, values in zip(plain, top.values.tolist(), strict=True):
        assert [r.score for r in row] == pytest.approx(values, abs=1e-5)
    bonus = torch.zeros_like(scores)
    last = rec.item_ids.items.index("m29")
    bonus[:, last] = 100.0  # a bonus this large puts its item first for every user
    boosted = rec.recommend(HISTORIES, k=5, bonus=bonus)
    assert all(row[0].item == "m29" for row in boosted)
    assert boosted[0][0].score == pytest.approx(float(scores[0, last]) + 100.0, abs=1e-4)
    with pytest.raises(InputError, match="bonus must be"):
        rec.recommend(HISTORIES, k=5, bonus=bonus[:2])


def test_the_mix_is_llm_plus_weight_times_cosine_and_chosen_on_validation(text_run):
    settings = fit_content_mix(text_run.path, log=lambda _: None)
    saved = json.loads((text_run.path / "mix" / "content_mix.json").read_text())
    assert saved == settings and saved["valid_users"] == 40
    sweep = saved["valid_ndcg@10_by_profile_weight"]
    assert set(sweep) == {"1", "2", "3", "5", "10", "all"} and set(sweep["1"]) == {str(w) for w in WEIGHTS}
    assert saved["valid_ndcg@10_llm_alone"] == sweep["1"]["0.0"]
    best = max(v for by_w in sweep.values() for v in by_w.values())
    if saved["weight"] > 0:  # a mix is kept only when it beats the LLM alone beyond one standard error
        assert saved["valid_ndcg@10"] == best and saved["best_gain"] > saved["best_gain_se"]
    else:
        assert saved["valid_ndcg@10"] == saved["valid_ndcg@10_llm_alone"]
        assert best - saved["valid_ndcg@10_llm_alone"] == pytest.approx(saved["best_gain"], abs=1e-5)
    assert (text_run.path / "item_text_vectors.npy").exists()  # embedded once, kept for `items add`

    mixed = ContentMixRecommender.from_run(text_run.path)
    mixed.weight, mixed.profile = 5.0, 2
    llm = mixed.llm.score_catalogue(HISTORIES)
    cos = mixed.cosines(HISTORIES, 2)
    for n, row in enumerate(mixed.recommend(HISTORIES, k=6)):
        expected = (llm[n] + 5.0 * cos[n]).topk(6)
        assert [r.item for r in row] == [mixed.item_ids.items[j] for j in expected.indices.tolist()]
        assert [r.score for r in row] == pytest.approx(expected.values.tolist(), abs=1e-4)
    # the cosine: the profile of the last two items' text vectors against each item's
    vectors = mixed.content.vectors
    profile = torch.nn.functional.normalize(vectors[[mixed.content.index["m2"], mixed.content.index["m3"]]]
                                            .mean(0), dim=0)  # fmt: skip
    assert cos[0] == pytest.approx((vectors @ profile).tolist(), abs=1e-5)
    with pytest.raises(InputError, match="unknown item"):
        mixed.recommend([["m1", "nope"]], k=3)


def test_train_chooses_among_llm_and_the_content_mix_and_every_verb_honours_it(tmp_path, tiny_backbone):
    from llmrec.serve.app import Engine

    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC, max_steps=2, eval_every=0)
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    run = RunDir(tmp_path / "run")
    choice_file = run.path / "mix" / "choice.json"
    choice = json.loads(choice_file.read_text())
    # no SASRec-CE available: the LLM alone and the content mix, on training's validation users
    assert set(choice["valid_ndcg@10"]) == {"llm", "content"} and choice["valid_users"] == 8
    best = max(choice["valid_ndcg@10"], key=lambda k: (choice["valid_ndcg@10"][k], k == "llm"))
    assert choice["chosen"] == best
    mix_file = run.path / "mix" / "content_mix.json"
    assert json.loads(mix_file.read_text())["valid_ndcg@10"] == choice["valid_ndcg@10"]["content"]
    # a heavy weight, so the two recommenders differ and the test can tell which one answered
    mix_file.write_text(json.dumps(json.loads(mix_file.read_text()) | {"weight": 40.0, "profile": "1"}))
    history = ["m1", "m2", "m3", "m4"]
    expected = {
        "llm": [r.item for r in Recommender.from_run(run.path).recommend([history], k=5)[0]],
        "content": [r.item for r in ContentMixRecommender.from_run(run.path).recommend([history], k=5)[0]],
    }
    assert expected["llm"] != expected["content"]
    for chosen, model in (("content", "content"), ("llm", "none")):
        choice_file.write_text(json.dumps(choice | {"chosen": chosen}))
        result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test"])
        assert result.exit_code == 0, result.output
        metrics = json.loads(run.metrics("test").read_text())
        assert metrics["mix"]["model"] == model
        result = runner.invoke(app, ["recommend", str(run.path), "--history", ",".join(history), "-k", "5",
                                     "--json"])  # fmt: skip
        assert [json.loads(line)["item"] for line in result.stdout.splitlines()] == expected[chosen]
        engine = Engine(run.path, None, None)
        assert isinstance(engine.rec, ContentMixRecommender) == (chosen == "content")
    result = runner.invoke(app, ["evaluate", str(run.path), "--split", "test", "--mix", "content"])
    assert result.exit_code == 0, result.output
    used = json.loads(run.metrics("test").read_text())["mix"]
    fitted = (used["model"], used["profile"], used["weight"], used["sasrec_weight"])
    assert fitted == ("content", 1, 40.0, 0.0)  # no SASRec-CE in this run


def test_a_catalogue_without_text_has_no_content_mix(tmp_path, tiny_backbone):
    config = write_config(tmp_path, tiny_backbone, "atomic", ATOMIC, max_steps=2, eval_every=0)
    items = tmp_path / "items.csv"
    items.write_text("iid,name,genre\n" + "".join(f"m{i},," + "\n" for i in range(30)))
    for args in (["prepare", config], ["train", config]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    choice = choose_mix(tmp_path / "run", log=lambda _: None)
    assert choice["chosen"] == "llm" and "no item text" in choice["reason"]
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--mix", "content"])
    assert result.exit_code == 2 and "text" in result.output


def test_a_mix_is_kept_when_the_text_points_at_the_target(text_run, monkeypatch):
    """Text similarity that names each validation user's next item: the sweep finds it, the gain is
    far beyond its standard error, so the weight stays."""
    split = text_run.load_split()
    users = split.eval_users("valid")
    by_history = {tuple(h): t for h, t in zip(split.histories(users, "valid"), users["valid"], strict=True)}
    items = split.items["item"].tolist()

    def pointing(self, histories, profile):
        cos = torch.zeros(len(histories), len(items))
        for r, history in enumerate(histories):
            cos[r, items.index(by_history[tuple(history)])] = 1.0
        return cos

    monkeypatch.setattr(ContentMixRecommender, "cosines", pointing)
    saved = fit_content_mix(text_run.path, log=lambda _: None)
    assert saved["weight"] > 0 and saved["valid_ndcg@10"] == pytest.approx(1.0)
    assert saved["best_gain"] > saved["best_gain_se"] > 0


def test_an_added_item_gets_its_similarity_from_its_text_at_once(text_run, tmp_path):
    """`llmrec items add` on a run with a content mix: the new item's cosine comes from its text (the
    same text as m2 gives m2's cosine), and it can be recommended by the mix."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint"))
    fit_content_mix(run, log=lambda _: None)
    (tmp_path / "new.csv").write_text("iid,name,genre\nm99,Film 2,action\n")
    result = runner.invoke(app, ["items", "add", str(run), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    mixed = ContentMixRecommender.from_run(run)
    assert mixed.item_ids.items[-1] == "m99" and len(mixed.content.items) == 31
    cos = mixed.cosines([["m5", "m1"]], 1)[0]
    assert float(cos[-1]) == pytest.approx(float(cos[mixed.content.index["m2"]]), abs=1e-3)
    mixed.llm.cfg.new_item_placement = "slots"  # the score path (calibrated placement: the next test)
    mixed.weight, mixed.profile = 1000.0, 1  # the text decides: m99 and m2 rank side by side
    ranked = mixed.recommend([["m5", "m1"]], k=29)[0]
    where = {r.item: n for n, r in enumerate(ranked)}
    assert abs(where["m99"] - where["m2"]) == 1
    assert ranked[where["m99"]].score == pytest.approx(ranked[where["m2"]].score, rel=0.01)


def test_chance_tables_are_fitted_on_validation_and_place_added_items(text_run, tmp_path):
    """The fit stores, per rank, the share of validation targets there (of the kept ranking and of
    text similarity to the latest item); after `items add` the mix lists by those chances: an added
    item whose text rank has a higher chance than the first warm place leads the list, one whose
    text rank has none stays out; `new_item_placement: slots` goes back to the slots."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint"))
    saved = fit_content_mix(run, log=lambda _: None)
    ranked, by_text = saved["rank_chance"]["ranked"], saved["rank_chance"]["by_text"]
    assert len(ranked) == len(by_text) == 200 and 0 < sum(ranked) <= 1 + 1e-6 and 0 < sum(by_text) <= 1 + 1e-6
    # each share is a whole number of the 40 validation users
    assert all(abs(v * 40 - round(v * 40)) < 1e-3 for v in ranked + by_text)
    (tmp_path / "new.csv").write_text("iid,name,genre\nm99,Film 2,action\n")  # m2's text
    result = runner.invoke(app, ["items", "add", str(run), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    mixed = ContentMixRecommender.from_run(run)
    apart = mixed.chance["ranked_apart"]
    assert mixed.chance == saved["rank_chance"] and len(apart) == 200 and all(0 <= v <= 1 for v in apart)
    history = [["m5", "m2"]]  # m2 is excluded, so m99 (same text) is the nearest item by text
    text = mixed.content.scores(history, exclude_history=True, profile=1)[0]
    assert int(text.argmax()) == mixed.item_ids.index["m99"]

    # a fit without the table apart from the nearest: `ranked` for every user
    mixed.chance = {
        "ranked": [0.5, 0.4, 0.3, 0.2, 0.1],
        "by_text": [0.45],
    }  # m99's text rank 0: between warm places 1 and 2
    listed = [r.item for r in mixed.recommend(history, k=5)[0]]
    warm = [i for i in [r.item for r in mixed.recommend(history, k=10)[0]] if i != "m99"]
    assert listed == [warm[0], "m99", *warm[1:4]]
    # m99 is this user's nearest item by text, so no warm item is: the table apart from it decides
    mixed.chance = mixed.chance | {"ranked_apart": [0.4, 0.3, 0.2, 0.1, 0.05]}
    assert [r.item for r in mixed.recommend(history, k=5)[0]] == ["m99", *warm[:4]]
    mixed.chance = {
        "ranked": [0.5, 0.4, 0.3, 0.2, 0.1],
        "by_text": [0.0],
    }  # text rank 0 never held a target: m99 stays out
    assert "m99" not in [r.item for r in mixed.recommend(history, k=5)[0]]
    mixed.chance = {"ranked": [0.5, 0.4, 0.3, 0.2, 0.1], "by_text": [0.4]}  # a tie keeps the warm item
    assert [r.item for r in mixed.recommend(history, k=5)[0]][1:3] == [warm[1], "m99"]
    mixed.llm.cfg.new_item_placement = "slots"
    assert mixed.placement(history) is None


def test_top_by_chance_keeps_score_order_within_equal_chances():
    """Equal chances over warm ranks keep the score order; an excluded added item is never listed."""
    from llmrec.generate.new_items import RankChance, rank_chance, top_by_chance

    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, float("-inf"), 1.0]])
    new = torch.tensor([False, False, False, False, True, True])
    similarity = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.5]])  # item 4 nearest, but excluded
    chance = RankChance(torch.tensor([0.1, 0.1, 0.1, 0.1]), torch.tensor([0.3, 0.05]), similarity)
    top = top_by_chance(scores, new, 4, chance)[0]
    assert [s.item for s in top] == [5, 0, 1, 2] and top[0].score == 1.0
    assert rank_chance(scores[:, :4].repeat(2, 1), [0, 2]).tolist()[:3] == [0.5, 0.0, 0.5]


def test_the_rankings_chance_apart_from_the_nearest_text_counts_only_rows_where_they_differ():
    """Per rank, hits over the rows whose item there is not their nearest by text: a first place that
    is the nearest text (and the target) counts for `rank_chance`, not for the table apart."""
    from llmrec.generate.new_items import rank_chance, rank_chance_apart

    scores = torch.tensor([[3.0, 2.0, 1.0]] * 4)  # every row ranks item 0, then 1, then 2
    targets, nearest = [0, 0, 1, 2], torch.tensor([0, 1, 2, 2])
    assert rank_chance(scores, targets, depth=3).tolist() == [0.5, 0.25, 0.25]
    # rank 0 (item 0) is apart from the nearest in rows 1-3, the target in row 1: 1/3; rank 1 (item
    # 1) in rows 0, 2, 3, the target in row 2: 1/3; rank 2 (item 2) in rows 0-1, never the target
    apart = rank_chance_apart(scores, targets, nearest, depth=4)
    assert apart.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 0.0])


def test_warm_items_get_the_table_apart_only_where_an_added_item_is_the_nearest_text():
    """Two users with the same scores: where the nearest item by text is an added one, warm ranks get
    the table apart from the nearest (lower at the first place) and the added item leads; where a
    warm item is the nearest, the ranking's own table keeps the added item second."""
    from llmrec.generate.new_items import RankChance, top_by_chance

    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]] * 2)
    new = torch.tensor([False, False, False, False, True])
    # user 0's nearest item by text is the added item 4, user 1's the warm item 3 (item 4 second)
    similarity = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.9], [0.1, 0.2, 0.3, 0.95, 0.9]])
    ranked, apart = torch.tensor([0.3, 0.1, 0.05, 0.02]), torch.tensor([0.15, 0.1, 0.05, 0.02])
    by_text = torch.tensor([0.2, 0.12])
    top = top_by_chance(scores, new, 3, RankChance(ranked, by_text, similarity, apart))
    assert [[s.item for s in row] for row in top] == [[4, 0, 1], [0, 4, 1]]
    plain = top_by_chance(scores, new, 3, RankChance(ranked, by_text, similarity))  # a fit without it
    assert [[s.item for s in row] for row in plain] == [[0, 4, 1], [0, 4, 1]]


def test_the_llm_alone_places_added_items_by_its_own_chance_table(text_run, tmp_path):
    """`mix: none` with items added after training: the LLM's own ranking and scores, added
    items placed by the fit's `llm_alone` table (the share of validation targets at each rank of
    the LLM alone), the fit run on first use; without added items, or with slots, the plain LLM."""
    import shutil

    from llmrec.generate.new_items import rank_chance
    from llmrec.mix import load_recommender

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint", "mix"))
    quiet = {"mix": "none", "log": lambda _: None}
    assert type(load_recommender(run, **quiet)) is Recommender  # nothing added: nothing to fit
    assert not (run / "mix").exists()
    (tmp_path / "new.csv").write_text("iid,name,genre\nm99,Film 2,action\n")  # m2's text
    result = runner.invoke(app, ["items", "add", str(run), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    alone = load_recommender(run, **quiet)
    assert isinstance(alone, ContentMixRecommender) and alone.alone and alone.weight == 0.0
    saved = json.loads((run / "mix" / "content_mix.json").read_text())["rank_chance"]
    split = RunDir(run).load_split()
    users = split.eval_users("valid")
    valid_scores = alone.llm.score_catalogue(
        split.histories(users, "valid"), times=split.times(users, "valid")
    )
    expected = rank_chance(valid_scores, [alone.item_ids.index[t] for t in users["valid"]])
    assert saved["llm_alone"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert alone.chance == saved
    # the `llm_alone` table for every user (the table apart: tested above)
    alone.chance = {k: v for k, v in saved.items() if k != "llm_alone_apart"}

    history = [["m5", "m2"]]  # m2 is excluded, so m99 (same text) is the nearest item by text
    scores = alone.llm.score_catalogue(history)[0]
    warm = [alone.item_ids.items[i] for i in scores.argsort(descending=True).tolist()]
    warm = [i for i in warm if i != "m99"]
    alone.chance = {
        "llm_alone": [0.5, 0.4, 0.3, 0.2, 0.1],
        "by_text": [0.45],
    }  # m99's text rank 0: between warm places 1 and 2
    listed = alone.recommend(history, k=5)[0]
    assert [r.item for r in listed] == [warm[0], "m99", *warm[1:4]]
    assert [r.score for r in listed] == pytest.approx(
        [float(scores[alone.item_ids.index[r.item]]) for r in listed]
    )
    config = RunDir(run).config
    assert "new_item_placement: calibrated" in config.read_text()
    config.write_text(
        config.read_text().replace("new_item_placement: calibrated", "new_item_placement: slots")
    )
    assert type(load_recommender(run, **quiet)) is Recommender


def random_sasrec(run: RunDir, path, anchored: bool = False) -> None:
    """SASRec-CE weights for the run's catalogue (untrained: the sweep's arithmetic is what is tested);
    `anchored`: text-anchored rows from random text vectors (the weights carry them)."""
    from llmrec.baselines.sasrec import SasrecRecommender

    split, settings = run.load_split(), run.load_config().baselines.sasrec
    if not anchored:
        SasrecRecommender(split, settings).save(path)
        return
    vectors = np.random.default_rng(0).normal(size=(len(split.items), 8)).astype(np.float32)
    SasrecRecommender(split, settings.model_copy(update={"item_rows": "anchored"}), vectors).save(path)


@pytest.mark.parametrize("anchored", [False, True], ids=["free-rows", "anchored-rows"])
def test_a_sasrec_term_is_swept_and_the_mix_adds_its_log_probs(text_run, tmp_path, anchored):
    """With SASRec-CE weights the fit sweeps its weight too (copying the weights into the run), and a
    mix with a SASRec-CE weight v ranks by log p_llm + w * cos + v * log p_sasrec; weights with
    text-anchored rows load as they are (the run's config says free rows)."""
    import shutil

    from llmrec.mix.content import SASREC_WEIGHTS

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint", "mix"))
    random_sasrec(RunDir(run), tmp_path / "sasrec.pt", anchored)
    saved = fit_content_mix(run, log=lambda _: None, sasrec_weights=tmp_path / "sasrec.pt")
    assert set(saved["valid_ndcg@10_by_sasrec_weight"]) == {str(v) for v in SASREC_WEIGHTS}
    assert saved["sasrec_weight"] in SASREC_WEIGHTS and saved["sasrec_catalogue_items"] == 30
    assert (run / "mix" / "sasrec.pt").read_bytes() == (tmp_path / "sasrec.pt").read_bytes()
    if saved["sasrec_weight"] > 0:  # kept only beyond one standard error over the best mix without it
        assert saved["sasrec_gain"] > saved["sasrec_gain_se"]
    mix_file = run / "mix" / "content_mix.json"
    mix_file.write_text(json.dumps(saved | {"weight": 3.0, "profile": "2", "sasrec_weight": 2.0}))
    mixed = ContentMixRecommender.from_run(run)
    assert mixed.sasrec is not None and mixed.sasrec_weight == 2.0 and mixed.sasrec.anchored == anchored
    known = [[i for i in h] for h in HISTORIES]
    logits = mixed.sasrec.logits(known, exclude_history=False)
    sasrec = torch.log_softmax(logits, dim=-1)[:, [mixed.sasrec.index[i] - 1 for i in mixed.item_ids.items]]
    expected_scores = mixed.llm.score_catalogue(HISTORIES) + 3.0 * mixed.cosines(HISTORIES, 2) + 2.0 * sasrec
    for n, row in enumerate(mixed.recommend(HISTORIES, k=6)):
        expected = expected_scores[n].topk(6)
        assert [r.item for r in row] == [mixed.item_ids.items[j] for j in expected.indices.tolist()]
        assert [r.score for r in row] == pytest.approx(expected.values.tolist(), abs=1e-4)


def test_a_sasrec_term_is_kept_when_it_points_at_the_target(text_run, tmp_path, monkeypatch):
    """SASRec-CE log-probs that name each validation user's next item: the fit keeps its term (the
    text alone, made neutral, cannot find the target)."""
    import shutil

    import llmrec.mix.content as content_mix

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint", "mix"))
    random_sasrec(RunDir(run), tmp_path / "sasrec.pt")
    split = RunDir(run).load_split()
    users = split.eval_users("valid")
    by_history = {tuple(h): t for h, t in zip(split.histories(users, "valid"), users["valid"], strict=True)}

    def pointing(sasrec, histories, items):
        logp = torch.full((len(histories), len(items)), -10.0)
        for r, history in enumerate(histories):
            logp[r, items.index(by_history[tuple(history)])] = 0.0
        return logp

    monkeypatch.setattr(content_mix, "sasrec_log_probs", pointing)
    monkeypatch.setattr(ContentMixRecommender, "cosines", lambda self, h, p: torch.zeros(len(h), 30))
    saved = fit_content_mix(run, log=lambda _: None, sasrec_weights=tmp_path / "sasrec.pt")
    assert saved["sasrec_weight"] > 0 and saved["valid_ndcg@10"] == pytest.approx(1.0)
    assert saved["sasrec_gain"] > saved["sasrec_gain_se"] > 0


def test_an_item_sasrec_never_saw_gets_the_uniform_log_prob(text_run, tmp_path):
    """After `items add`, SASRec-CE knows the catalogue it was trained on: an added item gets
    log(1/n) from it, and an added item in a history is left out of its input (no error)."""
    import math
    import shutil

    from llmrec.mix.content import sasrec_log_probs

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint", "mix"))
    random_sasrec(RunDir(run), tmp_path / "sasrec.pt")
    saved = fit_content_mix(run, log=lambda _: None, sasrec_weights=tmp_path / "sasrec.pt")
    mix_file = run / "mix" / "content_mix.json"
    mix_file.write_text(json.dumps(saved | {"weight": 1.0, "sasrec_weight": 1.0}))
    (tmp_path / "new.csv").write_text("iid,name,genre\nm99,Film 2,action\n")
    result = runner.invoke(app, ["items", "add", str(run), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    mixed = ContentMixRecommender.from_run(run)
    assert len(mixed.sasrec.items) == 30 and mixed.item_ids.items[-1] == "m99"
    logp = sasrec_log_probs(mixed.sasrec, [["m1", "m99"], ["m1"]], mixed.item_ids.items)
    assert logp[:, -1].tolist() == pytest.approx([-math.log(30)] * 2)
    assert torch.equal(logp[0], logp[1])  # m99 is not part of SASRec's input
    mixed.llm.cfg.new_item_placement = "slots"
    assert len(mixed.recommend([["m1", "m99"]], k=5)[0]) == 5


def test_new_item_boost_scales_an_added_items_chance(text_run, tmp_path):
    """`generate.new_item_boost` multiplies an added item's text chance: 1 places it as validation
    says, more moves it up the list, 0 keeps it out."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(text_run.path, run, ignore=shutil.ignore_patterns("checkpoint"))
    fit_content_mix(run, log=lambda _: None)
    (tmp_path / "new.csv").write_text("iid,name,genre\nm99,Film 2,action\n")  # m2's text
    result = runner.invoke(app, ["items", "add", str(run), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    mixed = ContentMixRecommender.from_run(run)
    history = [["m5", "m2"]]  # m99 is the nearest item by text
    mixed.chance = {"ranked": [0.5, 0.4, 0.3, 0.2, 0.1], "by_text": [0.25]}
    where = {}
    for boost in (0.0, 1.0, 3.0):
        mixed.llm.cfg.new_item_boost = boost
        listed = [r.item for r in mixed.recommend(history, k=5)[0]]
        where[boost] = listed.index("m99") if "m99" in listed else None
    assert where == {0.0: None, 1.0: 3, 3.0: 0}
