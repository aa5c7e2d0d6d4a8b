"""Explanations: evidence selection on a toy catalogue, the faithfulness guard, and the
regenerate-then-template flow (drafts planted through a stub generator)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmrec.config import ExplainConfig
from llmrec.explain import (
    CooccurrenceEvidence,
    Evidence,
    Explainer,
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


def test_evidence_is_the_most_co_occurring_history_items():
    sequences = [["a", "b"]] * 3 + [["a", "c"], ["c", "d"], ["b", "d"], ["e"]]
    items = ["a", "b", "c", "d", "e"]
    evidence = CooccurrenceEvidence(sequences, items, {i: i.upper() for i in items})
    picked = evidence.select("a", ["c", "b", "d", "e", "a"], k=3)
    assert [e.item for e in picked] == ["b", "c"]  # d and e never co-occur with a; a itself is skipped
    # n(a, b) = 3, n(a) = 4, n(b) = 4 -> 3 / 4; n(a, c) = 1, n(c) = 2 -> 1 / sqrt(8)
    assert picked[0].relation == pytest.approx(0.75, abs=1e-4)
    assert picked[1].relation == pytest.approx(1 / math.sqrt(8), abs=1e-4)
    assert picked[0].title == "B"
    assert [e.item for e in evidence.select("a", ["c", "b"], k=1)] == ["b"]
    # equal relation: the more recent history item wins
    tied = CooccurrenceEvidence([["x", "y", "z"]], ["x", "y", "z"], {})
    assert [e.item for e in tied.select("x", ["y", "z"], k=2)] == ["z", "y"]


class StubTokenizer:
    chat_template = None


def stub_explainer(drafts: list[list[str]], retries: int = 1) -> Explainer:
    """An explainer whose LLM returns `drafts[attempt]` (one per pending reason)."""
    texts = ["Horror, Sci-Fi, War" if item == "5" else "Crime, Drama" for item in TITLES]
    items = pd.DataFrame({"item": list(TITLES), "title": list(TITLES.values()), "text": texts})
    sequences = [["1", "3", "5"], ["1", "3"], ["2", "4"]]
    evidence = CooccurrenceEvidence(sequences, list(TITLES), TITLES)
    cfg = ExplainConfig(item_noun="movie", retries=retries)
    explainer = Explainer(object(), StubTokenizer(), items, evidence, cfg)
    attempts = iter(drafts)
    explainer.generate = lambda prompts, sample: next(attempts)[: len(prompts)]
    return explainer


def recs(*items: str) -> list[list[Recommendation]]:
    return [[Recommendation(i, TITLES[i], -1.0, n + 1) for n, i in enumerate(items)]]


def test_a_draft_with_an_invented_title_is_regenerated_then_replaced():
    history = [["1", "2"]]  # 3 co-occurs with 1; 4 with 2
    explainer = stub_explainer(
        [
            ["You liked The Usual Suspects, so Toy Story; also Star Wars.", "You liked Heat: try Toy Story."],
            ["You liked The Usual Suspects, so watch Toy Story.", "Heat fans like Star Wars."],
        ]
    )
    out = explainer.explain(history, recs("3", "4"))[0]
    assert out[0].source == "llm-retry" and "Star Wars" not in out[0].reason
    assert [e.item for e in out[0].evidence] == ["1"]
    assert out[0].reason == "You liked The Usual Suspects, so watch Toy Story."
    assert out[0].rejected == [["star wars"]]
    # the second never named its own item (and then named Star Wars): template from the evidence
    assert out[1].source == "template" and len(out[1].rejected) == 2
    assert out[1].reason.startswith("Because you chose Heat: people who chose it often also chose")
    assert "They share Crime, Drama." in out[1].reason
    assert explainer.guard.violations(out[1].reason, ["4", "2"]) == []
    stats = explainer.stats
    assert (stats["first_drafts_rejected"], stats["regenerated"], stats["template_after_guard"]) == (2, 2, 1)
    assert stats["explanations"] == 2 and stats["llm_explanations"] == 1
    # first drafts: Star Wars, and Toy Story for the second item (which it also failed to name)
    assert (stats["first_draft_invented_title"], stats["first_draft_misses_item"]) == (2, 1)
    assert stats["rejected_invented_title"] == 3  # the second item's retry named Star Wars


def test_without_evidence_or_titles_the_wording_names_no_invented_item():
    explainer = stub_explainer([])
    out = explainer.explain([["6"]], recs("3"))[0][0]  # "6" never co-occurs with "3"
    assert out.source == "template" and out.evidence == []
    assert "none of your past movies co-occurs with it" in out.reason
    explainer.has_titles = False
    explainer.titles = {}
    out = explainer.explain([["1"]], recs("3"))[0][0]
    assert out.reason.startswith("Because you chose movie 1: people who chose it often also chose movie 3.")


def test_a_reason_may_claim_only_the_recommended_items_traits():
    explainer = stub_explainer(
        [["You liked The Usual Suspects, so Toy Story: both are crime films."],
         ["You liked The Usual Suspects, so Toy Story: both are sci-fi horror."]]
    )  # fmt: skip
    assert explainer.check("So Toy Story: both are crime films.", "3", []) == []
    assert explainer.check("So Toy Story: a Sci-Fi horror.", "3", []) == [
        "claims trait Horror",
        "claims trait Sci-Fi",
    ]
    # words of a named title are no claim
    evidence = [Evidence("6", TITLES["6"], 0.5)]
    assert explainer.check("So Toy Story, like The War.", "3", evidence) == []
    assert explainer.check("So Toy Story, a war film.", "3", evidence) == ["claims trait War"]
    out = explainer.explain([["1"]], recs("3"))[0][0]
    assert out.source == "llm" and out.reason.endswith("crime films.")


def test_no_shared_genre_is_claimed_where_the_catalogue_has_none():
    """Without traits the prompt does not lead with "both are", and a claim of a shared genre fails."""
    items = pd.DataFrame({"item": list(TITLES), "title": list(TITLES.values()), "text": [""] * len(TITLES)})
    evidence = CooccurrenceEvidence([["1", "3"]], list(TITLES), TITLES)
    explainer = Explainer(object(), StubTokenizer(), items, evidence, ExplainConfig(item_noun="movie"))
    cited = [Evidence("1", TITLES["1"], 0.5)]
    _, lead = explainer.prompt("3", cited)
    assert "both are" not in lead and lead.endswith("people who enjoyed it often")
    assert explainer.check(
        "Since you enjoyed The Usual Suspects, Toy Story: the same genre.", "3", cited
    ) == ["claims trait shared with the history, but they share none"]
    assert explainer.check("Since you enjoyed The Usual Suspects, try Toy Story.", "3", cited) == []
    _, lead = stub_explainer([]).prompt("3", cited)  # both are "Crime, Drama": the lead may say so
    assert lead.endswith("both are")
