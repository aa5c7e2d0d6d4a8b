"""Explanations: fact selection on toy catalogues, the title guard, the claim check on both sides,
and the draft-redraft-statement flow (drafts planted through a stub generator)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from llmrec.config import ExplainConfig
from llmrec.explain import (
    Attributes,
    CooccurrenceEvidence,
    Explainer,
    FactSelector,
    TitleGuard,
    display_title,
    normalise,
)
from llmrec.generate import Recommendation

TITLES = {
    "1": "Usual Suspects, The (1995)",
    "2": "Heat (1995)",
    "3": "Toy Story (1995)",
    "4": "In the Heat of the Night (1967)",
    "5": "Star Wars (1977)",
    "6": "War, The (1994)",
    "7": "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)",
}


def test_titles_are_normalised_the_way_people_write_them():
    assert display_title("Usual Suspects, The (1995)") == "The Usual Suspects"
    assert display_title("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)") == "Shanghai Triad"
    assert normalise("Usual Suspects, The (1995)") == normalise("the usual suspects") == "usual suspects"


def test_guard_passes_allowed_titles_and_catches_a_planted_one():
    guard = TitleGuard(TITLES, common_words={"War", "Drama"})
    clean = "Since you enjoyed The Usual Suspects, you may like Toy Story (Drama, War)."
    assert guard.violations(clean, ["1", "3"]) == []
    planted = "Since you enjoyed The Usual Suspects, you may like Toy Story and Star Wars."
    assert guard.violations(planted, ["1", "3"]) == ["star wars"]
    assert guard.cited(planted, ["1", "3", "2"]) == ["1", "3"]


def test_guard_catches_misspelt_and_invented_titles():
    guard = TitleGuard(TITLES)
    assert guard.violations("You loved Toy Story, like The Usuall Suspects.", ["3"]) == ["usual suspects"]
    found = guard.violations('You loved Toy Story, so try "The Midnight Harbor".', ["3"])
    assert found == ["not in the catalogue: The Midnight Harbor"]


def test_one_word_titles_count_only_when_written_as_titles():
    guard = TitleGuard(TITLES)
    # part of an allowed title, a lower-case common word, the first word: not mentions of "Heat"
    assert guard.violations("In the Heat of the Night has real heat.", ["4"]) == []
    assert guard.violations("Heat is what Toy Story has.", ["3"]) == []
    assert guard.violations("You liked Toy Story, and Heat too.", ["3"]) == ["heat"]


def test_co_occurrence_counts_the_users_who_chose_both():
    sequences = [["a", "b"]] * 3 + [["a", "c"], ["c", "d"], ["b", "d"], ["e"]]
    items = ["a", "b", "c", "d", "e"]
    evidence = CooccurrenceEvidence(sequences, items)
    # n(a, b) = 3, n(a) = 4, n(b) = 4 -> 3 / 4; n(a, c) = 1, n(c) = 2 -> 1 / sqrt(8)
    assert list(evidence.relations("a", ["b", "c", "d"])) == pytest.approx([0.75, 1 / math.sqrt(8), 0.0])
    assert (evidence.together("a", "b"), evidence.together("a", "d"), evidence.together("a", "z")) == (
        3,
        0,
        0,
    )


def toy_items(texts: dict[str, str], titles: dict[str, str] | None = None) -> pd.DataFrame:
    titles = titles or {i: f"Film {i}" for i in texts}
    return pd.DataFrame(
        {"item": list(texts), "title": [titles[i] for i in texts], "text": list(texts.values())}
    )


def test_fact_selection_picks_the_history_item_that_shares_an_attribute_and_the_one_chosen_with_it():
    texts = {"a": "Comedy", "b": "Horror", "c": "Comedy, Romance", "d": "Drama", "e": "Horror"}
    items = toy_items(texts)
    evidence = CooccurrenceEvidence([["d", "c"], ["d", "c"], ["e"]], list(texts))
    selector = FactSelector(evidence, Attributes(items), {i: f"Film {i}" for i in texts})
    facts = selector.select("c", ["a", "b", "d"], k=2)
    # d was chosen with c by 2 users (and shares nothing); a shares Comedy (and was never chosen with it)
    assert [(e.item, e.together, e.shared) for e in facts.evidence] == [("d", 2, []), ("a", 0, ["Comedy"])]
    assert facts.specific and facts.attributes == ["Comedy", "Romance"]
    assert selector.select("c", ["b"], k=2).evidence == []  # nothing links Horror to c
    # an attribute that recurs in the recent history is a fact too
    assert selector.select("c", ["a", "b"], k=1).recurring == []  # one Comedy in the history: no pattern
    many = FactSelector(evidence, Attributes(toy_items(texts | {"f": "Comedy"})), {})
    assert many.select("c", ["a", "f", "b"], k=1).recurring == [("Comedy", 2, 3)]


def test_product_catalogues_share_the_distinctive_words_of_their_titles():
    titles = {
        "s1": "Stanley TRA708T Sharpshooter Staples, Steel (1000 Count)",
        "s2": "Stanley TR150 Heavy Duty Staple Gun",
        "g1": "Gorilla Original Glue, 4 ounce Bottle",
        "g2": "Gorilla Tape, Black Heavy Duct Tape",
        **{f"x{n}": f"Filler Widget Model {n}" for n in range(40)},
    }
    items = toy_items({i: "Heavy tools and supplies for every job in the workshop." for i in titles}, titles)
    attributes = Attributes(items)
    assert attributes.kind == "word"
    assert {"stanley", "staple"} <= set(attributes["s2"]) and "gorilla" in attributes["g2"]
    assert "heavy" not in attributes.vocabulary  # in every description: an ordinary word, no attribute
    facts = FactSelector(CooccurrenceEvidence([], list(titles)), attributes, titles).select(
        "s2", ["g1", "s1"], 2
    )
    assert [(e.item, sorted(e.shared)) for e in facts.evidence] == [("s1", ["stanley", "staple"])]


class StubTokenizer:
    chat_template = None


TEXTS = {i: "Horror, Sci-Fi, War" if i == "5" else "Crime, Drama" for i in TITLES}


def stub_explainer(
    drafts: list[list[str]], retries: int = 1, texts: dict[str, str] = TEXTS, scores=None
) -> Explainer:
    """An explainer whose LLM returns `drafts[attempt]` (one per pending reason)."""
    items = pd.DataFrame(
        {"item": list(TITLES), "title": list(TITLES.values()), "text": [texts[i] for i in TITLES]}
    )
    sequences = [["1", "3", "5"], ["1", "3"], ["2", "4"]]
    evidence = CooccurrenceEvidence(sequences, list(TITLES))
    cfg = ExplainConfig(item_noun="movie", retries=retries, generator="llm")
    columns = {i: n for n, i in enumerate(TITLES)}
    explainer = Explainer(object(), StubTokenizer(), items, evidence, cfg, scores, columns)
    attempts = iter(drafts)
    explainer.generate = lambda prompts, sample: next(attempts)[: len(prompts)]
    return explainer


def recs(*items: str) -> list[list[Recommendation]]:
    return [[Recommendation(i, TITLES[i], -1.0, n + 1) for n, i in enumerate(items)]]


def test_a_planted_false_claim_about_a_history_item_is_rejected():
    explainer = stub_explainer([])
    facts = explainer.selector.select("3", ["1", "5"], k=2)
    # 1 co-occurs with 3 and shares Crime, Drama; 5 only co-occurs with it
    assert [(e.item, e.together, e.shared) for e in facts.evidence] == [
        ("1", 2, ["Crime", "Drama"]),
        ("5", 1, []),
    ]
    assert (
        explainer.check('Since you watched "The Usual Suspects", "Toy Story" is a crime drama too.', facts)
        == []
    )
    # true of the recommended item, false of the history item the draft names: rejected
    facts = explainer.selector.select("3", ["5", "1"], k=2)
    found = explainer.check('Since you watched "Star Wars", "Toy Story" is a crime drama too.', facts)
    assert found == ["claims Crime of Star Wars", "claims Drama of Star Wars"]
    # and the other side: true of the history item, false of the recommended one
    found = explainer.check(
        'Like "The Usual Suspects", "Toy Story" is a war film.', explainer.selector.select("3", ["1"], 2)
    )
    assert found[0] == "claims War of Toy Story, The Usual Suspects"
    # a claim belongs to the items its sentence names: true of those, it stands
    facts5 = explainer.selector.select("5", ["1"], 2)
    two = '1 person who watched "The Usual Suspects" also watched "Star Wars". "Star Wars" is a war film.'
    assert explainer.check(two, facts5) == []
    one = 'Like "The Usual Suspects", "Star Wars" is a war film.'
    assert explainer.check(one, facts5)[0] == "claims War of The Usual Suspects"
    # "people who" needs a named item chosen together with it; numbers must be the facts'
    found = explainer.check('People who watched "The Usual Suspects" also watched "Toy Story".', facts)
    assert found == []
    lonely = explainer.selector.select("4", ["1"], 2)  # 1 and 4 share Crime, Drama; nobody chose both
    found = explainer.check(
        'People who watched "The Usual Suspects" also watched "In the Heat of the Night".', lonely
    )
    assert found[0] == "claims people chose them together, but no named item co-occurs with it"
    found = explainer.check('12 people who watched "The Usual Suspects" also watched "Toy Story".', facts)
    assert found == ["states the number 12, which no fact gives"]


def test_a_vacuous_draft_is_rejected_and_replaced_by_the_plain_facts():
    explainer = stub_explainer(
        [["You may like Toy Story, a movie you will enjoy."], ["Toy Story is fun to watch."]]
    )
    facts = explainer.selector.select("3", ["1"], 2)
    assert explainer.check("Toy Story is fun to watch.", facts) == [
        "says nothing that links it to the user's history"
    ]
    out = explainer.explain([["1"]], recs("3"))[0][0]
    assert out.source == "statement" and len(out.rejected) == 2
    assert out.reason == explainer.statement(facts, ["1"])
    assert '"The Usual Suspects"' in out.reason and '"Toy Story"' in out.reason
    assert explainer.check(out.reason, facts) == []  # the statement passes its own check
    stats = explainer.stats
    assert (stats["first_drafts_rejected"], stats["regenerated"], stats["statement_after_check"]) == (1, 1, 1)


def test_a_draft_with_an_invented_title_is_redrafted_and_a_good_redraft_kept():
    explainer = stub_explainer(
        [
            ['Since you watched "The Usual Suspects", "Toy Story" is a crime drama; so is "Star Wars".'],
            ['Since you watched "The Usual Suspects", "Toy Story" is a crime drama too.'],
        ]
    )
    out = explainer.explain([["1"]], recs("3"))[0][0]
    assert out.source == "llm-retry" and "Star Wars" not in out.reason
    assert out.rejected[0][0] == "star wars"
    assert explainer.stats["first_draft_invented_title"] == 1 and explainer.stats["llm_explanations"] == 1


def model_leaning_on_war(rows: list[list[str]]) -> torch.Tensor:
    """Catalogue scores (rows x 7 items) of a model that ranks "Star Wars" (5) first only for
    histories with "War" (6) in them; every other item keeps a fixed score."""
    scores = torch.arange(7, 0, -1, dtype=torch.float).repeat(len(rows), 1)  # item n scores 7 - n
    for n, row in enumerate(rows):
        scores[n, 4] = 10.0 if "6" in row else 0.5
    return scores


def test_the_models_own_attribution_names_the_history_item_it_leans_on():
    explainer = stub_explainer([], scores=model_leaning_on_war)
    explainer.cfg.generator = "statement"
    history = ["2", "6", "7"]
    moves = explainer.moves([history], recs("5", "1"))[0]
    # the recommended item's ranks with the whole history and without each item: only "The War" moves it
    assert moves == [{"7": (1, 1), "6": (1, 7), "2": (1, 1)}, {"7": (2, 2), "6": (2, 1), "2": (2, 2)}]
    out = explainer.explain([history], recs("5", "1"))[0]
    assert out[0].facts.weighed.item == "6" and out[0].facts.weighed.moves == (1, 7)
    # the fall, not the ranks: a mix may show the item at another place than the model's own list
    assert "6 places" in out[0].reason and '"The War"' in out[0].reason
    assert explainer.check(out[0].reason, out[0].facts) == []  # the ranks are facts: no false number
    wrong = out[0].reason.replace("6 places", "40 places")
    assert "states the number 40, which no fact gives" in explainer.check(wrong, out[0].facts)
    # a true rank is still no fact when the reason does not name the item it belongs to
    unnamed = '"Star Wars" would fall 6 places without one of the movies you watched.'
    assert "states the number 6, which no fact gives" in explainer.check(unnamed, out[0].facts)
    assert out[1].facts.weighed is None  # nothing in the history moves "The Usual Suspects"
    assert stub_explainer([]).moves([history], recs("5"))[0] == [{}]  # no scores, no attribution


def test_without_facts_or_titles_the_statement_names_only_catalogue_items():
    explainer = stub_explainer([])
    out = explainer.explain([["6"]], recs("5"))[0][0]  # 6 shares nothing with 5 and nobody chose both
    assert out.source == "statement" and out.evidence == []
    assert out.reason == '"Star Wars" comes from your history as a whole, not from one movie in it.'
    explainer.has_titles = False
    explainer.short = {}
    out = explainer.explain([["1"]], recs("3"))[0][0]
    assert "movie 1" in out.reason and "movie 3" in out.reason and '"' not in out.reason


def test_explanations_are_the_same_for_the_same_request(tiny_backbone):
    """The real generation path (a tiny random model: its drafts fail, so redrafts sample) gives the
    same words for the same request, from a fresh explainer too; every named title is a catalogue's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_backbone)
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)

    def run() -> list[str]:
        items = pd.DataFrame(
            {"item": list(TITLES), "title": list(TITLES.values()), "text": [TEXTS[i] for i in TITLES]}
        )
        evidence = CooccurrenceEvidence([["1", "3", "5"], ["1", "3"], ["2", "4"]], list(TITLES))
        explainer = Explainer(
            model,
            tokenizer,
            items,
            evidence,
            ExplainConfig(item_noun="movie", max_new_tokens=8, generator="llm"),
        )
        out = explainer.explain([["1", "2"], ["2"]], [recs("3", "4")[0], recs("4")[0]])
        return [e.reason for es in out for e in es]

    first = run()
    assert first == run() and len(first) == 3
    guard = TitleGuard(TITLES)
    for reason in first:
        assert all(key in {normalise(t) for t in TITLES.values()} for key, _, _ in guard.mentions(reason))
